#include "imgq/gateway/gateway.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <spdlog/spdlog.h>

#include "imgq/common/formats.h"
#include "imgq/common/text.h"
#include "imgq/schemas/codec.h"

#include "openapi.h"

namespace imgq::gateway {
namespace {

namespace fs = std::filesystem;
using client::json_quote;
using client::Millis;

std::string random_hex(size_t bytes) {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  std::string out;
  constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(random() & 0xff);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// One session per tenant, the same in every gateway: its jobs' ids start
// with it, so /v1/events follows all of them with one subscription (with
// CURVE it is the tenant's key's).
std::string session_of(const Tenant& tenant) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : tenant.name + '\0' + tenant.curve.own.public_key) {
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(h ^ (h >> 32)));
  return buf;
}

std::string content_type_of(const std::string& format) {
  switch (output_format_kind(format)) {
    case ImageFormat::kPng: return "image/png";
    case ImageFormat::kJpeg: return "image/jpeg";
    case ImageFormat::kTiff: return "image/tiff";
    case ImageFormat::kBmp: return "image/bmp";
    case ImageFormat::kWebp: return "image/webp";
    case ImageFormat::kPnm: return "image/x-portable-anymap";
    default: return "application/octet-stream";
  }
}

std::string job_json(const proto::JobState& s) {
  std::ostringstream out;
  out << "{\"id\":" << json_quote(s.job) << ",\"state\":" << json_quote(s.state) << ",\"name\":" << json_quote(s.name)
      << ",\"attempts\":" << s.attempts;
  if (s.state == proto::kQueued) out << ",\"position\":" << s.position;
  if (s.state == proto::kRunning) {
    out << ",\"group\":" << json_quote(s.group) << ",\"stages_done\":" << s.done << ",\"stages\":" << s.total;
  }
  if (s.code != 0) {
    out << ",\"code\":" << s.code << ",\"code_name\":" << json_quote(status_code_name(static_cast<StatusCode>(s.code)))
        << ",\"message\":" << json_quote(s.message);
  }
  out << ",\"links\":{\"self\":" << json_quote("/v1/jobs/" + s.job)
      << ",\"result\":" << json_quote("/v1/jobs/" + s.job + "/result") << "}}";
  return out.str();
}

// RFC 9457 problem details, with the protocol's code and its name.
void problem(Response& response, int status, StatusCode code, const std::string& detail, uint32_t retry_after_ms = 0,
             const std::string& job = {}) {
  std::ostringstream out;
  const std::string name(status_code_name(code));
  out << "{\"type\":" << json_quote("urn:imgq:problem:" + name) << ",\"title\":" << json_quote(reason_phrase(status))
      << ",\"status\":" << status << ",\"detail\":" << json_quote(detail) << ",\"code\":" << static_cast<int>(code)
      << ",\"code_name\":" << json_quote(name);
  if (!job.empty()) out << ",\"job\":" << json_quote(job);
  out << "}\n";
  std::vector<std::pair<std::string, std::string>> headers;
  if (retry_after_ms != 0) headers.emplace_back("Retry-After", std::to_string((retry_after_ms + 999) / 1000));
  response.send(status, "application/problem+json", out.str(), headers);
}

void problem(Response& response, const Status& status, uint32_t retry_after_ms = 0, const std::string& job = {}) {
  problem(response, http_status_of(status.code()), status.code(), status.message(), retry_after_ms, job);
}

// A retry hint for what a broker that does not answer or is full says.
uint32_t retry_hint(const Status& status) { return is_retryable(status.code()) ? 1000 : 0; }

// One connection to the broker for one HTTP request, as its tenant.
class BrokerCall {
 public:
  BrokerCall(const GatewayOptions& options, const Tenant& tenant)
      : options_(options), broker_(context_, options.broker, tenant.curve) {}

  // Sends `header` (and `payload`) and waits for the reply to `req`; sends
  // again every 3 s while nothing comes (a broker restarting: safe for
  // requests that are idempotent, a submit with its key).
  Result<Frames> call(const std::string& header, uint64_t req, const std::string* payload = nullptr) {
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + options_.broker_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto refused = broker_.refused()) return *refused;
      // Nothing listens there (or it is down): said within seconds.
      if (std::chrono::steady_clock::now() - started >= client::kFirstContact && !broker_.ever_connected()) {
        return broker_.silent_for(client::kFirstContact);
      }
      (void)broker_.send(header, payload);
      const auto resend = std::min(deadline, std::chrono::steady_clock::now() + Millis(3000));
      while (std::chrono::steady_clock::now() < resend) {
        auto frames = broker_.receive(Millis(100));
        if (!frames) {
          if (auto refused = broker_.refused()) return *refused;
          continue;
        }
        auto any = proto::decode_header(frames->at(0));
        if (!any.ok()) continue;
        auto reply = any->as<proto::AnyReply>();
        if (reply.ok() && reply->req == req) return std::move(*frames);
      }
    }
    return broker_.silent_for(options_.broker_timeout);
  }
  // Waits for the `result` of `job` (after a submit on this connection).
  Result<Frames> result_of(const std::string& job, Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto frames = broker_.receive(Millis(100));
      if (!frames) continue;
      auto header = proto::decode_header(frames->at(0));
      if (!header.ok() || header->type() != proto::JobResult::kType) continue;
      auto r = header->as<proto::JobResult>();
      if (r.ok() && r->job == job) return std::move(*frames);
    }
    return Status::DeadlineExceeded("job " + job + " did not finish within " +
                                    std::to_string(timeout.count() / 1000) + " s; it goes on: GET /v1/jobs/" + job);
  }
  void ack(const std::string& job) {
    proto::ResultAck ack;
    ack.job = job;
    broker_.linger_on_close(Millis(1000));
    (void)broker_.send(proto::encode(ack));
  }

 private:
  const GatewayOptions& options_;
  zmq::context_t context_;
  client::BrokerClient broker_;
};

// Asks the broker as `tenant` and decodes the reply: the broker's error as
// its Status, and one that does not answer as Unavailable.
template <typename T>
Result<T> ask(const GatewayOptions& options, const Tenant& tenant, const std::string& header, uint64_t req) {
  BrokerCall broker(options, tenant);
  auto reply = broker.call(header, req);
  if (!reply.ok()) return reply.status();
  return client::decode_reply<T>(*reply);
}

// A multipart/form-data body (RFC 7578): its fields by name, and the file
// part's bytes and name. The body is cut down to the file in place, not
// copied.
struct Form {
  std::map<std::string, std::vector<std::string>> fields;
  std::string file, filename;
};

Result<Form> parse_multipart(std::string body, const std::string& content_type) {
  auto at = content_type.find("boundary=");
  if (at == std::string::npos) return Status::InvalidArgument("multipart/form-data without a boundary");
  std::string boundary = content_type.substr(at + 9);
  if (auto semi = boundary.find(';'); semi != std::string::npos) boundary.resize(semi);
  if (boundary.size() >= 2 && boundary.front() == '"') boundary = boundary.substr(1, boundary.size() - 2);
  const std::string delimiter = "--" + boundary;
  Form form;
  size_t pos = body.find(delimiter);
  size_t file_begin = std::string::npos, file_end = 0;
  while (pos != std::string::npos) {
    pos += delimiter.size();
    if (body.compare(pos, 2, "--") == 0) break;  // the closing delimiter
    const size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) return Status::InvalidArgument("a multipart part without its headers' end");
    const std::string head = body.substr(pos, head_end - pos);
    const size_t value_begin = head_end + 4;
    const size_t next = body.find("\r\n" + delimiter, value_begin);
    if (next == std::string::npos) return Status::InvalidArgument("a multipart part that does not end");
    auto attribute = [&](const std::string& name) -> std::optional<std::string> {
      const std::string key = name + "=\"";
      auto a = head.find(key);
      if (a == std::string::npos) return std::nullopt;
      auto b = head.find('"', a + key.size());
      if (b == std::string::npos) return std::nullopt;
      return head.substr(a + key.size(), b - a - key.size());
    };
    const auto name = attribute("name");
    if (auto filename = attribute("filename"); filename && name == "file") {
      form.filename = *filename;
      file_begin = value_begin;
      file_end = next;
    } else if (name) {
      form.fields[*name].push_back(body.substr(value_begin, next - value_begin));
    }
    pos = next + 2;
  }
  if (file_begin == std::string::npos) {
    return Status::InvalidArgument("a multipart/form-data submit needs the image as a part named \"file\"");
  }
  body.resize(file_end);
  body.erase(0, file_begin);
  form.file = std::move(body);
  return form;
}

bool finished(const std::string& state) {
  return state == proto::kDone || state == proto::kFailed || state == proto::kCancelled;
}

// A job's states as Server-Sent Events, or every job of a tenant's session
// (`job` empty), until the job ends or the HTTP client goes. The progress
// subscription is proven live (a session pong on it) before the job's
// state now is sent, so no change after it is missed; a job whose events
// were dropped (ZeroMQ's high-water mark) is caught up by asking its
// state again after 5 s of silence.
void stream_events(const GatewayOptions& options, const Tenant& tenant, const std::string& session,
                   const std::string& job, Response& response, const std::atomic<bool>& stopping) {
  zmq::context_t context;
  client::BrokerClient broker(context, options.broker, tenant.curve);
  auto endpoint = client::resolve_progress(broker, options.progress, client::kFirstContact);
  if (!endpoint.ok()) return problem(response, endpoint.status(), 1000);
  zmq::socket_t sub = client::connect_progress(context, *endpoint, tenant.curve);
  sub.set(zmq::sockopt::subscribe, session);
  if (!job.empty()) sub.set(zmq::sockopt::subscribe, job);
  // Live once the session's pong comes on the progress socket.
  bool live = false;
  Frames frames;
  const auto deadline = std::chrono::steady_clock::now() + client::kFirstContact;
  for (uint64_t req = 1; !live && std::chrono::steady_clock::now() < deadline; ++req) {
    proto::Ping ping;
    ping.req = req;
    ping.session = session;
    (void)broker.send(proto::encode(ping));
    zmq::pollitem_t item = {sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(std::min<uint64_t>(5u << std::min<uint64_t>(req, 5), 200)));
    while (recv_frames(sub, frames, 2, /*dontwait=*/true)) live = live || frames.front() == session;
  }
  if (!live) {
    return problem(response, 503, StatusCode::kUnavailable,
                   "the broker answers but nothing arrives from its progress endpoint " + *endpoint, 1000);
  }
  uint64_t req = 1000;
  auto status_now = [&]() -> Result<proto::JobState> {
    proto::StatusRequest status;
    status.req = ++req;
    status.job = job;
    auto reply = broker.call(proto::encode(status), status.req, client::kFirstContact);
    if (!reply.ok()) return reply.status();
    auto s = client::decode_reply<proto::StatusReply>(*reply);
    if (!s.ok()) return s.status();
    return s->job;
  };
  std::optional<proto::JobState> first;
  if (!job.empty()) {
    auto s = status_now();
    if (!s.ok()) return problem(response, s.status(), retry_hint(s.status()), job);
    first = *s;
  }
  response.start(200, "text/event-stream", {{"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}});
  std::string last_state;
  auto emit = [&](const proto::JobState& s) {
    last_state = s.state;
    return response.chunk("event: job\ndata: " + job_json(s) + "\n\n");
  };
  if (first && (!emit(*first) || finished(first->state))) return response.end();
  auto quiet_since = std::chrono::steady_clock::now();
  auto last_write = quiet_since;
  while (!stopping.load()) {
    zmq::pollitem_t item = {sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(500));
    while (recv_frames(sub, frames, 2, /*dontwait=*/true)) {
      if (frames.size() < 2 || frames.front() == session) continue;  // pongs
      auto header = proto::decode_header(frames[1]);
      if (!header.ok() || header->type() != proto::Event::kType) continue;
      auto event = header->as<proto::Event>();
      if (!event.ok() || (!job.empty() && event->job.job != job)) continue;
      if (!emit(event->job)) return;  // the HTTP client has gone
      last_write = quiet_since = std::chrono::steady_clock::now();
      if (!job.empty() && finished(event->job.state)) return response.end();
    }
    const auto now = std::chrono::steady_clock::now();
    if (!job.empty() && now - quiet_since >= std::chrono::seconds(5)) {
      quiet_since = now;
      if (auto s = status_now(); s.ok() && s->state != last_state) {
        if (!emit(*s)) return;
        last_write = now;
        if (finished(s->state)) return response.end();
      }
    }
    // A comment now and then: a proxy keeps the stream, and a client that
    // has gone is noticed.
    if (now - last_write >= std::chrono::seconds(15)) {
      if (!response.chunk(": keep-alive\n\n")) return;
      last_write = now;
    }
  }
  response.end();  // the gateway is stopping
}

uint64_t next_req() {
  static std::atomic<uint64_t> req{1};
  return req++;
}

// Sends a result whose header is `frames[0]`: the image, or the job's failure.
void send_result(Response& response, const Frames& frames, const proto::JobResult& r) {
  if (r.state == proto::kDone) {
    if (frames.size() < 2) {
      problem(response, 409, StatusCode::kInvalidArgument,
              "job " + r.job + " wrote its result to " + r.output + " (a local-files job): there are no bytes to send",
              0, r.job);
      return;
    }
    if (Status ok = client::check_result_bytes(r, frames[1]); !ok.ok()) {
      problem(response, 502, StatusCode::kIoError, ok.message(), 0, r.job);
      return;
    }
    std::string filename = r.name.empty() ? r.job : fs::path(r.name).stem().string();
    filename += "." + ascii_lower(r.format.empty() ? "png" : r.format);
    response.send(200, content_type_of(r.format), frames[1],
                  {{"Content-Disposition", "inline; filename=" + json_quote(filename)}, {"X-Imgq-Job", r.job}});
    return;
  }
  const auto code = static_cast<StatusCode>(r.code);
  const int status = r.state == proto::kCancelled ? 409 : http_status_of(code) >= 500 ? 502 : 422;
  problem(response, status, code, "job " + r.job + " " + r.state + ": " + r.message, 0, r.job);
}

}  // namespace

int http_status_of(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kInvalidImage: return 415;
    case StatusCode::kUnsupported: return 422;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kCancelled: return 409;
    case StatusCode::kIoError: return 502;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kConflict: return 409;
    default: return 500;
  }
}

Result<std::map<std::string, Tenant>> read_tokens(const std::string& path, const std::string& server_key) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read the tokens file " + path);
  std::map<std::string, Tenant> tokens;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    std::istringstream words(line);
    std::string token, name, key_file;
    if (!(words >> token) || token.front() == '#') continue;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    if (!(words >> name)) return Status::InvalidArgument(where + "a token needs a tenant name after it");
    words >> key_file;
    if (token.size() < 16) return Status::InvalidArgument(where + "a token of fewer than 16 characters is guessable");
    Tenant tenant{name, {}};
    if (!server_key.empty()) {
      if (key_file.empty()) {
        return Status::InvalidArgument(where + "with CURVE (--server-key) each tenant needs its key file: "
                                       "TOKEN TENANT KEYFILE");
      }
      const fs::path key = fs::path(key_file).is_absolute() ? fs::path(key_file) : fs::path(path).parent_path() / key_file;
      IMGQ_ASSIGN_OR_RETURN(tenant.curve, load_curve_options(server_key, key.string()));
    }
    if (!tokens.emplace(token, tenant).second) return Status::InvalidArgument(where + "this token is given twice");
  }
  if (tokens.empty()) return Status::InvalidArgument(path + " holds no token");
  return tokens;
}

Gateway::Gateway(GatewayOptions options) : options_(std::move(options)) { anonymous_.name = "anonymous"; }

Gateway::~Gateway() { stop(); }

Status Gateway::start() {
  routes();
  return server_.start(options_.listen, options_.threads);
}

void Gateway::stop() {
  stopping_ = true;  // open event streams end within half a second
  server_.stop();
}

const Tenant* Gateway::authorize(Request& request, Response& response) {
  if (options_.open) return &anonymous_;
  const auto header = request.header("Authorization");
  if (header && header->rfind("Bearer ", 0) == 0) {
    auto it = options_.tokens.find(header->substr(7));
    if (it != options_.tokens.end()) return &it->second;
  }
  std::ostringstream out;
  out << "{\"type\":\"urn:imgq:problem:unauthenticated\",\"title\":\"Unauthorized\",\"status\":401,\"detail\":"
      << json_quote(header ? "this token is not one of the gateway's (--tokens)"
                           : "send a token: Authorization: Bearer TOKEN (the gateway's --tokens file names them)")
      << "}\n";
  response.send(401, "application/problem+json", out.str(), {{"WWW-Authenticate", "Bearer realm=\"imgq\""}});
  return nullptr;
}

void Gateway::submit(Request& request, Response& response, bool wait) {
  const Tenant* tenant = authorize(request, response);
  if (tenant == nullptr) return;
  if (request.content_length() > static_cast<long long>(options_.max_body_bytes)) {
    return problem(response, 413, StatusCode::kTooLarge,
                   "the image is " + std::to_string(request.content_length()) + " bytes; this gateway takes at most " +
                       std::to_string(options_.max_body_bytes) + " (--max-body-bytes)");
  }
  auto body = request.body(options_.max_body_bytes);
  if (!body.ok()) return problem(response, body.status());
  // The image is the body; or, from an HTML form, its part "file" with the
  // other fields beside it.
  Form form;
  const std::string content_type = request.header("Content-Type").value_or("");
  if (content_type.rfind("multipart/form-data", 0) == 0) {
    auto parsed = parse_multipart(std::move(*body), content_type);
    if (!parsed.ok()) return problem(response, parsed.status());
    form = std::move(*parsed);
  } else {
    form.file = std::move(*body);
  }
  auto all = [&](const std::string& name) {
    std::vector<std::string> values = request.query_all(name);
    if (auto it = form.fields.find(name); it != form.fields.end()) {
      values.insert(values.end(), it->second.begin(), it->second.end());
    }
    return values;
  };
  auto one = [&](const std::string& name) -> std::optional<std::string> {
    auto values = all(name);
    if (values.empty() || values.front().empty()) return std::nullopt;
    return values.front();
  };
  proto::Submit submit;
  submit.req = next_req();
  submit.ops = all("op");
  if (submit.ops.empty()) {
    if (auto ops = one("ops")) {
      std::string op;
      std::istringstream in(*ops);
      while (std::getline(in, op, '|')) {
        if (!op.empty()) submit.ops.push_back(op);
      }
    }
  }
  submit.format = one("format").value_or("");
  submit.name = one("name").value_or(form.filename);
  submit.session = session_of(*tenant);
  double wait_seconds = 60;
  try {
    if (auto p = one("priority")) submit.priority = std::stoi(*p);
    if (auto t = one("timeout")) submit.timeout_ms = static_cast<uint32_t>(std::stod(*t) * 1000);
    if (auto w = one("wait")) wait_seconds = std::stod(*w);
  } catch (const std::exception&) {
    return problem(response, 400, StatusCode::kInvalidArgument,
                   "priority is an integer 0-9; timeout and wait are seconds");
  }
  // The tenant's own key space, also without CURVE.
  const auto key = request.header("Idempotency-Key");
  submit.key = "http:" + tenant->name + ":" + (key ? *key : random_hex(12));
  if (wait) submit.accept_hold_ms = 1000;
  const std::string* image = &form.file;
  if (image->empty()) {
    return problem(response, 400, StatusCode::kInvalidArgument,
                   "send the image as the request's body (or as the part \"file\" of a multipart form)");
  }
  BrokerCall broker(options_, *tenant);
  auto reply = broker.call(proto::encode(submit), submit.req, image);
  if (!reply.ok()) return problem(response, reply.status(), 1000);
  auto header = proto::decode_header(reply->at(0));
  if (!header.ok()) return problem(response, header.status());
  if (header->type() == proto::Error::kType) {
    auto e = header->as<proto::Error>();
    if (!e.ok()) return problem(response, e.status());
    return problem(response, Status(static_cast<StatusCode>(e->code), e->message), e->retry_after_ms, e->job);
  }
  std::string job;
  Frames result_frames;
  if (header->type() == proto::JobResult::kType) {  // stood for `accepted` (accept_hold_ms)
    job = header->as<proto::JobResult>()->job;
    result_frames = std::move(*reply);
  } else {
    auto accepted = header->as<proto::Accepted>();
    if (!accepted.ok()) return problem(response, accepted.status());
    job = accepted->job;
    if (!wait) {
      // Its state as the broker has it now (`accepted` alone does not say
      // whether it runs, where, or whether it has already ended).
      proto::JobState state;
      state.job = job;
      state.state = proto::kQueued;
      state.position = accepted->position;
      state.name = submit.name;
      const uint64_t req = next_req();
      if (auto reply = broker.call(proto::encode(proto::StatusRequest{.req = req, .job = job}), req); reply.ok()) {
        if (auto s = client::decode_reply<proto::StatusReply>(*reply); s.ok()) state = s->job;
      }
      return response.send(accepted->existing ? 200 : 202, "application/json", job_json(state) + "\n",
                           {{"Location", "/v1/jobs/" + job}});
    }
    auto result = broker.result_of(job, Millis(static_cast<long long>(wait_seconds * 1000)));
    if (!result.ok()) return problem(response, result.status(), 0, job);
    result_frames = std::move(*result);
  }
  auto r = proto::decode_header(result_frames.at(0))->as<proto::JobResult>();
  send_result(response, result_frames, *r);
  broker.ack(job);
}

void Gateway::routes() {
  server_.on_unrouted([](Request& request, Response& response) {
    if (request.params()["allowed"] == "no") {
      return problem(response, 405, StatusCode::kInvalidArgument,
                     request.method() + " is not allowed on " + request.path());
    }
    problem(response, 404, StatusCode::kNotFound, "no such route: " + request.path() + " (see /v1/openapi.json)");
  });
  server_.route("GET", "/v1/health", [this](Request&, Response& response) {
    // No token needed; the broker is asked as a tenant (with CURVE, only a
    // listed key gets in).
    const Tenant& as = options_.tokens.empty() ? anonymous_ : options_.tokens.begin()->second;
    zmq::context_t context;
    client::BrokerClient broker(context, options_.broker, as.curve);
    proto::Ping ping;
    ping.req = 1;
    const bool up = broker.call(proto::encode(ping), 1, Millis(2000)).ok();
    response.send(up ? 200 : 503, "application/json",
                  std::string("{\"status\":") + (up ? "\"ok\"" : "\"degraded\"") + ",\"broker\":" +
                      (up ? "\"reachable\"" : "\"unreachable\"") + "}\n");
  });
  server_.route("GET", "/v1/openapi.json", [](Request&, Response& response) {
    response.send(200, "application/json", kOpenApi);
  });
  server_.route("POST", "/v1/jobs", [this](Request& request, Response& response) { submit(request, response, false); });
  server_.route("POST", "/v1/process", [this](Request& request, Response& response) { submit(request, response, true); });
  auto by_id = [this](const char* what) {
    return [this, what](Request& request, Response& response) {
      const Tenant* tenant = authorize(request, response);
      if (tenant == nullptr) return;
      const std::string job = request.param("id");
      const uint64_t req = next_req();
      BrokerCall broker(options_, *tenant);
      std::string header;
      const std::string type = what;
      if (type == "status") header = proto::encode(proto::StatusRequest{.req = req, .job = job});
      if (type == "cancel") header = proto::encode(proto::Cancel{.req = req, .job = job});
      if (type == "fetch") header = proto::encode(proto::Fetch{.req = req, .job = job});
      auto reply = broker.call(header, req);
      if (!reply.ok()) return problem(response, reply.status(), 1000);
      if (type == "fetch") {
        auto r = client::decode_reply<proto::JobResult>(*reply);
        if (!r.ok()) {
          const bool unfinished = r.status().code() == StatusCode::kUnavailable;
          return problem(response, unfinished ? 409 : http_status_of(r.status().code()),
                         unfinished ? StatusCode::kUnavailable : r.status().code(), r.status().message(), 0, job);
        }
        return send_result(response, *reply, *r);
      }
      auto s = client::decode_reply<proto::StatusReply>(*reply);
      if (!s.ok() && type == "cancel" && s.status().code() == StatusCode::kInvalidArgument) {
        // Already ended: DELETE forgets it (its result is acknowledged).
        broker.ack(job);
        return response.send(204, "", "");
      }
      if (!s.ok()) return problem(response, s.status(), 0, job);
      response.send(200, "application/json", job_json(s->job) + "\n");
    };
  };
  server_.route("GET", "/v1/jobs/{id}/events", [this](Request& request, Response& response) {
    const Tenant* tenant = authorize(request, response);
    if (tenant == nullptr) return;
    stream_events(options_, *tenant, random_hex(4), request.param("id"), response, stopping_);
  });
  server_.route("GET", "/v1/events", [this](Request& request, Response& response) {
    const Tenant* tenant = authorize(request, response);
    if (tenant == nullptr) return;
    stream_events(options_, *tenant, session_of(*tenant), "", response, stopping_);
  });
  server_.route("GET", "/v1/jobs/{id}", by_id("status"));
  server_.route("DELETE", "/v1/jobs/{id}", by_id("cancel"));
  server_.route("GET", "/v1/jobs/{id}/result", by_id("fetch"));
  server_.route("GET", "/v1/jobs", [this](Request& request, Response& response) {
    const Tenant* tenant = authorize(request, response);
    if (tenant == nullptr) return;
    proto::ListRequest list;
    list.req = next_req();
    list.state = request.query("state").value_or("");
    list.before = request.query("cursor").value_or("");
    try {
      list.limit = static_cast<uint32_t>(std::stoul(request.query("limit").value_or("50")));
    } catch (const std::exception&) {
      return problem(response, 400, StatusCode::kInvalidArgument, "limit is a number of jobs, 1 to 1000");
    }
    auto listed = ask<proto::ListReply>(options_, *tenant, proto::encode(list), list.req);
    if (!listed.ok()) return problem(response, listed.status(), retry_hint(listed.status()));
    std::ostringstream out;
    out << "{\"jobs\":[";
    for (size_t i = 0; i < listed->jobs.size(); ++i) {
      const auto& j = listed->jobs[i];
      std::string one = job_json(j.job);
      one.pop_back();  // the closing brace: more fields follow
      out << (i ? "," : "") << one << ",\"submitted\":" << j.submitted << ",\"finished\":" << j.finished
          << ",\"kept\":" << (j.kept ? "true" : "false") << "}";
    }
    out << "],\"next_cursor\":" << (listed->next.empty() ? "null" : json_quote(listed->next)) << "}\n";
    response.send(200, "application/json", out.str());
  });
  server_.route("GET", "/v1/groups", [this](Request& request, Response& response) {
    const Tenant* tenant = authorize(request, response);
    if (tenant == nullptr) return;
    proto::Ping ping;
    ping.req = next_req();
    auto pong = ask<proto::Pong>(options_, *tenant, proto::encode(ping), ping.req);
    if (!pong.ok()) return problem(response, pong.status(), retry_hint(pong.status()));
    std::ostringstream out;
    out << "{\"groups\":[";
    for (size_t i = 0; i < pong->group_list.size(); ++i) {
      const auto& g = pong->group_list[i];
      out << (i ? "," : "") << "{\"name\":" << json_quote(g.name) << ",\"ranks\":" << g.ranks << ",\"slots\":" << g.slots
          << ",\"running\":" << g.running << ",\"idle_seconds\":" << g.idle_seconds << "}";
    }
    out << "],\"queued\":" << pong->queued << ",\"running\":" << pong->running << ",\"durable\":"
        << (pong->durable ? "true" : "false") << ",\"journal\":" << json_quote(pong->journal)
        << ",\"version\":" << json_quote(pong->version) << "}\n";
    response.send(200, "application/json", out.str());
  });
}

}  // namespace imgq::gateway
