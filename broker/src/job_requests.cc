// What clients ask about jobs: status, cancel, list and ping.
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

namespace {

// A page's cursor, "SUBMITTED/ID" of the last job of the previous page;
// empty: from the newest.
Result<std::pair<double, std::string>> parse_list_cursor(const std::string& before) {
  if (before.empty()) return std::pair<double, std::string>{std::numeric_limits<double>::infinity(), ""};
  const size_t slash = before.find('/');
  char* end = nullptr;
  const double time = std::strtod(before.c_str(), &end);
  if (slash == std::string::npos || end != before.c_str() + slash) {
    return Status::InvalidArgument("list: before \"" + before + "\" is not a page's next");
  }
  return std::pair<double, std::string>{time, before.substr(slash + 1)};
}

// The newest `size` entries older than a cursor, by (submitted, id): a
// bounded min-heap, so a page costs one pass over the jobs held
// (O(jobs log size)).
class NewestPage {
 public:
  using Key = std::pair<double, std::string>;
  NewestPage(Key cursor, size_t size) : cursor_(std::move(cursor)), size_(size) {}

  // Keeps `make()` under `key` if it is among the newest so far.
  template <typename Make>
  void consider(Key key, Make make) {
    if (!(key.first < cursor_.first || (key.first == cursor_.first && key < cursor_))) return;
    if (entries_.size() == size_ && !(entries_.front().first < key)) return;
    entries_.emplace_back(std::move(key), make());
    std::push_heap(entries_.begin(), entries_.end(), newer);
    if (entries_.size() > size_) {
      std::pop_heap(entries_.begin(), entries_.end(), newer);
      entries_.pop_back();
    }
  }
  // The entries, newest first.
  std::vector<std::pair<Key, proto::ListedJob>> take() {
    std::sort(entries_.begin(), entries_.end(), newer);
    return std::move(entries_);
  }

 private:
  static bool newer(const std::pair<Key, proto::ListedJob>& a, const std::pair<Key, proto::ListedJob>& b) {
    return a.first > b.first;
  }
  Key cursor_;
  size_t size_;
  std::vector<std::pair<Key, proto::ListedJob>> entries_;
};

}  // namespace

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

void BrokerCore::handle_list(const std::string& identity, const std::string& owner,
                             const proto::ListRequest& request) {
  if (!request.state.empty() && !parse_state(request.state)) {
    return reply_error(identity, request.req,
                       Status::InvalidArgument("list: state \"" + request.state +
                                               "\" is not one of queued, running, done, failed, cancelled"));
  }
  auto cursor = parse_list_cursor(request.before);
  if (!cursor.ok()) return reply_error(identity, request.req, cursor.status());
  const size_t limit = request.limit == 0 ? 50 : std::min<size_t>(request.limit, 1000);
  const bool every = sees_every_owner(owner);
  NewestPage page(*cursor, limit + 1);  // one more than a page: whether a next page exists
  auto consider = [&](NewestPage::Key key, auto make) { page.consider(std::move(key), make); };
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
  std::vector<std::pair<NewestPage::Key, proto::ListedJob>> newest = page.take();
  proto::ListReply reply;
  reply.req = request.req;
  reply.every_owner = every;
  if (newest.size() > limit) {
    newest.pop_back();
    char when[64];
    std::snprintf(when, sizeof when, "%.17g", newest.back().first.first);
    reply.next = std::string(when) + "/" + newest.back().first.second;
  }
  for (auto& [key, listed] : newest) reply.jobs.push_back(std::move(listed));
  outbox_.to_client(identity, {proto::encode(reply)});
}

void BrokerCore::handle_ping(const std::string& identity, const std::string& owner, const proto::Ping& ping) {
  // A session the broker would refuse in a submit is refused here too,
  // rather than answered without the pong on the progress socket it asks for.
  if (!ping.session.empty() && !is_session(ping.session)) {
    return reply_error(identity, ping.req,
                       Status::InvalidArgument("ping: session must be 8 lower-case hex digits, got \"" +
                                               ping.session + "\""));
  }
  if (Status held = claim_session(ping.session, owner, "ping"); !held.ok()) {
    return reply_error(identity, ping.req, held);
  }
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
  if (pong.durable) pong.journal = monitoring::disk_state_name(journal_.disk_state());
  pong.progress = progress_endpoint_;
  pong.protocol = proto::kProtocolRevision;
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

}  // namespace imgq::broker
