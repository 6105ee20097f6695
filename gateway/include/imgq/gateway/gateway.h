// imgq-gateway: an HTTP API for the broker. A client of the broker like any
// other: every HTTP request opens its own connection to the broker with its
// tenant's CURVE key, so scoping is the broker's, and several gateways can
// run behind one load balancer. See docs/gateway.md.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "imgq/client_cli/client.h"
#include "imgq/common/curve.h"
#include "imgq/common/status.h"
#include "imgq/gateway/http.h"

namespace imgq::gateway {

// Who a bearer token is: a tenant's name and, with CURVE, its key pair.
struct Tenant {
  std::string name;
  CurveOptions curve;  // disabled without CURVE
};

// A tokens file: one `TOKEN TENANT [KEYFILE]` a line; blank lines and lines
// starting with # are ignored. KEYFILE (an `imgq keygen` .key file, relative
// to the tokens file's folder) is required when `server_key` is set.
Result<std::map<std::string, Tenant>> read_tokens(const std::string& path, const std::string& server_key);

struct GatewayOptions {
  std::string broker = client::kDefaultBroker;
  std::string progress;  // empty: as the broker announces it
  std::string listen = "127.0.0.1:8080";
  int threads = 16;
  std::map<std::string, Tenant> tokens;  // bearer token -> tenant
  bool open = false;                     // no tokens: everyone is tenant "anonymous"
  size_t max_body_bytes = size_t{256} << 20;
  client::Millis broker_timeout{30'000};  // a request's wait for the broker
  std::string cors_origin;                // empty: no CORS headers
};

class Gateway {
 public:
  explicit Gateway(GatewayOptions options);
  ~Gateway();
  Status start();
  void stop();
  int port() const { return server_.port(); }

 private:
  // The tenant of a request's bearer token, or an answered 401.
  const Tenant* authorize(Request& request, Response& response);
  void routes();
  void submit(Request& request, Response& response, bool wait);

  GatewayOptions options_;
  Tenant anonymous_;
  std::atomic<bool> stopping_{false};
  HttpServer server_;
};

// The HTTP status that fits a protocol error.
int http_status_of(StatusCode code);

}  // namespace imgq::gateway
