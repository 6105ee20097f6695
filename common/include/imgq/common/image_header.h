// What an encoded image declares about itself, read without decoding it, so
// that decompression bombs and broken files are refused before any decoder
// allocates. Used by the broker at submit and by every leader before decode.
//
// Formats: PNG, JPEG, TIFF (and BigTIFF), BMP, WebP, PNM (P1-P7), JPEG 2000
// (JP2 and raw codestream) and Sun raster: the formats OpenCV decodes to 8-
// or 16-bit pixels. Anything else is refused as not recognised.
//
// Besides the dimensions, the check walks the container far enough to catch
// what OpenCV would otherwise accept silently: a PNG must be a complete chain
// of chunks up to IEND, and a JPEG must reach its end-of-image marker (libjpeg
// turns a truncated JPEG into a grey-padded image with only a warning).
// Checksums are left to the decoders (libpng refuses a bad CRC).
//
// Pure functions over bytes; thread-safe. The parser is fuzzed (fuzz/).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "imgq/common/status.h"

namespace imgq {

struct ImageHeader {
  std::string format;  // for people: "PNG", "JPEG", "TIFF", "BMP", "WebP", "PNM", "JPEG 2000", "Sun raster"
  uint64_t width = 0;
  uint64_t height = 0;
  // width x height, saturated at UINT64_MAX: declared sizes are untrusted,
  // and a product that wrapped (2^32 x 2^32 = 0) would pass any limit.
  uint64_t pixels() const {
    if (width != 0 && height > UINT64_MAX / width) return UINT64_MAX;
    return width * height;
  }
};

// The default --max-pixels: 250 megapixels (a 16-bit RGBA image of that size
// is 2 GB decoded).
inline constexpr uint64_t kDefaultMaxPixels = 250'000'000;

// Reads the format and declared dimensions. InvalidImage names what is wrong:
// empty, not a recognised format, a truncated or inconsistent header, a
// truncated PNG chunk chain or JPEG stream.
Result<ImageHeader> read_image_header(std::span<const uint8_t> bytes);

// read_image_header, then TooLarge when the image declares more than
// `max_pixels` pixels (0 = no limit). `name` (a file name, may be empty)
// starts every message.
Result<ImageHeader> check_image_header(std::span<const uint8_t> bytes, uint64_t max_pixels,
                                       std::string_view name = {});

// The TooLarge check alone, for a header read another way.
Status check_pixel_limit(const ImageHeader& header, uint64_t max_pixels, std::string_view name = {});

}  // namespace imgq
