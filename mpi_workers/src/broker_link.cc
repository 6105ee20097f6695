#include "imgq/mpi_workers/broker_link.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <optional>

#include <spdlog/spdlog.h>

#include "imgq/common/connection_monitor.h"
#include "imgq/common/logging.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/schemas/codec.h"

namespace imgq::workers {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string next_pipe_name() {
  static std::atomic<int> counter{0};
  return "inproc://imgq-broker-link-" + std::to_string(counter++);
}

}  // namespace

BrokerLink::BrokerLink(zmq::context_t& context, LinkOptions options)
    : context_(context),
      options_(std::move(options)),
      pipe_endpoint_(next_pipe_name()),
      pipe_(context, zmq::socket_type::pair) {
  pipe_.bind(pipe_endpoint_);
  thread_ = std::thread([this] { run(); });
}

bool BrokerLink::aborted(const std::string& job) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::find(aborted_.begin(), aborted_.end(), job) != aborted_.end();
}

BrokerLink::~BrokerLink() {
  if (thread_.joinable()) thread_.join();
}

void BrokerLink::run() {
  // SIGTERM and SIGINT are the main thread's to handle.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const auto liveness = options_.heartbeat * options_.liveness;
  auto backoff = std::chrono::milliseconds(proto::kReconnectBackoff);
  std::optional<zmq::socket_t> dealer;
  std::optional<ConnectionMonitor> monitor;
  SteadyClock::time_point last_heard, last_sent;
  bool connected = false;  // the broker has answered since the last connect
  // Jobs and results pass through as they came, images never copied here.
  Messages parts;
  auto header_of = [&parts] { return proto::decode_header({parts[0].data<char>(), parts[0].size()}); };

  auto connect = [&] {
    monitor.reset();  // before its socket (connection_monitor.h)
    dealer.emplace(context_, zmq::socket_type::dealer);
    dealer->set(zmq::sockopt::linger, 2000);  // let a final `bye` or `done` out
    apply_curve_client(*dealer, options_.curve);
    monitor.emplace(context_, *dealer);
    dealer->connect(options_.broker);
    send_frames(*dealer, {proto::encode(options_.hello)});
    last_heard = last_sent = SteadyClock::now();
    connected = false;
    log_event(spdlog::level::info,
              "connecting to broker " + options_.broker + " as group \"" + options_.hello.name + "\" (" +
                  std::to_string(options_.hello.ranks) + " ranks)",
              {field("event", "connecting"), field("broker", options_.broker), field("group", options_.hello.name),
               field("ranks", options_.hello.ranks)});
  };
  connect();

  while (true) {
    zmq::pollitem_t items[] = {{dealer->handle(), 0, ZMQ_POLLIN, 0}, {pipe_.handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 2, options_.heartbeat / 4);
    const auto now = SteadyClock::now();

    if (items[0].revents & ZMQ_POLLIN) {
      recv_messages(*dealer, parts, 3, /*dontwait=*/false);
      last_heard = now;
      backoff = std::chrono::milliseconds(proto::kReconnectBackoff);
      if (!connected) {
        connected = true;
        log_event(spdlog::level::info, "connected to broker " + options_.broker,
                  {field("event", "connected"), field("broker", options_.broker),
                   field("group", options_.hello.name)});
      }
      auto header = header_of();
      if (!header.ok()) {
        spdlog::warn("malformed message from the broker: {}", header.status().message());
      } else if (header->type() == proto::JobRequest::kType) {
        send_messages(pipe_, parts);
      } else if (header->type() == proto::Abort::kType) {
        auto abort = header->as<proto::Abort>({"job"});
        if (abort.ok()) {
          spdlog::info("the broker stops job {}: {}", abort->job, abort->reason);
          // A group holds at most a few jobs; the last 256 aborts cover them.
          std::lock_guard<std::mutex> lock(mutex_);
          aborted_.push_back(abort->job);
          if (aborted_.size() > 256) aborted_.pop_front();
        }
      } else if (header->type() == proto::Disconnect::kType) {
        spdlog::warn("the broker does not know this group; saying hello again");
        connect();
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      recv_messages(pipe_, parts, 3, /*dontwait=*/false);
      auto header = header_of();
      if (header.ok() && header->type() == proto::Bye::kType) {
        send_frames(*dealer, {proto::encode(proto::Bye{})});
        return;
      }
      send_messages(*dealer, parts);
      last_sent = now;
    }
    if (auto failure = monitor->refused()) spdlog::error("{}", failure->message());  // and drains the events
    if (now - last_heard > liveness) {
      monitor->poll();
      const auto silent_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard).count();
      const std::string why = connected ? "lost the broker " + options_.broker + ": no word for " +
                                              std::to_string(silent_ms) + " ms"
                                        : "no answer from broker " + options_.broker + " within " +
                                              std::to_string(silent_ms) + " ms: " + monitor->diagnosis();
      log_event(spdlog::level::warn, why + "; reconnecting in " + std::to_string(backoff.count()) + " ms",
                {field("event", connected ? "lost" : "unreachable"), field("broker", options_.broker),
                 field("group", options_.hello.name), field("silent_ms", static_cast<long long>(silent_ms))});
      monitor.reset();  // before its socket (connection_monitor.h)
      dealer.reset();
      // Still listen to the main thread while waiting, so a shutdown is quick.
      zmq::pollitem_t pipe_item[] = {{pipe_.handle(), 0, ZMQ_POLLIN, 0}};
      if (poll_sockets(pipe_item, 1, backoff) > 0) {
        recv_messages(pipe_, parts, 3, /*dontwait=*/false);
        auto header = header_of();
        if (header.ok() && header->type() == proto::Bye::kType) return;
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
      connect();
    } else if (now - last_sent >= options_.heartbeat) {
      send_frames(*dealer, {proto::encode(proto::Heartbeat{})});
      last_sent = now;
    }
  }
}

}  // namespace imgq::workers
