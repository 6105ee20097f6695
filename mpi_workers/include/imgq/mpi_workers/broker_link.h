// The worker group leader's connection to the broker, on a thread of its own
// that owns the DEALER socket (see schemas/PROTOCOL.md, "Worker group
// leader"). It says hello, heartbeats even while the main thread is deep in
// MPI work, notices a silent broker and reconnects with backoff (1 s doubling
// to 30 s), and relays messages between the broker and the main thread.
//
// The main thread talks to it through an inproc PAIR socket (pipe_endpoint):
// it receives the broker's `job` messages there and sends `progress` and
// `done` messages, which the link forwards. An `abort` from the broker is
// noted for aborted(), which the leader asks at stage boundaries. Sending a
// `bye` ends the link:
// it says bye to the broker and the thread exits.
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "imgq/common/curve.h"
#include "imgq/schemas/messages.h"

namespace imgq::workers {

struct LinkOptions {
  std::string broker;  // e.g. tcp://127.0.0.1:5556
  proto::Hello hello;
  CurveOptions curve;
  std::chrono::milliseconds heartbeat = proto::kHeartbeatInterval;
  int liveness = proto::kLiveness;
  std::chrono::milliseconds max_backoff = proto::kMaxReconnectBackoff;
};

class BrokerLink {
 public:
  BrokerLink(zmq::context_t& context, LinkOptions options);
  ~BrokerLink();  // joins the thread; send a bye first
  BrokerLink(const BrokerLink&) = delete;
  BrokerLink& operator=(const BrokerLink&) = delete;

  const std::string& pipe_endpoint() const { return pipe_endpoint_; }
  // The broker asked to stop `job` (cancelled, or past its deadline). Any thread.
  bool aborted(const std::string& job) const;

 private:
  void run();

  zmq::context_t& context_;
  LinkOptions options_;
  std::string pipe_endpoint_;
  zmq::socket_t pipe_;  // bound here, used only by the link thread
  mutable std::mutex mutex_;
  std::deque<std::string> aborted_;  // guarded by mutex_: the jobs the broker aborted lately
  std::thread thread_;
};

}  // namespace imgq::workers
