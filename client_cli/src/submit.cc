#include "imgq/client_cli/submit.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "imgq/common/batch_paths.h"
#include "imgq/common/file_io.h"
#include "imgq/schemas/op_call.h"

namespace imgq::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string random_hex() {
  std::random_device rd;
  const uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// `file` absolute, with the links of its existing part resolved (its lexical
// form when that fails).
std::string local_path(const std::filesystem::path& file) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::weakly_canonical(file, ec);
  if (ec) real = std::filesystem::absolute(file).lexically_normal();
  return real.string();
}

class Batch {
 public:
  Batch(const SubmitOptions& options, std::vector<BatchItem> items, Reporter& reporter, std::ostream& out,
        std::ostream& err)
      : options_(options), items_(std::move(items)), reporter_(reporter), out_(out), err_(err),
        session_(random_hex().substr(0, 8)) {}

  // Exit status as run_submit's.
  int run(zmq::context_t& context);

 private:
  struct InFlight {
    size_t item;
    std::string job;
  };

  void send_next(BrokerClient& broker);
  // Not sent (no connection to queue it on yet): again in 100 ms.
  void retry_later(size_t index);
  // Refused for a full queue: again after a back-off that doubles while
  // refusals go on (the broker's hint, up to 10 s), said once on stderr.
  void back_off(size_t index, const proto::Error& error);
  // Tells the broker this client has the job's result: it may forget it.
  void acknowledge(BrokerClient& broker, const std::string& job);
  // The jobs accepted and not finished, for `imgq status`/`fetch` later.
  void list_unfinished();
  // Pings once a second; a pong from a new broker instance means the jobs in
  // flight were lost with the old one, so they go out again (same keys).
  void check_broker(BrokerClient& broker);
  void on_pong(const proto::Pong& pong);
  void fail(size_t index, const std::string& state, const std::string& message, const std::string& job = {});
  void handle(BrokerClient& broker, const Frames& frames);
  JobView view(size_t index, const std::string& job) const {
    return {job, items_[index].source.string(), items_[index].output.string()};
  }

  const SubmitOptions& options_;
  std::vector<BatchItem> items_;
  Reporter& reporter_;
  std::ostream& out_;
  std::ostream& err_;
  bool subscribed(BrokerClient& broker, zmq::socket_t& progress);

  // First half of every job id of this batch, so one subscription made
  // before the first submit sees all their events; with the item's index,
  // the idempotency key.
  std::string session_;
  size_t next_ = 0;
  std::deque<std::pair<SteadyClock::time_point, size_t>> retry_;  // refused for a full queue
  std::map<uint64_t, size_t> waiting_accept_;                    // req -> item
  std::map<std::string, size_t> running_;                        // job -> item
  std::set<std::string> finished_;  // jobs whose result was handled: a repeat is acknowledged again
  size_t done_ = 0, failed_ = 0;
  int refusals_ = 0;              // queue-full refusals in a row
  bool told_queue_full_ = false;
  std::string instance_;  // the broker's, from its pongs
  uint64_t max_image_bytes_ = 0;  // the broker's limit; 0 = unknown
  SteadyClock::time_point last_ping_{}, last_pong_{};
  bool warned_silent_ = false;
  uint64_t ping_req_ = uint64_t{1} << 62;  // above every submit's req
};

void Batch::check_broker(BrokerClient& broker) {
  const auto now = SteadyClock::now();
  if (now - last_ping_ < std::chrono::seconds(1)) return;
  last_ping_ = now;
  proto::Ping ping;
  ping.req = ++ping_req_;
  broker.send(proto::encode(ping));
  if (!warned_silent_ && now - last_pong_ > std::chrono::seconds(5)) {
    warned_silent_ = true;
    err_ << "imgq: warning: no answer from the broker for 5 s; waiting for it (jobs in flight are "
            "resubmitted if it restarted)\n";
  }
}

void Batch::on_pong(const proto::Pong& pong) {
  last_pong_ = SteadyClock::now();
  max_image_bytes_ = pong.max_image_bytes;
  warned_silent_ = false;
  if (pong.instance.empty() || pong.instance == instance_) return;
  const bool restarted = !instance_.empty();
  instance_ = pong.instance;
  if (!restarted) return;
  std::vector<size_t> lost;
  for (const auto& [req, index] : waiting_accept_) lost.push_back(index);
  for (const auto& [job, index] : running_) lost.push_back(index);
  waiting_accept_.clear();
  running_.clear();
  std::sort(lost.begin(), lost.end());
  if (!lost.empty()) {
    err_ << "imgq: warning: the broker restarted; asking again for the " << lost.size()
         << " unfinished job(s) under their keys (a durable broker still has them; one without a journal "
            "runs them anew)\n";
  }
  for (auto it = lost.rbegin(); it != lost.rend(); ++it) retry_.emplace_front(SteadyClock::now(), *it);
}

void Batch::fail(size_t index, const std::string& state, const std::string& message, const std::string& job) {
  ++failed_;
  reporter_.failed(view(index, job), state, message);
}

void Batch::retry_later(size_t index) { retry_.emplace_front(SteadyClock::now() + Millis(100), index); }

void Batch::back_off(size_t index, const proto::Error& error) {
  const int64_t hint = std::max<int64_t>(error.retry_after_ms, 100);
  const Millis delay(std::min<int64_t>(hint << std::min(refusals_, 7), 10'000));
  ++refusals_;
  if (!told_queue_full_) {
    told_queue_full_ = true;
    err_ << "imgq: the broker refuses new jobs for now (" << error.message << "); retrying with back-off from "
         << hint << " ms up to 10 s\n";
  }
  // Behind those already waiting: the order of the files is kept.
  retry_.emplace_back(SteadyClock::now() + delay, index);
}

void Batch::acknowledge(BrokerClient& broker, const std::string& job) {
  proto::ResultAck ack;
  ack.job = job;
  broker.send(proto::encode(ack));
}

void Batch::list_unfinished() {
  for (const auto& [job, index] : running_) {
    if (options_.mode == ReportMode::kJson) {
      out_ << "{\"event\":\"unfinished\",\"job\":" << json_quote(job)
           << ",\"file\":" << json_quote(items_[index].source.string()) << "}\n";
    } else {
      out_ << "submitted " << items_[index].source.string() << " as job " << job << "\n";
    }
  }
  out_.flush();
}

void Batch::send_next(BrokerClient& broker) {
  const auto now = SteadyClock::now();
  while (waiting_accept_.size() + running_.size() < options_.window) {
    size_t index;
    if (!retry_.empty() && retry_.front().first <= now) {
      index = retry_.front().second;
      retry_.pop_front();
    } else if (next_ < items_.size()) {
      index = next_++;
    } else {
      return;
    }
    const BatchItem& item = items_[index];
    if (!item.problem.ok()) {
      fail(index, proto::kFailed, item.problem.message());
      continue;
    }
    const std::string format = extension_of(item.output);
    if (!is_output_format(format)) {
      fail(index, proto::kFailed, "cannot write format \"" + format + "\"; give --format, one of " +
                                      output_formats_text());
      continue;
    }
    proto::Submit submit;
    submit.req = index + 1;
    submit.ops = options_.ops;
    submit.priority = options_.priority;
    submit.format = format;
    submit.name = item.source.string();
    submit.key = session_ + ":" + std::to_string(index);
    submit.session = session_;
    submit.timeout_ms = options_.job_timeout_ms;
    if (options_.local) {
      // Free of links, as the groups name their --allow-paths folders: the
      // broker routes the job to a group whose folders hold both files.
      submit.path = local_path(item.source);
      submit.output = local_path(item.output);
      if (!broker.send(proto::encode(submit))) return retry_later(index);
      waiting_accept_[submit.req] = index;
      continue;
    }
    // Larger than the broker takes: say so here rather than send it (past
    // the broker's message size limit ZeroMQ would drop it without a word).
    std::error_code size_error;
    const uintmax_t size = std::filesystem::file_size(item.source, size_error);
    if (!size_error && max_image_bytes_ != 0 && size > max_image_bytes_) {
      fail(index, proto::kFailed, item.source.string() + " is " + std::to_string(size) +
                                      " bytes; the broker takes at most " + std::to_string(max_image_bytes_) +
                                      " (its --max-image-bytes)");
      continue;
    }
    auto image = read_file_string(item.source);
    if (!image.ok()) {
      fail(index, proto::kFailed, image.status().message());
      continue;
    }
    if (!broker.send(proto::encode(submit), std::move(*image))) return retry_later(index);
    waiting_accept_[submit.req] = index;
  }
}

void Batch::handle(BrokerClient& broker, const Frames& frames) {
  auto header = proto::decode_header(frames.at(0));
  if (!header.ok()) return;
  const std::string& type = header->type();
  if (type == proto::Pong::kType) {
    if (auto pong = header->as<proto::Pong>(); pong.ok()) on_pong(*pong);
  } else if (type == proto::Accepted::kType) {
    auto a = header->as<proto::Accepted>();
    auto it = a.ok() ? waiting_accept_.find(a->req) : waiting_accept_.end();
    if (it == waiting_accept_.end()) return;
    refusals_ = 0;
    reporter_.accepted(view(it->second, a->job), a->position);
    if (!options_.no_wait) {
      running_[a->job] = it->second;
    } else if (options_.mode != ReportMode::kJson) {
      // Accepted is all --no-wait waits for: the job leaves the window.
      out_ << "submitted " << items_[it->second].source.string() << " as job " << a->job << "\n" << std::flush;
    }
    waiting_accept_.erase(it);
  } else if (type == proto::Error::kType) {
    auto e = header->as<proto::Error>();
    auto it = e.ok() ? waiting_accept_.find(e->req) : waiting_accept_.end();
    if (it == waiting_accept_.end()) return;
    if (e->code == static_cast<int>(StatusCode::kResourceExhausted)) {
      back_off(it->second, *e);
    } else if (e->retryable) {
      retry_.emplace_back(SteadyClock::now() + Millis(std::max<uint32_t>(e->retry_after_ms, 100)), it->second);
    } else {
      fail(it->second, proto::kFailed, e->message);
    }
    waiting_accept_.erase(it);
  } else if (type == proto::JobResult::kType) {
    auto r = header->as<proto::JobResult>();
    if (!r.ok()) return;
    if (finished_.count(r->job) != 0) return acknowledge(broker, r->job);  // again, after a broker restart
    auto it = running_.find(r->job);
    if (it == running_.end() || options_.no_wait) return;  // a --no-wait job's result waits for `imgq fetch`
    const size_t index = it->second;
    running_.erase(it);
    finished_.insert(r->job);
    if (r->state != proto::kDone) {
      fail(index, r->state, r->message, r->job);
    } else if (options_.local && !r->output.empty()) {
      // The group wrote it already.
      ++done_;
      reporter_.succeeded(view(index, r->job), r->stats);
    } else if (frames.size() != 2) {
      // Not acknowledged: the broker keeps it for `imgq fetch`.
      finished_.erase(r->job);
      return fail(index, proto::kFailed, "the broker sent no result image", r->job);
    } else {
      const auto& bytes = frames[1];
      Status written =
          write_file(items_[index].output, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
      if (!written.ok()) {
        finished_.erase(r->job);
        return fail(index, proto::kFailed, written.message() + " (the result stays at the broker: imgq fetch " +
                                               r->job + ")", r->job);
      }
      ++done_;
      reporter_.succeeded(view(index, r->job), r->stats);
    }
    acknowledge(broker, r->job);
  }
}

// Pings with the session until the pong also arrives on the progress
// socket: from then on no event of this batch can be missed. Doubles as the
// check that the broker can be reached.
bool Batch::subscribed(BrokerClient& broker, zmq::socket_t& progress) {
  const auto deadline = SteadyClock::now() + options_.timeout;
  bool answered = false;
  Frames frames;
  // The subscription takes a moment to reach the broker, and a pong
  // published before that is lost: ping again soon (5 ms doubling to 200 ms),
  // so that a batch starts within milliseconds, not a fixed wait.
  auto interval = Millis(5);
  for (uint64_t req = 1; SteadyClock::now() < deadline; ++req, interval = std::min(interval * 2, Millis(200))) {
    if (options_.interrupted != nullptr && *options_.interrupted != 0) {
      err_ << "imgq: interrupted before anything was submitted\n";
      return false;
    }
    proto::Ping ping;
    ping.req = req;
    ping.session = session_;
    broker.send(proto::encode(ping));
    const auto until = std::min(deadline, SteadyClock::now() + interval);
    while (SteadyClock::now() < until) {
      if (auto refused = broker.refused()) {
        err_ << "imgq: error: " << refused->message() << "\n";
        return false;
      }
      zmq::pollitem_t items[] = {{broker.socket().handle(), 0, ZMQ_POLLIN, 0}, {progress.handle(), 0, ZMQ_POLLIN, 0}};
      poll_sockets(items, 2, std::min(interval, Millis(20)));
      while (recv_frames(broker.socket(), frames, 2, /*dontwait=*/true)) {
        auto pong = decode_reply<proto::Pong>(frames);
        if (pong.ok() && !answered && pong->groups == 0) {
          err_ << "imgq: warning: no worker group is connected to the broker yet; jobs will wait for one\n";
        }
        if (pong.ok()) {
          answered = true;
          instance_ = pong->instance;
          max_image_bytes_ = pong->max_image_bytes;
          last_pong_ = SteadyClock::now();
        }
      }
      if (recv_frames(progress, frames, 2, /*dontwait=*/true) && frames.front() == session_) return true;
    }
  }
  err_ << "imgq: error: "
       << (answered ? "the broker answers at " + options_.broker + " but its progress endpoint " +
                          (options_.progress.empty() ? default_progress_endpoint(options_.broker) : options_.progress) +
                          " does not (give --progress)"
                    : "no answer from the broker at " + options_.broker + " within " +
                          std::to_string(options_.timeout.count()) + " ms" +
                          (options_.curve.enabled()
                               ? " (CURVE is on: check that --server-key is the broker's public key)"
                               : ""))
       << "\n";
  return false;
}

int Batch::run(zmq::context_t& context) {
  BrokerClient broker(context, options_.broker, options_.curve);
  zmq::socket_t progress = connect_progress(
      context, options_.progress.empty() ? default_progress_endpoint(options_.broker) : options_.progress,
      options_.curve);
  progress.set(zmq::sockopt::subscribe, session_);
  if (!subscribed(broker, progress)) return 3;

  const auto start = SteadyClock::now();
  Frames frames;
  // Acknowledgements still queued go out when the client closes.
  broker.linger_on_close(Millis(500));
  auto interrupted = [&] { return options_.interrupted != nullptr && *options_.interrupted != 0; };
  while (true) {
    if (interrupted()) {
      reporter_.finish(done_, failed_, items_.size(), std::chrono::duration<double>(SteadyClock::now() - start).count());
      err_ << "imgq: interrupted; " << running_.size()
           << " job(s) accepted and not finished (imgq status / imgq fetch JOB later)\n";
      list_unfinished();
      return 130;
    }
    if (SteadyClock::now() - last_pong_ > options_.timeout) {
      reporter_.finish(done_, failed_, items_.size(), std::chrono::duration<double>(SteadyClock::now() - start).count());
      err_ << "imgq: error: no answer from the broker at " << options_.broker << " for "
           << std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count() << " s (--timeout); "
           << running_.size() << " job(s) accepted and not finished\n";
      list_unfinished();
      return 3;
    }
    send_next(broker);
    check_broker(broker);
    const bool all_sent = next_ == items_.size() && retry_.empty();
    if (all_sent && waiting_accept_.empty() && running_.empty()) break;
    zmq::pollitem_t items[] = {{broker.socket().handle(), 0, ZMQ_POLLIN, 0}, {progress.handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 2, Millis(100));
    if (items[0].revents & ZMQ_POLLIN) {
      while (recv_frames(broker.socket(), frames, 2, /*dontwait=*/true)) handle(broker, frames);
    }
    if (items[1].revents & ZMQ_POLLIN) {
      while (recv_frames(progress, frames, 2, /*dontwait=*/true)) {
        if (frames.size() != 2) continue;
        auto event = proto::decode_header(frames[1]);
        if (!event.ok()) continue;
        auto e = event->as<proto::Event>();
        auto it = e.ok() ? running_.find(e->job.job) : running_.end();
        if (it != running_.end()) reporter_.event(view(it->second, e->job.job), e->job);
      }
    }
    reporter_.tick(done_, failed_, items_.size());
  }
  reporter_.finish(done_, failed_, items_.size(), std::chrono::duration<double>(SteadyClock::now() - start).count());
  return failed_ == 0 ? 0 : 1;
}

}  // namespace

int run_submit(const SubmitOptions& options, std::ostream& out, std::ostream& err) {
  auto pipeline = schemas::parse_pipeline(options.ops);
  if (!pipeline.ok()) {
    err << "imgq: error: " << pipeline.status().message() << "\n";
    return 2;
  }
  if (!options.format.empty() && !is_output_format(options.format)) {
    err << "imgq: error: --format " << options.format << " is not one of " << output_formats_text() << "\n";
    return 2;
  }
  if (options.priority < 0 || options.priority > 9) {
    err << "imgq: error: --priority must be from 0 to 9\n";
    return 2;
  }
  if (options.paths.empty()) {
    err << "imgq: error: give at least one image file or folder\n";
    return 2;
  }

  zmq::context_t context;
  SubmitOptions normalized = options;
  normalized.ops = schemas::pipeline_to_specs(*pipeline);
  auto reporter = make_reporter(options.mode, out, err);
  Batch batch(normalized, plan_batch(options.paths, options.out_dir, options.format), *reporter, out, err);
  return batch.run(context);
}

}  // namespace imgq::client
