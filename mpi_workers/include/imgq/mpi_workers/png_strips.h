// PNG encoded in parallel: each rank filters and deflates its own rows into
// one segment of the image's zlib stream, and the leader only stitches the
// segments into a file (as pigz does for gzip). The result is a standard PNG
// whose decoded pixels equal the image's; its bytes differ from OpenCV's own
// encoder only in how the stream is cut.
//
// The settings are OpenCV's defaults (imencode(".png") with no parameters):
// every row filtered with SUB, zlib level 1 (Z_BEST_SPEED), strategy Z_RLE.
// SUB looks only within its own row, so a strip needs no row of its
// neighbour; Z_RLE matches only at distance 1, so a segment loses nothing by
// starting a fresh window. Each segment but the last ends with a sync flush
// (byte aligned, not final); the last with the final block. The stream's
// Adler-32 is the segments' combined (zlib's adler32_combine).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "imgq/common/status.h"

namespace imgq::workers {

struct PngSegment {
  std::string deflated;    // raw deflate data (no zlib header or checksum)
  uint32_t adler = 1;      // Adler-32 of the filtered bytes it holds
  uint64_t raw_bytes = 0;  // how many filtered bytes it holds
};

// Rows of an image (any number, also 0), BGR(A) and native-endian as OpenCV
// holds them, filtered and deflated as one segment; `last` for the segment
// that ends the image.
Result<PngSegment> deflate_png_rows(const cv::Mat& rows, bool last);

// The same, a few rows at a time: add() rows in order, then finish() once.
// The segment decodes to the rows added, however they were cut.
class PngDeflater {
 public:
  PngDeflater();
  ~PngDeflater();
  PngDeflater(const PngDeflater&) = delete;
  PngDeflater& operator=(const PngDeflater&) = delete;

  Status add(const cv::Mat& rows);
  Result<PngSegment> finish(bool last);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The PNG file of a `cols` x `rows` image of `type` whose rows are the
// `segments`, in order.
std::vector<uint8_t> assemble_png(int rows, int cols, int type, const std::vector<PngSegment>& segments);

}  // namespace imgq::workers
