// When the broker commits its journal (journal.h): one policy, pure, used
// both to decide now (BrokerCore::commit) and to say when to look again
// (BrokerCore::time_to_next_tick), with one default that production and the
// tests share. Why these numbers: bench/README.md ("the commit gap").
#pragma once

#include <chrono>
#include <optional>

namespace imgq::broker {

using Clock = std::chrono::steady_clock;

struct CommitPolicy {
  // A dispatch or an end is staged this long after it happened, and a
  // commit of such changes alone waits this long after the previous one: a
  // tiny job dispatched, finished and acknowledged within it costs one row
  // update, not three (a crash before loses only that it ran: it runs again).
  std::chrono::milliseconds lazy{50};
  // A submit waits at most this long for its commit while the previous
  // commit is synced or payloads are written (so one commit takes all that
  // came meanwhile); past it the commit goes, waiting for them.
  std::chrono::milliseconds max_delay{100};
  // Under load, the least time between two commits of submits, so that each
  // (and its fsync) takes more of them; 0: at once. A lone submit never waits.
  std::chrono::microseconds gap{2000};
};

// What the policy looks at.
struct CommitState {
  Clock::time_point now;
  Clock::time_point last_commit;
  std::optional<Clock::time_point> oldest_submit;      // submits waiting for their commit
  std::optional<Clock::time_point> oldest_unrecorded;  // a dispatch or end not yet staged
  bool staged = false;    // changes staged in the journal, not yet committed
  bool syncing = false;   // the previous commit, or payload writes, still under way
  bool durable = true;    // the journal survives a crash (a memory journal has nothing to wait for)
  bool stopping = false;  // commit everything now
};

enum class CommitDecision {
  kNothing,  // nothing is due
  kWait,     // something is due, but waits (for the sync, or the gap)
  kCommit,
};

CommitDecision decide_commit(const CommitPolicy& policy, const CommitState& state);

// The next time decide_commit() may answer otherwise (time_point::max() when
// nothing waits).
Clock::time_point next_commit_check(const CommitPolicy& policy, const CommitState& state);

// Whether an unrecorded change first made at `since` is to be staged now.
inline bool record_due(const CommitPolicy& policy, Clock::time_point since, Clock::time_point now, bool stopping) {
  return stopping || now - since >= policy.lazy;
}

}  // namespace imgq::broker
