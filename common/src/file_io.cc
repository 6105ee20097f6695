#include "imgq/common/file_io.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <vector>

namespace imgq {

namespace {

template <typename Bytes>
Result<Bytes> read_whole(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Status::IoError("is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::filesystem::exists(path, ec) ? Status::IoError("cannot open: " + std::string(std::strerror(errno)))
                                             : Status::NotFound("no such file");
  }
  // One read of the whole file: iterating a stream byte by byte costs seconds
  // on a 200 MB image (bench/RESULTS.md).
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::IoError("cannot read the size: " + ec.message());
  Bytes bytes(static_cast<size_t>(size), 0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<size_t>(in.gcount()) != bytes.size()) return Status::IoError("read failed (the file changed size?)");
  return bytes;
}

}  // namespace

Result<std::vector<uint8_t>> read_file(const std::filesystem::path& path) {
  return read_whole<std::vector<uint8_t>>(path);
}

Result<std::string> read_file_string(const std::filesystem::path& path) { return read_whole<std::string>(path); }

Status write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes, bool durable) {
  std::error_code ec;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) return Status::IoError("cannot create folder " + path.parent_path().string() + ": " + ec.message());
  }
  std::filesystem::path tmp = path;
  tmp += ".part" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::IoError("cannot write " + tmp.string() + ": " + std::strerror(errno));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
      std::filesystem::remove(tmp, ec);
      return Status::IoError("writing " + path.string() + " failed: " + std::strerror(errno));
    }
  }
  if (durable) {
    if (Status synced = sync_path(tmp); !synced.ok()) {
      std::filesystem::remove(tmp, ec);
      return synced;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Status::IoError("cannot move the result into place at " + path.string() + ": " + ec.message());
  }
  if (durable) return sync_path(path.has_parent_path() ? path.parent_path() : std::filesystem::path("."));
  return Status::Ok();
}

Status sync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + path.string() + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // A folder on a file system that cannot sync folders says EINVAL: nothing to do.
  if (rc != 0 && error != EINVAL) return Status::IoError("cannot sync " + path.string() + ": " + std::strerror(error));
  return Status::Ok();
}

Status sync_file_system(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + path.string() + " to sync it: " + std::strerror(errno));
  const int rc = ::syncfs(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return Status::IoError("cannot sync the file system of " + path.string() + ": " + std::strerror(error));
  return Status::Ok();
}

namespace {

// Copies `from` to a temporary name beside `to`, synced, then links it in
// without replacing anything, then removes `from`.
Status copy_no_replace(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::path tmp = to;
  tmp += ".part" + std::to_string(::getpid());
  std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return Status::IoError("cannot copy " + from.string() + " to " + to.string() + ": " + ec.message());
  if (Status s = sync_path(tmp); !s.ok()) {
    std::filesystem::remove(tmp, ec);
    return s;
  }
  // link(2) never replaces: the same rule as RENAME_NOREPLACE.
  const int rc = ::link(tmp.c_str(), to.c_str());
  const int error = errno;
  std::filesystem::remove(tmp, ec);
  if (rc != 0) {
    if (error == EEXIST) return Status(StatusCode::kConflict, to.string() + " exists");
    return Status::IoError("cannot create " + to.string() + ": " + std::strerror(error));
  }
  if (Status s = sync_path(to.parent_path()); !s.ok()) return s;
  std::filesystem::remove(from, ec);
  if (ec) return Status::IoError("copied to " + to.string() + " but cannot remove " + from.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Status move_no_replace(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  if (to.has_parent_path()) {
    std::filesystem::create_directories(to.parent_path(), ec);
    if (ec) return Status::IoError("cannot create folder " + to.parent_path().string() + ": " + ec.message());
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return Status::Ok();
  const int error = errno;
  if (error == EEXIST) return Status(StatusCode::kConflict, to.string() + " exists");
  if (error == EXDEV) return copy_no_replace(from, to);
  if (error == ENOENT && !std::filesystem::exists(from, ec)) return Status::NotFound(from.string() + " is gone");
  return Status::IoError("cannot move " + from.string() + " to " + to.string() + ": " + std::strerror(error));
}

Result<std::filesystem::path> place_unique(const std::filesystem::path& wanted,
                                           const std::function<Status(const std::filesystem::path&)>& try_place) {
  const std::filesystem::path stem = wanted.parent_path() / wanted.stem();
  const std::string ext = wanted.extension().string();
  for (int n = 0; n < 10'000; ++n) {
    std::filesystem::path name = n == 0 ? wanted : std::filesystem::path(stem.string() + "." + std::to_string(n) + ext);
    Status s = try_place(name);
    if (s.ok()) return name;
    if (s.code() != StatusCode::kConflict) return s;
  }
  return Status(StatusCode::kConflict, "10,000 files named like " + wanted.string() + " exist already");
}

bool same_contents(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec1, ec2;
  const auto sa = std::filesystem::file_size(a, ec1), sb = std::filesystem::file_size(b, ec2);
  if (ec1 || ec2 || sa != sb) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  std::vector<char> ba(1 << 16), bb(1 << 16);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() || std::memcmp(ba.data(), bb.data(), static_cast<size_t>(fa.gcount())) != 0) {
      return false;
    }
  }
  return true;
}

Result<std::filesystem::path> place_file(const std::filesystem::path& from, const std::filesystem::path& wanted,
                                         bool replace) {
  std::error_code ec;
  if (replace) {
    std::filesystem::rename(from, wanted, ec);
    if (ec) return Status::IoError("cannot put the result at " + wanted.string() + ": " + ec.message());
    return wanted;
  }
  bool already = false;
  auto placed = place_unique(wanted, [&](const std::filesystem::path& name) -> Status {
    std::error_code e;
    if (std::filesystem::exists(name, e)) {
      if (same_contents(from, name)) {
        already = true;
        return Status::Ok();
      }
      return Status(StatusCode::kConflict, name.string() + " exists");
    }
    return move_no_replace(from, name);
  });
  if (!placed.ok() || already) std::filesystem::remove(from, ec);
  return placed;
}

}  // namespace imgq
