// Nothing lost, nothing crashes, nobody unauthorised gets in: deadlines,
// cancel, groups dying at each point of a job, a broker restarted under a
// waiting client, 16 clients x 100 jobs through group kills, bad input
// through the CLI and raw sockets, and CURVE. Heartbeats are 200 ms here, so
// a dead group is noticed within a second.
#include "integration/system_fixture.h"

#include <random>

#include "imgq/common/curve.h"

namespace imgq {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

class Reliability : public System {
 protected:
  Reliability() { heartbeat_ms_ = 200; }

  void configure(broker::ServerOptions& options) override {
    System::configure(options);
    options.config.max_image_bytes = 8u << 20;
  }

  // Waits until the broker knows exactly `n` groups.
  void await_groups(uint32_t n) {
    ASSERT_TRUE(eventually([&] { return connected_groups() == n; }, seconds(60)))
        << "expected " << n << " worker group(s)";
  }

  fs::path write_image(const std::string& name, const cv::Mat& image) {
    const fs::path path = root_ / "in" / name;
    fs::create_directories(path.parent_path());
    EXPECT_TRUE(cv::imwrite(path.string(), image));
    return path;
  }

  // The whole-image OpenCV result, for comparison.
  static cv::Mat expected(const std::vector<std::string>& ops, const fs::path& source) {
    return reference_result(ops, source);
  }

  std::string conn() const {
    return " --broker " + server_->clients_endpoint() + " --progress " + server_->progress_endpoint();
  }

  // Deadline, cancel and the next job on one group whose ranks `ranks` (1
  // or *) hold every job at compute until the test releases it. `strips`:
  // the group runs one job at a time.
  void deadline_and_cancel(const std::string& ranks, const std::vector<std::string>& group_args, bool strips);
};

void Reliability::deadline_and_cancel(const std::string& ranks, const std::vector<std::string>& group_args,
                                      bool strips) {
  const fs::path gate = root_ / "gate";
  start_group("slow", {"IMGQ_FAULT=hold:compute:" + ranks + ":" + gate.string()}, group_args);
  await_groups(1);
  const fs::path image = write_image("a.png", make_image(64, 48, CV_8U, 3, Pattern::kShapes));

  // 1. A per-submit deadline of 0.5 s: the job fails with that reason.
  auto args = submit_args({"invert"}, root_ / "out1", {image.string()});
  args.insert(args.end(), {"--job-timeout", "0.5"});
  Subprocess timed(args, (root_ / "timed.log").string());
  EXPECT_EQ(timed.wait(seconds(60)), std::optional<int>(1)) << timed.output();
  EXPECT_NE(timed.output().find("ran longer than its timeout of 0.5 s on group slow"), std::string::npos)
      << timed.output();
  EXPECT_FALSE(fs::exists(root_ / "out1" / "a.png"));
  // One job at a time: the group keeps the expired job's slot until it
  // stops it, at the boundary after the held compute.
  if (strips) release_holds(gate, 1);

  // 2. Cancel while it runs: the state is cancelled at once.
  auto no_wait = submit_args({"invert"}, root_ / "unused", {image.string()});
  no_wait.push_back("--no-wait");
  const auto [code, out] = shell(command_line(no_wait));
  ASSERT_EQ(code, 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("\"event\":\"accepted\",\"job\":\"([0-9a-f]{16})\""))) << out;
  const std::string job = m[1];
  ASSERT_TRUE(eventually([&] { return shell(kBin + "/imgq status " + job + conn()).second.find(" running ") != std::string::npos; },
                         seconds(30)));
  const auto [cancel_code, cancelled] = shell(kBin + "/imgq cancel " + job + conn() + " 2>&1");
  EXPECT_EQ(cancel_code, 0) << cancelled;
  EXPECT_NE(cancelled.find(job + " cancelled"), std::string::npos) << cancelled;

  // 3. Released, the group stops both at a stage boundary and takes the
  // next job, which finishes exactly.
  Subprocess next(submit_args({"invert"}, root_ / "out3", {image.string()}), (root_ / "next.log").string());
  release_holds(gate, strips ? 2 : 3);
  EXPECT_EQ(next.wait(seconds(60)), std::optional<int>(0)) << next.output();
  EXPECT_TRUE(SameImage(expected({"invert"}, image), cv::imread((root_ / "out3" / "a.png").string(), cv::IMREAD_UNCHANGED)));
  EXPECT_NE(groups_.at("slow")->output().find("the broker stops job " + job), std::string::npos)
      << groups_.at("slow")->output();

  const auto& counters = stop_broker();
  EXPECT_EQ(counters.deadlines_exceeded, 1u);
  EXPECT_EQ(counters.cancelled, 1u);
  EXPECT_EQ(counters.succeeded, 1u);
  EXPECT_EQ(counters.stray_results, 0u);
}

TEST_F(Reliability, DeadlineAndCancelStopJobsRunningInStrips) {
  // One job at a time, in strips; rank 1 holds its strip.
  deadline_and_cancel("1", {"--strip-above", "0"}, /*strips=*/true);
}

TEST_F(Reliability, DeadlineAndCancelStopJobsRunningWhole) {
  // Small images whole, one per rank; every rank holds its image. The
  // first job runs on the leader, the cancelled one on the follower.
  deadline_and_cancel("*", {}, /*strips=*/false);
}

TEST_F(Reliability, AGroupDyingAtAnyPointOfAJobLosesNothing) {
  const fs::path image = write_image("big.png", make_image(600, 500, CV_8U, 3, Pattern::kNoise));
  const std::vector<std::string> ops = {"gaussian_blur:ksize=5", "canny"};
  // In strips (--strip-above 0) at every point, and whole (the job runs on
  // the leader's thread).
  const std::vector<std::pair<std::string, bool>> faults = {
      {"decode:0", false}, {"scatter:1", false}, {"compute:1", false}, {"gather:0", false},
      {"encode:0", false}, {"compute:*", true},  {"encode:0", true}};
  for (const auto& [fault, whole] : faults) {
    SCOPED_TRACE(fault);
    const std::string name = std::string(whole ? "whole-" : "strips-") + "dies-at-" + fault.substr(0, fault.find(':'));
    // The dying group is the only one when the job comes, so the job surely
    // runs there (no race with a healthy group for it).
    start_group(name, {"IMGQ_FAULT=crash:" + fault}, whole ? std::vector<std::string>{} : std::vector<std::string>{"--strip-above", "0"});
    await_groups(1);
    Subprocess client(submit_args(ops, root_ / ("out-" + name), {image.string()}), (root_ / (name + ".client.log")).string());
    EXPECT_TRUE(groups_.at(name)->wait(seconds(60)).has_value()) << "the crashed group's mpiexec ends";
    // A healthy group joins and is given the requeued job.
    start_group("healthy");
    EXPECT_EQ(client.wait(seconds(120)), std::optional<int>(0)) << client.output();
    EXPECT_TRUE(SameImage(expected(ops, image),
                          cv::imread((root_ / ("out-" + name) / "big.png").string(), cv::IMREAD_UNCHANGED)));
    const auto lines = parse_json_lines(client.output());
    int results = 0, requeued = 0;
    std::string finished_by;
    for (const JsonLine& l : lines) {
      if (l["event"] == "result") ++results, finished_by = l["group"];
      if (l["event"] == "progress" && l["state"] == "queued" && l["attempts"] == "1") ++requeued;
    }
    EXPECT_EQ(results, 1);
    EXPECT_EQ(requeued, 1) << client.output();
    EXPECT_EQ(finished_by, "healthy");
    groups_.at("healthy")->signal_group(SIGTERM);
    EXPECT_TRUE(groups_.at("healthy")->wait(seconds(30)).has_value());
    await_groups(0);
  }
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.failed, 0u);
  EXPECT_EQ(counters.succeeded, faults.size());
  EXPECT_EQ(counters.retried, faults.size()) << "one job ran on each dying group";
}

TEST_F(Reliability, AWaitingSubmitFinishesExactlyOnceAcrossABrokerRestart) {
  // Every job is held at compute until the broker has restarted and the
  // client has noticed, so the restart surely comes with jobs in flight.
  const fs::path gate = root_ / "gate";
  start_group("g", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  await_groups(1);
  const std::vector<std::string> ops = {"median_blur:ksize=9", "gaussian_blur:ksize=7"};
  std::vector<fs::path> images;
  for (int i = 0; i < 30; ++i) {
    images.push_back(write_image("r" + std::to_string(i) + ".png", make_image(90 + i, 80, CV_8U, 3, Pattern::kNoise)));
  }
  auto args = submit_args(ops, root_ / "out", {(root_ / "in").string()});
  args.insert(args.end(), {"--window", "8"});
  Subprocess client(args, (root_ / "client.log").string());
  ASSERT_TRUE(eventually([&] { return client.output().find("\"state\":\"running\"") != std::string::npos; }, seconds(60)))
      << client.output();
  ASSERT_NO_FATAL_FAILURE(restart_broker());
  ASSERT_TRUE(eventually([&] { return client.output().find("the broker restarted") != std::string::npos; }, seconds(60)))
      << client.output();
  open_gate(gate);

  const auto code = client.wait(seconds(180));
  ASSERT_TRUE(code.has_value()) << client.output();
  EXPECT_EQ(*code, 0) << client.output();
  EXPECT_NE(client.output().find("the broker restarted; asking again for the"), std::string::npos) << client.output();
  std::map<std::string, int> results;
  for (const JsonLine& l : parse_json_lines(client.output())) {
    if (l["event"] == "result") {
      ++results[l["file"]];
      EXPECT_EQ(l["state"], "done") << l["file"] << ": " << l["message"];
    }
  }
  EXPECT_EQ(results.size(), images.size());
  for (const auto& [file, n] : results) EXPECT_EQ(n, 1) << file << " written more than once";
  for (const fs::path& source : images) {
    EXPECT_TRUE(SameImage(expected(ops, source), cv::imread((root_ / "out" / source.filename()).string(), cv::IMREAD_UNCHANGED)))
        << source.filename();
  }
}

TEST_F(Reliability, SixteenClientsHundredJobsEachWhileAGroupIsKilledAndRestartedTwice) {
  start_group("steady");
  start_group("doomed");
  await_groups(2);
  constexpr int kClients = 16, kJobs = 100;
  const std::vector<std::vector<std::string>> pipelines = {
      {"gaussian_blur:ksize=5", "canny"}, {"to_8bit", "equalize_hist"}, {"invert"}, {"sobel", "dilate"}};
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int c = 0; c < kClients; ++c) {
    const fs::path in = root_ / ("in" + std::to_string(c));
    fs::create_directories(in);
    for (int j = 0; j < kJobs; ++j) {
      const cv::Mat image = make_image(20 + (j * 7) % 50, 24 + (c * 5 + j) % 40, CV_8U, c % 2 ? 3 : 1,
                                       j % 3 ? Pattern::kShapes : Pattern::kNoise);
      ASSERT_TRUE(cv::imwrite((in / ("i" + std::to_string(j) + ".png")).string(), image));
    }
    clients.push_back(std::make_unique<Subprocess>(
        submit_args(pipelines[c % pipelines.size()], root_ / ("out" + std::to_string(c)), {in.string()}),
        (root_ / ("client" + std::to_string(c) + ".log")).string()));
  }
  auto results_so_far = [&] {
    size_t n = 0;
    for (const auto& client : clients) {
      const std::string text = client->output();
      for (size_t at = text.find("\"event\":\"result\""); at != std::string::npos; at = text.find("\"event\":\"result\"", at + 1)) ++n;
    }
    return n;
  };
  for (size_t kill_at : {size_t{300}, size_t{900}}) {
    ASSERT_TRUE(eventually([&] { return results_so_far() >= kill_at; }, seconds(300)));
    groups_.at("doomed")->signal_group(SIGKILL);
    groups_.at("doomed")->wait(seconds(30));
    start_group("doomed");
  }
  std::set<std::string> jobs;
  for (int c = 0; c < kClients; ++c) {
    const auto code = clients[c]->wait(seconds(300));
    ASSERT_TRUE(code.has_value()) << "client " << c;
    EXPECT_EQ(*code, 0) << clients[c]->output().substr(0, 2000);
    std::map<std::string, int> per_file;
    for (const JsonLine& l : parse_json_lines(clients[c]->output())) {
      if (l["event"] != "result") continue;
      ++per_file[l["file"]];
      EXPECT_TRUE(jobs.insert(l["job"]).second) << "job " << l["job"] << " delivered twice";
    }
    ASSERT_EQ(per_file.size(), static_cast<size_t>(kJobs)) << "client " << c;
    for (const auto& [file, n] : per_file) EXPECT_EQ(n, 1) << file;
    const auto& ops = pipelines[c % pipelines.size()];
    for (int j = 0; j < kJobs; ++j) {
      const fs::path source = root_ / ("in" + std::to_string(c)) / ("i" + std::to_string(j) + ".png");
      const cv::Mat actual = cv::imread((root_ / ("out" + std::to_string(c)) / source.filename()).string(), cv::IMREAD_UNCHANGED);
      ASSERT_TRUE(SameImage(expected(ops, source), actual)) << "client " << c << " " << source.filename();
    }
  }
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.succeeded, static_cast<uint64_t>(kClients * kJobs));
  EXPECT_EQ(counters.failed, 0u);
  EXPECT_EQ(counters.submitted, static_cast<uint64_t>(kClients * kJobs));
}

TEST_F(Reliability, BadFilesGetClearErrorsAndNothingElseIsLost) {
  start_group("g");
  await_groups(1);
  const cv::Mat pixels = make_image(64, 80, CV_8U, 3, Pattern::kNoise);
  write_image("good.png", pixels);
  write_image("deep.png", make_image(32, 32, CV_16U, 1, Pattern::kShapes));
  std::vector<uint8_t> png, jpeg;
  cv::imencode(".png", pixels, png);
  cv::imencode(".jpg", pixels, jpeg);
  auto put = [&](const std::string& name, const std::string& bytes) { std::ofstream(root_ / "in" / name, std::ios::binary) << bytes; };
  put("empty.png", "");
  put("text.png", "just some text\n");
  std::mt19937 rng(1);
  std::string noise(5000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  put("noise.jpg", noise);
  put("cut.png", std::string(png.begin(), png.begin() + static_cast<long>(png.size() / 2)));
  put("cut.jpg", std::string(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() * 2 / 3)));
  std::string bad_crc(png.begin(), png.end());
  bad_crc[bad_crc.find("IDAT") + 14] ^= 0x55;
  put("crc.png", bad_crc);
  // 100,000 x 100,000 declared in 57 bytes.
  std::string bomb = "\x89PNG\r\n\x1a\n" + std::string("\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0\0\0\0\0", 25) +
                     std::string("\0\0\0\0IEND\0\0\0\0", 12);
  put("bomb.png", bomb);
  put("huge.png", std::string(9u << 20, 'h'));

  Subprocess client(submit_args({"canny"}, root_ / "out", {(root_ / "in").string()}), (root_ / "client.log").string());
  EXPECT_EQ(client.wait(seconds(60)), std::optional<int>(1)) << client.output();
  std::map<std::string, std::string> outcome;
  for (const JsonLine& l : parse_json_lines(client.output())) {
    if (l["event"] == "result") outcome[fs::path(l["file"]).filename().string()] = l["state"] + ": " + l["message"];
  }
  const std::map<std::string, std::string> want = {
      {"good.png", "done: "},
      {"deep.png", "it needs 8-bit input"},
      {"empty.png", "empty (0 bytes)"},
      {"text.png", "not a recognised image format"},
      {"noise.jpg", "not a recognised image format"},
      {"cut.png", "PNG: the file is truncated"},
      {"cut.jpg", "JPEG: the file is truncated"},
      {"crc.png", "PNG: the image data is corrupt"},
      {"bomb.png", "PNG declares 100000 x 100000 pixels"},
      {"huge.png", "is 9437184 bytes; the broker takes at most 8388608 (its --max-image-bytes)"},
  };
  for (const auto& [file, text] : want) {
    ASSERT_TRUE(outcome.count(file)) << file << " has no result\n" << client.output();
    EXPECT_NE(outcome[file].find(text), std::string::npos) << file << ": " << outcome[file];
    if (file != "good.png") {
      EXPECT_NE(outcome[file].find(file), std::string::npos) << "the message names the file: " << outcome[file];
    }
  }
  EXPECT_TRUE(SameImage(expected({"canny"}, root_ / "in" / "good.png"),
                        cv::imread((root_ / "out" / "good.png").string(), cv::IMREAD_UNCHANGED)));
  EXPECT_EQ(connected_groups(), 1u) << "the group survived all of it";
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.rejected_too_large, 1u);
  EXPECT_EQ(counters.rejected_invalid, 5u);  // empty, text, noise, cut png, cut jpeg
}

TEST_F(Reliability, GarbageOnBothSocketsIsSurvived) {
  start_group("g");
  await_groups(1);
  zmq::context_t context;
  zmq::socket_t client(context, zmq::socket_type::dealer), worker(context, zmq::socket_type::dealer);
  for (zmq::socket_t* s : {&client, &worker}) s->set(zmq::sockopt::linger, 0);
  client.connect(server_->clients_endpoint());
  worker.connect(server_->workers_endpoint());
  const std::string huge_lengths("\x8f\xdb\xff\xff\xff\xff", 6);  // a map whose key claims 4 GiB
  const std::string junk(50u << 20, '\x5a');
  const std::vector<Frames> garbage = {{""}, {"\xc1"}, {huge_lengths}, {junk}, {"IMGQ", "x", "y", "z", "w"},
                                       {proto::encode(proto::Heartbeat{}) + "trailing"}};
  for (const Frames& frames : garbage) {
    send_frames(client, frames);
    send_frames(worker, frames);
  }
  // A group that reports a result for a job it does not hold.
  proto::Hello hello;
  hello.name = "liar";
  hello.ranks = 1;
  send_frames(worker, {proto::encode(hello)});
  proto::Done done;
  done.job = "00000000deadbeef";
  send_frames(worker, {proto::encode(done), "not a result"});
  // Every client message was answered with an error naming what was wrong.
  Frames reply;
  for (size_t i = 0; i < garbage.size(); ++i) {
    zmq::pollitem_t items[] = {{client.handle(), 0, ZMQ_POLLIN, 0}};
    ASSERT_GT(poll_sockets(items, 1, seconds(30)), 0) << "no answer to garbage message " << i;
    recv_frames(client, reply, 2, false);
    EXPECT_EQ(proto::decode_header(reply[0])->as<proto::Error>()->code_name, "invalid_argument");
  }
  // The broker and the real group still work.
  EXPECT_GE(connected_groups(), 1u);
  const fs::path image = write_image("after.png", make_image(50, 70, CV_8U, 3, Pattern::kShapes));
  Subprocess ok(submit_args({"canny"}, root_ / "out", {image.string()}), (root_ / "ok.log").string());
  EXPECT_EQ(ok.wait(seconds(60)), std::optional<int>(0)) << ok.output();
  // The group socket's messages get no answer to wait for: await their
  // counts (a 50 MB frame ahead of them can take a while on a loaded host).
  EXPECT_TRUE(eventually([&] {
    const auto now = metrics_->counts();
    return now.malformed_worker >= garbage.size() && now.stray_results >= 1;
  }, seconds(30)));
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.malformed_client, garbage.size());
  EXPECT_GE(counters.malformed_worker, garbage.size());
  EXPECT_EQ(counters.stray_results, 1u);
}

// CURVE: keys from `imgq keygen`, allow-lists for clients and groups.
class Curve : public Reliability {
 protected:
  void SetUp() override {
    keys_ = fs::temp_directory_path() / ("imgq_keys_" + std::to_string(::getpid()));
    fs::remove_all(keys_);
    fs::create_directories(keys_);
    for (const std::string name : {"broker", "alice", "bob", "olga", "mallory", "group", "rogue"}) {
      const auto [code, out] = shell(kBin + "/imgq keygen " + (keys_ / name).string());
      ASSERT_EQ(code, 0) << out;
    }
    std::ofstream(keys_ / "clients.allow") << "# who may submit\n"
                                           << read(keys_ / "alice.pub") << read(keys_ / "bob.pub") << read(keys_ / "olga.pub");
    std::ofstream(keys_ / "workers.allow") << read(keys_ / "group.pub");
    Reliability::SetUp();
  }
  void TearDown() override {
    Reliability::TearDown();
    fs::remove_all(keys_);
  }
  void configure(broker::ServerOptions& options) override {
    Reliability::configure(options);
    const auto pair = read_key_pair(keys_ / "broker.key");
    const auto clients = read_allow_list(keys_ / "clients.allow");
    const auto workers = read_allow_list(keys_ / "workers.allow");
    if (!pair.ok() || !clients.ok() || !workers.ok()) {
      ADD_FAILURE() << "keys: " << pair.status().ToString() << "; " << clients.status().ToString() << "; "
                    << workers.status().ToString();
      return;
    }
    options.curve_secret = pair->secret_key;
    options.allow_clients = *clients;
    options.allow_workers = *workers;
    // olga may follow, list and cancel everyone's jobs.
    options.config.operator_keys = {*read_public_key(keys_ / "olga.pub")};
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string keys(const std::string& who) const {
    return " --server-key " + (keys_ / "broker.pub").string() + " --key " + (keys_ / (who + ".key")).string();
  }
  std::vector<std::string> group_keys(const std::string& who) const {
    return {"--server-key", (keys_ / "broker.pub").string(), "--key", (keys_ / (who + ".key")).string()};
  }
  fs::path keys_;
};

TEST_F(Curve, OnlyListedClientsAndGroupsGetIn) {
  start_group("listed", {}, group_keys("group"));
  start_group("unlisted", {}, group_keys("rogue"));
  const fs::path image = write_image("c.png", make_image(40, 60, CV_8U, 3, Pattern::kShapes));

  // alice is listed: her job runs on the listed group.
  const std::string submit = kBin + "/imgq submit --json" + conn() + " -o " + (root_ / "out").string() +
                             " --op invert " + image.string();
  const auto [ok_code, ok_out] = shell(submit + keys("alice") + " 2>&1");
  EXPECT_EQ(ok_code, 0) << ok_out;
  EXPECT_NE(ok_out.find("\"group\":\"listed\""), std::string::npos) << ok_out;
  EXPECT_TRUE(SameImage(expected({"invert"}, image), cv::imread((root_ / "out" / "c.png").string(), cv::IMREAD_UNCHANGED)));

  // Her jobs are hers: bob, also listed, can neither see nor fetch them
  // (jobs and keys are scoped to the client's public key).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(ok_out, m, std::regex("\"event\":\"accepted\",\"job\":\"([0-9a-f]{16})\""))) << ok_out;
  const std::string alices = m[1];
  const auto [own_code, own] = shell(kBin + "/imgq status " + alices + conn() + keys("alice") + " 2>&1");
  EXPECT_EQ(own_code, 0) << own;
  for (const std::string command : {"status", "fetch"}) {
    const std::string out_dir = command == "fetch" ? " -o " + (root_ / "bob").string() : "";
    const auto [code, out] = shell(kBin + "/imgq " + command + " " + alices + conn() + keys("bob") + out_dir + " 2>&1");
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("no job " + alices), std::string::npos) << command << ": " << out;
  }

  // mallory is not: told so at once, not after a timeout.
  const auto started = std::chrono::steady_clock::now();
  const auto [denied_code, denied] = shell(kBin + "/imgq ping" + conn() + keys("mallory") + " --timeout 30 2>&1");
  EXPECT_EQ(denied_code, 3) << denied;
  EXPECT_NE(denied.find("the broker refused this key"), std::string::npos) << denied;
  EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(20));
  const auto [submit_code, submit_out] = shell(submit + keys("mallory") + " 2>&1");
  EXPECT_EQ(submit_code, 3) << submit_out;
  EXPECT_NE(submit_out.find("not on the broker's allow-list"), std::string::npos) << submit_out;

  // Without keys at all, a client gets nowhere.
  const auto [plain_code, plain] = shell(kBin + "/imgq ping" + conn() + " --timeout 1 2>&1");
  EXPECT_EQ(plain_code, 3) << plain;

  // The unlisted group never joined, and says why in its log.
  const auto [ping_code, pong] = shell(kBin + "/imgq ping --json" + conn() + keys("alice"));
  EXPECT_NE(pong.find("\"groups\":1"), std::string::npos) << pong;
  EXPECT_TRUE(eventually([&] { return groups_.at("unlisted")->output().find("the broker refused this key") != std::string::npos; },
                         seconds(10)))
      << groups_.at("unlisted")->output();
}

// One client of the broker at the protocol's level: a DEALER and a SUB with
// its own key, and everything the SUB has received.
class Tenant {
 public:
  Tenant(const fs::path& keys, const std::string& who, const broker::Server& server, std::string session)
      : curve_(*load_curve_options((keys / "broker.pub").string(), (keys / (who + ".key")).string())),
        dealer_(context_, server.clients_endpoint(), curve_),
        sub_(client::connect_progress(context_, server.progress_endpoint(), curve_)),
        session_(std::move(session)) {}

  void subscribe(const std::string& topic) { sub_.set(zmq::sockopt::subscribe, topic); }
  zmq::socket_t& sub() { return sub_; }
  const std::string& session() const { return session_; }

  // Pings with its session until that pong comes on the progress socket:
  // everything published before it has arrived by then (one socket, in
  // order). Keeps what else came.
  bool live() {
    const auto deadline = std::chrono::steady_clock::now() + seconds(20);
    const uint64_t first = req_ + 1;  // pongs of earlier calls may still be on their way
    for (auto interval = milliseconds(5); std::chrono::steady_clock::now() < deadline;
         interval = std::min(interval * 2, milliseconds(200))) {
      proto::Ping ping;
      ping.req = ++req_;
      ping.session = session_;
      dealer_.send(proto::encode(ping));
      const auto until = std::chrono::steady_clock::now() + interval;
      while (std::chrono::steady_clock::now() < until) {
        zmq::pollitem_t item = {sub_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, milliseconds(10));
        Frames frames;
        while (recv_frames(sub_, frames, 2, /*dontwait=*/true)) {
          auto event = proto::decode_header(frames.at(1));
          if (frames.front() == session_) {
            auto pong = client::decode_reply<proto::Pong>(Frames(frames.begin() + 1, frames.end()));
            if (pong.ok() && pong->req >= first) return true;
            continue;
          }
          if (event.ok() && event->type() == proto::Event::kType) events.push_back(*event->as<proto::Event>());
        }
      }
    }
    return false;
  }

  // Sends `header` and waits for its reply (or error).
  Result<Frames> call(const std::string& header, uint64_t req) { return dealer_.call(header, req, seconds(30)); }
  uint64_t next_req() { return ++req_; }

  // Submits `image` under this session as `name`: the job id once accepted.
  std::string submit(const std::string& image, const std::string& name) {
    proto::Submit submit;
    submit.req = ++req_;
    submit.ops = {"invert"};
    submit.name = name;
    submit.session = session_;
    if (!dealer_.send(proto::encode(submit), &image)) return "not sent";
    while (auto reply = dealer_.receive(seconds(30))) {
      auto header = proto::decode_header(reply->at(0));
      if (header.ok() && header->type() == proto::Pong::kType) continue;  // live()'s
      auto accepted = client::decode_reply<proto::Accepted>(*reply);
      return accepted.ok() ? accepted->job : accepted.status().ToString();
    }
    return "no reply";
  }
  // Waits for the result of one of its jobs and acknowledges it.
  std::optional<proto::JobResult> result() {
    while (auto frames = dealer_.receive(seconds(60))) {
      auto header = proto::decode_header(frames->at(0));
      if (header.ok() && header->type() == proto::JobResult::kType) {
        auto r = *header->as<proto::JobResult>();
        proto::ResultAck ack;
        ack.job = r.job;
        dealer_.send(proto::encode(ack));
        return r;
      }
    }
    return std::nullopt;
  }

  std::vector<proto::Event> events;  // received on the progress socket

 private:
  zmq::context_t context_;
  CurveOptions curve_;
  client::BrokerClient dealer_;
  zmq::socket_t sub_;
  std::string session_;
  uint64_t req_ = 0;
};

// Names of the jobs whose events `events` holds.
std::set<std::string> names_in(const std::vector<proto::Event>& events) {
  std::set<std::string> names;
  for (const auto& e : events) names.insert(e.job.name);
  return names;
}

TEST_F(Curve, EachClientFollowsOnlyItsOwnJobsOnEverySocketAndAnOperatorFollowsAll) {
  const fs::path gate = root_ / "gate";
  start_group("held", {"IMGQ_FAULT=hold:compute:*:" + gate.string()}, group_keys("group"));
  const fs::path image = write_image("p.png", make_image(40, 30, CV_8U, 3, Pattern::kShapes));
  const std::string bytes = read(image);

  Tenant alice(keys_, "alice", *server_, "a11ce000");
  alice.subscribe(alice.session());
  ASSERT_TRUE(alice.live());
  const std::string secret = alice.submit(bytes, "patient-0042.png");
  ASSERT_EQ(secret.size(), 16u) << secret;
  ASSERT_EQ(secret.substr(0, 8), alice.session());

  // bob asks for everything, for alice's session, for her job, and for a
  // prefix of them: none of it is applied; his own session is.
  Tenant bob(keys_, "bob", *server_, "b0b00000");
  for (const std::string& topic : {std::string(), std::string("a"), alice.session(), secret, bob.session()}) {
    bob.subscribe(topic);
  }
  ASSERT_TRUE(bob.live());
  // olga, an operator, asks for everything: she gets it.
  Tenant olga(keys_, "olga", *server_, "0194a000");
  olga.subscribe("");
  ASSERT_TRUE(olga.live());

  // alice's job runs and ends; bob's job too.
  open_gate(gate);
  auto alices = alice.result();
  ASSERT_TRUE(alices.has_value());
  EXPECT_EQ(alices->state, "done") << alices->message;
  const std::string own = bob.submit(bytes, "bobs.png");
  ASSERT_EQ(own.size(), 16u) << own;
  auto bobs = bob.result();
  ASSERT_TRUE(bobs.has_value());
  EXPECT_EQ(bobs->state, "done") << bobs->message;

  // Everything published so far has reached each of them.
  for (Tenant* t : {&alice, &bob, &olga}) ASSERT_TRUE(t->live());
  EXPECT_EQ(names_in(alice.events), std::set<std::string>{"patient-0042.png"});
  EXPECT_EQ(names_in(bob.events), std::set<std::string>{"bobs.png"});
  EXPECT_EQ(names_in(olga.events), (std::set<std::string>{"patient-0042.png", "bobs.png"}));
  for (const auto& e : bob.events) EXPECT_EQ(e.job.job, own);

  // Nor can bob read, cancel, fetch or list her job, or take her session.
  for (const std::string type : {"status", "cancel", "fetch"}) {
    const uint64_t req = bob.next_req();
    std::string header;
    if (type == "status") header = proto::encode(proto::StatusRequest{.req = req, .job = secret});
    if (type == "cancel") header = proto::encode(proto::Cancel{.req = req, .job = secret});
    if (type == "fetch") header = proto::encode(proto::Fetch{.req = req, .job = secret});
    auto reply = bob.call(header, req);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    auto status = client::decode_reply<proto::StatusReply>(*reply);
    EXPECT_EQ(status.status().code(), StatusCode::kNotFound) << type << ": " << status.status().ToString();
  }
  auto list_of = [](Tenant& t) {
    proto::ListRequest list;
    list.req = t.next_req();
    auto reply = t.call(proto::encode(list), list.req);
    std::set<std::string> jobs;
    if (!reply.ok()) return jobs;
    auto listed = client::decode_reply<proto::ListReply>(*reply);
    if (listed.ok()) {
      for (const auto& j : listed->jobs) jobs.insert(j.job.job);
    }
    return jobs;
  };
  EXPECT_EQ(list_of(bob), std::set<std::string>{own});
  EXPECT_EQ(list_of(olga), (std::set<std::string>{own, secret}));
  {
    proto::Ping ping;
    ping.req = bob.next_req();
    ping.session = alice.session();
    auto reply = bob.call(proto::encode(ping), ping.req);
    ASSERT_TRUE(reply.ok());
    auto pong = client::decode_reply<proto::Pong>(*reply);
    EXPECT_EQ(pong.status().code(), StatusCode::kPermissionDenied) << pong.status().ToString();
    EXPECT_NE(pong.status().message().find("session a11ce000 is another client's"), std::string::npos)
        << pong.status().ToString();
  }

  // mallory, not on the allow-list, never gets a subscription in.
  {
    zmq::context_t context;
    const auto curve = *load_curve_options((keys_ / "broker.pub").string(), (keys_ / "mallory.key").string());
    zmq::socket_t sub(context, zmq::socket_type::sub);
    ConnectionMonitor monitor(context, sub);
    apply_curve_client(sub, curve);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(server_->progress_endpoint());
    ASSERT_TRUE(eventually([&] { monitor.poll(); return monitor.refused().has_value(); }, seconds(20)));
  }
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.succeeded, 2u);
}

TEST(CurveBroker, RefusesHalfAConfiguration) {
  const auto [code, out] = run_shell(kBin + "/imgq-broker --curve-key /nonexistent.key --metrics '' 2>&1");
  EXPECT_EQ(code, 2) << "a usage error: " << out;
  EXPECT_NE(out.find("CURVE needs --curve-key, --allow-clients and --allow-workers together"), std::string::npos) << out;
}

}  // namespace
}  // namespace imgq
