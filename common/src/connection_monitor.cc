#include "imgq/common/connection_monitor.h"

#include <atomic>
#include <cstring>

#include "imgq/common/zmq_frames.h"

namespace imgq {
namespace {

std::string next_monitor_name() {
  static std::atomic<int> counter{0};
  return "inproc://imgq-connection-monitor-" + std::to_string(counter++);
}

}  // namespace

ConnectionMonitor::ConnectionMonitor(zmq::context_t& context, zmq::socket_t& socket)
    : socket_(socket), events_(context, zmq::socket_type::pair) {
  const std::string name = next_monitor_name();
  zmq_socket_monitor(socket.handle(), name.c_str(),
                     ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |
                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  events_.set(zmq::sockopt::linger, 0);
  events_.connect(name);
}

ConnectionMonitor::~ConnectionMonitor() {
  // No more events from here on, so none waits for a reader that is gone.
  zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

void ConnectionMonitor::poll() {
  Frames frames;
  while (recv_frames(events_, frames, 2, /*dontwait=*/true)) {
    if (frames.empty() || frames[0].size() < 6) continue;
    uint16_t event = 0;
    uint32_t value = 0;
    std::memcpy(&event, frames[0].data(), 2);
    std::memcpy(&value, frames[0].data() + 2, 4);
    switch (event) {
      case ZMQ_EVENT_CONNECTED:
        connected_ = true;
        ++connections_;
        break;
      case ZMQ_EVENT_CONNECT_RETRIED:
        ++retries_;
        break;
      case ZMQ_EVENT_DISCONNECTED:
        if (connected_) ++disconnections_;
        connected_ = false;
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        failed_handshakes_ = 0;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        refused_ = Status::PermissionDenied("the broker refused this key (ZAP status " + std::to_string(value) +
                                            "): its public key is not on the broker's allow-list");
        break;
      default:
        // A wrong server key and a broker that died mid-handshake look the
        // same once (the connection closes); only a wrong key fails again
        // and again, every reconnect (100 ms apart), with no success between.
        if (++failed_handshakes_ < kHandshakeFailuresToRefuse) break;
        refused_ = Status::PermissionDenied(
            "the CURVE handshake with the broker failed: check that --server-key is the broker's public key "
            "and that the broker has CURVE on");
    }
  }
}

std::optional<Status> ConnectionMonitor::refused() {
  poll();
  std::optional<Status> found = std::move(refused_);
  refused_.reset();
  return found;
}

std::string ConnectionMonitor::diagnosis() const {
  if (connections_ > 0) {
    return "something accepted the connection but did not answer as an imgq broker (another program on that "
           "port, or the broker's worker or progress port?)";
  }
  if (retries_ > 0) return "nothing listens there (connection refused)";
  return "the address cannot be reached (no route to it, or a firewall drops the connection)";
}

}  // namespace imgq
