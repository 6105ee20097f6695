// How `imgq submit` tells its user what happens: a live line on stderr when
// it is a terminal, a line per finished file on stdout whenever stdout is not
// a terminal (or with -v), or one JSON object per line for every progress
// event and every result (--json). Failures always go to stderr as
// "FILE: error: MESSAGE"; other messages clear the live line first, which is
// drawn again after.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "imgq/common/text.h"
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
  size_t cancelled = 0;           // this run's jobs it cancelled (Ctrl-C)
  size_t kept = 0;                // results already there, not redone (--skip-existing)
  size_t not_images = 0;          // files in the folders given that are no images
  size_t result_folders = 0;      // folders of earlier results passed over
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
  // Before anything else is written to stderr: the live line is cleared (and
  // drawn again at the next tick).
  virtual void clear_line() {}
  // What the run is doing before its first job ("connecting to ..."): shown
  // on the live line only.
  virtual void status(const std::string& /*text*/) {}
  // The terminal's width, to wrap messages at words (0: not a terminal).
  virtual size_t columns() const { return 0; }
};

enum class ReportMode { kTerminal, kPlain, kJson };

struct ReportStyle {
  bool file_lines = true;  // a line per finished file on stdout (kTerminal: only when asked, e.g. stdout redirected)
  bool quiet = false;      // -q: failures only, no lines per file, no summary
  bool color = false;      // "error:" and "warning:" in colour (a terminal, and NO_COLOR unset)
  bool no_wait = false;    // the run ends once its jobs are accepted: the summary says "submitted"
};

// `command` starts the live line and the summary ("imgq", "imgq ingest").
std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream& out, std::ostream& err,
                                        std::string command = "imgq", ReportStyle style = {});

// "error: TEXT" / "warning: TEXT" in red / yellow when `color`.
std::string painted(std::string_view kind, bool color);

// "imgq: error: MESSAGE" (`kind` "error" or "warning"; empty: none), wrapped
// at words to `columns` (0: not wrapped) as if uncoloured, with a newline.
std::string message_line(std::string_view kind, const std::string& message, bool color, size_t columns);

// "FILE: error: MESSAGE", the file named once when the message (from the
// broker or a group, which name it) starts with it already.
std::string error_line(const std::string& file, const std::string& message);

// What fits in `columns` terminal columns of `text` (UTF-8, never cut inside
// a character; one column per character).
std::string fit_columns(const std::string& text, size_t columns);


}  // namespace imgq::client
