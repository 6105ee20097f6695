// Broker and protocol overhead: CLIENTS threads, each its own connection,
// each submitting JOBS identity jobs on a 64x64 PNG one at a time and
// waiting for the result. Prints round-trip p50 and p99 and jobs per second.
//   imgq-bench-tiny-jobs --broker URL --clients 8 --jobs 200
#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>

#include "imgq/client_cli/client.h"

int main(int argc, char** argv) {
  std::string broker = "tcp://127.0.0.1:5555";
  int clients = 1, jobs = 200;
  CLI::App app{"tiny-job round trips through an imgq broker"};
  app.add_option("--broker", broker);
  app.add_option("--clients", clients);
  app.add_option("--jobs", jobs, "per client");
  CLI11_PARSE(app, argc, argv);

  std::vector<uint8_t> png;
  cv::imencode(".png", cv::Mat(64, 64, CV_8UC3, cv::Scalar(10, 20, 30)), png);
  const std::string image(png.begin(), png.end());
  std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
  std::atomic<int> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      zmq::context_t context;
      imgq::client::BrokerClient client(context, broker);
      for (int j = 0; j < jobs; ++j) {
        imgq::proto::Submit submit;
        submit.req = static_cast<uint64_t>(j + 1);
        submit.ops = {"identity"};
        const auto t0 = std::chrono::steady_clock::now();
        client.send(imgq::proto::encode(submit), &image);
        bool done = false;
        while (!done) {
          auto frames = client.receive(std::chrono::seconds(30));
          if (!frames) {
            ++failures;
            return;
          }
          auto header = imgq::proto::decode_header(frames->at(0));
          if (header.ok() && header->type() == imgq::proto::JobResult::kType) done = true;
          if (header.ok() && header->type() == imgq::proto::Error::kType) {
            ++failures;
            done = true;
          }
        }
        latencies[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))]; };
  std::cout << "jobs=" << all.size() << " failures=" << failures << " p50_ms=" << pct(0.5) << " p99_ms=" << pct(0.99)
            << " jobs_per_second=" << static_cast<double>(all.size()) / seconds << "\n";
  return failures == 0 ? 0 : 1;
}
