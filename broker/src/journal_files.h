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

inline Status fsync_path(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("cannot open " + path.string() + ": " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return Status::Unavailable("cannot sync " + path.string() + ": " + errno_text(error));
  return Status::Ok();
}

// ENOSPC and EDQUOT: the disk, not the request, is the problem; retry later.
inline Status write_error(const std::string& what, int error) {
  const std::string text = what + ": " + errno_text(error);
  return error == ENOSPC || error == EDQUOT ? Status::ResourceExhausted(text) : Status::Unavailable(text);
}

}  // namespace imgq::broker
