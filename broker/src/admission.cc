// Admission: a submit checked, deduplicated by its key, bounded, queued and
// held until its commit; `accepted` sent (or held for the result).
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
  if (Status held = claim_session(submit.session, owner, "submit"); !held.ok()) return reject(held, Rejection::kInvalid);
  // The image's checksum, kept with the job and checked whenever it is read back.
  const uint32_t image_crc = crc32_of(std::string_view(image.data(), image.size()));
  const std::string digest = digest_of(image_crc, image, checked->ops, checked->format, submit.path, submit.output);
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
  monitoring::Rejection why = Rejection::kInvalid;
  if (Status refused = refusal_of(*checked, submit, image.size(), &why); !refused.ok()) return reject(refused, why);
  Job job = job_of(identity, owner, submit, std::move(checked).value(), digest, image.size());
  if (Status share = client_share_refusal(client_of(job)); !share.ok()) return reject(share, Rejection::kClientShare);
  if (submit.path.empty()) job.image_crc = image_crc;
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
  count_open(job, +1);
  const std::string id = job.id;
  jobs_.emplace(id, std::move(job));
  dispatch();
}

Status BrokerCore::refusal_of(const CheckedSubmit& checked, const proto::Submit& submit, size_t image_bytes,
                              monitoring::Rejection* why) const {
  using monitoring::Rejection;
  *why = Rejection::kQueueFull;
  if (checked.local && !groups_.empty() && !any_group_may_use(checked.route_path, checked.route_output)) {
    *why = Rejection::kInvalid;
    return Status::PermissionDenied("no connected worker group may use " + submit.path + " and " + submit.output +
                                    ": a group reads and writes local files only inside the folders of its "
                                    "--allow-paths");
  }
  const size_t waiting = queue_.size();
  if (waiting >= config_.max_queued || queued_bytes_ + image_bytes > config_.max_queued_bytes) {
    return Status::ResourceExhausted("the queue is full (" + std::to_string(waiting) + " jobs, " +
                                     std::to_string(queued_bytes_) + " bytes waiting); retry later");
  }
  // Results nobody has acknowledged yet are bounded too: new work waits
  // rather than the broker dropping a result it promised to keep.
  if (kept_bytes_ > config_.max_kept_bytes) {
    return Status::ResourceExhausted(std::to_string(kept_bytes_) +
                                     " bytes of finished results wait for their clients to fetch and acknowledge "
                                     "them (--max-kept-bytes " +
                                     std::to_string(config_.max_kept_bytes) + "); retry later");
  }
  return Status::Ok();
}

Status BrokerCore::client_share_refusal(const std::string& client) const {
  auto it = by_client_.find(client);
  if (it == by_client_.end()) return Status::Ok();
  const size_t clients = by_client_.size();
  const std::string active = std::to_string(clients) + (clients == 1 ? " client holds" : " clients hold");
  const size_t jobs = share_of(config_.max_queued, config_.per_client_limit(), client);
  if (it->second.open >= jobs) {
    return Status::ResourceExhausted(
        "this client holds " + std::to_string(it->second.open) + " unfinished jobs, its share of the queue (" +
        std::to_string(jobs) + ": --max-queued " + std::to_string(config_.max_queued) + " / (" + active +
        " jobs + 1), never less than --max-queued-per-client " + std::to_string(config_.per_client_limit()) +
        "); retry once some have finished");
  }
  const size_t bytes = share_of(config_.max_kept_bytes, config_.kept_per_client_limit(), client);
  if (it->second.kept > bytes) {
    return Status::ResourceExhausted(
        "this client's finished results waiting to be fetched and acknowledged hold " +
        std::to_string(it->second.kept) + " bytes, past its share (" + std::to_string(bytes) +
        ": --max-kept-bytes " + std::to_string(config_.max_kept_bytes) + " / (" + active +
        " jobs or results + 1), never less than --max-kept-bytes-per-client " +
        std::to_string(config_.kept_per_client_limit()) + "); acknowledge results (imgq fetch) or retry later");
  }
  return Status::Ok();
}

BrokerCore::Job BrokerCore::job_of(const std::string& identity, const std::string& owner,
                                   const proto::Submit& submit, CheckedSubmit checked, const std::string& digest,
                                   size_t image_bytes) {
  Job job;
  job.id = new_job_id(submit.session, owner);
  job.client = identity;
  job.line = identity;
  job.owner = owner;
  job.digest = digest;
  job.req = submit.req;
  job.priority = submit.priority;
  job.ops = std::move(checked.ops);
  job.format = checked.format;
  job.name = submit.name;
  job.key = submit.key;
  job.timeout_ms = submit.timeout_ms != 0 ? int64_t{submit.timeout_ms} : config_.job_timeout.count();
  job.accept_hold = std::min(Duration{submit.accept_hold_ms}, proto::kMaxAcceptHold);
  job.image_bytes = image_bytes;
  job.path = submit.path;
  job.output = submit.output;
  job.route_path = std::move(checked.route_path);
  job.route_output = std::move(checked.route_output);
  job.state = JobState::kQueued;
  job.submitted_at = now_();
  job.submitted = wall_now_();
  return job;
}

}  // namespace imgq::broker
