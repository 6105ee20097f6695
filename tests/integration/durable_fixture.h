// The fixture of the tests that kill the broker: imgq-broker as a real
// process with a data dir, restarted on the same ports; worker groups as
// real `mpiexec -n 2 imgq-worker` jobs; clients as real `imgq` processes.
#pragma once

#include <sys/mount.h>

#include "integration/system_fixture.h"

namespace imgq {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

class Durable : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("imgq_durable_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    data_ = root_ / "data";
  }
  void TearDown() override {
    groups_.clear();
    broker_.reset();
    ::umount(data_.c_str());
    fs::remove_all(root_);
  }

  // Starts imgq-broker on the data dir: on ephemeral ports the first time,
  // on the same ports after. `extra`: more flags.
  void start_broker(const std::vector<std::string>& extra = {}) {
    const bool first = clients_.empty();
    std::vector<std::string> argv = {kBin + "/imgq-broker",
                                     "--clients", first ? "tcp://127.0.0.1:*" : clients_,
                                     "--workers", first ? "tcp://127.0.0.1:*" : workers_,
                                     "--progress", first ? "tcp://127.0.0.1:*" : progress_,
                                     "--data-dir", data_.string(), "--heartbeat-ms", "200",
                                     "--metrics", metrics_.empty() ? "" : metrics_};
    argv.insert(argv.end(), broker_flags_.begin(), broker_flags_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    broker_.reset();
    broker_ = std::make_unique<Subprocess>(argv, (root_ / ("broker" + std::to_string(starts_++) + ".log")).string());
    const BoundEndpoints bound = await_bound_endpoints(*broker_);
    ASSERT_FALSE(bound.clients.empty());
    clients_ = bound.clients;
    workers_ = bound.workers;
    progress_ = bound.progress;
  }

  void start_group(const std::string& name, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {"env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {IMGQ_MPIEXEC, "-n", "2", kBin + "/imgq-worker", "--broker", workers_, "--name", name,
                             "--heartbeat-ms", "200"});
    groups_[name] = std::make_unique<Subprocess>(argv, (root_ / (name + ".log")).string());
  }

  uint32_t connected_groups() {
    zmq::context_t context;
    client::BrokerClient c(context, clients_);
    proto::Ping ping;
    ping.req = 1;
    auto reply = c.call(proto::encode(ping), 1, milliseconds(1000));
    if (!reply.ok()) return 0;
    auto pong = client::decode_reply<proto::Pong>(*reply);
    return pong.ok() ? pong->groups : 0;
  }
  void await_groups(uint32_t n) {
    ASSERT_TRUE(eventually([&] { return connected_groups() == n; }, seconds(60))) << "expected " << n << " group(s)";
  }

  std::string conn() const { return " --broker " + clients_ + " --progress " + progress_; }

  std::vector<std::string> submit_args(const std::vector<std::string>& ops, const fs::path& out,
                                       const std::vector<std::string>& paths, bool json = true) {
    std::vector<std::string> args = {kBin + "/imgq", "submit", "--broker", clients_, "--progress", progress_,
                                     "-o", out.string()};
    if (json) args.push_back("--json");
    for (const std::string& op : ops) args.insert(args.end(), {"--op", op});
    args.insert(args.end(), paths.begin(), paths.end());
    return args;
  }

  // A folder of `n` small images of varied shapes, depths and channels.
  fs::path make_folder(const std::string& name, int n, int seed) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    for (int j = 0; j < n; ++j) {
      const cv::Mat image = make_image(20 + (j * 7 + seed) % 60, 24 + (seed * 5 + j) % 50, CV_8U, j % 2 ? 3 : 1,
                                       j % 3 ? Pattern::kShapes : Pattern::kNoise);
      EXPECT_TRUE(cv::imwrite((dir / ("i" + std::to_string(j) + ".png")).string(), image));
    }
    return dir;
  }

  static cv::Mat expected(const std::vector<std::string>& ops, const fs::path& source) {
    return reference_result(ops, source);
  }

  // "submitted FILE as job ID" lines: file -> job.
  static std::map<std::string, std::string> submitted(const std::string& text) {
    std::map<std::string, std::string> jobs;
    static const std::regex line("submitted (\\S+) as job ([0-9a-f]{16})");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator(); ++it) {
      jobs[(*it)[1]] = (*it)[2];
    }
    return jobs;
  }

  // {"event":"unfinished",...} lines of imgq submit --json.
  static int unfinished(const std::string& text) {
    int n = 0;
    for (const JsonLine& l : parse_json_lines(text)) n += l["event"] == "unfinished" && l["job"].size() == 16;
    return n;
  }

  // Fetches `job` into `dir` once it is done; its output.
  std::pair<int, std::string> fetch_when_done(const std::string& job, const fs::path& dir) {
    std::pair<int, std::string> fetched;
    eventually([&] {
      fetched = shell(kBin + "/imgq fetch " + job + conn() + " -o " + dir.string() + " 2>&1");
      return fetched.second.find(" is queued") == std::string::npos &&
             fetched.second.find(" is running") == std::string::npos;
    }, seconds(120));
    return fetched;
  }

  fs::path root_, data_;
  std::string clients_, workers_, progress_, metrics_;
  std::vector<std::string> broker_flags_;
  int starts_ = 0;
  std::unique_ptr<Subprocess> broker_;
  std::map<std::string, std::unique_ptr<Subprocess>> groups_;
};

}  // namespace imgq
