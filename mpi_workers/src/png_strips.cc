#include "imgq/mpi_workers/png_strips.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "imgq/mpi_workers/image_io.h"

namespace imgq::workers {
namespace {

constexpr int kLevel = Z_BEST_SPEED;  // OpenCV's default
constexpr int kStrategy = Z_RLE;      // OpenCV's default
constexpr uint8_t kFilterSub = 1;
// IDAT chunks are cut at this size (the format allows up to 2^31 - 1).
constexpr size_t kMaxChunk = size_t{1} << 28;

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// One chunk: length, type, data, CRC of type and data.
void put_chunk(std::vector<uint8_t>& out, const char (&type)[5], const uint8_t* data, size_t size) {
  put_be32(out, static_cast<uint32_t>(size));
  const size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data, data + size);
  put_be32(out, static_cast<uint32_t>(crc32(0L, out.data() + type_at, static_cast<uInt>(4 + size))));
}

// Row `y` of `rows` in the file's order (RGB(A), big-endian samples),
// SUB-filtered, after its filter-type byte.
void filter_row(const cv::Mat& rows, int y, std::vector<uint8_t>& line) {
  const int channels = rows.channels();
  const bool wide = rows.depth() == CV_16U;
  const size_t bpp = static_cast<size_t>(channels) * (wide ? 2 : 1);
  const size_t cols = static_cast<size_t>(rows.cols);
  const size_t width = cols * bpp;
  line.resize(1 + width);
  line[0] = kFilterSub;
  uint8_t* raw = line.data() + 1;
  if (!wide) {
    const uint8_t* src = rows.ptr<uint8_t>(y);
    if (channels == 1) {
      std::memcpy(raw, src, width);
    } else {
      for (size_t x = 0; x < cols; ++x, src += channels, raw += channels) {
        raw[0] = src[2];  // BGR(A) -> RGB(A)
        raw[1] = src[1];
        raw[2] = src[0];
        if (channels == 4) raw[3] = src[3];
      }
      raw = line.data() + 1;
    }
  } else {
    const uint16_t* src = rows.ptr<uint16_t>(y);
    auto put = [](uint8_t* d, uint16_t v) {
      d[0] = static_cast<uint8_t>(v >> 8);  // big-endian samples
      d[1] = static_cast<uint8_t>(v);
    };
    for (size_t x = 0; x < cols; ++x, src += channels, raw += bpp) {
      if (channels == 1) {
        put(raw, src[0]);
        continue;
      }
      put(raw, src[2]);
      put(raw + 2, src[1]);
      put(raw + 4, src[0]);
      if (channels == 4) put(raw + 6, src[3]);
    }
    raw = line.data() + 1;
  }
  // SUB: each byte minus the byte one pixel to its left (backwards, in place).
  for (size_t i = width; i-- > bpp;) raw[i] = static_cast<uint8_t>(raw[i] - raw[i - bpp]);
}

}  // namespace

struct PngDeflater::State {
  z_stream z{};
  bool initialised = false;
  bool ok = true;
  bool finished = false;
  PngSegment segment;
  std::vector<uint8_t> line;

  // Feeds `size` bytes to deflate with `flush`, growing the output.
  bool pump(const uint8_t* data, size_t size, int flush) {
    std::string& out = segment.deflated;
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = static_cast<uInt>(size);
    do {
      const size_t room = std::max<size_t>(deflateBound(&z, static_cast<uLong>(size)), 64);
      const size_t at = out.size();
      out.resize(at + room);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + at);
      z.avail_out = static_cast<uInt>(room);
      const int rc = deflate(&z, flush);
      out.resize(at + room - z.avail_out);
      if (rc == Z_STREAM_ERROR) return false;
      if (flush == Z_FINISH && rc == Z_STREAM_END) return true;
    } while (z.avail_in > 0 || z.avail_out == 0);
    return flush != Z_FINISH;
  }
};

PngDeflater::PngDeflater() : state_(std::make_unique<State>()) {
  // Raw deflate (negative window bits): the zlib header and checksum are
  // the leader's, once for the whole stream.
  state_->initialised = deflateInit2(&state_->z, kLevel, Z_DEFLATED, -15, 8, kStrategy) == Z_OK;
  state_->ok = state_->initialised;
}

PngDeflater::~PngDeflater() {
  if (state_->initialised) deflateEnd(&state_->z);
}

Status PngDeflater::add(const cv::Mat& rows) {
  if (!can_store_type("png", rows.type())) return Status::Unsupported("PNG cannot store this image type");
  State& st = *state_;
  if (st.finished) return Status::Internal("PngDeflater::add after finish");
  for (int y = 0; y < rows.rows && st.ok; ++y) {
    filter_row(rows, y, st.line);
    st.segment.adler = static_cast<uint32_t>(adler32(st.segment.adler, st.line.data(), static_cast<uInt>(st.line.size())));
    st.segment.raw_bytes += st.line.size();
    st.ok = st.pump(st.line.data(), st.line.size(), Z_NO_FLUSH);
  }
  return st.ok ? Status::Ok() : Status::Internal("zlib: deflate failed");
}

Result<PngSegment> PngDeflater::finish(bool last) {
  State& st = *state_;
  if (st.finished) return Status::Internal("PngDeflater::finish called twice");
  st.finished = true;
  if (st.ok) st.ok = st.pump(nullptr, 0, last ? Z_FINISH : Z_SYNC_FLUSH);
  if (!st.ok) return Status::Internal(st.initialised ? "zlib: deflate failed" : "zlib: deflateInit2 failed");
  return std::move(st.segment);
}

Result<PngSegment> deflate_png_rows(const cv::Mat& rows, bool last) {
  if (!can_store_type("png", rows.type())) return Status::Unsupported("PNG cannot store this image type");
  PngDeflater deflater;
  IMGQ_RETURN_IF_ERROR(deflater.add(rows));
  return deflater.finish(last);
}

std::vector<uint8_t> assemble_png(int rows, int cols, int type, const std::vector<PngSegment>& segments) {
  std::vector<uint8_t> zlib_stream;
  size_t total = 2 + 4;
  for (const PngSegment& s : segments) total += s.deflated.size();
  zlib_stream.reserve(total);
  zlib_stream.push_back(0x78);  // deflate, 32 KiB window
  zlib_stream.push_back(0x01);  // level "fastest", header check bits
  uLong adler = adler32(0L, Z_NULL, 0);
  for (const PngSegment& s : segments) {
    zlib_stream.insert(zlib_stream.end(), s.deflated.begin(), s.deflated.end());
    adler = adler32_combine(adler, s.adler, static_cast<z_off_t>(s.raw_bytes));
  }
  put_be32(zlib_stream, static_cast<uint32_t>(adler));

  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  png.reserve(zlib_stream.size() + zlib_stream.size() / kMaxChunk * 12 + 64);
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, static_cast<uint32_t>(cols));
  put_be32(ihdr, static_cast<uint32_t>(rows));
  const int channels = CV_MAT_CN(type);
  ihdr.push_back(CV_MAT_DEPTH(type) == CV_16U ? 16 : 8);
  ihdr.push_back(channels == 1 ? 0 : channels == 3 ? 2 : 6);  // gray, RGB, RGBA
  ihdr.insert(ihdr.end(), {0, 0, 0});  // deflate, adaptive filtering, no interlace
  put_chunk(png, "IHDR", ihdr.data(), ihdr.size());
  for (size_t at = 0; at < zlib_stream.size(); at += kMaxChunk) {
    put_chunk(png, "IDAT", zlib_stream.data() + at, std::min(kMaxChunk, zlib_stream.size() - at));
  }
  put_chunk(png, "IEND", nullptr, 0);
  return png;
}

}  // namespace imgq::workers
