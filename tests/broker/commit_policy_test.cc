// The commit policy as a pure function of the time and the journal's state:
// what commits now, what waits, and until when (commit_policy.h).
#include "imgq/broker/commit_policy.h"

#include <gtest/gtest.h>

namespace imgq::broker {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

class CommitPolicyTest : public ::testing::Test {
 protected:
  CommitState at(milliseconds since_last_commit) {
    CommitState s;
    s.last_commit = t0_;
    s.now = t0_ + since_last_commit;
    return s;
  }
  const CommitPolicy policy_;  // the default: what production runs
  const Clock::time_point t0_ = Clock::time_point{} + std::chrono::hours(1);
};

TEST_F(CommitPolicyTest, TheDefaultIsProductions) {
  EXPECT_EQ(policy_.lazy, milliseconds(50));
  EXPECT_EQ(policy_.max_delay, milliseconds(100));
  EXPECT_EQ(policy_.gap, microseconds(2000));
}

TEST_F(CommitPolicyTest, NothingWaitingIsNothingToDo) {
  auto s = at(milliseconds(500));
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kNothing);
  EXPECT_EQ(next_commit_check(policy_, s), Clock::time_point::max());
}

TEST_F(CommitPolicyTest, ALoneSubmitCommitsAtOnceAndOneUnderLoadWaitsOutTheGap) {
  auto s = at(milliseconds(10));
  s.oldest_submit = s.now;
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kCommit) << "the last commit was 10 ms ago";
  s = at(milliseconds(1));
  s.oldest_submit = s.now;
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kWait) << "1 ms after the last commit";
  EXPECT_EQ(next_commit_check(policy_, s), t0_ + policy_.gap);
  s.durable = false;
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kCommit) << "nothing to sync: no reason to wait";
}

TEST_F(CommitPolicyTest, ASyncUnderWayHoldsSubmitsUpToTheMaximumDelay) {
  auto s = at(milliseconds(30));
  s.syncing = true;
  s.oldest_submit = s.now - milliseconds(99);
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kWait);
  // (The sync's end wakes the broker's loop by itself; the policy names the
  // latest time to look again.)
  EXPECT_LE(next_commit_check(policy_, s), *s.oldest_submit + policy_.max_delay);
  s.oldest_submit = s.now - milliseconds(100);
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kCommit) << "overdue: it commits, waiting for the sync";
}

TEST_F(CommitPolicyTest, DispatchesAndEndsAreStagedLazily) {
  auto s = at(milliseconds(20));
  s.oldest_unrecorded = s.now - milliseconds(20);
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kNothing) << "20 ms old: not due";
  EXPECT_FALSE(record_due(policy_, *s.oldest_unrecorded, s.now, false));
  EXPECT_EQ(next_commit_check(policy_, s), t0_ + policy_.lazy);
  s = at(milliseconds(50));
  s.oldest_unrecorded = s.now - milliseconds(50);
  EXPECT_TRUE(record_due(policy_, *s.oldest_unrecorded, s.now, false));
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kCommit);
  s = at(milliseconds(1));
  s.oldest_unrecorded = s.now - milliseconds(1);
  s.stopping = true;
  EXPECT_EQ(decide_commit(policy_, s), CommitDecision::kCommit) << "stopping: everything now";
}

}  // namespace
}  // namespace imgq::broker
