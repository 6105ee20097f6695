// Durability: what the journal records and when (commit_policy.h), the
// accepts released by a sync, and a restart's restore.
#include "imgq/broker/broker_core.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "imgq/common/batch_paths.h"
#include "imgq/schemas/op_catalog.h"
#include "imgq/common/image_header.h"
#include "imgq/common/logging.h"
#include "imgq/common/version.h"
#include "imgq/schemas/codec.h"
#include "imgq/schemas/op_call.h"

#include "core_helpers.h"

namespace imgq::broker {

RestoreSummary BrokerCore::restore(std::vector<JobRecord> stored) {
  RestoreSummary summary;
  const auto now = now_();
  const double unix = wall_now_();
  // A wall-clock time of the old process as a time of this clock.
  auto steady = [&](double then) {
    return now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, unix - then)));
  };
  std::vector<std::string> running;
  std::vector<std::pair<Clock::time_point, std::string>> buried;
  for (JobRecord& record : stored) {
    Job job;
    static_cast<JobRecord&>(job) = std::move(record);
    if (!job.path.empty()) {
      job.route_path = lexically_normal(job.path);
      job.route_output = lexically_normal(job.output);
    }
    job.submitted_at = steady(job.submitted);
    if (!job.key.empty()) keys_[scoped_key(job.owner, job.key)] = job.id;
    // Its session stays its owner's (for the progress socket).
    (void)sessions_.claim(job.id.substr(0, 8), job.owner, now_());
    const std::string id = job.id;
    if (finished_state(job.state)) {
      job.finished_at = steady(job.finished);
      if (job.gone != Gone::kNo) {
        job.gone_since = steady(job.gone_at);
        ++summary.tombstones;
        buried.emplace_back(job.gone_since, id);
      } else {
        count_kept(job, +1);
        ++summary.results;
      }
      jobs_.emplace(id, std::move(job));
      continue;
    }
    // The state as stored: a job that ran when the broker stopped goes back
    // to the front (below); one that waited, in its line, with the attempts
    // it had (a requeued job's count).
    const bool was_running = job.state == JobState::kRunning;
    queued_bytes_ += job.image_bytes;
    count_open(job, +1);
    jobs_.emplace(id, std::move(job));
    if (was_running) {
      running.push_back(id);
    } else {
      queue_.push(id, jobs_.at(id).line, jobs_.at(id).priority);
      ++summary.queued;
    }
  }
  // Tombstones expire in the order their results went.
  std::sort(buried.begin(), buried.end());
  for (const auto& [since, id] : buried) bury(id);
  requeue_restored(running, &summary);
  update_gauges();
  return summary;
}

// Jobs that were running go back to the front, oldest first, as a dead
// group's jobs do; their dispatch counts as an attempt.
void BrokerCore::requeue_restored(const std::vector<std::string>& running, RestoreSummary* summary) {
  for (auto it = running.rbegin(); it != running.rend(); ++it) {
    Job& job = jobs_.at(*it);
    if (job.attempts >= config_.max_attempts) {
      queued_bytes_ -= job.image_bytes;
      ++summary->gave_up;
      finish(job, JobState::kFailed,
             Status::Unavailable("the broker stopped while the job ran; gave up after " +
                                 std::to_string(job.attempts) + " attempts"));
      continue;
    }
    move(job, JobState::kQueued);
    job.message = "the broker restarted while the job ran; requeued";
    unrecorded(job);
    queue_.push_front(job.id, job.line, job.priority);
    events_.retried();
    ++summary->requeued;
  }
}

void BrokerCore::unrecorded(Job& job) {
  if (job.unrecorded) return;
  job.unrecorded = true;
  unrecorded_.emplace_back(job.id, now_());
}

// The queue is in the order of first changes, so this stops at the first
// job not yet due: each call costs the jobs it stages, not all those waiting
// (it was a walk of every one per commit, 7% of the broker's CPU on tiny jobs).
void BrokerCore::record_due(bool all) {
  const auto now = now_();
  while (!unrecorded_.empty() && (all || broker::record_due(config_.commit, unrecorded_.front().second, now, false))) {
    const std::string id = std::move(unrecorded_.front().first);
    unrecorded_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    Job& job = it->second;
    job.unrecorded = false;
    staged(id);
    if (!finished_state(job.state)) {
      journal_.progressed(job);  // dispatched, or requeued
    } else {
      // One row update for the whole end: outcome, attempts, the result (in
      // memory until this commit stores it) or its acknowledgement (then
      // it is a tombstone at once: no stats to keep).
      if (job.gone != Gone::kNo) job.stats = {};
      journal_.finish(job, job.gone == Gone::kNo ? job.result : SharedBytes());
      if (journal_.durable() && !job.result.empty()) unstored_results_.push_back(id);
      if (job.gone != Gone::kNo) bury(id);
    }
  }
}

CommitState BrokerCore::commit_state() const {
  CommitState s;
  s.now = now_();
  s.last_commit = last_commit_;
  if (!pending_.empty()) s.oldest_submit = oldest_pending();
  if (!unrecorded_.empty()) s.oldest_unrecorded = unrecorded_.front().second;
  s.staged = journal_.dirty();
  s.syncing = journal_.syncing();
  s.durable = journal_.durable();
  s.stopping = stopping_;
  return s;
}

void BrokerCore::commit() {
  const CommitState state = commit_state();
  if (decide_commit(config_.commit, state) != CommitDecision::kCommit) return release_synced();
  const auto now = state.now;
  record_due(stopping_);
  const auto started = std::chrono::steady_clock::now();
  const Result<uint64_t> ticket = journal_.commit();
  last_commit_ = now;
  events_.committed(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), ticket.ok());
  // Results written by this commit leave memory; if it failed they stay
  // there (still delivered and fetched) and are staged again with the rest.
  for (const std::string& id : std::exchange(unstored_results_, {})) {
    auto it = jobs_.find(id);
    if (ticket.ok() && it != jobs_.end() && it->second.gone == Gone::kNo) it->second.result.reset();
  }
  if (ticket.ok()) {
    staged_.clear();
  } else {
    restage_failed_round();
  }
  note_disk(now);
  std::vector<std::string> batch = std::exchange(pending_, {});
  if (!ticket.ok()) {
    for (const std::string& id : batch) refuse_unstored(id, ticket.status());
  } else if (!batch.empty()) {
    awaiting_sync_.emplace_back(*ticket, std::move(batch));
  }
  release_synced();
}

// A failed commit kept none of its changes: each job it staged is staged
// again (its state now: a dispatch, an end, an acknowledgement), so the
// journal catches up once the disk takes writes again.
void BrokerCore::restage_failed_round() {
  for (const std::string& id : std::exchange(staged_, {})) {
    if (auto it = jobs_.find(id); it != jobs_.end()) {
      if (!it->second.pending) unrecorded(it->second);
    } else if (auto t = tombstones_.find(id); t != tombstones_.end()) {
      journal_.finish(tombstone_record(id, t->second), SharedBytes());
      staged_.push_back(id);
    } else {
      journal_.forget(id);
      staged_.push_back(id);
    }
  }
}

JobRecord BrokerCore::tombstone_record(const std::string& id, const Tombstone& t) {
  JobRecord record;
  record.id = id;
  record.state = t.state;
  record.code = t.code;
  record.message = t.message;
  record.attempts = t.attempts;
  record.finished = t.finished;
  record.gone = t.gone;
  record.gone_at = t.gone_at;
  return record;
}

// What the journal's disk did since the last look: counted and logged, and
// its state (the pong's `journal`, a gauge).
void BrokerCore::note_disk(Clock::time_point now) {
  if (!journal_.durable()) return;
  events_.disk_errors(journal_.take_disk_errors(), now);
  events_.disk_state(journal_.disk_state(), now);
}

// Space of forgotten jobs given back, a bounded step at a time, only
// when the loop has nothing to commit or sync and has not committed for
// kQuietBeforeMaintenance: under load, their pages are reused instead.
void BrokerCore::maintain_journal(Clock::time_point now) {
  constexpr Duration kQuietBeforeMaintenance{200};
  if (!journal_.durable() || journal_.dirty() || journal_.syncing() || !pending_.empty() ||
      !awaiting_sync_.empty() || !unrecorded_.empty() || journal_.disk_state() != DiskState::kHealthy) {
    return;
  }
  if (now - last_commit_ < kQuietBeforeMaintenance || now - last_maintenance_ < std::chrono::seconds(1)) return;
  last_maintenance_ = now;
  journal_.maintain();
  note_disk(now);
}

// While the disk is in trouble and nothing commits, a probe each
// retry_after says when it is back.
void BrokerCore::probe_disk(Clock::time_point now) {
  if (!journal_.durable() || journal_.disk_state() == DiskState::kHealthy) return;
  if (now - last_commit_ < config_.retry_after || now - last_probe_ < config_.retry_after) return;
  last_probe_ = now;
  journal_.probe_disk();
  note_disk(now);
}

Clock::time_point BrokerCore::oldest_pending() const {
  auto it = pending_.empty() ? jobs_.end() : jobs_.find(pending_.front());
  return it == jobs_.end() ? Clock::time_point{} : it->second.submitted_at;
}

void BrokerCore::release_synced() {
  const Result<uint64_t> synced = journal_.synced();
  if (!synced.ok() && failure_.ok()) {
    // The log could not be made durable: what the kernel did with the pages
    // that failed is unknown (it may have dropped them), so nothing written
    // since can be trusted either. Like PostgreSQL after a failed fsync, the
    // broker stops; its next start recovers from what is on disk.
    failure_ = Status(synced.status().code(),
                      synced.status().message() + "; the broker stops so that its next start recovers from what is "
                                                  "on disk (nothing accepted is lost)");
    note_disk(now_());
  }
  bool accepted_any = false;
  while (!awaiting_sync_.empty() && (!synced.ok() || awaiting_sync_.front().first <= *synced)) {
    for (const std::string& id : awaiting_sync_.front().second) {
      if (synced.ok()) {
        accept(id);
        accepted_any = true;
      } else {
        refuse_unstored(id, synced.status());
      }
    }
    awaiting_sync_.pop_front();
  }
  if (accepted_any) dispatch();
}

void BrokerCore::accept(const std::string& id) {
  Job& job = jobs_.at(id);
  job.pending = false;
  events_.submitted();
  if (job.accept_hold.count() > 0 && job.pending_replies.size() == 1) {
    // The client lets its result stand for `accepted` if it comes within
    // the hold: a tiny job's client gets one message instead of two.
    std::tie(job.client, job.req) = job.pending_replies.front();
    job.pending_replies.clear();
    if (!finished_state(job.state)) {
      job.accept_held = true;
      held_accepts_.emplace(now_() + job.accept_hold, id);
    }
  }
  for (size_t i = 0; i < job.pending_replies.size(); ++i) {
    const auto& [who, req] = job.pending_replies[i];
    send_accepted(who, req, job, /*existing=*/i > 0);
    job.client = who;
    job.req = req;
  }
  job.pending_replies.clear();
  // It may have run, even finished, while its commit was syncing; what its
  // client was not told then, it is told now, after `accepted` (or instead
  // of it: see accept_hold).
  if (finished_state(job.state) && !send_result(job.client, job.req, job)) events_.undelivered_result();
  publish(job);
}

void BrokerCore::refuse_unstored(const std::string& id, const Status& why_not) {
  // Nothing that was not stored is acknowledged.
  Job& job = jobs_.at(id);
  const Status why(why_not.code(), "the broker could not store the job, so it was not accepted: " +
                                       why_not.message());
  for (const auto& [who, req] : job.pending_replies) reply_error(who, req, why);
  events_.rejected(monitoring::Rejection::kUnstored);
  if (job.state == JobState::kQueued) {
    queue_.remove(id);
    queued_bytes_ -= job.image_bytes;
  } else if (job.state == JobState::kRunning) {
    // Its group stops it; the slot frees when the group answers (a stray
    // answer then, for a job no longer known).
    send_abort(job, why.message());
  } else {
    count_kept(job, -1);
  }
  if (!job.key.empty()) keys_.erase(scoped_key(job.owner, job.key));
  if (!finished_state(job.state)) count_open(job, -1);
  jobs_.erase(id);
}

}  // namespace imgq::broker
