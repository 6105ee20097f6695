// `imgq ingest`: a folder as a queue. Every image that is complete in the
// inbox (closed after writing, or moved in; and present at start) becomes a
// job; its result goes under `out` (relative path kept, never replacing a
// different file), then the original moves to `done` (or is deleted), or on
// failure to `failed` with NAME.error.txt beside it. The inbox holds only
// what is still to do, so its state survives anything: a restart takes what
// is there, and the idempotency key of each file (its place in the inbox,
// size, times and inode, and the request) makes a job accepted before a
// crash, of this client or of the broker, answer again instead of running
// twice.
#pragma once

#include <csignal>
#include <ostream>
#include <string>
#include <vector>

#include "imgq/client_cli/client.h"
#include "imgq/client_cli/reporter.h"

namespace imgq::client {

struct IngestOptions {
  std::string broker = kDefaultBroker;
  std::string progress;
  std::vector<std::string> ops;
  std::string inbox;
  std::string out_dir;
  std::string done_dir;    // empty: INBOX.done beside the inbox (unless delete_done)
  std::string failed_dir;  // empty: INBOX.failed beside the inbox
  bool delete_done = false;
  std::string format;      // empty: each input's own
  int priority = 4;
  size_t window = 16;
  bool local = false;
  uint32_t job_timeout_ms = 0;
  Millis timeout{60'000};  // a silent broker is waited for; this long between warnings
  // A full walk of the inbox this often, besides inotify (a safety net, and
  // what sees files written from other hosts on a network file system); 0: never.
  double rescan_seconds = 60;
  // Signals seen (a handler adds one per signal): the first stops taking
  // files and waits for those in flight, the second leaves them.
  const volatile std::sig_atomic_t* interrupted = nullptr;
  ReportMode mode = ReportMode::kPlain;
  ReportStyle style;
  CurveOptions curve;
};

// Runs until interrupted. Exit status: 0 after a signal, 2 a usage error
// (folders that do not exist or nest wrongly), 3 refused by the broker
// (CURVE). A broker that cannot be reached is waited for, with a warning.
int run_ingest(const IngestOptions& options, std::ostream& out, std::ostream& err);

}  // namespace imgq::client
