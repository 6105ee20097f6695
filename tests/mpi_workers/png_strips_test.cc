// The parallel PNG encoder without MPI: an image cut into strips at any
// rows, each strip deflated on its own, stitched into one file that OpenCV
// (libpng) decodes to the image exactly, for every depth and channel count.
#include "imgq/mpi_workers/png_strips.h"
#include "imgq/mpi_workers/image_io.h"

#include <zlib.h>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"

namespace imgq::workers {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

// Cuts `image` before each row in `cuts` (ascending), encodes each strip
// alone and stitches them.
std::vector<uint8_t> encode_in_strips(const cv::Mat& image, const std::vector<int>& cuts) {
  std::vector<int> bounds = {0};
  bounds.insert(bounds.end(), cuts.begin(), cuts.end());
  bounds.push_back(image.rows);
  std::vector<PngSegment> segments;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const cv::Mat strip = image.rowRange(bounds[i], bounds[i + 1]).clone();
    auto segment = deflate_png_rows(strip, i + 2 == bounds.size());
    EXPECT_TRUE(segment.ok()) << segment.status().ToString();
    segments.push_back(std::move(segment).value());
  }
  return assemble_png(image.rows, image.cols, image.type(), segments);
}

TEST(PngStripsTest, StitchedStripsDecodeToTheImageForEveryKind) {
  for (int depth : {CV_8U, CV_16U}) {
    for (int channels : {1, 3, 4}) {
      for (auto [rows, cols] : {std::pair{1, 1}, {2, 3}, {37, 41}, {101, 7}, {64, 513}}) {
        const cv::Mat image = make_image(rows, cols, depth, channels, Pattern::kNoise);
        std::vector<std::vector<int>> cut_sets = {{}};
        if (rows >= 2) cut_sets.push_back({rows / 2});
        if (rows >= 4) cut_sets.push_back({1, rows / 3, rows - 1});
        cut_sets.push_back({0, 0, rows});  // empty strips at both ends
        for (const auto& cuts : cut_sets) {
          const std::vector<uint8_t> png = encode_in_strips(image, cuts);
          const cv::Mat decoded = cv::imdecode(png, cv::IMREAD_UNCHANGED);
          EXPECT_TRUE(SameImage(image, decoded))
              << rows << "x" << cols << " depth " << depth << " channels " << channels << " cuts " << cuts.size();
        }
      }
    }
  }
}

TEST(PngStripsTest, CompressesLikeOpenCvsOwnEncoder) {
  // Same filter, level and strategy: sizes within a few bytes per strip.
  const cv::Mat image = make_image(300, 400, CV_8U, 3, Pattern::kShapes);
  std::vector<uint8_t> opencv;
  ASSERT_TRUE(cv::imencode(".png", image, opencv));
  const std::vector<uint8_t> ours = encode_in_strips(image, {75, 150, 225});
  EXPECT_TRUE(SameImage(image, cv::imdecode(ours, cv::IMREAD_UNCHANGED)));
  EXPECT_LT(static_cast<double>(ours.size()), static_cast<double>(opencv.size()) * 1.02 + 64) << ours.size() << " vs " << opencv.size();
  EXPECT_GT(static_cast<double>(ours.size()), static_cast<double>(opencv.size()) * 0.98 - 64) << ours.size() << " vs " << opencv.size();
}

TEST(PngStripsTest, TheFileIsWellFormedChunkByChunk) {
  const cv::Mat image = make_image(20, 30, CV_16U, 3, Pattern::kNoise);
  const std::vector<uint8_t> png = encode_in_strips(image, {7, 13});
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(std::string(png.begin(), png.begin() + 8), std::string("\x89PNG\r\n\x1a\n", 8));
  size_t at = 8;
  std::vector<std::string> types;
  while (at + 12 <= png.size()) {
    const uint32_t length = (uint32_t{png[at]} << 24) | (uint32_t{png[at + 1]} << 16) | (uint32_t{png[at + 2]} << 8) |
                            png[at + 3];
    ASSERT_LE(at + 12 + length, png.size());
    types.emplace_back(png.begin() + static_cast<long>(at) + 4, png.begin() + static_cast<long>(at) + 8);
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, png.data() + at + 4, 4 + length));
    const size_t c = at + 8 + length;
    const uint32_t stored = (uint32_t{png[c]} << 24) | (uint32_t{png[c + 1]} << 16) | (uint32_t{png[c + 2]} << 8) |
                            png[c + 3];
    EXPECT_EQ(crc, stored) << types.back();
    at += 12 + length;
  }
  EXPECT_EQ(at, png.size());
  EXPECT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
}

TEST(PngStripsTest, RefusesTypesPngCannotHold) {
  EXPECT_FALSE(can_store_type("png", CV_32FC1));
  EXPECT_FALSE(can_store_type("png", CV_8UC2));
  EXPECT_TRUE(can_store_type("png", CV_16UC4));
  EXPECT_EQ(deflate_png_rows(cv::Mat(2, 2, CV_32FC1), true).status().code(), StatusCode::kUnsupported);
}

// A segment fed a few rows at a time (as a streamed stage deflates each
// chunk it finishes) decodes the same as one fed all at once.
TEST(PngStripsTest, SegmentsFedInPiecesDecodeToTheImage) {
  for (int depth : {CV_8U, CV_16U}) {
    for (int channels : {1, 3, 4}) {
      const cv::Mat image = make_image(53, 29, depth, channels, Pattern::kShapes);
      std::vector<PngSegment> segments;
      for (auto [begin, end] : {std::pair{0, 20}, {20, 53}}) {
        PngDeflater deflater;
        for (int y = begin; y < end; y += 7) {
          ASSERT_TRUE(deflater.add(image.rowRange(y, std::min(y + 7, end))).ok());
        }
        auto segment = deflater.finish(end == image.rows);
        ASSERT_TRUE(segment.ok()) << segment.status().ToString();
        segments.push_back(std::move(segment).value());
      }
      const auto png = assemble_png(image.rows, image.cols, image.type(), segments);
      EXPECT_TRUE(SameImage(image, cv::imdecode(png, cv::IMREAD_UNCHANGED))) << depth << " " << channels;
    }
  }
  PngDeflater spent;
  ASSERT_TRUE(spent.finish(true).ok());
  EXPECT_FALSE(spent.finish(true).ok());
}

}  // namespace
}  // namespace imgq::workers
