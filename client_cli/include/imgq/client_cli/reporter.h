// How `imgq submit` tells its user what happens: a live line on a terminal,
// one plain line per finished job otherwise, or one JSON object per line for
// every progress event and every result (--json). Failures always go to
// stderr as "FILE: error: MESSAGE".
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "imgq/schemas/messages.h"

namespace imgq::client {

struct JobView {
  std::string job;
  std::string file;    // the input
  std::string output;  // where the result goes
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void accepted(const JobView& job, uint32_t position) = 0;
  virtual void event(const JobView& job, const proto::JobState& state) = 0;
  virtual void succeeded(const JobView& job, const proto::JobStats& stats) = 0;
  virtual void failed(const JobView& job, const std::string& state, const std::string& message) = 0;
  // Called often; the terminal reporter redraws at most ten times a second.
  virtual void tick(size_t done, size_t failed, size_t total) = 0;
  virtual void finish(size_t done, size_t failed, size_t total, double seconds) = 0;
};

enum class ReportMode { kTerminal, kPlain, kJson };

std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream& out, std::ostream& err);

}  // namespace imgq::client
