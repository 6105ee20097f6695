#include "imgq/client_cli/commands.h"

#include <filesystem>

#include "imgq/common/file_io.h"
#include "imgq/schemas/op_catalog.h"

namespace imgq::client {
namespace {

constexpr uint64_t kReq = 1;

// Exit status for a failed request: 3 when the broker did not answer or
// refused this client's key.
int report(const Status& status, std::ostream& err) {
  err << "imgq: error: " << status.message() << "\n";
  const bool unreachable = status.code() == StatusCode::kUnavailable && status.message().rfind("no answer", 0) == 0;
  return unreachable || status.code() == StatusCode::kPermissionDenied ? 3 : 1;
}

void print_state(const proto::JobState& s, bool json, std::ostream& out) {
  if (json) {
    out << "{\"job\":" << json_quote(s.job) << ",\"file\":" << json_quote(s.name) << ",\"state\":" << json_quote(s.state)
        << ",\"done\":" << s.done << ",\"total\":" << s.total << ",\"position\":" << s.position
        << ",\"group\":" << json_quote(s.group) << ",\"attempts\":" << s.attempts
        << ",\"message\":" << json_quote(s.message) << "}\n";
    return;
  }
  out << s.job << " " << s.state;
  if (s.state == proto::kQueued) out << " (position " << s.position << ")";
  if (s.state == proto::kRunning) out << " on " << s.group << " (" << s.done << "/" << s.total << ")";
  if (!s.name.empty()) out << " " << s.name;
  if (!s.message.empty()) out << ": " << s.message;
  out << "\n";
}

template <typename Request>
Result<Frames> call(const Connection& c, const std::string& job) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  Request request;
  request.req = kReq;
  request.job = job;
  return broker.call(proto::encode(request), kReq, c.timeout);
}

}  // namespace

int run_status(const Connection& c, const std::string& job, std::ostream& out, std::ostream& err) {
  auto frames = call<proto::StatusRequest>(c, job);
  if (!frames.ok()) return report(frames.status(), err);
  auto reply = decode_reply<proto::StatusReply>(*frames);
  if (!reply.ok()) return report(reply.status(), err);
  print_state(reply->job, c.json, out);
  return 0;
}

int run_cancel(const Connection& c, const std::string& job, std::ostream& out, std::ostream& err) {
  auto frames = call<proto::Cancel>(c, job);
  if (!frames.ok()) return report(frames.status(), err);
  auto reply = decode_reply<proto::StatusReply>(*frames);
  if (!reply.ok()) return report(reply.status(), err);
  print_state(reply->job, c.json, out);
  return 0;
}

int run_fetch(const Connection& c, const std::string& job, const std::string& out_dir, std::ostream& out,
              std::ostream& err) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  proto::Fetch fetch;
  fetch.req = kReq;
  fetch.job = job;
  auto frames = broker.call(proto::encode(fetch), kReq, c.timeout);
  if (!frames.ok()) return report(frames.status(), err);
  auto result = decode_reply<proto::JobResult>(*frames);
  if (!result.ok()) return report(result.status(), err);
  // Once the result is in hand (written, or a failure reported), the broker
  // may forget it.
  auto acknowledge = [&] {
    proto::ResultAck ack;
    ack.req = kReq + 1;
    ack.job = job;
    broker.linger_on_close(Millis(1000));
    broker.send(proto::encode(ack));
  };
  if (result->state == proto::kDone && !result->output.empty()) {
    // A local-files job: its group wrote the result already.
    out << result->output << "\n";
    acknowledge();
    return 0;
  }
  if (result->state != proto::kDone || frames->size() != 2) {
    err << (result->name.empty() ? job : result->name) << ": error: " << result->state << ": " << result->message << "\n";
    acknowledge();
    return 1;
  }
  std::filesystem::path name = result->name.empty() ? std::filesystem::path(job) : std::filesystem::path(result->name).filename();
  const auto path = std::filesystem::path(out_dir) / name.replace_extension("." + result->format);
  const auto& bytes = (*frames)[1];
  Status written = write_file(path, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  if (!written.ok()) return report(written, err);
  acknowledge();
  out << path.string() << "\n";
  return 0;
}

int run_watch(const Connection& c, const std::string& job, const volatile std::sig_atomic_t& stop, std::ostream& out) {
  zmq::context_t context;
  std::string endpoint = c.progress;
  if (endpoint.empty()) {
    BrokerClient broker(context, c.broker, c.curve);
    auto announced = resolve_progress(broker, c.progress, c.timeout);
    // A broker that does not answer: its host, port 5557, as before.
    endpoint = announced.ok() ? *announced : default_progress_endpoint(c.broker);
  }
  zmq::socket_t sub = connect_progress(context, endpoint, c.curve);
  sub.set(zmq::sockopt::subscribe, job);
  Frames frames;
  while (!stop) {
    zmq::pollitem_t items[] = {{sub.handle(), 0, ZMQ_POLLIN, 0}};
    if (poll_sockets(items, 1, Millis(200)) <= 0) continue;
    if (!recv_frames(sub, frames, 2, /*dontwait=*/false) || frames.size() != 2) continue;
    auto header = proto::decode_header(frames[1]);
    if (!header.ok() || header->type() != proto::Event::kType) continue;  // e.g. a client's session pong
    auto event = header->as<proto::Event>();
    if (!event.ok()) continue;
    print_state(event->job, c.json, out);
    out.flush();
    const std::string& state = event->job.state;
    if (!job.empty() && (state == proto::kDone || state == proto::kFailed || state == proto::kCancelled)) {
      return state == proto::kDone ? 0 : 1;
    }
  }
  return 0;
}

int run_ops(const Connection& c, std::ostream& out, std::ostream& err) {
  std::vector<proto::OpInfo> ops;
  std::vector<proto::AliasInfo> aliases;
  {
    zmq::context_t context;
    BrokerClient broker(context, c.broker, c.curve);
    proto::OpsRequest request;
    request.req = kReq;
    auto reply = broker.call(proto::encode(request), kReq, c.timeout);
    auto decoded = reply.ok() ? decode_reply<proto::OpsReply>(*reply) : Result<proto::OpsReply>(reply.status());
    if (decoded.ok()) {
      ops = std::move(decoded->ops);
      aliases = std::move(decoded->aliases);
    } else {
      err << "imgq: " << decoded.status().message() << "; the ops built into this imgq follow\n";
      ops = schemas::describe_ops();
      aliases = schemas::describe_aliases();
    }
  }
  if (!c.json) {
    out << schemas::format_op_table(ops, aliases);
    return 0;
  }
  out << "[";
  bool first_op = true;
  for (const proto::OpInfo& op : ops) {
    out << (first_op ? "" : ",") << "{\"name\":" << json_quote(op.name) << ",\"summary\":" << json_quote(op.summary)
        << ",\"params\":[";
    first_op = false;
    bool first = true;
    for (const proto::ParamInfo& p : op.params) {
      out << (first ? "" : ",") << "{\"key\":" << json_quote(p.key) << ",\"type\":" << json_quote(p.type)
          << ",\"default\":" << json_quote(p.default_value);
      if (p.type == "int" || p.type == "number") out << ",\"min\":" << p.min << ",\"max\":" << p.max;
      if (!p.choices.empty()) {
        out << ",\"choices\":[";
        for (size_t i = 0; i < p.choices.size(); ++i) out << (i ? "," : "") << json_quote(p.choices[i]);
        out << "]";
      }
      if (p.odd) out << ",\"odd\":true";
      out << "}";
      first = false;
    }
    out << "]}";
  }
  out << "]\n";
  return 0;
}

int run_ping(const Connection& c, std::ostream& out, std::ostream& err) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  proto::Ping ping;
  ping.req = kReq;
  auto frames = broker.call(proto::encode(ping), kReq, c.timeout);
  if (!frames.ok()) return report(frames.status(), err);
  auto pong = decode_reply<proto::Pong>(*frames);
  if (!pong.ok()) return report(pong.status(), err);
  if (c.json) {
    out << "{\"broker\":" << json_quote(c.broker) << ",\"version\":" << json_quote(pong->version)
        << ",\"groups\":" << pong->groups << ",\"idle\":" << pong->idle << ",\"busy\":" << pong->busy
        << ",\"ranks\":" << pong->ranks << ",\"queued\":" << pong->queued << ",\"running\":" << pong->running
        << ",\"durable\":" << (pong->durable ? "true" : "false") << "}\n";
  } else {
    out << "broker " << c.broker << " (imgq " << pong->version << "): " << pong->groups << " worker group(s), "
        << pong->idle << " idle, " << pong->busy << " busy, " << pong->ranks << " ranks; " << pong->queued
        << " queued, " << pong->running << " running; "
        << (pong->durable ? "journal on" : "memory only (queued jobs are lost if it stops)") << "\n";
  }
  return 0;
}

}  // namespace imgq::client
