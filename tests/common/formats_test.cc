// The format table (formats.h) against what it describes: OpenCV's own
// encoders and decoders, and the header reader.
#include "imgq/common/formats.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"
#include "imgq/common/image_header.h"

namespace imgq {
namespace {

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Formats, EveryOutputFormatIsReadBackAsItsKind) {
  for (std::string_view name : output_format_names()) {
    const int channels = name == "pgm" ? 1 : 3;
    const cv::Mat image = imgq::testing::make_image(21, 17, CV_8U, channels, imgq::testing::Pattern::kShapes);
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode("." + std::string(name), image, bytes)) << name;
    const ImageFormat kind = output_format_kind(name);
    EXPECT_EQ(sniff_format(bytes), kind) << name;
    EXPECT_TRUE(is_read(kind)) << name;
    EXPECT_TRUE(is_image_extension(name)) << name;
    auto header = read_image_header(bytes);
    ASSERT_TRUE(header.ok()) << name << ": " << header.status().ToString();
    EXPECT_EQ(header->format, format_name(kind)) << name;
  }
  EXPECT_EQ(output_format_kind("gif"), ImageFormat::kUnknown);
  EXPECT_FALSE(is_output_format("gif"));
  EXPECT_TRUE(is_output_format("TIFF"));
}

// What the table says a format stores is what OpenCV gives back: depth and
// channels, and for the lossless formats the pixels.
TEST(Formats, WhatEachFormatStoresRoundTripsThroughOpenCV) {
  int stored = 0;
  for (std::string_view name : output_format_names()) {
    for (int depth : {CV_8U, CV_16U}) {
      for (int channels : {1, 3, 4}) {
        const int bits = depth == CV_8U ? 8 : 16;
        const std::string kind = std::to_string(bits) + "-bit " + std::to_string(channels) + "-channel";
        const Status check = check_can_store(name, bits, channels, kind);
        EXPECT_EQ(check.ok(), can_store(name, bits, channels)) << name << " " << kind;
        if (!check.ok()) {
          EXPECT_EQ(check.code(), StatusCode::kUnsupported) << name << " " << kind;
          EXPECT_NE(check.message().find(kind), std::string::npos) << check.ToString();
          EXPECT_NE(check.message().find("use "), std::string::npos) << "says what to do: " << check.ToString();
          continue;
        }
        const cv::Mat image = imgq::testing::make_image(19, 23, depth, channels, imgq::testing::Pattern::kNoise);
        std::vector<uint8_t> bytes;
        ASSERT_TRUE(cv::imencode("." + std::string(name), image, bytes)) << name << " " << kind;
        cv::Mat back = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
        // WebP has no gray: a gray image comes back as three equal channels.
        if (name == "webp" && channels == 1 && back.channels() == 3) cv::extractChannel(back, back, 0);
        ASSERT_EQ(back.depth(), depth) << name << " " << kind;
        ASSERT_EQ(back.channels(), channels) << name << " " << kind;
        // OpenCV writes WebP lossless when given no quality, as imgq does.
        const bool lossy = name == "jpg" || name == "jpeg";
        if (!lossy) {
          EXPECT_EQ(cv::norm(image, back, cv::NORM_INF), 0) << name << " " << kind;
        }
        ++stored;
      }
    }
  }
  EXPECT_GT(stored, 20);
  EXPECT_EQ(check_can_store("gif", 8, 3, "8-bit 3-channel").code(), StatusCode::kInvalidArgument);
}

TEST(Formats, RecognisedButUnreadFormatsAreRefusedByName) {
  const std::vector<std::pair<std::string_view, std::string_view>> refused = {
      {"GIF89a\x01\x00\x01\x00", "GIF"},
      {"PF\n3 2\n-1.0\n", "PFM (32-bit float)"},
      {std::string_view("\x76\x2f\x31\x01\x02\x00\x00\x00", 8), "OpenEXR (float)"},
      {"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n", "Radiance HDR (float)"},
  };
  for (const auto& [start, name] : refused) {
    const ImageFormat f = sniff_format(bytes_of(start));
    EXPECT_EQ(format_name(f), name);
    EXPECT_FALSE(is_read(f)) << name;
    auto header = read_image_header(bytes_of(start));
    ASSERT_FALSE(header.ok()) << name;
    EXPECT_EQ(header.status().code(), StatusCode::kUnsupported) << name;
    EXPECT_EQ(header.status().message(), refused_format(f).message());
    EXPECT_NE(header.status().message().find(name), std::string::npos) << header.status().ToString();
  }
  // Their extensions are taken when a folder is scanned, so they are refused by name, not passed over.
  for (std::string_view ext : {"exr", "HDR", "pic", "pfm"}) EXPECT_TRUE(is_image_extension(ext)) << ext;
  EXPECT_FALSE(is_image_extension("txt"));
  EXPECT_FALSE(is_image_extension("gif"));
  EXPECT_EQ(sniff_format(bytes_of("hello, world")), ImageFormat::kUnknown);
  EXPECT_EQ(read_formats_text(), "PNG, JPEG, TIFF, BMP, WebP, PNM, JPEG 2000 and Sun raster");
}

TEST(Formats, DefaultOutputIsTheInputsOwnUnlessLossyWouldSmearEdges) {
  EXPECT_EQ(default_output_format("JPG", false), "jpg");
  EXPECT_EQ(default_output_format("jpg", true), "png");
  EXPECT_EQ(default_output_format("webp", true), "png");
  EXPECT_EQ(default_output_format("tif", true), "tif");
  EXPECT_EQ(default_output_format("pgm", false), "pgm");
  EXPECT_EQ(default_output_format("jp2", false), "png");  // read, not written
  EXPECT_EQ(default_output_format("", false), "png");
}

}  // namespace
}  // namespace imgq
