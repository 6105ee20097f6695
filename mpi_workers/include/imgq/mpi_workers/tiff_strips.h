// TIFF in strips, read and written by every rank: strips are the format's
// own unit, each compressed on its own, so a rank can decode the strips
// holding its rows from the file's bytes, and encode its rows of the result
// as strips of their own that the leader only lays out into one file.
//
// Reading gives what cv::imdecode(IMREAD_UNCHANGED) gives, byte for byte,
// by OpenCV 4.6's own path through libtiff: 8-bit images through
// TIFFReadRGBAStrip or TIFFReadRGBATile (each strip or tile bottom-up) and
// its BGRA conversions, 16-bit through TIFFReadEncodedStrip or
// TIFFReadEncodedTile with R and B swapped. A tiled TIFF (as satellite and
// slide images often are) is read a row of tiles at a time: a rank decodes
// the rows of tiles holding its rows. tiff_layout() takes only what that
// path handles plainly: strips or tiles (but not the uncompressed 8-bit
// tiles libtiff 4.5 fails to read there), contiguous samples, unsigned 8 or 16 bits, gray (1 sample) or RGB (3 or
// 4), top-left orientation; anything else is decoded whole by OpenCV as
// before.
//
// Writing uses OpenCV 4.6's settings for imencode(".tif") with no
// parameters: LZW with horizontal differencing, (8 KiB / row bytes) rows per
// strip, RGB or min-is-black, no ExtraSamples tag (as OpenCV writes 4
// channels). The strips are compressed by our LZW (tiff_lzw.h, 1.5x
// libtiff's speed), libtiff lays them out. The file decodes to the same
// pixels as OpenCV's own; its bytes differ in where the strips lie, and
// where libtiff restarts its LZW table early (ours only when it is full).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "imgq/common/status.h"

namespace imgq::workers {

struct TiffLayout {
  int rows = 0;
  int cols = 0;
  int type = 0;  // as OpenCV decodes it
  int rows_per_strip = 0;  // in a tiled TIFF: the tiles' height
  int tile_cols = 0;       // in a tiled TIFF: the tiles' width; 0: strips
};

// The layout of TIFF `bytes` when every rank can read its rows of it (see
// above); nothing when it is not a TIFF or not of that kind.
std::optional<TiffLayout> tiff_layout(std::span<const uint8_t> bytes);

// Rows [begin, begin + count) of the image, decoded from the strips (or
// rows of tiles) that hold them. InvalidImage names the strip or tile when
// one is corrupt.
Result<cv::Mat> read_tiff_rows(std::span<const uint8_t> bytes, const TiffLayout& layout, int begin, int count);

// OpenCV's rows per strip for an image of `rows` x `cols` of `type`.
int tiff_rows_per_strip(int rows, int cols, int type);

// A run of whole strips, compressed: their bytes one after the other.
struct TiffStrips {
  std::string data;
  std::vector<uint64_t> sizes;  // of each strip, in order
};

// Rows of the result (BGR(A), native-endian, as OpenCV holds them) as
// strips of `rows_per_strip` rows (the last may be shorter: the image's
// end). Any number of rows, also 0.
Result<TiffStrips> encode_tiff_rows(const cv::Mat& rows, int rows_per_strip);

// The TIFF file of a `rows` x `cols` image of `type` whose strips are
// `parts`' strips in order.
Result<std::vector<uint8_t>> assemble_tiff(int rows, int cols, int type, int rows_per_strip,
                                           const std::vector<TiffStrips>& parts);

}  // namespace imgq::workers
