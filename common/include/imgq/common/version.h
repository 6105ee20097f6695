// What every imgq executable answers to --version, and the version the broker
// and groups report in their pong and hello: one place, filled in by CMake
// (the project's version, and the commit it was built from where known).
#pragma once

#include <string>
#include <string_view>

namespace imgq {

// The release, e.g. "0.1.0".
std::string_view version();

// The commit the build came from (`git describe --always --dirty`, or the
// IMGQ_COMMIT CMake variable, e.g. from an image's build argument), or
// "unknown" when built outside a checkout.
std::string_view commit();

// "PROGRAM 0.1.0 (protocol 1, commit 3f2a9c1)": the first line of --version.
std::string version_line(std::string_view program, int protocol_version);

}  // namespace imgq
