#include "imgq/mpi_workers/image_io.h"

#include <algorithm>

#include <opencv2/imgcodecs.hpp>

#include "imgq/common/formats.h"
#include "imgq/common/text.h"
#include "imgq/mpi_workers/ops.h"
#include "imgq/mpi_workers/row_decoder.h"
#include "imgq/mpi_workers/tiff_strips.h"

namespace imgq::workers {
namespace {

int bits_of(int depth) { return depth == CV_8U ? 8 : depth == CV_16U ? 16 : 0; }

}  // namespace

Result<cv::Mat> decode_image(std::span<const uint8_t> bytes, uint64_t max_pixels) {
  // Before OpenCV sees the bytes: its own limits (OPENCV_IO_MAX_IMAGE_*) are
  // read once at load time and allow a gigapixel.
  IMGQ_ASSIGN_OR_RETURN(const ImageHeader header, check_image_header(bytes, max_pixels));
  // A TIFF the ranks read in strips or tiles is read here the same way (the
  // pixels are imdecode's): so a corrupt strip or tile is refused by name on
  // one rank as on several, where OpenCV's 8-bit path returns what its
  // buffer held.
  if (const std::optional<TiffLayout> layout = tiff_layout(bytes)) {
    IMGQ_ASSIGN_OR_RETURN(cv::Mat rows, read_tiff_rows(bytes, *layout, 0, layout->rows));
    IMGQ_RETURN_IF_ERROR(check_image(ImageInfo::of(rows)));
    return rows;
  }
  // A PNG through the row decoder, whose inflate (ISA-L) is 4x OpenCV's
  // (zlib); the pixels are imdecode's.
  if (sniff_format(bytes) == ImageFormat::kPng) {
    if (std::unique_ptr<RowDecoder> decoder = open_row_decoder(bytes)) {
      cv::Mat rows(decoder->info().rows, decoder->info().cols, decoder->info().type());
      IMGQ_RETURN_IF_ERROR(decoder->read(rows));
      IMGQ_RETURN_IF_ERROR(check_image(ImageInfo::of(rows)));
      return rows;
    }
  }
  cv::Mat image;
  try {
    const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
    image = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    return Status::InvalidImage(std::string("cannot decode: ") + e.err);
  }
  if (image.empty()) {
    return Status::InvalidImage(header.format + ": the image data is corrupt (the decoder refused it)");
  }
  IMGQ_RETURN_IF_ERROR(check_image(ImageInfo::of(image)));
  return image;
}

bool can_store_type(std::string_view format, int type) {
  return can_store(format, bits_of(CV_MAT_DEPTH(type)), CV_MAT_CN(type));
}

Result<std::vector<uint8_t>> encode_image(const cv::Mat& image, std::string_view format) {
  IMGQ_RETURN_IF_ERROR(
      check_can_store(format, bits_of(image.depth()), image.channels(), describe(ImageInfo::of(image))));
  // TIFF as the ranks write their rows (tiff_lzw.h: OpenCV's settings, a
  // faster LZW), so a file is the same on any group size.
  if (output_format_kind(format) == ImageFormat::kTiff) {
    const int per_strip = tiff_rows_per_strip(image.rows, image.cols, image.type());
    std::vector<TiffStrips> strips(1);
    IMGQ_ASSIGN_OR_RETURN(strips[0], encode_tiff_rows(image, per_strip));
    return assemble_tiff(image.rows, image.cols, image.type(), per_strip, strips);
  }
  std::vector<uint8_t> bytes;
  try {
    if (!cv::imencode("." + ascii_lower(format), image, bytes)) {
      return Status::Internal("OpenCV could not encode the result as " + std::string(format));
    }
  } catch (const cv::Exception& e) {
    return Status::Internal("encoding as " + std::string(format) + " failed: " + e.err);
  }
  return bytes;
}

}  // namespace imgq::workers
