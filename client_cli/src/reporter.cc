#include "imgq/client_cli/reporter.h"

#include <chrono>
#include <map>
#include <sstream>

#include "imgq/client_cli/client.h"

namespace imgq::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

class PlainReporter : public Reporter {
 public:
  PlainReporter(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}
  void accepted(const JobView&, uint32_t) override {}
  void event(const JobView&, const proto::JobState&) override {}
  void succeeded(const JobView& job, const proto::JobStats& stats) override {
    out_ << "done " << job.file << " -> " << job.output << " (" << stats.group << ", "
         << stats.run_seconds << " s)\n" << std::flush;
  }
  void failed(const JobView& job, const std::string&, const std::string& message) override {
    err_ << job.file << ": error: " << message << "\n" << std::flush;
  }
  void tick(size_t, size_t, size_t) override {}
  void finish(size_t done, size_t failed, size_t total, double seconds) override {
    err_ << "imgq: " << done << " of " << total << " done, " << failed << " failed in " << seconds << " s\n";
  }

 protected:
  std::ostream& out_;
  std::ostream& err_;
};

class TerminalReporter : public PlainReporter {
 public:
  using PlainReporter::PlainReporter;
  void event(const JobView& job, const proto::JobState& state) override {
    if (state.state == proto::kRunning) running_[job.job] = {job.file, state.done, state.total};
    else running_.erase(job.job);
  }
  void succeeded(const JobView& job, const proto::JobStats&) override { running_.erase(job.job); }
  void failed(const JobView& job, const std::string& state, const std::string& message) override {
    running_.erase(job.job);
    clear();
    PlainReporter::failed(job, state, message);
  }
  void tick(size_t done, size_t failed, size_t total) override {
    const auto now = SteadyClock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done + failed) / elapsed : 0;
    std::ostringstream line;
    line.precision(1);
    line << std::fixed << "imgq: " << done << "/" << total << " done";
    if (failed) line << ", " << failed << " failed";
    line << " | " << rate << " img/s";
    if (rate > 0 && done + failed < total) line << " | ETA " << static_cast<double>(total - done - failed) / rate << " s";
    int shown = 0;
    for (const auto& [id, r] : running_) {
      if (shown++ == 3) break;
      line << " | " << r.file.substr(r.file.size() > 24 ? r.file.size() - 24 : 0) << " " << r.done << "/" << r.total;
    }
    std::string text = line.str();
    if (text.size() > 150) text.resize(150);
    err_ << "\r\x1b[2K" << text << std::flush;
    drawn_ = true;
  }
  void finish(size_t done, size_t failed, size_t total, double seconds) override {
    clear();
    PlainReporter::finish(done, failed, total, seconds);
  }

 private:
  struct Running {
    std::string file;
    int done = 0;
    int total = 0;
  };
  void clear() {
    if (drawn_) err_ << "\r\x1b[2K" << std::flush;
    drawn_ = false;
  }
  std::map<std::string, Running> running_;
  SteadyClock::time_point start_ = SteadyClock::now();
  SteadyClock::time_point last_draw_{};
  bool drawn_ = false;
};

class JsonReporter : public Reporter {
 public:
  JsonReporter(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}
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
    err_ << job.file << ": error: " << message << "\n" << std::flush;
  }
  void tick(size_t, size_t, size_t) override {}
  void finish(size_t, size_t, size_t, double) override {}

 private:
  static std::string common(const JobView& job) {
    return "\"job\":" + json_quote(job.job) + ",\"file\":" + json_quote(job.file);
  }
  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace

std::unique_ptr<Reporter> make_reporter(ReportMode mode, std::ostream& out, std::ostream& err) {
  switch (mode) {
    case ReportMode::kTerminal: return std::make_unique<TerminalReporter>(out, err);
    case ReportMode::kJson: return std::make_unique<JsonReporter>(out, err);
    case ReportMode::kPlain: break;
  }
  return std::make_unique<PlainReporter>(out, err);
}

}  // namespace imgq::client
