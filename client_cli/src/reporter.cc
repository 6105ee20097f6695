#include "imgq/client_cli/reporter.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <sstream>

#include "imgq/client_cli/client.h"
#include "imgq/common/text.h"

namespace imgq::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.3f" : "%.1f", s);
  return buf;
}

class PlainReporter : public Reporter {
 public:
  PlainReporter(std::ostream& out, std::ostream& err, std::string command, ReportStyle style)
      : out_(out), err_(err), command_(std::move(command)), style_(style) {}
  void accepted(const JobView&, uint32_t) override {}
  void event(const JobView&, const proto::JobState&) override {}
  void succeeded(const JobView& job, const proto::JobStats& stats) override {
    if (!style_.file_lines || style_.quiet) return;
    out_ << "done " << job.file << " -> " << job.output << " (" << stats.group << ", "
         << seconds_text(stats.run_seconds) << " s)\n" << std::flush;
  }
  void failed(const JobView& job, const std::string&, const std::string& message) override {
    clear_line();
    const std::string line = error_line(job.file, message);
    const std::string prefix = job.file + ": error: ";
    err_ << (line.rfind(prefix, 0) == 0 ? job.file + ": " + painted("error", style_.color) + line.substr(prefix.size())
                                        : line)
         << "\n" << std::flush;
  }
  void tick(const Tally&) override {}
  void finish(const Tally& t, double seconds) override {
    clear_line();
    if (style_.quiet) return;
    err_ << command_ << ": " << t.done;
    if (t.total) err_ << " of " << *t.total;
    err_ << (style_.no_wait ? " submitted" : " done") << ", " << t.failed << " failed";
    if (t.cancelled != 0) err_ << ", " << t.cancelled << " cancelled";
    err_ << " in " << seconds_text(seconds) << " s";
    if (t.in_flight != 0) err_ << ", " << t.in_flight << " in flight";
    if (t.waiting && *t.waiting != 0) err_ << ", " << *t.waiting << " waiting";
    std::string notes;
    if (t.kept != 0) notes += std::to_string(t.kept) + " result(s) already there kept (--skip-existing)";
    if (t.not_images != 0) {
      notes += (notes.empty() ? "" : "; ") + std::to_string(t.not_images) + " file(s) skipped: not images";
    }
    if (t.result_folders != 0) {
      notes += (notes.empty() ? "" : "; ") + std::to_string(t.result_folders) +
               " folder(s) of earlier results passed over";
    }
    if (!notes.empty()) err_ << " (" << notes << ")";
    err_ << "\n";
    if (style_.no_wait && t.done != 0) {
      err_ << command_ << ": they run at the broker; follow them with imgq jobs, fetch each result with "
           << "imgq fetch JOB -o DIR\n";
    }
    err_ << std::flush;
  }

 protected:
  std::ostream& out_;
  std::ostream& err_;
  std::string command_;
  ReportStyle style_;
};

size_t terminal_columns() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

class TerminalReporter : public PlainReporter {
 public:
  using PlainReporter::PlainReporter;
  void event(const JobView& job, const proto::JobState& state) override {
    if (state.state == proto::kRunning) {
      running_[job.job] = {std::filesystem::path(job.file).filename().string(), state.done, state.total};
    } else {
      running_.erase(job.job);
    }
  }
  void succeeded(const JobView& job, const proto::JobStats& stats) override {
    running_.erase(job.job);
    if (style_.file_lines) PlainReporter::succeeded(job, stats);  // stdout is no terminal: a line a file there
  }
  void failed(const JobView& job, const std::string& state, const std::string& message) override {
    running_.erase(job.job);
    PlainReporter::failed(job, state, message);
  }
  void clear_line() override {
    if (drawn_) err_ << "\r\x1b[2K" << std::flush;
    drawn_ = false;
  }
  size_t columns() const override { return terminal_columns(); }
  void status(const std::string& text) override {
    if (style_.quiet) return;
    err_ << "\r\x1b[2K" << fit_columns(text, terminal_columns() - 1) << std::flush;
    drawn_ = true;
  }
  void tick(const Tally& t) override {
    if (style_.quiet) return;
    const auto now = SteadyClock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    // The rate over the last 10 s, so a long-running ingest shows today's speed.
    const size_t finished = t.done + t.failed;
    samples_.emplace_back(now, finished);
    while (samples_.size() > 2 && now - samples_[1].first > std::chrono::seconds(10)) samples_.pop_front();
    const double span = std::chrono::duration<double>(now - samples_.front().first).count();
    const double rate = span > 0.5 ? static_cast<double>(finished - samples_.front().second) / span : 0;
    std::ostringstream line;
    line.precision(1);
    line << std::fixed << command_ << ": " << t.done;
    if (t.total) line << "/" << *t.total;
    line << (style_.no_wait ? " submitted" : " done");
    if (t.failed) line << ", " << t.failed << " failed";
    if (!t.total || t.waiting) line << ", " << t.in_flight << " in flight";
    if (t.waiting) line << ", " << *t.waiting << " waiting";
    line << " | " << rate << " img/s";
    if (t.total && rate > 0 && finished < *t.total) {
      line << " | ETA " << static_cast<double>(*t.total - finished) / rate << " s";
    }
    for (const auto& [id, r] : running_) {
      line << " | " << r.file;
      if (r.total > 0) line << " " << r.done << "/" << r.total;
    }
    // One column short of the width, so the line never wraps.
    err_ << "\r\x1b[2K" << fit_columns(line.str(), terminal_columns() - 1) << std::flush;
    drawn_ = true;
  }

 private:
  struct Running {
    std::string file;
    int done = 0;
    int total = 0;
  };
  std::map<std::string, Running> running_;
  std::deque<std::pair<SteadyClock::time_point, size_t>> samples_;
  SteadyClock::time_point last_draw_{};
  bool drawn_ = false;
};

class JsonReporter : public Reporter {
 public:
  JsonReporter(std::ostream& out, std::ostream& err, ReportStyle style) : out_(out), err_(err), style_(style) {}
  void accepted(const JobView& job, uint32_t position) override {
    out_ << "{\"event\":\"accepted\"," << common(job) << ",\"state\":\"queued\",\"position\":" << position
         << ",\"done\":0,\"total\":0}\n" << std::flush;
  }
  void event(const JobView& job, const proto::JobState& s) override {
    out_ << "{\"event\":\"progress\"," << common(job) << ",\"state\":" << json_quote(s.state)
         << ",\"done\":" << s.done << ",\"total\":" << s.total << ",\"position\":" << s.position
         << ",\"group\":" << json_quote(s.group) << ",\"attempts\":" << s.attempts
         << ",\"message\":" << json_quote(s.message) << "}\n" << std::flush;
  }
  void succeeded(const JobView& job, const proto::JobStats& st) override {
    out_ << "{\"event\":\"result\"," << common(job) << ",\"state\":\"done\",\"done\":1,\"total\":1"
         << ",\"output\":" << json_quote(job.output) << ",\"group\":" << json_quote(st.group)
         << ",\"wait_seconds\":" << st.wait_seconds << ",\"run_seconds\":" << st.run_seconds
         << ",\"pixels\":" << st.pixels << "}\n" << std::flush;
  }
  void failed(const JobView& job, const std::string& state, const std::string& message) override {
    out_ << "{\"event\":\"result\"," << common(job) << ",\"state\":" << json_quote(state)
         << ",\"done\":0,\"total\":1,\"message\":" << json_quote(message) << "}\n" << std::flush;
    if (!style_.quiet) err_ << error_line(job.file, message) << "\n" << std::flush;
  }
  void tick(const Tally&) override {}
  void finish(const Tally&, double) override {}

 private:
  static std::string common(const JobView& job) {
    return "\"job\":" + json_quote(job.job) + ",\"file\":" + json_quote(job.file);
  }
  std::ostream& out_;
  std::ostream& err_;
  ReportStyle style_;
};

}  // namespace

std::string error_line(const std::string& file, const std::string& message) {
  const std::string prefix = file + ": ";
  return prefix + "error: " + (message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message);
}

std::string fit_columns(const std::string& text, size_t columns) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte
    if (chars++ == columns) return text.substr(0, i);
  }
  return text;
}

std::string message_line(std::string_view kind, const std::string& message, bool color, size_t columns) {
  // Wrapped as if uncoloured: the colour's escapes take no columns.
  const std::string head = kind.empty() ? std::string() : std::string(kind) + ": ";
  const std::string prefix = "imgq: " + head;
  const std::string wrapped = wrap_words(prefix + message, columns == 0 ? 0 : columns - 1);
  const bool kept = wrapped.rfind(prefix, 0) == 0;  // not broken right after the prefix
  return "imgq: " + (kind.empty() ? std::string() : painted(kind, color)) +
         (kept ? wrapped.substr(prefix.size()) : message) + "\n";
}

std::string painted(std::string_view kind, bool color) {
  if (!color) return std::string(kind) + ": ";
  const char* code = kind == "error" ? "\x1b[1;31m" : kind == "warning" ? "\x1b[33m" : "\x1b[1m";
  return std::string(code) + std::string(kind) + ":\x1b[0m ";
}

std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream& out, std::ostream& err, std::string command,
                                        ReportStyle style) {
  switch (mode) {
    case ReportMode::kTerminal: return std::make_unique<TerminalReporter>(out, err, std::move(command), style);
    case ReportMode::kJson: return std::make_unique<JsonReporter>(out, err, style);
    case ReportMode::kPlain: break;
  }
  return std::make_unique<PlainReporter>(out, err, std::move(command), style);
}

}  // namespace imgq::client
