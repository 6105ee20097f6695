// The broker's queue of waiting jobs: priority first, fair between clients
// within a priority.
//
// Ten lanes, one per priority (9 runs first). Within a lane, clients with
// waiting jobs take turns (round-robin): a client with 10,000 queued jobs
// delays a client that submits one by at most one job per other client.
// Requeued jobs (their group died) go to the very front. Pure data structure:
// no sockets, no clock; not thread-safe (the broker has one thread). Bounds
// are enforced by the broker before push().
#pragma once

#include <array>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace imgq::broker {

class JobQueue {
 public:
  static constexpr int kPriorities = 10;

  // Appends `job` to `client`'s line in lane `priority` (clamped to 0..9).
  void push(const std::string& job, const std::string& client, int priority);
  // Puts `job` first: it is the next pop() of its lane, and its client's turn.
  void push_front(const std::string& job, const std::string& client, int priority);
  // The next job to run, or nothing when the queue is empty.
  std::optional<std::string> pop();
  // The first job in pop()'s order that `can_run` accepts, or nothing. A
  // job it refuses lets the ones behind it in its client's line pass, up to
  // kLookAhead deep per line; a client passed over keeps its turn.
  // O(clients x kLookAhead) calls of `can_run` at most.
  static constexpr size_t kLookAhead = 64;
  std::optional<std::string> pop_if(const std::function<bool(const std::string& job)>& can_run);
  // Removes a waiting job; false when it is not queued.
  bool remove(const std::string& job);

  size_t size() const { return where_.size(); }
  bool empty() const { return where_.empty(); }
  size_t size_of_lane(int priority) const;
  // 1-based place of `job` in the order pop() would follow if nothing else
  // arrived; 0 when it is not queued. O(clients in its lane).
  size_t position(const std::string& job) const;
  // The first waiting job of every client line: the oldest job waiting is
  // among them (lines are FIFO, and requeued jobs are older still).
  std::vector<std::string> line_fronts() const;

 private:
  struct Lane {
    std::deque<std::string> turns;  // clients with waiting jobs, next first
    std::unordered_map<std::string, std::deque<std::string>> lines;
    size_t jobs = 0;
  };
  struct Place {
    int priority;
    std::string client;
  };

  std::array<Lane, kPriorities> lanes_;
  std::unordered_map<std::string, Place> where_;
};

}  // namespace imgq::broker
