#include "imgq/common/curve.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "imgq/common/file_io.h"
#include "imgq/common/zmq_frames.h"

namespace imgq {
namespace {

namespace fs = std::filesystem;

bool is_z85_key(const std::string& s) {
  static const std::string kZ85 =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return s.size() == 40 && s.find_first_not_of(kZ85) == std::string::npos;
}

// A key or allow-list file; errors name it.
Result<std::string> read_text(const fs::path& path) {
  auto text = read_file_string(path);
  if (!text.ok()) return text.status().WithContext(path.string());
  return text;
}

// "WORD KEY" lines of a .key file.
Result<std::map<std::string, std::string>> key_lines(const fs::path& path) {
  IMGQ_ASSIGN_OR_RETURN(std::string text, read_text(path));
  std::map<std::string, std::string> lines;
  std::istringstream in(text);
  for (std::string word, key; in >> word >> key;) lines[word] = key;
  return lines;
}


}  // namespace

bool has_curve() { return zmq_has("curve") == 1; }

Result<KeyPair> generate_key_pair() {
  if (!has_curve()) return Status::Unsupported("this libzmq was built without CURVE");
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) return Status::Internal("zmq_curve_keypair failed");
  return KeyPair{pub, sec};
}

Status write_key_pair(const fs::path& base, const KeyPair& pair) {
  const fs::path pub = fs::path(base.string() + ".pub"), key = fs::path(base.string() + ".key");
  for (const fs::path& p : {pub, key}) {
    if (fs::exists(p)) return Status::InvalidArgument(p.string() + " exists; not overwriting a key");
  }
  const std::string secret_text = "public " + pair.public_key + "\nsecret " + pair.secret_key + "\n";
  const std::string public_text = pair.public_key + "\n";
  IMGQ_RETURN_IF_ERROR(write_file(key, {reinterpret_cast<const uint8_t*>(secret_text.data()), secret_text.size()}));
  ::chmod(key.c_str(), 0600);
  return write_file(pub, {reinterpret_cast<const uint8_t*>(public_text.data()), public_text.size()});
}

Result<std::string> read_public_key(const fs::path& path) {
  IMGQ_ASSIGN_OR_RETURN(std::string text, read_text(path));
  std::istringstream in(text);
  std::string first, second;
  in >> first >> second;
  const std::string key = first == "public" ? second : first;
  if (!is_z85_key(key)) {
    return Status::InvalidArgument(path.string() + " holds no CURVE public key (40 Z85 characters)");
  }
  return key;
}

Result<KeyPair> read_key_pair(const fs::path& path) {
  IMGQ_ASSIGN_OR_RETURN(auto lines, key_lines(path));
  KeyPair pair{lines["public"], lines["secret"]};
  if (!is_z85_key(pair.public_key) || !is_z85_key(pair.secret_key)) {
    return Status::InvalidArgument(path.string() +
                                   " is not an imgq key file (\"public KEY\" and \"secret KEY\" lines; "
                                   "make one with imgq keygen)");
  }
  return pair;
}

Result<std::set<std::string>> read_allow_list(const fs::path& path) {
  IMGQ_ASSIGN_OR_RETURN(std::string text, read_text(path));
  std::set<std::string> keys;
  std::istringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    // '#' is a Z85 digit, so it starts a comment only as a word of its own
    // that is not itself a key; words after the key are ignored too.
    std::istringstream words(line);
    std::string key;
    if (!(words >> key)) continue;
    if (key == "public") words >> key;
    if (!is_z85_key(key) && key.front() == '#') continue;
    if (!is_z85_key(key)) {
      return Status::InvalidArgument(path.string() + ":" + std::to_string(number) +
                                     ": not a CURVE public key (40 Z85 characters)");
    }
    keys.insert(key);
  }
  return keys;
}

Result<CurveOptions> load_curve_options(const std::string& server_key_file, const std::string& key_file) {
  CurveOptions options;
  if (server_key_file.empty() && key_file.empty()) return options;
  if (server_key_file.empty() || key_file.empty()) {
    return Status::InvalidArgument("CURVE needs both --server-key (the broker's .pub) and --key (this peer's .key)");
  }
  if (!has_curve()) return Status::Unsupported("this libzmq was built without CURVE");
  IMGQ_ASSIGN_OR_RETURN(options.server_public, read_public_key(server_key_file));
  IMGQ_ASSIGN_OR_RETURN(options.own, read_key_pair(key_file));
  return options;
}

void apply_curve_client(zmq::socket_t& socket, const CurveOptions& options) {
  if (!options.enabled()) return;
  // 41 bytes: libzmq reads a Z85 key with its terminating NUL.
  zmq_setsockopt(socket.handle(), ZMQ_CURVE_SERVERKEY, options.server_public.c_str(), 41);
  zmq_setsockopt(socket.handle(), ZMQ_CURVE_PUBLICKEY, options.own.public_key.c_str(), 41);
  zmq_setsockopt(socket.handle(), ZMQ_CURVE_SECRETKEY, options.own.secret_key.c_str(), 41);
}

void apply_curve_server(zmq::socket_t& socket, const std::string& secret_key, const std::string& domain) {
  socket.set(zmq::sockopt::curve_server, 1);
  zmq_setsockopt(socket.handle(), ZMQ_CURVE_SECRETKEY, secret_key.c_str(), 41);
  socket.set(zmq::sockopt::zap_domain, domain);
}

// ---- ZAP (RFC 27) ----

ZapHandler::ZapHandler(zmq::context_t& context, std::map<std::string, std::set<std::string>> allowed)
    : context_(context), allowed_(std::move(allowed)) {}

ZapHandler::~ZapHandler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status ZapHandler::start() {
  try {
    socket_.emplace(context_, zmq::socket_type::rep);
    socket_->set(zmq::sockopt::linger, 0);
    socket_->bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    socket_.reset();
    return Status::Internal(std::string("cannot start the ZAP handler (CURVE would let every peer in): ") +
                            e.what());
  }
  thread_ = std::thread([this] { run(); });
  return Status::Ok();
}

void ZapHandler::run() {
  Frames request;
  while (!stop_.load()) {
    zmq::pollitem_t items[] = {{socket_->handle(), 0, ZMQ_POLLIN, 0}};
    if (poll_sockets(items, 1, std::chrono::milliseconds(100)) <= 0) continue;
    recv_frames(*socket_, request, 8, /*dontwait=*/false);
    // version, request id, domain, address, identity, mechanism, credentials
    std::string status = "400", text = "not on the allow-list", user;
    if (request.size() < 6 || request[0] != "1.0") {
      status = "500";
      text = "malformed ZAP request";
    } else if (request[5] == "CURVE" && request.size() == 7 && request[6].size() == 32) {
      char z85[41];
      zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(request[6].data()), 32);
      auto list = allowed_.find(request[2]);
      if (list != allowed_.end() && list->second.count(z85) != 0) {
        status = "200";
        text = "OK";
        user = z85;
      }
    } else {
      text = "CURVE required";
    }
    if (status != "200") ++refused_;
    send_frames(*socket_, {"1.0", request.size() > 1 ? request[1] : "", status, text, user, ""});
  }
}

}  // namespace imgq
