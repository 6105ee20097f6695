#include "imgq/broker/job_queue.h"

#include <algorithm>

namespace imgq::broker {
namespace {

int clamp_priority(int priority) { return std::clamp(priority, 0, JobQueue::kPriorities - 1); }

}  // namespace

void JobQueue::push(const std::string& job, const std::string& client, int priority) {
  priority = clamp_priority(priority);
  Lane& lane = lanes_[static_cast<size_t>(priority)];
  auto& line = lane.lines[client];
  if (line.empty()) lane.turns.push_back(client);
  line.push_back(job);
  ++lane.jobs;
  where_[job] = {priority, client};
}

void JobQueue::push_front(const std::string& job, const std::string& client, int priority) {
  priority = clamp_priority(priority);
  Lane& lane = lanes_[static_cast<size_t>(priority)];
  auto& line = lane.lines[client];
  if (!line.empty()) lane.turns.erase(std::find(lane.turns.begin(), lane.turns.end(), client));
  lane.turns.push_front(client);
  line.push_front(job);
  ++lane.jobs;
  where_[job] = {priority, client};
}

std::optional<std::string> JobQueue::pop() {
  return pop_if([](const std::string&) { return true; });
}

std::optional<std::string> JobQueue::pop_if(const std::function<bool(const std::string& job)>& can_run) {
  for (int p = kPriorities - 1; p >= 0; --p) {
    Lane& lane = lanes_[static_cast<size_t>(p)];
    for (auto turn = lane.turns.begin(); turn != lane.turns.end(); ++turn) {
      auto it = lane.lines.find(*turn);
      auto& line = it->second;
      const auto last = line.begin() + static_cast<std::ptrdiff_t>(std::min(line.size(), kLookAhead));
      const auto found = std::find_if(line.begin(), last, can_run);
      if (found == last) continue;
      std::string job = std::move(*found);
      line.erase(found);
      const std::string client = *turn;
      lane.turns.erase(turn);
      if (line.empty()) {
        lane.lines.erase(it);
      } else {
        lane.turns.push_back(client);
      }
      --lane.jobs;
      where_.erase(job);
      return job;
    }
  }
  return std::nullopt;
}

bool JobQueue::remove(const std::string& job) {
  auto found = where_.find(job);
  if (found == where_.end()) return false;
  Lane& lane = lanes_[static_cast<size_t>(found->second.priority)];
  auto it = lane.lines.find(found->second.client);
  auto& line = it->second;
  line.erase(std::find(line.begin(), line.end(), job));
  if (line.empty()) {
    lane.turns.erase(std::find(lane.turns.begin(), lane.turns.end(), found->second.client));
    lane.lines.erase(it);
  }
  --lane.jobs;
  where_.erase(found);
  return true;
}

size_t JobQueue::size_of_lane(int priority) const {
  return lanes_[static_cast<size_t>(clamp_priority(priority))].jobs;
}

size_t JobQueue::position(const std::string& job) const {
  auto found = where_.find(job);
  if (found == where_.end()) return 0;
  const int priority = found->second.priority;
  size_t ahead = 0;
  for (int p = kPriorities - 1; p > priority; --p) ahead += lanes_[static_cast<size_t>(p)].jobs;

  // Round-robin: with my job k-th in my line, every client whose turn comes
  // before mine runs up to k+1 jobs first, every one after me up to k.
  const Lane& lane = lanes_[static_cast<size_t>(priority)];
  const auto& mine = lane.lines.at(found->second.client);
  const size_t k = static_cast<size_t>(std::find(mine.begin(), mine.end(), job) - mine.begin());
  bool before_me = true;
  for (const std::string& client : lane.turns) {
    if (client == found->second.client) {
      before_me = false;
      continue;
    }
    ahead += std::min(lane.lines.at(client).size(), k + (before_me ? 1 : 0));
  }
  return ahead + k + 1;
}

std::vector<std::string> JobQueue::line_fronts() const {
  std::vector<std::string> fronts;
  for (const Lane& lane : lanes_) {
    for (const auto& [client, line] : lane.lines) fronts.push_back(line.front());
  }
  return fronts;
}

}  // namespace imgq::broker
