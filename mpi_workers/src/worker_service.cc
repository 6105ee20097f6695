#include "imgq/mpi_workers/worker_service.h"

#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "imgq/common/file_io.h"
#include "imgq/common/version.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/mpi_workers/broker_link.h"
#include "imgq/mpi_workers/job_runner.h"
#include "imgq/mpi_workers/pnm_io.h"
#include "imgq/mpi_workers/rank_scheduler.h"
#include "imgq/mpi_workers/whole_jobs.h"
#include "imgq/schemas/codec.h"
#include "imgq/schemas/op_catalog.h"

namespace imgq::workers {
namespace {

using SteadyClock = std::chrono::steady_clock;

// A job from the broker, waiting or running.
struct Task {
  proto::JobRequest request;
  // The encoded image: the job message's frame as it came (no copy), or
  // read from request.path.
  zmq::message_t frame;
  std::string file_image;
  std::span<const uint8_t> image() const {
    return frame.size() > 0 ? std::span<const uint8_t>(frame.data<uint8_t>(), frame.size()) : bytes_of(file_image);
  }
  // A local-files job: its files (checked against --allow-paths), and for a
  // large binary PGM/PPM the layout that lets every rank read its own rows
  // (then there is no image).
  std::filesystem::path input_file, output_file;
  std::optional<PnmLayout> rows_from_file;
  Pipeline pipeline;
  SteadyClock::time_point received;
  bool whole = true;  // run whole on one rank, else in strips over all
  uint64_t ticket = 0;
};

// `path` made absolute and free of links and dots, if it lies in one of
// `roots` (canonical folders), else why not.
Result<std::filesystem::path> inside(const std::vector<std::filesystem::path>& roots, const std::string& path) {
  if (roots.empty()) {
    return Status::PermissionDenied("this worker group reads and writes no local files (start it with --allow-paths DIR)");
  }
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::weakly_canonical(path, ec);
  if (ec) return Status::IoError("cannot resolve " + path + ": " + ec.message());
  for (const std::filesystem::path& root : roots) {
    auto [r, p] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
    if (r == root.end()) return real;
  }
  return Status::PermissionDenied(path + " is outside the folders this worker group may use (--allow-paths)");
}

// Why a job must stop now (the broker aborted it, or its own deadline
// passed; the broker may be unreachable by then), or OK. Any thread.
Status stop_reason(const BrokerLink& link, const proto::JobRequest& request, SteadyClock::time_point received) {
  if (link.aborted(request.job)) return Status::Cancelled("stopped on the broker's request");
  const auto timeout = std::chrono::milliseconds(request.timeout_ms);
  if (timeout.count() > 0 && SteadyClock::now() - received > timeout) {
    return Status::DeadlineExceeded("the job ran longer than its timeout of " + std::to_string(request.timeout_ms) +
                                    " ms");
  }
  return Status::Ok();
}

// Runs the leader's own whole images on a thread, so that the main thread
// stays free to feed the followers (only the main thread calls MPI). A
// finished job is signalled on an inproc socket the main thread polls.
class LeaderThread {
 public:
  explicit LeaderThread(zmq::context_t& context)
      : endpoint_("inproc://imgq-leader-thread-" + std::to_string(reinterpret_cast<uintptr_t>(this))),
        done_(context, zmq::socket_type::pair) {
    done_.set(zmq::sockopt::linger, 0);
    done_.bind(endpoint_);
    thread_ = std::thread([this, &context] { run(context); });
  }
  ~LeaderThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  LeaderThread(const LeaderThread&) = delete;
  LeaderThread& operator=(const LeaderThread&) = delete;

  bool busy() const { return busy_; }
  void start(std::function<JobOutcome()> work) {
    busy_ = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      work_ = std::move(work);
    }
    wake_.notify_one();
  }
  zmq::socket_t& done_socket() { return done_; }
  // When done_socket() is readable: the outcome.
  JobOutcome finish() {
    Frames signal;
    recv_frames(done_, signal, 1, /*dontwait=*/false);
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = false;
    return std::move(outcome_);
  }

 private:
  void run(zmq::context_t& context) {
    zmq::socket_t signal(context, zmq::socket_type::pair);
    signal.set(zmq::sockopt::linger, 0);
    signal.connect(endpoint_);
    while (true) {
      std::function<JobOutcome()> work;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stop_ || work_; });
        if (!work_) return;
        work = std::move(work_);
        work_ = nullptr;
      }
      JobOutcome outcome = work();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        outcome_ = std::move(outcome);
      }
      send_frames(signal, {"done"});
    }
  }

  std::string endpoint_;
  zmq::socket_t done_;  // main thread only
  bool busy_ = false;   // main thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::function<JobOutcome()> work_;  // guarded by mutex_
  JobOutcome outcome_;                // guarded by mutex_
  bool stop_ = false;                 // guarded by mutex_
  std::thread thread_;
};

class Leader {
 public:
  Leader(Engine& engine, const ServiceOptions& options, zmq::context_t& context, zmq::socket_t& pipe,
         const BrokerLink& link)
      : engine_(engine), options_(options), pipe_(pipe), link_(link), own_(context), ranks_(engine.size()) {}

  void run(const std::atomic<bool>& stop) {
    Messages parts;
    while (true) {
      const bool stopping = stop.load();
      if (stopping && ranks_.done()) return summary_.log_if_due(SteadyClock::now(), /*last=*/true);
      // Taking no new jobs once stopping; the ones in hand finish.
      zmq::pollitem_t items[] = {{pipe_.handle(), 0, static_cast<short>(stopping ? 0 : ZMQ_POLLIN), 0},
                                 {own_.done_socket().handle(), 0, ZMQ_POLLIN, 0}};
      poll_sockets(items, 2, std::chrono::duration_cast<std::chrono::milliseconds>(ranks_.poll_interval()));
      if (items[0].revents & ZMQ_POLLIN) {
        recv_messages(pipe_, parts, 2, /*dontwait=*/false);
        take(parts);
      }
      if (items[1].revents & ZMQ_POLLIN) {
        JobOutcome outcome = own_.finish();
        finish(ranks_.finish(0), std::move(outcome));
      }
      while (auto result = receive_whole_result(engine_.comm())) {
        const Task* task = ranks_.running(result->rank);
        if (result->rank == 0 || task == nullptr || task->ticket != result->ticket) {
          spdlog::error("rank {} answered for a job it was not given", result->rank);
          continue;
        }
        finish(ranks_.finish(result->rank), std::move(result->outcome));
      }
      schedule();
      summary_.log_if_due(SteadyClock::now());
    }
  }

 private:
  // A job message from the broker: refused at once, or queued.
  void take(Messages& parts) {
    Task task;
    auto header = proto::decode_header({parts[0].data<char>(), parts[0].size()});
    auto request = header.ok() ? header->as<proto::JobRequest>({"job", "ops"}) : Result<proto::JobRequest>(header.status());
    const size_t expected = request.ok() && !request->path.empty() ? 1 : 2;
    if (!request.ok() || parts.size() != expected) {
      task.request.job = request.ok() ? request->job : std::string();
      return finish(task, {.status = Status::InvalidArgument(
                               !request.ok() ? request.status().message()
                               : expected == 2 ? "job without an image frame"
                                               : "local-files job with an image frame")});
    }
    task.request = std::move(request).value();
    task.received = SteadyClock::now();
    auto pipeline = schemas::parse_pipeline(task.request.ops);
    if (!pipeline.ok()) return finish(task, {.status = pipeline.status()});
    task.pipeline = std::move(pipeline).value();
    if (task.request.path.empty()) {
      task.frame = std::move(parts[1]);
    } else if (Status loaded = load_local(task); !loaded.ok()) {
      return finish(task, {.status = loaded});
    }
    task.whole = !task.rows_from_file && runs_whole(engine_, task.image(), options_.strip_above);
    task.ticket = ++tickets_;
    const bool whole = task.whole;
    std::optional<SteadyClock::time_point> deadline;
    if (task.request.timeout_ms > 0) deadline = task.received + std::chrono::milliseconds(task.request.timeout_ms);
    ranks_.push(std::move(task), whole, deadline);
  }

  // Checks a local-files job's paths, then reads its image, or only the
  // header of a large binary PGM/PPM whose rows each rank will read itself.
  Status load_local(Task& task) const {
    IMGQ_ASSIGN_OR_RETURN(task.input_file, inside(options_.allow_paths, task.request.path));
    IMGQ_ASSIGN_OR_RETURN(task.output_file, inside(options_.allow_paths, task.request.output));
    task.rows_from_file = rows_from_file(engine_, task.pipeline, task.input_file, options_.strip_above);
    if (task.rows_from_file) return Status::Ok();
    // A job's file that cannot be read is an io_error (PROTOCOL.md section
    // 4), whatever the reason, and names the file.
    auto image = read_file_string(task.input_file);
    if (!image.ok()) return Status::IoError("cannot read " + task.input_file.string() + ": " + image.status().message());
    task.file_image = std::move(*image);
    return Status::Ok();
  }

  // Starts waiting jobs, in order, while there are ranks for them (the
  // policy: rank_scheduler.h); ends those the broker stopped or whose
  // deadline passed while they waited.
  void schedule() {
    while (const Task* first = ranks_.first_waiting()) {
      if (link_.aborted(first->request.job)) {
        finish(ranks_.drop_first(), {.status = Status::Cancelled("stopped on the broker's request")});
        continue;
      }
      auto start = ranks_.next(SteadyClock::now());
      if (!start) return;
      switch (start->where) {
        case Where::kExpired:
          finish(*start->expired,
                 {.status = Status::DeadlineExceeded("the job waited longer than its timeout of " +
                                                     std::to_string(start->expired->request.timeout_ms) + " ms")});
          break;
        case Where::kLeader:
          start_on_leader(*ranks_.running(0));
          break;
        case Where::kFollower:
          start_on_follower(start->rank, *ranks_.running(start->rank));
          break;
        case Where::kStrips: {
          JobOutcome outcome = run_in_strips(*ranks_.running(0));
          finish(ranks_.finish(0), std::move(outcome));
          break;
        }
      }
    }
  }

  // `t` stays put in the scheduler until finished.
  void start_on_leader(const Task& t) {
    JobControl control;
    control.max_pixels = options_.max_pixels;
    control.interrupt = [&link = link_, &request = t.request, received = t.received] {
      return stop_reason(link, request, received);
    };
    if (engine_.size() == 1) {
      // No follower to feed: the job runs here, without two thread hand-offs.
      JobOutcome outcome = run_whole_job(t.pipeline, t.image(), format_of(t), 0, control);
      finish(ranks_.finish(0), std::move(outcome));
      return;
    }
    own_.start([&t, control, format = format_of(t)] {
      return run_whole_job(t.pipeline, t.image(), format, 0, control);
    });
  }

  void start_on_follower(int rank, const Task& task) {
    WholeJob job;
    job.ticket = task.ticket;
    for (const std::string& spec : schemas::pipeline_to_specs(task.pipeline)) job.specs += spec + '\n';
    job.format = format_of(task);
    job.max_pixels = options_.max_pixels;
    if (task.request.timeout_ms > 0) {
      const auto left = std::chrono::milliseconds(task.request.timeout_ms) -
                        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - task.received);
      job.timeout_ms = std::max<int64_t>(left.count(), 1);
    }
    job.image = {reinterpret_cast<const char*>(task.image().data()), task.image().size()};
    send_whole_job(engine_.comm(), rank, job);
  }

  JobOutcome run_in_strips(const Task& task) {
    JobControl control;
    control.max_pixels = options_.max_pixels;
    control.interrupt = [&] { return stop_reason(link_, task.request, task.received); };
    const ProgressFn progress = [&](int step, int total, const std::string& what) {
      proto::Progress message;
      message.job = task.request.job;
      message.done = step;
      message.total = total;
      message.stage = what;
      send_frames(pipe_, {proto::encode(message)});
    };
    const JobInput input = task.rows_from_file ? JobInput(LocalRows{task.input_file, *task.rows_from_file})
                                               : JobInput(EncodedImage{task.image()});
    return run_job(engine_, task.pipeline, input, {format_of(task), task.output_file}, progress, control);
  }

  static std::string format_of(const Task& task) {
    return task.request.format.empty() ? "png" : task.request.format;
  }

  // Sends the job's `done`, with the result when it succeeded (and was not
  // stopped meanwhile: the broker has answered a stopped job already).
  void finish(const Task& task, JobOutcome outcome) {
    const proto::JobRequest& request = task.request;
    if (outcome.status.ok() && !request.job.empty()) {
      if (Status why = stop_reason(link_, request, task.received); !why.ok()) {
        outcome.status = why;
        outcome.encoded.clear();
      }
    }
    // A local-files job: the result goes to its file, not back in a frame.
    if (outcome.status.ok() && !request.output.empty() && !outcome.written) {
      outcome.status = write_file(task.output_file, outcome.encoded, /*durable=*/true);
      outcome.encoded.clear();
    }
    proto::Done done;
    done.job = request.job;
    done.code = static_cast<int>(outcome.status.code());
    // Errors name the file, as the broker's own refusals do.
    done.message = outcome.status.ok() || request.name.empty() ? outcome.status.message()
                                                               : request.name + ": " + outcome.status.message();
    done.stats = outcome.stats;
    if (outcome.status.ok()) done.output = request.output;
    // The result moves into its message, not copied (the link passes it on as is).
    const bool with_image = outcome.status.ok() && request.output.empty();
    const std::string header = proto::encode(done);
    Messages reply;
    reply.push_back(zmq::message_t(header.data(), header.size()));
    if (with_image) reply.push_back(message_of(std::move(outcome.encoded)));
    send_messages(pipe_, reply);
    const proto::JobStats& t = done.stats;
    // Each rank's compute (in strips) and the leader's peak memory so far,
    // for whoever tunes the group.
    std::string ranks;
    for (double seconds : outcome.rank_compute_seconds) ranks += fmt::format("{}{:.3f}", ranks.empty() ? "" : " ", seconds);
    const double seconds =
        t.decode_seconds + t.scatter_seconds + t.compute_seconds + t.gather_seconds + t.encode_seconds;
    summary_.add(outcome.status.ok(), seconds, t.pixels);
    // A line per job costs a small job as much as its work (it crosses
    // mpiexec's proxy to reach the log): jobs of a second or more, and
    // failures, get theirs at info; the rest at debug, and a summary.
    const auto level =
        !outcome.status.ok() || seconds >= kJobLineFrom ? spdlog::level::info : spdlog::level::debug;
    if (!spdlog::should_log(level)) return;
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    spdlog::log(level,
                "job {} ({}): {} in {:.3f} s ({}; decode {:.3f}, scatter {:.3f}, compute {:.3f}, gather {:.3f}, "
                "encode {:.3f}{}; peak {} MB)",
                request.job, request.name, outcome.status.ok() ? "done" : outcome.status.ToString(), seconds,
                task.whole ? "whole" : "strips", t.decode_seconds, t.scatter_seconds, t.compute_seconds,
                t.gather_seconds, t.encode_seconds, ranks.empty() ? "" : "; ranks' compute " + ranks,
                usage.ru_maxrss / 1024);
  }

  // What the group did since its last summary line, logged at info once a
  // minute while jobs come.
  struct Summary {
    uint64_t done = 0, failed = 0, pixels = 0;
    double seconds = 0;
    SteadyClock::time_point since = SteadyClock::now();
    void add(bool ok, double job_seconds, uint64_t job_pixels) {
      ++(ok ? done : failed);
      seconds += job_seconds;
      pixels += job_pixels;
    }
    // `last`: the group is stopping; what is left is logged now.
    void log_if_due(SteadyClock::time_point now, bool last = false) {
      if (!last && now - since < kSummaryEvery) return;
      if (done + failed > 0) {
        spdlog::info("last {:.0f} s: {} job(s) done, {} failed; {:.1f} megapixels; {:.3f} s of work per job",
                     std::chrono::duration<double>(now - since).count(), done, failed, static_cast<double>(pixels) / 1e6,
                     seconds / static_cast<double>(done + failed));
      }
      *this = Summary{.since = now};
    }
  };
  static constexpr double kJobLineFrom = 1.0;  // seconds
  static constexpr auto kSummaryEvery = std::chrono::minutes(1);

  Engine& engine_;
  const ServiceOptions& options_;
  zmq::socket_t& pipe_;
  const BrokerLink& link_;
  LeaderThread own_;
  RankScheduler<Task> ranks_;
  uint64_t tickets_ = 0;
  Summary summary_;
};

proto::Hello hello_for(const Engine& engine, const ServiceOptions& options) {
  proto::Hello hello;
  hello.name = options.name;
  hello.ranks = engine.size();
  hello.slots = slots_for(engine.size(), options.strip_above);
  for (const schemas::OpDef& def : schemas::all_ops()) hello.ops.emplace_back(def.name);
  hello.version = std::string(imgq::version());
  for (const std::filesystem::path& root : options.allow_paths) hello.allow_paths.push_back(root.string());
  return hello;
}

}  // namespace

void serve_broker(Engine& engine, const ServiceOptions& options, const std::atomic<bool>& stop) {
  zmq::context_t context;
  BrokerLink link(context, {.broker = options.broker,
                            .hello = hello_for(engine, options),
                            .curve = options.curve,
                            .heartbeat = options.heartbeat});
  zmq::socket_t pipe(context, zmq::socket_type::pair);
  pipe.connect(link.pipe_endpoint());
  {
    Leader leader(engine, options, context, pipe, link);
    leader.run(stop);
  }
  spdlog::info("stopping: saying bye to the broker");
  send_frames(pipe, {proto::encode(proto::Bye{})});
}

}  // namespace imgq::workers
