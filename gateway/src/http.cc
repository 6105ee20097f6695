#include "imgq/gateway/http.h"

#include <chrono>
#include <cstring>

#include <civetweb.h>
#include <spdlog/spdlog.h>

namespace imgq::gateway {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    if (path[start] == '/') {
      ++start;
      continue;
    }
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    out.emplace_back(path.substr(start, end - start));
    start = end;
  }
  return out;
}

bool lower_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// Decodes %XX and '+' of a query string's part.
std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

Request::Request(mg_connection* conn) : conn_(conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  method_ = info->request_method != nullptr ? info->request_method : "";
  path_ = info->local_uri_raw != nullptr ? info->local_uri_raw : "";
  query_string_ = info->query_string != nullptr ? info->query_string : "";
  content_length_ = info->content_length;
}

std::vector<std::string> Request::query_all(const std::string& name) const {
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= query_string_.size()) {
    size_t end = query_string_.find('&', start);
    if (end == std::string::npos) end = query_string_.size();
    std::string_view part(query_string_.data() + start, end - start);
    const size_t eq = part.find('=');
    if (url_decode(part.substr(0, eq)) == name) {
      values.push_back(eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1)));
    }
    start = end + 1;
  }
  return values;
}

std::optional<std::string> Request::query(const std::string& name) const {
  auto all = query_all(name);
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::optional<std::string> Request::header(const std::string& name) const {
  const mg_request_info* info = mg_get_request_info(conn_);
  for (int i = 0; i < info->num_headers; ++i) {
    if (lower_equal(info->http_headers[i].name, name)) return std::string(info->http_headers[i].value);
  }
  return std::nullopt;
}

long long Request::read(char* buffer, size_t n) { return mg_read(conn_, buffer, n); }

Result<std::string> Request::body(size_t limit) {
  if (content_length_ > static_cast<long long>(limit)) {
    return Status::TooLarge("the body is " + std::to_string(content_length_) + " bytes; at most " +
                            std::to_string(limit) + " are taken");
  }
  std::string out;
  if (content_length_ > 0) out.reserve(static_cast<size_t>(content_length_));
  // On the heap: civetweb's worker threads have small stacks.
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    const long long n = read(buffer.data(), buffer.size());
    if (n < 0) return Status::IoError("the body could not be read");
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      return Status::TooLarge("the body is more than " + std::to_string(limit) + " bytes");
    }
    out.append(buffer.data(), static_cast<size_t>(n));
  }
  return out;
}

namespace {
// The status line and headers, as HTTP/1.1 has them.
std::string head(int status, const std::string& content_type,
                 const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  if (!content_type.empty()) out += "Content-Type: " + content_type + "\r\n";
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  return out;
}
}  // namespace

void Response::send(int status, const std::string& content_type, std::string_view body,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
  status_ = status;
  const std::string h = head(status, content_type, headers) + "Content-Length: " + std::to_string(body.size()) +
                        "\r\n\r\n";
  mg_write(conn_, h.data(), h.size());
  if (!body.empty()) mg_write(conn_, body.data(), body.size());
}

void Response::start(int status, const std::string& content_type,
                     const std::vector<std::pair<std::string, std::string>>& headers) {
  status_ = status;
  const std::string h = head(status, content_type, headers) + "Transfer-Encoding: chunked\r\n\r\n";
  mg_write(conn_, h.data(), h.size());
}

bool Response::chunk(std::string_view data) {
  if (data.empty()) return true;
  return mg_send_chunk(conn_, data.data(), static_cast<unsigned>(data.size())) > 0;
}

void Response::end() { mg_send_chunk(conn_, "", 0); }

HttpServer::HttpServer() { mg_init_library(0); }

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& method, const std::string& pattern, Handler handler) {
  routes_.push_back({method, split_path(pattern), pattern, std::move(handler)});
}

Status HttpServer::start(const std::string& listen, int threads) {
  const std::string thread_count = std::to_string(threads);
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads", thread_count.c_str(),
                           "enable_keep_alive", "yes", nullptr};
  mg_callbacks callbacks{};
  context_ = mg_start(&callbacks, this, options);
  if (context_ == nullptr) {
    return Status::Unavailable("cannot listen for HTTP on " + listen +
                               " (the port is in use, or the address is not this host's)");
  }
  mg_set_request_handler(context_, "/", &HttpServer::dispatch, this);
  mg_server_port ports[4];
  if (mg_get_server_ports(context_, 4, ports) > 0) port_ = ports[0].port;
  return Status::Ok();
}

void HttpServer::stop() {
  if (context_ != nullptr) mg_stop(context_);
  context_ = nullptr;
}

int HttpServer::dispatch(mg_connection* conn, void* self) { return static_cast<HttpServer*>(self)->handle(conn); }

int HttpServer::handle(mg_connection* conn) {
  const auto started = std::chrono::steady_clock::now();
  Request request(conn);
  Response response(conn);
  const std::vector<std::string> segments = split_path(request.path());
  const Route* found = nullptr;
  bool path_matched = false;
  for (const Route& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool match = true;
    for (size_t i = 0; i < segments.size() && match; ++i) {
      const std::string& s = r.segments[i];
      if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
        params[s.substr(1, s.size() - 2)] = segments[i];
      } else {
        match = s == segments[i];
      }
    }
    if (!match) continue;
    path_matched = true;
    if (r.method != request.method()) continue;
    request.params() = std::move(params);
    found = &r;
    break;
  }
  std::string route_name = "unrouted";
  try {
    if (found != nullptr) {
      route_name = found->pattern;
      found->handler(request, response);
    } else {
      request.params()["allowed"] = path_matched ? "no" : "";
      if (unrouted_) unrouted_(request, response);
    }
  } catch (const std::exception& e) {
    // Never through civetweb's C frames: a bug answers 500, the server stays.
    if (!response.sent()) {
      response.send(500, "application/problem+json",
                    std::string("{\"type\":\"urn:imgq:problem:internal\",\"title\":\"Internal Server Error\","
                                "\"status\":500,\"detail\":\"a bug in imgq-gateway; its log says more\"}\n"));
    }
    spdlog::error("{} {}: {}", request.method(), request.path(), e.what());
  }
  if (!response.sent()) response.send(500, "text/plain", "no response\n");
  if (done_) {
    done_(route_name, request.method(), response.status(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  return response.status();
}

const char* reason_phrase(int status) { return mg_get_response_code_text(nullptr, status); }

}  // namespace imgq::gateway
