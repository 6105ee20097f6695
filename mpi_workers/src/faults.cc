#include "imgq/mpi_workers/faults.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>

namespace imgq::workers {
namespace {

constexpr int kEveryRank = -2;

struct Fault {
  std::string action;  // empty: none
  std::string point;
  int rank = -1;  // kEveryRank for "*"
  int milliseconds = 0;
  std::string gate;  // hold: the file whose existence opens the gate
};

Fault parse_fault() {
  Fault fault;
  const char* text = std::getenv("IMGQ_FAULT");
  if (text == nullptr || *text == '\0') return fault;
  std::istringstream in(text);
  std::string rank, argument;
  std::getline(in, fault.action, ':');
  std::getline(in, fault.point, ':');
  std::getline(in, rank, ':');
  std::getline(in, argument);
  try {
    fault.rank = rank == "*" ? kEveryRank : std::stoi(rank);
    if (fault.action == "hold") {
      fault.gate = argument;
    } else {
      fault.milliseconds = argument.empty() ? 0 : std::stoi(argument);
    }
  } catch (const std::exception&) {
    fault.action.clear();
  }
  return fault;
}

}  // namespace

void fault_point(std::string_view point, int rank) {
  static const Fault fault = parse_fault();
  if (fault.action.empty() || fault.point != point || (fault.rank != rank && fault.rank != kEveryRank)) return;
  if (fault.action == "crash") {
    ::kill(::getpid(), SIGKILL);
  } else if (fault.action == "sleep") {
    std::this_thread::sleep_for(std::chrono::milliseconds(fault.milliseconds));
  } else if (fault.action == "hold") {
    // Polled: the turnstile is a test device, and a 5 ms poll is far below
    // any timeout the tests use. Atomic: a leader runs whole jobs on a thread.
    static std::atomic<uintmax_t> holds{0};
    const uintmax_t needed = ++holds;
    std::error_code ec;
    while (std::filesystem::file_size(fault.gate, ec) < needed || ec) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

}  // namespace imgq::workers
