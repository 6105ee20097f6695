// The broker's sockets and its one poll loop around BrokerCore.
//
// Binds a ROUTER for clients, a ROUTER for worker group leaders and a PUB for
// progress events; reads whole messages (at most a few frames: more is
// malformed), hands them to the core, and sends what the core asks through
// the same sockets. One thread owns all three sockets. The client ROUTER is
// ROUTER_MANDATORY, so a result for a vanished client is detected and kept.
// With a data dir, the journal (sqlite_journal.h) is opened and read back at
// bind(), and committed once per round of the loop (group commit).
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include <zmq.hpp>

#include "imgq/broker/broker_core.h"
#include "imgq/broker/config.h"
#include "imgq/common/curve.h"
#include "imgq/common/status.h"

namespace imgq::broker {

struct ServerOptions {
  std::string clients = "tcp://*:5555";
  std::string workers = "tcp://*:5556";
  std::string progress = "tcp://*:5557";
  int64_t max_message_bytes = int64_t{300} << 20;  // ZMQ_MAXMSGSIZE on both ROUTERs
  BrokerConfig config;
  monitoring::BrokerMetrics* metrics = nullptr;  // optional; must outlive the server
  // CURVE on all three sockets when curve_secret is set: clients (and
  // progress subscribers) must be on allow_clients, groups on allow_workers.
  std::string curve_secret;
  std::set<std::string> allow_clients, allow_workers;
  // The journal's folder; empty keeps everything in memory only (nothing
  // survives the process).
  std::string data_dir;
};

class Server {
 public:
  Server(zmq::context_t& context, ServerOptions options);
  ~Server();

  // Opens the journal and takes back what it holds (with a data dir), starts
  // the ZAP handler when CURVE is on (an error if it cannot: libzmq would
  // let everyone in), then binds the three sockets; the error names the
  // endpoint or folder that failed.
  Status bind();
  // The endpoints actually bound (resolves "tcp://127.0.0.1:*" to the port).
  std::string clients_endpoint() const;
  std::string workers_endpoint() const;
  std::string progress_endpoint() const;

  // Serves until `stop` becomes true (checked at least every 100 ms), then
  // stops cleanly: refuses submits, commits the journal, tells the groups.
  // Until `stop`, or the journal fails in a way only a restart recovers
  // from (BrokerCore::failure(), returned).
  Status run(const std::atomic<bool>& stop);

  // After bind().
  const BrokerCore& core() const { return *core_; }

 private:
  class SocketOutbox;
  Status open_journal();
  // Reads the subscriptions waiting on the progress socket (an XPUB) and
  // applies those BrokerCore::on_subscription allows.
  void on_progress_subscriptions();

  ServerOptions options_;
  zmq::context_t& context_;
  std::unique_ptr<ZapHandler> zap_;
  zmq::socket_t clients_;
  zmq::socket_t workers_;
  zmq::socket_t progress_;  // XPUB: it sees each subscription and who sent it
  std::unique_ptr<SocketOutbox> outbox_;
  std::unique_ptr<Journal> journal_;
  int sync_fd_ = -1;  // readable when the journal's log sync advances
  std::unique_ptr<BrokerCore> core_;
};

}  // namespace imgq::broker
