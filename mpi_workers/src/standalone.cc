#include "imgq/mpi_workers/standalone.h"

#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "imgq/common/file_io.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/job_runner.h"

namespace imgq::workers {
namespace fs = std::filesystem;

namespace {

// Feeds the ranks the batch's images in order, as the broker-connected
// leader does (worker_service.cc) but with the files as the queue.
class BatchRun {
 public:
  BatchRun(Engine& engine, const Pipeline& pipeline, const std::vector<BatchItem>& items, std::ostream& errors,
           const BatchOptions& options)
      : engine_(engine),
        pipeline_(pipeline),
        items_(items),
        errors_(errors),
        options_(options),
        on_rank_(static_cast<size_t>(engine.size())) {
    for (const std::string& spec : schemas::pipeline_to_specs(pipeline)) specs_ += spec + '\n';
  }

  BatchSummary run() {
    const auto start = std::chrono::steady_clock::now();
    size_t next = 0;
    while (next < items_.size() || busy()) {
      bool moved = collect();
      if (next < items_.size() && start_item(items_[next])) {
        ++next;
        moved = true;
      }
      // MPI cannot wake a wait on the leader's thread: look again shortly.
      if (!moved) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  struct Own {
    const BatchItem* item;
    std::string image;  // alive until the thread is done with it
    std::future<JobOutcome> outcome;
  };

  bool busy() const {
    if (own_) return true;
    for (const BatchItem* item : on_rank_) {
      if (item != nullptr) return true;
    }
    return false;
  }

  int idle_follower() const {
    for (size_t r = 1; r < on_rank_.size(); ++r) {
      if (on_rank_[r] == nullptr) return static_cast<int>(r);
    }
    return -1;
  }

  // Finishes what the leader's thread and the followers are done with.
  bool collect() {
    bool any = false;
    if (own_ && own_->outcome.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      const BatchItem& item = *own_->item;
      JobOutcome outcome = own_->outcome.get();
      own_.reset();
      finish(item, std::move(outcome));
      any = true;
    }
    while (auto result = receive_whole_result(engine_.comm())) {
      const BatchItem* item = on_rank_[static_cast<size_t>(result->rank)];
      on_rank_[static_cast<size_t>(result->rank)] = nullptr;
      any = true;
      if (item == nullptr || result->ticket != ticket_of(*item)) {
        // A bug: count the image it held as failed rather than lose it.
        spdlog::error("rank {} answered for an image it was not given", result->rank);
        if (item != nullptr) finish(*item, {.status = Status::Internal("rank " + std::to_string(result->rank) +
                                                                         " answered for another image")});
        continue;
      }
      finish(*item, std::move(result->outcome));
    }
    return any;
  }

  uint64_t ticket_of(const BatchItem& item) const { return static_cast<uint64_t>(&item - items_.data()); }

  // Starts `item` if there is a rank for it (true), or leaves it for later.
  bool start_item(const BatchItem& item) {
    const std::string format = extension_of(item.output);
    Status refused = item.problem;
    if (refused.ok() && !is_output_format(format)) {
      refused = Status::InvalidArgument("cannot write format \"" + format + "\" (the input's own); give --format, one of " +
                                        output_formats_text());
    }
    if (!refused.ok()) {
      finish(item, {.status = refused});
      return true;
    }
    if (!pending_) {
      pending_.emplace();
      pending_->rows = rows_from_file(engine_, pipeline_, item.source, options_.strip_above);
      if (!pending_->rows) {
        auto bytes = read_file_string(item.source);
        if (!bytes.ok()) {
          pending_.reset();
          finish(item, {.status = bytes.status()});
          return true;
        }
        pending_->image = std::move(bytes).value();
        pending_->whole = runs_whole(engine_, bytes_of(pending_->image), options_.strip_above);
      }
    }
    const JobControl control{.max_pixels = options_.max_pixels};
    if (pending_->whole) {
      if (!own_) {
        own_.emplace(Own{&item, std::move(pending_->image), {}});
        own_->outcome = std::async(std::launch::async, [this, control, format, image = &own_->image] {
          return run_whole_job(pipeline_, bytes_of(*image), format, 0, control);
        });
      } else if (const int rank = idle_follower(); rank > 0) {
        WholeJob job;
        job.ticket = ticket_of(item);
        job.specs = specs_;
        job.format = format;
        job.max_pixels = options_.max_pixels;
        job.image = pending_->image;
        send_whole_job(engine_.comm(), rank, job);
        on_rank_[static_cast<size_t>(rank)] = &item;
      } else {
        return false;
      }
      pending_.reset();
      return true;
    }
    if (busy()) return false;  // strips need every rank
    JobOutcome outcome = pending_->rows
                             ? run_job_files(engine_, pipeline_, item.source, *pending_->rows, item.output, format,
                                             {}, control)
                             : run_job(engine_, pipeline_, bytes_of(pending_->image), format, {}, control);
    pending_.reset();
    finish(item, std::move(outcome));
    return true;
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

  // The next item, read but waiting for a rank.
  struct Pending {
    std::string image;
    std::optional<PnmLayout> rows;  // in strips, each rank reading its rows
    bool whole = false;
  };

  Engine& engine_;
  const Pipeline& pipeline_;
  const std::vector<BatchItem>& items_;
  std::ostream& errors_;
  const BatchOptions& options_;
  std::string specs_;
  std::optional<Own> own_;
  std::vector<const BatchItem*> on_rank_;  // each follower's image (index 0 unused)
  std::optional<Pending> pending_;
  BatchSummary summary_;
};

}  // namespace

BatchSummary run_batch(Engine& engine, const Pipeline& pipeline, const std::vector<BatchItem>& items,
                       std::ostream& errors, const BatchOptions& options) {
  return BatchRun(engine, pipeline, items, errors, options).run();
}

}  // namespace imgq::workers
