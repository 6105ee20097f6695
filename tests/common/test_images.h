// Images made by the tests, real photographs found on the machine, and a
// byte-for-byte comparison that says where two images first differ.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

namespace imgq::testing {

enum class Pattern {
  kNoise,   // uniform random samples over the whole range of the depth
  kShapes,  // a smooth gradient with hard-edged shapes, lines and mild noise
  kSnake,   // a faint line winding down the image, strong only at its foot:
            // Canny must follow it across every strip boundary
};

// A deterministic image (seeded from its arguments).
cv::Mat make_image(int rows, int cols, int depth, int channels, Pattern pattern);

struct NamedImage {
  std::string name;
  cv::Mat image;
};

// Odd, tiny, one-row, one-column and ordinary sizes, 8/16-bit, 1/3/4 channels.
std::vector<NamedImage> generated_images();

// Where Debian's opencv-doc keeps its sample images (IMGQ_SAMPLE_DATA_DIR).
std::string sample_data_dir();

// Debian's opencv-doc sample photographs (IMGQ_SAMPLE_DATA_DIR), decoded
// unchanged; empty when the package is not installed.
std::vector<NamedImage> sample_photographs(size_t max_count = 6);

// `image` (BGR(A) as OpenCV holds it) as a tiled TIFF written by libtiff
// itself: tiles of `tile_cols` x `tile_rows` (multiples of 16), edge tiles
// padded with zeros; `compression` a libtiff COMPRESSION_* (with the
// horizontal predictor unless none); 4 channels as unassociated alpha.
std::vector<uint8_t> tiled_tiff(const cv::Mat& image, int tile_cols, int tile_rows, uint16_t compression);

// Success when `actual` equals `expected` byte for byte (type, size, every
// sample); otherwise names the first differing row and column.
::testing::AssertionResult SameImage(const cv::Mat& expected, const cv::Mat& actual);

}  // namespace imgq::testing
