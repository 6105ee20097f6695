// Child processes for end-to-end tests: each in a process group of its own
// (so a signal reaches an mpiexec job and all its ranks), output to a file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace imgq::testing {

class Subprocess {
 public:
  // Starts argv[0] (searched in PATH) with stdout and stderr into `log`.
  Subprocess(const std::vector<std::string>& argv, const std::string& log);
  ~Subprocess();  // SIGKILLs the group if still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  void signal_group(int sig);
  // Exit status, or nothing if still running after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  const std::string& log() const { return log_; }
  std::string output() const;

 private:
  pid_t pid_ = -1;
  std::string log_;
  std::optional<int> status_;
};

// Runs `command` with /bin/sh; its exit status and standard output. After
// kShellTimeoutSeconds it is killed and the status is 124 (timeout(1)).
inline constexpr int kShellTimeoutSeconds = 180;
std::pair<int, std::string> run_shell(const std::string& command);

// Waits until `done()` holds, checking every 20 ms; false after `timeout`.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    struct timespec ts{0, 20'000'000};
    nanosleep(&ts, nullptr);
  }
  return true;
}

}  // namespace imgq::testing
