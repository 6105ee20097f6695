// Logging setup shared by every imgq executable: spdlog to stderr, with the
// process role (and MPI rank, where there is one) in each line, so that the
// interleaved output of an mpiexec job stays readable.
#pragma once

#include <string_view>

namespace imgq {

// Configures the default spdlog logger. `level` is one of trace, debug, info,
// warn, error, off; an unknown name keeps "info".
void init_logging(std::string_view role, std::string_view level = "info");

}  // namespace imgq
