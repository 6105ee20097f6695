// Fault injection for the reliability tests: the environment variable
//   IMGQ_FAULT=ACTION:POINT:RANK[:MILLISECONDS]
// makes rank RANK of a group (or every rank, for *), at POINT of every job
// (decode, scatter, compute, gather, encode; a whole-image job on one rank
// has decode, compute and encode), either `crash` (kill itself with SIGKILL, as the
// OOM killer would) or `sleep` for MILLISECONDS (a slow job, for deadlines
// and cancel). Unset, a fault point costs one branch. Read once.
#pragma once

#include <string_view>

namespace imgq::workers {

void fault_point(std::string_view point, int rank);

}  // namespace imgq::workers
