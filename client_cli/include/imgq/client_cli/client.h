// A client's connection to the broker: a DEALER for requests and results and
// a SUB for progress events (schemas/CLIENT-PROTOCOL.md). One thread uses it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "imgq/common/connection_monitor.h"
#include "imgq/common/curve.h"
#include "imgq/common/status.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/schemas/codec.h"

namespace imgq::client {

using Millis = std::chrono::milliseconds;

inline constexpr const char* kDefaultBroker = "tcp://127.0.0.1:5555";

// How long a command waits for the broker's first answer before it says it
// cannot reach it (exit 3): a broker answers a ping in milliseconds, so a
// person learns within seconds that the address is wrong or the broker is
// down. --timeout is for a broker that goes silent later, with jobs in
// flight.
inline constexpr Millis kFirstContact{3000};

// The error for a broker that did not answer within `waited`: what the
// connection's events say (nothing listens, something else listens, no
// route) and what to check next.
std::string no_answer(const std::string& endpoint, Millis waited, const std::string& diagnosis, bool curve);

// The progress endpoint that goes with a broker endpoint: same host, port 5557.
std::string default_progress_endpoint(const std::string& broker);

// The progress endpoint a broker announced in its pong (`announced`, as it
// bound it), with a wildcard host (0.0.0.0, *, ::) replaced by the host
// `broker` names; default_progress_endpoint(broker) when it announced none.
std::string progress_endpoint_from(const std::string& broker, const std::string& announced);

// A SUB socket connected to the progress endpoint, with CURVE when on.
zmq::socket_t connect_progress(zmq::context_t& context, const std::string& endpoint, const CurveOptions& curve);

class BrokerClient {
 public:
  BrokerClient(zmq::context_t& context, const std::string& broker, const CurveOptions& curve = {});

  // With CURVE on: a refused handshake since the last call (PermissionDenied
  // naming the cause), so a client can say so instead of waiting.
  std::optional<Status> refused();
  // Unavailable saying why nothing came within `waited` (no_answer()).
  Status silent_for(Millis waited);
  // Whether a TCP connection to the broker was ever made (a slow broker
  // is waited for; one nothing listens for is not).
  bool ever_connected() {
    monitor_.poll();
    return monitor_.connections() > 0;
  }

  // Sends a header and, optionally, a payload frame. Never blocks: false
  // when the socket has no connection to queue it on (a DEALER whose
  // handshake was refused has none, and a blocking send would wait forever).
  bool send(const std::string& header, const std::string* payload = nullptr);
  // The same, the payload moved into the message rather than copied (an
  // image read only to be sent). On false it is left as it was.
  bool send(const std::string& header, std::string&& payload);
  // Waits up to `timeout` for one message from the broker.
  std::optional<Frames> receive(Millis timeout);
  // Sends `header` and waits for the reply whose `req` is `req`; messages for
  // other requests are dropped. Unavailable when nothing comes in time
  // (silent_for()).
  Result<Frames> call(const std::string& header, uint64_t req, Millis timeout);

  // Lets messages still queued (acknowledgements) go out for up to
  // `linger` when the client closes; by default nothing waits.
  void linger_on_close(Millis linger) { dealer_.set(zmq::sockopt::linger, static_cast<int>(linger.count())); }

  zmq::socket_t& socket() { return dealer_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string endpoint_;
  bool curve_ = false;
  zmq::socket_t dealer_;
  ConnectionMonitor monitor_;
};

// The progress endpoint to use: `given` when set, else the one the broker
// announces (a ping, waiting up to `timeout`). Unavailable when the broker
// does not answer.
Result<std::string> resolve_progress(BrokerClient& broker, const std::string& given, Millis timeout);

// Decodes a reply; an `error` reply becomes its Status.
template <typename T>
Result<T> decode_reply(const Frames& frames) {
  auto header = proto::decode_header(frames.at(0));
  if (!header.ok()) return header.status();
  if (header->type() == proto::Error::kType) {
    auto error = header->as<proto::Error>();
    if (!error.ok()) return error.status();
    return Status(static_cast<StatusCode>(error->code), error->message);
  }
  if (header->type() != T::kType) {
    return Status::Internal("expected a " + std::string(T::kType) + " reply, got " + header->type());
  }
  return header->as<T>();
}

// A string as a JSON string literal, quotes included.
std::string json_quote(std::string_view text);

// Checks a result's image against the checksum the broker sent with it
// (JobResult::crc32; a broker before checksums sends none, and nothing is
// checked). IoError when the bytes were damaged on the way: the result must
// be neither written nor acknowledged, so it stays at the broker.
Status check_result_bytes(const proto::JobResult& result, std::string_view bytes);

}  // namespace imgq::client
