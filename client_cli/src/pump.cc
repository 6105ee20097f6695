#include "imgq/client_cli/pump.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <random>
#include <set>

#include "imgq/client_cli/held_accepts.h"
#include "imgq/common/batch_paths.h"
#include "imgq/common/file_io.h"
#include "imgq/schemas/op_call.h"

namespace imgq::client {

std::string local_path(const std::filesystem::path& file) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::weakly_canonical(file, ec);
  if (ec) real = std::filesystem::absolute(file).lexically_normal();
  return real.string();
}

Result<std::vector<std::string>> check_request(const std::vector<std::string>& ops, const std::string& format,
                                               int priority) {
  auto pipeline = schemas::parse_pipeline(ops);
  if (!pipeline.ok()) return pipeline.status();
  if (!format.empty() && !is_output_format(format)) {
    return Status::InvalidArgument("--format " + format + " is not one of " + output_formats_text());
  }
  if (priority < 0 || priority > 9) return Status::InvalidArgument("--priority must be from 0 to 9");
  return schemas::pipeline_to_specs(*pipeline);
}

std::string random_session() {
  std::random_device rd;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
  return buf;
}

std::filesystem::path staging_name(const std::filesystem::path& wanted) {
  std::filesystem::path name = wanted;
  name.replace_filename("." + wanted.stem().string() + ".imgq-part" + std::to_string(::getpid()) +
                        wanted.extension().string());
  return name;
}

Status ItemSource::place(Item& item, std::string_view bytes) {
  const std::filesystem::path dir = item.output.has_parent_path() ? item.output.parent_path() : ".";
  unsynced_.insert(dir);
  if (bytes.empty()) return Status::Ok();  // a local-files job: the group wrote it, synced
  return write_file(item.output, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

std::vector<Status> ItemSource::sync(const std::vector<Item*>& placed) {
  // One syncfs per file system: folders on the same device share it.
  std::set<dev_t> synced;
  Status result;
  for (const std::filesystem::path& dir : unsynced_) {
    struct stat st{};
    if (::stat(dir.c_str(), &st) == 0 && !synced.insert(st.st_dev).second) continue;
    if (Status s = sync_file_system(dir); !s.ok()) result = s;
  }
  unsynced_.clear();
  std::vector<Status> statuses(placed.size(), result);
  if (!result.ok()) return statuses;
  // A result written under a staging name goes to its own, never replacing
  // a different file (unless replace_results_).
  for (size_t i = 0; i < placed.size(); ++i) {
    Item& item = *placed[i];
    if (item.shown.empty()) continue;
    auto at = place_file(item.output, item.shown, replace_results_);
    if (at.ok()) {
      item.shown = *at;
    } else {
      statuses[i] = at.status();
    }
  }
  // The renames themselves.
  synced.clear();
  for (Item* item : placed) {
    struct stat st{};
    const std::filesystem::path dir = item->shown.has_parent_path() ? item->shown.parent_path() : ".";
    if (item->shown.empty() || (::stat(dir.c_str(), &st) == 0 && !synced.insert(st.st_dev).second)) continue;
    if (Status s = sync_file_system(dir); !s.ok()) {
      for (Status& st2 : statuses) {
        if (st2.ok()) st2 = s;
      }
    }
  }
  return statuses;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

// How long the broker may hold a submit's `accepted` for its result to
// stand for it (PROTOCOL.md, `accept_hold_ms`). It delays only when the
// pump hears of a job that runs longer; an interrupted run lists the jobs
// it has heard of.
constexpr Millis kAcceptHold{200};
// The least wait before a refused submit goes again, whatever the broker's
// hint (a hint of 0 from an older broker): at most 4 tries a second.
constexpr Millis kLeastBackOff{250};

class Pump {
 public:
  Pump(const PumpOptions& options, ItemSource& source, Reporter& reporter, std::ostream& out, std::ostream& err)
      : options_(options), source_(source), reporter_(reporter), out_(out), err_(err),
        session_(options.session.empty() ? random_session() : options.session),
        held_(2 * options.window + 16) {}

  int run(zmq::context_t& context);

 private:
  using Id = uint64_t;

  int signals() const { return options_.interrupted != nullptr ? *options_.interrupted : 0; }
  size_t in_flight() const { return held_.size() + running_.size(); }
  Tally tally() const {
    Tally t;
    t.done = done_;
    t.failed = failed_;
    t.in_flight = in_flight() + retry_.size();
    t.cancelled = cancelled_;
    t.kept = source_.kept();
    t.not_images = source_.not_images();
    t.result_folders = source_.result_folders();
    t.total = source_.total();
    t.waiting = source_.waiting();
    return t;
  }
  // A message to the person: on stderr, on a line of its own (the live line
  // is cleared first). `kind`: "error", "warning" or empty.
  void say(std::string_view kind, const std::string& text) {
    reporter_.clear_line();
    const std::string prefix = options_.command + ": " + (kind.empty() ? std::string() : std::string(kind) + ": ");
    std::string line = wrap_words(prefix + text, reporter_.columns() == 0 ? 0 : reporter_.columns() - 1);
    if (!kind.empty() && options_.color) line.replace(options_.command.size() + 2, kind.size() + 2, painted(kind, true));
    err_ << line << "\n" << std::flush;
  }
  double seconds() const { return std::chrono::duration<double>(SteadyClock::now() - start_).count(); }
  JobView view(Id id, const std::string& job) const {
    const Item& item = live_.at(id);
    return {job, item.source.string(), (item.shown.empty() ? item.output : item.shown).string()};
  }

  bool subscribed(BrokerClient& broker, zmq::socket_t& progress);
  void send_next(BrokerClient& broker);
  bool send(BrokerClient& broker, Id id);
  void retry_later(Id id, Millis delay, bool behind);
  void back_off(Id id, const proto::Error& error);
  // One `result_ack` for all of `jobs` (in messages of up to 1024).
  void acknowledge(BrokerClient& broker, const std::vector<std::string>& jobs);
  // The broker accepted the item as `job`: by `accepted`, or by the result
  // that stood for it (accept_hold).
  void on_accepted(Id id, const std::string& job, uint32_t position, zmq::socket_t& progress);
  // An event of this session's job not yet known here.
  void on_early_event(proto::JobState state, zmq::socket_t& progress);
  // Makes what was placed durable, settles it, and acknowledges it: when
  // `force`, or the oldest waits 50 ms, or 256 wait, or nothing else is in
  // flight (a group commit: one sync for many results).
  void flush(BrokerClient& broker, bool force);
  void remember_finished(const std::string& job);
  void list_unfinished();
  // Interrupted: cancels this run's unfinished jobs at the broker and waits
  // (a few seconds at most; a second signal: not at all) for the answers.
  int cancel_run(BrokerClient& broker, zmq::socket_t& progress);
  void send_cancel(BrokerClient& broker, const std::string& job);
  // Interrupted with --detach or --no-wait: the jobs go on; says how to follow them.
  int leave_running(BrokerClient& broker);
  void check_broker(BrokerClient& broker);
  // The broker refused every submit for --timeout, with none of this run's
  // jobs left at it: says why and what to do, exit 3.
  int give_up_refused(BrokerClient& broker);
  void on_pong(const proto::Pong& pong);
  // The item failed (`job` may be empty: never accepted); its source settles it.
  void fail(Id id, const std::string& state, const std::string& message, const std::string& job = {},
            ItemSource::Fate fate = ItemSource::Fate::kFailed);
  // A message from the broker, its frames as they arrived (not copied).
  void handle(BrokerClient& broker, zmq::socket_t& progress, const std::vector<SharedBytes>& frames);
  void on_result(BrokerClient& broker, zmq::socket_t& progress, const proto::JobResult& r,
                 const std::vector<SharedBytes>& frames);

  const PumpOptions& options_;
  ItemSource& source_;
  Reporter& reporter_;
  std::ostream& out_;
  std::ostream& err_;
  // First half of the ids of new jobs, so one subscription made before the
  // first submit sees all their events.
  std::string session_;
  std::string progress_endpoint_;

  Id next_id_ = 1;
  std::map<Id, Item> live_;                                     // every item taken and not finished
  std::deque<std::pair<SteadyClock::time_point, Id>> retry_;  // waiting to be sent (again)
  HeldAccepts held_;                                          // submits waiting for `accepted`, early events
  std::map<std::string, Id> running_;                         // job -> item
  // The latest jobs whose result was handled: a copy of one (after a broker
  // restart) is acknowledged again. Bounded, for a pump that runs for days.
  std::set<std::string> finished_;
  std::deque<std::string> finished_order_;
  struct Placed {
    Id id;
    std::string job;
    proto::JobStats stats;
  };
  std::vector<Placed> placed_;               // results placed, not yet synced
  std::vector<std::string> unacknowledged_;  // jobs ended and settled, not yet committed and acknowledged
  CommitTimer commit_timer_;                 // when placed_ and unacknowledged_ are committed
  size_t done_ = 0, failed_ = 0, cancelled_ = 0;
  // Interrupted: cancels sent (req -> job) and not yet answered.
  bool cancelling_ = false;
  std::map<uint64_t, std::string> cancels_;
  std::vector<std::string> pending_cancel_;  // accepted while cancelling: to cancel next
  uint64_t cancel_req_ = uint64_t{1} << 60;
  // Refusals in a row (queue full, the broker's disk full or read-only, the
  // broker stopping): while they last, one submit at a time goes out, at
  // most one per back-off; since when they last, without news of any job.
  int refusals_ = 0;
  SteadyClock::time_point refused_since_{}, next_try_{};
  std::set<int> told_refusals_;  // codes already explained on stderr
  std::string last_refusal_;
  std::string instance_;
  uint64_t max_image_bytes_ = 0;
  SteadyClock::time_point start_ = SteadyClock::now();
  SteadyClock::time_point last_ping_{}, last_pong_{};
  bool warned_silent_ = false;
  uint64_t ping_req_ = uint64_t{1} << 62;  // above every submit's req
  uint64_t submit_req_ = 0;
};

void Pump::check_broker(BrokerClient& broker) {
  const auto now = SteadyClock::now();
  if (now - last_ping_ < std::chrono::seconds(1)) return;
  last_ping_ = now;
  proto::Ping ping;
  ping.req = ++ping_req_;
  broker.send(proto::encode(ping));
  if (!warned_silent_ && now - last_pong_ > std::chrono::seconds(5)) {
    warned_silent_ = true;
    say("warning", "no answer from the broker for 5 s; waiting for it (jobs in flight are resubmitted if it "
                   "restarted; gives up after --timeout " + std::to_string(options_.timeout.count() / 1000) + " s)");
  }
}

void Pump::on_pong(const proto::Pong& pong) {
  last_pong_ = SteadyClock::now();
  max_image_bytes_ = pong.max_image_bytes;
  if (warned_silent_) say("", "the broker answers again");
  warned_silent_ = false;
  if (pong.instance.empty() || pong.instance == instance_) return;
  const bool restarted = !instance_.empty();
  instance_ = pong.instance;
  if (!restarted) return;
  std::vector<Id> lost = held_.take_all();
  for (const auto& [job, id] : running_) lost.push_back(id);
  running_.clear();
  std::sort(lost.begin(), lost.end());
  if (!lost.empty()) {
    say("warning", "the broker restarted; asking again for the " + std::to_string(lost.size()) +
                       " unfinished job(s) under their keys (a durable broker still has them; one without a "
                       "journal runs them anew)");
  }
  for (auto it = lost.rbegin(); it != lost.rend(); ++it) retry_.emplace_front(SteadyClock::now(), *it);
}

void Pump::fail(Id id, const std::string& state, const std::string& message, const std::string& job,
                ItemSource::Fate fate) {
  ++failed_;
  reporter_.failed(view(id, job), state, message);
  source_.settle(live_.at(id), fate, message);
  live_.erase(id);
}

void Pump::retry_later(Id id, Millis delay, bool behind) {
  if (behind) {
    retry_.emplace_back(SteadyClock::now() + delay, id);
  } else {
    retry_.emplace_front(SteadyClock::now() + delay, id);
  }
}

void Pump::back_off(Id id, const proto::Error& error) {
  const auto now = SteadyClock::now();
  const int64_t hint = std::max<int64_t>(error.retry_after_ms, kLeastBackOff.count());
  const Millis delay(std::min<int64_t>(hint << std::min(refusals_, 7), 10'000));
  if (refusals_++ == 0) refused_since_ = now;
  next_try_ = now + delay;
  last_refusal_ = error.message;
  if (told_refusals_.insert(error.code).second) {
    const std::string until =
        options_.wait_for_broker
            ? std::string(" until it takes them")
            : "; gives up after --timeout " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count()) +
                  " s without news of any job";
    say("", "the broker refuses new jobs for now (" + error.message + "); retrying with back-off from " +
                std::to_string(hint) + " ms up to 10 s" + until);
  }
  retry_later(id, Millis(0), /*behind=*/true);  // behind those already waiting: the order is kept
}

void Pump::acknowledge(BrokerClient& broker, const std::vector<std::string>& jobs) {
  for (size_t i = 0; i < jobs.size(); i += 1024) {
    proto::ResultAck ack;
    ack.job = jobs[i];
    ack.jobs.assign(jobs.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                    jobs.begin() + static_cast<std::ptrdiff_t>(std::min(jobs.size(), i + 1024)));
    broker.send(proto::encode(ack));
  }
}

void Pump::remember_finished(const std::string& job) {
  if (!finished_.insert(job).second) return;
  finished_order_.push_back(job);
  if (finished_order_.size() > 10'000) {
    finished_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

void Pump::list_unfinished() {
  if (options_.mode != ReportMode::kJson && !running_.empty()) reporter_.clear_line();
  for (const auto& [job, id] : running_) {
    if (options_.mode == ReportMode::kJson) {
      out_ << "{\"event\":\"unfinished\",\"job\":" << json_quote(job)
           << ",\"file\":" << json_quote(live_.at(id).source.string()) << "}\n";
    } else {
      out_ << "submitted " << live_.at(id).source.string() << " as job " << job << "\n";
    }
  }
  out_.flush();
}

// Sends the item; false when the socket cannot take it now.
bool Pump::send(BrokerClient& broker, Id id) {
  const Item& item = live_.at(id);
  const std::string format = options_.format.empty() ? extension_of(item.output) : options_.format;
  proto::Submit submit;
  submit.req = ++submit_req_;
  submit.ops = options_.ops;
  submit.priority = options_.priority;
  submit.format = format;
  submit.name = item.source.string();
  submit.key = item.key;
  submit.session = session_;
  submit.timeout_ms = options_.job_timeout_ms;
  // The result may stand for `accepted` when it comes within the hold (one
  // message instead of two for a small job); --no-wait waits for the
  // `accepted` alone.
  submit.accept_hold_ms = options_.no_wait ? 0 : static_cast<uint32_t>(kAcceptHold.count());
  if (options_.local) {
    // Free of links, as the groups name their --allow-paths folders.
    submit.path = local_path(item.source);
    submit.output = local_path(item.output);
    if (!broker.send(proto::encode(submit))) return false;
    held_.sent(submit.req, id, submit.name);
    return true;
  }
  auto image = read_file_string(item.source);
  if (!image.ok()) {
    fail(id, proto::kFailed, item.source.string() + ": " + image.status().message());
    return true;
  }
  if (!broker.send(proto::encode(submit), std::move(*image))) return false;
  held_.sent(submit.req, id, submit.name);
  return true;
}

void Pump::send_next(BrokerClient& broker) {
  const auto now = SteadyClock::now();
  while (in_flight() < options_.window) {
    // Refused: one submit at a time, once the back-off has passed.
    if (refusals_ > 0 && (!held_.empty() || now < next_try_)) return;
    Id id;
    if (!retry_.empty() && retry_.front().first <= now) {
      id = retry_.front().second;
      retry_.pop_front();
    } else if (signals() == 0 && in_flight() + retry_.size() < options_.window) {
      std::optional<Item> item = source_.next();
      if (!item) return;
      id = next_id_++;
      live_.emplace(id, std::move(*item));
    } else {
      return;
    }
    const Item& item = live_.at(id);
    if (!item.problem.ok()) {
      fail(id, proto::kFailed, item.problem.message());
      continue;
    }
    const std::string format = options_.format.empty() ? extension_of(item.output) : options_.format;
    if (!is_output_format(format)) {
      fail(id, proto::kFailed,
           "cannot write format \"" + format + "\"; give --format, one of " + output_formats_text());
      continue;
    }
    if (!options_.local) {
      // Larger than the broker takes: say so here rather than send it (past
      // the broker's message size limit ZeroMQ would drop it without a word).
      std::error_code size_error;
      const uintmax_t size = std::filesystem::file_size(item.source, size_error);
      if (!size_error && max_image_bytes_ != 0 && size > max_image_bytes_) {
        fail(id, proto::kFailed, item.source.string() + " is " + std::to_string(size) +
                                     " bytes; the broker takes at most " + std::to_string(max_image_bytes_) +
                                     " (its --max-image-bytes)");
        continue;
      }
    }
    if (!send(broker, id)) return retry_later(id, Millis(100), /*behind=*/false);
  }
}

void Pump::on_result(BrokerClient& broker, zmq::socket_t& progress, const proto::JobResult& r,
                     const std::vector<SharedBytes>& frames) {
  if (refusals_ > 0) refused_since_ = SteadyClock::now();  // news of a job: the broker is not stuck
  if (finished_.count(r.job) != 0) {
    // Again, after a broker restart: acknowledged again (once committed).
    if (std::find(unacknowledged_.begin(), unacknowledged_.end(), r.job) == unacknowledged_.end()) {
      acknowledge(broker, {r.job});
    }
    return;
  }
  // A result that stands for its held-back `accepted` (accept_hold).
  if (running_.count(r.job) == 0) {
    if (const std::optional<Id> id = held_.take(r.req)) on_accepted(*id, r.job, 0, progress);
  }
  auto it = running_.find(r.job);
  if (it == running_.end() || options_.no_wait) return;  // a --no-wait job's result waits for `imgq fetch`
  const Id id = it->second;
  running_.erase(it);
  remember_finished(r.job);
  if (r.state == proto::kCancelled && cancelling_) {
    // Cancelled by this run's Ctrl-C: counted, not reported as a failure.
    ++cancelled_;
    source_.settle(live_.at(id), ItemSource::Fate::kFailed, r.message);
    live_.erase(id);
    unacknowledged_.push_back(r.job);
    commit_timer_.added(SteadyClock::now());
  } else if (r.state != proto::kDone) {
    fail(id, r.state, r.message, r.job);
    unacknowledged_.push_back(r.job);
    commit_timer_.added(SteadyClock::now());
  } else if (!options_.local && frames.size() != 2) {
    // Not acknowledged: the broker keeps it for `imgq fetch`.
    finished_.erase(r.job);
    return fail(id, proto::kFailed, "the broker sent no result image (imgq fetch " + r.job + ")", r.job,
                ItemSource::Fate::kNotPlaced);
  } else {
    Item& item = live_.at(id);
    const std::string_view bytes = frames.size() == 2 ? std::string_view(frames[1].data(), frames[1].size())
                                                      : std::string_view();
    if (Status intact = check_result_bytes(r, bytes); !intact.ok()) {
      finished_.erase(r.job);
      return fail(id, proto::kFailed, intact.message(), r.job, ItemSource::Fate::kNotPlaced);
    }
    if (Status placed = source_.place(item, bytes); !placed.ok()) {
      finished_.erase(r.job);
      return fail(id, proto::kFailed,
                  placed.message() + " (the result stays at the broker: imgq fetch " + r.job + ")", r.job,
                  ItemSource::Fate::kNotPlaced);
    }
    placed_.push_back({id, r.job, r.stats});
    commit_timer_.added(SteadyClock::now());
  }
  flush(broker, /*force=*/false);
}

void Pump::flush(BrokerClient& broker, bool force) {
  if (!commit_timer_.due(SteadyClock::now(), in_flight(), force)) return;
  commit_timer_.committed();
  // 1. The results placed since the last flush become durable and final.
  std::vector<Item*> items;
  for (const Placed& p : placed_) items.push_back(&live_.at(p.id));
  const std::vector<Status> synced = source_.sync(items);
  for (size_t i = 0; i < placed_.size(); ++i) {
    const Placed& p = placed_[i];
    const Status& status = i < synced.size() ? synced[i] : Status::Ok();
    if (!status.ok()) {
      finished_.erase(p.job);
      fail(p.id, proto::kFailed, status.message() + " (the result stays at the broker: imgq fetch " + p.job + ")",
           p.job, ItemSource::Fate::kNotPlaced);
      continue;
    }
    ++done_;
    reporter_.succeeded(view(p.id, p.job), p.stats);
    // 2. What becomes of each input (ingest: the original moves).
    source_.settle(live_.at(p.id), ItemSource::Fate::kDone, {});
    live_.erase(p.id);
    unacknowledged_.push_back(p.job);
  }
  placed_.clear();
  // 3. That is durable too; only then may the broker forget the results.
  if (Status committed = source_.commit(); !committed.ok()) {
    say("error", committed.message() + "; " + std::to_string(unacknowledged_.size()) +
                     " result(s) stay at the broker until fetched");
    unacknowledged_.clear();
    return;
  }
  acknowledge(broker, unacknowledged_);
  unacknowledged_.clear();
}

void Pump::on_accepted(Id id, const std::string& job, uint32_t position, zmq::socket_t& progress) {
  refusals_ = 0;
  // A job of an earlier run (its key named it): follow its events too.
  if (job.rfind(session_, 0) != 0) progress.set(zmq::sockopt::subscribe, job);
  reporter_.accepted(view(id, job), position);
  if (const std::optional<proto::JobState> early = held_.take_event(job)) {
    if (!options_.no_wait) reporter_.event(view(id, job), *early);
  }
  if (!options_.no_wait) {
    running_[job] = id;
    if (cancelling_) pending_cancel_.push_back(job);
    return;
  }
  // Accepted is all --no-wait waits for: the job leaves the window.
  if (options_.mode != ReportMode::kJson) {
    reporter_.clear_line();  // the live line, on the same terminal
    out_ << "submitted " << live_.at(id).source.string() << " as job " << job << "\n" << std::flush;
  }
  ++done_;
  live_.erase(id);
}

void Pump::on_early_event(proto::JobState state, zmq::socket_t& progress) {
  const std::string job = state.job;
  if (const std::optional<Id> id = held_.on_event(std::move(state))) on_accepted(*id, job, 0, progress);
}

void Pump::handle(BrokerClient& broker, zmq::socket_t& progress, const std::vector<SharedBytes>& frames) {
  auto header = proto::decode_header(frames.at(0));
  if (!header.ok()) return;
  const std::string& type = header->type();
  if (type == proto::Pong::kType) {
    if (auto pong = header->as<proto::Pong>(); pong.ok()) on_pong(*pong);
  } else if (type == proto::Accepted::kType) {
    auto a = header->as<proto::Accepted>();
    const std::optional<Id> id = a.ok() ? held_.take(a->req) : std::nullopt;
    if (!id) return;
    on_accepted(*id, a->job, a->position, progress);
  } else if (type == proto::StatusReply::kType) {
    if (auto reply = header->as<proto::StatusReply>(); reply.ok()) cancels_.erase(reply->req);
  } else if (type == proto::Error::kType) {
    auto e = header->as<proto::Error>();
    if (e.ok() && cancels_.erase(e->req) != 0) return;  // a cancel for a job that ended meanwhile
    const std::optional<Id> waiting = e.ok() ? held_.take(e->req) : std::nullopt;
    if (!waiting) return;
    const Id id = *waiting;
    if (e->retryable) {
      back_off(id, *e);
    } else if (e->code == static_cast<int>(StatusCode::kNotFound) ||
               e->code == static_cast<int>(StatusCode::kConflict)) {
      // The key was used before (for work that ended, or for other work).
      if (std::optional<std::string> key = source_.rekey(live_.at(id))) {
        live_.at(id).key = *key;
        retry_later(id, Millis(0), /*behind=*/false);
      } else {
        fail(id, proto::kFailed, e->message);
      }
    } else {
      fail(id, proto::kFailed, e->message);
    }
  } else if (type == proto::JobResult::kType) {
    if (auto r = header->as<proto::JobResult>(); r.ok()) on_result(broker, progress, *r, frames);
  }
}

// Pings with the session until the pong also arrives on the progress
// socket: from then on no event of this run can be missed. Doubles as the
// check that the broker can be reached.
bool Pump::subscribed(BrokerClient& broker, zmq::socket_t& progress) {
  auto deadline = SteadyClock::now() + options_.first_contact;
  bool answered = false;
  Frames frames;
  auto problem = [&] {
    return answered ? "the broker answers at " + options_.broker + " but nothing arrives from its progress " +
                          "endpoint " + progress_endpoint_ +
                          "; give the broker's progress address with --progress HOST:PORT (imgq-broker logs it "
                          "at start: \"progress tcp://...\")"
                    : broker.silent_for(options_.first_contact).message();
  };
  // The subscription takes a moment to reach the broker, and a pong
  // published before that is lost: ping again soon (5 ms doubling to 200 ms).
  auto interval = Millis(5);
  int sessions_tried = 1;
  for (uint64_t req = 1;; ++req, interval = std::min(interval * 2, Millis(200))) {
    if (SteadyClock::now() >= deadline) {
      if (!options_.wait_for_broker || answered) break;
      say("warning", problem() + " Waiting for it (interrupt to stop).");
      deadline = SteadyClock::now() + options_.timeout;
    }
    if (signals() != 0) {
      say("", "interrupted before anything was submitted");
      return false;
    }
    proto::Ping ping;
    ping.req = req;
    ping.session = session_;
    broker.send(proto::encode(ping));
    const auto until = std::min(deadline, SteadyClock::now() + interval);
    while (SteadyClock::now() < until) {
      if (auto refused = broker.refused()) {
        say("error", refused->message());
        return false;
      }
      zmq::pollitem_t items[] = {{broker.socket().handle(), 0, ZMQ_POLLIN, 0}, {progress.handle(), 0, ZMQ_POLLIN, 0}};
      poll_sockets(items, 2, std::min(interval, Millis(20)));
      while (recv_frames(broker.socket(), frames, 2, /*dontwait=*/true)) {
        auto pong = decode_reply<proto::Pong>(frames);
        if (pong.status().code() == StatusCode::kPermissionDenied && ++sessions_tried < 4) {
          // With CURVE, another client holds this session (1 in 4 billion):
          // another one, before anything was submitted under it.
          progress.set(zmq::sockopt::unsubscribe, session_);
          session_ = random_session();
          progress.set(zmq::sockopt::subscribe, session_);
          continue;
        }
        if (pong.ok() && !answered && pong->groups == 0) {
          say("warning", "no worker group is connected to the broker yet; jobs will wait for one "
                         "(start one: mpiexec -n N imgq-worker --broker HOST:5556)");
        }
        if (pong.ok()) {
          if (!answered) deadline = SteadyClock::now() + options_.first_contact;  // now for the progress socket
          answered = true;
          instance_ = pong->instance;
          max_image_bytes_ = pong->max_image_bytes;
          last_pong_ = SteadyClock::now();
        }
      }
      if (recv_frames(progress, frames, 2, /*dontwait=*/true) && frames.front() == session_) {
        // Our pong, published: the broker answers, whichever copy came first.
        last_pong_ = SteadyClock::now();
        return true;
      }
    }
  }
  say("error", problem());
  return false;
}

void Pump::send_cancel(BrokerClient& broker, const std::string& job) {
  proto::Cancel cancel;
  cancel.req = ++cancel_req_;
  cancel.job = job;
  if (broker.send(proto::encode(cancel))) cancels_[cancel.req] = job;
}

int Pump::cancel_run(BrokerClient& broker, zmq::socket_t& progress) {
  cancelling_ = true;
  retry_.clear();  // never sent
  for (const auto& [job, id] : running_) send_cancel(broker, job);
  say("", "interrupted: cancelling this run's " + std::to_string(running_.size() + held_.size()) +
              " unfinished job(s) at the broker (interrupt again to leave at once; --detach leaves them running)");
  // Submits still unanswered are cancelled as their answers come.
  const auto deadline = SteadyClock::now() + kFirstContact;
  std::vector<SharedBytes> replies;
  while (SteadyClock::now() < deadline && signals() < 2 &&
         (!cancels_.empty() || !held_.empty() || !pending_cancel_.empty())) {
    for (const std::string& job : pending_cancel_) send_cancel(broker, job);
    pending_cancel_.clear();
    zmq::pollitem_t items[] = {{broker.socket().handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 1, Millis(50));
    while (recv_shared(broker.socket(), replies, 2, /*dontwait=*/true)) handle(broker, progress, replies);
  }
  // Results of cancelled jobs come after the cancels' answers: take those in
  // flight for a moment, so they are acknowledged and counted.
  const auto settle = SteadyClock::now() + Millis(500);
  while (SteadyClock::now() < settle && signals() < 2 && !running_.empty()) {
    zmq::pollitem_t items[] = {{broker.socket().handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 1, Millis(50));
    while (recv_shared(broker.socket(), replies, 2, /*dontwait=*/true)) handle(broker, progress, replies);
  }
  flush(broker, /*force=*/true);
  reporter_.finish(tally(), seconds());
  if (signals() >= 2 || !cancels_.empty() || !held_.empty()) {
    say("warning", "left without waiting for every cancel: " + std::to_string(cancels_.size() + held_.size()) +
                       " job(s) may still run at the broker (imgq jobs lists them; imgq cancel JOB...)");
    list_unfinished();
  } else {
    say("", "interrupted: " + std::to_string(cancelled_) + " job(s) cancelled, " + std::to_string(done_) +
                " done (their results are written); the same command with --skip-existing does the rest");
  }
  return 130;
}

int Pump::leave_running(BrokerClient& broker) {
  flush(broker, /*force=*/true);
  reporter_.finish(tally(), seconds());
  std::string text = "interrupted; " + std::to_string(running_.size()) +
                     " job(s) accepted and not finished go on at the broker";
  // Submits whose `accepted` the broker still held back (accept_hold_ms):
  // they may run, but this run never heard their ids.
  if (!held_.empty()) text += "; " + std::to_string(held_.size()) + " more sent and not yet answered";
  say("", text + (running_.empty() ? "" : " (follow them: imgq status JOB..., imgq fetch JOB... -o DIR, imgq jobs)"));
  list_unfinished();
  return 130;
}

int Pump::give_up_refused(BrokerClient& broker) {
  flush(broker, /*force=*/true);
  const size_t unsent = live_.size();
  retry_.clear();  // never sent again: not in flight
  reporter_.finish(tally(), seconds());
  say("error", "the broker refused every submit for " +
                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count()) +
                   " s (--timeout): " + last_refusal_ + "; " + std::to_string(unsent) +
                   " file(s) not submitted (imgq ping shows the broker's state; run the same command again, "
                   "with --skip-existing, once it takes jobs)");
  return 3;
}

int Pump::run(zmq::context_t& context) {
  BrokerClient broker(context, options_.broker, options_.curve);
  reporter_.status(options_.command + ": connecting to the broker at " + options_.broker + " ...");
  // Without --progress, the endpoint the broker announces in its pong;
  // asked for in short calls, so a signal ends the wait at once.
  auto deadline = SteadyClock::now() + options_.first_contact;
  Result<std::string> endpoint = resolve_progress(broker, options_.progress, Millis(200));
  while (!endpoint.ok()) {
    if (signals() != 0) {
      say("", "interrupted before anything was submitted");
      return options_.drain_on_interrupt ? 0 : 130;
    }
    if (endpoint.status().code() == StatusCode::kPermissionDenied) {
      say("error", endpoint.status().message());
      return 3;
    }
    if (SteadyClock::now() >= deadline) {
      const Status silent = broker.silent_for(options_.first_contact);
      if (!options_.wait_for_broker) {
        say("error", silent.message());
        return 3;
      }
      say("warning", silent.message() + " Waiting for it (interrupt to stop).");
      deadline = SteadyClock::now() + options_.timeout;
    }
    endpoint = resolve_progress(broker, options_.progress, Millis(200));
  }
  progress_endpoint_ = *endpoint;
  zmq::socket_t progress = connect_progress(context, progress_endpoint_, options_.curve);
  progress.set(zmq::sockopt::subscribe, session_);
  if (!subscribed(broker, progress)) return signals() != 0 ? 130 : 3;

  start_ = SteadyClock::now();
  Frames frames;                      // from the progress socket
  std::vector<SharedBytes> replies;  // from the broker
  // Acknowledgements still queued go out when the client closes.
  broker.linger_on_close(Millis(500));
  bool told_draining = false;
  while (true) {
    const int stop = signals();
    flush(broker, /*force=*/false);
    if (stop != 0 && !options_.drain_on_interrupt) {
      if (options_.detach || options_.no_wait) return leave_running(broker);
      return cancel_run(broker, progress);
    }
    if (stop != 0 && (stop > 1 || in_flight() == 0)) {
      flush(broker, /*force=*/true);
      reporter_.finish(tally(), seconds());
      return 0;
    }
    if (stop != 0 && !told_draining) {
      told_draining = true;
      retry_.clear();  // not sent: they stay with the source
      say("", "stopping: waiting for the " + std::to_string(in_flight()) +
                  " job(s) in flight (interrupt again to leave them; they are taken again next start)");
    }
    const bool silent = SteadyClock::now() - last_pong_ > options_.timeout;
    if (silent && (!options_.wait_for_broker || stop != 0)) {
      flush(broker, /*force=*/true);
      reporter_.finish(tally(), seconds());
      say("error", "no answer from the broker at " + options_.broker + " for " +
                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count()) +
                       " s (--timeout); " + std::to_string(running_.size()) +
                       " job(s) accepted and not finished (imgq status JOB, imgq fetch JOB later)");
      list_unfinished();
      return stop != 0 ? 0 : 3;
    }
    if (refusals_ > 0 && running_.empty() && !options_.wait_for_broker &&
        SteadyClock::now() - refused_since_ > options_.timeout) {
      return give_up_refused(broker);
    }
    send_next(broker);
    check_broker(broker);
    if (auto refused = broker.refused()) say("error", refused->message());
    if (source_.exhausted() && retry_.empty() && in_flight() == 0) break;
    const int source_fd = source_.fd();
    zmq::pollitem_t items[] = {{broker.socket().handle(), 0, ZMQ_POLLIN, 0},
                               {progress.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, source_fd, ZMQ_POLLIN, 0}};
    // The source is polled only while the window has room for its items.
    const bool want_source = source_fd >= 0 && in_flight() + retry_.size() < options_.window;
    poll_sockets(items, want_source ? 3 : 2, Millis(100));
    // Events first: a job's events were published before its result was
    // sent, and once the result is handled its events are no longer shown
    // (a client slow to be scheduled finds both waiting; it showed only the
    // result, and a requeue went unseen).
    if (items[1].revents & ZMQ_POLLIN) {
      while (recv_frames(progress, frames, 2, /*dontwait=*/true)) {
        if (frames.size() != 2) continue;
        auto event = proto::decode_header(frames[1]);
        if (!event.ok()) continue;
        auto e = event->as<proto::Event>();
        if (!e.ok()) continue;
        auto it = running_.find(e->job.job);
        if (it != running_.end()) {
          reporter_.event(view(it->second, e->job.job), e->job);
        } else if (!held_.empty() && e->job.job.rfind(session_, 0) == 0) {
          on_early_event(std::move(e->job), progress);
        }
      }
    }
    if (items[0].revents & ZMQ_POLLIN) {
      while (recv_shared(broker.socket(), replies, 2, /*dontwait=*/true)) handle(broker, progress, replies);
    }
    if (want_source && (items[2].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) source_.on_readable();
    source_.tick();
    reporter_.tick(tally());
  }
  flush(broker, /*force=*/true);
  reporter_.finish(tally(), seconds());
  return failed_ == 0 ? 0 : 1;
}

}  // namespace

int run_pump(const PumpOptions& options, ItemSource& source, Reporter& reporter, std::ostream& out,
             std::ostream& err) {
  zmq::context_t context;
  Pump pump(options, source, reporter, out, err);
  return pump.run(context);
}

}  // namespace imgq::client
