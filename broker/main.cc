// imgq-broker: queues image jobs from clients and dispatches them to MPI
// worker groups. See schemas/PROTOCOL.md and docs/operating.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <prometheus/exposer.h>

#include "imgq/broker/salvage.h"
#include "imgq/broker/server.h"
#include "imgq/broker/sqlite_journal.h"
#include "imgq/common/cli.h"
#include "imgq/common/curve.h"
#include "imgq/common/logging.h"
#include "imgq/common/memory.h"
#include "imgq/common/version.h"
#include "imgq/monitoring/broker_metrics.h"
#include "imgq/schemas/messages.h"

namespace {

namespace cli = imgq::cli;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

// Everything the command line sets, before it is checked.
struct Settings {
  imgq::broker::ServerOptions options;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string metrics = "127.0.0.1:9464";
  int64_t result_ttl_s = 0;
  double job_timeout_s = 0;
  int64_t heartbeat_ms = 0;
  int64_t commit_gap_us = 0;
  std::string curve_key, allow_clients, allow_workers, allow_operators;
  bool memory_only = false;
  std::string salvage;
  bool man = false;
};

std::string default_data_dir() {
  // Durable by default: the XDG state folder of whoever runs the broker.
  const char* state_home = std::getenv("XDG_STATE_HOME");
  const char* home = std::getenv("HOME");
  return state_home != nullptr && *state_home != '\0'
             ? std::string(state_home) + "/imgq/broker"
             : std::string(home != nullptr ? home : ".") + "/.local/state/imgq/broker";
}

void add_options(CLI::App& app, Settings& s) {
  auto& o = s.options;
  auto& config = o.config;
  app.add_option("--clients", o.clients, "where clients connect: HOST:PORT (* = every interface)")
      ->type_name("HOST:PORT")->capture_default_str();
  app.add_option("--workers", o.workers, "where worker groups connect")->type_name("HOST:PORT")->capture_default_str();
  app.add_option("--progress", o.progress, "where progress events are published")
      ->type_name("HOST:PORT")->capture_default_str();
  app.add_option("--data-dir", o.data_dir,
                 "the journal's folder: accepted jobs and unacknowledged results survive any stop or crash")
      ->type_name("DIR")->capture_default_str();
  app.add_flag("--memory-only", s.memory_only,
               "no journal: queued jobs and kept results live in memory and are lost when the broker stops");
  app.add_option("--max-queued", config.max_queued, "most jobs waiting; more are refused (queue full)")
      ->type_name("N")->capture_default_str();
  app.add_option("--max-queued-per-client", config.max_queued_per_client,
                 "the least share of unfinished jobs one client (its CURVE key, else its connection) may hold: "
                 "its share is --max-queued / (clients holding jobs + 1), never less than this, so that one that "
                 "floods cannot lock others out; 0 = a tenth of --max-queued")
      ->type_name("N")->capture_default_str();
  app.add_option("--max-queued-bytes", config.max_queued_bytes, "most bytes of waiting images")
      ->type_name("BYTES")->capture_default_str();
  app.add_option("--max-image-bytes", config.max_image_bytes, "largest encoded image accepted")
      ->type_name("BYTES")->capture_default_str();
  app.add_option("--max-pixels", config.max_pixels,
                 "largest image accepted, in pixels, read from its header before any decode; 0 = no limit")
      ->type_name("N")->capture_default_str();
  app.add_option("--max-message-bytes", o.max_message_bytes, "largest message either socket takes")
      ->type_name("BYTES")->capture_default_str();
  app.add_option("--max-kept-bytes", config.max_kept_bytes,
                 "most bytes of results waiting for acknowledgement; past it submits wait until clients fetch "
                 "theirs")
      ->type_name("BYTES")->capture_default_str();
  app.add_option("--max-kept-bytes-per-client", config.max_kept_bytes_per_client,
                 "the least share of those bytes one client may hold before its submits wait: its share is "
                 "--max-kept-bytes / (clients holding jobs or results + 1), never less than this; 0 = a tenth of "
                 "--max-kept-bytes")
      ->type_name("BYTES")->capture_default_str();
  app.add_option("--job-timeout", s.job_timeout_s,
                 "seconds one attempt of a job may run before it fails (deadline_exceeded); a submit may ask "
                 "for another; 0 = none")
      ->type_name("S")->capture_default_str()->check(cli::range(0, 1e7));
  app.add_option("--result-ttl", s.result_ttl_s,
                 "seconds a result is kept for its client to fetch and acknowledge (then its key is remembered "
                 "as long again)")
      ->type_name("S")->capture_default_str()->check(cli::range(1, 1e8));
  app.add_option("--max-attempts", config.max_attempts, "dispatches of one job before it fails")
      ->type_name("N")->capture_default_str()->check(cli::range(1, 100));
  app.add_option("--heartbeat-ms", s.heartbeat_ms, "heartbeat interval with worker groups (liveness is 5 of them)")
      ->type_name("MS")->capture_default_str()->check(cli::range(10, 60'000));
  app.add_option("--commit-gap-us", s.commit_gap_us,
                 "under load, the least time between two journal commits (each takes more submits)")
      ->type_name("US")->capture_default_str()->check(cli::range(0, 100'000));
  app.add_option("--metrics", s.metrics,
                 "HOST:PORT for Prometheus' /metrics; 0.0.0.0:PORT to serve other hosts (keep it private); "
                 "\"\" = off")
      ->type_name("HOST:PORT")->capture_default_str();
  app.add_option("--curve-key", s.curve_key,
                 "turn CURVE on with this secret key file (imgq keygen); needs --allow-clients and --allow-workers")
      ->type_name("FILE");
  app.add_option("--allow-clients", s.allow_clients, "file of client public keys allowed in (CURVE)")
      ->type_name("FILE");
  app.add_option("--allow-workers", s.allow_workers, "file of worker group public keys allowed in (CURVE)")
      ->type_name("FILE");
  app.add_option("--allow-operators", s.allow_operators,
                 "file of client public keys that may list, read and cancel every client's jobs (CURVE; they are "
                 "allowed in too)")
      ->type_name("FILE");
  app.add_option("--log-level", s.log_level, "trace, debug (every job's state changes), info, warn, error or off")
      ->type_name("LEVEL")->capture_default_str()->check(CLI::IsMember(cli::log_levels()).description(""));
  app.add_option("--log-format", s.log_format, "text, or json: one object a line for a log pipeline")
      ->type_name("FORMAT")->capture_default_str()->check(CLI::IsMember(cli::log_formats()).description(""));
  app.add_option("--salvage", s.salvage,
                 "take back into --data-dir what can be read from a damaged journal's folder (the damaged-TIME folder "
                 "the broker moved it to, or a copy), then exit; no broker may run on --data-dir meanwhile")
      ->type_name("DIR")->check(CLI::ExistingDirectory.description(""));
  app.add_flag("--help-man", s.man, "print the man page")->group("");
  app.footer(
      "Examples:\n"
      "  imgq-broker                                    # ports 5555-5557 on every interface, journal in ~/.local/state\n"
      "  imgq-broker --clients 127.0.0.1:6555 --workers 127.0.0.1:6556 --progress 127.0.0.1:6557\n"
      "  imgq-broker --memory-only --metrics 0.0.0.0:9464\n"
      "  imgq-broker --salvage ~/.local/state/imgq/broker/damaged-20261203T190425Z  # after a damaged journal\n"
      "Then start a worker group: mpiexec -n 4 imgq-worker --broker HOST:5556\n" +
      cli::exit_status_text() + "\n");
}

// Checks what parsing could not: endpoints, the metrics address, CURVE files.
imgq::Status check(Settings& s) {
  auto& o = s.options;
  for (auto [value, flag] : {std::pair{&o.clients, "--clients"}, std::pair{&o.workers, "--workers"},
                             std::pair{&o.progress, "--progress"}}) {
    auto endpoint = cli::parse_endpoint(*value, cli::EndpointUse::kBind, flag);
    if (!endpoint.ok()) return endpoint.status();
    *value = *endpoint;
  }
  auto metrics = cli::parse_listen_address(s.metrics, "--metrics");
  if (!metrics.ok()) return metrics.status();
  s.metrics = *metrics;
  if (s.memory_only) o.data_dir.clear();
  o.config.result_ttl = imgq::broker::Duration{s.result_ttl_s * 1000};
  o.config.job_timeout = imgq::broker::Duration{static_cast<int64_t>(s.job_timeout_s * 1000)};
  o.config.heartbeat_interval = imgq::broker::Duration{s.heartbeat_ms};
  o.config.commit.gap = std::chrono::microseconds{s.commit_gap_us};
  const bool curve = !s.curve_key.empty() || !s.allow_clients.empty() || !s.allow_workers.empty();
  if (!curve) {
    if (!s.allow_operators.empty()) {
      return imgq::Status::InvalidArgument("--allow-operators needs CURVE (--curve-key, --allow-clients, "
                                           "--allow-workers): without it every client sees every job");
    }
    return imgq::Status::Ok();
  }
  if (s.curve_key.empty() || s.allow_clients.empty() || s.allow_workers.empty()) {
    return imgq::Status::InvalidArgument("CURVE needs --curve-key, --allow-clients and --allow-workers together");
  }
  auto pair = imgq::read_key_pair(s.curve_key);
  if (!pair.ok()) return pair.status();
  auto clients = imgq::read_allow_list(s.allow_clients);
  if (!clients.ok()) return clients.status();
  auto workers = imgq::read_allow_list(s.allow_workers);
  if (!workers.ok()) return workers.status();
  o.curve_secret = pair->secret_key;
  o.allow_clients = *clients;
  o.allow_workers = *workers;
  if (!s.allow_operators.empty()) {
    auto operators = imgq::read_allow_list(s.allow_operators);
    if (!operators.ok()) return operators.status();
    o.config.operator_keys = *operators;
    o.allow_clients.insert(operators->begin(), operators->end());
  }
  return imgq::Status::Ok();
}

// --salvage: what can be read from a damaged journal's folder, into the
// journal of --data-dir; exit 1 when something could not be taken back.
int salvage(const Settings& s) {
  const auto& dir = s.options.data_dir;
  if (dir.empty()) {
    std::cerr << "imgq-broker: error: --salvage needs a journal to salvage into: give --data-dir, not --memory-only\n";
    return cli::kExitUsage;
  }
  imgq::broker::Recovered recovered;
  auto journal = imgq::broker::SqliteJournal::open(dir, &recovered);
  if (!journal.ok()) {
    std::cerr << "imgq-broker: error: " << journal.status().message() << "\n";
    return cli::kExitFailed;
  }
  for (const std::string& problem : recovered.problems) std::cerr << "imgq-broker: journal: " << problem << "\n";
  auto report = imgq::broker::salvage(s.salvage, **journal, recovered.jobs);
  if (!report.ok()) {
    std::cerr << "imgq-broker: error: " << report.status().message() << "\n";
    return cli::kExitFailed;
  }
  std::cout << report->text(s.salvage, dir);
  std::cout << "next: start imgq-broker with --data-dir " << dir
            << ": it runs the jobs taken back and delivers their results\n";
  return report->lost.empty() && report->unreadable == 0 && report->unnamed_files == 0 ? cli::kExitOk
                                                                                        : cli::kExitFailed;
}

// Whether something listens on TCP HOST:PORT already (to name the cause when
// the metrics server cannot start; it only says "null context").
bool port_taken(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string host = address.substr(0, colon);
  const int port = std::atoi(address.substr(colon + 1).c_str());
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    ::close(fd);
    return false;
  }
  const bool taken = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno == EADDRINUSE;
  ::close(fd);
  return taken;
}

imgq::Result<std::unique_ptr<prometheus::Exposer>> start_metrics(const std::string& address,
                                                                 imgq::monitoring::BrokerMetrics& metrics) {
  if (address.empty()) return std::unique_ptr<prometheus::Exposer>();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return imgq::Status::Unavailable(
        "cannot serve metrics on " + address + ": " +
        (port_taken(address) ? std::string("the port is in use (another imgq-broker?); choose another with "
                                           "--metrics HOST:PORT, or --metrics \"\" for none")
                             : std::string(e.what()) + " (is " + address.substr(0, address.rfind(':')) +
                                   " an address of this host?)"));
  }
  exposer->RegisterCollectable(metrics.registry());
  return exposer;
}

int run(int argc, char** argv) {
  Settings s;
  s.options.data_dir = default_data_dir();
  s.result_ttl_s = s.options.config.result_ttl.count() / 1000;
  s.job_timeout_s = static_cast<double>(s.options.config.job_timeout.count()) / 1000;
  s.heartbeat_ms = s.options.config.heartbeat_interval.count();
  s.commit_gap_us = s.options.config.commit.gap.count();
  CLI::App app{"imgq-broker: queues image jobs from clients and dispatches them to MPI worker groups",
               "imgq-broker"};
  add_options(app, s);
  app.set_version_flag("--version", imgq::version_line("imgq-broker", imgq::proto::kVersion));
  if (auto code = cli::parse(app, argc, argv)) return *code;
  if (s.man) {
    std::cout << cli::man_page(app, imgq::version());
    return cli::kExitOk;
  }
  auto fail = [](int code, const imgq::Status& status) {
    std::cerr << "imgq-broker: error: " << status.message() << "\n";
    return code;
  };
  if (auto checked = check(s); !checked.ok()) return fail(cli::kExitUsage, checked);
  if (!s.salvage.empty()) return salvage(s);
  imgq::init_logging("broker", s.log_level, s.log_format);

  imgq::monitoring::BrokerMetrics metrics{std::string(imgq::version())};
  auto exposer = start_metrics(s.metrics, metrics);
  if (!exposer.ok()) return fail(cli::kExitFailed, exposer.status());
  if (*exposer) s.options.metrics = &metrics;

  auto context = std::make_unique<zmq::context_t>();
  auto owned_server = std::make_unique<imgq::broker::Server>(*context, s.options);
  imgq::broker::Server& server = *owned_server;
  if (auto status = server.bind(); !status.ok()) return fail(cli::kExitFailed, status);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const auto& o = s.options;
  spdlog::info("CURVE {}", o.curve_secret.empty()
                               ? std::string("off: anyone who reaches these ports may submit, see and serve jobs")
                               : "on: " + std::to_string(o.allow_clients.size()) + " client key(s) (" +
                                     std::to_string(o.config.operator_keys.size()) + " operator), " +
                                     std::to_string(o.allow_workers.size()) + " worker key(s) allowed");
  const std::string metrics_url =
      *exposer ? "http://" + s.metrics.substr(0, s.metrics.rfind(':')) + ":" +
                     std::to_string((*exposer)->GetListeningPorts().front()) + "/metrics"
               : std::string("off");
  imgq::log_event(spdlog::level::info,
                  "listening: clients " + server.clients_endpoint() + ", workers " + server.workers_endpoint() +
                      ", progress " + server.progress_endpoint() + ", metrics " + metrics_url,
                  {imgq::field("event", "listening"), imgq::field("clients", server.clients_endpoint()),
                   imgq::field("workers", server.workers_endpoint()),
                   imgq::field("progress", server.progress_endpoint()), imgq::field("metrics", metrics_url)});
  // On SIGTERM: refuses submits, commits the journal, tells the groups.
  const imgq::Status ended = server.run(g_stop);
  if (!ended.ok()) {
    imgq::log_event(spdlog::level::critical, "journal: " + ended.message(), {imgq::field("event", "journal_failed")});
  }
  const auto& c = server.core().counters();
  spdlog::info("stopping: {} submitted, {} succeeded, {} failed, {} cancelled, {} retried", c.submitted,
               c.succeeded, c.failed, c.cancelled, c.retried);
  // Sockets and journal closed, the groups' goodbyes flushed (their linger)...
  owned_server.reset();
  context.reset();
  // ...nothing is left to lose. The metrics web server would take a second
  // more to stop while holding its port, so a broker started right after
  // could not bind it: end here instead.
  spdlog::shutdown();
  std::fflush(nullptr);
  std::_Exit(ended.ok() ? cli::kExitOk : cli::kExitFailed);
}

}  // namespace

int main(int argc, char** argv) {
  imgq::keep_freed_image_memory();
  return cli::guarded("imgq-broker", [&] { return run(argc, argv); });
}
