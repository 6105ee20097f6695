#include "imgq/broker/commit_policy.h"

#include <algorithm>

namespace imgq::broker {

CommitDecision decide_commit(const CommitPolicy& policy, const CommitState& s) {
  const bool changes_due = s.oldest_unrecorded && record_due(policy, *s.oldest_unrecorded, s.now, s.stopping);
  const bool lazy_due = (s.staged || changes_due) && (s.stopping || s.now - s.last_commit >= policy.lazy);
  if (!s.oldest_submit && !lazy_due) return CommitDecision::kNothing;
  if (s.stopping) return CommitDecision::kCommit;
  const bool overdue = s.oldest_submit && s.now - *s.oldest_submit >= policy.max_delay;
  if (overdue) return CommitDecision::kCommit;
  if (s.syncing) return CommitDecision::kWait;
  if (s.oldest_submit && s.durable && s.now - s.last_commit < policy.gap) return CommitDecision::kWait;
  return CommitDecision::kCommit;
}

Clock::time_point next_commit_check(const CommitPolicy& policy, const CommitState& s) {
  Clock::time_point next = Clock::time_point::max();
  if (s.staged || s.oldest_unrecorded) next = std::min(next, s.last_commit + policy.lazy);
  if (s.oldest_submit) {
    next = std::min(next, *s.oldest_submit + policy.max_delay);
    if (policy.gap.count() > 0 && s.durable) next = std::min(next, s.last_commit + policy.gap);
  }
  return next;
}

}  // namespace imgq::broker
