#include "imgq/mpi_workers/tiff_strips.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

#include "imgq/common/formats.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/tiff_lzw.h"

namespace imgq::workers {
namespace {

// A TIFF in memory, for libtiff's client I/O: read from `in`, or written
// into `out`. Errors and warnings land in `error` instead of stderr.
struct MemoryFile {
  std::span<const uint8_t> in;
  std::vector<uint8_t>* out = nullptr;
  uint64_t at = 0;
  std::string error;

  uint64_t size() const { return out != nullptr ? out->size() : in.size(); }

  static tmsize_t read(thandle_t h, void* buffer, tmsize_t n) {
    auto* f = static_cast<MemoryFile*>(h);
    const uint64_t size = f->size();
    const uint64_t count = f->at >= size ? 0 : std::min<uint64_t>(static_cast<uint64_t>(n), size - f->at);
    const uint8_t* base = f->out != nullptr ? f->out->data() : f->in.data();
    if (count > 0) std::memcpy(buffer, base + f->at, count);
    f->at += count;
    return static_cast<tmsize_t>(count);
  }
  static tmsize_t write(thandle_t h, void* buffer, tmsize_t n) {
    auto* f = static_cast<MemoryFile*>(h);
    if (f->out == nullptr || n < 0) return 0;
    const uint64_t end = f->at + static_cast<uint64_t>(n);
    if (end > f->out->size()) f->out->resize(end);
    std::memcpy(f->out->data() + f->at, buffer, static_cast<size_t>(n));
    f->at = end;
    return n;
  }
  static toff_t seek(thandle_t h, toff_t offset, int whence) {
    auto* f = static_cast<MemoryFile*>(h);
    switch (whence) {
      case SEEK_SET: f->at = offset; break;
      case SEEK_CUR: f->at += offset; break;
      case SEEK_END: f->at = f->size() + offset; break;
      default: return static_cast<toff_t>(-1);
    }
    return f->at;
  }
  static int close(thandle_t) { return 0; }
  static toff_t size_of(thandle_t h) { return static_cast<MemoryFile*>(h)->size(); }
  static int map(thandle_t, void**, toff_t*) { return 0; }
  static void unmap(thandle_t, void*, toff_t) {}

  static int on_error(TIFF*, void* user, const char* module, const char* format, va_list args) {
    auto* f = static_cast<MemoryFile*>(user);
    if (f->error.empty()) {
      char message[512];
      std::vsnprintf(message, sizeof message, format, args);
      f->error = std::string(module != nullptr ? module : "libtiff") + ": " + message;
    }
    return 1;
  }
  static int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }
};

struct TiffCloser {
  void operator()(TIFF* tif) const { TIFFClose(tif); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

TiffPtr open_memory(MemoryFile& file, const char* mode) {
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, &MemoryFile::on_error, &file);
  TIFFOpenOptionsSetWarningHandlerExtR(options, &MemoryFile::on_warning, &file);
  TIFF* tif = TIFFClientOpenExt("memory", mode, &file, &MemoryFile::read, &MemoryFile::write, &MemoryFile::seek,
                                &MemoryFile::close, &MemoryFile::size_of, &MemoryFile::map, &MemoryFile::unmap,
                                options);
  TIFFOpenOptionsFree(options);
  return TiffPtr(tif);
}

// OpenCV's icvCvt_BGRA2Gray_8u_C4C1R with its R and B swapped (as it is
// called on libtiff's RGBA raster): the cvtColor weights in 14-bit fixed
// point, rounded.
uint8_t gray_of(const uint8_t* rgba) {
  constexpr int kShift = 14;
  constexpr int kR = static_cast<int>(0.299 * (1 << kShift) + 0.5);
  constexpr int kG = static_cast<int>(0.587 * (1 << kShift) + 0.5);
  constexpr int kB = (1 << kShift) - kR - kG;
  return static_cast<uint8_t>((rgba[0] * kR + rgba[1] * kG + rgba[2] * kB + (1 << (kShift - 1))) >> kShift);
}

}  // namespace

std::optional<TiffLayout> tiff_layout(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8 || sniff_format(bytes) != ImageFormat::kTiff) return std::nullopt;
  MemoryFile file{.in = bytes};
  TiffPtr tif = open_memory(file, "r");
  if (!tif) return std::nullopt;
  uint32_t width = 0, height = 0, rows_per_strip = 0;
  uint16_t photometric = 0, bps = 0, spp = 1, planar = PLANARCONFIG_CONTIG, format = SAMPLEFORMAT_UINT;
  uint16_t orientation = ORIENTATION_TOPLEFT;
  if (TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &width) == 0 ||
      TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &height) == 0 ||
      TIFFGetField(tif.get(), TIFFTAG_PHOTOMETRIC, &photometric) == 0 ||
      TIFFGetField(tif.get(), TIFFTAG_BITSPERSAMPLE, &bps) == 0) {
    return std::nullopt;
  }
  TIFFGetField(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetField(tif.get(), TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetField(tif.get(), TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetField(tif.get(), TIFFTAG_ORIENTATION, &orientation);
  const bool tiled = TIFFIsTiled(tif.get()) != 0;
  uint32_t tile_width = width;
  if (tiled) {
    uint16_t compression = COMPRESSION_NONE;
    TIFFGetField(tif.get(), TIFFTAG_COMPRESSION, &compression);
    // Declined, to fail whole as they fail in OpenCV: uncompressed 8-bit
    // tiles whose size is not a multiple of 1 KiB. libtiff 4.5's
    // TIFFReadRGBATile compares the tile's size with its read buffer's,
    // which it rounds up to 1 KiB, and refuses them ("Invalid tile byte
    // count").
    if (TIFFGetField(tif.get(), TIFFTAG_TILEWIDTH, &tile_width) == 0 ||
        TIFFGetField(tif.get(), TIFFTAG_TILELENGTH, &rows_per_strip) == 0 ||
        (compression == COMPRESSION_NONE && bps == 8 && uint64_t{tile_width} * rows_per_strip * spp % 1024 != 0)) {
      return std::nullopt;
    }
  } else if (TIFFGetField(tif.get(), TIFFTAG_ROWSPERSTRIP, &rows_per_strip) == 0 || rows_per_strip > height) {
    rows_per_strip = height;
  }
  const bool gray = photometric == PHOTOMETRIC_MINISBLACK && spp == 1;
  const bool rgb = photometric == PHOTOMETRIC_RGB && (spp == 3 || spp == 4);
  if ((!gray && !rgb) || (bps != 8 && bps != 16) || format != SAMPLEFORMAT_UINT || planar != PLANARCONFIG_CONTIG ||
      orientation != ORIENTATION_TOPLEFT || width == 0 || height == 0 || width > INT32_MAX ||
      height > INT32_MAX || rows_per_strip == 0 || tile_width == 0 || tile_width > INT32_MAX ||
      rows_per_strip > INT32_MAX) {
    return std::nullopt;
  }
  // OpenCV refuses strips or tiles of 1 GB or more; so do we, by declining.
  if (uint64_t{tile_width} * rows_per_strip * 4 * (bps / 8) >= (uint64_t{1} << 30)) return std::nullopt;
  return TiffLayout{static_cast<int>(height), static_cast<int>(width), CV_MAKETYPE(bps == 16 ? CV_16U : CV_8U, spp),
                    static_cast<int>(rows_per_strip), tiled ? static_cast<int>(tile_width) : 0};
}

Result<cv::Mat> read_tiff_rows(std::span<const uint8_t> bytes, const TiffLayout& layout, int begin, int count) {
  cv::Mat rows(count, layout.cols, layout.type);
  if (count <= 0) return rows;
  if (begin < 0 || begin + count > layout.rows) return Status::Internal("read_tiff_rows: rows past the image");
  MemoryFile file{.in = bytes};
  TiffPtr tif = open_memory(file, "r");
  if (!tif) return Status::InvalidImage("TIFF: cannot be opened (" + file.error + ")");
  const bool tiled = layout.tile_cols > 0;
  const int per_strip = layout.rows_per_strip;  // a strip's or a tile's height
  const size_t tile_cols = static_cast<size_t>(tiled ? layout.tile_cols : layout.cols);
  const int channels = CV_MAT_CN(layout.type);
  const bool wide = CV_MAT_DEPTH(layout.type) == CV_16U;
  std::vector<uint32_t> raster;
  std::vector<uint16_t> samples;
  for (int first = begin / per_strip * per_strip; first < begin + count; first += per_strip) {
    const int strip_rows = std::min(per_strip, layout.rows - first);
    const int lo = std::max(first, begin), hi = std::min(first + strip_rows, begin + count);
    for (int x0 = 0; x0 < layout.cols; x0 += static_cast<int>(tile_cols)) {
      const size_t cols = std::min(tile_cols, static_cast<size_t>(layout.cols - x0));
      auto corrupt = [&] {
        const uint32_t unit = tiled ? TIFFComputeTile(tif.get(), static_cast<uint32_t>(x0),
                                                      static_cast<uint32_t>(first), 0, 0)
                                    : static_cast<uint32_t>(first / per_strip);
        return Status::InvalidImage(
            "TIFF: the image data is corrupt (" + std::string(tiled ? "tile " : "strip ") + std::to_string(unit) +
            " of rows " + std::to_string(first) + " to " + std::to_string(first + strip_rows - 1) +
            (tiled ? ", columns " + std::to_string(x0) + " to " + std::to_string(x0 + cols - 1) : std::string()) +
            (file.error.empty() ? "" : ": " + file.error) + ")");
      };
      if (!wide) {
        // OpenCV: TIFFReadRGBAStrip or TIFFReadRGBATile. The raster is
        // bottom-up: a strip's rows end at its last row, a tile's at the
        // tile's full height (an edge tile is padded below).
        raster.resize(tile_cols * static_cast<size_t>(per_strip));
        const int ok = tiled ? TIFFReadRGBATile(tif.get(), static_cast<uint32_t>(x0), static_cast<uint32_t>(first),
                                                raster.data())
                             : TIFFReadRGBAStrip(tif.get(), static_cast<uint32_t>(first), raster.data());
        // These read on past a decoding error (libtiff's stop_on_error is
        // off), leaving what was in the raster; OpenCV takes that as the
        // image. A corrupt strip or tile is refused here instead, by name.
        if (ok == 0 || !file.error.empty()) return corrupt();
        const int bottom = tiled ? per_strip : strip_rows;
        for (int y = lo; y < hi; ++y) {
          const auto* src =
              reinterpret_cast<const uint8_t*>(raster.data() + tile_cols * static_cast<size_t>(bottom - 1 - (y - first)));
          uint8_t* dst = rows.ptr<uint8_t>(y - begin) + static_cast<size_t>(x0) * static_cast<size_t>(channels);
          for (size_t x = 0; x < cols; ++x, src += 4) {
            if (channels == 1) {
              dst[x] = gray_of(src);
            } else {
              dst[0] = src[2];  // RGBA -> BGR(A)
              dst[1] = src[1];
              dst[2] = src[0];
              if (channels == 4) dst[3] = src[3];
              dst += channels;
            }
          }
        }
      } else {
        // OpenCV: TIFFReadEncodedStrip or TIFFReadEncodedTile, R and B swapped.
        const size_t row_samples = tile_cols * static_cast<size_t>(channels);
        samples.resize(row_samples * static_cast<size_t>(per_strip));
        const tmsize_t want =
            static_cast<tmsize_t>(row_samples * static_cast<size_t>(tiled ? per_strip : strip_rows) * 2);
        const tmsize_t got =
            tiled ? TIFFReadEncodedTile(tif.get(),
                                        TIFFComputeTile(tif.get(), static_cast<uint32_t>(x0),
                                                        static_cast<uint32_t>(first), 0, 0),
                                        samples.data(), want)
                  : TIFFReadEncodedStrip(tif.get(), static_cast<uint32_t>(first / per_strip), samples.data(), want);
        if (got < want) return corrupt();
        for (int y = lo; y < hi; ++y) {
          const uint16_t* src = samples.data() + row_samples * static_cast<size_t>(y - first);
          uint16_t* dst = rows.ptr<uint16_t>(y - begin) + static_cast<size_t>(x0) * static_cast<size_t>(channels);
          if (channels == 1) {
            std::memcpy(dst, src, cols * 2);
            continue;
          }
          for (size_t x = 0; x < cols; ++x, src += channels, dst += channels) {
            dst[0] = src[2];
            dst[1] = src[1];
            dst[2] = src[0];
            if (channels == 4) dst[3] = src[3];
          }
        }
      }
    }
  }
  return rows;
}

int tiff_rows_per_strip(int rows, int cols, int type) {
  const uint64_t row_bytes = static_cast<uint64_t>(cols) * CV_ELEM_SIZE(type);
  const uint64_t per_strip = row_bytes == 0 ? 1 : (uint64_t{1} << 13) / row_bytes;
  return static_cast<int>(std::clamp<uint64_t>(per_strip, 1, static_cast<uint64_t>(std::max(rows, 1))));
}

namespace {

// OpenCV's tags, for a `rows` x `cols` image of `type`.
void set_tags(TIFF* tif, int rows, int cols, int type, int rows_per_strip) {
  const int channels = CV_MAT_CN(type);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(cols));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(rows));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(CV_MAT_DEPTH(type) == CV_16U ? 16 : 8));
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, static_cast<uint16_t>(SAMPLEFORMAT_UINT));
  TIFFSetField(tif, TIFFTAG_COMPRESSION, static_cast<uint16_t>(COMPRESSION_LZW));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
               static_cast<uint16_t>(channels > 1 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(channels));
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, static_cast<uint16_t>(PLANARCONFIG_CONTIG));
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, static_cast<uint32_t>(rows_per_strip));
  TIFFSetField(tif, TIFFTAG_PREDICTOR, static_cast<uint16_t>(PREDICTOR_HORIZONTAL));
}

}  // namespace

Result<TiffStrips> encode_tiff_rows(const cv::Mat& rows, int rows_per_strip) {
  if (!can_store_type("tif", rows.type())) return Status::Unsupported("TIFF cannot store this image type");
  TiffStrips strips;
  if (rows.rows == 0) return strips;
  // Each strip's rows predicted (in RGB(A) order), then its LZW stream
  // (tiff_lzw.h): what libtiff would write for the tags set_tags() sets.
  const size_t row_bytes = static_cast<size_t>(rows.cols) * rows.elemSize();
  const int strip_count = (rows.rows + rows_per_strip - 1) / rows_per_strip;
  strips.sizes.reserve(static_cast<size_t>(strip_count));
  strips.data.reserve(row_bytes * static_cast<size_t>(rows.rows) / 2);
  std::vector<uint8_t> strip_bytes(row_bytes * static_cast<size_t>(std::min(rows_per_strip, rows.rows)));
  for (int first = 0; first < rows.rows; first += rows_per_strip) {
    const int n = std::min(rows_per_strip, rows.rows - first);
    for (int y = 0; y < n; ++y) tiff_predict_row(rows, first + y, strip_bytes.data() + row_bytes * static_cast<size_t>(y));
    const size_t at = strips.data.size();
    tiff_lzw_encode({strip_bytes.data(), row_bytes * static_cast<size_t>(n)}, strips.data);
    strips.sizes.push_back(strips.data.size() - at);
  }
  return strips;
}

Result<std::vector<uint8_t>> assemble_tiff(int rows, int cols, int type, int rows_per_strip,
                                           const std::vector<TiffStrips>& parts) {
  uint64_t total = 0;
  size_t strips = 0;
  for (const TiffStrips& p : parts) {
    total += p.data.size();
    strips += p.sizes.size();
  }
  const size_t expected = (static_cast<size_t>(rows) + rows_per_strip - 1) / static_cast<size_t>(rows_per_strip);
  if (strips != expected) {
    return Status::Internal("assemble_tiff: " + std::to_string(strips) + " strips for " + std::to_string(expected));
  }
  std::vector<uint8_t> file;
  file.reserve(total + 16 * strips + 4096);
  MemoryFile out{.out = &file};
  {
    TiffPtr tif = open_memory(out, total > (uint64_t{3} << 30) ? "w8" : "w");
    if (!tif) return Status::Internal("libtiff: cannot start a TIFF in memory (" + out.error + ")");
    set_tags(tif.get(), rows, cols, type, rows_per_strip);
    uint32_t strip = 0;
    for (const TiffStrips& p : parts) {
      size_t at = 0;
      for (uint64_t size : p.sizes) {
        if (TIFFWriteRawStrip(tif.get(), strip++, const_cast<char*>(p.data.data() + at), static_cast<tmsize_t>(size)) <
            0) {
          return Status::Internal("libtiff: cannot write strip " + std::to_string(strip - 1) + " (" + out.error + ")");
        }
        at += size;
      }
    }
  }
  return file;
}

}  // namespace imgq::workers
