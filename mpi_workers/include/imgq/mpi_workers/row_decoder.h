// Decoding an image top to bottom, a band of rows at a time, so the leader
// can hand each rank its rows while it decodes the rest (engine.h,
// StripFiles::decoder).
//
// The pixels are those cv::imdecode(bytes, IMREAD_UNCHANGED) gives, byte for
// byte: the decoders call the same libraries OpenCV 4.6 links (libpng,
// libjpeg-turbo) with the same transformations OpenCV asks of them:
//  - PNG: 16-bit samples in native byte order; palette expanded to BGR;
//    gray of 1, 2 or 4 bits widened to 8; colour as BGR(A); a tRNS chunk or a
//    gray-alpha image gives 4 channels (gray copied to B, G and R); any
//    other alpha is stripped. The stream's end (IEND, Adler-32, CRCs) is
//    checked after the last row, as OpenCV's png_read_end does.
//  - JPEG: gray as 1 channel, YCbCr and RGB as BGR, with libjpeg's default
//    IDCT and upsampling; warnings (a truncated scan) are not errors, as in
//    OpenCV, which fills the missing rows the same way.
// open_row_decoder() declines what it cannot stream or where OpenCV does
// something else: interlaced PNGs (no row is final before the last pass),
// CMYK/YCCK JPEGs, JPEGs without Huffman tables (OpenCV's MJPEG fallback)
// and every other format. The caller then decodes whole with decode_image().
//
// Not thread-safe; one decoder per image. The bytes must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include <opencv2/core.hpp>

#include "imgq/common/status.h"
#include "imgq/mpi_workers/ops.h"

namespace imgq::workers {

class RowDecoder {
 public:
  virtual ~RowDecoder() = default;

  // The decoded image's size and pixel kind.
  virtual ImageInfo info() const = 0;

  // "PNG" or "JPEG", as check_image_header() names it.
  virtual const char* format() const = 0;

  // Decodes the next `rows.rows` rows into `rows`, a continuous Mat of
  // info().cols columns and info().type(). After the last row the rest of
  // the stream is checked. InvalidImage names the format and what was wrong;
  // after an error the decoder is spent.
  virtual Status read(cv::Mat& rows) = 0;

  // Rows decoded so far.
  virtual int rows_read() const = 0;

 protected:
  // Internal unless `rows` are continuous, of the image's kind, and within
  // its rows from rows_read() on.
  Status check_request(const cv::Mat& rows) const;
};

// A PNG whose filtered rows come to at least this many bytes has its image
// data inflated by ISA-L (row_decoder.cc), any other by libpng itself: 4x
// zlib's speed on a big image, and 1.8x on a 64x64 one, where libpng hands
// zlib a row at a time, too little for its fast path. The pixels are the
// same either way; tests raise it to take libpng's own inflate.
inline constexpr size_t kIsalInflateFrom = 0;

// A decoder positioned at the first row, or nullptr when the bytes are not
// something this module streams (see above). A header it cannot parse is
// nullptr as well: decode_image() then gives the error. `isal_from`: see
// kIsalInflateFrom.
std::unique_ptr<RowDecoder> open_row_decoder(std::span<const uint8_t> bytes, size_t isal_from = kIsalInflateFrom);

}  // namespace imgq::workers
