// A small HTTP layer over civetweb (Debian's libcivetweb, the server
// prometheus-cpp already links for /metrics): routes with {parameters},
// a request whose body is read as a stream, responses whole or chunked
// (Server-Sent Events, results that stream out). Handlers run on
// civetweb's worker threads, one request each.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/common/status.h"

struct mg_connection;
struct mg_context;

namespace imgq::gateway {

class Request {
 public:
  explicit Request(mg_connection* conn);
  const std::string& method() const { return method_; }
  const std::string& path() const { return path_; }
  // A query parameter (decoded); nullopt when absent. `all` for one given
  // more than once (?op=a&op=b).
  std::optional<std::string> query(const std::string& name) const;
  std::vector<std::string> query_all(const std::string& name) const;
  std::optional<std::string> header(const std::string& name) const;
  // The declared body length; -1 when none was declared (chunked).
  long long content_length() const { return content_length_; }
  // Reads up to `n` bytes of the body: 0 at its end, -1 on error.
  long long read(char* buffer, size_t n);
  // The whole body, up to `limit` bytes: TooLarge past it.
  Result<std::string> body(size_t limit);
  // A {name} of the route.
  const std::string& param(const std::string& name) const { return params_.at(name); }
  std::map<std::string, std::string>& params() { return params_; }
  mg_connection* connection() const { return conn_; }

 private:
  mg_connection* conn_;
  std::string method_, path_, query_string_;
  long long content_length_ = -1;
  std::map<std::string, std::string> params_;
};

class Response {
 public:
  explicit Response(mg_connection* conn) : conn_(conn) {}
  // A whole response.
  void send(int status, const std::string& content_type, std::string_view body,
            const std::vector<std::pair<std::string, std::string>>& headers = {});
  // A chunked response: start(), then chunks, then end().
  void start(int status, const std::string& content_type,
             const std::vector<std::pair<std::string, std::string>>& headers = {});
  // False when the peer has gone.
  bool chunk(std::string_view data);
  void end();
  int status() const { return status_; }
  bool sent() const { return status_ != 0; }

 private:
  mg_connection* conn_;
  int status_ = 0;
};

using Handler = std::function<void(Request&, Response&)>;

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // `pattern`: a path with {name} segments, e.g. /v1/jobs/{id}/result.
  void route(const std::string& method, const std::string& pattern, Handler handler);
  // Called for every request no route took (404/405 by default) and after
  // each request with its status and seconds (for metrics and logs).
  void on_unrouted(Handler handler) { unrouted_ = std::move(handler); }
  void on_done(std::function<void(const std::string& route, const std::string& method, int status, double seconds)> f) {
    done_ = std::move(f);
  }
  // Listens on HOST:PORT (port 0: any free one) with `threads` workers.
  Status start(const std::string& listen, int threads);
  void stop();
  // The port bound (after start()).
  int port() const { return port_; }

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{x}" for a parameter
    std::string pattern;
    Handler handler;
  };
  static int dispatch(mg_connection* conn, void* self);
  int handle(mg_connection* conn);

  std::vector<Route> routes_;
  Handler unrouted_;
  std::function<void(const std::string&, const std::string&, int, double)> done_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

// The reason phrase of an HTTP status.
const char* reason_phrase(int status);

}  // namespace imgq::gateway
