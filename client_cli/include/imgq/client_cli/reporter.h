// How `imgq submit` tells its user what happens: a live line on a terminal,
// one plain line per finished job otherwise, or one JSON object per line for
// every progress event and every result (--json). Failures always go to
// stderr as "FILE: error: MESSAGE".
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "imgq/schemas/messages.h"

namespace imgq::client {

struct JobView {
  std::string job;
  std::string file;    // the input
  std::string output;  // where the result goes
};

// Counts for the live line and the summary.
struct Tally {
  size_t done = 0, failed = 0, in_flight = 0;
  std::optional<size_t> total;    // known for a list of paths
  std::optional<size_t> waiting;  // files waiting in a watched folder
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void accepted(const JobView& job, uint32_t position) = 0;
  virtual void event(const JobView& job, const proto::JobState& state) = 0;
  virtual void succeeded(const JobView& job, const proto::JobStats& stats) = 0;
  virtual void failed(const JobView& job, const std::string& state, const std::string& message) = 0;
  // Called often; the terminal reporter redraws at most ten times a second.
  virtual void tick(const Tally& tally) = 0;
  virtual void finish(const Tally& tally, double seconds) = 0;
};

enum class ReportMode { kTerminal, kPlain, kJson };

// `command` starts the live line and the summary ("imgq", "imgq ingest").
std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream& out, std::ostream& err,
                                        std::string command = "imgq");

// "FILE: error: MESSAGE", the file named once when the message (from the
// broker or a group, which name it) starts with it already.
std::string error_line(const std::string& file, const std::string& message);

// What fits in `columns` terminal columns of `text` (UTF-8, never cut inside
// a character; one column per character).
std::string fit_columns(const std::string& text, size_t columns);

}  // namespace imgq::client
