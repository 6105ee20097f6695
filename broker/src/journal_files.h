// File helpers the SQLite journal's files share (broker/src only).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

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

}  // namespace imgq::broker
