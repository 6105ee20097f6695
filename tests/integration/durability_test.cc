// "Accepted" means stored: the broker as a real process with a data dir,
// killed (-9) and stopped (SIGTERM) under load and restarted on the same
// ports; clients that stop reading, a full disk, and clients interrupted or
// left without a broker. Every accepted job ends with exactly one result,
// byte-identical to whole-image OpenCV, or a reason.
#include <sys/mount.h>

#include <sqlite3.h>

#include <cstring>
#include <fstream>
#include <random>

#include "imgq/common/batch_paths.h"
#include "imgq/common/file_io.h"
#include "imgq/mpi_workers/image_io.h"
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

// Disk trouble under a running broker, as an operator and a user meet it:
// the disk fills, then (once freed) turns read-only. Each time: an error
// line per kind of failure (not one per attempt), the pong and `imgq ping`
// say what the disk is, the metrics count it, a client is refused with a
// retry hint, backs off (a few tries a second at most), says why once and
// gives up after --timeout with exit 3; and the broker takes jobs again by
// itself when the disk does.
TEST_F(Durable, ADiskThatFillsOrTurnsReadOnlyIsLoudBoundedAndRecoveredFrom) {
  fs::create_directories(data_);
  if (::mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno) << "): needs root";
  }
  metrics_ = "127.0.0.1:" + std::to_string(free_port());
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const fs::path tiny = root_ / "tiny.png", big = root_ / "big.png";
  ASSERT_TRUE(cv::imwrite(tiny.string(), make_image(40, 30, CV_8U, 3, Pattern::kShapes)));
  ASSERT_TRUE(cv::imwrite(big.string(), make_image(400, 300, CV_8U, 3, Pattern::kNoise)));  // a payload file
  auto submit = [&](const fs::path& file) {
    auto args = submit_args({"invert"}, root_ / "out", {file.string()}, /*json=*/false);
    args.insert(args.end(), {"--no-wait", "--timeout", "3"});
    const auto started = std::chrono::steady_clock::now();
    auto result = shell(command_line(args) + " 2>&1");
    std::cout << "[ measured ] imgq submit ended with " << result.first << " after "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() << " s\n";
    return result;
  };
  auto metric = [&](const std::string& line) {
    const std::string text = shell("curl -sf http://" + metrics_ + "/metrics").second;
    const size_t at = text.find(line + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + line.size() + 1));
  };
  auto ping = [&] { return shell(kBin + "/imgq ping" + conn() + " 2>&1").second; };
  auto lines_with = [&](const std::string& what) {
    const std::string log = broker_->output();
    size_t n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };

  // 1. Full: the filler takes what is left.
  {
    std::ofstream filler(data_ / "filler", std::ios::binary);
    const std::string block(64 * 1024, 'x');
    while (filler.write(block.data(), block.size())) {}
  }
  const auto [full_code, full_out] = submit(tiny);
  EXPECT_EQ(full_code, 3) << full_out;
  EXPECT_NE(full_out.find("refuses new jobs for now"), std::string::npos) << full_out;
  EXPECT_NE(full_out.find("refused every submit for 3 s (--timeout)"), std::string::npos) << full_out;
  const double tries = metric("imgq_jobs_rejected_total{reason=\"unstored\"}");
  std::cout << "[ measured ] " << tries << " submit attempt(s) refused in 3 s\n";
  EXPECT_GE(tries, 2);
  EXPECT_LE(tries, 12) << "more than 4 tries a second";
  EXPECT_NE(ping().find("its disk is FULL"), std::string::npos) << ping();
  EXPECT_EQ(metric("imgq_journal_disk{state=\"full\"}"), 1);
  EXPECT_GE(metric("imgq_journal_errors_total{op=\"commit\",reason=\"full\"}"), tries);
  EXPECT_EQ(lines_with("error [broker] journal:"), 1u) << broker_->output();

  // Freed: the broker finds out by itself, and stores jobs again.
  fs::remove(data_ / "filler");
  ASSERT_TRUE(eventually([&] { return ping().find("journal:") == std::string::npos; }, seconds(10))) << ping();
  EXPECT_EQ(lines_with("the disk takes writes again"), 1u) << broker_->output();
  EXPECT_EQ(submit(tiny).first, 0);
  EXPECT_EQ(metric("imgq_journal_disk{state=\"healthy\"}"), 1);

  // 2. Read-only (a bind mount of it remounted read-only: new files fail).
  ASSERT_EQ(::mount(data_.c_str(), data_.c_str(), nullptr, MS_BIND, nullptr), 0) << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, data_.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);
  const auto [ro_code, ro_out] = submit(big);
  EXPECT_EQ(ro_code, 3) << ro_out;
  EXPECT_NE(ro_out.find("Read-only file system"), std::string::npos) << ro_out;
  EXPECT_NE(ping().find("READ-ONLY"), std::string::npos) << ping();
  EXPECT_GE(metric("imgq_journal_errors_total{op=\"write\",reason=\"read_only\"}"), 2);
  EXPECT_EQ(lines_with("error [broker] journal:"), 2u) << broker_->output();
  ASSERT_EQ(::umount(data_.c_str()), 0) << std::strerror(errno);  // the bind only
  ASSERT_TRUE(eventually([&] { return ping().find("journal:") == std::string::npos; }, seconds(10))) << ping();
  const auto [ok_code, ok_out] = submit(big);
  EXPECT_EQ(ok_code, 0) << ok_out;
  EXPECT_EQ(submitted(ok_out).size(), 1u) << ok_out;
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

// A data dir written by the broker before the job record (commit 157fd7d;
// tests/broker/data/make_journal_v1.py made it, killing that broker with a
// job running, three queued, results kept, one acknowledged): today's broker
// restores every job as it was. Results kept then are fetched exactly; the
// running job (not stored as running then: read from its attempts) runs
// again; the acknowledged job's key still names it; the queued ones run.
TEST_F(Durable, AJournalOfTheEarlierFormatIsRestored) {
  const fs::path fixture = fs::path(IMGQ_SOURCE_DIR) / "tests/broker/data/journal-v1";
  fs::copy(fixture / "data", data_, fs::copy_options::recursive);
  struct Stored {
    std::string id, role, sample, state, key, format;
    std::vector<std::string> ops;
  };
  std::map<std::string, Stored> jobs;  // by role
  std::ifstream tsv(fixture / "jobs.tsv");
  for (std::string line; std::getline(tsv, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cells;
    for (size_t at = 0; at != std::string::npos;) {
      const size_t tab = line.find('\t', at);
      cells.push_back(line.substr(at, tab == std::string::npos ? tab : tab - at));
      at = tab == std::string::npos ? tab : tab + 1;
    }
    ASSERT_GE(cells.size(), 7u) << line;
    jobs[cells[1]] = {cells[0], cells[1], cells[2], cells[3], cells[4] == "-" ? "" : cells[4], cells[5],
                      std::vector<std::string>(cells.begin() + 6, cells.end())};
  }
  ASSERT_EQ(jobs.size(), 9u);
  // Its times moved to now, as if the broker had just died: the results
  // and the key are within their TTL, whenever this runs.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((data_ / "journal.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* latest = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT MAX(submitted) FROM jobs", -1, &latest, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(latest), SQLITE_ROW);
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const std::string shift = std::to_string(now - sqlite3_column_double(latest, 0));
    sqlite3_finalize(latest);
    const std::string sql = "UPDATE jobs SET submitted = submitted + " + shift +
                            ", finished = CASE WHEN finished > 0 THEN finished + " + shift +
                            " ELSE 0 END, gone_at = CASE WHEN gone_at > 0 THEN gone_at + " + shift + " ELSE 0 END";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  ASSERT_NO_FATAL_FAILURE(start_broker());
  EXPECT_NE(broker_->output().find("restored 3 queued job(s), 1 requeued that were running"), std::string::npos)
      << broker_->output();
  auto state_of = [&](const std::string& role) {
    const auto [code, out] = shell(kBin + "/imgq status " + jobs.at(role).id + conn() + " 2>&1");
    return out;
  };
  // Before any group: each as it was, the running one queued again.
  for (const char* role : {"kept_inline", "kept_file"}) EXPECT_NE(state_of(role).find(" done"), std::string::npos);
  EXPECT_NE(state_of("failed").find(" failed"), std::string::npos) << state_of("failed");
  EXPECT_NE(state_of("failed").find("longer than its timeout"), std::string::npos) << state_of("failed");
  EXPECT_NE(state_of("cancelled").find(" cancelled"), std::string::npos) << state_of("cancelled");
  for (const char* role : {"running", "queued_inline", "queued_file", "queued_low"}) {
    EXPECT_NE(state_of(role).find(" queued"), std::string::npos) << role << ": " << state_of(role);
  }
  EXPECT_NE(state_of("acknowledged").find(" done"), std::string::npos) << state_of("acknowledged");
  // A key names its job still: a submit with it is answered `existing`, with
  // the job of then; the acknowledged job's key says what became of it.
  zmq::context_t context;
  client::BrokerClient broker(context, clients_);
  for (const char* role : {"acknowledged", "running", "queued_file"}) {
    const Stored& job = jobs.at(role);
    proto::Submit submit;
    submit.req = 1;
    submit.ops = job.ops;
    submit.format = job.format;
    submit.key = job.key;
    auto image = read_file_string(fs::path(testing::sample_data_dir()) / job.sample);
    ASSERT_TRUE(image.ok());
    ASSERT_TRUE(broker.send(proto::encode(submit), &*image));
    auto reply = broker.receive(seconds(10));
    ASSERT_TRUE(reply.has_value()) << role;
    auto accepted = client::decode_reply<proto::Accepted>(*reply);
    if (std::string(role) == "acknowledged") {
      EXPECT_EQ(accepted.status().code(), StatusCode::kNotFound);
      EXPECT_NE(accepted.status().message().find(job.id + " (key \"acked\") finished and its result was acknowledged"),
                std::string::npos) << accepted.status().ToString();
      continue;
    }
    ASSERT_TRUE(accepted.ok()) << role << ": " << accepted.status().ToString();
    EXPECT_TRUE(accepted->existing) << role;
    EXPECT_EQ(accepted->job, job.id) << role;
  }
  // With a group, everything unfinished runs; every result is exact.
  start_group("g");
  await_groups(1);
  for (const char* role : {"kept_inline", "kept_file", "running", "queued_inline", "queued_file", "queued_low"}) {
    const Stored& job = jobs.at(role);
    const fs::path out = root_ / "fetched" / role;
    const auto [code, said] = fetch_when_done(job.id, out);
    ASSERT_EQ(code, 0) << role << ": " << said;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(out)) {
      if (entry.path().filename() != kResultsMarker) files.push_back(entry.path());
    }
    ASSERT_EQ(files.size(), 1u) << role << ": " << said;
    const cv::Mat reference = expected(job.ops, fs::path(testing::sample_data_dir()) / job.sample);
    auto encoded = workers::encode_image(reference, job.format);  // a JPEG is compared as the group wrote it
    ASSERT_TRUE(encoded.ok());
    EXPECT_TRUE(SameImage(cv::imdecode(*encoded, cv::IMREAD_UNCHANGED),
                          cv::imread(files[0].string(), cv::IMREAD_UNCHANGED)))
        << role;
  }
}

}  // namespace
}  // namespace imgq
