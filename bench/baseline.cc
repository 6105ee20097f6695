// What a user would do instead of imgq: one process looping over the files,
// OpenCV's own decode (cv::imdecode), the pipeline (apply_pipeline, the exact
// reference) and OpenCV's own encode (cv::imencode), with OpenCV limited to
// one thread (--threads 1) or using its own (0).
//   imgq-bench-baseline --threads 1 --op gaussian_blur --format png --out DIR FILE...
// Prints: images=N megapixels=M seconds=S
#include <chrono>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>

#include "imgq/common/file_io.h"
#include "imgq/mpi_workers/ops.h"

int main(int argc, char** argv) {
  int threads = 1;
  std::vector<std::string> ops, files;
  std::string format = "png", out = "";
  CLI::App app{"single-process baseline for the imgq benchmarks"};
  app.add_option("--threads", threads, "OpenCV threads; 0 = OpenCV's default");
  app.add_option("--op", ops);
  app.add_option("--format", format);
  app.add_option("--out", out, "write results here (default: encode only)");
  app.add_option("files", files)->required();
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) cv::setNumThreads(threads);
  auto pipeline = imgq::schemas::parse_pipeline(ops);
  if (!pipeline.ok()) {
    std::cerr << pipeline.status().message() << "\n";
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  double megapixels = 0;
  int images = 0;
  for (const std::string& file : files) {
    auto bytes = imgq::read_file(file);
    if (!bytes.ok()) continue;
    const cv::Mat image = cv::imdecode(*bytes, cv::IMREAD_UNCHANGED);
    if (image.empty()) continue;
    megapixels += static_cast<double>(image.total()) / 1e6;
    auto result = imgq::workers::apply_pipeline(*pipeline, image);
    if (!result.ok()) continue;
    std::vector<uint8_t> encoded;
    if (!cv::imencode("." + format, *result, encoded)) continue;
    if (!out.empty()) {
      (void)imgq::write_file(std::filesystem::path(out) / std::filesystem::path(file).filename().replace_extension(format), encoded);
    }
    ++images;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "images=" << images << " megapixels=" << megapixels << " seconds=" << seconds << "\n";
  return 0;
}
