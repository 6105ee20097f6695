// The broker's logic: jobs, worker groups, dispatch, liveness and results,
// as one state machine fed with decoded traffic and the time.
// See ../../../../schemas/PROTOCOL.md for the messages and state machines.
//
// It owns no sockets: the server (server.h) hands it each message's frames
// and the outbox sends what it asks. Time comes from an injected clock, so
// tests drive heartbeats and expiry without sleeping. Not thread-safe: the
// broker runs it on its one thread.
//
// Durability (journal.h): every change is staged in the journal as it
// happens; a submit is queued and may run at once, but nobody hears of it
// (`accepted`, events, its result) until commit() has made it durable
// (`pending_`; group commit: the server calls commit() once per poll-loop
// round). A commit that fails refuses its jobs and stops those running. A result stays until its
// client acknowledges it (`result_ack`, or a fetch's ack) or the result TTL
// passes; then the job stays as a tombstone for its key one more TTL.
//
// Data model (fits on a screen, as in majordomo):
//   jobs_     id -> Job {client, req, ops, image, state, group, attempts, ...}
//   pending_  submitted jobs not yet durable (answered once their commit syncs)
//   queue_    waiting job ids (priority lanes, fair between clients)
//   groups_   identity -> Group {name, ranks, slots, allow_paths, jobs, expiry}
#pragma once

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "imgq/broker/config.h"
#include "imgq/broker/job_queue.h"
#include "imgq/broker/job_record.h"
#include "imgq/broker/journal.h"
#include "imgq/broker/session_claims.h"
#include "imgq/common/status.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/monitoring/broker_metrics.h"
#include "imgq/schemas/messages.h"

namespace imgq::broker {

// Frames of one message after the ROUTER identity: header, then payload.
// Shared, not copied: an image goes from the client's socket to a group's,
// and a result back, in the buffer it arrived in, and a job keeps a
// reference for a retry.
using Frames = std::vector<SharedBytes>;

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

// What restore() found, for the broker's start-up log line.
struct RestoreSummary {
  size_t queued = 0;     // waiting jobs, back in their lines
  size_t requeued = 0;   // jobs that were running when the broker stopped
  size_t gave_up = 0;    // of those, jobs past --max-attempts (failed)
  size_t results = 0;    // finished jobs whose result can still be fetched
  size_t tombstones = 0; // finished jobs remembered for their keys only
};

// Everything that happens in the broker, reported here once: each event
// moves its Prometheus series (the broker's only count; counts() reads them
// back for the pong, the logs and tests) and, for the events operators act
// on, a log line. The core calls nothing else to count or log.
class BrokerEvents {
 public:
  // `metrics` null: metrics of its own, read back but not served.
  explicit BrokerEvents(monitoring::BrokerMetrics* metrics);
  monitoring::BrokerMetrics::Counts counts() const { return metrics_->counts(); }
  // Whether set_state() is read by anyone (it costs a walk of the queue).
  bool wants_state() const { return own_ == nullptr; }

  void submitted();
  void rejected(monitoring::Rejection why);
  void malformed(monitoring::Peer from);
  void committed(double seconds, bool ok);
  void dispatched(double wait_seconds);
  void retried();
  void stray_result();
  // A stored image or result read back damaged: counted, and logged at
  // error with what the journal said (`why`).
  void damaged(const std::string& job, bool result, const Status& why);
  // A group said hello (logged at info: operators see groups come and go).
  void group_joined(const std::string& group, int ranks, int slots, const std::string& address);
  // A group left or was given up on; `requeued` of its jobs went back.
  void group_left(const std::string& group, const std::string& why, size_t requeued);
  // A job's state as published (logged at debug).
  void job_changed(const proto::JobState& state);
  // A job ended in `state` (finished) with `code`; `group` and `stats` when
  // a group ran it.
  void finished(JobState state, StatusCode code, double run_seconds, const std::string& group,
                const proto::JobStats* stats);
  void undelivered_result();
  // A running job stopped by the broker (cancelled, or past its deadline).
  void stopped_running();
  void acknowledged();
  void expired_result();
  void set_state(const monitoring::BrokerMetrics::QueueState& state);
  // Failed writes, commits and fsyncs of the journal: each counted; logged
  // at error, the first of each kind (operation and reason) at once and then
  // at most one line per kind each kDiskLogEvery, saying how many more.
  void disk_errors(const std::vector<DiskError>& errors, Clock::time_point now);
  // The journal's disk as it is now (a gauge); back to healthy after
  // trouble: a line at warn, with how long and how many failures.
  void disk_state(DiskState state, Clock::time_point now);
  static constexpr Duration kDiskLogEvery{10'000};

 private:
  std::unique_ptr<monitoring::BrokerMetrics> own_;
  monitoring::BrokerMetrics* metrics_;
  // The rate limit of disk error lines, by operation and reason.
  struct DiskLog {
    Clock::time_point last{};
    size_t unlogged = 0;
  };
  std::array<std::array<DiskLog, 4>, 3> disk_log_{};
  DiskState disk_state_ = DiskState::kHealthy;
  Clock::time_point trouble_since_{};
  size_t trouble_errors_ = 0;
};

// A submit's fields checked on their own, before the broker's state is
// consulted (a pure function; the core then checks keys, groups' folders
// and room in the queue).
struct SubmitLimits {
  uint64_t max_image_bytes = 0;
  uint64_t max_pixels = 0;
};
struct CheckedSubmit {
  std::vector<std::string> ops;  // canonical specs
  std::string format;            // "png" when not given
  bool local = false;            // a local-files job (path and output)
  std::string route_path, route_output;  // lexically normal, for the groups' --allow-paths
};
// The checked submit, or why it is refused: InvalidArgument naming the
// field, InvalidImage, TooLarge (bytes or declared pixels).
Result<CheckedSubmit> check_submit(const proto::Submit& submit, std::string_view image, const SubmitLimits& limits);
// How a refusal of check_submit() is counted.
monitoring::Rejection rejection_of(const Status& refusal);

class BrokerCore {
 public:
  using Now = std::function<Clock::time_point()>;

  // `metrics` may be null (no metrics); `journal` null keeps everything in
  // memory. Both must outlive the core.
  BrokerCore(BrokerConfig config, Outbox& outbox, Now now = Clock::now,
             monitoring::BrokerMetrics* metrics = nullptr, Journal* journal = nullptr);

  // Wall time, Unix seconds (stored times: submitted, finished, gone_at;
  // event times). The system clock unless a test sets another.
  using WallNow = std::function<double()>;
  void set_wall_clock(WallNow wall_now) { wall_now_ = std::move(wall_now); }

  // The progress endpoint as bound, announced in every pong.
  void set_progress_endpoint(std::string endpoint) { progress_endpoint_ = std::move(endpoint); }

  // Takes back what a journal held at start-up (before any message).
  RestoreSummary restore(std::vector<JobRecord> stored);

  // `owner`: the client's CURVE public key (empty without CURVE); keys and
  // job ids are scoped to it.
  void on_client(const std::string& identity, Frames frames, const std::string& owner = {});
  // A subscription (`subscribe`) or unsubscription to `topic` on the progress
  // socket from CURVE key `user` (empty without CURVE): whether to apply it.
  // With CURVE a key may subscribe only to its own sessions and jobs (a
  // topic that starts with a session it holds or that is free, which it then
  // holds); an operator key (--allow-operators) to anything. Unsubscriptions
  // are always applied.
  bool on_subscription(bool subscribe, const std::string& topic, const std::string& user);
  // `address`: where the group connects from (ZeroMQ's Peer-Address), for logs.
  void on_worker(const std::string& identity, Frames frames, const std::string& address = {});
  // Heartbeats, expiry of silent groups, expiry of old results. Call at least
  // every time_to_next_tick().
  void tick();
  Duration time_to_next_tick() const;
  // Group commit: commits the journal's staged changes when the commit
  // policy says so (commit_policy.h), then release_synced().
  void commit();
  // Queues and answers the submits whose commit is now durable, or refuses
  // them if making it durable failed. Call when the journal's sync advances.
  void release_synced();
  // For a clean stop: refuses submits from now on, commits everything, and
  // tells every group the broker is going (they reconnect to the next one).
  void shutdown();

  // Not ok once the journal could not make a commit durable (a failed
  // fsync of its log): the server stops, and a restart recovers from disk.
  const Status& failure() const { return failure_; }

  // What happened so far, read back from the metrics.
  monitoring::BrokerMetrics::Counts counters() const { return events_.counts(); }
  // Random per start; clients compare it across pongs to notice a restart.
  const std::string& instance() const { return instance_; }
  size_t queued() const { return queue_.size(); }
  size_t queued_bytes() const { return queued_bytes_; }
  size_t running() const;  // jobs held by groups
  size_t groups() const { return groups_.size(); }
  size_t busy_groups() const;  // groups holding at least one job
  size_t idle_groups() const { return groups_.size() - busy_groups(); }
  size_t total_ranks() const;
  // Bytes of results waiting for their clients' acknowledgement.
  uint64_t kept_bytes() const { return kept_bytes_; }
  size_t jobs() const { return jobs_.size(); }
  // Jobs whose result is gone, remembered for their keys.
  size_t tombstones() const { return tombstones_.size(); }

 private:
  // A job: its record (what the journal stores, job_record.h) and what
  // only this process needs to run it and answer for it.
  struct Job : JobRecord {
    std::string client;  // identity of the connection its result goes to
    uint64_t req = 0;    // and the request it answers
    SharedBytes image;   // kept until the job is done, for requeues (empty after a restart: in the journal)
    // Both lexically normal, compared with the groups' folders when routing.
    std::string route_path, route_output;
    std::string group;   // identity of the group running it
    std::string group_name;
    Clock::time_point deadline;  // of the running attempt
    int done_stages = 0;
    int total_stages = 0;
    SharedBytes result;  // in memory until acknowledged (without a durable journal)
    Clock::time_point gone_since;  // when its result went (Gone), on this clock
    // Submits of this job's key waiting, like the job, for the commit.
    std::vector<std::pair<std::string, uint64_t>> pending_replies;
    bool pending = false;  // stored, its commit not yet durable: unknown to clients
    // The submit's accept_hold_ms: its `accepted` may wait this long for the
    // result, which then stands for it (held_accepts_).
    Duration accept_hold{0};
    bool accept_held = false;  // its `accepted` is being held back
    // A change of state not yet staged in the journal (record_due; when it
    // first happened: unrecorded_).
    bool unrecorded = false;
    Clock::time_point submitted_at, dispatched_at, finished_at;  // on this clock
    Duration timeout() const { return Duration{timeout_ms}; }
  };
  // A job whose result is gone (acknowledged or expired), kept one more
  // result TTL so that its key, `status` and `fetch` are answered: only what
  // that takes, about a sixth of a Job's memory. (At 7,000 tiny jobs a
  // second and the default TTL, 4.2 million of them are kept.) Its fields
  // are the record's, reduced to these.
  struct Tombstone {
    std::string owner, key, digest, name, message;
    JobState state = JobState::kDone;
    int code = 0;
    int attempts = 0;
    Gone gone = Gone::kAcknowledged;
    double submitted = 0, finished = 0, gone_at = 0;  // Unix seconds
    Clock::time_point gone_since;
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
    std::string address;  // where it connected from, for logs
  };

  void handle_submit(const std::string& identity, const std::string& owner, const proto::Submit& submit,
                     SharedBytes image);
  // Why a valid new submit cannot be taken now (no group may use its files,
  // the queue or the kept results are full); Ok when it can.
  Status refusal_of(const CheckedSubmit& checked, const proto::Submit& submit, size_t image_bytes,
                    monitoring::Rejection* why) const;
  // Why a client may not add a job now: it holds its share of the queue or
  // of the kept results (share_of()); Ok when it may.
  Status client_share_refusal(const std::string& client) const;
  // The job a valid new submit makes (not yet stored).
  Job job_of(const std::string& identity, const std::string& owner, const proto::Submit& submit,
             CheckedSubmit checked, const std::string& digest, size_t image_bytes);
  // A submit whose key names a known job: answered with that job.
  void resubmit(const std::string& identity, const proto::Submit& submit, const std::string& digest, Job& job);
  void handle_status(const std::string& identity, const std::string& owner, uint64_t req, const std::string& job);
  void handle_cancel(const std::string& identity, const std::string& owner, uint64_t req, const std::string& job);
  void handle_fetch(const std::string& identity, const std::string& owner, uint64_t req, const std::string& job);
  void handle_ack(Job& job);
  // Turns job `id`, whose result is gone and whose end is in the journal,
  // into a tombstone.
  void bury(const std::string& id);
  const Tombstone* find_tombstone(const std::string& id, const std::string& owner, bool as_operator = false) const;
  // A submit whose key names a tombstone: the job's result is gone.
  void refuse_used_key(const std::string& identity, const proto::Submit& submit, const std::string& digest,
                       const std::string& id, const std::string& job_digest, Gone gone, double gone_at);
  // The job `id` if `owner` may see it (`as_operator`: also when `owner` is
  // an operator key, for reads and cancels; results stay their owner's).
  Job* find_job(const std::string& id, const std::string& owner, bool as_operator = false);
  void send_accepted(const std::string& identity, uint64_t req, const Job& job, bool existing);
  // Sends the `accepted` held back past its hold (the job has not finished).
  void send_held_accepts(Clock::time_point now);
  // Restore's last step: the jobs that were running, queued again at the
  // front or failed past --max-attempts.
  void requeue_restored(const std::vector<std::string>& running, RestoreSummary* summary);
  // A held-back submit, now durable: queued and answered.
  void accept(const std::string& id);
  // A held-back submit the journal could not store: refused with the reason.
  void refuse_unstored(const std::string& id, const Status& why_not);
  // Ends a finished job's result: acknowledged or expired.
  void drop_result(Job& job, Gone why);
  // Moves a job to `to` (job_record.h's lifecycle; another move is a bug, and
  // ends the process naming it).
  void move(Job& job, JobState to);
  // Marks a dispatch or an end to be staged in the journal by record_due().
  void unrecorded(Job& job);
  // When the first submit still waiting for its commit came (the epoch
  // when none, or it is gone).
  Clock::time_point oldest_pending() const;
  // What the commit policy looks at, now.
  CommitState commit_state() const;
  // Stages the marked changes that the commit policy says are due (all: every one).
  void record_due(bool all);
  // Who a job counts against for --max-queued-per-client: its CURVE key,
  // else its connection (its fairness line).
  static std::string client_of(const JobRecord& job) {
    return job.owner.empty() ? "line:" + job.line : "key:" + job.owner;
  }
  // One more (+1) or one fewer (-1) unfinished job of the job's client.
  void count_open(const JobRecord& job, int delta);
  // The job's kept result counted (+1) or no more (-1): kept_bytes_ and its
  // client's share.
  void count_kept(const JobRecord& job, int sign);
  // A client's share of a bound `total`: an equal part with one part left
  // for a client yet to come, total / (active clients + 1), the asking one
  // counted; never less than `floor`. So a lone client may hold half, and a
  // newcomer always finds room until shares reach their floor.
  size_t share_of(uint64_t total, uint64_t floor, const std::string& client) const;
  // A change of job `id` staged (for restage_failed_round()).
  void staged(const std::string& id) {
    if (journal_.durable()) staged_.push_back(id);
  }
  // After a failed commit: every job it staged is staged again, as it is now.
  void restage_failed_round();
  static JobRecord tombstone_record(const std::string& id, const Tombstone& t);
  // The journal's disk errors and state, to the log and the metrics.
  void note_disk(Clock::time_point now);
  // While the disk is in trouble and nothing commits: a probe each retry_after.
  void probe_disk(Clock::time_point now);
  // At a quiet moment: a step of giving the journal's free space back.
  void maintain_journal(Clock::time_point now);
  void handle_ping(const std::string& identity, const std::string& owner, const proto::Ping& ping);
  // Refuses (PermissionDenied) a session another CURVE key holds; a free
  // one becomes `owner`'s.
  Status claim_session(const std::string& session, const std::string& owner, const char* request);
  void handle_hello(const std::string& identity, const proto::Hello& hello, const std::string& address);
  void handle_list(const std::string& identity, const std::string& owner, const proto::ListRequest& request);
  // Whether `owner` may read jobs of other owners (no CURVE, or an operator key).
  bool sees_every_owner(const std::string& owner) const;
  void handle_done(Group& group, const proto::Done& done, Frames& frames);

  void reply_error(const std::string& identity, uint64_t req, const Status& status,
                   const std::string& job = {});
  void send_worker(Group& group, Frames frames);
  // Sends the job's `result` (with its image when done, from memory or the
  // journal). False when the client is gone.
  bool send_result(const std::string& identity, uint64_t req, Job& job);
  void dispatch();
  // The group with a free slot that should run `job`: one that may use its
  // files if it has any, holding the fewest jobs, then idle the longest.
  Group* group_for(const Job& job);
  // Whether some connected group's folders hold both of a local-files job's
  // files (lexically normal).
  bool any_group_may_use(const std::string& path, const std::string& output) const;
  // `ran`: a group ran the job to this end (its stats count for the group).
  void finish(Job& job, JobState state, const Status& status, bool ran = false);
  void update_gauges();
  void requeue_or_fail(Job& job, const std::string& why);
  // Ends a running job now and tells its group to stop it.
  // Tells the job's group to stop it (when the group is still here).
  void send_abort(const Job& job, const std::string& reason);
  void abort_running(Job& job, JobState state, const Status& why);
  // The group's jobs the broker still waits for (not cancelled or expired).
  std::vector<Job*> unfinished_jobs_of(const Group& group);
  void forget_group(const std::string& identity, const std::string& why);
  void publish(const Job& job);
  proto::JobState state_of(const Job& job) const;
  // A new job id: `session` and 8 random hex digits, or 16 random ones
  // whose first 8 no other key holds; its session becomes `owner`'s.
  std::string new_job_id(const std::string& session, const std::string& owner = {});
  void expire_deadlines(Clock::time_point now);

  BrokerConfig config_;
  Outbox& outbox_;
  Now now_;
  WallNow wall_now_;
  BrokerEvents events_;
  std::mt19937_64 random_;
  std::unordered_map<std::string, Job> jobs_;
  std::unordered_map<std::string, std::string> keys_;  // owner + key -> job id
  std::unordered_map<std::string, Tombstone> tombstones_;
  std::deque<std::string> tombstone_order_;  // their ids, oldest gone first
  MemoryJournal memory_journal_;
  Journal& journal_;
  std::vector<std::string> pending_;  // job ids accepted, waiting for the commit
  std::vector<std::string> unstored_results_;  // results in memory until a commit stores them
  // Jobs with a dispatch or end not yet staged, with the time of the first
  // such change, oldest first.
  std::deque<std::pair<std::string, Clock::time_point>> unrecorded_;
  std::deque<std::pair<uint64_t, std::vector<std::string>>> awaiting_sync_;  // ticket -> submits
  // Jobs whose `accepted` is held back (accept_hold), by when it is due.
  std::multimap<Clock::time_point, std::string> held_accepts_;
  Clock::time_point last_commit_{};
  // Jobs with a change staged since the last commit: staged again if it fails.
  std::vector<std::string> staged_;
  Clock::time_point last_probe_{};  // of the disk, while in trouble
  Clock::time_point last_maintenance_{};
  // What each client (client_of()) holds: unfinished jobs and bytes of kept
  // results; a client holding neither is not here (nor "active").
  struct ClientUse {
    size_t open = 0;
    uint64_t kept = 0;
  };
  std::unordered_map<std::string, ClientUse> by_client_;
  Status failure_;
  bool stopping_ = false;
  JobQueue queue_;
  size_t queued_bytes_ = 0;
  uint64_t kept_bytes_ = 0;
  std::map<std::string, Group> groups_;
  Clock::time_point last_sweep_{};  // of finished jobs past their TTL
  SessionClaims sessions_;  // who holds each session (with CURVE)
  Clock::time_point last_claims_sweep_{};
  std::string instance_;
  std::string progress_endpoint_;
};

}  // namespace imgq::broker
