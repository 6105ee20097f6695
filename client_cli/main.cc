// imgq: the command-line client of an imgq broker.
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "imgq/client_cli/commands.h"
#include "imgq/client_cli/ingest.h"
#include "imgq/client_cli/submit.h"
#include "imgq/common/memory.h"
#include "imgq/common/version.h"
#include "imgq/schemas/messages.h"

namespace {

// Signals seen: imgq ingest stops taking files at the first and leaves the
// jobs in flight at the second; every other command stops at the first.
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = g_stop + 1; }

std::string from_env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  imgq::keep_freed_image_memory();
  using namespace imgq::client;
  CLI::App app{"imgq: submit image jobs to an imgq broker and follow them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", imgq::version_line("imgq", imgq::proto::kVersion));
  Connection c;
  c.broker = from_env("IMGQ_BROKER", kDefaultBroker);
  c.progress = from_env("IMGQ_PROGRESS", "");
  double timeout_s = 10;
  double submit_timeout_s = 60;
  std::string server_key = from_env("IMGQ_SERVER_KEY", ""), key = from_env("IMGQ_KEY", "");
  auto connection_flags = [&](CLI::App* sub, double* timeout = nullptr) {
    sub->add_option("--server-key", server_key, "CURVE: the broker's public key file (env IMGQ_SERVER_KEY)");
    sub->add_option("--key", key, "CURVE: this client's key file from imgq keygen (env IMGQ_KEY)");
    sub->add_option("--broker", c.broker, "broker clients endpoint (env IMGQ_BROKER)")->capture_default_str();
    sub->add_option("--progress", c.progress, "broker progress endpoint (env IMGQ_PROGRESS; default: broker host, port 5557)");
    sub->add_option("--timeout", timeout != nullptr ? *timeout : timeout_s,
                    "seconds the broker may stay silent before imgq gives up (exit 3)")
        ->capture_default_str();
    sub->add_flag("--json", c.json, "machine-readable output, one JSON object per line");
  };

  SubmitOptions submit;
  auto* s = app.add_subcommand("submit", "process images: every image under PATH... becomes one job");
  connection_flags(s, &submit_timeout_s);
  // One value per --op (repeat it for a pipeline), so a path after it is never taken for an op.
  s->add_option("--op", submit.ops, "an op as name[:key=value,...]; repeat for a pipeline (see imgq ops)")
      ->allow_extra_args(false);
  s->add_option("-o,--out", submit.out_dir, "folder for the results")->capture_default_str();
  s->add_option("--priority", submit.priority, "0 (lowest) to 9 (highest)")->capture_default_str();
  s->add_option("--format", submit.format, "output format (default: each input's own)");
  s->add_option("--window", submit.window, "jobs in flight at once")->capture_default_str()->check(CLI::Range(1, 10000));
  s->add_flag("--no-wait", submit.no_wait,
              "exit once every job is accepted (stored by the broker), printing each id as it is accepted");
  s->add_flag("--local", submit.local,
              "send paths, not bytes: the worker groups read the images and write the results themselves "
              "(same host or shared file system; groups started with --allow-paths)");
  double job_timeout_s = 0;
  s->add_option("--job-timeout", job_timeout_s,
                "seconds one attempt of each job may run before it fails (default: the broker's)")
      ->check(CLI::Range(0.0, 4'000'000.0));
  s->add_option("--from-file", submit.from_file,
                "also the files listed in LIST, one path a line (- : stdin), read as they come")
      ->type_name("LIST");
  s->add_flag("--null", submit.null_separated, "the list's paths end with NUL, not newline (find -print0)");
  s->add_option("paths", submit.paths, "image files or folders (walked recursively)");

  IngestOptions ingest;
  double ingest_timeout_s = 60;
  auto* in = app.add_subcommand(
      "ingest", "watch a folder and process every image put into it, once; results to --out, originals to --done");
  connection_flags(in, &ingest_timeout_s);
  in->add_option("--inbox", ingest.inbox, "the folder to watch (recursively); it holds what is still to do")
      ->required();
  in->add_option("-o,--out", ingest.out_dir, "folder for the results (relative paths kept)")->required();
  in->add_option("--done", ingest.done_dir, "where originals go once their result is written (default: INBOX.done)");
  in->add_flag("--delete", ingest.delete_done, "delete originals once their result is written");
  in->add_option("--failed", ingest.failed_dir,
                 "where originals that failed go, with NAME.error.txt beside them (default: INBOX.failed)");
  in->add_option("--op", ingest.ops, "an op as name[:key=value,...]; repeat for a pipeline (see imgq ops)")
      ->allow_extra_args(false);
  in->add_option("--format", ingest.format, "output format (default: each input's own)");
  in->add_option("--priority", ingest.priority, "0 (lowest) to 9 (highest)")->capture_default_str();
  in->add_option("--window", ingest.window, "jobs in flight at once")->capture_default_str()->check(CLI::Range(1, 10000));
  in->add_flag("--local", ingest.local,
               "send paths, not bytes (groups started with --allow-paths for the inbox and --out)");
  double ingest_job_timeout_s = 0;
  in->add_option("--job-timeout", ingest_job_timeout_s, "seconds one attempt of each job may run (default: the broker's)")
      ->check(CLI::Range(0.0, 4'000'000.0));
  in->add_option("--rescan", ingest.rescan_seconds,
                 "seconds between full walks of the inbox besides inotify (network file systems); 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  in->get_option("--done")->excludes(in->get_option("--delete"));

  std::string job;
  auto* status = app.add_subcommand("status", "show a job's state");
  connection_flags(status);
  status->add_option("job", job, "job id")->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a job: a queued one at once, a running one at its next stage");
  connection_flags(cancel);
  cancel->add_option("job", job, "job id")->required();
  std::string out_dir = ".";
  auto* fetch = app.add_subcommand("fetch", "download a finished job's result");
  connection_flags(fetch);
  fetch->add_option("job", job, "job id")->required();
  fetch->add_option("-o,--out", out_dir, "folder for the result")->capture_default_str();
  auto* watch = app.add_subcommand("watch", "print progress events: of one job, or of all");
  connection_flags(watch);
  watch->add_option("job", job, "job id (default: every job)");
  double ops_timeout_s = 2;
  auto* ops = app.add_subcommand("ops", "list the ops, their parameters and defaults (as the broker has them)");
  connection_flags(ops, &ops_timeout_s);
  auto* ping = app.add_subcommand("ping", "check that the broker answers; show worker groups and queue");
  connection_flags(ping);
  std::string keygen_base;
  auto* keygen = app.add_subcommand("keygen", "write a CURVE key pair: NAME.pub (share it) and NAME.key (keep it)");
  keygen->add_option("name", keygen_base, "path without extension, e.g. keys/alice")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  c.timeout = Millis(static_cast<int64_t>(timeout_s * 1000));
  if (keygen->parsed()) {
    auto pair = imgq::generate_key_pair();
    imgq::Status written = pair.ok() ? imgq::write_key_pair(keygen_base, *pair) : pair.status();
    if (!written.ok()) {
      std::cerr << "imgq: error: " << written.message() << "\n";
      return 1;
    }
    std::cout << keygen_base << ".pub\n" << keygen_base << ".key\n";
    return 0;
  }
  if (ops->parsed()) c.timeout = Millis(static_cast<int64_t>(ops_timeout_s * 1000));
  {
    auto curve = imgq::load_curve_options(server_key, key);
    if (!curve.ok()) {
      std::cerr << "imgq: error: " << curve.status().message() << "\n";
      return 2;
    }
    c.curve = *curve;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  if (in->parsed()) {
    ingest.broker = c.broker;
    ingest.progress = c.progress;
    ingest.timeout = Millis(static_cast<int64_t>(ingest_timeout_s * 1000));
    ingest.interrupted = &g_stop;
    ingest.curve = c.curve;
    ingest.job_timeout_ms = static_cast<uint32_t>(ingest_job_timeout_s * 1000);
    ingest.mode = c.json ? ReportMode::kJson : (::isatty(STDERR_FILENO) ? ReportMode::kTerminal : ReportMode::kPlain);
    return run_ingest(ingest, std::cout, std::cerr);
  }
  if (s->parsed()) {
    submit.broker = c.broker;
    submit.progress = c.progress;
    submit.timeout = Millis(static_cast<int64_t>(submit_timeout_s * 1000));
    submit.interrupted = &g_stop;
    submit.curve = c.curve;
    submit.job_timeout_ms = static_cast<uint32_t>(job_timeout_s * 1000);
    submit.mode = c.json ? ReportMode::kJson : (::isatty(STDERR_FILENO) ? ReportMode::kTerminal : ReportMode::kPlain);
    return run_submit(submit, std::cout, std::cerr);
  }
  if (status->parsed()) return run_status(c, job, std::cout, std::cerr);
  if (cancel->parsed()) return run_cancel(c, job, std::cout, std::cerr);
  if (fetch->parsed()) return run_fetch(c, job, out_dir, std::cout, std::cerr);
  if (watch->parsed()) return run_watch(c, job, g_stop, std::cout);
  if (ops->parsed()) return run_ops(c, std::cout, std::cerr);
  return run_ping(c, std::cout, std::cerr);
}
