// Which rank of a worker group runs which job: the one policy of both the
// broker-connected leader (worker_service.cc) and the standalone batch
// (standalone.cc). Pure: no MPI, no sockets, no clock (the caller passes the
// time), so tests/mpi_workers/rank_scheduler_test.cc covers it alone.
//
// The policy:
//  - An image runs whole on one rank when it is small (at most
//    `strip_above` pixels by its header), else in strips over every rank
//    (runs_whole()). A group of one rank runs everything whole.
//  - Jobs start in the order they came. The first waiting job that cannot
//    start holds back those behind it, so a large image is never starved by
//    a stream of small ones.
//  - A whole job goes to the leader's own thread when it is free, else to
//    the lowest-numbered idle follower.
//  - A strips job needs every rank: it starts once nothing else runs, and
//    nothing starts while it runs.
//  - A job whose deadline passes while it waits is handed back expired,
//    never started.
//  - The leader learns that a follower finished by polling MPI (it cannot
//    wake a socket poll): every kBusyPoll while a follower works, else it
//    sleeps until a socket wakes it, at most kIdlePoll.
// The group asks the broker for slots_for() jobs: one per rank and one
// waiting at the leader, so that a rank that finishes starts its next image
// without a round trip to the broker.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "imgq/common/image_header.h"
#include "imgq/common/status.h"

namespace imgq::workers {

// How often the leader looks for followers' results while one works, and at
// most how long it waits for a socket otherwise.
inline constexpr std::chrono::microseconds kBusyPoll{1000};
inline constexpr std::chrono::microseconds kIdlePoll{100'000};

// Whether an encoded image of `encoded_bytes`, whose header reads as
// `header`, runs whole on one rank of a group of `ranks`: always on one
// rank; never when `strip_above` is 0 or the file is too large for one MPI
// message (`max_message`); else when the header declares at most
// `strip_above` pixels, or cannot be read (decoding says why, on whichever
// rank takes it).
inline bool runs_whole(int ranks, uint64_t encoded_bytes, const Result<ImageHeader>& header, uint64_t strip_above,
                       uint64_t max_message) {
  if (strip_above == 0) return false;
  if (ranks == 1) return true;  // strips of one are the whole image
  if (encoded_bytes > max_message) return false;
  return !header.ok() || header->pixels() <= strip_above;
}

// The jobs a group of `ranks` takes from the broker at once.
inline int slots_for(int ranks, uint64_t strip_above) { return strip_above == 0 ? 1 : ranks + 1; }

enum class Where {
  kLeader,    // whole, on the leader's own thread
  kFollower,  // whole, on one follower
  kStrips,    // in strips over every rank, led by rank 0
  kExpired,   // its deadline passed while it waited: not started
};

template <typename Job>
class RankScheduler {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit RankScheduler(int ranks) : running_(static_cast<size_t>(ranks < 1 ? 1 : ranks)) {}

  // Queues `job`, to run whole or in strips, and to expire unstarted at
  // `deadline` if given.
  void push(Job job, bool whole, std::optional<TimePoint> deadline = std::nullopt) {
    waiting_.push_back({std::move(job), whole, deadline});
  }

  struct Start {
    Where where;
    int rank = 0;                 // kFollower: which; else 0. The job is running(rank)
    std::optional<Job> expired;  // kExpired: the job, no longer queued
  };

  // Starts the first waiting job if its rank(s) are free at `now`: it is
  // then running(rank), and the rank(s) busy until finish(rank). Or hands it
  // back as kExpired. nullopt when nothing waits or the first job must wait.
  std::optional<Start> next(TimePoint now) {
    if (waiting_.empty()) return std::nullopt;
    Waiting& first = waiting_.front();
    if (first.deadline && now >= *first.deadline) return Start{Where::kExpired, 0, drop_first()};
    if (strips_) return std::nullopt;
    if (!first.whole) {
      if (!idle()) return std::nullopt;
      strips_ = true;
      return run_on(0, Where::kStrips);
    }
    if (!running_[0]) return run_on(0, Where::kLeader);
    for (size_t r = 1; r < running_.size(); ++r) {
      if (!running_[r]) return run_on(static_cast<int>(r), Where::kFollower);
    }
    return std::nullopt;
  }

  // The first waiting job, removed unstarted (the caller ends it: e.g. the
  // broker cancelled it). Only when something waits.
  Job drop_first() {
    Job job = std::move(waiting_.front().job);
    waiting_.pop_front();
    return job;
  }

  // The job rank `rank` runs (0: the leader's own, or the strips job), or
  // null when it is idle.
  Job* running(int rank) {
    if (rank < 0 || static_cast<size_t>(rank) >= running_.size() || !running_[static_cast<size_t>(rank)]) {
      return nullptr;
    }
    return &*running_[static_cast<size_t>(rank)];
  }

  // Rank `rank`'s job, which has ended; the rank is free. Only when it runs one.
  Job finish(int rank) {
    std::optional<Job>& slot = running_[static_cast<size_t>(rank)];
    Job job = std::move(*slot);
    slot.reset();
    if (rank == 0) strips_ = false;
    return job;
  }

  size_t waiting() const { return waiting_.size(); }
  const Job* first_waiting() const { return waiting_.empty() ? nullptr : &waiting_.front().job; }

  bool followers_busy() const {
    for (size_t r = 1; r < running_.size(); ++r) {
      if (running_[r]) return true;
    }
    return false;
  }
  bool leader_busy() const { return running_[0].has_value(); }
  bool idle() const { return !leader_busy() && !followers_busy(); }
  bool done() const { return idle() && waiting_.empty(); }

  // How long the leader may wait for anything else before polling MPI again.
  std::chrono::microseconds poll_interval() const { return followers_busy() ? kBusyPoll : kIdlePoll; }

 private:
  struct Waiting {
    Job job;
    bool whole;
    std::optional<TimePoint> deadline;
  };

  Start run_on(int rank, Where where) {
    running_[static_cast<size_t>(rank)].emplace(drop_first());
    return Start{where, rank, std::nullopt};
  }

  std::deque<Waiting> waiting_;
  std::vector<std::optional<Job>> running_;  // [0]: the leader's own job or the strips job
  bool strips_ = false;
};

}  // namespace imgq::workers
