// File helpers the SQLite journal's files share (broker/src only).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "imgq/common/checksum.h"
#include "imgq/broker/sqlite_journal.h"
#include "imgq/common/status.h"

namespace imgq::broker {

inline std::string errno_text(int error) { return std::strerror(error); }

// ENOSPC and EDQUOT: the disk, not the request, is the problem; retry later.
inline Status write_error(const std::string& what, int error) {
  const std::string text = what + ": " + errno_text(error);
  return error == ENOSPC || error == EDQUOT ? Status::ResourceExhausted(text) : Status::Unavailable(text);
}

// Opens and fsyncs `path` (a folder: its names); on failure the errno too.
inline Status fsync_path(const std::filesystem::path& path, int flags, int* failed_errno = nullptr) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  int error = errno;
  Status status;
  if (fd < 0) {
    status = write_error("cannot open " + path.string(), error);
  } else {
    const int rc = ::fsync(fd);
    error = errno;
    ::close(fd);
    if (rc != 0) status = write_error("cannot sync " + path.string(), error);
  }
  if (!status.ok() && failed_errno != nullptr) *failed_errno = error;
  return status;
}

// DIR/journal.mark (JournalMark, sqlite_journal.h), 28 bytes.
constexpr size_t kMarkBytes = 28;  // "IMGQMRK1", commits, jobs, CRC-32 of the 24 before

inline std::string encode_mark(const JournalMark& mark) {
  std::string bytes = "IMGQMRK1";
  for (uint64_t v : {mark.commits, mark.jobs}) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(v >> (8 * i)));
  }
  const uint32_t sum = crc32_of(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(sum >> (8 * i)));
  return bytes;
}

// The mark, or nothing when absent, torn or not a mark.
inline bool decode_mark(std::string_view bytes, JournalMark* mark) {
  if (bytes.size() < kMarkBytes || bytes.substr(0, 8) != "IMGQMRK1") return false;
  auto le = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + static_cast<size_t>(i)]);
    return v;
  };
  if (le(24, 4) != crc32_of(bytes.substr(0, 24))) return false;
  mark->commits = le(8, 8);
  mark->jobs = le(16, 8);
  return true;
}

}  // namespace imgq::broker
