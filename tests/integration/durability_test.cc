// "Accepted" means stored: the broker as a real process with a data dir,
// killed (-9) and stopped (SIGTERM) under load and restarted on the same
// ports; clients that stop reading, a full disk, and clients interrupted or
// left without a broker. Every accepted job ends with exactly one result,
// byte-identical to whole-image OpenCV, or a reason.
#include <sys/mount.h>

#include <cstring>
#include <random>

#include "imgq/common/file_io.h"
#include "integration/durable_fixture.h"

namespace imgq {
namespace {

TEST_F(Durable, TenBrokerCrashesUnderLoadLoseNothingAndWriteNothingTwice) {
  // Every crash may catch a job running; the cap on attempts counts those,
  // so it is set above the number of crashes.
  broker_flags_ = {"--max-attempts", "12"};
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // The groups' ranks run a few jobs per crash (a turnstile), so the work
  // spans all ten crashes however fast this machine is.
  const fs::path gate = root_ / "gate";
  start_group("a", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  start_group("b", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  await_groups(2);
  const std::vector<std::string> ops = {"gaussian_blur:ksize=5", "canny"};
  std::vector<fs::path> waiting_in, no_wait_in;
  std::vector<std::unique_ptr<Subprocess>> waiting, no_wait;
  for (int c = 0; c < 4; ++c) {
    waiting_in.push_back(make_folder("w" + std::to_string(c), 50, c));
    auto args = submit_args(ops, root_ / ("wout" + std::to_string(c)), {waiting_in.back().string()});
    args.insert(args.end(), {"--window", "8"});
    waiting.push_back(std::make_unique<Subprocess>(args, (root_ / ("w" + std::to_string(c) + ".log")).string()));
  }
  for (int c = 0; c < 2; ++c) no_wait_in.push_back(make_folder("n" + std::to_string(c), 50, 10 + c));
  auto start_no_wait = [&](int c) {
    auto args = submit_args(ops, root_ / "unused", {no_wait_in[static_cast<size_t>(c)].string()}, /*json=*/false);
    args.insert(args.end(), {"--no-wait", "--window", "4"});
    no_wait.push_back(std::make_unique<Subprocess>(args, (root_ / ("n" + std::to_string(c) + ".log")).string()));
  };

  // Ten kill -9s, each at a random moment once the restarted broker has its
  // groups back (the moments vary; the outcome must not). The --no-wait
  // clients start just before the third and the sixth.
  std::mt19937 rng(20261201);
  for (int crash = 0; crash < 10; ++crash) {
    SCOPED_TRACE("crash " + std::to_string(crash));
    await_groups(2);
    release_holds(gate, 6);
    if (crash == 2 || crash == 5) start_no_wait(crash == 2 ? 0 : 1);
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(0, 400)(rng)));
    broker_->signal_group(SIGKILL);
    ASSERT_TRUE(broker_->wait(seconds(10)).has_value());
    ASSERT_NO_FATAL_FAILURE(start_broker());
  }
  // The turnstile let at most 240 of the 300 jobs through: the last broker
  // surely took unfinished work back from the journal.
  std::smatch restored;
  const std::string last_log = broker_->output();
  ASSERT_TRUE(std::regex_search(last_log, restored, std::regex(R"(restored (\d+) queued job\(s\), (\d+) requeued)")))
      << last_log;
  EXPECT_GT(std::stoi(restored[1]) + std::stoi(restored[2]), 0) << last_log;
  open_gate(gate);

  std::set<std::string> jobs;
  for (size_t c = 0; c < waiting.size(); ++c) {
    const auto code = waiting[c]->wait(seconds(300));
    ASSERT_TRUE(code.has_value()) << "waiting client " << c << " did not finish";
    EXPECT_EQ(*code, 0) << waiting[c]->output().substr(0, 3000);
    std::map<std::string, int> per_file;
    for (const JsonLine& l : parse_json_lines(waiting[c]->output())) {
      if (l["event"] != "result") continue;
      ++per_file[l["file"]];
      EXPECT_EQ(l["state"], "done") << l["file"] << ": " << l["message"];
      EXPECT_TRUE(jobs.insert(l["job"]).second) << "job " << l["job"] << " delivered twice";
    }
    EXPECT_EQ(per_file.size(), 50u) << "client " << c;
    for (const auto& [file, n] : per_file) EXPECT_EQ(n, 1) << file << " written " << n << " times";
    for (int j = 0; j < 50; ++j) {
      const fs::path source = waiting_in[c] / ("i" + std::to_string(j) + ".png");
      const fs::path written = root_ / ("wout" + std::to_string(c)) / source.filename();
      ASSERT_TRUE(SameImage(expected(ops, source), cv::imread(written.string(), cv::IMREAD_UNCHANGED))) << written;
    }
  }
  for (size_t c = 0; c < no_wait.size(); ++c) {
    const auto code = no_wait[c]->wait(seconds(120));
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << no_wait[c]->output();
    const auto ids = submitted(no_wait[c]->output());
    ASSERT_EQ(ids.size(), 50u) << no_wait[c]->output();
    for (const auto& [file, job] : ids) {
      EXPECT_TRUE(jobs.insert(job).second) << "job " << job << " twice";
      const fs::path got = root_ / ("fetched" + std::to_string(c));
      const auto [fetch_code, fetched] = fetch_when_done(job, got);
      ASSERT_EQ(fetch_code, 0) << file << " (" << job << "): " << fetched;
      ASSERT_TRUE(SameImage(expected(ops, file), cv::imread((got / fs::path(file).filename()).string(), cv::IMREAD_UNCHANGED)))
          << file;
    }
  }
  EXPECT_EQ(jobs.size(), 300u);
}

TEST_F(Durable, SigtermKeepsTheQueueAndARestartBindsTheSamePortsAtOnce) {
  metrics_ = "127.0.0.1:" + std::to_string(free_port());
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const fs::path in = make_folder("in", 20, 3);
  auto args = submit_args({"invert"}, root_ / "unused", {in.string()}, /*json=*/false);
  args.insert(args.end(), {"--no-wait", "--window", "3"});
  const auto [code, out] = shell(command_line(args));
  ASSERT_EQ(code, 0) << out << "\n(--no-wait returns once all are accepted, with no group to run them)";
  const auto ids = submitted(out);
  ASSERT_EQ(ids.size(), 20u) << out;

  const auto asked = std::chrono::steady_clock::now();
  broker_->signal_group(SIGTERM);
  const auto exit_code = broker_->wait(seconds(10));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 0) << broker_->output();
  std::cout << "[ measured ] the broker exited " << took << " s after SIGTERM\n";
  // Started right away on the same ports, the metrics port included.
  ASSERT_NO_FATAL_FAILURE(start_broker());
  EXPECT_NE(broker_->output().find("restored 20 queued job(s)"), std::string::npos) << broker_->output();
  start_group("g");
  for (const auto& [file, job] : ids) {
    const auto [fetch_code, fetched] = fetch_when_done(job, root_ / "got");
    ASSERT_EQ(fetch_code, 0) << fetched;
    EXPECT_TRUE(SameImage(expected({"invert"}, file),
                          cv::imread((root_ / "got" / fs::path(file).filename()).string(), cv::IMREAD_UNCHANGED)));
  }
  // Fetched is acknowledged: asked again, the broker says so.
  const auto [again_code, again] = shell(kBin + "/imgq fetch " + ids.begin()->second + conn() + " -o " +
                                         (root_ / "again").string() + " 2>&1");
  EXPECT_EQ(again_code, 1);
  EXPECT_NE(again.find("delivered and acknowledged at"), std::string::npos) << again;
}

TEST_F(Durable, ResultsOfAClientThatStoppedReadingAndDiedCanBeFetched) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // The group holds every job until the client has stopped.
  const fs::path gate = root_ / "gate";
  start_group("g", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  await_groups(1);
  const fs::path in = make_folder("in", 12, 5);
  Subprocess client(submit_args({"sobel"}, root_ / "out", {in.string()}), (root_ / "client.log").string());
  // Every job accepted (its progress events are lines too: counting all
  // lines could stop short, seen on a loaded machine).
  std::map<std::string, std::string> ids;
  ASSERT_TRUE(eventually([&] {
    ids.clear();
    for (const JsonLine& l : parse_json_lines(client.output())) {
      if (l["event"] == "accepted") ids[l["file"]] = l["job"];
    }
    return ids.size() == 12;
  }, seconds(60))) << client.output();
  ASSERT_EQ(ids.size(), 12u) << client.output();
  client.signal_group(SIGSTOP);
  open_gate(gate);
  // Every result goes out to the stopped client's socket...
  for (const auto& [file, job] : ids) {
    ASSERT_TRUE(eventually([&, job = job] {
      return shell(kBin + "/imgq status " + job + conn()).second.find(" done") != std::string::npos;
    }, seconds(60)));
  }
  // ...and the client dies without having read them.
  client.signal_group(SIGKILL);
  client.wait(seconds(10));
  for (const auto& [file, job] : ids) {
    const auto [code, out] = fetch_when_done(job, root_ / "fetched");
    ASSERT_EQ(code, 0) << out << "\n(regression: results queued on a socket counted as delivered)";
    EXPECT_TRUE(SameImage(expected({"sobel"}, file),
                          cv::imread((root_ / "fetched" / fs::path(file).filename()).string(), cv::IMREAD_UNCHANGED)));
  }
}

TEST_F(Durable, AFullDiskRefusesWhatItCannotStoreAndLosesNothingAccepted) {
  fs::create_directories(data_);
  if (::mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno) << "): needs root";
  }
  ASSERT_NO_FATAL_FAILURE(start_broker());
  zmq::context_t context;
  client::BrokerClient raw(context, clients_);
  std::map<std::string, fs::path> accepted;
  std::vector<std::string> refusals;
  // 200 KB images (a payload file each) until the disk is full, and beyond.
  for (int i = 0; i < 12; ++i) {
    const fs::path file = root_ / ("noise" + std::to_string(i) + ".png");
    ASSERT_TRUE(cv::imwrite(file.string(), make_image(260, 260, CV_8U, 3, Pattern::kNoise)));
    proto::Submit submit;
    submit.req = static_cast<uint64_t>(i + 1);
    submit.ops = {"invert"};
    submit.name = file.filename().string();
    std::string image = *read_file_string(file);
    ASSERT_GT(image.size(), 180'000u);
    ASSERT_TRUE(raw.send(proto::encode(submit), &image));
    auto reply = raw.receive(seconds(30));
    ASSERT_TRUE(reply.has_value()) << "no answer to submit " << i;
    auto header = proto::decode_header(reply->at(0));
    ASSERT_TRUE(header.ok());
    if (header->type() == proto::Accepted::kType) {
      accepted[header->as<proto::Accepted>()->job] = file;
    } else {
      auto error = header->as<proto::Error>();
      ASSERT_TRUE(error.ok());
      EXPECT_EQ(error->code_name, "resource_exhausted") << error->message;
      EXPECT_NE(error->message.find("could not store the job, so it was not accepted"), std::string::npos)
          << error->message;
      refusals.push_back(error->message);
    }
  }
  ASSERT_FALSE(refusals.empty()) << "the 1 MB disk never filled";
  ASSERT_FALSE(accepted.empty());
  std::cout << "[ measured ] " << accepted.size() << " accepted, " << refusals.size() << " refused: " << refusals[0]
            << "\n";
  // Whatever was acknowledged survives a crash, and runs.
  broker_->signal_group(SIGKILL);
  broker_->wait(seconds(10));
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_group("g");
  for (const auto& [job, file] : accepted) {
    const auto [code, out] = fetch_when_done(job, root_ / "got");
    ASSERT_EQ(code, 0) << out;
    EXPECT_TRUE(SameImage(expected({"invert"}, file),
                          cv::imread((root_ / "got" / file.filename()).string(), cv::IMREAD_UNCHANGED)));
  }
}

TEST_F(Durable, AnInterruptedOrAbandonedClientEndsAndListsItsJobs) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const fs::path in = make_folder("in", 5, 7);
  // No group: the jobs stay queued. --detach: an interrupt leaves them there.
  auto detached = submit_args({"invert"}, root_ / "out", {in.string()});
  detached.push_back("--detach");
  Subprocess client(detached, (root_ / "client.log").string());
  auto accepted = [&] {
    int n = 0;
    for (const JsonLine& l : parse_json_lines(client.output())) n += l["event"] == "accepted";
    return n;
  };
  ASSERT_TRUE(eventually([&] { return accepted() == 5; }, seconds(30))) << client.output();
  const auto asked = std::chrono::steady_clock::now();
  client.signal_group(SIGINT);
  const auto code = client.wait(seconds(10));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 130) << client.output();
  EXPECT_EQ(unfinished(client.output()), 5) << client.output();
  std::cout << "[ measured ] imgq submit ended " << took << " s after SIGINT\n";

  // A waiting client whose broker does not come back gives up after --timeout.
  auto args = submit_args({"invert"}, root_ / "out2", {in.string()});
  args.insert(args.end(), {"--timeout", "2"});
  Subprocess patient(args, (root_ / "patient.log").string());
  ASSERT_TRUE(eventually([&] {
    int n = 0;
    for (const JsonLine& l : parse_json_lines(patient.output())) n += l["event"] == "accepted";
    return n == 5;
  }, seconds(30))) << patient.output();
  broker_->signal_group(SIGKILL);
  const auto gave_up = patient.wait(seconds(30));
  ASSERT_TRUE(gave_up.has_value());
  EXPECT_EQ(*gave_up, 3) << patient.output();
  EXPECT_NE(patient.output().find("no answer from the broker"), std::string::npos) << patient.output();
  EXPECT_EQ(unfinished(patient.output()), 5) << patient.output();
}

}  // namespace
}  // namespace imgq
