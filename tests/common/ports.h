// Loopback ports for tests that need one a server cannot report back.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace imgq::testing {

// A TCP port nobody listens on now (for servers that cannot report theirs).
// Another process may take it before the server does; prefer binding
// 127.0.0.1:* wherever the server can say which port it got.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A loopback port that is bound but never listened on, for as long as this
// object lives: every connect to it is refused, and no other process can
// take it meanwhile. (A zmq listener closed to free its port closes in its
// I/O thread, later: it may still accept the first connect.)
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~RefusingPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  int port() const { return port_; }  // 0 if no port could be bound
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string endpoint() const { return "tcp://" + address(); }

 private:
  int fd_;
  int port_ = 0;
};

}  // namespace imgq::testing
