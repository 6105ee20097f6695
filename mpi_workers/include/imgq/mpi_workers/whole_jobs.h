// Small images run whole, one per rank, several at once (see
// worker_service.h). The leader hands a job to an idle follower with two
// point-to-point messages on the engine's communicator (a header with the
// pipeline, then the encoded image); the follower runs it with
// run_whole_job() between the engine's collective jobs, and answers with a
// header and the encoded result. Only the main thread of each rank calls
// these (MPI_THREAD_FUNNELED).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <mpi.h>

#include "imgq/mpi_workers/job_runner.h"

namespace imgq::workers {

struct WholeJob {
  uint64_t ticket = 0;  // the leader's number for it, echoed in the result
  std::string specs;    // the pipeline, one op spec per line
  std::string format;
  uint64_t max_pixels = 0;
  int64_t timeout_ms = 0;  // what is left of the job's deadline; 0 = none
  std::string_view image;
};

struct WholeResult {
  int rank = 0;
  uint64_t ticket = 0;
  JobOutcome outcome;
};

// The largest encoded image or result sent in one message (MPI counts are int).
inline constexpr uint64_t kMaxWholeMessageBytes = 0x7fff'ffff;

// The default --strip-above: 16 megapixels (a 4K frame is 8.3).
inline constexpr uint64_t kDefaultStripAbove = 16'000'000;

// Whether the encoded `image` runs whole on one rank of `engine`'s group
// (the policy: rank_scheduler.h).
bool runs_whole(const Engine& engine, std::span<const uint8_t> image, uint64_t strip_above);

// Leader: sends `job` to follower `rank`, which must be idle (it answers
// within a millisecond or so, so this returns once the image is across).
void send_whole_job(MPI_Comm comm, int rank, const WholeJob& job);

// Leader: a follower's finished job, if one is waiting.
std::optional<WholeResult> receive_whole_result(MPI_Comm comm);

// Follower: runs the job the leader sent, if one is waiting, and sends the
// result back. True when it ran one.
bool serve_whole_job(MPI_Comm comm);

}  // namespace imgq::workers
