// What a connecting socket's monitor tells, and that it never stalls the
// context: libzmq's I/O thread blocks on an event for a monitor nobody
// reads, so a monitor destroyed while its socket goes on reconnecting used
// to freeze every socket of the process (a worker group that never
// reconnected to a restarted broker).
#include "imgq/common/connection_monitor.h"

#include <gtest/gtest.h>

#include "common/ports.h"
#include "common/subprocess.h"
#include "imgq/common/zmq_frames.h"

namespace imgq {
namespace {

using std::chrono::milliseconds;

std::string bind_router(zmq::socket_t& router) {
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  return router.get(zmq::sockopt::last_endpoint);
}

TEST(ConnectionMonitor, SaysNothingListensThenThatItConnected) {
  zmq::context_t context;
  const testing::RefusingPort port;  // refuses every connect; see ports.h
  ASSERT_NE(port.port(), 0);
  const std::string endpoint = port.endpoint();
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  ConnectionMonitor monitor(context, dealer);
  dealer.connect(endpoint);
  ASSERT_TRUE(testing::eventually([&] { monitor.poll(); return monitor.retries() > 0; }, milliseconds(5000)));
  EXPECT_FALSE(monitor.connected());
  EXPECT_NE(monitor.diagnosis().find("nothing listens there"), std::string::npos) << monitor.diagnosis();
}

TEST(ConnectionMonitor, ADestroyedMonitorNeverStallsTheContext) {
  zmq::context_t context;
  auto router = std::make_unique<zmq::socket_t>(context, zmq::socket_type::router);
  const std::string endpoint = bind_router(*router);
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  auto monitor = std::make_unique<ConnectionMonitor>(context, dealer);
  dealer.connect(endpoint);
  ASSERT_TRUE(testing::eventually([&] { monitor->poll(); return monitor->connected(); }, milliseconds(5000)));
  router.reset();  // the peer goes: the dealer reconnects every 100 ms, an event each time
  ASSERT_TRUE(testing::eventually([&] { monitor->poll(); return !monitor->connected(); }, milliseconds(5000)));
  monitor.reset();  // nobody reads its events any more...
  struct timespec ts{0, 400'000'000};
  nanosleep(&ts, nullptr);  // ...while several reconnects happen
  // The context's I/O thread still works: a new pair exchanges a message.
  zmq::socket_t server(context, zmq::socket_type::router);
  const std::string other = bind_router(server);
  zmq::socket_t client(context, zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(other);
  ASSERT_TRUE(client.send(zmq::buffer(std::string("hello")), zmq::send_flags::dontwait));
  zmq::pollitem_t items[] = {{server.handle(), 0, ZMQ_POLLIN, 0}};
  EXPECT_EQ(poll_sockets(items, 1, milliseconds(3000)), 1) << "the I/O thread is stuck";
}

}  // namespace
}  // namespace imgq
