// Standalone mode: the worker group processes local files without a broker,
// for batch schedulers and quick runs:
//   mpiexec -n N imgq-worker --input FILE_OR_DIR... --op SPEC... --out DIR
//
// Each result is written to DIR under its input's name, its path kept
// relative to the folder given (photos/a/b.jpg from --input photos becomes
// DIR/a/b.<ext>), the extension being --format or the input's own. A file
// that fails gets one line "FILE: error: MESSAGE" and the others go on.
// Which files and where their results go: common/batch_paths.h. Runs on
// the leader; the other ranks serve its Engine.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "imgq/common/batch_paths.h"
#include "imgq/common/image_header.h"
#include "imgq/common/status.h"
#include "imgq/mpi_workers/engine.h"

namespace imgq::workers {

struct BatchSummary {
  int succeeded = 0;
  int failed = 0;
  double seconds = 0;
  double megapixels = 0;
};

// Processes every item with `engine` (the leader's), reporting each failure
// on `errors`. The exit status of standalone mode is 0 when failed == 0.
// `max_pixels`: images declaring more are refused before decode (0 = no limit).
BatchSummary run_batch(Engine& engine, const Pipeline& pipeline,
                       const std::vector<BatchItem>& items, std::ostream& errors,
                       uint64_t max_pixels = kDefaultMaxPixels);

}  // namespace imgq::workers
