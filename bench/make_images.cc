// Writes the benchmark's generated images: COUNT images of WxH, 8-bit BGR,
// hard-edged shapes on gradients with mild noise (tests/common/test_images).
//   imgq-bench-make-images W H COUNT DIR EXT [deflate|tiled]
// (`deflate`: a TIFF compressed with deflate instead of OpenCV's LZW;
// `tiled`: a TIFF of 256x256 tiles, deflate with the predictor, written by
// libtiff, as satellite and slide images come.)
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <tiffio.h>

#include "common/test_images.h"

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::cerr << "usage: imgq-bench-make-images W H COUNT DIR EXT [deflate|tiled]\n";
    return 2;
  }
  std::vector<int> params;
  const std::string option = argc == 7 ? argv[6] : "";
  if (option == "deflate") params = {cv::IMWRITE_TIFF_COMPRESSION, 8};
  const int w = std::stoi(argv[1]), h = std::stoi(argv[2]), count = std::stoi(argv[3]);
  std::filesystem::create_directories(argv[4]);
  for (int i = 0; i < count; ++i) {
    const cv::Mat image = imgq::testing::make_image(h + i, w, CV_8U, 3, imgq::testing::Pattern::kShapes);
    const std::string path = std::string(argv[4]) + "/gen" + std::to_string(i) + "." + argv[5];
    if (option == "tiled") {
      const std::vector<uint8_t> bytes = imgq::testing::tiled_tiff(image, 256, 256, COMPRESSION_ADOBE_DEFLATE);
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      if (bytes.empty() || !out) return 1;
    } else if (!cv::imwrite(path, image, params)) {
      return 1;
    }
  }
  return 0;
}
