// Micro-benchmarks of the hot paths that are not image processing.
#include <benchmark/benchmark.h>

#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "imgq/broker/job_queue.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/tiff_strips.h"
#include "imgq/mpi_workers/strip_plan.h"
#include "imgq/schemas/codec.h"

static void BM_PlanStrips(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(imgq::workers::plan_strips(8000, static_cast<int>(state.range(0)), 4));
}
BENCHMARK(BM_PlanStrips)->Arg(2)->Arg(16)->Arg(256);

static void BM_PlanStages(benchmark::State& state) {
  const auto pipeline = *imgq::schemas::parse_pipeline({"to_8bit", "gaussian_blur:ksize=5", "canny:low=50,high=150"});
  for (auto _ : state) benchmark::DoNotOptimize(imgq::workers::plan_stages(pipeline));
}
BENCHMARK(BM_PlanStages);

static void BM_EncodeSubmit(benchmark::State& state) {
  imgq::proto::Submit submit;
  submit.req = 42;
  submit.ops = {"to_8bit", "gaussian_blur:ksize=5", "canny:aperture=3,high=150,l2=false,low=50"};
  submit.name = "photos/2026/some/long/path/image_000123.jpg";
  submit.key = "0123456789abcdef:123";
  for (auto _ : state) benchmark::DoNotOptimize(imgq::proto::encode(submit));
}
BENCHMARK(BM_EncodeSubmit);

static void BM_DecodeSubmit(benchmark::State& state) {
  imgq::proto::Submit submit;
  submit.req = 42;
  submit.ops = {"to_8bit", "gaussian_blur:ksize=5", "canny:aperture=3,high=150,l2=false,low=50"};
  submit.name = "photos/2026/some/long/path/image_000123.jpg";
  const std::string bytes = imgq::proto::encode(submit);
  for (auto _ : state) {
    auto header = imgq::proto::decode_header(bytes);
    benchmark::DoNotOptimize(header->as<imgq::proto::Submit>({"req", "ops"}));
  }
}
BENCHMARK(BM_DecodeSubmit);

static void BM_QueuePushPop(benchmark::State& state) {
  const int clients = static_cast<int>(state.range(0));
  std::vector<std::string> ids(10000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = std::to_string(1'000'000'000 + i);
  for (auto _ : state) {
    imgq::broker::JobQueue q;
    for (size_t i = 0; i < ids.size(); ++i) q.push(ids[i], "client" + std::to_string(i % clients), static_cast<int>(i % 3));
    while (q.pop()) {
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(ids.size()));
}
BENCHMARK(BM_QueuePushPop)->Arg(1)->Arg(8)->Arg(1000);

// TIFF out, side by side: a 2400x2400 photograph (opencv-doc's fruits.jpg,
// resized) as OpenCV writes it (libtiff's LZW and predictor) and as every
// rank writes its rows (ours, tiff_lzw.h), strips laid out into one file.
static cv::Mat tiff_bench_image() {
  cv::Mat photo = cv::imread("/usr/share/doc/opencv-doc/examples/data/fruits.jpg", cv::IMREAD_COLOR);
  if (photo.empty()) photo = cv::Mat(480, 512, CV_8UC3, cv::Scalar(10, 120, 240));
  cv::resize(photo, photo, {2400, 2400}, 0, 0, cv::INTER_CUBIC);
  return photo;
}
static void BM_TiffOpenCv(benchmark::State& state) {
  const cv::Mat image = tiff_bench_image();
  std::vector<uint8_t> bytes;
  for (auto _ : state) cv::imencode(".tif", image, bytes);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(image.total() * image.elemSize()));
  state.counters["ratio"] = static_cast<double>(bytes.size()) / static_cast<double>(image.total() * image.elemSize());
}
BENCHMARK(BM_TiffOpenCv)->Unit(benchmark::kMillisecond);
static void BM_TiffOurs(benchmark::State& state) {
  using namespace imgq::workers;
  const cv::Mat image = tiff_bench_image();
  const int per_strip = tiff_rows_per_strip(image.rows, image.cols, image.type());
  size_t size = 0;
  for (auto _ : state) {
    auto strips = encode_tiff_rows(image, per_strip);
    auto file = assemble_tiff(image.rows, image.cols, image.type(), per_strip, {*strips});
    size = file->size();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(image.total() * image.elemSize()));
  state.counters["ratio"] = static_cast<double>(size) / static_cast<double>(image.total() * image.elemSize());
}
BENCHMARK(BM_TiffOurs)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();

// A tiny job's codec work: the 64x64 PNG of imgq-bench-tiny-jobs, decoded
// by OpenCV and by the workers' decode_image (libpng's row API).
static std::vector<uchar> tiny_png() {
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(64, 64, CV_8UC3, cv::Scalar(10, 20, 30)), png);
  return png;
}
static void BM_TinyPngDecodeOpenCv(benchmark::State& state) {
  const std::vector<uchar> png = tiny_png();
  for (auto _ : state) benchmark::DoNotOptimize(cv::imdecode(png, cv::IMREAD_UNCHANGED));
}
BENCHMARK(BM_TinyPngDecodeOpenCv);
static void BM_TinyPngDecodeOurs(benchmark::State& state) {
  const std::vector<uchar> png = tiny_png();
  for (auto _ : state) benchmark::DoNotOptimize(imgq::workers::decode_image(png));
}
BENCHMARK(BM_TinyPngDecodeOurs);
static void BM_TinyPngEncodeOurs(benchmark::State& state) {
  const cv::Mat image(64, 64, CV_8UC3, cv::Scalar(10, 20, 30));
  for (auto _ : state) benchmark::DoNotOptimize(imgq::workers::encode_image(image, "png"));
}
BENCHMARK(BM_TinyPngEncodeOurs);
