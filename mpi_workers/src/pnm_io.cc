#include "imgq/mpi_workers/pnm_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <opencv2/imgproc.hpp>

namespace imgq::workers {
namespace {

// Reads the next whitespace-separated decimal number. Comments are rare in
// binary PNM headers: their corner cases are left to OpenCV (nothing here).
std::optional<uint64_t> next_number(std::span<const uint8_t> head, size_t& at) {
  while (at < head.size() && std::isspace(head[at])) ++at;
  uint64_t value = 0;
  size_t digits = 0;
  while (at < head.size() && head[at] >= '0' && head[at] <= '9' && digits < 10) {
    value = value * 10 + (head[at] - '0');
    ++at;
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return value;
}

// OpenCV's in-memory order (BGR, native 16-bit) <-> the file's (RGB, big-endian).
cv::Mat to_file_order(const cv::Mat& rows) {
  cv::Mat out;
  if (rows.channels() == 3) {
    cv::cvtColor(rows, out, cv::COLOR_BGR2RGB);
  } else {
    out = rows.clone();
  }
  if (out.depth() == CV_16U) {
    auto* p = reinterpret_cast<uint16_t*>(out.data);
    for (size_t i = 0, n = out.total() * out.channels(); i < n; ++i) p[i] = static_cast<uint16_t>((p[i] >> 8) | (p[i] << 8));
  }
  return out;
}

void to_memory_order(cv::Mat& rows) {
  if (rows.depth() == CV_16U) {
    auto* p = reinterpret_cast<uint16_t*>(rows.data);
    for (size_t i = 0, n = rows.total() * rows.channels(); i < n; ++i) p[i] = static_cast<uint16_t>((p[i] >> 8) | (p[i] << 8));
  }
  if (rows.channels() == 3) cv::cvtColor(rows, rows, cv::COLOR_RGB2BGR);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::optional<PnmLayout> pnm_layout(std::span<const uint8_t> head) {
  if (head.size() < 2 || head[0] != 'P' || (head[1] != '5' && head[1] != '6')) return std::nullopt;
  size_t at = 2;
  const auto cols = next_number(head, at);
  const auto rows = next_number(head, at);
  const auto maxval = next_number(head, at);
  // Exactly one whitespace byte ends the header.
  if (!cols || !rows || !maxval || at >= head.size() || !std::isspace(head[at])) return std::nullopt;
  if (*cols == 0 || *rows == 0 || *cols > (1u << 30) || *rows > (1u << 30)) return std::nullopt;
  if (*maxval != 255 && *maxval != 65535) return std::nullopt;
  PnmLayout layout;
  layout.rows = static_cast<int>(*rows);
  layout.cols = static_cast<int>(*cols);
  layout.type = CV_MAKETYPE(*maxval == 255 ? CV_8U : CV_16U, head[1] == '6' ? 3 : 1);
  layout.data_offset = at + 1;
  return layout;
}

std::string pnm_header(int rows, int cols, int type) {
  const int code = CV_MAT_CN(type) == 3 ? 6 : 5;
  const int maxval = CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255;
  return "P" + std::to_string(code) + "\n" + std::to_string(cols) + " " + std::to_string(rows) + "\n" +
         std::to_string(maxval) + "\n";
}

PnmLayout pnm_layout_for(int rows, int cols, int type) {
  return {rows, cols, type, pnm_header(rows, cols, type).size()};
}

Result<cv::Mat> read_pnm_rows(const std::filesystem::path& path, const PnmLayout& layout, int begin, int count) {
  cv::Mat rows(count, layout.cols, layout.type);
  if (count == 0) return rows;
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::IoError("cannot open " + path.string() + ": " + std::strerror(errno));
  const size_t bytes = layout.row_bytes() * static_cast<size_t>(count);
  size_t done = 0;
  const off_t offset = static_cast<off_t>(layout.data_offset + layout.row_bytes() * static_cast<uint64_t>(begin));
  while (done < bytes) {
    const ssize_t n = ::pread(fd.get(), rows.data + done, bytes - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("reading " + path.string() + ": " + std::strerror(errno));
    if (n == 0) return Status::InvalidImage("PNM: the file is truncated (the pixel data ends early)");
    done += static_cast<size_t>(n);
  }
  to_memory_order(rows);
  return rows;
}

Status write_pnm_rows(const std::filesystem::path& path, const PnmLayout& layout, int begin, const cv::Mat& rows) {
  if (rows.rows == 0) return Status::Ok();
  const cv::Mat data = to_file_order(rows);
  const Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::IoError("cannot open " + path.string() + ": " + std::strerror(errno));
  const size_t bytes = layout.row_bytes() * static_cast<size_t>(data.rows);
  const off_t offset = static_cast<off_t>(layout.data_offset + layout.row_bytes() * static_cast<uint64_t>(begin));
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pwrite(fd.get(), data.data + done, bytes - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IoError("writing " + path.string() + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace imgq::workers
