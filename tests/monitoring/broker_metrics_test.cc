// BrokerMetrics as a unit: what /metrics shows after each event, read back
// from the text Prometheus scrapes.
#include "imgq/monitoring/broker_metrics.h"

#include <string>

#include <gtest/gtest.h>

namespace imgq::monitoring {
namespace {

// The value of `series` (name with its labels, as printed) in `text`, or -1.
double value(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(BrokerMetricsTest, EveryFixedSeriesExistsAtZeroFromStartUp) {
  BrokerMetrics metrics("1.2.3");
  const std::string text = metrics.text();
  EXPECT_EQ(value(text, "imgq_build_info{version=\"1.2.3\"}"), 1);
  EXPECT_EQ(value(text, "imgq_jobs_submitted_total"), 0);
  for (const char* outcome : {"succeeded", "failed", "cancelled"}) {
    EXPECT_EQ(value(text, std::string("imgq_jobs_completed_total{outcome=\"") + outcome + "\"}"), 0) << outcome;
  }
  for (const char* reason : {"queue_full", "invalid", "too_large", "unstored", "stopping"}) {
    EXPECT_EQ(value(text, std::string("imgq_jobs_rejected_total{reason=\"") + reason + "\"}"), 0) << reason;
  }
  EXPECT_EQ(value(text, "imgq_jobs_failed_total{code=\"invalid_image\"}"), 0);
  EXPECT_EQ(value(text, "imgq_jobs_failed_total{code=\"ok\"}"), -1) << "success is not a failure code";
  EXPECT_EQ(value(text, "imgq_queue_waiting_jobs_by_priority{priority=\"9\"}"), 0);
  EXPECT_EQ(text.find("group=\""), std::string::npos) << "no group's series before it connects";
}

TEST(BrokerMetricsTest, AFinishedJobCountsOnceOverallAndUnderItsGroup) {
  BrokerMetrics metrics("t");
  metrics.group_seen("g1");
  std::string text = metrics.text();
  EXPECT_EQ(value(text, "imgq_group_jobs_total{group=\"g1\",outcome=\"succeeded\"}"), 0) << "created at 0 on hello";

  proto::JobStats stats;
  stats.pixels = 1000;
  stats.decode_seconds = 0.25;
  stats.compute_seconds = 0.5;
  stats.imbalance = 0.125;
  metrics.finished(Outcome::kSucceeded, 1.0, "g1", &stats);
  metrics.finished(Outcome::kSucceeded, 1.0, "g1", &stats);
  metrics.failed(StatusCode::kInvalidImage);
  metrics.finished(Outcome::kFailed, 0, "", nullptr);  // failed before any group ran it
  text = metrics.text();
  EXPECT_EQ(value(text, "imgq_jobs_completed_total{outcome=\"succeeded\"}"), 2);
  EXPECT_EQ(value(text, "imgq_jobs_completed_total{outcome=\"failed\"}"), 1);
  EXPECT_EQ(value(text, "imgq_jobs_failed_total{code=\"invalid_image\"}"), 1);
  EXPECT_EQ(value(text, "imgq_group_jobs_total{group=\"g1\",outcome=\"succeeded\"}"), 2);
  EXPECT_EQ(value(text, "imgq_group_jobs_total{group=\"g1\",outcome=\"failed\"}"), 0) << "g1 did not run it";
  EXPECT_EQ(value(text, "imgq_group_pixels_total{group=\"g1\"}"), 2000);
  EXPECT_EQ(value(text, "imgq_group_stage_seconds_total{group=\"g1\",stage=\"compute\"}"), 1.0);
  EXPECT_EQ(value(text, "imgq_group_stage_seconds_total{group=\"g1\",stage=\"decode\"}"), 0.5);
  EXPECT_EQ(value(text, "imgq_group_rank_imbalance_ratio{group=\"g1\"}"), 0.125);
  EXPECT_EQ(value(text, "imgq_job_duration_seconds_count"), 2);
}

TEST(BrokerMetricsTest, AnUnknownFailureCodeCountsAsInternal) {
  BrokerMetrics metrics("t");
  metrics.failed(static_cast<StatusCode>(200));
  EXPECT_EQ(value(metrics.text(), "imgq_jobs_failed_total{code=\"internal\"}"), 1);
}

TEST(BrokerMetricsTest, NegativeStageTimesAreNotSubtracted) {
  BrokerMetrics metrics("t");
  proto::JobStats stats;
  stats.encode_seconds = -3;  // a group's clock went backwards: counters only grow
  metrics.finished(Outcome::kSucceeded, 0, "g", &stats);
  EXPECT_EQ(value(metrics.text(), "imgq_group_stage_seconds_total{group=\"g\",stage=\"encode\"}"), 0);
}

TEST(BrokerMetricsTest, TheQueueGaugesShowTheLastState) {
  BrokerMetrics metrics("t");
  BrokerMetrics::QueueState state;
  state.waiting = 7;
  state.running = 2;
  state.by_priority[9] = 3;
  state.oldest_age_seconds = 12.5;
  state.idle_groups = 1;
  state.busy_groups = 2;
  state.ranks = 6;
  state.kept_result_bytes = 4096;
  metrics.set_state(state);
  std::string text = metrics.text();
  EXPECT_EQ(value(text, "imgq_queue_jobs{state=\"waiting\"}"), 7);
  EXPECT_EQ(value(text, "imgq_queue_jobs{state=\"running\"}"), 2);
  EXPECT_EQ(value(text, "imgq_queue_waiting_jobs_by_priority{priority=\"9\"}"), 3);
  EXPECT_EQ(value(text, "imgq_queue_oldest_job_age_seconds"), 12.5);
  EXPECT_EQ(value(text, "imgq_worker_groups{state=\"busy\"}"), 2);
  EXPECT_EQ(value(text, "imgq_worker_ranks"), 6);
  EXPECT_EQ(value(text, "imgq_results_kept_bytes"), 4096);
  metrics.set_state({});
  text = metrics.text();
  EXPECT_EQ(value(text, "imgq_queue_jobs{state=\"waiting\"}"), 0) << "gauges go down too";
  EXPECT_EQ(value(text, "imgq_queue_waiting_jobs_by_priority{priority=\"9\"}"), 0);
}

TEST(BrokerMetricsTest, TrafficRejectionsAndCommitsAreCountedBySocketAndReason) {
  BrokerMetrics metrics("t");
  metrics.received(Peer::kClients, 100);
  metrics.received(Peer::kClients, 50);
  metrics.sent(Peer::kWorkers, 10);
  metrics.malformed(Peer::kWorkers);
  metrics.rejected(Rejection::kTooLarge);
  metrics.stray_result();
  metrics.retried();
  metrics.committed(0.003, true);
  metrics.committed(0.004, false);
  metrics.dispatched(0.2);
  const std::string text = metrics.text();
  EXPECT_EQ(value(text, "imgq_received_bytes_total{socket=\"clients\"}"), 150);
  EXPECT_EQ(value(text, "imgq_received_bytes_total{socket=\"workers\"}"), 0);
  EXPECT_EQ(value(text, "imgq_sent_bytes_total{socket=\"workers\"}"), 10);
  EXPECT_EQ(value(text, "imgq_messages_rejected_total{socket=\"workers\"}"), 1);
  EXPECT_EQ(value(text, "imgq_jobs_rejected_total{reason=\"too_large\"}"), 1);
  EXPECT_EQ(value(text, "imgq_worker_results_discarded_total"), 1);
  EXPECT_EQ(value(text, "imgq_jobs_retried_total"), 1);
  EXPECT_EQ(value(text, "imgq_journal_commit_seconds_count"), 2);
  EXPECT_EQ(value(text, "imgq_journal_commit_failures_total"), 1);
  EXPECT_EQ(value(text, "imgq_job_wait_seconds_count"), 1);
}

}  // namespace
}  // namespace imgq::monitoring
