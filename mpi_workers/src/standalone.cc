#include "imgq/mpi_workers/standalone.h"

#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "imgq/common/file_io.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/job_runner.h"
#include "imgq/mpi_workers/rank_scheduler.h"

namespace imgq::workers {
namespace fs = std::filesystem;

namespace {

// Feeds the ranks the batch's images in order, by the policy of
// rank_scheduler.h that the broker-connected leader (worker_service.cc)
// follows too, with the files as the queue.
class BatchRun {
 public:
  BatchRun(Engine& engine, const Pipeline& pipeline, const std::vector<BatchItem>& items, std::ostream& errors,
           const BatchOptions& options)
      : engine_(engine),
        pipeline_(pipeline),
        items_(items),
        errors_(errors),
        options_(options),
        ranks_(engine.size()) {
    for (const std::string& spec : schemas::pipeline_to_specs(pipeline)) specs_ += spec + '\n';
  }

  BatchSummary run() {
    const auto start = std::chrono::steady_clock::now();
    size_t next = 0;
    while (next < items_.size() || !ranks_.done()) {
      bool moved = collect();
      // One image read ahead, waiting for its rank.
      if (ranks_.waiting() == 0 && next < items_.size()) {
        queue(items_[next++]);
        moved = true;
      }
      moved = schedule() || moved;
      if (moved) continue;
      // MPI cannot wake a wait on the leader's thread: look again shortly.
      if (own_.valid()) {
        own_.wait_for(ranks_.poll_interval());
      } else {
        std::this_thread::sleep_for(ranks_.poll_interval());
      }
    }
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  // An image read, waiting for or on its rank(s).
  struct Job {
    const BatchItem* item = nullptr;
    std::string format;
    std::string image;
    std::optional<PnmLayout> rows;  // in strips, each rank reading its rows (then no image)
    uint64_t ticket() const { return reinterpret_cast<uintptr_t>(item); }
  };

  // Reads `item` and queues it, or finishes it at once when it cannot run.
  void queue(const BatchItem& item) {
    Job job{.item = &item, .format = extension_of(item.output)};
    if (!item.problem.ok()) return finish(item, {.status = item.problem});
    if (!is_output_format(job.format)) {
      return finish(item, {.status = Status::InvalidArgument("cannot write format \"" + job.format +
                                                             "\" (the input's own); give --format, one of " +
                                                             output_formats_text())});
    }
    job.rows = rows_from_file(engine_, pipeline_, item.source, options_.strip_above);
    if (!job.rows) {
      auto bytes = read_file_string(item.source);
      if (!bytes.ok()) return finish(item, {.status = bytes.status()});
      job.image = std::move(bytes).value();
    }
    const bool whole = !job.rows && runs_whole(engine_, bytes_of(job.image), options_.strip_above);
    ranks_.push(std::move(job), whole);
  }

  // Starts what has its ranks; true when anything started.
  bool schedule() {
    bool any = false;
    const JobControl control{.max_pixels = options_.max_pixels};
    while (auto start = ranks_.next(std::chrono::steady_clock::now())) {
      any = true;
      const Job& job = start->where == Where::kExpired ? *start->expired : *ranks_.running(start->rank);
      switch (start->where) {
        case Where::kExpired:  // no deadlines here
          finish(*job.item, {.status = Status::DeadlineExceeded("the job waited too long")});
          break;
        case Where::kLeader:
          own_ = std::async(std::launch::async, [this, control, &job] {
            return run_whole_job(pipeline_, bytes_of(job.image), job.format, 0, control);
          });
          break;
        case Where::kFollower: {
          WholeJob whole;
          whole.ticket = job.ticket();
          whole.specs = specs_;
          whole.format = job.format;
          whole.max_pixels = options_.max_pixels;
          whole.image = job.image;
          send_whole_job(engine_.comm(), start->rank, whole);
          break;
        }
        case Where::kStrips: {
          const JobInput input = job.rows ? JobInput(LocalRows{job.item->source, *job.rows})
                                          : JobInput(EncodedImage{bytes_of(job.image)});
          JobOutcome outcome = run_job(engine_, pipeline_, input, {job.format, job.item->output}, {}, control);
          finish(*ranks_.finish(0).item, std::move(outcome));
          break;
        }
      }
    }
    return any;
  }

  // Finishes what the leader's thread and the followers are done with.
  bool collect() {
    bool any = false;
    if (own_.valid() && own_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      JobOutcome outcome = own_.get();
      finish(*ranks_.finish(0).item, std::move(outcome));
      any = true;
    }
    while (auto result = receive_whole_result(engine_.comm())) {
      any = true;
      const Job* job = ranks_.running(result->rank);
      if (result->rank == 0 || job == nullptr) {
        spdlog::error("rank {} answered with no image given", result->rank);
        continue;
      }
      const BatchItem& item = *ranks_.finish(result->rank).item;
      if (result->ticket != reinterpret_cast<uintptr_t>(&item)) {
        // A bug: count the image it held as failed rather than lose it.
        spdlog::error("rank {} answered for an image it was not given", result->rank);
        finish(item, {.status = Status::Internal("rank " + std::to_string(result->rank) +
                                                 " answered for another image")});
        continue;
      }
      finish(item, std::move(result->outcome));
    }
    return any;
  }

  void finish(const BatchItem& item, JobOutcome outcome) {
    summary_.megapixels += static_cast<double>(outcome.stats.pixels) / 1e6;
    Status status = outcome.status;
    const auto written = std::chrono::steady_clock::now();
    if (status.ok() && !outcome.written) status = write_file(item.output, outcome.encoded);
    const proto::JobStats& t = outcome.stats;
    spdlog::debug("{}: {} (decode {:.3f}, scatter {:.3f}, compute {:.3f}, gather {:.3f}, encode {:.3f}, write {:.3f})",
                  item.source.string(), status.ok() ? "done" : status.ToString(), t.decode_seconds, t.scatter_seconds,
                  t.compute_seconds, t.gather_seconds, t.encode_seconds,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - written).count());
    if (status.ok()) {
      ++summary_.succeeded;
    } else {
      ++summary_.failed;
      errors_ << item.source.string() << ": error: " << status.message() << "\n" << std::flush;
    }
  }

  Engine& engine_;
  const Pipeline& pipeline_;
  const std::vector<BatchItem>& items_;
  std::ostream& errors_;
  const BatchOptions& options_;
  std::string specs_;
  RankScheduler<Job> ranks_;
  std::future<JobOutcome> own_;  // the leader's own whole image, on a thread
  BatchSummary summary_;
};

}  // namespace

BatchSummary run_batch(Engine& engine, const Pipeline& pipeline, const std::vector<BatchItem>& items,
                       std::ostream& errors, const BatchOptions& options) {
  return BatchRun(engine, pipeline, items, errors, options).run();
}

}  // namespace imgq::workers
