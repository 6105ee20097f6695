// Fault injection for the reliability tests: the environment variable
//   IMGQ_FAULT=ACTION:POINT:RANK[:ARGUMENT]
// makes rank RANK of a group (or every rank, for *), at POINT of every job
// (decode, scatter, compute, gather, encode; a whole-image job on one rank
// has decode, compute and encode), either
//   crash          kill itself with SIGKILL, as the OOM killer would;
//   sleep:...:MS   sleep for MS milliseconds;
//   hold:...:FILE  a turnstile the test turns: the n-th hold on this process
//                  waits until FILE holds at least n bytes (a missing file
//                  holds 0), so a test releases jobs one by one by appending
//                  bytes, and holds each exactly where it needs it, whatever
//                  the timing.
// Unset, a fault point costs one branch. Read once.
#pragma once

#include <string_view>

namespace imgq::workers {

void fault_point(std::string_view point, int rank);

}  // namespace imgq::workers
