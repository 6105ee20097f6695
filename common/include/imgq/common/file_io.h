// Whole-file reads and crash-safe writes, with errors that say what failed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
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
// parent folders, so a reader never sees half a file. With `durable`, the
// file and its folder are fsynced before it returns, so the file survives a
// power cut (what must hold before anyone is told it is written).
Status write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes, bool durable = false);

// fsync of a file or a folder (a folder: so a rename or new name in it lasts).
Status sync_path(const std::filesystem::path& path);

// syncfs(2) of the file system holding `path`: everything written there so
// far is on disk, in one journal commit rather than one per file.
Status sync_file_system(const std::filesystem::path& path);

// Moves `from` to `to` without ever replacing a file at `to` (renameat2
// RENAME_NOREPLACE; across file systems a copy, fsync and unlink, with the
// same rule). Creates `to`'s folder. AlreadyExists is kConflict.
Status move_no_replace(const std::filesystem::path& from, const std::filesystem::path& to);

// The first of `wanted`, `STEM.1.EXT`, `STEM.2.EXT`, ... that `try_place`
// accepts; `try_place` returns kConflict for a name that is taken. Gives up
// (kConflict) after 10,000 names.
Result<std::filesystem::path> place_unique(const std::filesystem::path& wanted,
                                           const std::function<Status(const std::filesystem::path&)>& try_place);

// True when both files exist and hold the same bytes.
bool same_contents(const std::filesystem::path& a, const std::filesystem::path& b);

// Puts the finished file `from` (in `wanted`'s file system) at `wanted`,
// never replacing a different file: the first free of wanted, STEM.1.EXT,
// STEM.2.EXT, ...; a name that already holds the same bytes counts as
// placed (and `from` is removed). With `replace`, a file at `wanted` is
// replaced instead. Returns the name the file has now.
Result<std::filesystem::path> place_file(const std::filesystem::path& from, const std::filesystem::path& wanted,
                                         bool replace = false);

}  // namespace imgq
