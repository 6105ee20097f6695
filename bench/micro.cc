// Micro-benchmarks of the hot paths that are not image processing.
#include <benchmark/benchmark.h>

#include "imgq/broker/job_queue.h"
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

BENCHMARK_MAIN();
