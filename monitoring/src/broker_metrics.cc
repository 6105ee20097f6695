#include "imgq/monitoring/broker_metrics.h"

#include <sstream>

#include <prometheus/text_serializer.h>

namespace imgq::monitoring {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

constexpr std::array<const char*, 3> kOutcomes = {"succeeded", "failed", "cancelled"};
constexpr std::array<const char*, 2> kPeers = {"clients", "workers"};
constexpr std::array<const char*, 5> kStages = {"decode", "scatter", "compute", "gather", "encode"};

// Jobs take from milliseconds (a thumbnail) to minutes (a gigapixel tile).
prometheus::Histogram::BucketBoundaries job_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

}  // namespace

BrokerMetrics::BrokerMetrics(const std::string& version) : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  BuildGauge().Name("imgq_build_info").Help("Build of the running broker; always 1").Register(r)
      .Add({{"version", version}}).Set(1);
  submitted_ = &BuildCounter().Name("imgq_jobs_submitted_total").Help("Jobs accepted into the queue")
                    .Register(r).Add({});
  auto& completed = BuildCounter().Name("imgq_jobs_completed_total")
                        .Help("Accepted jobs that ended, by outcome; each job ends under exactly one").Register(r);
  for (size_t i = 0; i < kOutcomes.size(); ++i) completed_[i] = &completed.Add({{"outcome", kOutcomes[i]}});
  auto& failed = BuildCounter().Name("imgq_jobs_failed_total")
                     .Help("Jobs that failed, by error code (protocol section 4); they are also counted in "
                           "imgq_jobs_completed_total{outcome=\"failed\"}").Register(r);
  failed_[0] = nullptr;  // ok is no failure
  for (size_t i = 1; i < failed_.size(); ++i) {
    failed_[i] = &failed.Add({{"code", std::string(status_code_name(static_cast<StatusCode>(i)))}});
  }
  auto& rejected = BuildCounter().Name("imgq_jobs_rejected_total").Help("Submits refused, by reason").Register(r);
  rejected_ = {&rejected.Add({{"reason", "queue_full"}}), &rejected.Add({{"reason", "invalid"}}),
               &rejected.Add({{"reason", "too_large"}}), &rejected.Add({{"reason", "unstored"}}),
               &rejected.Add({{"reason", "stopping"}}), &rejected.Add({{"reason", "client_share"}})};
  undelivered_ = &BuildCounter().Name("imgq_results_undelivered_total")
                      .Help("Results whose client had gone when they were sent (they wait to be fetched)")
                      .Register(r).Add({});
  stopped_running_ = &BuildCounter().Name("imgq_jobs_stopped_running_total")
                          .Help("Running jobs the broker stopped: cancelled, or past their deadline")
                          .Register(r).Add({});
  auto& ended = BuildCounter().Name("imgq_results_ended_total")
                    .Help("Kept results that ended: acknowledged by their client, or expired unacknowledged")
                    .Register(r);
  result_ended_ = {&ended.Add({{"how", "acknowledged"}}), &ended.Add({{"how", "expired"}})};
  commit_seconds_ = &BuildHistogram().Name("imgq_journal_commit_seconds")
                         .Help("Time of one journal commit (group commit: one fsync for a round of changes)")
                         .Register(r)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                                          0.05, 0.1, 0.25, 1});
  commit_failures_ = &BuildCounter().Name("imgq_journal_commit_failures_total")
                          .Help("Journal commits that failed (their submits were refused, not lost)")
                          .Register(r).Add({});
  kept_bytes_ = &BuildGauge().Name("imgq_results_kept_bytes")
                     .Help("Bytes of finished results waiting for their clients to acknowledge them")
                     .Register(r).Add({});
  retried_ = &BuildCounter().Name("imgq_jobs_retried_total")
                  .Help("Jobs requeued because their worker group died or left").Register(r).Add({});
  auto& malformed = BuildCounter().Name("imgq_messages_rejected_total")
                        .Help("Malformed messages received, by socket").Register(r);
  auto& received = BuildCounter().Name("imgq_received_bytes_total").Help("Bytes received, by socket").Register(r);
  auto& sent = BuildCounter().Name("imgq_sent_bytes_total").Help("Bytes sent, by socket").Register(r);
  for (size_t i = 0; i < kPeers.size(); ++i) {
    malformed_[i] = &malformed.Add({{"socket", kPeers[i]}});
    received_[i] = &received.Add({{"socket", kPeers[i]}});
    sent_[i] = &sent.Add({{"socket", kPeers[i]}});
  }
  stray_results_ = &BuildCounter().Name("imgq_worker_results_discarded_total")
                        .Help("Results from a group for a job it did not hold").Register(r).Add({});
  auto& damaged = BuildCounter().Name("imgq_damaged_payloads_total")
                      .Help("Stored images and results read back damaged (size or checksum), never used")
                      .Register(r);
  damaged_ = {&damaged.Add({{"what", "image"}}), &damaged.Add({{"what", "result"}})};
  auto& disk_errors = BuildCounter().Name("imgq_journal_errors_total")
                          .Help("Failed writes, commits and fsyncs of the journal, by operation and reason")
                          .Register(r);
  auto& disk_state = BuildGauge().Name("imgq_journal_disk")
                         .Help("The journal's disk as its last write found it: 1 for the state it is in")
                         .Register(r);
  for (size_t s = 0; s < disk_state_.size(); ++s) {
    const char* state = disk_state_name(static_cast<DiskState>(s));
    disk_state_[s] = &disk_state.Add({{"state", state}});
    if (s == 0) continue;  // no error is "healthy"
    for (size_t op = 0; op < disk_errors_.size(); ++op) {
      disk_errors_[op][s] = &disk_errors.Add({{"op", disk_op_name(static_cast<DiskOp>(op))}, {"reason", state}});
    }
  }
  disk_state_[0]->Set(1);

  auto& queue = BuildGauge().Name("imgq_queue_jobs").Help("Jobs in the broker, by state").Register(r);
  queue_jobs_ = {&queue.Add({{"state", "waiting"}}), &queue.Add({{"state", "running"}})};
  auto& by_priority = BuildGauge().Name("imgq_queue_waiting_jobs_by_priority")
                          .Help("Waiting jobs, by priority (9 runs first)").Register(r);
  for (size_t p = 0; p < queue_by_priority_.size(); ++p) {
    queue_by_priority_[p] = &by_priority.Add({{"priority", std::to_string(p)}});
  }
  oldest_age_ = &BuildGauge().Name("imgq_queue_oldest_job_age_seconds")
                     .Help("Age of the oldest waiting job; 0 when none waits").Register(r).Add({});
  auto& groups = BuildGauge().Name("imgq_worker_groups").Help("Connected worker groups, by state").Register(r);
  groups_ = {&groups.Add({{"state", "idle"}}), &groups.Add({{"state", "busy"}})};
  ranks_ = &BuildGauge().Name("imgq_worker_ranks").Help("MPI ranks in all connected groups").Register(r).Add({});

  wait_ = &BuildHistogram().Name("imgq_job_wait_seconds").Help("Time jobs waited in the queue before dispatch")
               .Register(r).Add({}, job_buckets());
  duration_ = &BuildHistogram().Name("imgq_job_duration_seconds")
                   .Help("Time from dispatch to result, for jobs a group ran").Register(r).Add({}, job_buckets());

  group_jobs_ = &BuildCounter().Name("imgq_group_jobs_total").Help("Jobs a worker group ran, by outcome").Register(r);
  group_pixels_ = &BuildCounter().Name("imgq_group_pixels_total").Help("Input pixels a worker group processed")
                       .Register(r);
  group_stage_seconds_ = &BuildCounter().Name("imgq_group_stage_seconds_total")
                              .Help("Time a worker group's leader spent per stage").Register(r);
  group_imbalance_ = &BuildGauge().Name("imgq_group_rank_imbalance_ratio")
                          .Help("Last job's slowest rank compute time over the mean, minus 1").Register(r);
}

void BrokerMetrics::group_seen(const std::string& group) {
  if (group_children_.count(group)) return;
  GroupChildren c;
  for (size_t i = 0; i < kOutcomes.size(); ++i) c.jobs[i] = &group_jobs_->Add({{"group", group}, {"outcome", kOutcomes[i]}});
  c.pixels = &group_pixels_->Add({{"group", group}});
  for (size_t i = 0; i < kStages.size(); ++i) {
    c.stage_seconds[i] = &group_stage_seconds_->Add({{"group", group}, {"stage", kStages[i]}});
  }
  c.imbalance = &group_imbalance_->Add({{"group", group}});
  group_children_.emplace(group, c);
}

void BrokerMetrics::finished(Outcome outcome, double run_seconds, const std::string& group,
                             const proto::JobStats* stats) {
  const size_t o = static_cast<size_t>(outcome);
  completed_[o]->Increment();
  if (group.empty() || stats == nullptr) return;
  duration_->Observe(run_seconds);
  group_seen(group);
  GroupChildren& c = group_children_.at(group);
  c.jobs[o]->Increment();
  c.pixels->Increment(static_cast<double>(stats->pixels));
  const std::array<double, 5> seconds = {stats->decode_seconds, stats->scatter_seconds, stats->compute_seconds,
                                         stats->gather_seconds, stats->encode_seconds};
  for (size_t i = 0; i < seconds.size(); ++i) c.stage_seconds[i]->Increment(std::max(0.0, seconds[i]));
  c.imbalance->Set(stats->imbalance);
}

void BrokerMetrics::failed(StatusCode code) {
  const size_t i = static_cast<size_t>(code);
  // A failure without a known code is a bug of ours.
  failed_[i > 0 && i < failed_.size() ? i : static_cast<size_t>(StatusCode::kInternal)]->Increment();
}

void BrokerMetrics::set_state(const QueueState& s) {
  queue_jobs_[0]->Set(static_cast<double>(s.waiting));
  queue_jobs_[1]->Set(static_cast<double>(s.running));
  for (size_t p = 0; p < s.by_priority.size(); ++p) queue_by_priority_[p]->Set(static_cast<double>(s.by_priority[p]));
  oldest_age_->Set(s.oldest_age_seconds);
  groups_[0]->Set(static_cast<double>(s.idle_groups));
  groups_[1]->Set(static_cast<double>(s.busy_groups));
  ranks_->Set(static_cast<double>(s.ranks));
  kept_bytes_->Set(static_cast<double>(s.kept_result_bytes));
}

const char* disk_op_name(DiskOp op) {
  switch (op) {
    case DiskOp::kWrite: return "write";
    case DiskOp::kCommit: return "commit";
    default: return "sync";
  }
}

const char* disk_state_name(DiskState state) {
  switch (state) {
    case DiskState::kHealthy: return "healthy";
    case DiskState::kReadOnly: return "read_only";
    case DiskState::kFull: return "full";
    default: return "failing";
  }
}

void BrokerMetrics::disk_state(DiskState state) {
  for (size_t s = 0; s < disk_state_.size(); ++s) disk_state_[s]->Set(s == static_cast<size_t>(state) ? 1 : 0);
}

BrokerMetrics::Counts BrokerMetrics::counts() const {
  auto n = [](const prometheus::Counter* c) { return static_cast<uint64_t>(c->Value()); };
  auto samples = [](const prometheus::Histogram* h) { return h->Collect().histogram.sample_count; };
  Counts c;
  c.submitted = n(submitted_);
  c.succeeded = n(completed_[static_cast<size_t>(Outcome::kSucceeded)]);
  c.failed = n(completed_[static_cast<size_t>(Outcome::kFailed)]);
  c.cancelled = n(completed_[static_cast<size_t>(Outcome::kCancelled)]);
  c.retried = n(retried_);
  c.rejected_queue_full = n(rejected_[static_cast<size_t>(Rejection::kQueueFull)]);
  c.rejected_invalid = n(rejected_[static_cast<size_t>(Rejection::kInvalid)]);
  c.rejected_too_large = n(rejected_[static_cast<size_t>(Rejection::kTooLarge)]);
  c.rejected_unstored = n(rejected_[static_cast<size_t>(Rejection::kUnstored)]);
  c.rejected_stopping = n(rejected_[static_cast<size_t>(Rejection::kStopping)]);
  c.rejected_client_share = n(rejected_[static_cast<size_t>(Rejection::kClientShare)]);
  c.malformed_client = n(malformed_[static_cast<size_t>(Peer::kClients)]);
  c.malformed_worker = n(malformed_[static_cast<size_t>(Peer::kWorkers)]);
  c.stray_results = n(stray_results_);
  c.damaged_images = n(damaged_[0]);
  c.damaged_results = n(damaged_[1]);
  for (const auto& by_state : disk_errors_) {
    for (size_t s = 1; s < by_state.size(); ++s) c.disk_errors += n(by_state[s]);
  }
  c.undelivered_results = n(undelivered_);
  c.deadlines_exceeded = n(failed_[static_cast<size_t>(StatusCode::kDeadlineExceeded)]);
  c.aborted_running = n(stopped_running_);
  c.acknowledged = n(result_ended_[static_cast<size_t>(ResultEnd::kAcknowledged)]);
  c.expired_results = n(result_ended_[static_cast<size_t>(ResultEnd::kExpired)]);
  c.commit_failures = n(commit_failures_);
  c.commits = samples(commit_seconds_) - c.commit_failures;
  c.dispatched = samples(wait_);
  return c;
}

std::string BrokerMetrics::text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace imgq::monitoring
