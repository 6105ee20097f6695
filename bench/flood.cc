// Fair admission under a flood. One client (a connection of its own)
// submits FLOOD identity jobs on a 64x64 PNG, up to WINDOW in flight, and
// when refused waits the broker's retry_after_ms and submits again, as
// imgq submit does. Once the flood has had AFTER jobs accepted, CLIENTS other
// connections each submit JOBS at once (refused ones again after the hint),
// and not before the flood has been refused once: it holds all it may, the
// whole queue or its share of it.
// Prints, for the small clients: the admission latency of their submits
// (the first send to `accepted`, waits after refusals included) p50 and p99,
// how many of their submits were refused, and when the last of their jobs
// finished; for the flood: when its last job finished and how often it was
// refused. Times are seconds from the small clients' start.
//   imgq-bench-flood --broker URL [--flood 50000] [--clients 10] [--jobs 20]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>

#include "imgq/client_cli/client.h"

namespace {

using Clock = std::chrono::steady_clock;
using imgq::proto::decode_header;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One connection's jobs: sends up to `window` at a time, resends refused
// ones after the hint, acknowledges results in batches. `on_accepted`
// gets each job's admission latency (ms); returns when all are finished.
struct Submitter {
  std::string broker;
  const std::string* image = nullptr;
  int jobs = 0;
  int window = 0;
  std::atomic<int>* accepted_count = nullptr;
  std::atomic<int> refusals{0};
  std::atomic<bool> failed{false};
  std::vector<double> admission_ms;
  Clock::time_point last_result;

  void run() {
    zmq::context_t context;
    imgq::client::BrokerClient client(context, broker);
    std::map<uint64_t, int> in_flight;            // req -> job
    std::map<int, Clock::time_point> first_sent;  // job -> its first submit
    std::vector<int> to_send;                     // jobs refused, to send again
    std::vector<std::string> acks;
    uint64_t req = 0;
    int next = 0, finished = 0;
    Clock::time_point not_before = Clock::now();
    Clock::time_point last_heard = Clock::now();  // a message, or a send
    // False when the connection is not up yet (nothing was queued).
    auto send = [&](int job) {
      last_heard = Clock::now();
      imgq::proto::Submit submit;
      submit.req = ++req;
      submit.ops = {"identity"};
      if (!client.send(imgq::proto::encode(submit), image)) return false;
      first_sent.try_emplace(job, Clock::now());
      in_flight[submit.req] = job;
      return true;
    };
    while (finished < jobs) {
      while (static_cast<int>(in_flight.size()) < window && Clock::now() >= not_before) {
        const int job = !to_send.empty() ? to_send.back() : next < jobs ? next : -1;
        if (job < 0) break;
        if (!send(job)) {
          not_before = Clock::now() + std::chrono::milliseconds(5);
          break;
        }
        if (!to_send.empty()) {
          to_send.pop_back();
        } else {
          ++next;
        }
      }
      auto frames = client.receive(std::chrono::milliseconds(20));
      if (!frames) {
        if (Clock::now() - last_heard > std::chrono::seconds(120)) {
          std::cerr << "nothing from the broker for 120 s\n";
          failed = true;
          return;
        }
        continue;
      }
      last_heard = Clock::now();
      auto header = decode_header(frames->at(0));
      if (!header.ok()) continue;
      if (header->type() == imgq::proto::Accepted::kType) {
        auto accepted = *header->as<imgq::proto::Accepted>();
        auto it = in_flight.find(accepted.req);
        if (it == in_flight.end()) continue;
        admission_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - first_sent[it->second]).count());
        in_flight.erase(it);
        if (accepted_count) ++*accepted_count;
      } else if (header->type() == imgq::proto::Error::kType) {
        auto error = *header->as<imgq::proto::Error>();
        auto it = in_flight.find(error.req);
        if (it == in_flight.end()) continue;
        if (!error.retryable) {
          std::cerr << "refused for good: " << error.message << "\n";
          failed = true;
          return;
        }
        ++refusals;
        to_send.push_back(it->second);
        in_flight.erase(it);
        not_before = Clock::now() + std::chrono::milliseconds(std::max<uint32_t>(error.retry_after_ms, 250));
      } else if (header->type() == imgq::proto::JobResult::kType) {
        ++finished;
        last_result = Clock::now();
        acks.push_back(header->as<imgq::proto::JobResult>()->job);
        if (acks.size() >= 256 || finished == jobs) {
          imgq::proto::ResultAck ack;
          ack.job = acks.front();
          ack.jobs.assign(acks.begin() + 1, acks.end());
          client.send(imgq::proto::encode(ack));
          acks.clear();
        }
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string broker = "tcp://127.0.0.1:5555";
  int flood = 50'000, after = 0, window = 2'000, clients = 10, jobs = 20;
  CLI::App app{"fair admission: small clients' submits while one client floods the broker"};
  app.add_option("--broker", broker);
  app.add_option("--flood", flood, "jobs the flooding client submits");
  app.add_option("--after", after, "the small clients start once this many of the flood's are accepted");
  app.add_option("--window", window, "the flood's submits in flight");
  app.add_option("--clients", clients, "small clients");
  app.add_option("--jobs", jobs, "jobs per small client");
  CLI11_PARSE(app, argc, argv);

  std::vector<uint8_t> png;
  cv::imencode(".png", cv::Mat(64, 64, CV_8UC3, cv::Scalar(10, 20, 30)), png);
  const std::string image(png.begin(), png.end());

  std::atomic<int> flood_accepted{0};
  Submitter flooder{broker, &image, flood, window, &flood_accepted};
  std::thread flood_thread([&] { flooder.run(); });
  while ((flood_accepted.load() < after || flooder.refusals.load() == 0) && !flooder.failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const Clock::time_point start = Clock::now();
  std::vector<std::unique_ptr<Submitter>> small;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    small.push_back(std::unique_ptr<Submitter>(new Submitter{broker, &image, jobs, jobs, nullptr}));
    threads.emplace_back([s = small.back().get()] { s->run(); });
  }
  for (auto& t : threads) t.join();
  flood_thread.join();

  std::vector<double> admission;
  int refusals = 0;
  double small_done = 0;
  bool failed = flooder.failed;
  for (const auto& s : small) {
    admission.insert(admission.end(), s->admission_ms.begin(), s->admission_ms.end());
    refusals += s->refusals;
    small_done = std::max(small_done, seconds_between(start, s->last_result));
    failed = failed || s->failed;
  }
  std::sort(admission.begin(), admission.end());
  auto pct = [&](double p) {
    return admission.empty() ? 0.0
                             : admission[std::min(admission.size() - 1, static_cast<size_t>(p * static_cast<double>(admission.size())))];
  };
  std::cout << "small_jobs=" << admission.size() << " admission_p50_ms=" << pct(0.5)
            << " admission_p99_ms=" << pct(0.99) << " small_refusals=" << refusals
            << " small_done_s=" << small_done << " flood_done_s=" << seconds_between(start, flooder.last_result)
            << " flood_refusals=" << flooder.refusals << "\n";
  return failed ? 1 : 0;
}
