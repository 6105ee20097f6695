#include "imgq/broker/job_queue.h"

#include <gtest/gtest.h>

namespace imgq::broker {
namespace {

std::vector<std::string> drain(JobQueue& q) {
  std::vector<std::string> out;
  while (auto job = q.pop()) out.push_back(*job);
  return out;
}

TEST(JobQueue, HigherPriorityFirstThenFifoPerClient) {
  JobQueue q;
  q.push("a1", "A", 4);
  q.push("a2", "A", 4);
  q.push("u", "A", 9);
  q.push("low", "A", 0);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"u", "a1", "a2", "low"}));
  EXPECT_TRUE(q.empty());
}

TEST(JobQueue, ClientsTakeTurnsWithinAPriority) {
  JobQueue q;
  for (int i = 0; i < 10000; ++i) q.push("big" + std::to_string(i), "bulk", 4);
  q.push("one", "small", 4);
  // The single job runs after at most one job of the bulk client.
  EXPECT_EQ(*q.pop(), "big0");
  EXPECT_EQ(*q.pop(), "one");
  EXPECT_EQ(*q.pop(), "big1");
  EXPECT_EQ(q.size(), 9998u);
}

TEST(JobQueue, RoundRobinOverThreeClients) {
  JobQueue q;
  for (const char* c : {"A", "B", "C"}) {
    for (int i = 0; i < 3; ++i) q.push(std::string(c) + std::to_string(i), c, 5);
  }
  EXPECT_EQ(drain(q), (std::vector<std::string>{"A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "C2"}));
}

TEST(JobQueue, PositionsMatchPopOrder) {
  JobQueue q;
  for (int i = 0; i < 4; ++i) q.push("A" + std::to_string(i), "A", 4);
  for (int i = 0; i < 2; ++i) q.push("B" + std::to_string(i), "B", 4);
  q.push("C0", "C", 4);
  q.push("U", "C", 8);
  q.push("L", "B", 1);
  std::vector<std::pair<std::string, size_t>> positions;
  for (const char* job : {"A0", "A1", "A2", "A3", "B0", "B1", "C0", "U", "L"}) positions.emplace_back(job, q.position(job));
  const auto order = [&] {
    JobQueue copy = q;
    return drain(copy);
  }();
  for (const auto& [job, position] : positions) {
    ASSERT_GE(position, 1u);
    EXPECT_EQ(order[position - 1], job) << job << " predicted at " << position;
  }
  EXPECT_EQ(q.position("nope"), 0u);
}

TEST(JobQueue, RequeuedJobRunsNext) {
  JobQueue q;
  q.push("a1", "A", 4);
  q.push("b1", "B", 4);
  q.push("b2", "B", 4);
  q.push_front("b0", "B", 4);
  EXPECT_EQ(q.position("b0"), 1u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"b0", "a1", "b1", "b2"}));
}

TEST(JobQueue, RemoveCancelsAWaitingJob) {
  JobQueue q;
  q.push("a1", "A", 4);
  q.push("b1", "B", 4);
  q.push("a2", "A", 4);
  EXPECT_TRUE(q.remove("b1"));
  EXPECT_FALSE(q.remove("b1"));
  EXPECT_EQ(q.size_of_lane(4), 2u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a1", "a2"}));
}

TEST(JobQueue, PopIfPassesOverWhatCannotRunYetWithinItsLookAhead) {
  JobQueue q;
  q.push("a-local", "A", 4);
  q.push("a-plain", "A", 4);
  q.push("b-plain", "B", 4);
  q.push("c-local", "C", 4);
  q.push("c-plain", "C", 4);
  q.push("low-plain", "D", 1);
  auto plain = [](const std::string& job) { return job.find("plain") != std::string::npos; };
  // Jobs that cannot run are passed over, in turn order, then lane 1.
  EXPECT_EQ(*q.pop_if(plain), "a-plain");
  EXPECT_EQ(*q.pop_if(plain), "b-plain");
  EXPECT_EQ(*q.pop_if(plain), "c-plain");
  EXPECT_EQ(*q.pop_if(plain), "low-plain");
  EXPECT_FALSE(q.pop_if(plain).has_value());
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.position("a-local"), 1u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a-local", "c-local"}));

  // The look-ahead is bounded: a job deeper than kLookAhead in its line
  // waits for those before it.
  for (size_t i = 0; i < JobQueue::kLookAhead; ++i) q.push("local" + std::to_string(i), "A", 4);
  q.push("deep-plain", "A", 4);
  EXPECT_FALSE(q.pop_if(plain).has_value());
  q.push("b-plain", "B", 4);
  EXPECT_EQ(*q.pop_if(plain), "b-plain");
  EXPECT_EQ(*q.pop(), "local0");
  EXPECT_EQ(*q.pop_if(plain), "deep-plain");
  EXPECT_EQ(q.size(), JobQueue::kLookAhead - 1);
}

}  // namespace
}  // namespace imgq::broker
