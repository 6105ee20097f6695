// The Prometheus metrics of an imgq system, all served by the broker: the
// group leaders send their per-job figures (stage times, pixels, rank
// imbalance) in their `done` messages, so one scrape target covers the whole
// system and groups need no ports of their own.
//
// Conventions: `imgq_` prefix, base units (seconds, bytes), `_total` for
// counters, no job ids, file names or client ids in labels; group names (a
// bounded set chosen by operators) are the only free label. Every fixed label
// combination exists from start-up at 0. Families are registered once here
// and children kept, since Family::Add takes a lock. Not thread-safe beyond
// what prometheus-cpp gives: the broker thread updates, the exposer reads.
//
// It is also the broker's only count of what happened: the pong, the logs
// and the tests read the counters back (counts()), so nothing is counted
// twice and nothing can drift.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "imgq/common/status.h"
#include "imgq/schemas/messages.h"

namespace imgq::monitoring {

enum class Outcome { kSucceeded, kFailed, kCancelled };
// kUnstored: the journal could not store the job (disk full, not writable);
// kStopping: the broker is stopping.
// kClientShare: the client holds its share of the queue or of kept results.
enum class Rejection { kQueueFull, kInvalid, kTooLarge, kUnstored, kStopping, kClientShare };
// How a kept result ended.
enum class ResultEnd { kAcknowledged, kExpired };
enum class Peer { kClients, kWorkers };
// The journal's disk (journal.h): what an operation failed at, and the state
// its last write found (read_only: EROFS/EACCES/EPERM; full: ENOSPC/EDQUOT or
// SQLite's "disk is full"; failing: any other error, EIO most of all).
enum class DiskOp { kWrite, kCommit, kSync };
enum class DiskState { kHealthy, kReadOnly, kFull, kFailing };
const char* disk_op_name(DiskOp op);
const char* disk_state_name(DiskState state);  // healthy, read_only, full, failing

class BrokerMetrics {
 public:
  explicit BrokerMetrics(const std::string& version);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The registry in Prometheus' text format (what /metrics serves).
  std::string text() const;

  void submitted() { submitted_->Increment(); }
  // A result went to a client that had gone (it waits to be fetched).
  void undelivered_result() { undelivered_->Increment(); }
  // A running job was stopped by the broker: cancelled, or past its deadline.
  void stopped_running() { stopped_running_->Increment(); }
  void result_ended(ResultEnd how) { result_ended_[static_cast<size_t>(how)]->Increment(); }
  void rejected(Rejection why) { rejected_[static_cast<size_t>(why)]->Increment(); }
  void retried() { retried_->Increment(); }
  void malformed(Peer from) { malformed_[static_cast<size_t>(from)]->Increment(); }
  void stray_result() { stray_results_->Increment(); }
  // A stored image or result read back damaged (journal.h's is_damaged).
  void damaged(bool result) { damaged_[result ? 1 : 0]->Increment(); }
  // A write, commit or fsync of the journal failed, and how.
  void disk_error(DiskOp op, DiskState why) {
    const size_t s = why == DiskState::kHealthy ? static_cast<size_t>(DiskState::kFailing) : static_cast<size_t>(why);
    disk_errors_[static_cast<size_t>(op)][s]->Increment();
  }
  // The journal's disk as its last write found it (one of the states is 1).
  void disk_state(DiskState state);
  void received(Peer from, size_t bytes) { received_[static_cast<size_t>(from)]->Increment(static_cast<double>(bytes)); }
  void sent(Peer to, size_t bytes) { sent_[static_cast<size_t>(to)]->Increment(static_cast<double>(bytes)); }

  // A job left the queue for a group after `wait_seconds`.
  void dispatched(double wait_seconds) { wait_->Observe(wait_seconds); }
  // A journal commit (one fsync of the log, plus one per large payload).
  void committed(double seconds, bool ok) {
    commit_seconds_->Observe(seconds);
    if (!ok) commit_failures_->Increment();
  }
  // A job ended; `stats` and `group` are set when a group ran it.
  void finished(Outcome outcome, double run_seconds, const std::string& group, const proto::JobStats* stats);
  // A job failed with `code` (also counted by finished()).
  void failed(StatusCode code);

  struct QueueState {
    size_t waiting = 0;
    size_t running = 0;
    std::array<size_t, 10> by_priority{};
    double oldest_age_seconds = 0;
    size_t idle_groups = 0;
    size_t busy_groups = 0;
    size_t ranks = 0;
    uint64_t kept_result_bytes = 0;  // results waiting for acknowledgement
  };
  void set_state(const QueueState& state);
  // A group connected: its children are created now, at 0.
  void group_seen(const std::string& group);

  // The counters read back (for the pong, the logs and tests).
  struct Counts {
    uint64_t submitted = 0, succeeded = 0, failed = 0, cancelled = 0, retried = 0;
    uint64_t rejected_queue_full = 0, rejected_invalid = 0, rejected_too_large = 0, rejected_unstored = 0,
             rejected_stopping = 0, rejected_client_share = 0;
    uint64_t malformed_client = 0, malformed_worker = 0, stray_results = 0;
    uint64_t undelivered_results = 0, deadlines_exceeded = 0, aborted_running = 0;
    uint64_t acknowledged = 0, expired_results = 0;
    uint64_t commits = 0, commit_failures = 0;  // journal commits that succeeded / failed
    uint64_t dispatched = 0;
    uint64_t damaged_images = 0, damaged_results = 0;
    uint64_t disk_errors = 0;  // every op and reason
  };
  Counts counts() const;

 private:
  struct GroupChildren {
    std::array<prometheus::Counter*, 3> jobs;  // by outcome
    prometheus::Counter* pixels;
    std::array<prometheus::Counter*, 5> stage_seconds;  // decode, scatter, compute, gather, encode
    prometheus::Gauge* imbalance;
  };

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* submitted_;
  std::array<prometheus::Counter*, 3> completed_;
  std::array<prometheus::Counter*, kStatusCodes> failed_;  // by code
  std::array<prometheus::Counter*, 6> rejected_;
  prometheus::Counter* undelivered_;
  prometheus::Counter* stopped_running_;
  std::array<prometheus::Counter*, 2> result_ended_;
  prometheus::Histogram* commit_seconds_;
  prometheus::Counter* commit_failures_;
  prometheus::Gauge* kept_bytes_;
  prometheus::Counter* retried_;
  std::array<prometheus::Counter*, 2> malformed_;
  prometheus::Counter* stray_results_;
  std::array<prometheus::Counter*, 2> damaged_;  // image, result
  std::array<std::array<prometheus::Counter*, 4>, 3> disk_errors_{};  // by op, by state (not healthy)
  std::array<prometheus::Gauge*, 4> disk_state_;
  std::array<prometheus::Counter*, 2> received_;
  std::array<prometheus::Counter*, 2> sent_;
  std::array<prometheus::Gauge*, 2> queue_jobs_;  // waiting, running
  std::array<prometheus::Gauge*, 10> queue_by_priority_;
  prometheus::Gauge* oldest_age_;
  std::array<prometheus::Gauge*, 2> groups_;  // idle, busy
  prometheus::Gauge* ranks_;
  prometheus::Histogram* wait_;
  prometheus::Histogram* duration_;
  prometheus::Family<prometheus::Counter>* group_jobs_;
  prometheus::Family<prometheus::Counter>* group_pixels_;
  prometheus::Family<prometheus::Counter>* group_stage_seconds_;
  prometheus::Family<prometheus::Gauge>* group_imbalance_;
  std::map<std::string, GroupChildren> group_children_;
};

}  // namespace imgq::monitoring
