// Writes the benchmark's generated images: COUNT images of WxH, 8-bit BGR,
// hard-edged shapes on gradients with mild noise (tests/common/test_images).
//   imgq-bench-make-images W H COUNT DIR EXT [deflate]
// (`deflate`: a TIFF compressed with deflate instead of OpenCV's LZW.)
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::cerr << "usage: imgq-bench-make-images W H COUNT DIR EXT [deflate]\n";
    return 2;
  }
  std::vector<int> params;
  if (argc == 7 && std::string(argv[6]) == "deflate") params = {cv::IMWRITE_TIFF_COMPRESSION, 8};
  const int w = std::stoi(argv[1]), h = std::stoi(argv[2]), count = std::stoi(argv[3]);
  std::filesystem::create_directories(argv[4]);
  for (int i = 0; i < count; ++i) {
    const cv::Mat image = imgq::testing::make_image(h + i, w, CV_8U, 3, imgq::testing::Pattern::kShapes);
    const std::string path = std::string(argv[4]) + "/gen" + std::to_string(i) + "." + argv[5];
    if (!cv::imwrite(path, image, params)) return 1;
  }
  return 0;
}
