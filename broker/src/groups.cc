// Worker groups: hello, heartbeats, results, dispatch over their slots,
// deadlines and their leaving.
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
    job.result_crc = crc32_of(std::string_view(job.result.data(), job.result.size()));
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
        if (is_damaged(image.status())) events_.damaged(id, /*result=*/false, image.status());
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

}  // namespace imgq::broker
