#include "imgq/common/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

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

Status write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
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
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Status::IoError("cannot move the result into place at " + path.string());
  }
  return Status::Ok();
}

}  // namespace imgq
