#include "imgq/mpi_workers/standalone.h"

#include <algorithm>
#include <chrono>

#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/job_runner.h"

namespace imgq::workers {
namespace fs = std::filesystem;

namespace {

Status process_one(Engine& engine, const Pipeline& pipeline, const BatchItem& item, uint64_t max_pixels,
                   double* megapixels) {
  const std::string format = extension_of(item.output);
  if (!is_output_format(format)) {
    return Status::InvalidArgument("cannot write format \"" + format +
                                   "\" (the input's own); give --format, one of " + output_formats_text());
  }
  IMGQ_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(item.source));
  JobOutcome outcome = run_job(engine, pipeline, bytes, format, {}, {.max_pixels = max_pixels});
  *megapixels += static_cast<double>(outcome.stats.pixels) / 1e6;
  IMGQ_RETURN_IF_ERROR(outcome.status);
  return write_file(item.output, outcome.encoded);
}

}  // namespace

BatchSummary run_batch(Engine& engine, const Pipeline& pipeline, const std::vector<BatchItem>& items,
                       std::ostream& errors, uint64_t max_pixels) {
  BatchSummary summary;
  const auto start = std::chrono::steady_clock::now();
  for (const BatchItem& item : items) {
    Status status = item.problem.ok() ? process_one(engine, pipeline, item, max_pixels, &summary.megapixels)
                                      : item.problem;
    if (status.ok()) {
      ++summary.succeeded;
    } else {
      ++summary.failed;
      errors << item.source.string() << ": error: " << status.message() << "\n" << std::flush;
    }
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace imgq::workers
