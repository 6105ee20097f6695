// imgq-broker: queues image jobs from clients and dispatches them to MPI
// worker groups. See schemas/PROTOCOL.md.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <prometheus/exposer.h>

#include "imgq/broker/server.h"
#include "imgq/monitoring/broker_metrics.h"
#include "imgq/common/logging.h"
#include "imgq/common/memory.h"
#include "imgq/common/version.h"
#include "imgq/schemas/messages.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  imgq::keep_freed_image_memory();
  // NOLINTNEXTLINE: main.cc only parses flags and wires the parts together.
  imgq::broker::ServerOptions options;
  auto& config = options.config;
  std::string log_level = "info";
  std::string metrics_address = "0.0.0.0:9464";
  int64_t result_ttl_s = config.result_ttl.count() / 1000;
  double job_timeout_s = static_cast<double>(config.job_timeout.count()) / 1000;
  int64_t heartbeat_ms = config.heartbeat_interval.count();
  // 2 ms: on 2 cores with 8 clients of tiny jobs, 96-103 us of broker CPU a
  // job against 115 at 0, latency unchanged; 5 ms cut the CPU further but
  // held results back (bench/README.md).
  int64_t commit_gap_us = 2000;
  std::string curve_key, allow_clients, allow_workers;
  // Durable by default: the XDG state folder of whoever runs the broker.
  const char* state_home = std::getenv("XDG_STATE_HOME");
  const char* home = std::getenv("HOME");
  options.data_dir = state_home != nullptr && *state_home != '\0'
                         ? std::string(state_home) + "/imgq/broker"
                         : std::string(home != nullptr ? home : ".") + "/.local/state/imgq/broker";
  bool memory_only = false;
  CLI::App app{"imgq-broker: queues image jobs from clients and dispatches them to MPI worker groups"};
  app.add_option("--clients", options.clients, "ROUTER endpoint for clients")->capture_default_str();
  app.add_option("--workers", options.workers, "ROUTER endpoint for worker group leaders")->capture_default_str();
  app.add_option("--progress", options.progress, "PUB endpoint for progress events")->capture_default_str();
  app.add_option("--max-queued", config.max_queued, "most jobs waiting; more are refused (queue full)")
      ->capture_default_str();
  app.add_option("--max-queued-bytes", config.max_queued_bytes, "most bytes of waiting images")->capture_default_str();
  app.add_option("--max-image-bytes", config.max_image_bytes, "largest encoded image accepted")->capture_default_str();
  app.add_option("--max-pixels", config.max_pixels,
                 "largest image accepted, in pixels, read from its header before any decode; 0 = no limit")
      ->capture_default_str();
  app.add_option("--job-timeout", job_timeout_s,
                 "seconds one attempt of a job may run before it fails (deadline_exceeded); a submit may "
                 "ask for another; 0 = none")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval with worker groups (liveness is 5 of them)")
      ->capture_default_str()
      ->check(CLI::Range(10, 60'000));
  app.add_option("--max-message-bytes", options.max_message_bytes, "ZMQ_MAXMSGSIZE on both ROUTER sockets")
      ->capture_default_str();
  app.add_option("--commit-gap-us", commit_gap_us,
                 "under load, the least time between two journal commits (each takes more submits)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000}))
      ->capture_default_str();
  app.add_option("--max-attempts", config.max_attempts, "dispatches of one job before it fails")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--result-ttl", result_ttl_s,
                 "seconds a result is kept for its client to fetch and acknowledge (then its key is remembered "
                 "as long again)")
      ->capture_default_str();
  app.add_option("--max-kept-bytes", config.max_kept_bytes,
                 "most bytes of results waiting for acknowledgement; past it submits are refused until clients "
                 "fetch theirs")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir,
                 "the journal's folder: accepted jobs and unacknowledged results survive any stop or crash")
      ->capture_default_str();
  app.add_flag("--memory-only", memory_only,
               "no journal: queued jobs and kept results live in memory and are lost when the broker stops");
  app.add_option("--metrics", metrics_address,
                 "address:port for Prometheus' /metrics (keep it on a private interface); empty = off")
      ->capture_default_str();
  app.add_option("--curve-key", curve_key,
                 "turn CURVE on with this secret key file (imgq keygen); needs --allow-clients and --allow-workers");
  app.add_option("--allow-clients", allow_clients, "file of client public keys allowed in (CURVE)");
  app.add_option("--allow-workers", allow_workers, "file of worker group public keys allowed in (CURVE)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  app.set_version_flag("--version", imgq::version_line("imgq-broker", imgq::proto::kVersion));
  CLI11_PARSE(app, argc, argv);
  if (memory_only) options.data_dir.clear();
  config.result_ttl = imgq::broker::Duration{result_ttl_s * 1000};
  config.job_timeout = imgq::broker::Duration{static_cast<int64_t>(job_timeout_s * 1000)};
  config.heartbeat_interval = imgq::broker::Duration{heartbeat_ms};
  config.commit_gap = std::chrono::microseconds{commit_gap_us};
  imgq::init_logging("broker", log_level);
  if (!curve_key.empty() || !allow_clients.empty() || !allow_workers.empty()) {
    auto fail = [](const imgq::Status& status) {
      std::cerr << "imgq-broker: error: " << status.message() << "\n";
      return 1;
    };
    if (curve_key.empty() || allow_clients.empty() || allow_workers.empty()) {
      return fail(imgq::Status::InvalidArgument(
          "CURVE needs --curve-key, --allow-clients and --allow-workers together"));
    }
    auto pair = imgq::read_key_pair(curve_key);
    if (!pair.ok()) return fail(pair.status());
    auto clients = imgq::read_allow_list(allow_clients);
    if (!clients.ok()) return fail(clients.status());
    auto workers = imgq::read_allow_list(allow_workers);
    if (!workers.ok()) return fail(workers.status());
    options.curve_secret = pair->secret_key;
    options.allow_clients = *clients;
    options.allow_workers = *workers;
  }

  imgq::monitoring::BrokerMetrics metrics(std::string(imgq::version()));
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!metrics_address.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_address);
    } catch (const std::exception& e) {
      std::cerr << "imgq-broker: error: cannot serve metrics on " << metrics_address << ": " << e.what() << "\n";
      return 1;
    }
    exposer->RegisterCollectable(metrics.registry());
    options.metrics = &metrics;
  }

  auto context = std::make_unique<zmq::context_t>();
  auto owned_server = std::make_unique<imgq::broker::Server>(*context, options);
  imgq::broker::Server& server = *owned_server;
  if (auto status = server.bind(); !status.ok()) {
    std::cerr << "imgq-broker: error: " << status.message() << "\n";
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  spdlog::info("CURVE {}", options.curve_secret.empty()
                               ? std::string("off: anyone who reaches these ports may submit and serve jobs")
                               : "on: " + std::to_string(options.allow_clients.size()) + " client key(s), " +
                                     std::to_string(options.allow_workers.size()) + " worker key(s) allowed");
  spdlog::info("clients {}, workers {}, progress {}, metrics {}", server.clients_endpoint(),
               server.workers_endpoint(), server.progress_endpoint(),
               exposer ? "http://" + metrics_address.substr(0, metrics_address.rfind(':')) + ":" +
                             std::to_string(exposer->GetListeningPorts().front()) + "/metrics"
                       : std::string("off"));
  server.run(g_stop);  // on SIGTERM: refuses submits, commits the journal, tells the groups
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
  std::_Exit(0);
}
