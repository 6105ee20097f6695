// The floor under the broker's cost per job: a relay that carries a tiny
// job's messages exactly as imgq-broker does (submit -> accepted, job ->
// group, done -> result, result_ack; an `accepted` held back for its
// submit's accept_hold_ms and left out when the result comes first; acks of
// several results in one message; the same msgpack codec, the same
// ROUTER sockets and options) and does nothing else: no checks of the
// image, no priorities or fairness, no journal, no metrics, no events, no
// deadlines. Real clients and real worker groups talk to it unchanged.
// bench/journal.sh runs it beside the broker, on the same workload, so the
// broker's CPU per job can be read against what the messages alone cost.
//   imgq-bench-relay --clients tcp://127.0.0.1:5555 --workers tcp://127.0.0.1:5556
#include <csignal>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "imgq/common/zmq_frames.h"
#include "imgq/schemas/codec.h"

namespace {

using namespace imgq;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;

struct Waiting {
  std::string id, client, image;
  uint64_t req = 0;
  std::vector<std::string> ops;
  std::string format;
};

struct Group {
  int slots = 1, running = 0;
  Clock::time_point last_sent;
};

struct Running {
  std::string client, format;
  uint64_t req = 0;
};

class Relay {
 public:
  Relay(zmq::context_t& context, const std::string& clients, const std::string& workers)
      : clients_(context, zmq::socket_type::router), workers_(context, zmq::socket_type::router) {
    for (zmq::socket_t* router : {&clients_, &workers_}) {
      router->set(zmq::sockopt::router_mandatory, 1);
      router->set(zmq::sockopt::sndhwm, 0);
      router->set(zmq::sockopt::linger, 0);
    }
    clients_.bind(clients);
    workers_.bind(workers);
  }

  void run() {
    zmq::pollitem_t items[] = {{workers_.handle(), 0, ZMQ_POLLIN, 0}, {clients_.handle(), 0, ZMQ_POLLIN, 0}};
    Frames frames;
    while (g_stop == 0) {
      poll_sockets(items, 2, std::chrono::milliseconds(100));
      for (int i = 0; i < 256 && recv_frames(workers_, frames, 4, /*dontwait=*/true); ++i) on_worker(frames);
      for (int i = 0; i < 256 && recv_frames(clients_, frames, 4, /*dontwait=*/true); ++i) on_client(frames);
      heartbeats();
    }
  }

 private:
  void on_client(Frames& frames) {
    if (frames.size() < 2) return;
    auto header = proto::decode_header(frames[1]);
    if (!header.ok()) return;
    if (header->type() == proto::Submit::kType && frames.size() == 3) {
      auto submit = header->as<proto::Submit>();
      if (!submit.ok()) return;
      Waiting job;
      job.id = std::to_string(++next_id_);
      job.client = frames[0];
      job.req = submit->req;
      job.ops = std::move(submit->ops);
      job.format = submit->format.empty() ? "png" : submit->format;
      job.image = std::move(frames[2]);
      if (submit->accept_hold_ms > 0) {
        held_.emplace_back(Clock::now() + std::chrono::milliseconds(submit->accept_hold_ms), job.id);
        held_ids_.emplace(job.id, std::pair{job.client, job.req});
      } else {
        send_accepted(job.client, job.req, job.id);
      }
      queue_.push_back(std::move(job));
      dispatch();
    } else if (header->type() == proto::ResultAck::kType) {
      (void)header->as<proto::ResultAck>();  // decoded, as the broker does, and dropped
    } else if (header->type() == proto::Ping::kType) {
      auto ping = header->as<proto::Ping>();
      if (!ping.ok()) return;
      proto::Pong pong;
      pong.req = ping->req;
      pong.groups = static_cast<uint32_t>(groups_.size());
      send_frames(clients_, Frames{frames[0], proto::encode(pong)});
    }
  }

  void on_worker(Frames& frames) {
    if (frames.size() < 2) return;
    auto header = proto::decode_header(frames[1]);
    if (!header.ok()) return;
    if (header->type() == proto::Hello::kType) {
      auto hello = header->as<proto::Hello>();
      if (!hello.ok()) return;
      Group& group = groups_[frames[0]];
      group.slots = std::max(1, hello->slots);
      group.running = 0;
      group.last_sent = Clock::now();
      dispatch();
    } else if (header->type() == proto::Done::kType) {
      auto done = header->as<proto::Done>();
      if (!done.ok()) return;
      auto it = running_.find(done->job);
      if (it == running_.end()) return;
      held_ids_.erase(done->job);  // the result stands for its `accepted`
      proto::JobResult result;
      result.req = it->second.req;
      result.job = done->job;
      result.state = proto::kDone;
      result.format = it->second.format;
      result.stats = done->stats;
      Frames reply{it->second.client, proto::encode(result)};
      if (frames.size() == 3) reply.push_back(std::move(frames[2]));
      send_frames(clients_, std::move(reply));
      running_.erase(it);
      --groups_[frames[0]].running;
      dispatch();
    }
  }

  void dispatch() {
    for (auto& [identity, group] : groups_) {
      while (group.running < group.slots && !queue_.empty()) {
        Waiting job = std::move(queue_.front());
        queue_.pop_front();
        proto::JobRequest request;
        request.job = job.id;
        request.ops = std::move(job.ops);
        request.format = job.format;
        send_frames(workers_, Frames{identity, proto::encode(request), std::move(job.image)});
        running_[job.id] = Running{std::move(job.client), std::move(job.format), job.req};
        ++group.running;
        group.last_sent = Clock::now();
      }
    }
  }

  void send_accepted(const std::string& client, uint64_t req, const std::string& job) {
    proto::Accepted accepted;
    accepted.req = req;
    accepted.job = job;
    send_frames(clients_, Frames{client, proto::encode(accepted)});
  }

  // The groups take the broker for gone without a message each interval;
  // held `accepted` go out when due.
  void heartbeats() {
    const auto now = Clock::now();
    while (!held_.empty() && held_.front().first <= now) {
      const std::string id = std::move(held_.front().second);
      held_.pop_front();
      auto it = held_ids_.find(id);
      if (it == held_ids_.end()) continue;  // its result went first
      send_accepted(it->second.first, it->second.second, id);
      held_ids_.erase(it);
    }
    for (auto& [identity, group] : groups_) {
      if (now - group.last_sent < std::chrono::seconds(1)) continue;
      send_frames(workers_, Frames{identity, proto::encode(proto::Heartbeat{})});
      group.last_sent = now;
    }
  }

  zmq::socket_t clients_, workers_;
  std::map<std::string, Group> groups_;
  std::deque<Waiting> queue_;
  std::unordered_map<std::string, Running> running_;
  std::deque<std::pair<Clock::time_point, std::string>> held_;  // `accepted` held back, by when due
  std::unordered_map<std::string, std::pair<std::string, uint64_t>> held_ids_;  // id -> client, req
  uint64_t next_id_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string clients = "tcp://127.0.0.1:5555", workers = "tcp://127.0.0.1:5556";
  CLI::App app{"a bare relay of tiny jobs' messages: the floor under imgq-broker's cost per job"};
  app.add_option("--clients", clients);
  app.add_option("--workers", workers);
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  std::signal(SIGINT, [](int) { g_stop = 1; });
  zmq::context_t context;
  Relay relay(context, clients, workers);
  relay.run();
  return 0;
}
