// The pump's pure cores (held_accepts.h), without sockets or real time, and
// the check of a result's bytes against its checksum.
#include "imgq/client_cli/held_accepts.h"

#include <gtest/gtest.h>

#include "imgq/client_cli/client.h"
#include "imgq/common/checksum.h"

namespace imgq::client {
namespace {

proto::JobState event(const std::string& job, const std::string& name, const std::string& state = "queued") {
  proto::JobState s;
  s.job = job;
  s.name = name;
  s.state = state;
  return s;
}

TEST(HeldAccepts, AnAnswerOrAResultTakesItsSubmitOnce) {
  HeldAccepts held(8);
  held.sent(1, 10, "a.png");
  held.sent(2, 20, "b.png");
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(held.take(2), std::optional<uint64_t>(20));
  EXPECT_EQ(held.take(2), std::nullopt) << "answered once";
  EXPECT_EQ(held.take(7), std::nullopt) << "never sent";
  EXPECT_EQ(held.take(1), std::optional<uint64_t>(10));
  EXPECT_TRUE(held.empty());
}

TEST(HeldAccepts, AnEventNamingTheOnlyWaitingSubmitOfItsFileAcceptsIt) {
  HeldAccepts held(8);
  held.sent(1, 10, "a.png");
  held.sent(2, 20, "b.png");
  EXPECT_EQ(held.on_event(event("s-1", "b.png")), std::optional<uint64_t>(20));
  EXPECT_EQ(held.take(2), std::nullopt) << "no longer waiting: its late `accepted` is passed over";
  // The event itself is kept for the job, once.
  auto kept = held.take_event("s-1");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->name, "b.png");
  EXPECT_EQ(held.take_event("s-1"), std::nullopt);
  // A name no submit waits with accepts nothing, but is kept.
  EXPECT_EQ(held.on_event(event("s-9", "z.png")), std::nullopt);
  EXPECT_TRUE(held.take_event("s-9").has_value());
  EXPECT_EQ(held.size(), 1u);
}

TEST(HeldAccepts, TwoWaitingSubmitsOfOneFileAreLeftToTheirAnswers) {
  HeldAccepts held(8);
  held.sent(1, 10, "same.png");
  held.sent(2, 20, "same.png");
  EXPECT_EQ(held.on_event(event("s-1", "same.png")), std::nullopt);
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(held.take(1), std::optional<uint64_t>(10));
  // Now one waits with that name: the next event accepts it.
  EXPECT_EQ(held.on_event(event("s-2", "same.png")), std::optional<uint64_t>(20));
}

TEST(HeldAccepts, KeepsTheLatestEventOfEachJobAndAtMostTheBound) {
  HeldAccepts held(3);
  held.on_event(event("s-1", "a", "queued"));
  held.on_event(event("s-1", "a", "running"));  // replaces, takes no room
  held.on_event(event("s-2", "b"));
  held.on_event(event("s-3", "c"));
  EXPECT_EQ(held.take_event("s-1")->state, "running");
  held.on_event(event("s-1", "a", "done"));
  held.on_event(event("s-4", "d"));  // a fourth job: the oldest kept (s-2) goes
  EXPECT_EQ(held.take_event("s-2"), std::nullopt);
  EXPECT_TRUE(held.take_event("s-3").has_value());
  EXPECT_EQ(held.take_event("s-1")->state, "done");
  EXPECT_TRUE(held.take_event("s-4").has_value());
}

TEST(HeldAccepts, ABrokerRestartGivesBackEveryWaitingSubmitInOrder) {
  HeldAccepts held(8);
  held.sent(3, 30, "c");
  held.sent(1, 10, "a");
  held.sent(2, 20, "b");
  EXPECT_EQ(held.take_all(), (std::vector<uint64_t>{10, 20, 30}));
  EXPECT_TRUE(held.empty());
}

TEST(CommitTimer, CommitsAfter50MsOr256ResultsOrWhenNothingElseRuns) {
  using std::chrono::milliseconds;
  const CommitTimer::Clock::time_point t0{};
  CommitTimer timer;
  EXPECT_FALSE(timer.due(t0, 5, false)) << "nothing to commit";
  EXPECT_TRUE(timer.due(t0, 5, true)) << "forced";
  timer.added(t0);
  timer.added(t0 + milliseconds(30));  // the wait runs from the first
  EXPECT_FALSE(timer.due(t0 + milliseconds(49), 5, false));
  EXPECT_TRUE(timer.due(t0 + milliseconds(50), 5, false));
  EXPECT_TRUE(timer.due(t0 + milliseconds(1), 0, false)) << "nothing else in flight";
  timer.committed();
  EXPECT_EQ(timer.pending(), 0u);
  EXPECT_FALSE(timer.due(t0 + milliseconds(500), 0, false));
  const auto t1 = t0 + milliseconds(1000);
  for (size_t i = 0; i < CommitTimer::kMaxBatch - 1; ++i) timer.added(t1);
  EXPECT_FALSE(timer.due(t1, 5, false));
  timer.added(t1);
  EXPECT_TRUE(timer.due(t1, 5, false)) << "256 wait";
}

}  // namespace
}  // namespace imgq::client

namespace imgq::client {
namespace {

// A result is checked against the checksum the broker sent before it is
// written or acknowledged; a broker before checksums sends none.
TEST(CheckResultBytes, DamageOnTheWayIsAnIoErrorThatSaysTheResultStaysAtTheBroker) {
  proto::JobResult r;
  r.job = "0123456789abcdef";
  EXPECT_TRUE(check_result_bytes(r, "anything").ok()) << "no checksum sent: nothing to check";
  r.crc32 = crc32_of(std::string_view("RESULT"));
  EXPECT_TRUE(check_result_bytes(r, "RESULT").ok());
  const Status damaged = check_result_bytes(r, "RESULt");
  EXPECT_EQ(damaged.code(), StatusCode::kIoError);
  EXPECT_NE(damaged.message().find("arrived damaged"), std::string::npos) << damaged.message();
  EXPECT_NE(damaged.message().find("imgq fetch 0123456789abcdef"), std::string::npos) << damaged.message();
  // zlib's CRC-32, so any client can check it: crc32(b"123456789") is 0xcbf43926.
  EXPECT_EQ(crc32_of(std::string_view("123456789")), 0xcbf43926u);
}

}  // namespace
}  // namespace imgq::client
