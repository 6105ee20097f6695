// Results kept until acknowledged or expired, then tombstones answering
// for their keys one more TTL.
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
  if (job.gone == Gone::kNo) count_kept(job, -1);
  job.result.reset();
  job.ops.clear();
  job.gone = why;
  job.gone_at = wall_now_();
  job.gone_since = now_();
  // A finish not yet recorded records the end of its result with it (and
  // record_due() buries the job then).
  if (job.unrecorded) return;
  journal_.drop_result(job.id, job.gone, job.gone_at);
  staged(job.id);
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
  if (job.state == JobState::kDone && job.path.empty()) result.crc32 = job.result_crc;
  Frames frames{proto::encode(result)};
  if (job.state == JobState::kDone && job.path.empty()) {
    if (!job.result.empty() || job.result_bytes == 0) {
      frames.push_back(job.result);
    } else {
      auto bytes = journal_.result(job.id);
      if (!bytes.ok()) {
        if (is_damaged(bytes.status())) events_.damaged(job.id, /*result=*/true, bytes.status());
        reply_error(identity, req, bytes.status(), job.id);
        return true;
      }
      frames.push_back(std::move(*bytes));
    }
  }
  return outbox_.to_client(identity, std::move(frames));
}

}  // namespace imgq::broker
