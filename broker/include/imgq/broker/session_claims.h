// Who owns each session on the progress socket (with CURVE).
//
// Every topic the broker publishes starts with a session: a job's id is its
// session and 8 more hex digits, and a pong is published under its session.
// So the progress socket keeps clients apart by sessions: a session belongs
// to the first CURVE key that uses it (pings or submits with it, subscribes
// to it, or gets a job id made from it), and no other key may subscribe to
// it, ping or submit with it. A claim lasts while jobs carry the session or
// subscriptions name it, and `kIdle` after its last use. Pure data
// structure: no sockets; the caller passes the time. Without CURVE (an empty
// owner) nothing is claimed and everything is allowed.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>

namespace imgq::broker {

class SessionClaims {
 public:
  using Time = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::hours kIdle{1};

  // Whether `owner` may use `session`; a free one becomes `owner`'s.
  bool claim(const std::string& session, const std::string& owner, Time now);
  // Whether `session` is claimed by a key other than `owner`.
  bool taken_by_other(const std::string& session, const std::string& owner) const;
  // Subscriptions naming the session (a topic that starts with it), counted
  // whoever sent them: one more or one fewer.
  void subscribed(const std::string& session, int delta);
  // Drops claims unused for kIdle that no subscription names and for which
  // `in_use` (sessions of jobs the broker holds) says false.
  void sweep(Time now, const std::function<bool(const std::string&)>& in_use);
  size_t size() const { return claims_.size(); }

 private:
  struct Claim {
    std::string owner;
    Time last_used;
  };
  std::unordered_map<std::string, Claim> claims_;
  std::unordered_map<std::string, size_t> subscriptions_;  // by session
};

}  // namespace imgq::broker
