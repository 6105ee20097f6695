// What happened to a connecting ZeroMQ socket: whether its TCP connection
// was ever made, refused, or lost, and whether a CURVE handshake failed. So
// a client that hears nothing can say why ("nothing listens there", "it
// accepted the connection but is no imgq broker", "this key is refused")
// and a worker group can log when it connects and when it loses the broker.
// One thread uses it, the socket's. It must be destroyed before the socket
// (it stops the monitoring then): libzmq's I/O thread blocks on an event
// for a monitor nobody reads, which stalls every socket of the context.
#pragma once

#include <optional>
#include <string>

#include <zmq.hpp>

#include "imgq/common/status.h"

namespace imgq {

class ConnectionMonitor {
 public:
  // Starts watching `socket` (before it connects, to see every event).
  ConnectionMonitor(zmq::context_t& context, zmq::socket_t& socket);
  ~ConnectionMonitor();
  ConnectionMonitor(const ConnectionMonitor&) = delete;
  ConnectionMonitor& operator=(const ConnectionMonitor&) = delete;

  // Reads the events that came since the last call.
  void poll();
  // A refused CURVE handshake since the last call (PermissionDenied naming
  // the cause), if any.
  std::optional<Status> refused();
  // The TCP connection is up now (connected, and not lost since).
  bool connected() const { return connected_; }
  // Connections made / lost so far.
  int connections() const { return connections_; }
  int disconnections() const { return disconnections_; }
  // Connection attempts refused or failed so far (nothing listening).
  int retries() const { return retries_; }
  // Why a peer at `endpoint` that said nothing said nothing, as far as the
  // events tell: "nothing listens there (connection refused)", ...
  std::string diagnosis() const;

 private:
  zmq::socket_t& socket_;
  zmq::socket_t events_;
  std::optional<Status> refused_;
  // Handshakes failed in a row, none succeeding between; refused at this many.
  static constexpr int kHandshakeFailuresToRefuse = 3;
  int failed_handshakes_ = 0;
  bool connected_ = false;
  int connections_ = 0, disconnections_ = 0, retries_ = 0;
};

}  // namespace imgq
