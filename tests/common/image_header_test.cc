// The header check against files OpenCV writes and reads: the dimensions it
// reports equal the decoded ones; bombs, truncations and garbage are refused
// with messages that say what was wrong, before any decoder runs.
#include "imgq/common/image_header.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"
#include "imgq/common/batch_paths.h"
#include "imgq/common/file_io.h"
#include "imgq/mpi_workers/image_io.h"

namespace imgq {
namespace {

using testing::make_image;
using testing::Pattern;
using Bytes = std::vector<uint8_t>;

Bytes encode(const cv::Mat& image, const std::string& ext) {
  Bytes out;
  EXPECT_TRUE(cv::imencode(ext, image, out)) << ext;
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}
void put_le(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Headers declaring huge images, a few dozen bytes each.
Bytes png_bomb(uint32_t w, uint32_t h) {
  Bytes b = text("\x89PNG\r\n\x1a\n");
  put_be32(b, 13);
  for (char c : std::string("IHDR")) b.push_back(static_cast<uint8_t>(c));
  put_be32(b, w);
  put_be32(b, h);
  for (const int v : {8, 2, 0, 0, 0}) b.push_back(static_cast<uint8_t>(v));
  put_be32(b, 0);  // CRC (not checked here)
  put_be32(b, 0);
  for (char c : std::string("IEND")) b.push_back(static_cast<uint8_t>(c));
  put_be32(b, 0);
  return b;
}

Bytes jpeg_bomb() {
  return {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03, 1, 0x11, 0, 2,
          0x11, 0,    3,    0x11, 0,    0xFF, 0xD9};
}

Bytes tiff_bomb() {
  Bytes b = text(std::string("II*\0", 4));
  put_le(b, 8, 4);
  put_le(b, 2, 2);
  for (const uint16_t tag : {uint16_t{256}, uint16_t{257}}) {
    put_le(b, tag, 2);
    put_le(b, 4, 2);  // LONG
    put_le(b, 1, 4);
    put_le(b, 100'000, 4);
  }
  put_le(b, 0, 4);
  return b;
}

// BigTIFF: width and height as LONG8, so up to 2^64 - 1 each.
Bytes bigtiff_bomb(uint64_t w, uint64_t h) {
  Bytes b = text(std::string("II+\0", 4));
  put_le(b, 8, 2);   // offset size
  put_le(b, 0, 2);
  put_le(b, 16, 8);  // first directory
  put_le(b, 2, 8);   // entries
  for (const auto& [tag, value] : {std::pair<uint16_t, uint64_t>{256, w}, {257, h}}) {
    put_le(b, tag, 2);
    put_le(b, 16, 2);  // LONG8
    put_le(b, 1, 8);
    put_le(b, value, 8);
  }
  put_le(b, 0, 8);
  return b;
}

Bytes bmp_of(uint32_t w, uint32_t h) {
  Bytes b = text("BM");
  put_le(b, 0, 4 + 4 + 4);
  put_le(b, 40, 4);
  put_le(b, w, 4);
  put_le(b, h, 4);
  put_le(b, 1, 2);
  put_le(b, 24, 2);
  b.resize(54, 0);
  return b;
}

Bytes bmp_bomb() {
  Bytes b = text("BM");
  put_le(b, 0, 4 + 4 + 4);
  put_le(b, 40, 4);
  put_le(b, 32'000, 4);
  put_le(b, 32'000, 4);
  put_le(b, 1, 2);
  put_le(b, 24, 2);
  b.resize(54, 0);
  return b;
}

Bytes webp_bomb() {
  Bytes b = text("RIFF");
  put_le(b, 22, 4);
  for (char c : std::string("WEBPVP8X")) b.push_back(static_cast<uint8_t>(c));
  put_le(b, 10, 4);
  put_le(b, 0, 4);
  put_le(b, 16'383, 3);  // 16384 x 16384 canvas
  put_le(b, 16'383, 3);
  return b;
}

TEST(ImageHeader, ReadsWhatOpenCvWritesInEveryFormat) {
  const cv::Mat color = make_image(137, 123, CV_8U, 3, Pattern::kShapes);
  const cv::Mat gray = make_image(137, 123, CV_8U, 1, Pattern::kShapes);
  const cv::Mat deep = make_image(137, 123, CV_16U, 4, Pattern::kNoise);
  const std::vector<std::pair<std::string, const cv::Mat*>> cases = {
      {".png", &color}, {".png", &deep}, {".jpg", &color}, {".jpg", &gray}, {".tiff", &deep},
      {".bmp", &color}, {".webp", &color}, {".ppm", &color}, {".pgm", &gray}, {".pbm", &gray},
      {".pam", &color}, {".jp2", &color}, {".ras", &color}};
  size_t tested = 0;
  for (const auto& [ext, image] : cases) {
    if (!cv::haveImageWriter(ext)) continue;
    ++tested;
    const Bytes bytes = encode(*image, ext);
    auto header = read_image_header(bytes);
    ASSERT_TRUE(header.ok()) << ext << ": " << header.status().ToString();
    EXPECT_EQ(header->width, 123u) << ext;
    EXPECT_EQ(header->height, 137u) << ext;
  }
  EXPECT_EQ(tested, cases.size()) << "Debian's OpenCV writes every one of these formats";
}

TEST(ImageHeader, AgreesWithTheDecoderOnEverySamplePhotograph) {
  std::vector<std::filesystem::path> photos;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(IMGQ_SAMPLE_DATA_DIR)) {
    if (entry.is_regular_file() && is_image_extension(extension_of(entry.path()))) photos.push_back(entry.path());
  }
  ASSERT_GT(photos.size(), 50u) << "opencv-doc's sample photographs are missing";
  for (const std::filesystem::path& path : photos) {
    auto bytes = read_file(path);
    ASSERT_TRUE(bytes.ok());
    auto header = read_image_header(*bytes);
    ASSERT_TRUE(header.ok()) << path << ": " << header.status().ToString();
    const cv::Mat decoded = cv::imdecode(*bytes, cv::IMREAD_UNCHANGED);
    EXPECT_EQ(header->width, static_cast<uint64_t>(decoded.cols)) << path;
    EXPECT_EQ(header->height, static_cast<uint64_t>(decoded.rows)) << path;
  }
}

TEST(ImageHeader, BombsAreRefusedFromTheirHeaders) {
  const std::vector<std::pair<std::string, Bytes>> bombs = {
      {"PNG declares 100000 x 100000 pixels (10000.0 megapixels)", png_bomb(100'000, 100'000)},
      {"PNG declares 32000 x 32000 pixels", png_bomb(32'000, 32'000)},
      {"JPEG declares 65535 x 65535 pixels", jpeg_bomb()},
      {"TIFF declares 100000 x 100000 pixels", tiff_bomb()},
      {"BMP declares 32000 x 32000 pixels", bmp_bomb()},
      {"WebP declares 16384 x 16384 pixels", webp_bomb()},
      {"PNM declares 100000 x 100000 pixels", text("P6\n# a comment\n100000 100000\n255\n")},
  };
  for (const auto& [what, bytes] : bombs) {
    auto checked = check_image_header(bytes, kDefaultMaxPixels, "bomb.img");
    ASSERT_EQ(checked.status().code(), StatusCode::kTooLarge) << what << ": " << checked.status().ToString();
    EXPECT_NE(checked.status().message().find("bomb.img: " + what), std::string::npos) << checked.status().message();
    EXPECT_NE(checked.status().message().find("the limit is 250.0 megapixels (--max-pixels)"), std::string::npos);
    // The decoder path refuses it the same way, before OpenCV allocates.
    EXPECT_EQ(workers::decode_image(bytes).status().code(), StatusCode::kTooLarge) << what;
  }
  // Declared sizes whose 64-bit product wraps (2^32 x 2^32 = 0, 2^32 x
  // (2^32 + 1) = 2^32) are refused, not taken for small images.
  for (const std::string& bomb : {std::string("P6\n4294967296 4294967296\n255\n"),
                                  std::string("P5\n4294967296 4294967297\n255\n"),
                                  std::string("P7\nWIDTH 4294967296\nHEIGHT 4294967296\nDEPTH 3\nMAXVAL 255\n"
                                              "TUPLTYPE RGB\nENDHDR\n"),
                                  std::string("P6\n9999999999 9999999999\n255\n")}) {
    auto checked = check_image_header(text(bomb), kDefaultMaxPixels, "wrap.pnm");
    EXPECT_EQ(checked.status().code(), StatusCode::kTooLarge) << bomb << ": " << checked.status().ToString();
  }
  // The largest sizes each format can declare, and BigTIFF's 64-bit ones
  // whose product wraps: each is too large, none is taken for a small image.
  const std::vector<std::pair<std::string, Bytes>> largest = {
      {"PNG 2^32-1 x 2^32-1", png_bomb(0xffff'ffffu, 0xffff'ffffu)},
      {"BigTIFF 2^32 x 2^32 (wraps to 0)", bigtiff_bomb(uint64_t{1} << 32, uint64_t{1} << 32)},
      {"BigTIFF 2^63 x 2 (wraps to 0)", bigtiff_bomb(uint64_t{1} << 63, 2)},
      {"BigTIFF 2^64-1 x 2^64-1 (wraps to 1)", bigtiff_bomb(UINT64_MAX, UINT64_MAX)},
      {"BMP 2^31-1 x -2^31 (top-down)", bmp_of(0x7fff'ffffu, 0x8000'0000u)},
      {"WebP VP8X 16384 x 16384", webp_bomb()},
  };
  for (const auto& [what, bytes] : largest) {
    auto checked = check_image_header(bytes, kDefaultMaxPixels, "wrap.img");
    EXPECT_EQ(checked.status().code(), StatusCode::kTooLarge) << what << ": " << checked.status().ToString();
  }
  ImageHeader wraps;
  wraps.width = wraps.height = uint64_t{1} << 32;
  EXPECT_EQ(wraps.pixels(), UINT64_MAX);
  wraps.height = 3;
  EXPECT_EQ(wraps.pixels(), uint64_t{3} << 32);
  // The limit is the operator's: 0 lifts it, a lower one applies.
  EXPECT_TRUE(check_image_header(png_bomb(100'000, 100'000), 0).ok());
  EXPECT_EQ(check_image_header(png_bomb(1000, 1001), 1'000'000).status().code(), StatusCode::kTooLarge);
  EXPECT_TRUE(check_image_header(png_bomb(1000, 1000), 1'000'000).ok());
}

TEST(ImageHeader, TruncatedPngAndJpegAreRefusedAtEveryCut) {
  const cv::Mat image = make_image(64, 48, CV_8U, 3, Pattern::kNoise);
  for (const std::string ext : {".png", ".jpg"}) {
    const Bytes whole = encode(image, ext);
    ASSERT_TRUE(read_image_header(whole).ok());
    for (size_t cut : {size_t{1}, size_t{7}, size_t{20}, size_t{40}, whole.size() / 3, whole.size() / 2,
                       whole.size() - 3, whole.size() - 1}) {
      const Bytes part(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
      auto header = read_image_header(part);
      EXPECT_EQ(header.status().code(), StatusCode::kInvalidImage) << ext << " cut at " << cut;
      // OpenCV alone decodes a truncated JPEG into a grey-padded image.
      EXPECT_FALSE(workers::decode_image(part).ok()) << ext << " cut at " << cut;
    }
  }
  const Bytes jpeg = encode(image, ".jpg");
  auto cut = read_image_header(Bytes(jpeg.begin(), jpeg.end() - 2));
  EXPECT_NE(cut.status().message().find("JPEG: the file is truncated (no end-of-image marker"), std::string::npos)
      << cut.status().message();
}

TEST(ImageHeader, APngWithABadChecksumIsRefusedByTheDecoder) {
  Bytes png = encode(make_image(64, 48, CV_8U, 3, Pattern::kNoise), ".png");
  // The first IDAT's first data byte changes; its CRC no longer matches.
  const std::string idat = "IDAT";
  auto at = std::search(png.begin(), png.end(), idat.begin(), idat.end());
  ASSERT_NE(at, png.end());
  at[4 + 10] ^= 0x55;
  EXPECT_TRUE(read_image_header(png).ok()) << "the structure is intact";
  auto decoded = workers::decode_image(png);
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidImage);
  EXPECT_NE(decoded.status().message().find("PNG: the image data is corrupt"), std::string::npos)
      << decoded.status().message();
}

TEST(ImageHeader, GarbageGetsMessagesThatSayWhatItIs) {
  EXPECT_NE(read_image_header({}).status().message().find("empty (0 bytes)"), std::string::npos);
  auto txt = read_image_header(text("hello, world: this is text"));
  EXPECT_EQ(txt.status().code(), StatusCode::kInvalidImage);
  EXPECT_NE(txt.status().message().find("not a recognised image format (it starts with \"hello, w\")"),
            std::string::npos)
      << txt.status().message();
  auto gif = read_image_header(text("GIF89a\x01\x00\x01\x00"));
  EXPECT_EQ(gif.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(gif.status().message().find("GIF images are not supported"), std::string::npos);
  cv::RNG rng(3);
  for (int i = 0; i < 200; ++i) {
    Bytes noise(static_cast<size_t>(rng.uniform(1, 300)));
    rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
    EXPECT_FALSE(read_image_header(noise).ok());
  }
  // Magic numbers followed by nothing: truncated, never a crash.
  for (const std::string& magic : {std::string("\x89PNG\r\n\x1a\n"), std::string("\xff\xd8\xff"),
                                  std::string("II*\0", 4), std::string("MM\0+", 4), std::string("BM"),
                                  std::string("RIFF\0\0\0\0WEBPVP8X", 16), std::string("P6 "),
                                  std::string("\0\0\0\x0cjP  \r\n\x87\n", 12), std::string("\xff\x4f\xff\x51"),
                                  std::string("\x59\xa6\x6a\x95")}) {
    auto header = read_image_header(text(magic));
    EXPECT_EQ(header.status().code(), StatusCode::kInvalidImage) << header.status().ToString();
  }
}

}  // namespace
}  // namespace imgq
