// imgq: the command-line client of an imgq broker. This file only defines
// the commands and their flags (CLI11) and calls the library; docs/cli.md is
// the reference.
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "imgq/client_cli/commands.h"
#include "imgq/client_cli/ingest.h"
#include "imgq/client_cli/submit.h"
#include "imgq/common/batch_paths.h"
#include "imgq/common/cli.h"
#include "imgq/common/memory.h"
#include "imgq/common/version.h"
#include "imgq/schemas/messages.h"
#include "imgq/schemas/op_catalog.h"

namespace {

namespace cli = imgq::cli;
using namespace imgq::client;

// Signals seen: imgq ingest stops taking files at the first and leaves the
// jobs in flight at the second; submit cancels its jobs at the first and
// leaves at once at the second; every other command stops at the first.
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = g_stop + 1; }

std::string from_env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

bool color_on(int fd) {
  const char* term = std::getenv("TERM");
  return ::isatty(fd) && std::getenv("NO_COLOR") == nullptr && (term == nullptr || std::string(term) != "dumb");
}

// What every command that talks to the broker takes.
struct Common {
  std::string broker = from_env("IMGQ_BROKER", kDefaultBroker);
  std::string progress = from_env("IMGQ_PROGRESS", "");
  std::string server_key = from_env("IMGQ_SERVER_KEY", "");
  std::string key = from_env("IMGQ_KEY", "");
  bool json = false;
};

void connection_flags(CLI::App* sub, Common& c, double& timeout, const std::string& timeout_help) {
  sub->add_option("--broker", c.broker, "the broker: HOST:PORT (env IMGQ_BROKER)")
      ->type_name("HOST:PORT")->capture_default_str();
  sub->add_option("--progress", c.progress,
                  "the broker's progress address (env IMGQ_PROGRESS; default: the one the broker announces)")
      ->type_name("HOST:PORT");
  sub->add_option("--timeout", timeout, timeout_help)->type_name("S")->capture_default_str()->check(cli::range(0.1, 1e7));
  sub->add_option("--server-key", c.server_key, "CURVE: the broker's public key file (env IMGQ_SERVER_KEY)")
      ->type_name("FILE");
  sub->add_option("--key", c.key, "CURVE: this client's key file from imgq keygen (env IMGQ_KEY)")->type_name("FILE");
  sub->add_flag("--json", c.json, "machine-readable output, one JSON object per line");
}

// Checks and resolves the connection flags; a usage error names the flag or
// the variable the bad value came from.
imgq::Result<Connection> connection(const Common& common, double timeout_s) {
  Connection c;
  const bool from_env_broker = common.broker == from_env("IMGQ_BROKER", "") && !common.broker.empty();
  auto broker = cli::parse_endpoint(common.broker, cli::EndpointUse::kConnect,
                                    from_env_broker ? "IMGQ_BROKER" : "--broker");
  if (!broker.ok()) return broker.status();
  c.broker = *broker;
  if (!common.progress.empty()) {
    const bool from_env_progress = common.progress == from_env("IMGQ_PROGRESS", "");
    auto progress = cli::parse_endpoint(common.progress, cli::EndpointUse::kConnect,
                                        from_env_progress ? "IMGQ_PROGRESS" : "--progress");
    if (!progress.ok()) return progress.status();
    c.progress = *progress;
  }
  auto curve = imgq::load_curve_options(common.server_key, common.key);
  if (!curve.ok()) return curve.status();
  c.curve = *curve;
  c.timeout = Millis(static_cast<int64_t>(timeout_s * 1000));
  c.json = common.json;
  c.color = color_on(STDERR_FILENO);
  c.columns = imgq::cli::stderr_columns();
  return c;
}

// How submit and ingest report: a live line on a terminal, lines per file
// where stdout is no terminal, JSON when asked.
void report_style(bool json, bool quiet, bool verbose, ReportMode& mode, ReportStyle& style) {
  mode = json ? ReportMode::kJson : (::isatty(STDERR_FILENO) ? ReportMode::kTerminal : ReportMode::kPlain);
  style.quiet = quiet;
  style.color = color_on(STDERR_FILENO);
  style.file_lines = mode != ReportMode::kTerminal || verbose || !::isatty(STDOUT_FILENO);
}

cli::CompletionWords completion_words() {
  std::vector<std::string> ops;
  for (const auto& op : imgq::schemas::describe_ops()) ops.push_back(op.name);
  std::vector<std::string> formats;
  for (std::string_view f : imgq::output_format_names()) formats.emplace_back(f);
  return {{"SPEC", ops},
          {"FORMAT", formats},
          {"STATE", {"queued", "running", "done", "failed", "cancelled"}},
          {"SHELL", {"bash", "zsh"}}};
}

int run(int argc, char** argv) {
  CLI::App app{"imgq: submit image jobs to an imgq broker and follow them", "imgq"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", imgq::version_line("imgq", imgq::proto::kVersion));
  bool man = false;
  app.add_flag("--help-man", man, "print the man page")->group("");
  app.footer("Start here:\n"
             "  imgq ping                                   # is a broker there, with worker groups?\n"
             "  imgq submit --op grayscale photos/          # results go to ./imgq-out\n"
             "  imgq jobs                                   # what ran, newest first\n"
             "Commands take --broker HOST:PORT (or IMGQ_BROKER; default 127.0.0.1:5555); imgq COMMAND --help "
             "shows each.\n" +
             cli::exit_status_text() + "\n");
  Common common;

  // ---- submit ----
  SubmitOptions submit;
  double submit_timeout = 60, submit_job_timeout = 0;
  bool submit_verbose = false;
  auto* s = app.add_subcommand("submit", "process images: every image under PATH... becomes one job");
  connection_flags(s, common, submit_timeout, "seconds the broker may stay silent with jobs in flight (exit 3)");
  s->add_option("--op", submit.ops, "an op, name[:key=value,...]; repeat for a pipeline (imgq ops lists them)")
      ->type_name("SPEC")->allow_extra_args(false);
  s->add_option("-o,--out", submit.out_dir, "folder for the results (relative paths kept)")
      ->type_name("DIR")->capture_default_str();
  s->add_flag("--overwrite", submit.overwrite, "replace files already at the results' names (never an input)");
  s->add_flag("--skip-existing", submit.skip_existing,
              "do not send an image whose result is there already (resumes an interrupted run)");
  s->add_option("--format", submit.format, "output format: " + imgq::output_formats_text() + "; default: " +
                                               imgq::default_output_rule())
      ->type_name("FORMAT");
  s->add_option("--priority", submit.priority, "0 (lowest) to 9 (highest)")
      ->type_name("N")->capture_default_str()->check(cli::range(0, 9));
  s->add_option("--window", submit.window, "jobs in flight at once")
      ->type_name("N")->capture_default_str()->check(cli::range(1, 10000));
  s->add_flag("--no-wait", submit.no_wait,
              "exit once every job is accepted (stored by the broker), printing each id; results wait for "
              "imgq fetch");
  s->add_flag("--detach", submit.detach, "an interrupt (Ctrl-C) leaves the run's jobs running instead of cancelling them");
  s->add_flag("--local", submit.local,
              "send paths, not bytes: the worker groups read the images and write the results themselves (same "
              "host or shared file system; groups started with --allow-paths)");
  s->add_option("--job-timeout", submit_job_timeout,
                "seconds one attempt of each job may run before it fails (default: the broker's)")
      ->type_name("S")->check(cli::range(0, 4'000'000));
  s->add_option("--from-file", submit.from_file, "also the files listed in LIST, one path a line (- : stdin)")
      ->type_name("LIST");
  s->add_flag("--null", submit.null_separated, "the list's paths end with NUL, not newline (find -print0)");
  s->add_flag("-q,--quiet", submit.style.quiet, "print only failures");
  s->add_flag("-v,--verbose", submit_verbose, "a line per finished file even on a terminal");
  s->add_option("paths", submit.paths, "image files or folders (walked recursively)")->type_name("PATH");
  s->footer("Examples:\n"
            "  imgq submit --op grayscale photos/                       # -> imgq-out/...\n"
            "  imgq submit --op to_8bit --op canny:low=50,high=150 -o edges/ scans/\n"
            "  imgq submit --op resize:scale=0.25 --skip-existing -o thumbs/ photos/   # resume a run\n"
            "  find /data -name '*.tif' | imgq submit --op gaussian_blur --from-file - -o out/\n"
            "Results never replace a file: a different file at a result's name makes it NAME.1.EXT (--overwrite "
            "replaces; inputs never). Ctrl-C cancels the run's unfinished jobs (--detach leaves them running).\n" +
            cli::exit_status_text() + "\n");

  // ---- ingest ----
  IngestOptions ingest;
  double ingest_timeout = 60, ingest_job_timeout = 0;
  bool ingest_quiet = false, ingest_verbose = false;
  auto* in = app.add_subcommand(
      "ingest", "watch a folder and process every image put into it, once; results to --out, originals to --done");
  connection_flags(in, common, ingest_timeout, "seconds between warnings while the broker is silent (it waits on)");
  in->add_option("--inbox", ingest.inbox, "the folder to watch (recursively); it holds what is still to do")
      ->type_name("DIR")->required();
  in->add_option("-o,--out", ingest.out_dir, "folder for the results (relative paths kept)")->type_name("DIR")->required();
  in->add_option("--done", ingest.done_dir, "where originals go once their result is written (default: INBOX.done)")
      ->type_name("DIR");
  in->add_flag("--delete", ingest.delete_done, "delete originals once their result is written");
  in->add_option("--failed", ingest.failed_dir,
                 "where originals that failed go, with NAME.error.txt beside them (default: INBOX.failed)")
      ->type_name("DIR");
  in->add_option("--op", ingest.ops, "an op, name[:key=value,...]; repeat for a pipeline (imgq ops lists them)")
      ->type_name("SPEC")->allow_extra_args(false);
  in->add_option("--format", ingest.format, "output format (default: " + imgq::default_output_rule() + ")")
      ->type_name("FORMAT");
  in->add_option("--priority", ingest.priority, "0 (lowest) to 9 (highest)")
      ->type_name("N")->capture_default_str()->check(cli::range(0, 9));
  in->add_option("--window", ingest.window, "jobs in flight at once")
      ->type_name("N")->capture_default_str()->check(cli::range(1, 10000));
  in->add_flag("--local", ingest.local, "send paths, not bytes (groups started with --allow-paths for the inbox and --out)");
  in->add_option("--job-timeout", ingest_job_timeout, "seconds one attempt of each job may run (default: the broker's)")
      ->type_name("S")->check(cli::range(0, 4'000'000));
  in->add_option("--rescan", ingest.rescan_seconds,
                 "seconds between full walks of the inbox besides inotify (network file systems); 0: never")
      ->type_name("S")->capture_default_str()->check(cli::range(0, 1e9));
  in->add_flag("-q,--quiet", ingest_quiet, "print only failures");
  in->add_flag("-v,--verbose", ingest_verbose, "a line per finished file even on a terminal");
  in->get_option("--done")->excludes(in->get_option("--delete"));
  in->footer("Examples:\n"
             "  imgq ingest --inbox /scans/in -o /scans/out --op grayscale\n"
             "  imgq ingest --inbox drop/ -o done/ --delete --op resize:scale=0.5 --format png\n"
             "It runs until interrupted (the first Ctrl-C finishes the jobs in flight, the second leaves them for "
             "the next start); a broker that is down is waited for.\n" +
             cli::exit_status_text() + "\n");

  // ---- jobs, status, cancel, fetch, watch ----
  ListOptions list;
  double other_timeout = 10;
  auto* jobs = app.add_subcommand("jobs", "list jobs, newest first (with CURVE: this key's jobs)");
  connection_flags(jobs, common, other_timeout, "seconds to wait for the broker's answer");
  jobs->add_option("--state", list.state, "only jobs in this state: queued, running, done, failed, cancelled")
      ->type_name("STATE")
      ->check(CLI::IsMember({"queued", "running", "done", "failed", "cancelled"}).description(""));
  jobs->add_option("--limit", list.limit, "at most this many")->type_name("N")->capture_default_str()->check(cli::range(1, 1000));
  jobs->add_option("--before", list.before, "the page after the one that said so (its --before value)")->type_name("CURSOR");
  jobs->add_flag("-q,--quiet", list.ids_only, "only the ids, one a line (for imgq status -, imgq cancel -)");
  jobs->footer("Examples:\n  imgq jobs --state failed\n  imgq jobs -q --state queued | imgq cancel -\n" +
               cli::exit_status_text() + "\n");

  std::vector<std::string> ids;
  auto* status = app.add_subcommand("status", "show jobs' states");
  connection_flags(status, common, other_timeout, "seconds to wait for the broker's answers");
  status->add_option("jobs", ids, "job ids; - reads them from stdin")->type_name("JOB")->required();
  status->footer("Examples:\n  imgq status 3f2a9c1b0d4e5f60\n  imgq jobs -q --state running | imgq status -\n" +
                 cli::exit_status_text() + "\n");
  auto* cancel = app.add_subcommand("cancel", "cancel jobs: a queued one at once, a running one at its next stage");
  connection_flags(cancel, common, other_timeout, "seconds to wait for the broker's answers");
  cancel->add_option("jobs", ids, "job ids; - reads them from stdin")->type_name("JOB")->required();
  cancel->footer("Examples:\n  imgq cancel 3f2a9c1b0d4e5f60\n  imgq jobs -q --state queued | imgq cancel -\n" +
                 cli::exit_status_text() + "\n");
  std::string fetch_out = kDefaultOut;
  bool fetch_overwrite = false;
  auto* fetch = app.add_subcommand("fetch", "download finished jobs' results (then the broker may forget them)");
  connection_flags(fetch, common, other_timeout, "seconds to wait for the broker's answers");
  fetch->add_option("jobs", ids, "job ids; - reads them from stdin")->type_name("JOB")->required();
  fetch->add_option("-o,--out", fetch_out, "folder for the results")->type_name("DIR")->capture_default_str();
  fetch->add_flag("--overwrite", fetch_overwrite, "replace a file at a result's name (else NAME.1.EXT)");
  fetch->footer("Examples:\n  imgq fetch 3f2a9c1b0d4e5f60 -o results/\n  imgq jobs -q --state done | imgq fetch - -o results/\n" +
                cli::exit_status_text() + "\n");
  std::string watched;
  double watch_timeout = 60;
  auto* watch = app.add_subcommand("watch", "print progress events: of one job until it ends, or of all");
  connection_flags(watch, common, watch_timeout, "seconds the broker may stay silent before imgq gives up (exit 3)");
  watch->add_option("job", watched, "job id (default: every job)")->type_name("JOB");
  watch->footer("Examples:\n  imgq watch 3f2a9c1b0d4e5f60      # ends when the job ends: exit 0 done, 1 failed\n"
                "  imgq watch --json                 # every job's events, until interrupted\n" +
                cli::exit_status_text() + "\n");

  // ---- ops, ping, keygen, completion ----
  double ops_timeout = 3;
  auto* ops = app.add_subcommand("ops", "list the ops, their parameters and defaults (as the broker has them)");
  connection_flags(ops, common, ops_timeout, "seconds to wait for the broker (then the built-in catalogue)");
  ops->footer("Examples:\n  imgq ops\n  imgq ops --json | jq '.[].name'\n" + cli::exit_status_text() + "\n");
  auto* ping = app.add_subcommand("ping", "check that the broker answers; show its worker groups and queue");
  connection_flags(ping, common, other_timeout, "seconds to wait for the broker's answer");
  ping->footer("Examples:\n  imgq ping\n  imgq ping --broker broker.example.org:5555 --json\n" + cli::exit_status_text() +
               "\n");
  std::string keygen_base;
  auto* keygen = app.add_subcommand("keygen", "write a CURVE key pair: NAME.pub (share it) and NAME.key (keep it)");
  keygen->add_option("name", keygen_base, "path without extension, e.g. keys/alice")->type_name("NAME")->required();
  keygen->footer("Example: imgq keygen keys/alice   # then give keys/alice.pub to the broker's operator "
                 "(docs/security.md)\n" + cli::exit_status_text() + "\n");
  std::string shell;
  auto* completion = app.add_subcommand("completion", "print the shell completion script (bash or zsh)");
  completion->add_option("shell", shell, "bash or zsh")->type_name("SHELL")->required()
      ->check(CLI::IsMember({"bash", "zsh"}).description(""));
  completion->footer("Install: imgq completion bash > ~/.local/share/bash-completion/completions/imgq\n"
                     "(cmake --install puts both in place for every user.)\n");

  if (auto code = cli::parse(app, argc, argv)) return *code;
  if (man) {
    std::cout << cli::man_page(app, imgq::version(),
                               {{"IMGQ_BROKER", "the broker's address when --broker is not given"},
                                {"IMGQ_PROGRESS", "its progress address when --progress is not given"},
                                {"IMGQ_SERVER_KEY", "CURVE: the broker's public key file"},
                                {"IMGQ_KEY", "CURVE: this client's key file"},
                                {"NO_COLOR", "set: no colour on a terminal"}});
    return cli::kExitOk;
  }
  if (app.get_subcommands().empty()) {
    std::cout << app.help();
    return cli::kExitUsage;
  }
  if (completion->parsed()) {
    std::cout << (shell == "bash" ? cli::bash_completion(app, completion_words())
                                  : cli::zsh_completion(app, completion_words()));
    return cli::kExitOk;
  }
  if (keygen->parsed()) {
    auto pair = imgq::generate_key_pair();
    imgq::Status written = pair.ok() ? imgq::write_key_pair(keygen_base, *pair) : pair.status();
    if (!written.ok()) {
      std::cerr << "imgq: error: " << written.message() << "\n";
      return cli::kExitFailed;
    }
    std::cout << keygen_base << ".pub\n" << keygen_base << ".key\n";
    return cli::kExitOk;
  }
  const double timeout_s = s->parsed() ? submit_timeout : in->parsed() ? ingest_timeout
                         : watch->parsed() ? watch_timeout : ops->parsed() ? ops_timeout : other_timeout;
  auto c = connection(common, timeout_s);
  if (!c.ok()) {
    std::cerr << "imgq: error: " << c.status().message() << "\n";
    return cli::kExitUsage;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  if (in->parsed()) {
    ingest.broker = c->broker;
    ingest.progress = c->progress;
    ingest.timeout = c->timeout;
    ingest.interrupted = &g_stop;
    ingest.curve = c->curve;
    ingest.job_timeout_ms = static_cast<uint32_t>(ingest_job_timeout * 1000);
    report_style(c->json, ingest_quiet, ingest_verbose, ingest.mode, ingest.style);
    return run_ingest(ingest, std::cout, std::cerr);
  }
  if (s->parsed()) {
    submit.broker = c->broker;
    submit.progress = c->progress;
    submit.timeout = c->timeout;
    submit.interrupted = &g_stop;
    submit.curve = c->curve;
    submit.job_timeout_ms = static_cast<uint32_t>(submit_job_timeout * 1000);
    report_style(c->json, submit.style.quiet, submit_verbose, submit.mode, submit.style);
    return run_submit(submit, std::cout, std::cerr);
  }
  if (jobs->parsed()) return run_jobs(*c, list, std::cout, std::cerr);
  if (watch->parsed()) return run_watch(*c, watched, g_stop, std::cout, std::cerr);
  if (ops->parsed()) return run_ops(*c, std::cout, std::cerr);
  if (ping->parsed()) return run_ping(*c, std::cout, std::cerr);
  auto job_list = job_ids(ids, std::cin);
  if (!job_list.ok()) {
    std::cerr << "imgq: error: " << job_list.status().message() << "\n";
    return cli::kExitUsage;
  }
  if (status->parsed()) return run_status(*c, *job_list, std::cout, std::cerr);
  if (cancel->parsed()) return run_cancel(*c, *job_list, std::cout, std::cerr);
  return run_fetch(*c, *job_list, fetch_out, fetch_overwrite, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  imgq::keep_freed_image_memory();
  return cli::guarded("imgq", [&] { return run(argc, argv); });
}
