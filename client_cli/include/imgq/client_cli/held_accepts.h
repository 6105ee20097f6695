// The pump's pure cores, no sockets: time comes in as an argument.
//
// HeldAccepts: the submits waiting for their `accepted`, and what else may
// stand for it. A submit asks the broker to hold its `accepted` back for a
// moment (accept_hold_ms), so that a small job's result answers both at
// once; meanwhile the broker may publish the job's events (it publishes a
// job only once it is stored). So a submit is accepted by whichever comes
// first:
//   - its `accepted` (or a refusal) answering its req: take();
//   - a result answering its req: take() as well, before the result is handled;
//   - an event of this session's job that names the submit's file, when it
//     is the only submit waiting with that name: on_event() (two waiting
//     submits of one file are left to their answers).
// Events of jobs not yet known here are kept, the latest of each job, up
// to a bound, until the job is known (take_event()).
//
// CommitTimer: when the results placed and settled since the last group
// commit are made durable and acknowledged: when forced, once the oldest
// has waited 50 ms, once 256 wait, or when nothing else is in flight.
//
// Not thread-safe; one pump owns them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "imgq/schemas/messages.h"

namespace imgq::client {

class HeldAccepts {
 public:
  using Id = uint64_t;

  // `event_cap`: the most early events kept (the pump's window and some).
  explicit HeldAccepts(size_t event_cap) : event_cap_(event_cap) {}

  // The submit `req` of item `id`, whose jobs' events name it `name`, was sent.
  void sent(uint64_t req, Id id, std::string name) { waiting_[req] = {id, std::move(name)}; }
  // Its answer (or a result answering it) came: the item, no longer waiting.
  std::optional<Id> take(uint64_t req);
  // An event of a job of this session not known here: kept (the latest of
  // each job), and the item it accepts, no longer waiting, if any.
  std::optional<Id> on_event(proto::JobState state);
  // The event kept for `job`, which is known now; removed.
  std::optional<proto::JobState> take_event(const std::string& job);
  // Every item waiting, in the order sent; all forgotten (a broker restart
  // lost them: they are sent again).
  std::vector<Id> take_all();

  size_t size() const { return waiting_.size(); }
  bool empty() const { return waiting_.empty(); }

 private:
  struct Waiting {
    Id id;
    std::string name;
  };
  size_t event_cap_;
  std::map<uint64_t, Waiting> waiting_;                  // req -> item
  std::map<std::string, proto::JobState> events_;        // job -> its latest event
  std::map<uint64_t, std::string> event_order_;          // arrival -> job, the oldest first
  std::map<std::string, uint64_t> event_arrival_;        // job -> arrival
  uint64_t arrivals_ = 0;
};

class CommitTimer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kMaxWait{50};
  static constexpr size_t kMaxBatch = 256;

  // A result joined the batch at `now`; the first one starts the wait.
  void added(Clock::time_point now) {
    if (pending_++ == 0) oldest_ = now;
  }
  // Whether to commit now, the batch holding `pending()` and `in_flight`
  // jobs still going.
  bool due(Clock::time_point now, size_t in_flight, bool force) const {
    if (force) return true;
    if (pending_ == 0) return false;
    return now - oldest_ >= kMaxWait || pending_ >= kMaxBatch || in_flight == 0;
  }
  // The batch was committed (or given up).
  void committed() { pending_ = 0; }
  size_t pending() const { return pending_; }

 private:
  size_t pending_ = 0;
  Clock::time_point oldest_{};
};

}  // namespace imgq::client
