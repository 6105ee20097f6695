// Whole-file reads and crash-safe writes, with errors that say what failed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "imgq/common/status.h"

namespace imgq {

Result<std::vector<uint8_t>> read_file(const std::filesystem::path& path);
// The same, as a string (what message frames hold), without a second copy.
Result<std::string> read_file_string(const std::filesystem::path& path);

// The bytes of `s` (an image in a string), as the image functions take them.
inline std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Writes `bytes` to `path` through a temporary file and a rename, creating
// parent folders, so a reader never sees half a file.
Status write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes);

}  // namespace imgq
