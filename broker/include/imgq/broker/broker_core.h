// The broker's logic: jobs, worker groups, dispatch, liveness and results,
// as one state machine fed with decoded traffic and the time.
// See ../../../../schemas/PROTOCOL.md for the messages and state machines.
//
// It owns no sockets: the server (server.h) hands it each message's frames
// and the outbox sends what it asks. Time comes from an injected clock, so
// tests drive heartbeats and expiry without sleeping. Not thread-safe: the
// broker runs it on its one thread.
//
// Data model (fits on a screen, as in majordomo):
//   jobs_    id -> Job {client, req, ops, image, state, group, attempts, ...}
//   queue_   waiting job ids (priority lanes, fair between clients)
//   groups_  identity -> Group {name, ranks, slots, allow_paths, jobs, expiry}
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "imgq/broker/config.h"
#include "imgq/broker/job_queue.h"
#include "imgq/common/status.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/monitoring/broker_metrics.h"
#include "imgq/schemas/messages.h"

namespace imgq::broker {

// Frames of one message after the ROUTER identity: header, then payload.
using imgq::Frames;

// Where the core's messages go. Implemented over sockets by the server and
// by a recorder in tests.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // False when the client cannot be reached (its connection is gone).
  virtual bool to_client(const std::string& identity, Frames frames) = 0;
  virtual void to_worker(const std::string& identity, Frames frames) = 0;
  virtual void publish(const std::string& topic, std::string event) = 0;
};

// Counts kept for `pong`, logs and metrics.
struct BrokerCounters {
  uint64_t submitted = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t cancelled = 0;
  uint64_t retried = 0;
  uint64_t rejected_queue_full = 0;
  uint64_t rejected_invalid = 0;
  uint64_t rejected_too_large = 0;
  uint64_t malformed_client = 0;
  uint64_t malformed_worker = 0;
  uint64_t stray_results = 0;  // `done` for a job the group did not hold
  uint64_t undelivered_results = 0;
  uint64_t deadlines_exceeded = 0;
  uint64_t aborted_running = 0;  // cancelled or past their deadline while a group ran them
};

class BrokerCore {
 public:
  using Now = std::function<Clock::time_point()>;

  // `metrics` may be null (no metrics); it must outlive the core.
  BrokerCore(BrokerConfig config, Outbox& outbox, Now now = Clock::now,
             monitoring::BrokerMetrics* metrics = nullptr);

  void on_client(const std::string& identity, Frames frames);
  void on_worker(const std::string& identity, Frames frames);
  // Heartbeats, expiry of silent groups, expiry of old results. Call at least
  // every time_to_next_tick().
  void tick();
  Duration time_to_next_tick() const;

  const BrokerCounters& counters() const { return counters_; }
  // Random per start; clients compare it across pongs to notice a restart.
  const std::string& instance() const { return instance_; }
  size_t queued() const { return queue_.size(); }
  size_t queued_bytes() const { return queued_bytes_; }
  size_t running() const;  // jobs held by groups
  size_t groups() const { return groups_.size(); }
  size_t busy_groups() const;  // groups holding at least one job
  size_t idle_groups() const { return groups_.size() - busy_groups(); }
  size_t total_ranks() const;

 private:
  struct Job {
    std::string id;
    std::string client;  // identity of the submitting connection
    uint64_t req = 0;
    int priority = 4;
    std::vector<std::string> ops;
    std::string format;
    std::string name;
    std::string key;
    std::string image;   // kept until the job is done, for requeues
    std::string path;    // a local-files job: the group reads the image here
    std::string output;  // and writes the result here
    // Both lexically normal, compared with the groups' folders when routing.
    std::string route_path, route_output;
    std::string state;
    std::string group;   // identity of the group running it
    std::string group_name;
    int attempts = 0;
    Duration timeout{0};
    Clock::time_point deadline;  // of the running attempt
    int done_stages = 0;
    int total_stages = 0;
    int code = 0;
    std::string message;
    std::string result;  // kept only when it could not be delivered
    bool result_kept = false;
    proto::JobStats stats;
    Clock::time_point submitted, dispatched, finished;
  };
  struct Group {
    std::string identity;
    std::string name;
    int ranks = 0;
    int slots = 1;  // jobs it takes at once
    // The folders whose files it reads and writes in local-files jobs,
    // lexically normal, without a trailing '/' (but "/" itself).
    std::vector<std::string> allow_paths;
    // The jobs it holds. A job cancelled or past its deadline is finished at
    // once, but keeps its slot until the group reports `done` for it.
    std::set<std::string> jobs;
    Clock::time_point expiry;
    Clock::time_point last_sent;
    Clock::time_point idle_since;
  };

  void handle_submit(const std::string& identity, const proto::Submit& submit, std::string image);
  void handle_status(const std::string& identity, uint64_t req, const std::string& job);
  void handle_cancel(const std::string& identity, uint64_t req, const std::string& job);
  void handle_fetch(const std::string& identity, uint64_t req, const std::string& job);
  void handle_ping(const std::string& identity, const proto::Ping& ping);
  void handle_hello(const std::string& identity, const proto::Hello& hello);
  void handle_done(Group& group, const proto::Done& done, Frames& frames);

  void reply_error(const std::string& identity, uint64_t req, const Status& status,
                   const std::string& job = {});
  void send_worker(Group& group, Frames frames);
  // Sends the job's `result` (with its image when done); on success the
  // broker's copy of the image is freed. False when the client is gone.
  bool send_result(const std::string& identity, uint64_t req, Job& job);
  void dispatch();
  // The group with a free slot that should run `job`: one that may use its
  // files if it has any, holding the fewest jobs, then idle the longest.
  Group* group_for(const Job& job);
  // Whether some connected group's folders hold both of a local-files job's
  // files (lexically normal).
  bool any_group_may_use(const std::string& path, const std::string& output) const;
  // `ran`: a group ran the job to this end (its stats count for the group).
  void finish(Job& job, const std::string& state, const Status& status, bool ran = false);
  void update_gauges();
  void requeue_or_fail(Job& job, const std::string& why);
  // Ends a running job now and tells its group to stop it.
  void abort_running(Job& job, const std::string& state, const Status& why);
  // The group's jobs the broker still waits for (not cancelled or expired).
  std::vector<Job*> unfinished_jobs_of(const Group& group);
  void forget_group(const std::string& identity, const std::string& why);
  void publish(const Job& job);
  proto::JobState state_of(const Job& job) const;
  std::string new_job_id(const std::string& session);
  void expire_deadlines(Clock::time_point now);

  BrokerConfig config_;
  Outbox& outbox_;
  Now now_;
  monitoring::BrokerMetrics* metrics_;
  std::mt19937_64 random_;
  std::unordered_map<std::string, Job> jobs_;
  std::unordered_map<std::string, std::string> keys_;  // idempotency key -> job id
  JobQueue queue_;
  size_t queued_bytes_ = 0;
  std::map<std::string, Group> groups_;
  BrokerCounters counters_;
  Clock::time_point last_sweep_{};  // of finished jobs past their TTL
  std::string instance_;
};

}  // namespace imgq::broker
