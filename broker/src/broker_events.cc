// BrokerEvents: the broker's metrics and its operator log lines.
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

BrokerEvents::BrokerEvents(monitoring::BrokerMetrics* metrics)
    : own_(metrics == nullptr ? std::make_unique<monitoring::BrokerMetrics>(std::string(imgq::version())) : nullptr),
      metrics_(metrics == nullptr ? own_.get() : metrics) {}

void BrokerEvents::submitted() { metrics_->submitted(); }

void BrokerEvents::rejected(monitoring::Rejection why) { metrics_->rejected(why); }

void BrokerEvents::malformed(monitoring::Peer from) { metrics_->malformed(from); }

void BrokerEvents::committed(double seconds, bool ok) { metrics_->committed(seconds, ok); }

void BrokerEvents::dispatched(double wait_seconds) { metrics_->dispatched(wait_seconds); }

void BrokerEvents::retried() { metrics_->retried(); }

void BrokerEvents::stray_result() { metrics_->stray_result(); }

void BrokerEvents::group_joined(const std::string& group, int ranks, int slots, const std::string& address) {
  metrics_->group_seen(group);
  log_event(spdlog::level::info,
            "group \"" + group + "\" joined: " + std::to_string(ranks) + " rank(s), " + std::to_string(slots) +
                " slot(s)" + (address.empty() ? std::string() : ", from " + address),
            {field("event", "group_joined"), field("group", group), field("ranks", ranks), field("slots", slots),
             field("address", address)});
}

void BrokerEvents::group_left(const std::string& group, const std::string& why, size_t requeued) {
  log_event(spdlog::level::info,
            "group \"" + group + "\" left: " + why +
                (requeued == 0 ? std::string() : "; " + std::to_string(requeued) + " of its job(s) requeued"),
            {field("event", "group_left"), field("group", group), field("reason", why),
             field("requeued", static_cast<long long>(requeued))});
}

void BrokerEvents::job_changed(const proto::JobState& s) {
  if (!spdlog::default_logger_raw()->should_log(spdlog::level::debug)) return;
  std::string text = "job " + s.job + " " + s.state;
  if (!s.group.empty()) text += " on " + s.group;
  if (s.total > 0) text += " (" + std::to_string(s.done) + "/" + std::to_string(s.total) + ")";
  if (!s.name.empty()) text += " " + s.name;
  if (!s.message.empty()) text += ": " + s.message;
  log_event(spdlog::level::debug, text,
            {field("event", "job"), field("job", s.job), field("state", s.state), field("group", s.group),
             field("attempts", s.attempts), field("code", s.code), field("name", s.name)});
}

void BrokerEvents::finished(JobState state, StatusCode code, double run_seconds, const std::string& group,
                            const proto::JobStats* stats) {
  using monitoring::Outcome;
  const Outcome outcome = state == JobState::kDone     ? Outcome::kSucceeded
                          : state == JobState::kFailed ? Outcome::kFailed
                                                       : Outcome::kCancelled;
  if (outcome == Outcome::kFailed) metrics_->failed(code);
  metrics_->finished(outcome, run_seconds, group, stats);
}

void BrokerEvents::undelivered_result() { metrics_->undelivered_result(); }

void BrokerEvents::damaged(const std::string& job, bool result, const Status& why) {
  metrics_->damaged(result);
  log_event(spdlog::level::err, why.message(),
            {field("event", "damaged_payload"), field("job", job), field("what", result ? "result" : "image")});
}

namespace {

// What an operator does about it (the state of the disk an error shows).
std::string disk_advice(DiskState state) {
  const std::string then = "; meanwhile submits are refused with a retry hint, and nothing accepted is lost";
  switch (state) {
    case DiskState::kFull: return "the disk is full: free space on it" + then;
    case DiskState::kReadOnly: return "the data dir is not writable: remount it read-write or fix its permissions" + then;
    default: return "the disk fails: see the kernel's log (dmesg)" + then;
  }
}

}  // namespace

void BrokerEvents::disk_errors(const std::vector<DiskError>& errors, Clock::time_point now) {
  for (const DiskError& e : errors) {
    metrics_->disk_error(e.op, e.state);
    if (trouble_errors_++ == 0) trouble_since_ = now;
    DiskLog& log = disk_log_[static_cast<size_t>(e.op)][static_cast<size_t>(e.state)];
    if (log.last != Clock::time_point{} && now - log.last < kDiskLogEvery) {
      ++log.unlogged;
      continue;
    }
    std::string text = "journal: " + e.message + " (" + disk_advice(e.state) + ")";
    if (log.unlogged > 0) text += "; " + std::to_string(log.unlogged) + " more like it since the last such line";
    log_event(spdlog::level::err, text,
              {field("event", "journal_error"), field("op", monitoring::disk_op_name(e.op)),
               field("reason", monitoring::disk_state_name(e.state)),
               field("unlogged", static_cast<long long>(log.unlogged))});
    log.last = now;
    log.unlogged = 0;
  }
}

void BrokerEvents::disk_state(DiskState state, Clock::time_point now) {
  if (state == disk_state_) return;
  metrics_->disk_state(state);
  const DiskState was = disk_state_;
  disk_state_ = state;
  if (state != DiskState::kHealthy) {
    if (trouble_errors_ == 0) trouble_since_ = now;
    return;
  }
  const double seconds = std::chrono::duration<double>(now - trouble_since_).count();
  char text[256];
  std::snprintf(text, sizeof text,
                "journal: the disk takes writes again after %.1f s %s, %zu failed operation(s); submits are "
                "stored again",
                seconds, monitoring::disk_state_name(was), trouble_errors_);
  log_event(spdlog::level::warn, text,
            {field("event", "journal_recovered"), field("was", monitoring::disk_state_name(was)),
             field("seconds", static_cast<long long>(seconds + 0.5)), field("errors", static_cast<long long>(trouble_errors_))});
  trouble_errors_ = 0;
  disk_log_ = {};
}

void BrokerEvents::stopped_running() { metrics_->stopped_running(); }

void BrokerEvents::acknowledged() { metrics_->result_ended(monitoring::ResultEnd::kAcknowledged); }

void BrokerEvents::expired_result() { metrics_->result_ended(monitoring::ResultEnd::kExpired); }

void BrokerEvents::set_state(const monitoring::BrokerMetrics::QueueState& state) { metrics_->set_state(state); }

}  // namespace imgq::broker
