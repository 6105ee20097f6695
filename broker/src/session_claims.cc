#include "imgq/broker/session_claims.h"

namespace imgq::broker {

bool SessionClaims::claim(const std::string& session, const std::string& owner, Time now) {
  if (owner.empty()) return true;
  auto [it, added] = claims_.try_emplace(session, Claim{owner, now});
  if (!added && it->second.owner != owner) return false;
  it->second.last_used = now;
  return true;
}

bool SessionClaims::taken_by_other(const std::string& session, const std::string& owner) const {
  if (owner.empty()) return false;
  auto it = claims_.find(session);
  return it != claims_.end() && it->second.owner != owner;
}

void SessionClaims::subscribed(const std::string& session, int delta) {
  auto it = subscriptions_.try_emplace(session, 0).first;
  if (delta > 0) {
    it->second += static_cast<size_t>(delta);
  } else if (it->second <= static_cast<size_t>(-delta)) {
    subscriptions_.erase(it);
  } else {
    it->second -= static_cast<size_t>(-delta);
  }
}

void SessionClaims::sweep(Time now, const std::function<bool(const std::string&)>& in_use) {
  for (auto it = claims_.begin(); it != claims_.end();) {
    const bool keep = now - it->second.last_used < kIdle || subscriptions_.count(it->first) != 0 || in_use(it->first);
    it = keep ? std::next(it) : claims_.erase(it);
  }
}

}  // namespace imgq::broker
