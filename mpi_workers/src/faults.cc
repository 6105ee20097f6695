#include "imgq/mpi_workers/faults.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
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
};

Fault parse_fault() {
  Fault fault;
  const char* text = std::getenv("IMGQ_FAULT");
  if (text == nullptr || *text == '\0') return fault;
  std::istringstream in(text);
  std::string rank, ms;
  std::getline(in, fault.action, ':');
  std::getline(in, fault.point, ':');
  std::getline(in, rank, ':');
  std::getline(in, ms, ':');
  try {
    fault.rank = rank == "*" ? kEveryRank : std::stoi(rank);
    fault.milliseconds = ms.empty() ? 0 : std::stoi(ms);
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
  }
}

}  // namespace imgq::workers
