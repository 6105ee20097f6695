// The row decoders must give what cv::imdecode(IMREAD_UNCHANGED) gives, byte
// for byte, read in bands of any size: for every PNG colour type and bit
// depth (written here with libpng, since OpenCV writes only some of them),
// and for gray, colour, progressive and restart-marker JPEGs. What they do not
// stream, they decline; what is corrupt, they refuse with the format named.
#include "imgq/mpi_workers/row_decoder.h"

#include <png.h>
#include <zlib.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"

namespace imgq::workers {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

cv::Mat reference(const std::vector<uint8_t>& bytes) {
  return cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data())),
                      cv::IMREAD_UNCHANGED);
}

// Reads the whole image in bands of `band` rows (the last may be shorter).
Result<cv::Mat> read_in_bands(RowDecoder& decoder, int band) {
  const ImageInfo info = decoder.info();
  cv::Mat image(info.rows, info.cols, info.type());
  for (int y = 0; y < info.rows; y += band) {
    cv::Mat rows(std::min(band, info.rows - y), info.cols, info.type());
    IMGQ_RETURN_IF_ERROR(decoder.read(rows));
    rows.copyTo(image.rowRange(y, y + rows.rows));
  }
  return image;
}

// libpng's own inflate (zlib), for the images ISA-L's path does not take.
constexpr size_t kLibpngInflate = SIZE_MAX;

// Both inflates: libpng's (zlib) and ISA-L's.
void ExpectSameAsOpenCv(const std::vector<uint8_t>& bytes, const std::string& what) {
  const cv::Mat expected = reference(bytes);
  ASSERT_FALSE(expected.empty()) << what;
  for (size_t isal_from : {kLibpngInflate, size_t{0}})
  for (int band : {1, 7, 64, 1 << 20}) {
    auto decoder = open_row_decoder(bytes, isal_from);
    ASSERT_NE(decoder, nullptr) << what;
    EXPECT_EQ(decoder->info().type(), expected.type()) << what;
    auto image = read_in_bands(*decoder, band);
    ASSERT_TRUE(image.ok()) << what << ": " << image.status().ToString();
    EXPECT_TRUE(SameImage(expected, *image)) << what << " in bands of " << band;
    EXPECT_EQ(decoder->rows_read(), expected.rows) << what;
  }
}

// A PNG of any colour type and depth from libpng itself. Samples come from
// `seed`; palette images get a palette of `palette` entries, and `trns` adds a
// tRNS chunk.
std::vector<uint8_t> libpng_file(int rows, int cols, int color_type, int bit_depth, bool trns, bool interlaced,
                                 unsigned seed) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png)) != 0) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write the test image";
    return {};
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, size_t n) {
        auto* o = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        o->insert(o->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(cols), static_cast<png_uint_32>(rows), bit_depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  const int entries = 1 << std::min(bit_depth, 8);
  std::vector<png_color> palette(static_cast<size_t>(entries));
  std::vector<png_byte> alphas(static_cast<size_t>(entries));
  cv::RNG rng(seed);
  for (int i = 0; i < entries; ++i) {
    palette[static_cast<size_t>(i)] = {static_cast<png_byte>(rng.uniform(0, 256)),
                                       static_cast<png_byte>(rng.uniform(0, 256)),
                                       static_cast<png_byte>(rng.uniform(0, 256))};
    alphas[static_cast<size_t>(i)] = static_cast<png_byte>(rng.uniform(0, 256));
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, palette.data(), entries);
  png_color_16 trans_color{};
  trans_color.gray = static_cast<png_uint_16>((1 << bit_depth) - 1);
  trans_color.red = trans_color.green = trans_color.blue = static_cast<png_uint_16>(bit_depth == 16 ? 1000 : 10);
  if (trns) png_set_tRNS(png, info, alphas.data(), entries, &trans_color);
  png_write_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  std::vector<std::vector<png_byte>> data(static_cast<size_t>(rows), std::vector<png_byte>(row_bytes));
  std::vector<png_bytep> pointers;
  for (auto& row : data) {
    for (auto& b : row) b = static_cast<png_byte>(rng.uniform(0, 256));
    pointers.push_back(row.data());
  }
  // Make a few pixels hit the tRNS colour exactly.
  if (trns && row_bytes >= 6 && bit_depth == 8 && color_type == PNG_COLOR_TYPE_RGB) {
    std::memset(data[0].data(), 10, 3);
  }
  png_write_image(png, pointers.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

TEST(RowDecoder, PngFromOpenCvOfEveryKindAndSize) {
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(".png", image, bytes)) << name;
    ExpectSameAsOpenCv(bytes, "png " + name);
  }
}

TEST(RowDecoder, PngOfEveryColourTypeAndBitDepth) {
  struct Kind {
    int color_type;
    std::vector<int> depths;
  };
  const std::vector<Kind> kinds = {
      {PNG_COLOR_TYPE_GRAY, {1, 2, 4, 8, 16}}, {PNG_COLOR_TYPE_GRAY_ALPHA, {8, 16}}, {PNG_COLOR_TYPE_RGB, {8, 16}},
      {PNG_COLOR_TYPE_RGB_ALPHA, {8, 16}},      {PNG_COLOR_TYPE_PALETTE, {1, 2, 4, 8}},
  };
  unsigned seed = 1;
  for (const Kind& kind : kinds) {
    for (int depth : kind.depths) {
      for (bool trns : {false, true}) {
        if (trns && (kind.color_type & PNG_COLOR_MASK_ALPHA) != 0) continue;
        for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 1}, {13, 7}, {40, 33}}) {
          const auto bytes = libpng_file(rows, cols, kind.color_type, depth, trns, false, seed++);
          ExpectSameAsOpenCv(bytes, "libpng type " + std::to_string(kind.color_type) + " depth " +
                                        std::to_string(depth) + (trns ? " tRNS " : " ") + std::to_string(rows) +
                                        "x" + std::to_string(cols));
        }
      }
    }
  }
}

TEST(RowDecoder, InterlacedPngIsDeclined) {
  const auto bytes = libpng_file(20, 20, PNG_COLOR_TYPE_RGB, 8, false, true, 5);
  ASSERT_FALSE(reference(bytes).empty());
  EXPECT_EQ(open_row_decoder(bytes), nullptr);
}

TEST(RowDecoder, JpegGrayColourProgressiveAndRestartMarkers) {
  const std::vector<std::vector<int>> settings = {
      {}, {cv::IMWRITE_JPEG_QUALITY, 60}, {cv::IMWRITE_JPEG_PROGRESSIVE, 1},
      {cv::IMWRITE_JPEG_RST_INTERVAL, 3}, {cv::IMWRITE_JPEG_OPTIMIZE, 1}};
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 1}, {17, 9}, {64, 48}, {123, 77}}) {
    for (int channels : {1, 3}) {
      const cv::Mat image = make_image(rows, cols, CV_8U, channels, Pattern::kShapes);
      for (size_t s = 0; s < settings.size(); ++s) {
        std::vector<uint8_t> bytes;
        ASSERT_TRUE(cv::imencode(".jpg", image, bytes, settings[s]));
        ExpectSameAsOpenCv(bytes, "jpeg " + std::to_string(rows) + "x" + std::to_string(cols) + "x" +
                                      std::to_string(channels) + " setting " + std::to_string(s));
      }
    }
  }
}

TEST(RowDecoder, SamplePhotographs) {
  for (const auto& [name, image] : imgq::testing::sample_photographs(8)) {
    for (const char* ext : {".png", ".jpg"}) {
      if (std::string(ext) == ".jpg" && (image.depth() != CV_8U || image.channels() == 4)) continue;
      std::vector<uint8_t> bytes;
      ASSERT_TRUE(cv::imencode(ext, image, bytes)) << name;
      ExpectSameAsOpenCv(bytes, name + ext);
    }
  }
}

TEST(RowDecoder, OtherFormatsAndGarbageAreDeclined) {
  const cv::Mat image = make_image(9, 9, CV_8U, 3, Pattern::kNoise);
  for (const char* ext : {".bmp", ".tif", ".ppm", ".webp"}) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(ext, image, bytes)) << ext;
    EXPECT_EQ(open_row_decoder(bytes), nullptr) << ext;
  }
  EXPECT_EQ(open_row_decoder({}), nullptr);
  const std::vector<uint8_t> png_magic = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0};
  EXPECT_EQ(open_row_decoder(png_magic), nullptr);
  const std::vector<uint8_t> jpeg_magic = {0xFF, 0xD8, 0xFF, 0xE0, 0, 2};
  EXPECT_EQ(open_row_decoder(jpeg_magic), nullptr);
}

// Damage in the compressed rows: both OpenCV and the decoder refuse a PNG
// (libpng checks the zlib stream and the chunk CRCs); the decoder names the
// row it reached.
TEST(RowDecoder, CorruptPngIsRefusedWithTheRow) {
  const cv::Mat image = make_image(200, 150, CV_8U, 3, Pattern::kNoise);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".png", image, bytes));
  std::vector<uint8_t> bad = bytes;
  bad[bad.size() / 2] ^= 0x55;  // inside IDAT: the chunk's CRC no longer holds
  EXPECT_TRUE(reference(bad).empty());
  for (size_t isal_from : {kLibpngInflate, size_t{0}}) {  // zlib's inflate, ISA-L's
    auto decoder = open_row_decoder(bad, isal_from);
    ASSERT_NE(decoder, nullptr);
    auto result = read_in_bands(*decoder, 16);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidImage);
    EXPECT_NE(result.status().message().find("PNG: the image data is corrupt"), std::string::npos)
        << result.status().message();
    EXPECT_NE(result.status().message().find("at row"), std::string::npos) << result.status().message();
    EXPECT_NE(result.status().message().find("CRC"), std::string::npos) << result.status().message();
    // Spent: the next read fails the same way, without touching libpng.
    cv::Mat more(1, 150, CV_8UC3);
    EXPECT_FALSE(decoder->read(more).ok());
  }
}

// A PNG taken apart into its chunks and put back together, CRCs made anew.
struct Chunk {
  std::string type;
  std::vector<uint8_t> data;
};
std::vector<Chunk> chunks_of(const std::vector<uint8_t>& png) {
  std::vector<Chunk> chunks;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t n = uint32_t{png[at]} << 24 | uint32_t{png[at + 1]} << 16 | uint32_t{png[at + 2]} << 8 | png[at + 3];
    chunks.push_back({std::string(reinterpret_cast<const char*>(png.data() + at + 4), 4),
                      std::vector<uint8_t>(png.begin() + static_cast<long>(at + 8),
                                           png.begin() + static_cast<long>(at + 8 + n))});
    at += 12 + n;
  }
  return chunks;
}
std::vector<uint8_t> png_of(const std::vector<Chunk>& chunks) {
  std::vector<uint8_t> png = {137, 80, 78, 71, 13, 10, 26, 10};
  for (const Chunk& c : chunks) {
    const uint32_t n = static_cast<uint32_t>(c.data.size());
    for (int shift : {24, 16, 8, 0}) png.push_back(static_cast<uint8_t>(n >> shift));
    const size_t body = png.size();
    png.insert(png.end(), c.type.begin(), c.type.end());
    png.insert(png.end(), c.data.begin(), c.data.end());
    const uint32_t crc = static_cast<uint32_t>(crc32(0, png.data() + body, static_cast<uInt>(png.size() - body)));
    for (int shift : {24, 16, 8, 0}) png.push_back(static_cast<uint8_t>(crc >> shift));
  }
  return png;
}

// The image data is inflated in one go (libdeflate) when the file checks
// out: in one IDAT chunk or many, with other chunks after them. When its
// CRCs hold but its stream does not inflate, libpng reads it as before and
// refuses it at its row.
TEST(RowDecoder, PngImageDataInOneOrManyChunks) {
  const cv::Mat image = make_image(301, 403, CV_16U, 3, Pattern::kNoise);  // 1.46 MB of rows: 23 stored blocks
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".png", image, bytes));
  const std::vector<Chunk> chunks = chunks_of(bytes);
  std::vector<Chunk> one;
  for (const Chunk& c : chunks) {
    if (c.type == "IDAT" && !one.empty() && one.back().type == "IDAT") {
      one.back().data.insert(one.back().data.end(), c.data.begin(), c.data.end());
    } else {
      one.push_back(c);
    }
    if (c.type == "IEND") one.insert(one.end() - 1, Chunk{"tEXt", {'a', 0, 'b'}});
  }
  ASSERT_LT(one.size(), chunks.size()) << "OpenCV's PNG has several IDAT chunks";
  ExpectSameAsOpenCv(png_of(one), "one IDAT chunk and a tEXt after it");
  std::vector<Chunk> split;
  for (const Chunk& c : one) {
    if (c.type != "IDAT") {
      split.push_back(c);
      continue;
    }
    for (size_t at = 0; at < c.data.size(); at += 1000) {
      const size_t end = std::min(at + 1000, c.data.size());
      split.push_back(
          {"IDAT", std::vector<uint8_t>(c.data.begin() + static_cast<long>(at), c.data.begin() + static_cast<long>(end))});
    }
  }
  ExpectSameAsOpenCv(png_of(split), "IDAT chunks of 1000 bytes");
  // The stream damaged, its CRCs right: libpng's own error, at a row.
  for (Chunk& c : one) {
    if (c.type == "IDAT") c.data[c.data.size() / 2] ^= 0x55;
  }
  const std::vector<uint8_t> damaged = png_of(one);
  EXPECT_TRUE(reference(damaged).empty());
  auto decoder = open_row_decoder(damaged, 0);
  ASSERT_NE(decoder, nullptr);
  auto result = read_in_bands(*decoder, 16);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("at row"), std::string::npos) << result.status().message();
}

TEST(RowDecoder, PngCutShortIsRefused) {
  const cv::Mat image = make_image(100, 80, CV_16U, 1, Pattern::kShapes);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".png", image, bytes));
  bytes.resize(bytes.size() * 2 / 3);
  auto decoder = open_row_decoder(bytes);
  ASSERT_NE(decoder, nullptr);
  auto result = read_in_bands(*decoder, 10);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("the data ends early"), std::string::npos) << result.status().message();
}

TEST(RowDecoder, JpegCutShortIsRefused) {
  const cv::Mat image = make_image(120, 90, CV_8U, 3, Pattern::kNoise);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".jpg", image, bytes));
  bytes.resize(bytes.size() / 2);
  auto decoder = open_row_decoder(bytes);
  ASSERT_NE(decoder, nullptr);
  auto result = read_in_bands(*decoder, 8);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidImage);
  EXPECT_NE(result.status().message().find("JPEG: the image data is corrupt"), std::string::npos)
      << result.status().message();
}

}  // namespace
}  // namespace imgq::workers
