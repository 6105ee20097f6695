// Broker and protocol overhead: CLIENTS threads, each its own connection,
// each submitting JOBS identity jobs on a 64x64 PNG, WINDOW at a time (1:
// one at a time), as imgq submit does: each submit lets the broker hold its
// `accepted` for 200 ms (the result stands for it when it comes first), and
// results are acknowledged together, one `result_ack` per 50 ms or 256
// results. --accept-hold-ms 0 --ack-each: the protocol without either.
// Prints round-trip p50 and p99, jobs per second and its own CPU per job.
//   imgq-bench-tiny-jobs --broker URL --clients 8 --jobs 200 [--window 4]
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>

#include "imgq/client_cli/client.h"

int main(int argc, char** argv) {
  std::string broker = "tcp://127.0.0.1:5555";
  int clients = 1, jobs = 200, window = 1;
  CLI::App app{"tiny-job round trips through an imgq broker"};
  app.add_option("--broker", broker);
  app.add_option("--clients", clients);
  app.add_option("--jobs", jobs, "per client");
  app.add_option("--window", window, "jobs in flight per client");
  uint32_t accept_hold_ms = 200;
  bool ack_each = false;
  app.add_option("--accept-hold-ms", accept_hold_ms, "how long the broker may hold each `accepted`");
  app.add_flag("--ack-each", ack_each, "one result_ack per result");
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
      std::map<uint64_t, std::chrono::steady_clock::time_point> sent;  // req -> when
      int next = 0, finished = 0;
      std::vector<std::string> acks;  // results not yet acknowledged
      auto oldest_ack = std::chrono::steady_clock::now();
      while (finished < jobs) {
        while (next < jobs && static_cast<int>(sent.size()) < window) {
          imgq::proto::Submit submit;
          submit.req = static_cast<uint64_t>(++next);
          submit.ops = {"identity"};
          submit.accept_hold_ms = accept_hold_ms;
          sent[submit.req] = std::chrono::steady_clock::now();
          client.send(imgq::proto::encode(submit), &image);
        }
        auto frames = client.receive(std::chrono::seconds(30));
        if (!frames) {
          ++failures;
          return;
        }
        auto header = imgq::proto::decode_header(frames->at(0));
        if (!header.ok()) continue;
        uint64_t req = 0;
        if (header->type() == imgq::proto::JobResult::kType) {
          auto result = header->as<imgq::proto::JobResult>();
          req = result->req;
          if (acks.empty()) oldest_ack = std::chrono::steady_clock::now();
          acks.push_back(result->job);
        } else if (header->type() == imgq::proto::Error::kType) {
          req = header->as<imgq::proto::Error>()->req;
          ++failures;
        } else {
          continue;
        }
        auto it = sent.find(req);
        if (it == sent.end()) continue;
        latencies[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - it->second).count());
        sent.erase(it);
        ++finished;
        if (!acks.empty() && (ack_each || finished == jobs || acks.size() >= 256 ||
                              std::chrono::steady_clock::now() - oldest_ack >= std::chrono::milliseconds(50))) {
          imgq::proto::ResultAck ack;
          ack.job = acks.front();
          ack.jobs.assign(acks.begin() + 1, acks.end());
          client.send(imgq::proto::encode(ack));
          acks.clear();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))]; };
  // This process's CPU (all its clients), per job.
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                     static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  std::cout << "jobs=" << all.size() << " failures=" << failures << " p50_ms=" << pct(0.5) << " p99_ms=" << pct(0.99)
            << " jobs_per_second=" << static_cast<double>(all.size()) / seconds
            << " clients_cpu_us_per_job=" << (all.empty() ? 0.0 : cpu * 1e6 / static_cast<double>(all.size())) << "\n";
  return failures == 0 ? 0 : 1;
}
