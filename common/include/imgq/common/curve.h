// CurveZMQ for imgq's sockets: key files, socket setup, the broker's ZAP
// handler with allow-lists (connection_monitor.h turns a refused handshake
// into an error a person can act on).
//
// Key files (imgq keygen NAME): NAME.pub holds the Z85 public key on one
// line; NAME.key holds "public KEY" and "secret KEY" lines (mode 0600). An
// allow-list file holds one Z85 public key per line (a word of its own
// starting with # begins a comment line; # is also a Z85 digit),
// so `cat alice.pub bob.pub > clients.allow` makes one.
//
// Without a ZAP handler libzmq lets every CURVE client in; the broker starts
// this one before binding and refuses to start if it cannot.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "imgq/common/status.h"

namespace imgq {

struct KeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;
};

bool has_curve();  // libzmq was built with CURVE
Result<KeyPair> generate_key_pair();
// Writes BASE.pub and BASE.key; refuses to overwrite.
Status write_key_pair(const std::filesystem::path& base, const KeyPair& pair);
// A .pub file, or the public line of a .key file.
Result<std::string> read_public_key(const std::filesystem::path& path);
Result<KeyPair> read_key_pair(const std::filesystem::path& path);
Result<std::set<std::string>> read_allow_list(const std::filesystem::path& path);

// A client's or worker group's side. Off when server_public is empty.
struct CurveOptions {
  std::string server_public;
  KeyPair own;
  bool enabled() const { return !server_public.empty(); }
};
// From --server-key FILE and --key FILE; both or neither.
Result<CurveOptions> load_curve_options(const std::string& server_key_file, const std::string& key_file);
void apply_curve_client(zmq::socket_t& socket, const CurveOptions& options);
// The broker's side: `domain` picks the allow-list the ZAP handler applies.
void apply_curve_server(zmq::socket_t& socket, const std::string& secret_key, const std::string& domain);

// Answers ZAP requests on inproc://zeromq.zap.01 of `context`: a CURVE peer
// is let in when its public key is on its domain's allow-list.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, std::map<std::string, std::set<std::string>> allowed);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;
  // Binds the ZAP endpoint and starts answering; an error when it cannot.
  Status start();
  uint64_t refused() const { return refused_.load(); }

 private:
  void run();
  zmq::context_t& context_;
  std::map<std::string, std::set<std::string>> allowed_;
  std::optional<zmq::socket_t> socket_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace imgq
