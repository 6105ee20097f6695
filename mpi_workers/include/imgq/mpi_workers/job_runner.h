// One image through the group: decode, run the pipeline on every rank,
// encode; with the time each step took. Shared by standalone mode and the
// broker-connected leader. run_job is leader only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "imgq/common/image_header.h"
#include "imgq/common/status.h"
#include "imgq/mpi_workers/engine.h"
#include "imgq/mpi_workers/pnm_io.h"
#include "imgq/schemas/messages.h"

namespace imgq::workers {

// (steps done, steps in all, the step just finished: "decode", "stage 2/3", "encode").
using ProgressFn = std::function<void(int done, int total, const std::string& step)>;

struct JobOutcome {
  Status status;
  std::vector<uint8_t> encoded;  // the result, when status is OK and not written
  bool written = false;          // run_job wrote the result to JobOutput::file already
  proto::JobStats stats;         // decode/scatter/compute/gather/encode, pixels, imbalance
  std::vector<double> rank_compute_seconds;  // in strips: each rank's compute, summed over stages
};

// Limits and stopping.
struct JobControl {
  uint64_t max_pixels = kDefaultMaxPixels;  // refused from the header before decode; 0 = no limit
  // Asked before decode, at every stage boundary and before encode; a non-OK
  // status ends the job with it.
  Interrupt interrupt;
};

// The job's image: its encoded bytes, or a binary PGM/PPM file on a file
// system every rank sees, each rank reading its own rows (rows_from_file()
// says when to take that).
struct EncodedImage {
  std::span<const uint8_t> bytes;
};
struct LocalRows {
  std::filesystem::path path;
  PnmLayout layout;  // pnm_layout() of the file's header
};
using JobInput = std::variant<EncodedImage, LocalRows>;

// The result: encoded as `format`. With `file` (LocalRows only), the ranks
// write their rows of a PGM/PPM result into it themselves when the paths
// allow (job_paths.h), through a temporary file and a rename; the outcome
// is then `written`, else `encoded`.
struct JobOutput {
  std::string format;
  std::filesystem::path file;
};

// One image through the group on the paths job_paths.h chooses: decode,
// every stage, encode. Leader only; a LocalRows path already checked.
JobOutcome run_job(Engine& engine, const Pipeline& pipeline, const JobInput& input, const JobOutput& output,
                   const ProgressFn& progress = {}, const JobControl& control = {});

// The layout of `input` when run_job should take it as LocalRows: a binary
// PGM/PPM of more than `strip_above` pixels on a group whose decode path
// would be DecodePath::kLocalRows. Otherwise nothing: read the file and
// decode it.
std::optional<PnmLayout> rows_from_file(const Engine& engine, const Pipeline& pipeline,
                                        const std::filesystem::path& input, uint64_t strip_above);

// One image whole on the calling process and thread, no MPI: decode, the
// pipeline op by op (apply_op, the reference itself, so exact by
// construction), encode. `rank` is for fault points and stats only. What a
// group runs for small images, one per rank, several at once. Thread-safe.
JobOutcome run_whole_job(const Pipeline& pipeline, std::span<const uint8_t> image, const std::string& format,
                         int rank, const JobControl& control = {});

}  // namespace imgq::workers
