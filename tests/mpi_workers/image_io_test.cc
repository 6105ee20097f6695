#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/pnm_io.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"

namespace imgq::workers {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<uint8_t> png_of(const cv::Mat& m) {
  std::vector<uint8_t> out;
  cv::imencode(".png", m, out);
  return out;
}

TEST(Decode, KeepsDepthAndChannels) {
  for (int depth : {CV_8U, CV_16U}) {
    for (int channels : {1, 3, 4}) {
      const cv::Mat m = make_image(9, 13, depth, channels, Pattern::kNoise);
      auto d = decode_image(png_of(m));
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      EXPECT_TRUE(SameImage(m, *d));
    }
  }
}

TEST(Decode, BadBytesAreInvalidImages) {
  auto empty = decode_image({});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidImage);
  EXPECT_NE(empty.status().message().find("empty (0 bytes)"), std::string::npos);

  const auto text = bytes_of("this is not an image at all\n");
  EXPECT_EQ(decode_image(text).status().code(), StatusCode::kInvalidImage);

  cv::RNG rng(7);
  std::vector<uint8_t> noise(4096);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
  EXPECT_EQ(decode_image(noise).status().code(), StatusCode::kInvalidImage);

  auto png = png_of(make_image(64, 64, CV_8U, 3, Pattern::kNoise));
  png.resize(png.size() / 2);
  auto truncated = decode_image(png);
  EXPECT_EQ(truncated.status().code(), StatusCode::kInvalidImage) << truncated.status().ToString();
}

// A TIFF is decoded as the ranks read it, to imdecode's pixels, and a
// corrupt strip is refused by name even where OpenCV's 8-bit path would
// return whatever its buffer held.
TEST(Decode, TiffAsTheRanksReadIt) {
  for (int depth : {CV_8U, CV_16U}) {
    const cv::Mat m = make_image(40, 33, depth, 3, Pattern::kNoise);
    std::vector<uint8_t> tiff;
    ASSERT_TRUE(cv::imencode(".tif", m, tiff, {cv::IMWRITE_TIFF_COMPRESSION, 8}));
    auto d = decode_image(tiff);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_TRUE(SameImage(cv::imdecode(tiff, cv::IMREAD_UNCHANGED), *d));
    for (size_t i = 10; i < 40; ++i) tiff[i] ^= 0xA5;  // the first strip
    auto corrupt = decode_image(tiff);
    ASSERT_FALSE(corrupt.ok()) << depth;
    EXPECT_EQ(corrupt.status().code(), StatusCode::kInvalidImage);
    EXPECT_NE(corrupt.status().message().find("(strip 0 of rows"), std::string::npos) << corrupt.status().message();
  }
}

// A PNG is decoded by the row decoder (ISA-L's inflate), to imdecode's
// pixels, and a corrupt one is refused naming the row.
TEST(Decode, PngAsTheRowDecoderReadsIt) {
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    if (image.depth() != CV_8U && image.depth() != CV_16U) continue;
    std::vector<uint8_t> png;
    ASSERT_TRUE(cv::imencode(".png", image, png));
    auto d = decode_image(png);
    ASSERT_TRUE(d.ok()) << name << ": " << d.status().ToString();
    EXPECT_TRUE(SameImage(cv::imdecode(png, cv::IMREAD_UNCHANGED), *d)) << name;
  }
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", make_image(60, 50, CV_8U, 3, Pattern::kNoise), png));
  png[png.size() / 2] ^= 0x55;
  auto corrupt = decode_image(png);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), StatusCode::kInvalidImage);
  EXPECT_NE(corrupt.status().message().find("at row"), std::string::npos) << corrupt.status().message();
}

TEST(Decode, RefusesPixelKindsImgqDoesNotProcess) {
  cv::Mat f(4, 4, CV_32FC1, cv::Scalar(0.5));
  std::vector<uint8_t> tiff;
  ASSERT_TRUE(cv::imencode(".tiff", f, tiff));
  auto d = decode_image(tiff);
  EXPECT_EQ(d.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(d.status().message().find("8- and 16-bit"), std::string::npos);
}

TEST(Encode, RoundTripsLosslessFormats) {
  const cv::Mat deep = make_image(7, 5, CV_16U, 3, Pattern::kNoise);
  for (const char* format : {"png", "tif", "ppm", "PNG"}) {
    auto e = encode_image(deep, format);
    ASSERT_TRUE(e.ok()) << format << ": " << e.status().ToString();
    EXPECT_TRUE(SameImage(deep, *decode_image(*e))) << format;
  }
}

// TIFF is written by our LZW (tiff_lzw.h): OpenCV reads every depth and
// channel count back as it reads its own file of the image.
TEST(Encode, TiffDecodesAsOpenCvsOwn) {
  int files = 0;
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    if (image.depth() != CV_8U && image.depth() != CV_16U) continue;
    auto ours = encode_image(image, "tiff");
    ASSERT_TRUE(ours.ok()) << name << ": " << ours.status().ToString();
    std::vector<uint8_t> opencv;
    ASSERT_TRUE(cv::imencode(".tif", image, opencv));
    EXPECT_TRUE(SameImage(cv::imdecode(opencv, cv::IMREAD_UNCHANGED), cv::imdecode(*ours, cv::IMREAD_UNCHANGED)))
        << name;
    ++files;
  }
  EXPECT_GT(files, 10);
}

TEST(Encode, RefusesWhatAFormatCannotStore) {
  const cv::Mat deep = make_image(7, 5, CV_16U, 3, Pattern::kNoise);
  auto jpg = encode_image(deep, "jpg");
  EXPECT_EQ(jpg.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(jpg.status().message().find("jpg cannot store a 5x7 16-bit 3-channel result"), std::string::npos)
      << jpg.status().message();
  EXPECT_NE(jpg.status().message().find("to_8bit"), std::string::npos);
  EXPECT_EQ(encode_image(make_image(7, 5, CV_8U, 4, Pattern::kNoise), "jpg").status().code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(encode_image(make_image(7, 5, CV_8U, 1, Pattern::kNoise), "ppm").status().code(),
            StatusCode::kUnsupported);
  auto unknown = encode_image(deep, "gif");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("png, tif"), std::string::npos);
  EXPECT_TRUE(encode_image(make_image(7, 5, CV_8U, 3, Pattern::kNoise), "jpg").ok());
}

TEST(Files, WriteCreatesFoldersAndLeavesNoTemporary) {
  const auto dir = std::filesystem::temp_directory_path() / ("imgq_io_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto path = dir / "a" / "b" / "out.bin";
  const std::vector<uint8_t> data = {1, 2, 3};
  ASSERT_TRUE(write_file(path, data).ok());
  EXPECT_EQ(*read_file(path), data);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path.parent_path())) ++files;
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(read_file(dir / "missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(read_file(dir).status().code(), StatusCode::kIoError);
  std::filesystem::remove_all(dir);
}

TEST(PnmLayout, ReadsWhatOpenCvWritesAndLeavesTheRestToIt) {
  for (const int type : {CV_8UC1, CV_8UC3, CV_16UC1, CV_16UC3}) {
    const cv::Mat image = imgq::testing::make_image(7, 5, CV_MAT_DEPTH(type), CV_MAT_CN(type),
                                                    imgq::testing::Pattern::kNoise);
    std::vector<uchar> encoded;
    ASSERT_TRUE(cv::imencode(CV_MAT_CN(type) == 3 ? ".ppm" : ".pgm", image, encoded));
    const auto layout = pnm_layout(encoded);
    ASSERT_TRUE(layout.has_value());
    EXPECT_EQ(layout->rows, 7);
    EXPECT_EQ(layout->cols, 5);
    EXPECT_EQ(layout->type, type);
    EXPECT_EQ(layout->file_bytes(), encoded.size());
    EXPECT_EQ(pnm_header(7, 5, type).size(), layout->data_offset);
    EXPECT_EQ(std::string(encoded.begin(), encoded.begin() + static_cast<long>(layout->data_offset)),
              pnm_header(7, 5, type));
  }
  EXPECT_FALSE(pnm_layout(bytes_of("P3\n5 7\n255\n")));         // ASCII
  EXPECT_FALSE(pnm_layout(bytes_of("P6\n5 7\n1023\n")));        // maxval OpenCV scales
  EXPECT_FALSE(pnm_layout(bytes_of("P6\n# made by hand\n5 7\n255\n")));  // comments: OpenCV's
  EXPECT_FALSE(pnm_layout(bytes_of("P6\n5 7\n255")));             // header cut short
  EXPECT_FALSE(pnm_layout(bytes_of("P6\n0 7\n255\n")));
  EXPECT_FALSE(pnm_layout(bytes_of("\x89PNG\r\n")));
  EXPECT_TRUE(pnm_layout(bytes_of("P5 5 7 255 ")));
}

}  // namespace
}  // namespace imgq::workers
