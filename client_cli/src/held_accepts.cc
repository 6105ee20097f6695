#include "imgq/client_cli/held_accepts.h"

#include <algorithm>

namespace imgq::client {

std::optional<HeldAccepts::Id> HeldAccepts::take(uint64_t req) {
  auto it = waiting_.find(req);
  if (it == waiting_.end()) return std::nullopt;
  const Id id = it->second.id;
  waiting_.erase(it);
  return id;
}

std::optional<HeldAccepts::Id> HeldAccepts::on_event(proto::JobState state) {
  auto match = waiting_.end();
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->second.name != state.name) continue;
    if (match != waiting_.end()) {  // two waiting submits of one file: neither
      match = waiting_.end();
      break;
    }
    match = it;
  }
  const std::string job = state.job;
  if (auto known = event_arrival_.find(job); known != event_arrival_.end()) {
    event_order_.erase(known->second);
  } else if (events_.size() >= event_cap_ && !event_order_.empty()) {
    const auto oldest = event_order_.begin();
    events_.erase(oldest->second);
    event_arrival_.erase(oldest->second);
    event_order_.erase(oldest);
  }
  event_arrival_[job] = arrivals_;
  event_order_[arrivals_++] = job;
  events_[job] = std::move(state);
  if (match == waiting_.end()) return std::nullopt;
  const Id id = match->second.id;
  waiting_.erase(match);
  return id;
}

std::optional<proto::JobState> HeldAccepts::take_event(const std::string& job) {
  auto it = events_.find(job);
  if (it == events_.end()) return std::nullopt;
  proto::JobState state = std::move(it->second);
  events_.erase(it);
  event_order_.erase(event_arrival_.at(job));
  event_arrival_.erase(job);
  return state;
}

std::vector<HeldAccepts::Id> HeldAccepts::take_all() {
  std::vector<Id> ids;
  for (const auto& [req, waiting] : waiting_) ids.push_back(waiting.id);
  waiting_.clear();
  return ids;
}

}  // namespace imgq::client
