// imgq-gateway: the broker's HTTP API (docs/gateway.md).
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "imgq/common/cli.h"
#include "imgq/common/logging.h"
#include "imgq/common/version.h"
#include "imgq/gateway/gateway.h"
#include "imgq/schemas/messages.h"

namespace {

namespace cli = imgq::cli;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Settings {
  imgq::gateway::GatewayOptions options;
  std::string tokens, server_key, log_level = "info", log_format = "text";
  bool man = false;
};

int run(int argc, char** argv) {
  Settings s;
  auto& o = s.options;
  CLI::App app{"imgq-gateway: an HTTP API for an imgq broker: submit images, follow and fetch their jobs with "
               "curl or any HTTP client",
               "imgq-gateway"};
  app.add_option("--broker", o.broker, "the broker's clients endpoint, HOST:PORT")->type_name("HOST:PORT")
      ->capture_default_str();
  app.add_option("--listen", o.listen, "where to serve HTTP, HOST:PORT (port 0: any free one)")
      ->type_name("HOST:PORT")->capture_default_str();
  app.add_option("--tokens", s.tokens,
                 "who may call the API: a file of `TOKEN TENANT [KEYFILE]` lines, KEYFILE the tenant's "
                 "`imgq keygen` .key (needed with --server-key), relative to the file")
      ->type_name("FILE");
  app.add_flag("--open", o.open, "no tokens: anyone who reaches the port is tenant \"anonymous\"");
  app.add_option("--server-key", s.server_key, "the broker's CURVE public key (its .pub): each tenant then "
                                               "reaches the broker with its own key, which scopes its jobs")
      ->type_name("FILE");
  app.add_option("--max-body-bytes", o.max_body_bytes, "largest image taken; a larger one is refused (413) unread")
      ->type_name("BYTES")->capture_default_str();
  app.add_option("--threads", o.threads, "HTTP requests served at once")->type_name("N")->capture_default_str()
      ->check(cli::range(1, 1024));
  app.add_option("--log-level", s.log_level, "debug, info, warn or error")->type_name("LEVEL")->capture_default_str()
      ->check(CLI::IsMember(cli::log_levels()).description(""));
  app.add_option("--log-format", s.log_format, "text, or json (one object a line)")->type_name("FORMAT")->capture_default_str()
      ->check(CLI::IsMember(cli::log_formats()).description(""));
  app.add_flag("--help-man", s.man, "print the man page")->group("");
  app.footer("Examples:\n"
             "  imgq-gateway --broker 127.0.0.1:5555 --listen 0.0.0.0:8080 --tokens tokens.txt\n"
             "  curl -H 'Authorization: Bearer TOKEN' --data-binary @photo.jpg \\\n"
             "       'http://HOST:8080/v1/process?op=grayscale&op=resize:scale=0.5' -o small.png\n\n" +
             cli::exit_status_text() + "\n");
  app.set_version_flag("--version", imgq::version_line("imgq-gateway", imgq::proto::kVersion));
  if (auto code = cli::parse(app, argc, argv)) return *code;
  if (s.man) {
    std::cout << cli::man_page(app, imgq::version());
    return cli::kExitOk;
  }
  auto fail = [](int code, const std::string& message) {
    std::cerr << "imgq-gateway: error: " << message << "\n";
    return code;
  };
  if (s.tokens.empty() == !o.open) {
    return fail(cli::kExitUsage, "give --tokens FILE (who may call the API), or --open (anyone may)");
  }
  auto broker = cli::parse_endpoint(o.broker, cli::EndpointUse::kConnect, "--broker");
  if (!broker.ok()) return fail(cli::kExitUsage, broker.status().message());
  o.broker = *broker;
  auto listen = cli::parse_listen_address(o.listen, "--listen");
  if (!listen.ok()) return fail(cli::kExitUsage, listen.status().message());
  o.listen = *listen;
  if (!s.tokens.empty()) {
    auto read = imgq::gateway::read_tokens(s.tokens, s.server_key);
    if (!read.ok()) return fail(cli::kExitUsage, read.status().message());
    o.tokens = std::move(*read);
  }
  imgq::init_logging("gateway", s.log_level, s.log_format);
  imgq::gateway::Gateway gateway(o);
  if (auto started = gateway.start(); !started.ok()) return fail(cli::kExitFailed, started.message());
  // The port as bound (--listen HOST:0 takes any free one).
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  spdlog::info("serving http://{}:{} for the broker at {} ({} tenant(s){}{})", host, gateway.port(), o.broker,
               o.tokens.size(), o.open ? ", open to anyone" : "", s.server_key.empty() ? "" : ", CURVE on");
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("stopping: open event streams end, requests in hand finish");
  gateway.stop();
  return cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded("imgq-gateway", [&] { return run(argc, argv); }); }
