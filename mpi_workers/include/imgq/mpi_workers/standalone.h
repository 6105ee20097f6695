// Standalone mode: the worker group processes local files without a broker,
// for batch schedulers and quick runs:
//   mpiexec -n N imgq-worker --input FILE_OR_DIR... --op SPEC... --out DIR
//
// Each result is written to DIR under its input's name, its path kept
// relative to the folder given (photos/a/b.jpg from --input photos becomes
// DIR/a/b.<ext>), the extension being --format or the input's own. A file
// that fails gets one line "FILE: error: MESSAGE" and the others go on.
// Which files and where their results go: common/batch_paths.h. Runs on
// the leader; the other ranks serve its Engine and its whole images.
//
// As with a broker: images of at most --strip-above pixels run whole, one
// per rank, several at once (the leader's own on a thread, so that its main
// thread keeps the followers fed); larger ones run in strips over every rank
// once the images in hand are done, a large binary PGM/PPM with every rank
// reading and writing its own rows of the files.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "imgq/common/batch_paths.h"
#include "imgq/common/image_header.h"
#include "imgq/common/status.h"
#include "imgq/mpi_workers/engine.h"
#include "imgq/mpi_workers/whole_jobs.h"

namespace imgq::workers {

struct BatchSummary {
  int succeeded = 0;
  int failed = 0;
  double seconds = 0;
  double megapixels = 0;
};

struct BatchOptions {
  uint64_t max_pixels = kDefaultMaxPixels;  // refused from the header before decode; 0 = no limit
  uint64_t strip_above = kDefaultStripAbove;  // 0: every image in strips, one at a time
};

// Processes every item with `engine` (the leader's), reporting each failure
// on `errors`. The exit status of standalone mode is 0 when failed == 0.
BatchSummary run_batch(Engine& engine, const Pipeline& pipeline,
                       const std::vector<BatchItem>& items, std::ostream& errors,
                       const BatchOptions& options = {});

}  // namespace imgq::workers
