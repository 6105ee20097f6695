#include "imgq/mpi_workers/broker_link.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <optional>

#include <spdlog/spdlog.h>

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
  std::optional<HandshakeMonitor> monitor;
  SteadyClock::time_point last_heard, last_sent;
  // Jobs and results pass through as they came, images never copied here.
  Messages parts;
  auto header_of = [&parts] { return proto::decode_header({parts[0].data<char>(), parts[0].size()}); };

  auto connect = [&] {
    monitor.reset();
    dealer.emplace(context_, zmq::socket_type::dealer);
    dealer->set(zmq::sockopt::linger, 2000);  // let a final `bye` or `done` out
    apply_curve_client(*dealer, options_.curve);
    if (options_.curve.enabled()) monitor.emplace(context_, *dealer);
    dealer->connect(options_.broker);
    send_frames(*dealer, {proto::encode(options_.hello)});
    last_heard = last_sent = SteadyClock::now();
    spdlog::info("connecting to broker {} as group \"{}\" ({} ranks)", options_.broker, options_.hello.name,
                 options_.hello.ranks);
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
    if (monitor) {
      if (auto failure = monitor->failure()) spdlog::error("{}", failure->message());
    }
    if (now - last_heard > liveness) {
      spdlog::warn("no word from broker {} for {} ms; reconnecting in {} ms", options_.broker,
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard).count(), backoff.count());
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
