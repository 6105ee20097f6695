// End-to-end: many clients, groups killed and stopped, a restarted broker,
// monitoring. The fixture: system_fixture.h.
#include "integration/system_fixture.h"

namespace imgq {
namespace {

TEST_F(System, EightClientsTwoGroupsEveryResultExactAndOnce) {
  // alpha runs every image whole, one per rank (they are all small); beta
  // runs those above 2000 pixels in strips, so the workload mixes both ways
  // on one group, and strips wait for whole jobs in hand.
  start_group("alpha");
  start_group("beta", {}, {"--strip-above", "2000"});
  ASSERT_TRUE(eventually([&] { return connected_groups() == 2; }, seconds(60)));

  const std::vector<std::vector<std::string>> pipelines = {
      {"to_8bit", "gaussian_blur:ksize=5", "canny:low=50,high=150"}, {"to_8bit", "grayscale", "equalize_hist"},
      {"gaussian_blur:ksize=7", "invert"}, {"resize:scale=0.5", "sharpen"}, {"erode:ksize=5", "flip:axis=v"},
      {"box_blur:ksize=9", "threshold"}, {"to_8bit", "sobel"}, {"dilate", "rotate"}};
  constexpr int kClients = 8, kJobs = 25;
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int c = 0; c < kClients; ++c) {
    const fs::path in = root_ / ("in" + std::to_string(c));
    fs::create_directories(in);
    for (int j = 0; j < kJobs; ++j) {
      const int depth = j % 2 ? CV_16U : CV_8U, channels = std::vector<int>{1, 3, 4}[j % 3];
      const cv::Mat image = imgq::testing::make_image(40 + 7 * j, 31 + 5 * c + j, depth, channels,
                                                      j % 4 ? imgq::testing::Pattern::kShapes : imgq::testing::Pattern::kNoise);
      ASSERT_TRUE(cv::imwrite((in / ("img" + std::to_string(j) + ".png")).string(), image));
    }
    clients.push_back(std::make_unique<Subprocess>(
        submit_args(pipelines[c], root_ / ("out" + std::to_string(c)), {in.string()}),
        (root_ / ("client" + std::to_string(c) + ".log")).string()));
  }

  std::set<std::string> all_jobs;
  for (int c = 0; c < kClients; ++c) {
    const auto code = clients[c]->wait(seconds(300));
    ASSERT_TRUE(code.has_value()) << "client " << c << " did not finish";
    EXPECT_EQ(*code, 0) << clients[c]->output().substr(0, 2000);
    const auto lines = parse_json_lines(clients[c]->output());
    std::map<std::string, int> results_per_file;
    for (const JsonLine& l : lines) {
      if (l["event"] != "result") continue;
      ++results_per_file[l["file"]];
      EXPECT_EQ(l["state"], "done") << l["file"] << ": " << l["message"];
      EXPECT_TRUE(all_jobs.insert(l["job"]).second) << "job " << l["job"] << " delivered twice";
    }
    EXPECT_EQ(results_per_file.size(), static_cast<size_t>(kJobs)) << "client " << c;
    for (const auto& [file, n] : results_per_file) EXPECT_EQ(n, 1) << file;
    ExpectEventsInOrder(lines);

    for (int j = 0; j < kJobs; ++j) {
      const fs::path source = root_ / ("in" + std::to_string(c)) / ("img" + std::to_string(j) + ".png");
      const auto expected = workers::apply_pipeline(*schemas::parse_pipeline(pipelines[c]),
                                                    cv::imread(source.string(), cv::IMREAD_UNCHANGED));
      ASSERT_TRUE(expected.ok()) << expected.status().ToString();
      const cv::Mat actual = cv::imread((root_ / ("out" + std::to_string(c)) / source.filename()).string(),
                                        cv::IMREAD_UNCHANGED);
      EXPECT_TRUE(imgq::testing::SameImage(*expected, actual)) << "client " << c << " " << source.filename();
    }
  }
  EXPECT_EQ(all_jobs.size(), static_cast<size_t>(kClients * kJobs));
  EXPECT_NE(groups_.at("alpha")->output().find("(whole;"), std::string::npos);
  EXPECT_EQ(groups_.at("alpha")->output().find("(strips;"), std::string::npos);
  EXPECT_NE(groups_.at("beta")->output().find("(whole;"), std::string::npos);
  EXPECT_NE(groups_.at("beta")->output().find("(strips;"), std::string::npos);
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.submitted, static_cast<uint64_t>(kClients * kJobs));
  EXPECT_EQ(counters.succeeded, static_cast<uint64_t>(kClients * kJobs));
  EXPECT_EQ(counters.failed, 0u);
  EXPECT_EQ(counters.malformed_client + counters.malformed_worker, 0u);
}

TEST_F(System, KilledGroupsJobIsRequeuedAndFinishedByTheOther) {
  // The first group holds every job at compute behind a gate that never
  // opens, so it is surely in the middle of the job when killed, however
  // fast or slow this machine is. (Regression: a workload sized to outlast
  // the second group's start-up finished first on a faster machine.)
  start_group("first", {"IMGQ_FAULT=hold:compute:*:" + (root_ / "never-opened").string()});
  ASSERT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(60)));

  const fs::path image = root_ / "big.png";
  ASSERT_TRUE(cv::imwrite(image.string(), imgq::testing::make_image(300, 240, CV_8U, 3, imgq::testing::Pattern::kNoise)));
  const std::vector<std::string> ops = {"median_blur:ksize=31", "gaussian_blur:ksize=5"};
  Subprocess client(submit_args(ops, root_ / "out", {image.string()}), (root_ / "client.log").string());

  ASSERT_TRUE(eventually([&] { return client.output().find("\"state\":\"running\"") != std::string::npos; },
                         seconds(60)))
      << client.output();
  start_group("second");
  ASSERT_TRUE(eventually([&] { return connected_groups() == 2; }, seconds(60)));
  groups_.at("first")->signal_group(SIGKILL);

  const auto code = client.wait(seconds(300));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << client.output();
  const auto lines = parse_json_lines(client.output());
  ExpectEventsInOrder(lines);
  bool ran_on_first = false, requeued = false;
  std::string finished_by;
  for (const JsonLine& l : lines) {
    if (l["event"] == "progress" && l["state"] == "running" && l["group"] == "first") ran_on_first = true;
    if (l["event"] == "progress" && l["state"] == "queued" && l["attempts"] == "1") requeued = true;
    if (l["event"] == "result") finished_by = l["group"];
  }
  EXPECT_TRUE(ran_on_first);
  EXPECT_TRUE(requeued) << "the client sees the requeue only as a progress event";
  EXPECT_EQ(finished_by, "second");

  const auto expected = workers::apply_pipeline(*schemas::parse_pipeline(ops), cv::imread(image.string(), cv::IMREAD_UNCHANGED));
  EXPECT_TRUE(imgq::testing::SameImage(*expected, cv::imread((root_ / "out" / "big.png").string(), cv::IMREAD_UNCHANGED)));
  const auto& counters = stop_broker();
  EXPECT_EQ(counters.retried, 1u);
  EXPECT_EQ(counters.succeeded, 1u);
}

// Heartbeats 30 s apart, so liveness (5 of them) cannot be what makes the
// broker forget a group within the test: only its `bye` can.
class SlowHeartbeats : public System {
 protected:
  SlowHeartbeats() { heartbeat_ms_ = 30'000; }
};

TEST_F(SlowHeartbeats, SigtermStopsAGroupCleanlyAndTheBrokerForgetsItAtOnce) {
  start_group("leaving");
  ASSERT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(60)));
  groups_.at("leaving")->signal_group(SIGTERM);
  const auto code = groups_.at("leaving")->wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << groups_.at("leaving")->output();
  EXPECT_EQ(*code, 0) << groups_.at("leaving")->output();
  // Regression: zmq::poll threw on EINTR and the leader aborted, which
  // mpiexec's exit status did not show.
  EXPECT_EQ(groups_.at("leaving")->output().find("BAD TERMINATION"), std::string::npos)
      << groups_.at("leaving")->output();
  EXPECT_NE(groups_.at("leaving")->output().find("saying bye"), std::string::npos);
  // `bye` makes the broker forget it, long before the 150 s of liveness.
  EXPECT_TRUE(eventually([&] { return connected_groups() == 0; }, seconds(60)));
}

TEST_F(System, LocalFilesAreReadAndWrittenByTheGroupUnderItsAllowedFolders) {
  const fs::path area = root_ / "area";
  fs::create_directories(area / "in" / "sub");
  // Images above 100,000 pixels run in strips: both ways read and write files.
  start_group("local", {}, {"--allow-paths", area.string(), "--strip-above", "100000"});
  ASSERT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(60)));
  const std::vector<std::string> ops = {"to_8bit", "gaussian_blur:ksize=5", "canny"};
  std::vector<fs::path> sources;
  for (int i = 0; i < 6; ++i) {
    const fs::path source = area / "in" / (i % 2 ? "sub" : "") / ("l" + std::to_string(i) + ".png");
    const cv::Mat image = i == 5 ? imgq::testing::make_image(500, 400, CV_16U, 3, imgq::testing::Pattern::kNoise)
                                 : imgq::testing::make_image(30 + 9 * i, 41, i % 2 ? CV_16U : CV_8U, 1 + 2 * (i % 2),
                                                             imgq::testing::Pattern::kShapes);
    ASSERT_TRUE(cv::imwrite(source.string(), image));
    sources.push_back(source);
  }
  // A PPM above --strip-above: every rank reads its rows from the file and
  // writes its rows of the result into the output file itself.
  const fs::path ppm = area / "in" / "big.ppm";
  ASSERT_TRUE(cv::imwrite(ppm.string(), imgq::testing::make_image(420, 300, CV_16U, 3, imgq::testing::Pattern::kNoise)));
  const std::vector<std::string> blur = {"gaussian_blur:ksize=5", "sharpen"};
  auto ppm_args = submit_args(blur, area / "out", {ppm.string()});
  ppm_args.push_back("--local");
  const auto [ppm_code, ppm_out] = shell(command_line(ppm_args));
  ASSERT_EQ(ppm_code, 0) << ppm_out;
  {
    const auto expected = workers::apply_pipeline(*schemas::parse_pipeline(blur), cv::imread(ppm.string(), cv::IMREAD_UNCHANGED));
    ASSERT_TRUE(expected.ok());
    std::vector<uchar> want;
    ASSERT_TRUE(cv::imencode(".ppm", *expected, want));
    std::ifstream got_file(area / "out" / "big.ppm", std::ios::binary);
    const std::vector<uchar> got((std::istreambuf_iterator<char>(got_file)), {});
    EXPECT_TRUE(got == want) << "the PPM written by the ranks differs from OpenCV's";
    EXPECT_NE(groups_.at("local")->output().find("(strips; decode 0.000"), std::string::npos)
        << groups_.at("local")->output();
  }
  // Cut short, it is refused with the reason, and no output appears.
  fs::remove(area / "out" / "big.ppm");
  fs::resize_file(ppm, fs::file_size(ppm) - 1000);
  const auto [cut_code, cut_out] = shell(command_line(ppm_args));
  EXPECT_EQ(cut_code, 1) << cut_out;
  EXPECT_NE(cut_out.find("PNM: the file is truncated"), std::string::npos) << cut_out;
  EXPECT_FALSE(fs::exists(area / "out" / "big.ppm"));
  fs::remove(ppm);

  auto args = submit_args(ops, area / "out", {(area / "in").string()});
  args.push_back("--local");
  Subprocess client(args, (root_ / "local-client.log").string());  // "local.log" is the group's
  const auto code = client.wait(seconds(120));
  ASSERT_TRUE(code.has_value()) << client.output();
  EXPECT_EQ(*code, 0) << client.output();
  for (const fs::path& source : sources) {
    const auto expected = workers::apply_pipeline(*schemas::parse_pipeline(ops), cv::imread(source.string(), cv::IMREAD_UNCHANGED));
    ASSERT_TRUE(expected.ok()) << expected.status().ToString();
    const fs::path written = area / "out" / fs::relative(source, area / "in");
    EXPECT_TRUE(imgq::testing::SameImage(*expected, cv::imread(written.string(), cv::IMREAD_UNCHANGED))) << written;
  }
  EXPECT_NE(groups_.at("local")->output().find("(strips;"), std::string::npos);
  EXPECT_NE(groups_.at("local")->output().find("(whole;"), std::string::npos);

  // Outside the allowed folder, also through a link inside it: the client
  // resolves the link, and the broker refuses what no group may use.
  const fs::path outside = root_ / "outside.png";
  ASSERT_TRUE(cv::imwrite(outside.string(), imgq::testing::make_image(20, 20, CV_8U, 1, imgq::testing::Pattern::kShapes)));
  fs::create_directory_symlink(root_, area / "link");
  for (const fs::path& file : {outside, area / "link" / "outside.png"}) {
    auto denied_args = submit_args({"invert"}, area / "out2", {file.string()});
    denied_args.push_back("--local");
    const auto [denied_code, denied] = shell(command_line(denied_args));
    EXPECT_EQ(denied_code, 1) << denied;
    EXPECT_NE(denied.find("no connected worker group may use " + fs::canonical(outside).string()), std::string::npos)
        << denied;
  }
  // A local-files job sent raw (the CLI would not send these): its result.
  auto raw_result = [&](const std::string& path, const std::string& output) {
    zmq::context_t context;
    client::BrokerClient raw(context, server_->clients_endpoint());
    proto::Submit submit;
    submit.req = 1;
    submit.ops = {"invert"};
    submit.path = path;
    submit.output = output;
    std::optional<proto::JobResult> result;
    if (!raw.send(proto::encode(submit))) return result;
    while (!result) {
      const auto frames = raw.receive(seconds(60));
      if (!frames.has_value()) break;
      auto header = proto::decode_header(frames->at(0));
      if (header.ok() && header->type() == proto::JobResult::kType) result = *header->as<proto::JobResult>();
      if (header.ok() && header->type() == proto::Error::kType) break;
    }
    return result;
  };
  const fs::path real_area = fs::canonical(area);  // as the group names its folder
  // Sent by name through the link, the broker cannot tell; the group, which
  // resolves links, refuses it with the reason.
  {
    auto result = raw_result((real_area / "link" / "outside.png").string(), (real_area / "out2" / "outside.png").string());
    ASSERT_TRUE(result.has_value()) << "no result from the broker";
    EXPECT_EQ(result->state, "failed");
    EXPECT_NE(result->message.find("is outside the folders this worker group may use"), std::string::npos)
        << result->message;
  }
  EXPECT_FALSE(fs::exists(area / "out2" / "outside.png"));
  // An input that is not there fails its job with io_error (10, PROTOCOL.md
  // section 4; it was not_found, a code for requests, not jobs), naming it.
  {
    const std::string missing = (real_area / "in" / "not-there.png").string();
    auto result = raw_result(missing, (real_area / "out2" / "not-there.png").string());
    ASSERT_TRUE(result.has_value()) << "no result from the broker";
    EXPECT_EQ(result->state, "failed");
    EXPECT_EQ(result->code, static_cast<int>(StatusCode::kIoError)) << result->message;
    EXPECT_NE(result->message.find(missing), std::string::npos) << result->message;
  }

  // With only a group without --allow-paths connected, the broker refuses
  // local-files jobs at once and says how to fix it.
  groups_.at("local")->signal_group(SIGTERM);
  ASSERT_TRUE(groups_.at("local")->wait(seconds(30)).has_value());
  start_group("plain");
  ASSERT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(60)));
  auto plain_args = submit_args({"invert"}, area / "out3", {sources[0].string()});
  plain_args.push_back("--local");
  const auto [plain_code, plain] = shell(command_line(plain_args));
  EXPECT_EQ(plain_code, 1) << plain;
  EXPECT_NE(plain.find("only inside the folders of its --allow-paths"), std::string::npos) << plain;
  // The output folder is made (and checked) before anything is sent; no result is in it.
  EXPECT_FALSE(fs::exists(area / "out3" / sources[0].filename()));
}

TEST_F(System, GroupReconnectsToARestartedBroker) {
  start_group("faithful");
  ASSERT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(60)));
  ASSERT_NO_FATAL_FAILURE(restart_broker());
  // The group notices the silence (5 s) and says hello to the new broker.
  ASSERT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(30)));

  const fs::path image = root_ / "after.png";
  ASSERT_TRUE(cv::imwrite(image.string(), imgq::testing::make_image(50, 70, CV_8U, 3, imgq::testing::Pattern::kShapes)));
  Subprocess client(submit_args({"canny"}, root_ / "out", {image.string()}), (root_ / "client.log").string());
  const auto code = client.wait(seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << client.output();
  EXPECT_TRUE(fs::exists(root_ / "out" / "after.png"));
}

TEST_F(System, NoWaitThenStatusWatchAndFetchFromNewConnections) {
  const fs::path image = root_ / "later.png";
  const cv::Mat pixels = imgq::testing::make_image(90, 120, CV_8U, 3, imgq::testing::Pattern::kShapes);
  ASSERT_TRUE(cv::imwrite(image.string(), pixels));
  // No group yet: the job waits in the queue after its client has left.
  auto args = submit_args({"invert"}, root_ / "unused", {image.string()});
  // Regression: CLI11 took a path between --op and a later flag for an op.
  args.push_back("--no-wait");
  const auto [code, out] = shell(command_line(args));
  ASSERT_EQ(code, 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("\"event\":\"accepted\",\"job\":\"([0-9a-f]{16})\""))) << out;
  const std::string job = m[1];
  const std::string conn = " --broker " + server_->clients_endpoint() + " --progress " + server_->progress_endpoint();

  const auto [status_code, status] = shell(kBin + "/imgq status " + job + conn + " --json");
  EXPECT_EQ(status_code, 0);
  EXPECT_NE(status.find("\"state\":\"queued\""), std::string::npos) << status;

  Subprocess watch({kBin + "/imgq", "watch", job, "--broker", server_->clients_endpoint(), "--progress",
                    server_->progress_endpoint()},
                   (root_ / "watch.log").string());
  start_group("late");
  EXPECT_EQ(watch.wait(seconds(60)), std::optional<int>(0)) << watch.output();
  EXPECT_NE(watch.output().find(job + " done"), std::string::npos) << watch.output();

  const auto [fetch_code, fetched] = shell(kBin + "/imgq fetch " + job + conn + " -o " + (root_ / "got").string());
  EXPECT_EQ(fetch_code, 0) << fetched;
  cv::Mat expected;
  cv::bitwise_not(pixels, expected);
  EXPECT_TRUE(imgq::testing::SameImage(expected, cv::imread((root_ / "got" / "later.png").string(), cv::IMREAD_UNCHANGED)));

  const auto [missing_code, missing] = shell(kBin + "/imgq status ffffffffffffffff" + conn + " 2>&1");
  EXPECT_EQ(missing_code, 1);
  EXPECT_NE(missing.find("no job ffffffffffffffff"), std::string::npos) << missing;
}

// A workload with successes, failures and a rejection; the image files and
// how many of each outcome it makes.
struct Workload {
  int submitted = 0, succeeded = 0, failed = 0, rejected_invalid = 0;
};

class Monitored : public System {
 protected:
  Workload run_workload() {
    start_group("mon");
    EXPECT_TRUE(eventually([&] { return connected_groups() == 1; }, seconds(60)));
    const fs::path in = root_ / "in";
    fs::create_directories(in);
    for (int i = 0; i < 4; ++i) {
      cv::imwrite((in / ("ok" + std::to_string(i) + ".png")).string(),
                  imgq::testing::make_image(60 + i, 80, CV_8U, 3, imgq::testing::Pattern::kShapes));
    }
    // Refused by the broker from its header; accepted, then failed by the group.
    std::ofstream(in / "corrupt.png") << "not an image";
    cv::imwrite((in / "deep.png").string(), imgq::testing::make_image(30, 30, CV_16U, 1, imgq::testing::Pattern::kShapes));
    Subprocess client(submit_args({"gaussian_blur", "canny"}, root_ / "out", {in.string()}),
                      (root_ / "client.log").string());
    EXPECT_EQ(client.wait(seconds(120)), std::optional<int>(1)) << client.output();

    // A submit the broker itself refuses (the CLI would refuse it first).
    zmq::context_t context;
    client::BrokerClient raw(context, server_->clients_endpoint());
    proto::Submit bad;
    bad.req = 9;
    bad.ops = {"gaussian_blur:ksize=4"};
    const std::string image = "x";
    raw.send(proto::encode(bad), &image);
    EXPECT_TRUE(raw.receive(seconds(10)).has_value());
    return {5, 4, 1, 2};
  }
};

TEST_F(Monitored, MetricsMatchTheWorkloadAndPassPromtool) {
  const Workload w = run_workload();
  const auto [code, text] = shell("curl -sf " + metrics_url());
  ASSERT_EQ(code, 0);
  const fs::path file = root_ / "metrics.txt";
  std::ofstream(file) << text;
  const auto [lint, lint_out] = shell("promtool check metrics < " + file.string() + " 2>&1");
  EXPECT_EQ(lint, 0) << lint_out;

  EXPECT_EQ(sample(text, "imgq_jobs_submitted_total"), w.submitted);
  EXPECT_EQ(sample(text, "imgq_jobs_completed_total{outcome=\"succeeded\"}"), w.succeeded);
  EXPECT_EQ(sample(text, "imgq_jobs_completed_total{outcome=\"failed\"}"), w.failed);
  EXPECT_EQ(sample(text, "imgq_jobs_completed_total{outcome=\"cancelled\"}"), 0);
  EXPECT_EQ(sample(text, "imgq_jobs_failed_total{code=\"unsupported\"}"), w.failed) << "canny on 16-bit";
  EXPECT_EQ(sample(text, "imgq_jobs_failed_total{code=\"deadline_exceeded\"}"), 0);
  EXPECT_EQ(sample(text, "imgq_jobs_rejected_total{reason=\"invalid\"}"), w.rejected_invalid);
  EXPECT_EQ(sample(text, "imgq_jobs_rejected_total{reason=\"queue_full\"}"), 0);
  EXPECT_EQ(sample(text, "imgq_group_jobs_total{group=\"mon\",outcome=\"succeeded\"}"), w.succeeded);
  EXPECT_EQ(sample(text, "imgq_group_jobs_total{group=\"mon\",outcome=\"failed\"}"), w.failed);
  EXPECT_EQ(sample(text, "imgq_job_duration_seconds_count"), w.succeeded + w.failed);
  EXPECT_EQ(sample(text, "imgq_job_wait_seconds_count"), w.submitted);
  EXPECT_EQ(sample(text, "imgq_worker_ranks"), 2);
  EXPECT_GT(sample(text, "imgq_group_pixels_total{group=\"mon\"}"), 4 * 60 * 80);
  EXPECT_GT(sample(text, "imgq_group_stage_seconds_total{group=\"mon\",stage=\"compute\"}"), 0);
  EXPECT_GT(sample(text, "imgq_received_bytes_total{socket=\"clients\"}"), 0);
  EXPECT_GT(sample(text, "imgq_sent_bytes_total{socket=\"clients\"}"), 0);
  EXPECT_EQ(sample(text, "imgq_build_info{version=\"test\"}"), 1);
}

// Every PromQL expression of the dashboard and the alert rules, one per line.
std::vector<std::string> dashboard_and_alert_expressions() {
  std::vector<std::string> exprs;
  std::ifstream dashboard(kSource + "/monitoring/grafana/dashboards/imgq.json");
  static const std::regex json_expr(R"re("expr": "((?:[^"\\]|\\.)*)")re");
  for (std::string line; std::getline(dashboard, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, json_expr)) continue;
    std::string e = m[1];
    e = std::regex_replace(e, std::regex(R"(\\")"), "\"");
    exprs.push_back(e);
  }
  std::ifstream rules(kSource + "/monitoring/prometheus/alerts.yml");
  for (std::string line; std::getline(rules, line);) {
    const size_t at = line.find("expr:");
    if (at == std::string::npos) continue;
    const std::string e = line.substr(at + 5);
    EXPECT_NE(e.find_first_not_of(" >|"), std::string::npos) << "alert exprs must be on one line: " << line;
    exprs.push_back(e.substr(e.find_first_not_of(' ')));
  }
  return exprs;
}

TEST_F(Monitored, PrometheusScrapesTheBrokerAndEveryDashboardAndAlertExpressionWorks) {
  const int port = free_port();
  const fs::path dir = root_ / "prometheus";
  fs::create_directories(dir);
  fs::copy_file(kSource + "/monitoring/prometheus/alerts.yml", dir / "alerts.yml");
  std::ofstream(dir / "prometheus.yml")
      << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      << "rule_files: [alerts.yml]\n"
      << "scrape_configs:\n  - job_name: imgq\n    static_configs:\n      - targets: [\"127.0.0.1:"
      << exposer_->GetListeningPorts().front() << "\"]\n";
  Subprocess prometheus({"prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                         "--storage.tsdb.path=" + (dir / "data").string(),
                         "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                        (dir / "prometheus.log").string());
  const std::string api = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(eventually([&] { return shell("curl -sf " + api + "/-/ready").first == 0; }, seconds(60)))
      << prometheus.output();

  const Workload w = run_workload();
  auto query = [&](const std::string& expr) {
    return shell("curl -sf -G " + api + "/api/v1/query --data-urlencode 'query=" + expr + "'").second;
  };
  // Prometheus has seen the whole workload, over several scrapes.
  ASSERT_TRUE(eventually([&] {
    return query("imgq_jobs_submitted_total").find("\"" + std::to_string(w.submitted) + "\"]") != std::string::npos;
  }, seconds(60)));
  ASSERT_TRUE(eventually([&] {
    return query("count_over_time(imgq_jobs_submitted_total[1m])").find("\"5\"]") != std::string::npos ||
           query("count_over_time(imgq_jobs_submitted_total[1m]) >= 5").find("\"result\":[{") != std::string::npos;
  }, seconds(30)));

  const auto exprs = dashboard_and_alert_expressions();
  EXPECT_GE(exprs.size(), 20u);
  for (const std::string& expr : exprs) {
    const std::string reply = query(expr);
    EXPECT_NE(reply.find("\"status\":\"success\""), std::string::npos) << expr << " -> " << reply;
  }
  // Every dashboard panel shows data: its first query returns series.
  std::ifstream dashboard(kSource + "/monitoring/grafana/dashboards/imgq.json");
  std::string json((std::istreambuf_iterator<char>(dashboard)), std::istreambuf_iterator<char>());
  size_t panels = 0;
  for (size_t at = json.find("\"targets\""); at != std::string::npos; at = json.find("\"targets\"", at + 1)) {
    ++panels;
    const size_t e = json.find("\"expr\": \"", at) + 9;
    std::string expr = json.substr(e, json.find("\",\n", e) - e);
    expr = std::regex_replace(expr, std::regex(R"(\\")"), "\"");
    EXPECT_NE(query(expr).find("\"result\":[{"), std::string::npos) << "panel query returned no data: " << expr;
  }
  EXPECT_EQ(panels, 14u);
}

}  // namespace
}  // namespace imgq
