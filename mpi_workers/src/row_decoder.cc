#include "imgq/mpi_workers/row_decoder.h"

#include <bit>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>

#include "imgq/common/formats.h"

namespace imgq::workers {
namespace {

Status corrupt(const char* format, int row, int rows, const std::string& why) {
  return Status::InvalidImage(std::string(format) + ": the image data is corrupt (the decoder refused it at row " +
                              std::to_string(row) + " of " + std::to_string(rows) + ": " + why + ")");
}

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// A PNG whose image data ISA-L inflates (Intel's igzip, 4x zlib's speed
// here, streaming) for libpng. zlib's inflate is nearly all of libpng's
// time on a big PNG (0.93 s of an 80 MB one's 1.1 s, on the leader, while
// the other ranks wait for their rows). libpng reads a file that is the PNG
// with its IDAT chunks replaced by one holding the same filtered rows as
// stored (uncompressed) deflate blocks, made as it reads them, and does all
// the rest as before (unfiltering, every transform OpenCV asks for), so the
// pixels are what they were. Taken only when the chunks are whole (lengths,
// IDATs in one run, IEND) and libpng can be told not to check the stored
// copy's Adler-32; their CRCs and the stream's own Adler-32 are checked
// here as they are read, and an error stops libpng at its row.
class InflatedPngStream {
 public:
  // Nothing when `png` is not such a PNG, or its rows are under `smallest`
  // bytes.
  static std::unique_ptr<InflatedPngStream> make(std::span<const uint8_t> png, size_t smallest) {
    static constexpr uint8_t kSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (png.size() < 8 + 25 || std::memcmp(png.data(), kSignature, 8) != 0) return nullptr;
    uint64_t width = 0, height = 0, bits = 0, channels = 0;
    size_t first_idat = 0, after_idat = 0;
    std::vector<size_t> idat;
    for (size_t at = 8;;) {
      if (png.size() - at < 12) return nullptr;
      const uint32_t length = be32(png.data() + at);
      if (length > 0x7fffffffu || png.size() - at - 12 < length) return nullptr;
      const uint8_t* type = png.data() + at + 4;
      const uint8_t* data = type + 4;
      const bool is_idat = std::memcmp(type, "IDAT", 4) == 0;
      if (at == 8) {
        if (std::memcmp(type, "IHDR", 4) != 0 || length != 13) return nullptr;
        width = be32(data);
        height = be32(data + 4);
        bits = data[8];
        const int color = data[9];
        if (data[12] != 0) return nullptr;  // interlaced: not read in rows anyway
        channels = color == 0 ? 1 : color == 2 ? 3 : color == 3 ? 1 : color == 4 ? 2 : color == 6 ? 4 : 0;
        if (channels == 0 || (bits != 1 && bits != 2 && bits != 4 && bits != 8 && bits != 16)) return nullptr;
      }
      if (is_idat) {
        if (after_idat != 0) return nullptr;  // IDATs apart
        if (first_idat == 0) first_idat = at;
        idat.push_back(at);
      } else if (first_idat != 0 && after_idat == 0) {
        after_idat = at;
      }
      if (first_idat != 0 && !is_idat && crc32_gzip_refl(0, type, size_t{length} + 4) != be32(data + length)) {
        return nullptr;  // a chunk after the image data: libpng will not check its CRC
      }
      at += size_t{length} + 12;
      if (std::memcmp(type, "IEND", 4) == 0) break;
    }
    if (first_idat == 0 || after_idat == 0 || width == 0 || height == 0) return nullptr;
    const uint64_t raw_bytes = ((width * channels * bits + 7) / 8 + 1) * height;  // rows with their filter byte
    // One synthetic IDAT chunk, at most 2^31 - 1 bytes.
    const uint64_t blocks = (raw_bytes + kBlock - 1) / kBlock;
    const uint64_t chunk_data = 2 + blocks * 5 + raw_bytes + 4;
    if (width > 0x7fffffffu || height > 0x7fffffffu || chunk_data > 0x7fffffffu) return nullptr;
    if (raw_bytes < smallest) return nullptr;  // tests: libpng's own inflate
    auto made = std::unique_ptr<InflatedPngStream>(new InflatedPngStream(png));
    made->first_idat_ = first_idat;
    made->after_idat_ = after_idat;
    made->idat_ = std::move(idat);
    made->raw_bytes_ = raw_bytes;
    made->chunk_data_ = chunk_data;
    put_be32(made->head_, static_cast<uint32_t>(chunk_data));
    std::memcpy(made->head_ + 4, "IDAT", 4);
    made->head_[8] = 0x78;  // deflate, 32 KiB window, no dictionary: 0x7801 % 31 == 0
    made->head_[9] = 0x01;
    // The stored copy's Adler-32 and the chunk's CRC: libpng is told not to
    // check either.
    made->inflate_ = take_inflate_state();
    isal_inflate_init(made->inflate_.get());
    made->inflate_->crc_flag = ISAL_ZLIB;
    made->window_.resize(std::min<size_t>(kWindow, raw_bytes));
    return made;
  }

  ~InflatedPngStream() {
    if (StatePool& pool = state_pool(); inflate_ != nullptr && pool.size() < 2) pool.push_back(std::move(inflate_));
  }
  InflatedPngStream(const InflatedPngStream&) = delete;
  InflatedPngStream& operator=(const InflatedPngStream&) = delete;

  // The bytes libpng reads: the PNG up to its first IDAT, the synthetic
  // chunk, the PNG from its last IDAT's end on.
  size_t size() const { return first_idat_ + 12 + chunk_data_ + (png_.size() - after_idat_); }

  // Reads on from `at` (libpng reads once, start to end). An error names
  // what is wrong with the image data.
  Status read(size_t at, uint8_t* out, size_t count) {
    const size_t chunk_end = first_idat_ + 12 + chunk_data_;
    const size_t blocks_end = 10 + chunk_data_ - 6;  // in the chunk: then Adler-32 and CRC
    while (count > 0) {
      size_t n = 0;
      if (at < first_idat_) {
        n = std::min(count, first_idat_ - at);
        std::memcpy(out, png_.data() + at, n);
      } else if (at >= chunk_end) {
        n = count;
        std::memcpy(out, png_.data() + after_idat_ + (at - chunk_end), n);
      } else if (const size_t o = at - first_idat_; o < 10) {
        n = std::min(count, 10 - o);
        std::memcpy(out, head_ + o, n);
      } else if (o >= blocks_end) {
        IMGQ_RETURN_IF_ERROR(finish());
        n = std::min(count, 8 - (o - blocks_end));
        std::memset(out, 0, n);
      } else {
        const size_t q = o - 10, block = q / (kBlock + 5), r = q % (kBlock + 5);
        const size_t begin = block * kBlock, length = std::min<size_t>(kBlock, raw_bytes_ - begin);
        if (r < 5) {
          const uint8_t header[5] = {static_cast<uint8_t>(begin + length == raw_bytes_ ? 1 : 0),
                                     static_cast<uint8_t>(length), static_cast<uint8_t>(length >> 8),
                                     static_cast<uint8_t>(~length), static_cast<uint8_t>(~length >> 8)};
          n = std::min(count, 5 - r);
          std::memcpy(out, header + r, n);
        } else {
          const size_t from = begin + (r - 5);
          IMGQ_RETURN_IF_ERROR(fill(from));
          n = std::min({count, length - (r - 5), window_end_ - from});
          std::memcpy(out, window_.data() + (from - window_begin_), n);
        }
      }
      at += n;
      out += n;
      count -= n;
    }
    return Status::Ok();
  }

 private:
  static constexpr size_t kBlock = 65535;       // the most a stored deflate block holds
  static constexpr size_t kWindow = size_t{1} << 20;  // rows inflated at a time
  explicit InflatedPngStream(std::span<const uint8_t> png) : png_(png) {}

  // ISA-L's state is 87 KB: allocated and zeroed for each image, it is
  // more work than a tiny image's inflate, so each thread keeps the ones it
  // has used. Not zeroed: isal_inflate_init sets what the inflate reads.
  using StatePool = std::vector<std::unique_ptr<inflate_state>>;
  static StatePool& state_pool() {
    thread_local StatePool pool;
    return pool;
  }
  static std::unique_ptr<inflate_state> take_inflate_state() {
    StatePool& pool = state_pool();
    if (pool.empty()) return std::unique_ptr<inflate_state>(new inflate_state);
    std::unique_ptr<inflate_state> state = std::move(pool.back());
    pool.pop_back();
    return state;
  }

  // The window holds raw byte `from` (libpng reads on, so the window moves
  // on: a fresh one starts there).
  Status fill(size_t from) {
    if (from >= window_begin_ && from < window_end_) return Status::Ok();
    if (from != window_end_) return Status::Internal("the PNG stream was not read in order");
    window_begin_ = from;
    while (window_end_ - window_begin_ < kWindow && window_end_ < raw_bytes_) {
      IMGQ_RETURN_IF_ERROR(feed());
      inflate_->next_out = window_.data() + (window_end_ - window_begin_);
      const size_t room = std::min(kWindow - (window_end_ - window_begin_), raw_bytes_ - window_end_);
      inflate_->avail_out = static_cast<uint32_t>(room);
      const int rc = isal_inflate(inflate_.get());
      window_end_ += room - inflate_->avail_out;
      if (rc < 0) return inflate_error(rc);
      if (inflate_->block_state == ISAL_BLOCK_FINISH && window_end_ < raw_bytes_) {
        return Status::InvalidImage("the image data ends early");
      }
      if (inflate_->avail_out > 0 && inflate_->avail_in == 0 && next_idat_ == idat_.size()) {
        return Status::InvalidImage("the image data ends early");
      }
    }
    return Status::Ok();
  }
  // The next IDAT chunk's data to ISA-L once it has used the last, its CRC
  // checked first.
  Status feed() {
    if (inflate_->avail_in > 0 || next_idat_ == idat_.size()) return Status::Ok();
    const uint8_t* chunk = png_.data() + idat_[next_idat_++];
    const uint32_t length = be32(chunk);
    if (crc32_gzip_refl(0, chunk + 4, size_t{length} + 4) != be32(chunk + 8 + length)) {
      return Status::InvalidImage("IDAT: CRC error");
    }
    inflate_->next_in = const_cast<uint8_t*>(chunk + 8);
    inflate_->avail_in = length;
    return Status::Ok();
  }
  // Every row is read: the stream's end and its Adler-32 (what libpng would
  // have checked), once.
  Status finish() {
    if (finished_) return Status::Ok();
    finished_ = true;
    uint8_t spare[64];
    while (inflate_->block_state != ISAL_BLOCK_FINISH) {
      IMGQ_RETURN_IF_ERROR(feed());
      if (inflate_->avail_in == 0) return Status::InvalidImage("the image data ends early (no end of stream)");
      inflate_->next_out = spare;
      inflate_->avail_out = sizeof spare;  // more rows than the image has: ignored, as libpng does
      const int rc = isal_inflate(inflate_.get());
      if (rc < 0) return inflate_error(rc);
    }
    return Status::Ok();
  }
  static Status inflate_error(int rc) {
    return Status::InvalidImage(rc == ISAL_INCORRECT_CHECKSUM ? "the image data's Adler-32 is wrong"
                                                              : "the image data does not inflate (ISA-L error " +
                                                                    std::to_string(rc) + ")");
  }

  std::span<const uint8_t> png_;
  size_t first_idat_ = 0, after_idat_ = 0;
  std::vector<size_t> idat_;  // where each IDAT chunk starts
  size_t next_idat_ = 0;
  uint64_t raw_bytes_ = 0, chunk_data_ = 0;
  uint8_t head_[10] = {};  // length, "IDAT", zlib header
  std::unique_ptr<inflate_state> inflate_;
  std::vector<uint8_t> window_;
  size_t window_begin_ = 0, window_end_ = 0;  // raw bytes the window holds
  bool finished_ = false;
};

// libpng reports errors through a longjmp. Every function that calls into
// libpng sets the jump point itself and holds no object with a destructor,
// so nothing is skipped when the jump comes.
class PngRowDecoder final : public RowDecoder {
 public:
  PngRowDecoder(std::span<const uint8_t> bytes, size_t isal_from) : bytes_(bytes), isal_from_(isal_from) {}
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
    InflatedPngStream* stream = self->stream_.get();
    if (count > (stream != nullptr ? stream->size() : self->bytes_.size()) - self->at_) {
      png_error(png, "the data ends early");
    }
    if (stream != nullptr) {
      bool failed = false;
      {  // (no destructor may be skipped by the jump)
        const Status read = stream->read(self->at_, out, count);
        if (!read.ok()) {
          std::snprintf(self->error_, sizeof self->error_, "%s", read.message().c_str());
          failed = true;
        }
      }
      if (failed) png_longjmp(png, 1);
    } else {
      std::memcpy(out, self->bytes_.data() + self->at_, count);
    }
    self->at_ += count;
  }

  bool start() {
    stream_ = InflatedPngStream::make(bytes_, isal_from_);
    // The stored copy's Adler-32 is not made: libpng must be able to skip it.
    if (stream_ != nullptr && png_set_option(png_, PNG_IGNORE_ADLER32, PNG_OPTION_ON) == PNG_OPTION_INVALID) {
      stream_.reset();
    }
    if (setjmp(png_jmpbuf(png_)) != 0) return false;
    png_set_read_fn(png_, this, &PngRowDecoder::on_read);
    png_read_info(png_, info_ptr_);
    // From the image data on, the CRCs are checked by the stream, not libpng.
    if (stream_ != nullptr) png_set_crc_action(png_, PNG_CRC_QUIET_USE, PNG_CRC_DEFAULT);
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
  size_t isal_from_;
  std::unique_ptr<InflatedPngStream> stream_;  // or libpng inflates as it reads
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

std::unique_ptr<RowDecoder> open_row_decoder(std::span<const uint8_t> bytes, size_t isal_from) {
  const ImageFormat format = sniff_format(bytes);
  if (format == ImageFormat::kPng) {
    auto decoder = std::make_unique<PngRowDecoder>(bytes, isal_from);
    if (decoder->open()) return decoder;
    return nullptr;
  }
  if (format == ImageFormat::kJpeg) {
    auto decoder = std::make_unique<JpegRowDecoder>(bytes);
    if (decoder->open()) return decoder;
    return nullptr;
  }
  return nullptr;
}

}  // namespace imgq::workers
