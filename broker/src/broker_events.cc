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

void BrokerEvents::stopped_running() { metrics_->stopped_running(); }

void BrokerEvents::acknowledged() { metrics_->result_ended(monitoring::ResultEnd::kAcknowledged); }

void BrokerEvents::expired_result() { metrics_->result_ended(monitoring::ResultEnd::kExpired); }

void BrokerEvents::set_state(const monitoring::BrokerMetrics::QueueState& state) { metrics_->set_state(state); }

}  // namespace imgq::broker
