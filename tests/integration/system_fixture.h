// The fixture of the end-to-end tests: the whole system on loopback with
// ephemeral ports: a broker (in this process, so its counters can be read),
// worker groups as real `mpiexec -n 2 imgq-worker` jobs and clients as real
// `imgq` processes.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <signal.h>
#include <unistd.h>

#include "common/ports.h"
#include "common/subprocess.h"
#include "common/test_images.h"
#include "imgq/broker/server.h"
#include "imgq/client_cli/client.h"
#include "imgq/monitoring/broker_metrics.h"
#include "imgq/mpi_workers/ops.h"

#include <prometheus/exposer.h>
#include <fstream>

namespace imgq {

namespace fs = std::filesystem;
using imgq::testing::eventually;
using imgq::testing::free_port;
using imgq::testing::Subprocess;
using std::chrono::milliseconds;
using std::chrono::seconds;

inline const std::string kBin = IMGQ_BIN_DIR;
inline const std::string kSource = IMGQ_SOURCE_DIR;

using imgq::testing::run_shell;
inline const auto& shell = run_shell;

// `args` as one shell command line (each word quoted), stderr included.
inline std::string command_line(const std::vector<std::string>& args) {
  std::string cmd;
  for (const auto& a : args) cmd += "'" + a + "' ";
  return cmd + "2>&1";
}

// The value of a sample line "name{labels} value" in Prometheus text.
inline double sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// One line of `imgq submit --json`, as flat fields.
struct JsonLine {
  std::map<std::string, std::string> fields;
  const std::string& operator[](const std::string& k) const {
    static const std::string empty;
    auto it = fields.find(k);
    return it == fields.end() ? empty : it->second;
  }
};

inline std::vector<JsonLine> parse_json_lines(const std::string& text) {
  static const std::regex field(R"re("(\w+)":("((?:[^"\\]|\\.)*)"|-?[0-9.e+-]+|true|false))re");
  std::vector<JsonLine> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    JsonLine j;
    for (auto it = std::sregex_iterator(line.begin(), line.end(), field); it != std::sregex_iterator(); ++it) {
      j.fields[(*it)[1]] = (*it)[3].matched ? (*it)[3].str() : (*it)[2].str();
    }
    lines.push_back(std::move(j));
  }
  return lines;
}

class System : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("imgq_system_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    broker::ServerOptions options;
    options.clients = options.workers = options.progress = "tcp://127.0.0.1:*";
    configure(options);
    start_broker(options);
  }

  // Subclasses change the broker's options here (heartbeats, CURVE).
  virtual void configure(broker::ServerOptions& options) {
    options.config.heartbeat_interval = milliseconds(heartbeat_ms_);
  }

  void start_broker(broker::ServerOptions options) {
    stop_ = false;
    metrics_ = std::make_unique<monitoring::BrokerMetrics>("test");
    exposer_.reset();
    exposer_ = std::make_unique<prometheus::Exposer>("127.0.0.1:0");
    exposer_->RegisterCollectable(metrics_->registry());
    options.metrics = metrics_.get();
    // A restart rebinds the old ports, which ZeroMQ frees asynchronously.
    Status bound;
    ASSERT_TRUE(eventually(
        [&] {
          server_ = std::make_unique<broker::Server>(context_, options);
          bound = server_->bind();
          return bound.ok();
        },
        seconds(10)))
        << bound.ToString();
    thread_ = std::thread([this] { (void)server_->run(stop_); });
  }

  // A new broker on the same endpoints, as after a crash and a restart.
  void restart_broker() {
    broker::ServerOptions same;
    configure(same);
    same.clients = server_->clients_endpoint();
    same.workers = server_->workers_endpoint();
    same.progress = server_->progress_endpoint();
    stop_broker();
    server_.reset();
    ASSERT_NO_FATAL_FAILURE(start_broker(same));
  }

  void TearDown() override {
    groups_.clear();  // SIGKILLs what is left
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    server_.reset();
    exposer_.reset();
    fs::remove_all(root_);
  }

  // `env`: NAME=VALUE settings for every rank (e.g. IMGQ_FAULT); `extra`:
  // more imgq-worker flags.
  void start_group(const std::string& name, const std::vector<std::string>& env = {},
                   const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {"env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {IMGQ_MPIEXEC, "-n", "2", kBin + "/imgq-worker", "--broker", server_->workers_endpoint(),
                             "--name", name, "--heartbeat-ms", std::to_string(heartbeat_ms_),
                             // Tests read each job's line; small jobs log theirs at debug.
                             "--log-level", "debug"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    groups_[name] = std::make_unique<Subprocess>(argv, (root_ / (name + ".log")).string());
  }

  // Asks the broker, as a client would, how many groups it knows.
  uint32_t connected_groups() {
    zmq::context_t context;
    client::BrokerClient c(context, server_->clients_endpoint());
    proto::Ping ping;
    ping.req = 1;
    auto reply = c.call(proto::encode(ping), 1, milliseconds(2000));
    if (!reply.ok()) return 0;
    auto pong = client::decode_reply<proto::Pong>(*reply);
    return pong.ok() ? pong->groups : 0;
  }

  std::vector<std::string> submit_args(const std::vector<std::string>& ops, const fs::path& out,
                                       const std::vector<std::string>& paths) {
    std::vector<std::string> args = {kBin + "/imgq", "submit", "--json", "--broker", server_->clients_endpoint(),
                                     "--progress", server_->progress_endpoint(), "-o", out.string()};
    for (const std::string& op : ops) args.insert(args.end(), {"--op", op});
    args.insert(args.end(), paths.begin(), paths.end());
    return args;
  }

  // Stops the broker thread so its counters can be read safely.
  monitoring::BrokerMetrics::Counts stop_broker() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return server_->core().counters();
  }

  std::string metrics_url() const {
    return "http://127.0.0.1:" + std::to_string(exposer_->GetListeningPorts().front()) + "/metrics";
  }

  int heartbeat_ms_ = 1000;
  fs::path root_;
  zmq::context_t context_;
  std::unique_ptr<monitoring::BrokerMetrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<broker::Server> server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<std::string, std::unique_ptr<Subprocess>> groups_;
};

// The endpoints an imgq-broker process logs once bound ("clients tcp://...,
// workers tcp://..., progress tcp://..."), read from its output; empty
// (and a test failure) if it exits or does not say within 30 s.
struct BoundEndpoints {
  std::string clients, workers, progress;
};
inline BoundEndpoints await_bound_endpoints(Subprocess& broker) {
  static const std::regex bound(R"(clients (tcp://[0-9.:]+), workers (tcp://[0-9.:]+), progress (tcp://[0-9.:]+))");
  std::smatch m;
  std::string log;
  const bool said = eventually([&] {
    log = broker.output();
    return std::regex_search(log, m, bound) || broker.wait(milliseconds(0)).has_value();
  }, seconds(30));
  if (!said || !std::regex_search(log, m, bound)) {
    ADD_FAILURE() << "the broker did not say where it listens:\n" << log;
    return {};
  }
  return {m[1], m[2], m[3]};
}

// The whole-image OpenCV result of `ops` on the image file `source`: what
// every distributed result is compared with.
inline cv::Mat reference_result(const std::vector<std::string>& ops, const fs::path& source) {
  auto result = workers::apply_pipeline(*schemas::parse_pipeline(ops), cv::imread(source.string(), cv::IMREAD_UNCHANGED));
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ok() ? *result : cv::Mat();
}

// Turns the turnstile of IMGQ_FAULT=hold:...:GATE (mpi_workers/faults.h):
// lets `n` more holds pass on every rank of the group.
inline void release_holds(const fs::path& gate, int n) {
  std::ofstream(gate, std::ios::app) << std::string(static_cast<size_t>(n), '.');
}
// Opens it for good.
inline void open_gate(const fs::path& gate) { release_holds(gate, 1 << 20); }

// Checks each job's events only move forward. `attempts` counts dispatches so
// far, so a queued job waits for attempt attempts+1: a requeue moves forward.
inline void ExpectEventsInOrder(const std::vector<JsonLine>& lines) {
  static const std::map<std::string, int> rank = {{"queued", 0}, {"running", 1}, {"done", 2}, {"failed", 2}, {"cancelled", 2}};
  std::map<std::string, std::tuple<int, int, int>> last;
  for (const JsonLine& l : lines) {
    if (l["event"] != "progress") continue;
    const int attempt = std::stoi(l["attempts"]) + (l["state"] == "queued" ? 1 : 0);
    const auto key = std::make_tuple(attempt, rank.at(l["state"]), std::stoi(l["done"]));
    auto it = last.find(l["job"]);
    if (it != last.end()) {
      EXPECT_LE(it->second, key) << "job " << l["job"] << " went back to " << l["state"];
    }
    last[l["job"]] = key;
  }
}

}  // namespace imgq
