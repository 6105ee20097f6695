// The broker core's frame: construction, the client request switch, a
// job's lifecycle moves (finish, move, requeue), the tick, gauges and the
// events it publishes. The concerns live beside it: admission.cc (submit,
// keys, held accepts), durability.cc (commit, restore), groups.cc (workers,
// dispatch, deadlines), job_requests.cc (status, cancel, list, ping),
// retention.cc (results, acknowledgements, tombstones), broker_events.cc.
#include "imgq/broker/broker_core.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>
#include <optional>
#include <tuple>
#include <unordered_set>
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

BrokerCore::BrokerCore(BrokerConfig config, Outbox& outbox, Now now, monitoring::BrokerMetrics* metrics,
                       Journal* journal)
    : config_(config),
      outbox_(outbox),
      now_(std::move(now)),
      wall_now_(unix_now),
      events_(metrics),
      random_(std::random_device{}()),
      journal_(journal != nullptr ? *journal : memory_journal_) {
  instance_ = new_job_id({});
}

std::string BrokerCore::new_job_id(const std::string& session, const std::string& owner) {
  char buf[17];
  std::string id;
  do {
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(random_()));
    id = buf;
    if (!session.empty()) id.replace(0, 8, session);
  } while (jobs_.count(id) != 0 || (session.empty() && sessions_.taken_by_other(id.substr(0, 8), owner)));
  (void)sessions_.claim(id.substr(0, 8), owner, now_());
  return id;
}

Status BrokerCore::claim_session(const std::string& session, const std::string& owner, const char* request) {
  if (session.empty() || sessions_.claim(session, owner, now_())) return Status::Ok();
  return Status::PermissionDenied(std::string(request) + ": session " + session +
                                  " is another client's; choose another (8 random lower-case hex digits)");
}

bool BrokerCore::on_subscription(bool subscribe, const std::string& topic, const std::string& user) {
  // Every topic starts with a session (a job id is a session and 8 more
  // digits): subscriptions are counted by it, whoever sent them, so that a
  // claim lasts while someone listens (an unsubscription on a disconnect
  // comes without its sender).
  const std::string session = topic.size() >= 8 && is_session(topic.substr(0, 8)) ? topic.substr(0, 8) : "";
  if (!session.empty()) sessions_.subscribed(session, subscribe ? +1 : -1);
  if (!subscribe || sees_every_owner(user)) return true;
  if (session.empty()) {
    spdlog::warn("the progress socket refused a subscription to {} from client key {}: a client may follow only "
                 "its own sessions and jobs; keys that may follow every job are given with --allow-operators",
                 topic.empty() ? std::string("every event") : "\"" + printable(topic, 40) + "\"", user);
    return false;
  }
  if (!sessions_.claim(session, user, now_())) {
    spdlog::warn("the progress socket refused a subscription to {} from client key {}: session {} is another "
                 "client's", printable(topic, 40), user, session);
    return false;
  }
  return true;
}

size_t BrokerCore::running() const {
  size_t jobs = 0;
  for (const auto& [id, g] : groups_) jobs += g.jobs.size();
  return jobs;
}

size_t BrokerCore::busy_groups() const {
  return static_cast<size_t>(std::count_if(groups_.begin(), groups_.end(),
                                           [](const auto& g) { return !g.second.jobs.empty(); }));
}

size_t BrokerCore::total_ranks() const {
  size_t ranks = 0;
  for (const auto& [id, g] : groups_) ranks += static_cast<size_t>(g.ranks);
  return ranks;
}

// One branch per message type, each a decode and a call: longer than the
// usual function, kept whole so that the clients' protocol is read in one place.
void BrokerCore::on_client(const std::string& identity, Frames frames, const std::string& owner) {
  auto header = frames.empty() ? Result<proto::Header>(Status::InvalidArgument("empty message"))
                               : proto::decode_header(frames[0]);
  // A malformed request is answered with its own req and job when they
  // can be read (PROTOCOL.md section 2), so the client can match the error.
  auto malformed = [&](const Status& status) {
    events_.malformed(monitoring::Peer::kClients);
    const proto::RequestIds ids = frames.empty() ? proto::RequestIds{} : proto::peek_request_ids(frames[0]);
    reply_error(identity, ids.req, status, ids.job);
  };
  if (!header.ok()) return malformed(header.status());
  const std::string& type = header->type();
  const size_t payloads = frames.size() - 1;
  if (type == proto::Submit::kType) {
    auto submit = header->as<proto::Submit>({"req", "ops"});
    if (!submit.ok()) return malformed(submit.status());
    const size_t expected = submit->path.empty() ? 1 : 0;
    if (payloads != expected) {
      return malformed(Status::InvalidArgument(
          submit->path.empty() ? "submit: expected 1 image frame after the header, got " + std::to_string(payloads)
                               : "submit: a local-files submit (path) takes no image frame, got " +
                                     std::to_string(payloads)));
    }
    return handle_submit(identity, owner, *submit, expected == 1 ? std::move(frames[1]) : SharedBytes());
  }
  if (payloads != 0) {
    return malformed(Status::InvalidArgument(type + ": expected no frame after the header, got " +
                                             std::to_string(payloads)));
  }
  if (type == proto::Ping::kType) {
    auto ping = header->as<proto::Ping>({"req"});
    return ping.ok() ? handle_ping(identity, owner, *ping) : malformed(ping.status());
  }
  if (type == proto::OpsRequest::kType) {
    auto r = header->as<proto::OpsRequest>({"req"});
    if (!r.ok()) return malformed(r.status());
    proto::OpsReply reply;
    reply.req = r->req;
    reply.ops = schemas::describe_ops();
    reply.aliases = schemas::describe_aliases();
    outbox_.to_client(identity, {proto::encode(reply)});
    return;
  }
  if (type == proto::ListRequest::kType) {
    auto r = header->as<proto::ListRequest>({"req"});
    return r.ok() ? handle_list(identity, owner, *r) : malformed(r.status());
  }
  if (type == proto::StatusRequest::kType) {
    auto r = header->as<proto::StatusRequest>({"req", "job"});
    return r.ok() ? handle_status(identity, owner, r->req, r->job) : malformed(r.status());
  }
  if (type == proto::Cancel::kType) {
    auto r = header->as<proto::Cancel>({"req", "job"});
    return r.ok() ? handle_cancel(identity, owner, r->req, r->job) : malformed(r.status());
  }
  if (type == proto::Fetch::kType) {
    auto r = header->as<proto::Fetch>({"req", "job"});
    return r.ok() ? handle_fetch(identity, owner, r->req, r->job) : malformed(r.status());
  }
  if (type == proto::ResultAck::kType) {
    auto r = header->as<proto::ResultAck>({"job"});
    if (!r.ok()) return malformed(r.status());
    if (Job* job = find_job(r->job, owner)) handle_ack(*job);
    for (const std::string& id : r->jobs) {
      if (Job* job = find_job(id, owner)) handle_ack(*job);
    }
    return;
  }
  malformed(Status::InvalidArgument("unknown message type \"" + type + "\" on the clients socket"));
}

void BrokerCore::reply_error(const std::string& identity, uint64_t req, const Status& status,
                             const std::string& job) {
  proto::Error error;
  error.req = req;
  error.job = job;
  error.code = static_cast<int>(status.code());
  error.code_name = std::string(status_code_name(status.code()));
  error.message = status.message();
  error.retryable = is_retryable(status.code());
  // Queue full, the disk full or read-only, the broker stopping: when to ask again.
  if (error.retryable) error.retry_after_ms = static_cast<uint32_t>(config_.retry_after.count());
  outbox_.to_client(identity, {proto::encode(error)});
}

bool BrokerCore::sees_every_owner(const std::string& owner) const {
  return owner.empty() || config_.operator_keys.count(owner) != 0;
}

BrokerCore::Job* BrokerCore::find_job(const std::string& id, const std::string& owner, bool as_operator) {
  auto it = jobs_.find(id);
  // Another CURVE key's job is "no job" to this one (but to an operator key
  // reading or cancelling); a job not yet durable is not known to anyone.
  if (it == jobs_.end() || it->second.pending) return nullptr;
  if (it->second.owner != owner && !(as_operator && sees_every_owner(owner))) return nullptr;
  return &it->second;
}

void BrokerCore::count_open(const JobRecord& job, int delta) {
  const std::string client = client_of(job);
  ClientUse& use = by_client_[client];
  use.open = delta > 0 ? use.open + 1 : use.open - std::min<size_t>(use.open, 1);
  if (use.open == 0 && use.kept == 0) by_client_.erase(client);
}

void BrokerCore::count_kept(const JobRecord& job, int sign) {
  const std::string client = client_of(job);
  ClientUse& use = by_client_[client];
  if (sign > 0) {
    kept_bytes_ += job.result_bytes;
    use.kept += job.result_bytes;
  } else {
    kept_bytes_ -= std::min(kept_bytes_, job.result_bytes);
    use.kept -= std::min(use.kept, job.result_bytes);
  }
  if (use.open == 0 && use.kept == 0) by_client_.erase(client);
}

size_t BrokerCore::share_of(uint64_t total, uint64_t floor, const std::string& client) const {
  const size_t active = by_client_.size() + (by_client_.count(client) != 0 ? 0 : 1);
  return static_cast<size_t>(std::max<uint64_t>(floor, total / (active + 1)));
}

void BrokerCore::finish(Job& job, JobState state, const Status& status, bool ran) {
  if (!finished_state(job.state)) count_open(job, -1);
  move(job, state);
  job.code = static_cast<int>(status.code());
  job.message = status.message();
  job.finished_at = now_();
  job.finished = wall_now_();
  job.group.clear();
  job.image.reset();
  job.result_bytes = state == JobState::kDone ? job.result.size() : 0;
  count_kept(job, +1);
  unrecorded(job);
  events_.finished(state, status.code(), job.stats.run_seconds, ran ? job.group_name : std::string(),
                   ran ? &job.stats : nullptr);

  // Not yet durable: accept() sends it with `accepted`.
  if (!job.pending && !send_result(job.client, job.req, job)) {
    // The client is gone: the result waits for `fetch` (as every result
    // waits for its acknowledgement) until the TTL.
    events_.undelivered_result();
  }
  publish(job);
}

void BrokerCore::move(Job& job, JobState to) {
  if (!allowed_transition(job.state, to)) {
    // A bug of ours: stop before the journal records it.
    std::fprintf(stderr, "imgq-broker: internal error: job %s cannot go from %s to %s\n", job.id.c_str(),
                 std::string(state_name(job.state)).c_str(), std::string(state_name(to)).c_str());
    std::abort();
  }
  job.state = to;
}

void BrokerCore::requeue_or_fail(Job& job, const std::string& why) {
  job.group.clear();
  if (job.attempts >= config_.max_attempts) {
    finish(job, JobState::kFailed,
           Status::Unavailable(why + "; gave up after " + std::to_string(job.attempts) + " attempts"));
    return;
  }
  events_.retried();
  move(job, JobState::kQueued);
  job.message = why + "; requeued";
  unrecorded(job);  // stored as queued again, with its attempts
  queue_.push_front(job.id, job.line, job.priority);
  queued_bytes_ += job.image_bytes;
  publish(job);
}

void BrokerCore::tick() {
  const auto now = now_();
  std::vector<std::string> dead;
  for (auto& [id, group] : groups_) {
    if (now >= group.expiry) {
      dead.push_back(id);
    } else if (now - group.last_sent >= config_.heartbeat_interval) {
      send_worker(group, {proto::encode(proto::Heartbeat{})});
    }
  }
  for (const std::string& id : dead) forget_group(id, "stopped answering");
  expire_deadlines(now);
  probe_disk(now);
  maintain_journal(now);
  send_held_accepts(now);
  if (sessions_.size() != 0 && now - last_claims_sweep_ >= std::chrono::minutes(1)) {
    last_claims_sweep_ = now;
    std::unordered_set<std::string> in_use;
    for (const auto& [id, job] : jobs_) in_use.insert(id.substr(0, 8));
    sessions_.sweep(now, [&](const std::string& session) { return in_use.count(session) != 0; });
  }

  // A job whose result is gone stays one more TTL as a tombstone, so its
  // key is answered; they go in the order they came.
  while (!tombstone_order_.empty()) {
    auto it = tombstones_.find(tombstone_order_.front());
    if (it != tombstones_.end()) {
      if (now - it->second.gone_since < config_.result_ttl) break;
      const Tombstone& t = it->second;
      if (auto key = t.key.empty() ? keys_.end() : keys_.find(scoped_key(t.owner, t.key));
          key != keys_.end() && key->second == it->first) {
        keys_.erase(key);
      }
      journal_.forget(it->first);
      staged(it->first);
      tombstones_.erase(it);
    }
    tombstone_order_.pop_front();
  }
  // Finished jobs expire on a scale of minutes: sweeping all jobs once a
  // second is enough, and keeps tick() O(groups) on the hot path.
  if (now - last_sweep_ < std::chrono::seconds(1)) return update_gauges();
  last_sweep_ = now;
  // A result nobody acknowledged expires after the TTL.
  std::vector<std::string> expired;
  for (const auto& [id, job] : jobs_) {
    if (finished_state(job.state) && job.gone == Gone::kNo && now - job.finished_at >= config_.result_ttl) {
      expired.push_back(id);
    }
  }
  for (const std::string& id : expired) {
    events_.expired_result();
    drop_result(jobs_.at(id), Gone::kExpired);
  }
  update_gauges();
}

void BrokerCore::update_gauges() {
  if (!events_.wants_state()) return;
  monitoring::BrokerMetrics::QueueState s;
  const auto now = now_();
  s.waiting = queue_.size();
  s.running = running();
  for (int p = 0; p < JobQueue::kPriorities; ++p) s.by_priority[static_cast<size_t>(p)] = queue_.size_of_lane(p);
  for (const std::string& id : queue_.line_fronts()) {
    s.oldest_age_seconds = std::max(s.oldest_age_seconds, seconds(now - jobs_.at(id).submitted_at));
  }
  s.busy_groups = busy_groups();
  s.idle_groups = groups_.size() - s.busy_groups;
  s.ranks = total_ranks();
  s.kept_result_bytes = kept_bytes_;
  events_.set_state(s);
}

Duration BrokerCore::time_to_next_tick() const {
  auto next = config_.heartbeat_interval;
  const auto now = now_();
  const Clock::time_point commit_check = next_commit_check(config_.commit, commit_state());
  if (commit_check != Clock::time_point::max()) {
    next = std::min(next, std::chrono::ceil<Duration>(commit_check - now));
  }
  if (!held_accepts_.empty()) {
    next = std::min(next, std::chrono::ceil<Duration>(held_accepts_.begin()->first - now));
  }
  for (const auto& [id, group] : groups_) {
    next = std::min(next, std::chrono::duration_cast<Duration>(group.last_sent + config_.heartbeat_interval - now));
    next = std::min(next, std::chrono::duration_cast<Duration>(group.expiry - now));
    for (const std::string& job_id : group.jobs) {
      auto job = jobs_.find(job_id);
      if (job != jobs_.end() && job->second.state == JobState::kRunning) {
        next = std::min(next, std::chrono::duration_cast<Duration>(job->second.deadline - now));
      }
    }
  }
  return std::max(next, Duration{0});
}

proto::JobState BrokerCore::state_of(const Job& job) const {
  proto::JobState s;
  s.job = job.id;
  s.state = std::string(state_name(job.state));
  s.position = job.state == JobState::kQueued ? static_cast<uint32_t>(queue_.position(job.id)) : 0;
  s.group = job.state == JobState::kRunning ? job.group_name : std::string();
  s.done = job.done_stages;
  s.total = job.total_stages;
  s.attempts = job.attempts;
  s.code = job.code;
  s.message = job.message;
  s.name = job.name;
  return s;
}

void BrokerCore::publish(const Job& job) {
  if (job.pending) return;  // nobody knows of it yet (accept() publishes)
  proto::Event event;
  event.job = state_of(job);
  event.time = wall_now_();
  events_.job_changed(event.job);
  outbox_.publish(job.id, proto::encode(event));
}

void BrokerCore::shutdown() {
  stopping_ = true;
  commit();
  // Answer what the last commits stored before going.
  if (!awaiting_sync_.empty()) (void)journal_.wait_synced(awaiting_sync_.back().first);
  release_synced();
  proto::Disconnect bye;
  bye.reason = "the broker is stopping";
  for (auto& [identity, group] : groups_) outbox_.to_worker(identity, {proto::encode(bye)});
}

}  // namespace imgq::broker
