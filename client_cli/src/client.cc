#include "imgq/client_cli/client.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <cstdio>

#include "imgq/common/checksum.h"

namespace imgq::client {

std::string default_progress_endpoint(const std::string& broker) {
  const size_t colon = broker.rfind(':');
  const size_t scheme = broker.find("://");
  if (colon == std::string::npos || scheme == std::string::npos || colon < scheme + 3) {
    return "tcp://127.0.0.1:5557";
  }
  std::string host = broker.substr(scheme + 3, colon - scheme - 3);
  if (host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  return broker.substr(0, scheme + 3) + host + ":5557";
}

std::string progress_endpoint_from(const std::string& broker, const std::string& announced) {
  if (announced.empty()) return default_progress_endpoint(broker);
  const size_t scheme = announced.find("://");
  const size_t colon = announced.rfind(':');
  if (scheme == std::string::npos || colon == std::string::npos || colon < scheme + 3) return announced;
  const std::string host = announced.substr(scheme + 3, colon - scheme - 3);
  if (host != "0.0.0.0" && host != "*" && host != "[::]" && host != "::") return announced;
  // The broker's host as this client reaches it.
  const size_t b_scheme = broker.find("://");
  const size_t b_colon = broker.rfind(':');
  if (b_scheme == std::string::npos || b_colon == std::string::npos || b_colon < b_scheme + 3) return announced;
  std::string broker_host = broker.substr(b_scheme + 3, b_colon - b_scheme - 3);
  if (broker_host == "*" || broker_host == "0.0.0.0") broker_host = "127.0.0.1";
  return announced.substr(0, scheme + 3) + broker_host + announced.substr(colon);
}

Result<std::string> resolve_progress(BrokerClient& broker, const std::string& given, Millis timeout) {
  if (!given.empty()) return given;
  proto::Ping ping;
  ping.req = (uint64_t{1} << 61) + 1;
  auto reply = broker.call(proto::encode(ping), ping.req, timeout);
  if (!reply.ok()) return reply.status();
  auto pong = decode_reply<proto::Pong>(*reply);
  if (!pong.ok()) return pong.status();
  return progress_endpoint_from(broker.endpoint(), pong->progress);
}

zmq::socket_t connect_progress(zmq::context_t& context, const std::string& endpoint, const CurveOptions& curve) {
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  apply_curve_client(sub, curve);
  sub.connect(endpoint);
  return sub;
}

std::string no_answer(const std::string& endpoint, Millis waited, const std::string& diagnosis, bool curve) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", static_cast<double>(waited.count()) / 1000);
  std::string text = "no answer from the broker at " + endpoint + " within " + seconds + " s: " + diagnosis + ".";
  if (curve) text += " CURVE is on: check that --server-key is this broker's public key.";
  return text + " Is imgq-broker running there? Give its address with --broker HOST:PORT or IMGQ_BROKER.";
}

BrokerClient::BrokerClient(zmq::context_t& context, const std::string& broker, const CurveOptions& curve)
    : endpoint_(broker),
      curve_(curve.enabled()),
      dealer_(context, zmq::socket_type::dealer),
      monitor_(context, dealer_) {
  dealer_.set(zmq::sockopt::linger, 0);
  apply_curve_client(dealer_, curve);
  dealer_.connect(broker);
}

std::optional<Status> BrokerClient::refused() { return monitor_.refused(); }

// "the host name X does not resolve" when `endpoint` names a host the
// resolver does not know (a typo, or no /etc/hosts entry), else empty.
std::string unresolved_host(const std::string& endpoint) {
  const size_t scheme = endpoint.find("://");
  const size_t colon = endpoint.rfind(':');
  if (scheme == std::string::npos || colon == std::string::npos || colon <= scheme + 3) return {};
  const std::string host = endpoint.substr(scheme + 3, colon - scheme - 3);
  if (host.empty() || host.front() == '[' || std::isdigit(static_cast<unsigned char>(host.back()))) return {};
  addrinfo hints{};
  hints.ai_family = AF_INET;  // what ZeroMQ connects to without ZMQ_IPV6
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (found != nullptr) ::freeaddrinfo(found);
  return rc == 0 ? std::string() : "the host name \"" + host + "\" does not resolve to an IPv4 address (" +
                                       ::gai_strerror(rc) + ")";
}

Status BrokerClient::silent_for(Millis waited) {
  monitor_.poll();
  if (const std::string unresolved = unresolved_host(endpoint_); !unresolved.empty()) {
    return Status::Unavailable("cannot reach the broker at " + endpoint_ + ": " + unresolved +
                               ". Check the name, or give the broker's address with --broker HOST:PORT or "
                               "IMGQ_BROKER.");
  }
  return Status::Unavailable(no_answer(endpoint_, waited, monitor_.diagnosis(), curve_));
}

bool BrokerClient::send(const std::string& header, const std::string* payload) {
  // Once the first frame is taken the rest of the message is too.
  const auto first = payload == nullptr ? zmq::send_flags::dontwait
                                        : zmq::send_flags::dontwait | zmq::send_flags::sndmore;
  if (!dealer_.send(zmq::buffer(header), first)) return false;
  if (payload != nullptr) (void)dealer_.send(zmq::buffer(*payload), zmq::send_flags::dontwait);
  return true;
}

bool BrokerClient::send(const std::string& header, std::string&& payload) {
  if (!dealer_.send(zmq::buffer(header), zmq::send_flags::dontwait | zmq::send_flags::sndmore)) return false;
  zmq::message_t message = message_of(std::move(payload));
  (void)dealer_.send(message, zmq::send_flags::dontwait);
  return true;
}

std::optional<Frames> BrokerClient::receive(Millis timeout) {
  zmq::pollitem_t items[] = {{dealer_.handle(), 0, ZMQ_POLLIN, 0}};
  if (poll_sockets(items, 1, timeout) <= 0) return std::nullopt;
  Frames frames;
  recv_frames(dealer_, frames, 2, /*dontwait=*/false);
  return frames;
}

Result<Frames> BrokerClient::call(const std::string& header, uint64_t req, Millis timeout) {
  send(header);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (auto failure = refused()) return *failure;
    const auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto frames = receive(std::min(left, Millis(100)));
    if (!frames) continue;
    auto h = proto::decode_header(frames->at(0));
    if (!h.ok()) continue;
    auto r = h->as<proto::AnyReply>();
    if (r.ok() && r->req == req) return std::move(*frames);
  }
  return silent_for(timeout);
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

Status check_result_bytes(const proto::JobResult& result, std::string_view bytes) {
  if (!result.crc32) return Status::Ok();
  const uint32_t got = crc32_of(bytes);
  if (got == *result.crc32) return Status::Ok();
  char text[160];
  std::snprintf(text, sizeof text, "arrived damaged (checksum %08x where the broker sent %08x)", got, *result.crc32);
  return Status::IoError("the result of job " + result.job + " " + text +
                         "; it was not written and stays at the broker: imgq fetch " + result.job);
}

}  // namespace imgq::client
