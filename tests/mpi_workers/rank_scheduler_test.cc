// The group's scheduling policy (rank_scheduler.h) without MPI: which rank
// takes which job, in which order, when strips wait, when a job expires.
#include "imgq/mpi_workers/rank_scheduler.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

namespace imgq::workers {
namespace {

using std::chrono::milliseconds;
using TimePoint = RankScheduler<std::string>::TimePoint;

const TimePoint kT0{};  // the injected clock's start

ImageHeader header_of(uint64_t width, uint64_t height) { return {.format = "PNG", .width = width, .height = height}; }

TEST(RunsWholeTest, SmallImagesRunWholeLargeOnesInStrips) {
  const uint64_t kMax = 1000;
  EXPECT_TRUE(runs_whole(4, 10, header_of(100, 100), 10'000, kMax));   // at the limit: whole
  EXPECT_FALSE(runs_whole(4, 10, header_of(100, 101), 10'000, kMax));  // one row more: strips
  EXPECT_TRUE(runs_whole(1, 10, header_of(9000, 9000), 10'000, kMax)) << "one rank runs everything whole";
  EXPECT_FALSE(runs_whole(4, 10, header_of(1, 1), 0, kMax)) << "strip_above 0: always strips";
  EXPECT_FALSE(runs_whole(1, 10, header_of(1, 1), 0, kMax)) << "strip_above 0: always strips, even on one rank";
  EXPECT_FALSE(runs_whole(4, kMax + 1, header_of(1, 1), 10'000, kMax)) << "too large for one MPI message";
  EXPECT_TRUE(runs_whole(4, 10, Status::InvalidArgument("not an image"), 10'000, kMax))
      << "an unreadable header runs whole, where decoding says why";
}

TEST(RunsWholeTest, HeaderPixelsThatWouldWrapStillCountAsLarge) {
  // 2^32 x 2^32 wraps to 0 pixels in 64 bits; pixels() saturates instead.
  EXPECT_FALSE(runs_whole(2, 10, header_of(uint64_t{1} << 32, uint64_t{1} << 32), 16'000'000, 1000));
}

TEST(SlotsTest, OnePerRankAndOneWaitingUnlessEverythingRunsInStrips) {
  EXPECT_EQ(slots_for(1, 100), 2);
  EXPECT_EQ(slots_for(4, 100), 5);
  EXPECT_EQ(slots_for(4, 0), 1);
}

TEST(RankSchedulerTest, WholeJobsGoToTheLeaderThenToTheLowestIdleFollower) {
  RankScheduler<std::string> ranks(3);
  for (const char* name : {"a", "b", "c", "d"}) ranks.push(name, /*whole=*/true);
  auto first = ranks.next(kT0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->where, Where::kLeader);
  EXPECT_EQ(*ranks.running(0), "a");
  auto second = ranks.next(kT0);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->where, Where::kFollower);
  EXPECT_EQ(second->rank, 1);
  auto third = ranks.next(kT0);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->rank, 2);
  EXPECT_EQ(*ranks.running(2), "c");
  EXPECT_FALSE(ranks.next(kT0)) << "every rank is busy: d waits";
  EXPECT_EQ(ranks.waiting(), 1u);

  EXPECT_EQ(ranks.finish(1), "b");
  EXPECT_EQ(ranks.running(1), nullptr);
  auto fourth = ranks.next(kT0);
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->where, Where::kFollower);
  EXPECT_EQ(fourth->rank, 1) << "the freed follower";
  EXPECT_EQ(*ranks.running(1), "d");
  EXPECT_FALSE(ranks.done());
  ranks.finish(0);
  ranks.finish(1);
  ranks.finish(2);
  EXPECT_TRUE(ranks.done());
}

TEST(RankSchedulerTest, StripsWaitForEveryRankAndHoldBackWhatComesAfter) {
  RankScheduler<std::string> ranks(2);
  ranks.push("small", true);
  ranks.push("large", false);
  ranks.push("small2", true);
  ASSERT_EQ(ranks.next(kT0)->where, Where::kLeader);
  EXPECT_FALSE(ranks.next(kT0)) << "strips need the leader too";
  EXPECT_EQ(*ranks.first_waiting(), "large") << "and small2 may not pass it, though rank 1 is idle";
  EXPECT_EQ(ranks.finish(0), "small");
  auto strips = ranks.next(kT0);
  ASSERT_TRUE(strips);
  EXPECT_EQ(strips->where, Where::kStrips);
  EXPECT_EQ(*ranks.running(0), "large");
  EXPECT_FALSE(ranks.next(kT0)) << "nothing starts while strips run";
  EXPECT_EQ(ranks.finish(0), "large");
  EXPECT_EQ(ranks.next(kT0)->where, Where::kLeader);
}

TEST(RankSchedulerTest, StripsWaitForBusyFollowers) {
  RankScheduler<std::string> ranks(2);
  ranks.push("a", true);
  ranks.push("b", true);
  ranks.push("large", false);
  ranks.next(kT0);
  ranks.next(kT0);
  ranks.finish(0);
  EXPECT_FALSE(ranks.next(kT0)) << "rank 1 still runs b";
  ranks.finish(1);
  EXPECT_EQ(ranks.next(kT0)->where, Where::kStrips);
}

TEST(RankSchedulerTest, OneRankRunsOneJobAtATime) {
  RankScheduler<std::string> ranks(1);
  ranks.push("a", true);
  ranks.push("b", true);
  EXPECT_EQ(ranks.next(kT0)->where, Where::kLeader);
  EXPECT_FALSE(ranks.next(kT0));
  EXPECT_FALSE(ranks.followers_busy());
  ranks.finish(0);
  EXPECT_EQ(ranks.next(kT0)->where, Where::kLeader);
}

TEST(RankSchedulerTest, AJobWhoseDeadlinePassesWhileWaitingExpiresUnstarted) {
  RankScheduler<std::string> ranks(1);
  ranks.push("runs", true);
  ranks.push("late", true, kT0 + milliseconds(100));
  ranks.push("next", true);
  ASSERT_EQ(ranks.next(kT0)->where, Where::kLeader);
  EXPECT_FALSE(ranks.next(kT0 + milliseconds(99))) << "not yet expired: it waits";
  auto expired = ranks.next(kT0 + milliseconds(100));
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->where, Where::kExpired);
  EXPECT_EQ(expired->expired, "late");
  EXPECT_EQ(*ranks.running(0), "runs") << "the running job is not touched";
  EXPECT_EQ(*ranks.first_waiting(), "next");
}

TEST(RankSchedulerTest, ADeadlineInTheFutureDoesNotStopAStart) {
  RankScheduler<std::string> ranks(2);
  ranks.push("a", true, kT0 + milliseconds(5));
  auto start = ranks.next(kT0);
  ASSERT_TRUE(start);
  EXPECT_EQ(start->where, Where::kLeader);
}

TEST(RankSchedulerTest, DropFirstRemovesTheFirstWaitingJobUnstarted) {
  RankScheduler<std::string> ranks(2);
  ranks.push("cancelled", true);
  ranks.push("b", true);
  EXPECT_EQ(ranks.drop_first(), "cancelled");
  EXPECT_EQ(ranks.next(kT0)->where, Where::kLeader);
  EXPECT_EQ(*ranks.running(0), "b");
}

TEST(RankSchedulerTest, TheLeaderPollsOftenOnlyWhileAFollowerWorks) {
  RankScheduler<std::string> ranks(2);
  EXPECT_EQ(ranks.poll_interval(), kIdlePoll);
  ranks.push("a", true);
  ranks.next(kT0);
  EXPECT_EQ(ranks.poll_interval(), kIdlePoll) << "the leader's own thread wakes its socket";
  ranks.push("b", true);
  ranks.next(kT0);
  EXPECT_EQ(ranks.poll_interval(), kBusyPoll) << "a follower can only be polled";
  ranks.finish(1);
  EXPECT_EQ(ranks.poll_interval(), kIdlePoll);
}

TEST(RankSchedulerTest, RunningOutOfRangeIsNull) {
  RankScheduler<std::string> ranks(2);
  EXPECT_EQ(ranks.running(-1), nullptr);
  EXPECT_EQ(ranks.running(2), nullptr);
  EXPECT_EQ(ranks.running(1), nullptr);
}

}  // namespace
}  // namespace imgq::workers
