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

#include <isa-l/crc.h>
#include <spdlog/spdlog.h>

#include "imgq/common/batch_paths.h"
#include "imgq/schemas/op_catalog.h"
#include "imgq/common/image_header.h"
#include "imgq/common/logging.h"
#include "imgq/common/version.h"
#include "imgq/schemas/codec.h"
#include "imgq/schemas/op_call.h"

namespace imgq::broker {
namespace {

// The most jobs a group may hold at once, whatever its hello says.
constexpr int kMaxSlots = 256;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", seconds(d));
  return buf;
}

// "2026-12-01 21:30:05 UTC", for messages about when something happened.
std::string utc_text(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Keys are scoped to the submitter's CURVE key (empty without CURVE).
std::string scoped_key(const std::string& owner, const std::string& key) { return owner + '\x1f' + key; }

// CRC-32 of `bytes`. ISA-L's is zlib's (the same polynomial, reflected,
// from 0), so digests in journals written before stay valid: 9 ms of the
// broker's loop for an 82 MB image where zlib took 36.
uint32_t crc32_of(std::string_view bytes) {
  return crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

// What an idempotency key stands for: the image (or the local files) and
// the request, not its priority or timeout. Two submits of one key with
// different digests are a conflict.
std::string digest_of(std::string_view image, const std::vector<std::string>& ops, const std::string& format,
                      const std::string& path, const std::string& output) {
  const uint32_t crc = crc32_of(image);
  std::string request = format + '\n' + path + '\n' + output;
  for (const std::string& op : ops) request += '\n' + op;
  const uint32_t request_crc = crc32_of(request);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08x:%zu:%08x", crc, image.size(), request_crc);
  return buf;
}

bool is_session(const std::string& s) {
  return s.size() == 8 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}


// An absolute path without "." and "..", and without a trailing '/' (but "/").
std::string lexically_normal(const std::string& path) {
  std::string normal = std::filesystem::path(path).lexically_normal().string();
  if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

// Whether `file` lies in one of `folders`, all lexically normal, by name: the
// group checks again with the links resolved, and refuses what is outside.
// Plain string comparisons: dispatch asks this for many jobs and groups.
bool inside_any(const std::vector<std::string>& folders, const std::string& file) {
  return std::any_of(folders.begin(), folders.end(), [&](const std::string& folder) {
    return file.starts_with(folder) &&
           (file.size() == folder.size() || folder == "/" || file[folder.size()] == '/');
  });
}

}  // namespace

Result<CheckedSubmit> check_submit(const proto::Submit& submit, std::string_view image, const SubmitLimits& limits) {
  if (!submit.session.empty() && !is_session(submit.session)) {
    return Status::InvalidArgument("submit: session must be 8 lower-case hex digits, got \"" + submit.session + "\"");
  }
  if (submit.priority < 0 || submit.priority > 9) {
    return Status::InvalidArgument("submit: priority must be from 0 to 9, got " + std::to_string(submit.priority));
  }
  IMGQ_ASSIGN_OR_RETURN(const auto pipeline, schemas::parse_pipeline(submit.ops));
  if (!submit.format.empty() && !is_output_format(submit.format)) {
    return Status::InvalidArgument("submit: format \"" + submit.format + "\" is not one of " + output_formats_text());
  }
  CheckedSubmit checked;
  checked.ops = schemas::pipeline_to_specs(pipeline);
  checked.format = submit.format.empty() ? "png" : submit.format;
  checked.local = !submit.path.empty();
  if (!checked.local && !submit.output.empty()) {
    return Status::InvalidArgument("submit: \"output\" is set (\"" + submit.output +
                                   "\") without \"path\"; a local-files job needs both, absolute");
  }
  if (checked.local) {
    if (submit.path.front() != '/' || submit.output.empty() || submit.output.front() != '/') {
      return Status::InvalidArgument("submit: a local-files job needs an absolute path and output, got \"" +
                                     submit.path + "\" and \"" + submit.output + "\"");
    }
    checked.route_path = lexically_normal(submit.path);
    checked.route_output = lexically_normal(submit.output);
    return checked;  // the group that reads the file checks it
  }
  if (image.empty()) {
    return Status::InvalidImage((submit.name.empty() ? "the image" : submit.name) + " is empty (0 bytes)");
  }
  if (image.size() > limits.max_image_bytes) {
    return Status::TooLarge("the image is " + std::to_string(image.size()) + " bytes; this broker takes at most " +
                            std::to_string(limits.max_image_bytes));
  }
  IMGQ_RETURN_IF_ERROR(check_image_header({reinterpret_cast<const uint8_t*>(image.data()), image.size()},
                                          limits.max_pixels, submit.name)
                           .status());
  return checked;
}

monitoring::Rejection rejection_of(const Status& refusal) {
  return refusal.code() == StatusCode::kTooLarge ? monitoring::Rejection::kTooLarge : monitoring::Rejection::kInvalid;
}

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
void BrokerEvents::stopped_running() { metrics_->stopped_running(); }
void BrokerEvents::acknowledged() { metrics_->result_ended(monitoring::ResultEnd::kAcknowledged); }
void BrokerEvents::expired_result() { metrics_->result_ended(monitoring::ResultEnd::kExpired); }
void BrokerEvents::set_state(const monitoring::BrokerMetrics::QueueState& state) { metrics_->set_state(state); }

BrokerCore::BrokerCore(BrokerConfig config, Outbox& outbox, Now now, monitoring::BrokerMetrics* metrics,
                       Journal* journal)
    : config_(config),
      outbox_(outbox),
      now_(std::move(now)),
      events_(metrics),
      random_(std::random_device{}()),
      journal_(journal != nullptr ? *journal : memory_journal_) {
  instance_ = new_job_id({});
}

RestoreSummary BrokerCore::restore(std::vector<JobRecord> stored) {
  RestoreSummary summary;
  const auto now = now_();
  const double unix = unix_now();
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
    const std::string id = job.id;
    if (finished_state(job.state)) {
      job.finished_at = steady(job.finished);
      if (job.gone != Gone::kNo) {
        job.gone_since = steady(job.gone_at);
        ++summary.tombstones;
        buried.emplace_back(job.gone_since, id);
      } else {
        kept_bytes_ += job.result_bytes;
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
  // Jobs that were running go back to the front, oldest first, as a dead
  // group's jobs do; their dispatch counts as an attempt.
  for (auto it = running.rbegin(); it != running.rend(); ++it) {
    Job& job = jobs_.at(*it);
    if (job.attempts >= config_.max_attempts) {
      queued_bytes_ -= job.image_bytes;
      ++summary.gave_up;
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
    ++summary.requeued;
  }
  update_gauges();
  return summary;
}

std::string BrokerCore::new_job_id(const std::string& session) {
  char buf[17];
  std::string id;
  do {
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(random_()));
    id = buf;
    if (!session.empty()) id.replace(0, 8, session);
  } while (jobs_.count(id) != 0);
  return id;
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

// ---- clients ----

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
    return ping.ok() ? handle_ping(identity, *ping) : malformed(ping.status());
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
  if (status.code() == StatusCode::kResourceExhausted) {
    error.retry_after_ms = static_cast<uint32_t>(config_.retry_after.count());
  }
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

void BrokerCore::send_accepted(const std::string& identity, uint64_t req, const Job& job, bool existing) {
  proto::Accepted accepted;
  accepted.req = req;
  accepted.job = job.id;
  accepted.position = static_cast<uint32_t>(queue_.position(job.id));
  accepted.existing = existing;
  outbox_.to_client(identity, {proto::encode(accepted)});
}

void BrokerCore::send_held_accepts(Clock::time_point now) {
  while (!held_accepts_.empty() && held_accepts_.begin()->first <= now) {
    auto it = jobs_.find(held_accepts_.begin()->second);
    held_accepts_.erase(held_accepts_.begin());
    if (it == jobs_.end() || !it->second.accept_held) continue;  // its result went first
    Job& job = it->second;
    job.accept_held = false;
    send_accepted(job.client, job.req, job, /*existing=*/false);
  }
}

void BrokerCore::refuse_used_key(const std::string& identity, const proto::Submit& submit, const std::string& digest,
                                 const std::string& id, const std::string& job_digest, Gone gone, double gone_at) {
  if (job_digest != digest) {
    return reply_error(identity, submit.req,
                       Status::Conflict("submit: key \"" + submit.key + "\" already names job " + id +
                                        ", submitted with a different image or request; use a new key for a "
                                        "new job"),
                       id);
  }
  const std::string when = utc_text(gone_at);
  reply_error(identity, submit.req,
              Status::NotFound(gone == Gone::kExpired ? "the result of job " + id + " (key \"" + submit.key + "\") expired at " +
                                             when + ": nobody acknowledged it within the result TTL"
                                       : "job " + id + " (key \"" + submit.key +
                                             "\") finished and its result was acknowledged at " + when +
                                             "; the broker keeps it no more"),
              id);
}

void BrokerCore::resubmit(const std::string& identity, const proto::Submit& submit, const std::string& digest,
                          Job& job) {
  if (job.digest != digest) {
    return reply_error(identity, submit.req,
                       Status::Conflict("submit: key \"" + submit.key + "\" already names job " + job.id +
                                        ", submitted with a different image or request; use a new key for a "
                                        "new job"),
                       job.id);
  }
  if (job.gone != Gone::kNo) {
    return refuse_used_key(identity, submit, digest, job.id, job.digest, job.gone, job.gone_at);
  }
  if (job.pending) {
    job.pending_replies.emplace_back(identity, submit.req);
    return;
  }
  // The connection that submitted it first hears of it now, if it has not.
  if (job.accept_held) {
    job.accept_held = false;
    send_accepted(job.client, job.req, job, /*existing=*/false);
  }
  // Its result (now or when it comes) goes to this connection.
  job.client = identity;
  job.req = submit.req;
  send_accepted(identity, submit.req, job, /*existing=*/true);
  if (finished_state(job.state)) send_result(identity, submit.req, job);
}

void BrokerCore::handle_submit(const std::string& identity, const std::string& owner,
                               const proto::Submit& submit, SharedBytes image) {
  using monitoring::Rejection;
  auto reject = [&](const Status& status, Rejection why) {
    events_.rejected(why);
    reply_error(identity, submit.req, status);
  };
  if (stopping_) {
    return reject(Status::Unavailable("the broker is stopping; submit again when it is back"), Rejection::kStopping);
  }
  auto checked = check_submit(submit, image, {config_.max_image_bytes, config_.max_pixels});
  if (!checked.ok()) return reject(checked.status(), rejection_of(checked.status()));
  const std::string digest = digest_of(image, checked->ops, checked->format, submit.path, submit.output);
  // A known idempotency key names the job already accepted.
  if (!submit.key.empty()) {
    auto known = keys_.find(scoped_key(owner, submit.key));
    if (known != keys_.end() && jobs_.count(known->second) != 0) {
      return resubmit(identity, submit, digest, jobs_.at(known->second));
    }
    if (known != keys_.end()) {
      if (const Tombstone* t = find_tombstone(known->second, owner)) {
        return refuse_used_key(identity, submit, digest, known->second, t->digest, t->gone, t->gone_at);
      }
    }
  }
  if (checked->local && !groups_.empty() && !any_group_may_use(checked->route_path, checked->route_output)) {
    return reject(Status::PermissionDenied("no connected worker group may use " + submit.path + " and " +
                                           submit.output +
                                           ": a group reads and writes local files only inside the folders "
                                           "of its --allow-paths"),
                  Rejection::kInvalid);
  }
  const size_t waiting = queue_.size();
  if (waiting >= config_.max_queued || queued_bytes_ + image.size() > config_.max_queued_bytes) {
    return reject(Status::ResourceExhausted("the queue is full (" + std::to_string(waiting) + " jobs, " +
                                            std::to_string(queued_bytes_) + " bytes waiting); retry later"),
                  Rejection::kQueueFull);
  }
  // Results nobody has acknowledged yet are bounded too: new work waits
  // rather than the broker dropping a result it promised to keep.
  if (kept_bytes_ > config_.max_kept_bytes) {
    return reject(Status::ResourceExhausted(std::to_string(kept_bytes_) +
                                            " bytes of finished results wait for their clients to fetch and "
                                            "acknowledge them (--max-kept-bytes " +
                                            std::to_string(config_.max_kept_bytes) + "); retry later"),
                  Rejection::kQueueFull);
  }

  Job job;
  job.id = new_job_id(submit.session);
  job.client = identity;
  job.line = identity;
  job.owner = owner;
  job.digest = digest;
  job.req = submit.req;
  job.priority = submit.priority;
  job.ops = std::move(checked->ops);
  job.format = checked->format;
  job.name = submit.name;
  job.key = submit.key;
  job.timeout_ms = submit.timeout_ms != 0 ? int64_t{submit.timeout_ms} : config_.job_timeout.count();
  job.accept_hold = std::min(Duration{submit.accept_hold_ms}, proto::kMaxAcceptHold);
  job.image_bytes = image.size();
  job.path = submit.path;
  job.output = submit.output;
  job.route_path = std::move(checked->route_path);
  job.route_output = std::move(checked->route_output);
  job.state = JobState::kQueued;
  job.submitted_at = now_();
  job.submitted = unix_now();
  // Stored now, answered at the commit that makes it durable.
  if (Status stored_ok = journal_.add(job, image); !stored_ok.ok()) {
    return reject(Status(stored_ok.code(), "the broker could not store the job, so it was not accepted: " +
                                               stored_ok.message()),
                  Rejection::kUnstored);
  }
  job.image = std::move(image);
  job.pending = true;
  job.pending_replies.emplace_back(identity, submit.req);
  queued_bytes_ += job.image_bytes;
  if (!job.key.empty()) keys_[scoped_key(owner, job.key)] = job.id;
  pending_.push_back(job.id);
  // Queued, and possibly running, before its commit is on disk: a big
  // image's sync overlaps its work instead of delaying it. Nobody hears of
  // the job (accepted, events, result) until the sync; if the commit fails
  // the job is refused and stopped where it runs (refuse_unstored), and a
  // crash before the sync leaves nothing to answer for.
  queue_.push(job.id, job.line, job.priority);
  const std::string id = job.id;
  jobs_.emplace(id, std::move(job));
  dispatch();
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
    if (!finished_state(job.state)) {
      journal_.progressed(job);  // dispatched, or requeued
    } else {
      // One row update for the whole end: outcome, attempts, the result (in
      // memory until this commit stores it) or its acknowledgement.
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
  // there (still delivered and fetched) and are staged again.
  for (const std::string& id : std::exchange(unstored_results_, {})) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.gone != Gone::kNo) continue;
    Job& job = it->second;
    if (ticket.ok()) {
      job.result.reset();
    } else {
      journal_.finish(job, job.result);
      unstored_results_.push_back(id);
    }
  }
  std::vector<std::string> batch = std::exchange(pending_, {});
  if (!ticket.ok()) {
    for (const std::string& id : batch) refuse_unstored(id, ticket.status());
  } else if (!batch.empty()) {
    awaiting_sync_.emplace_back(*ticket, std::move(batch));
  }
  release_synced();
}

Clock::time_point BrokerCore::oldest_pending() const {
  auto it = pending_.empty() ? jobs_.end() : jobs_.find(pending_.front());
  return it == jobs_.end() ? Clock::time_point{} : it->second.submitted_at;
}

void BrokerCore::release_synced() {
  if (awaiting_sync_.empty()) return;
  const Result<uint64_t> synced = journal_.synced();
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
    kept_bytes_ -= job.result_bytes;
  }
  if (!job.key.empty()) keys_.erase(scoped_key(job.owner, job.key));
  jobs_.erase(id);
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

void BrokerCore::handle_status(const std::string& identity, const std::string& owner, uint64_t req,
                               const std::string& id) {
  const Job* job = find_job(id, owner, /*as_operator=*/true);
  const Tombstone* buried = job == nullptr ? find_tombstone(id, owner, /*as_operator=*/true) : nullptr;
  if (job == nullptr && buried == nullptr) {
    return reply_error(identity, req, Status::NotFound("no job " + id + " (unknown, or its result expired)"), id);
  }
  proto::StatusReply reply;
  reply.req = req;
  if (job != nullptr) {
    reply.job = state_of(*job);
  } else {
    reply.job.job = id;
    reply.job.state = std::string(state_name(buried->state));
    reply.job.attempts = buried->attempts;
    reply.job.code = buried->code;
    reply.job.message = buried->message;
    reply.job.name = buried->name;
  }
  outbox_.to_client(identity, {proto::encode(reply)});
}

void BrokerCore::handle_cancel(const std::string& identity, const std::string& owner, uint64_t req,
                               const std::string& id) {
  Job* found = find_job(id, owner, /*as_operator=*/true);
  if (const Tombstone* buried = found == nullptr ? find_tombstone(id, owner, /*as_operator=*/true) : nullptr) {
    return reply_error(identity, req,
                       Status::InvalidArgument("job " + id + " is already " + std::string(state_name(buried->state))),
                       id);
  }
  if (found == nullptr) return reply_error(identity, req, Status::NotFound("no job " + id), id);
  Job& job = *found;
  if (job.state == JobState::kRunning) {
    abort_running(job, JobState::kCancelled, Status::Cancelled("cancelled on request while running on group " +
                                                            job.group_name));
  } else if (job.state == JobState::kQueued) {
    queue_.remove(id);
    queued_bytes_ -= job.image_bytes;
    finish(job, JobState::kCancelled, Status::Cancelled("cancelled on request"));
  } else {
    return reply_error(identity, req, Status::InvalidArgument("job " + id + " is already " + std::string(state_name(job.state))), id);
  }
  handle_status(identity, owner, req, id);
}

void BrokerCore::handle_fetch(const std::string& identity, const std::string& owner, uint64_t req,
                              const std::string& id) {
  Job* job = find_job(id, owner);
  auto gone = [&](Gone how, double gone_at) {
    reply_error(identity, req,
                Status::NotFound("the result of job " + id + " was " +
                                 (how == Gone::kExpired ? "not acknowledged and expired" : "delivered and acknowledged") +
                                 " at " +
                                 utc_text(gone_at)),
                id);
  };
  if (const Tombstone* buried = job == nullptr ? find_tombstone(id, owner) : nullptr) {
    return gone(buried->gone, buried->gone_at);
  }
  if (job == nullptr) {
    return reply_error(identity, req, Status::NotFound("no job " + id + " (unknown, or its result expired)"), id);
  }
  if (!finished_state(job->state)) {
    return reply_error(identity, req,
                       Status::Unavailable("job " + id + " is " + std::string(state_name(job->state)) + "; fetch it when it is done"), id);
  }
  if (job->gone != Gone::kNo) return gone(job->gone, job->gone_at);
  send_result(identity, req, *job);
}

void BrokerCore::handle_list(const std::string& identity, const std::string& owner,
                             const proto::ListRequest& request) {
  if (!request.state.empty() && !parse_state(request.state)) {
    return reply_error(identity, request.req,
                       Status::InvalidArgument("list: state \"" + request.state +
                                               "\" is not one of queued, running, done, failed, cancelled"));
  }
  // The cursor: "SUBMITTED/ID" of the last job of the previous page.
  double before_time = std::numeric_limits<double>::infinity();
  std::string before_id;
  if (!request.before.empty()) {
    const size_t slash = request.before.find('/');
    char* end = nullptr;
    before_time = std::strtod(request.before.c_str(), &end);
    if (slash == std::string::npos || end != request.before.c_str() + slash) {
      return reply_error(identity, request.req,
                         Status::InvalidArgument("list: before \"" + request.before + "\" is not a page's next"));
    }
    before_id = request.before.substr(slash + 1);
  }
  const size_t limit = request.limit == 0 ? 50 : std::min<size_t>(request.limit, 1000);
  const bool every = sees_every_owner(owner);
  using Key = std::pair<double, std::string>;
  const Key cursor{before_time, before_id};
  auto older = [&](const Key& k) { return k.first < cursor.first || (k.first == cursor.first && k < cursor); };
  // The newest `limit + 1` entries older than the cursor: a bounded heap, one
  // pass over the jobs held (O(jobs log limit) a page).
  std::vector<std::pair<Key, proto::ListedJob>> page;
  auto consider = [&](Key key, auto make) {
    if (!older(key)) return;
    auto cmp = [](const auto& a, const auto& b) { return a.first > b.first; };  // a min-heap on the key
    if (page.size() == limit + 1 && !(page.front().first < key)) return;
    page.emplace_back(std::move(key), make());
    std::push_heap(page.begin(), page.end(), cmp);
    if (page.size() > limit + 1) {
      std::pop_heap(page.begin(), page.end(), cmp);
      page.pop_back();
    }
  };
  const std::optional<JobState> wanted =
      request.state.empty() ? std::nullopt : std::optional<JobState>(*parse_state(request.state));
  for (const auto& [id, job] : jobs_) {
    if (job.pending || (!every && job.owner != owner) || (wanted && job.state != *wanted)) continue;
    consider({job.submitted, id}, [&, &job = job] {
      proto::ListedJob listed;
      listed.job = state_of(job);
      listed.submitted = job.submitted;
      listed.finished = finished_state(job.state) ? job.finished : 0;
      listed.kept = finished_state(job.state) && job.gone == Gone::kNo;
      return listed;
    });
  }
  for (const auto& [id, t] : tombstones_) {
    if ((!every && t.owner != owner) || (wanted && t.state != *wanted)) continue;
    consider({t.submitted, id}, [&, &id = id, &t = t] {
      proto::ListedJob listed;
      listed.job.job = id;
      listed.job.state = std::string(state_name(t.state));
      listed.job.attempts = t.attempts;
      listed.job.code = t.code;
      listed.job.message = t.message;
      listed.job.name = t.name;
      listed.submitted = t.submitted;
      listed.finished = t.finished;
      return listed;
    });
  }
  std::sort(page.begin(), page.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  proto::ListReply reply;
  reply.req = request.req;
  reply.every_owner = every;
  if (page.size() > limit) {
    page.pop_back();
    char when[64];
    std::snprintf(when, sizeof when, "%.17g", page.back().first.first);
    reply.next = std::string(when) + "/" + page.back().first.second;
  }
  for (auto& [key, listed] : page) reply.jobs.push_back(std::move(listed));
  outbox_.to_client(identity, {proto::encode(reply)});
}

void BrokerCore::handle_ack(Job& job) {
  if (!finished_state(job.state) || job.gone != Gone::kNo) return;
  events_.acknowledged();
  drop_result(job, Gone::kAcknowledged);
}

void BrokerCore::bury(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  Tombstone t;
  t.owner = std::move(job.owner);
  t.key = std::move(job.key);
  t.digest = std::move(job.digest);
  t.name = std::move(job.name);
  t.message = std::move(job.message);
  t.state = job.state;
  t.code = job.code;
  t.attempts = job.attempts;
  t.gone = job.gone;
  t.submitted = job.submitted;
  t.finished = job.finished;
  t.gone_at = job.gone_at;
  t.gone_since = job.gone_since;
  tombstones_.insert_or_assign(id, std::move(t));
  tombstone_order_.push_back(id);
  jobs_.erase(it);
}

const BrokerCore::Tombstone* BrokerCore::find_tombstone(const std::string& id, const std::string& owner,
                                                        bool as_operator) const {
  auto it = tombstones_.find(id);
  if (it == tombstones_.end()) return nullptr;
  if (it->second.owner != owner && !(as_operator && sees_every_owner(owner))) return nullptr;
  return &it->second;
}

void BrokerCore::drop_result(Job& job, Gone why) {
  kept_bytes_ -= job.gone == Gone::kNo ? job.result_bytes : 0;
  job.result.reset();
  job.ops.clear();
  job.gone = why;
  job.gone_at = unix_now();
  job.gone_since = now_();
  // A finish not yet recorded records the end of its result with it (and
  // record_due() buries the job then).
  if (job.unrecorded) return;
  journal_.drop_result(job.id, job.gone, job.gone_at);
  bury(job.id);  // `job` is gone from here on
}

bool BrokerCore::send_result(const std::string& identity, uint64_t req, Job& job) {
  // The result stands for an `accepted` held back for this submit.
  if (job.accept_held && identity == job.client && req == job.req) job.accept_held = false;
  proto::JobResult result;
  result.req = req;
  result.job = job.id;
  result.state = std::string(state_name(job.state));
  result.code = job.code;
  result.message = job.message;
  result.format = job.format;
  result.name = job.name;
  result.stats = job.stats;
  if (job.state == JobState::kDone) result.output = job.output;
  Frames frames{proto::encode(result)};
  if (job.state == JobState::kDone && job.path.empty()) {
    if (!job.result.empty() || job.result_bytes == 0) {
      frames.push_back(job.result);
    } else {
      auto bytes = journal_.result(job.id);
      if (!bytes.ok()) {
        reply_error(identity, req, bytes.status(), job.id);
        return true;
      }
      frames.push_back(std::move(*bytes));
    }
  }
  return outbox_.to_client(identity, std::move(frames));
}

void BrokerCore::handle_ping(const std::string& identity, const proto::Ping& ping) {
  proto::Pong pong;
  pong.req = ping.req;
  pong.groups = static_cast<uint32_t>(groups_.size());
  pong.busy = static_cast<uint32_t>(busy_groups());
  pong.idle = pong.groups - pong.busy;
  pong.ranks = static_cast<uint32_t>(total_ranks());
  pong.queued = queue_.size();
  pong.running = running();
  pong.version = std::string(imgq::version());
  pong.instance = instance_;
  pong.max_image_bytes = config_.max_image_bytes;
  pong.durable = journal_.durable();
  pong.progress = progress_endpoint_;
  const auto now = now_();
  for (const auto& [id, group] : groups_) {
    proto::GroupInfo info;
    info.name = group.name;
    info.ranks = group.ranks;
    info.slots = group.slots;
    info.running = static_cast<uint32_t>(group.jobs.size());
    info.idle_seconds = group.jobs.empty() ? seconds(now - group.idle_since) : 0;
    pong.group_list.push_back(std::move(info));
  }
  outbox_.to_client(identity, {proto::encode(pong)});
  // Lets a client see that its progress subscription is live.
  if (is_session(ping.session)) outbox_.publish(ping.session, proto::encode(pong));
}

// ---- worker groups ----

void BrokerCore::on_worker(const std::string& identity, Frames frames, const std::string& address) {
  auto header = frames.empty() ? Result<proto::Header>(Status::InvalidArgument("empty message"))
                               : proto::decode_header(frames[0]);
  if (!header.ok()) {
    events_.malformed(monitoring::Peer::kWorkers);
    return;
  }
  const std::string& type = header->type();
  if (type == proto::Hello::kType) {
    auto hello = header->as<proto::Hello>({"name", "ranks"});
    if (!hello.ok() || hello->ranks < 1 || frames.size() != 1) {
      events_.malformed(monitoring::Peer::kWorkers);
      return;
    }
    return handle_hello(identity, *hello, address);
  }
  auto it = groups_.find(identity);
  if (it == groups_.end()) {
    proto::Disconnect bye;
    bye.reason = "unknown worker group; send hello";
    outbox_.to_worker(identity, {proto::encode(bye)});
    return;
  }
  Group& group = it->second;
  group.expiry = now_() + config_.heartbeat_interval * config_.liveness;
  if (type == proto::Heartbeat::kType) return;
  if (type == proto::Bye::kType) return forget_group(identity, "the group left");
  if (type == proto::Progress::kType) {
    auto progress = header->as<proto::Progress>({"job", "done", "total"});
    if (!progress.ok() || group.jobs.count(progress->job) == 0) {
      events_.malformed(monitoring::Peer::kWorkers);
      return;
    }
    auto running = jobs_.find(progress->job);
    if (running == jobs_.end() || finished_state(running->second.state)) return;  // stopping a job already answered
    Job& job = running->second;
    job.done_stages = progress->done;
    job.total_stages = progress->total;
    publish(job);
    return;
  }
  if (type == proto::Done::kType) {
    auto done = header->as<proto::Done>({"job", "code"});
    if (!done.ok() || frames.size() > 2) {
      events_.malformed(monitoring::Peer::kWorkers);
      return;
    }
    return handle_done(group, *done, frames);
  }
  events_.malformed(monitoring::Peer::kWorkers);
}

void BrokerCore::handle_hello(const std::string& identity, const proto::Hello& hello, const std::string& address) {
  auto it = groups_.find(identity);
  if (it != groups_.end()) {
    // The same connection says hello again: it lost its jobs (a restart).
    const std::vector<Job*> lost = unfinished_jobs_of(it->second);
    for (Job* job : lost) requeue_or_fail(*job, "worker group " + it->second.name + " restarted");
    events_.group_left(it->second.name, "it said hello again (restarted)", lost.size());
  }
  Group& group = groups_[identity];
  group.identity = identity;
  group.name = hello.name;
  group.ranks = hello.ranks;
  group.slots = std::clamp(hello.slots, 1, kMaxSlots);
  group.allow_paths.clear();
  for (const std::string& folder : hello.allow_paths) {
    if (!folder.empty() && folder.front() == '/') group.allow_paths.push_back(lexically_normal(folder));
  }
  group.jobs.clear();
  group.expiry = now_() + config_.heartbeat_interval * config_.liveness;
  group.last_sent = now_();
  group.idle_since = now_();
  if (!address.empty()) group.address = address;
  events_.group_joined(hello.name, group.ranks, group.slots, group.address);
  // An answer at once, so the group knows it is connected (it logs so).
  send_worker(group, {proto::encode(proto::Heartbeat{})});
  dispatch();
}

void BrokerCore::handle_done(Group& group, const proto::Done& done, Frames& frames) {
  if (group.jobs.erase(done.job) == 0) {
    events_.stray_result();
    return;
  }
  if (group.jobs.empty()) group.idle_since = now_();
  auto unfinished = jobs_.find(done.job);
  if (unfinished == jobs_.end() || finished_state(unfinished->second.state)) {
    // The job was cancelled or passed its deadline and has been answered;
    // the group has now stopped it and its slot is free.
    dispatch();
    return;
  }
  Job& job = unfinished->second;
  job.stats = done.stats;
  job.stats.group = group.name;
  job.stats.ranks = group.ranks;
  job.stats.wait_seconds = seconds(job.dispatched_at - job.submitted_at);
  job.stats.run_seconds = seconds(now_() - job.dispatched_at);
  if (done.code == 0 && !job.path.empty()) {
    // The group wrote the result where the client asked.
    if (done.output != job.output) {
      finish(job, JobState::kFailed, Status::Internal("the worker group wrote \"" + done.output + "\", not \"" +
                                                   job.output + "\""), /*ran=*/true);
    } else {
      finish(job, JobState::kDone, Status::Ok(), /*ran=*/true);
    }
  } else if (done.code == 0 && frames.size() == 2) {
    job.result = std::move(frames[1]);
    finish(job, JobState::kDone, Status::Ok(), /*ran=*/true);
  } else if (done.code == 0) {
    finish(job, JobState::kFailed, Status::Internal("the worker group sent no result image"), /*ran=*/true);
  } else {
    finish(job, JobState::kFailed, Status(static_cast<StatusCode>(done.code), done.message), /*ran=*/true);
  }
  dispatch();
}

void BrokerCore::send_worker(Group& group, Frames frames) {
  group.last_sent = now_();
  outbox_.to_worker(group.identity, std::move(frames));
}

bool BrokerCore::any_group_may_use(const std::string& path, const std::string& output) const {
  return std::any_of(groups_.begin(), groups_.end(), [&](const auto& entry) {
    const Group& g = entry.second;
    return inside_any(g.allow_paths, path) && inside_any(g.allow_paths, output);
  });
}

BrokerCore::Group* BrokerCore::group_for(const Job& job) {
  Group* best = nullptr;
  for (auto& [id, g] : groups_) {
    if (g.jobs.size() >= static_cast<size_t>(g.slots)) continue;
    if (!job.path.empty() &&
        !(inside_any(g.allow_paths, job.route_path) && inside_any(g.allow_paths, job.route_output))) {
      continue;
    }
    if (best == nullptr || g.jobs.size() < best->jobs.size() ||
        (g.jobs.size() == best->jobs.size() && g.idle_since < best->idle_since)) {
      best = &g;
    }
  }
  return best;
}

void BrokerCore::dispatch() {
  while (!queue_.empty()) {
    const bool free_slot = std::any_of(groups_.begin(), groups_.end(), [](const auto& entry) {
      return entry.second.jobs.size() < static_cast<size_t>(entry.second.slots);
    });
    if (!free_slot) return;
    // The next job in the queue's order that a group with a free slot can
    // run: a local-files job waits for a group whose folders hold its files,
    // and the jobs behind it in other clients' lines go first meanwhile.
    Group* idle = nullptr;
    auto next = queue_.pop_if([&](const std::string& id) {
      idle = group_for(jobs_.at(id));
      return idle != nullptr;
    });
    if (!next) return;
    const std::string id = std::move(*next);
    Job& job = jobs_.at(id);
    queued_bytes_ -= job.image_bytes;
    if (job.path.empty() && job.image.empty()) {
      // Restored from the journal: the image is read back when it runs.
      auto image = journal_.image(id);
      if (!image.ok()) {
        finish(job, JobState::kFailed, image.status());
        continue;
      }
      job.image = SharedBytes(std::move(*image));
    }
    move(job, JobState::kRunning);
    job.group = idle->identity;
    job.group_name = idle->name;
    job.dispatched_at = now_();
    job.deadline = job.timeout_ms > 0 ? job.dispatched_at + job.timeout() : Clock::time_point::max();
    job.done_stages = 0;
    job.total_stages = 0;
    ++job.attempts;
    unrecorded(job);
    idle->jobs.insert(id);
    events_.dispatched(seconds(job.dispatched_at - job.submitted_at));

    proto::JobRequest request;
    request.job = id;
    request.ops = job.ops;
    request.format = job.format;
    request.name = job.name;
    request.timeout_ms = static_cast<uint32_t>(std::min<int64_t>(job.timeout_ms, UINT32_MAX));
    request.path = job.path;
    request.output = job.output;
    if (job.path.empty()) {
      send_worker(*idle, {proto::encode(request), job.image});
    } else {
      send_worker(*idle, {proto::encode(request)});
    }
    publish(job);
  }
}

void BrokerCore::finish(Job& job, JobState state, const Status& status, bool ran) {
  move(job, state);
  job.code = static_cast<int>(status.code());
  job.message = status.message();
  job.finished_at = now_();
  job.finished = unix_now();
  job.group.clear();
  job.image.reset();
  job.result_bytes = state == JobState::kDone ? job.result.size() : 0;
  kept_bytes_ += job.result_bytes;
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

std::vector<BrokerCore::Job*> BrokerCore::unfinished_jobs_of(const Group& group) {
  std::vector<Job*> jobs;
  for (const std::string& id : group.jobs) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && !finished_state(it->second.state)) jobs.push_back(&it->second);
  }
  return jobs;
}

void BrokerCore::send_abort(const Job& job, const std::string& reason) {
  auto group = groups_.find(job.group);
  if (group == groups_.end()) return;
  proto::Abort abort;
  abort.job = job.id;
  abort.reason = reason;
  send_worker(group->second, {proto::encode(abort)});
}

void BrokerCore::abort_running(Job& job, JobState state, const Status& why) {
  send_abort(job, why.message());
  events_.stopped_running();
  finish(job, state, why, /*ran=*/true);
}

void BrokerCore::expire_deadlines(Clock::time_point now) {
  std::vector<Job*> expired;
  for (auto& [id, group] : groups_) {
    for (Job* job : unfinished_jobs_of(group)) {
      if (now >= job->deadline) expired.push_back(job);
    }
  }
  for (Job* job : expired) {
    abort_running(*job, JobState::kFailed,
                  Status::DeadlineExceeded("the job ran longer than its timeout of " +
                                           seconds_text(job->timeout()) + " on group " + job->group_name));
  }
}

void BrokerCore::forget_group(const std::string& identity, const std::string& why) {
  auto it = groups_.find(identity);
  if (it == groups_.end()) return;
  const std::vector<Job*> jobs = unfinished_jobs_of(it->second);
  const std::string name = it->second.name;
  groups_.erase(it);
  for (Job* job : jobs) requeue_or_fail(*job, "worker group " + name + ": " + why);
  events_.group_left(name, why, jobs.size());
  dispatch();
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
  send_held_accepts(now);

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

// ---- events ----

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
  event.time = unix_now();
  events_.job_changed(event.job);
  outbox_.publish(job.id, proto::encode(event));
}

}  // namespace imgq::broker
