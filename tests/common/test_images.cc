#include "common/test_images.h"

#include <tiffio.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <algorithm>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace imgq::testing {

cv::Mat make_image(int rows, int cols, int depth, int channels, Pattern pattern) {
  cv::RNG rng(static_cast<uint64_t>(rows) * 7919 + static_cast<uint64_t>(cols) * 104729 +
              static_cast<uint64_t>(depth * 10 + channels) * 31 + static_cast<uint64_t>(pattern));
  const double top = depth == CV_16U ? 65535 : 255;
  const int type = CV_MAKETYPE(depth, channels);
  cv::Mat img(rows, cols, type);
  switch (pattern) {
    case Pattern::kNoise:
      rng.fill(img, cv::RNG::UNIFORM, 0, top + 1);
      break;
    case Pattern::kShapes: {
      cv::Mat ramp(rows, cols, CV_32FC(channels));
      for (int y = 0; y < rows; ++y) {
        for (int x = 0; x < cols; ++x) {
          float* p = ramp.ptr<float>(y) + x * channels;
          for (int c = 0; c < channels; ++c) {
            p[c] = static_cast<float>(top * (0.2 + 0.5 * (x + y * (c + 1)) / (rows + cols * 2.0)));
          }
        }
      }
      ramp.convertTo(img, type);
      for (int i = 0; i < 12; ++i) {
        const cv::Point a(rng.uniform(0, cols), rng.uniform(0, rows));
        const cv::Point b(rng.uniform(0, cols), rng.uniform(0, rows));
        const cv::Scalar color = cv::Scalar::all(rng.uniform(0.0, top));
        if (i % 3 == 0) cv::rectangle(img, a, b, color, cv::FILLED);
        else if (i % 3 == 1) cv::circle(img, a, std::max(1, std::abs(b.x - a.x) / 2), color, cv::FILLED);
        else cv::line(img, a, b, color, 1 + i % 3);
      }
      cv::Mat noise(rows, cols, type);
      rng.fill(noise, cv::RNG::UNIFORM, 0, top / 40 + 1);
      img += noise;
      break;
    }
    case Pattern::kSnake: {
      img.setTo(cv::Scalar::all(top * 0.4));
      // A winding faint line from top to bottom, swinging across the width.
      std::vector<cv::Point> path;
      for (int y = 0; y < rows; y += 2) {
        const int swing = (y / 6) % 2 == 0 ? cols / 5 : cols - 1 - cols / 5;
        path.emplace_back(swing, y);
      }
      cv::polylines(img, path, false, cv::Scalar::all(top * 0.55), 1);
      // Strong only at its foot.
      cv::line(img, path.back(), path.back() + cv::Point(0, -3), cv::Scalar::all(top), 1);
      break;
    }
  }
  return img;
}

std::vector<NamedImage> generated_images() {
  const std::vector<cv::Size> sizes = {{1, 1}, {7, 1}, {1, 7}, {5, 3}, {3, 5}, {13, 17}, {37, 64}, {203, 101}};
  std::vector<NamedImage> out;
  for (const cv::Size& size : sizes) {
    for (int depth : {CV_8U, CV_16U}) {
      for (int channels : {1, 3, 4}) {
        const Pattern pattern = (size.width + channels) % 2 == 0 ? Pattern::kShapes : Pattern::kNoise;
        out.push_back({std::to_string(size.width) + "x" + std::to_string(size.height) +
                           (depth == CV_8U ? "_8u_c" : "_16u_c") + std::to_string(channels) +
                           (pattern == Pattern::kShapes ? "_shapes" : "_noise"),
                       make_image(size.height, size.width, depth, channels, pattern)});
      }
    }
  }
  return out;
}

std::vector<NamedImage> sample_photographs(size_t max_count) {
  const std::vector<std::string> names = {"fruits.jpg", "baboon.jpg", "building.jpg", "pic1.png",
                                          "HappyFish.jpg", "chessboard.png", "board.jpg", "home.jpg"};
  std::vector<NamedImage> out;
  for (const std::string& name : names) {
    if (out.size() >= max_count) break;
    const std::string path = std::string(IMGQ_SAMPLE_DATA_DIR) + "/" + name;
    if (!std::filesystem::exists(path)) continue;
    cv::Mat img = cv::imread(path, cv::IMREAD_UNCHANGED);
    if (!img.empty()) out.push_back({name, img});
  }
  return out;
}

std::string sample_data_dir() { return IMGQ_SAMPLE_DATA_DIR; }

::testing::AssertionResult SameImage(const cv::Mat& expected, const cv::Mat& actual) {
  if (expected.type() != actual.type() || expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "expected " << expected.cols << "x" << expected.rows << " type " << expected.type()
           << ", got " << actual.cols << "x" << actual.rows << " type " << actual.type();
  }
  const size_t row_bytes = expected.cols * expected.elemSize();
  for (int y = 0; y < expected.rows; ++y) {
    const uint8_t* e = expected.ptr<uint8_t>(y);
    const uint8_t* a = actual.ptr<uint8_t>(y);
    if (std::equal(e, e + row_bytes, a)) continue;
    size_t i = 0;
    while (e[i] == a[i]) ++i;
    return ::testing::AssertionFailure()
           << "first difference at row " << y << ", column " << i / expected.elemSize() << " of "
           << expected.cols << "x" << expected.rows;
  }
  return ::testing::AssertionSuccess();
}

std::vector<uint8_t> tiled_tiff(const cv::Mat& image, int tile_cols, int tile_rows, uint16_t compression) {
  // One file per process: test binaries run side by side.
  const std::string path = ::testing::TempDir() + "/imgq_tiled_" + std::to_string(::getpid()) + ".tif";
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  const int channels = image.channels();
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(image.cols));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(image.rows));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(image.depth() == CV_16U ? 16 : 8));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(channels));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, channels == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, compression);
  if (compression != COMPRESSION_NONE) TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
  if (channels == 4) {
    const uint16_t extra = EXTRASAMPLE_UNASSALPHA;
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
  }
  TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(tile_cols));
  TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(tile_rows));
  cv::Mat rgb;
  if (channels == 3) cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
  if (channels == 4) cv::cvtColor(image, rgb, cv::COLOR_BGRA2RGBA);
  if (channels == 1) rgb = image;
  const size_t pixel = rgb.elemSize();
  std::vector<uint8_t> tile(static_cast<size_t>(tile_cols * tile_rows) * pixel);
  for (int y0 = 0; y0 < image.rows; y0 += tile_rows) {
    for (int x0 = 0; x0 < image.cols; x0 += tile_cols) {
      std::fill(tile.begin(), tile.end(), 0);
      for (int y = 0; y < tile_rows && y0 + y < image.rows; ++y) {
        const int n = std::min(tile_cols, image.cols - x0);
        std::memcpy(tile.data() + static_cast<size_t>(y * tile_cols) * pixel, rgb.ptr(y0 + y) + x0 * pixel,
                    static_cast<size_t>(n) * pixel);
      }
      TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x0, y0, 0, 0), tile.data(), static_cast<tmsize_t>(tile.size()));
    }
  }
  TIFFClose(tif);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
  std::filesystem::remove(path);
  return bytes;
}

}  // namespace imgq::testing
