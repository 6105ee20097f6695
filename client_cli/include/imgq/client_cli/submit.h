// `imgq submit`: every image under the given paths, or named by a list
// (`--from-file`, a file or `-` for stdin, read as it comes), becomes one job.
// At most `window` jobs are in flight; files are read when sent, and a list
// is read only as the window has room, so 100,000 images need memory for
// the window only. Results are written under the output folder as they
// arrive (common/batch_paths.h names them), and never over a file: not over
// an input, not over a different file already there (the result then gets
// NAME.1.EXT; the same bytes already there count as written) unless
// `overwrite`; `skip_existing` does not send an image whose result is there.
#pragma once

#include <csignal>
#include <string>
#include <vector>

#include "imgq/client_cli/client.h"
#include "imgq/client_cli/reporter.h"

namespace imgq::client {

inline constexpr const char* kDefaultOut = "imgq-out";

struct SubmitOptions {
  std::string broker = kDefaultBroker;
  std::string progress;  // empty: default_progress_endpoint(broker)
  std::vector<std::string> ops;
  std::vector<std::string> paths;
  // A file with one path per line ("-": stdin), instead of or besides
  // `paths`. A listed file under the current folder keeps its relative path
  // under `out_dir`; any other its name. Folders in a list are skipped (and
  // counted): `find DIR` lists them along with their files.
  std::string from_file;
  bool null_separated = false;  // the list's paths end with NUL (find -print0)
  // Where results go: the default is a folder of its own in the current
  // one, so the first command anyone types cannot touch their files.
  std::string out_dir = kDefaultOut;
  bool overwrite = false;      // replace a different file at a result's name (never an input)
  bool skip_existing = false;  // an image whose result is there already is not sent (resumes a run)
  std::string format;  // empty: batch_paths.h's output_extension()
  int priority = 4;
  size_t window = 16;  // jobs in flight (with no_wait: submits not yet accepted)
  bool no_wait = false;
  Millis timeout{60'000};  // longest the broker may stay silent before imgq gives up
  // Set by a signal handler: stop at once (no new submits), cancel the
  // run's unfinished jobs (or, with `detach`, list them), exit 130.
  const volatile std::sig_atomic_t* interrupted = nullptr;
  bool detach = false;
  uint32_t job_timeout_ms = 0;  // longest run of one attempt; 0 = the broker's --job-timeout
  ReportMode mode = ReportMode::kPlain;
  ReportStyle style;
  CurveOptions curve;
  // Local files: send each image's absolute path and output path instead of
  // its bytes; the worker group reads and writes the files itself (it must
  // see the same paths and allow them with --allow-paths). For large images
  // on one host or a shared file system: no pixels cross a socket.
  bool local = false;
};

// If the broker restarts while jobs are in flight (its pong carries a new
// instance id), the jobs not yet finished are submitted again under the same
// idempotency keys: a durable broker answers with the same job (and its
// result, if it finished meanwhile), a memory-only one runs it again; each
// image is written once. Every result is acknowledged (`result_ack`) once
// written and synced, so the broker keeps it until then.
//
// Exit status: 0 all succeeded, 1 some failed, 2 usage error (reported
// before anything is sent: no op, a bad op or format, no image in an input,
// an output folder that cannot be written), 3 the broker could not be
// reached, or stayed silent, for `timeout`, or refused this client's key;
// 130 interrupted (the run's unfinished jobs cancelled). On 3, and on 130
// with `detach` or `no_wait`, the jobs accepted and not finished are listed
// ("submitted FILE as job ID"; with --json, {"event":"unfinished",...}), for
// `imgq status` and `imgq fetch` later.
int run_submit(const SubmitOptions& options, std::ostream& out, std::ostream& err);

}  // namespace imgq::client
