#include "imgq/mpi_workers/row_decoder.h"

#include <bit>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>

namespace imgq::workers {
namespace {

Status corrupt(const char* format, int row, int rows, const std::string& why) {
  return Status::InvalidImage(std::string(format) + ": the image data is corrupt (the decoder refused it at row " +
                              std::to_string(row) + " of " + std::to_string(rows) + ": " + why + ")");
}

// libpng reports errors through a longjmp. Every function that calls into
// libpng sets the jump point itself and holds no object with a destructor,
// so nothing is skipped when the jump comes.
class PngRowDecoder final : public RowDecoder {
 public:
  explicit PngRowDecoder(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  ~PngRowDecoder() override {
    if (png_ != nullptr) png_destroy_read_struct(&png_, &info_ptr_, &end_ptr_);
  }

  // False when the header does not parse or the image is not streamable.
  bool open() {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, this, &PngRowDecoder::on_error, &PngRowDecoder::on_warning);
    if (png_ == nullptr) return false;
    info_ptr_ = png_create_info_struct(png_);
    end_ptr_ = png_create_info_struct(png_);
    if (info_ptr_ == nullptr || end_ptr_ == nullptr) return false;
    if (!start()) return false;
    pointers_.reserve(64);
    return static_cast<size_t>(info_.cols) * CV_ELEM_SIZE(info_.type()) == row_bytes_;
  }

  ImageInfo info() const override { return info_; }
  const char* format() const override { return "PNG"; }
  int rows_read() const override { return rows_read_; }

  Status read(cv::Mat& rows) override {
    if (failed_) return corrupt("PNG", rows_read_, info_.rows, error_);
    IMGQ_RETURN_IF_ERROR(check_request(rows));
    pointers_.resize(static_cast<size_t>(rows.rows));
    for (int y = 0; y < rows.rows; ++y) pointers_[static_cast<size_t>(y)] = rows.ptr(y);
    const bool last = rows_read_ + rows.rows == info_.rows;
    if (!read_rows(static_cast<png_uint_32>(rows.rows), last)) {
      failed_ = true;
      return corrupt("PNG", rows_read_, info_.rows, error_);
    }
    rows_read_ += rows.rows;
    return Status::Ok();
  }

 private:
  static void on_error(png_structp png, png_const_charp message) {
    auto* self = static_cast<PngRowDecoder*>(png_get_error_ptr(png));
    std::snprintf(self->error_, sizeof self->error_, "libpng: %s", message);
    png_longjmp(png, 1);
  }
  static void on_warning(png_structp, png_const_charp) {}
  static void on_read(png_structp png, png_bytep out, size_t count) {
    auto* self = static_cast<PngRowDecoder*>(png_get_io_ptr(png));
    if (count > self->bytes_.size() - self->at_) png_error(png, "the data ends early");
    std::memcpy(out, self->bytes_.data() + self->at_, count);
    self->at_ += count;
  }

  bool start() {
    if (setjmp(png_jmpbuf(png_)) != 0) return false;
    png_set_read_fn(png_, this, &PngRowDecoder::on_read);
    png_read_info(png_, info_ptr_);
    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png_, info_ptr_, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
    if (interlace != PNG_INTERLACE_NONE || width == 0 || height == 0 || width > INT32_MAX || height > INT32_MAX) {
      return false;
    }
    // OpenCV 4.6's PngDecoder::readHeader: the channels.
    int channels = 1;
    switch (color_type) {
      case PNG_COLOR_TYPE_RGB:
      case PNG_COLOR_TYPE_PALETTE: {
        png_bytep trans = nullptr;
        int num_trans = 0;
        png_color_16p trans_values = nullptr;
        png_get_tRNS(png_, info_ptr_, &trans, &num_trans, &trans_values);
        channels = num_trans > 0 ? 4 : 3;
        break;
      }
      case PNG_COLOR_TYPE_GRAY_ALPHA:
      case PNG_COLOR_TYPE_RGB_ALPHA:
        channels = 4;
        break;
      default:
        channels = 1;
    }
    const int depth = bit_depth == 16 ? CV_16U : CV_8U;
    info_ = ImageInfo{static_cast<int>(height), static_cast<int>(width), depth, channels};
    // And its readData: the same transformations, in the same order.
    if (bit_depth == 16 && std::endian::native == std::endian::little) png_set_swap(png_);
    if (channels < 4) {
      png_set_strip_alpha(png_);
    } else {
      png_set_tRNS_to_alpha(png_);
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png_);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png_);
    if ((color_type & PNG_COLOR_MASK_COLOR) != 0 && channels > 1) {
      png_set_bgr(png_);
    } else if (channels > 1) {
      png_set_gray_to_rgb(png_);
    } else {
      png_set_rgb_to_gray(png_, 1, 0.299, 0.587);
    }
    png_set_interlace_handling(png_);
    png_read_update_info(png_, info_ptr_);
    row_bytes_ = png_get_rowbytes(png_, info_ptr_);
    return true;
  }

  bool read_rows(png_uint_32 count, bool last) {
    if (setjmp(png_jmpbuf(png_)) != 0) return false;
    png_read_rows(png_, pointers_.data(), nullptr, count);
    if (last) png_read_end(png_, end_ptr_);
    return true;
  }

  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
  png_structp png_ = nullptr;
  png_infop info_ptr_ = nullptr;
  png_infop end_ptr_ = nullptr;
  ImageInfo info_;
  size_t row_bytes_ = 0;
  int rows_read_ = 0;
  bool failed_ = false;
  std::vector<png_bytep> pointers_;
  char error_[256] = "";
};

// libjpeg's errors also come by longjmp (error_exit); warnings are counted,
// not printed, and only running out of data fails the read: OpenCV's
// suspending source would repeat a stale row from there on.
class JpegRowDecoder final : public RowDecoder {
 public:
  explicit JpegRowDecoder(std::span<const uint8_t> bytes) : bytes_(bytes) {
    cinfo_.err = jpeg_std_error(&errors_.pub);
    errors_.pub.error_exit = &JpegRowDecoder::on_error;
    errors_.pub.emit_message = &JpegRowDecoder::on_message;
    errors_.self = this;
  }
  ~JpegRowDecoder() override {
    if (created_) jpeg_destroy_decompress(&cinfo_);
  }

  bool open() { return start(); }

  ImageInfo info() const override { return info_; }
  const char* format() const override { return "JPEG"; }
  int rows_read() const override { return rows_read_; }

  Status read(cv::Mat& rows) override {
    if (failed_) return corrupt("JPEG", rows_read_, info_.rows, error_);
    IMGQ_RETURN_IF_ERROR(check_request(rows));
    const bool last = rows_read_ + rows.rows == info_.rows;
    if (!read_rows(rows, last) || ran_out_) {
      failed_ = true;
      if (ran_out_) std::snprintf(error_, sizeof error_, "the data ends early");
      return corrupt("JPEG", rows_read_, info_.rows, error_);
    }
    return Status::Ok();
  }

 private:
  struct Errors {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    JpegRowDecoder* self;
  };

  static void on_error(j_common_ptr cinfo) {
    auto* errors = reinterpret_cast<Errors*>(cinfo->err);
    char message[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, message);
    std::snprintf(errors->self->error_, sizeof errors->self->error_, "libjpeg: %s", message);
    std::longjmp(errors->jump, 1);
  }
  static void on_message(j_common_ptr cinfo, int level) {
    auto* errors = reinterpret_cast<Errors*>(cinfo->err);
    if (level < 0) {
      ++cinfo->err->num_warnings;
      if (cinfo->err->msg_code == JWRN_JPEG_EOF) errors->self->ran_out_ = true;
    }
  }

  bool start() {
    if (setjmp(errors_.jump) != 0) return false;
    jpeg_create_decompress(&cinfo_);
    created_ = true;
    jpeg_mem_src(&cinfo_, bytes_.data(), static_cast<unsigned long>(bytes_.size()));
    if (jpeg_read_header(&cinfo_, TRUE) != JPEG_HEADER_OK || ran_out_) return false;
    // OpenCV loads MJPEG's standard tables when the file has none; and
    // converts CMYK itself. Those stay with decode_image().
    if (cinfo_.ac_huff_tbl_ptrs[0] == nullptr && cinfo_.ac_huff_tbl_ptrs[1] == nullptr &&
        cinfo_.dc_huff_tbl_ptrs[0] == nullptr && cinfo_.dc_huff_tbl_ptrs[1] == nullptr) {
      return false;
    }
    if (cinfo_.num_components != 1 && cinfo_.num_components != 3) return false;
    const bool color = cinfo_.num_components > 1;
    // OpenCV asks for JCS_RGB and swaps to BGR; libjpeg-turbo's BGR output
    // is the same conversion written in the other order.
    cinfo_.out_color_space = color ? JCS_EXT_BGR : JCS_GRAYSCALE;
    jpeg_start_decompress(&cinfo_);
    if (cinfo_.output_width == 0 || cinfo_.output_height == 0 || cinfo_.output_width > INT32_MAX ||
        cinfo_.output_height > INT32_MAX || cinfo_.output_components != (color ? 3 : 1) || ran_out_) {
      return false;
    }
    info_ = ImageInfo{static_cast<int>(cinfo_.output_height), static_cast<int>(cinfo_.output_width), CV_8U,
                      color ? 3 : 1};
    return true;
  }

  bool read_rows(cv::Mat& rows, bool last) {
    if (setjmp(errors_.jump) != 0) return false;
    for (int y = 0; y < rows.rows; ++y) {
      JSAMPROW row = rows.ptr(y);
      if (jpeg_read_scanlines(&cinfo_, &row, 1) != 1) {
        ran_out_ = true;
        return false;
      }
      ++rows_read_;
    }
    if (last) jpeg_finish_decompress(&cinfo_);
    return true;
  }

  std::span<const uint8_t> bytes_;
  jpeg_decompress_struct cinfo_{};
  Errors errors_{};
  bool created_ = false;
  ImageInfo info_;
  int rows_read_ = 0;
  bool failed_ = false;
  bool ran_out_ = false;
  char error_[JMSG_LENGTH_MAX + 16] = "";
};

}  // namespace

Status RowDecoder::check_request(const cv::Mat& rows) const {
  const ImageInfo image = info();
  if (rows_read() + rows.rows > image.rows || rows.cols != image.cols || rows.type() != image.type() ||
      !rows.isContinuous()) {
    return Status::Internal(std::string(format()) + " row decoder: rows past the image or of the wrong kind");
  }
  return Status::Ok();
}

std::unique_ptr<RowDecoder> open_row_decoder(std::span<const uint8_t> bytes) {
  static constexpr uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= sizeof kPng && std::memcmp(bytes.data(), kPng, sizeof kPng) == 0) {
    auto decoder = std::make_unique<PngRowDecoder>(bytes);
    if (decoder->open()) return decoder;
    return nullptr;
  }
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    auto decoder = std::make_unique<JpegRowDecoder>(bytes);
    if (decoder->open()) return decoder;
    return nullptr;
  }
  return nullptr;
}

}  // namespace imgq::workers
