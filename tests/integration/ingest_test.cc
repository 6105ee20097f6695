// Ingestion end to end: `imgq ingest` on an inbox against a real broker
// process and worker groups (files present at start, written slowly, moved
// in, bad, not images; ingest and broker killed mid-run), and
// `imgq submit --from-file` reading a list from a pipe. Every good image
// has exactly one result, byte-identical to whole-image OpenCV, and every
// original ends in done/ or failed/ once.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "integration/durable_fixture.h"

namespace imgq {
namespace {

class Ingest : public Durable {
 protected:
  std::unique_ptr<Subprocess> start_ingest(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kBin + "/imgq", "ingest", "--json", "--broker", clients_, "--progress",
                                     progress_, "--inbox", inbox().string(), "-o", out().string(),
                                     "--timeout", "2"};
    for (const std::string& op : ops_) argv.insert(argv.end(), {"--op", op});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Subprocess>(argv, (root_ / ("ingest" + std::to_string(ingests_++) + ".log")).string());
  }
  fs::path inbox() const { return root_ / "inbox"; }
  fs::path out() const { return root_ / "out"; }
  fs::path done() const { return root_ / "inbox.done"; }
  fs::path failed() const { return root_ / "inbox.failed"; }

  // Regular files under `dir`, relative, sorted; hidden ones too.
  static std::vector<std::string> files(const fs::path& dir) {
    std::vector<std::string> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file()) found.push_back(it->path().lexically_relative(dir).string());
    }
    std::sort(found.begin(), found.end());
    return found;
  }
  // The inbox's files, but for the ingest's lock and what it leaves by design.
  std::vector<std::string> inbox_left() const {
    std::vector<std::string> left;
    for (const std::string& f : files(inbox())) {
      if (f != ".imgq-ingest.lock" && f != "notes.txt" && f != ".partial.png") left.push_back(f);
    }
    return left;
  }
  void await_empty_inbox(const Subprocess& ingest) {
    ASSERT_TRUE(eventually([&] { return inbox_left().empty(); }, seconds(120)))
        << "left: " << inbox_left().size() << " first " << (inbox_left().empty() ? "" : inbox_left()[0]) << "\n"
        << ingest.output().substr(0, 4000);
  }

  // An image of each kind: 8/16-bit, 1/3/4 channels, odd and tiny sizes.
  void write_images(const fs::path& dir, int n, int seed) {
    fs::create_directories(dir);
    for (int j = 0; j < n; ++j) {
      const int depth = j % 4 == 3 ? CV_16U : CV_8U;
      const int channels = std::array{1, 3, 4}[static_cast<size_t>(j % 3)];
      const cv::Mat image = make_image(1 + (j * 13 + seed) % 70, 1 + (seed * 7 + j * 5) % 90, depth, channels,
                                       j % 2 ? Pattern::kShapes : Pattern::kNoise);
      ASSERT_TRUE(cv::imwrite((dir / ("i" + std::to_string(j) + ".png")).string(), image));
    }
  }

  // Each original in done/ has one result in out/ equal to whole-image
  // OpenCV; nothing else is in out/ (no second copy, no staging file left).
  void expect_exact_results(size_t expected_count) {
    const auto originals = files(done());
    EXPECT_EQ(originals.size(), expected_count);
    EXPECT_EQ(files(out()), originals);
    EXPECT_TRUE(fs::is_empty(out() / ".imgq-staging"));
    for (const std::string& rel : originals) {
      const cv::Mat got = cv::imread((out() / rel).string(), cv::IMREAD_UNCHANGED);
      ASSERT_TRUE(SameImage(expected(ops_, done() / rel), got)) << rel;
    }
  }

  std::vector<std::string> ops_ = {"to_8bit", "grayscale", "gaussian_blur:ksize=5", "equalize_hist"};
  int ingests_ = 0;
};

TEST_F(Ingest, TakesFilesPresentWrittenSlowlyAndMovedInAndSortsOutTheBad) {
  ops_ = {"gaussian_blur:ksize=3"};
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_group("g");
  await_groups(1);
  ASSERT_NO_FATAL_FAILURE(write_images(inbox(), 6, 1));
  ASSERT_NO_FATAL_FAILURE(write_images(inbox() / "a" / "b", 5, 2));
  std::ofstream(inbox() / "bad.png") << "not an image at all";
  std::ofstream(inbox() / "notes.txt") << "not an image name: left alone";
  std::ofstream(inbox() / ".partial.png") << "hidden: a writer's temporary file";
  // A file still being written when ingest starts, and one begun after: half
  // of each is there until this test closes them.
  const cv::Mat slow_image = make_image(41, 37, CV_8U, 3, Pattern::kShapes);
  std::vector<uchar> slow_bytes;
  ASSERT_TRUE(cv::imencode(".png", slow_image, slow_bytes));
  const size_t half = slow_bytes.size() / 2;
  auto begin_writing = [&](const fs::path& path) {
    // CLOEXEC: a child started meanwhile (the ingest itself) must not hold it open.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_EQ(::write(fd, slow_bytes.data(), half), static_cast<ssize_t>(half));
    return fd;
  };
  const int slow_before = begin_writing(inbox() / "slow_before.png");

  auto ingest = start_ingest();
  ASSERT_TRUE(eventually([&] { return files(done()).size() == 11; }, seconds(120))) << ingest->output();
  const int slow_after = begin_writing(inbox() / "a" / "slow_after.png");
  // Moved in from outside: complete at once.
  ASSERT_NO_FATAL_FAILURE(write_images(root_ / "staging", 1, 3));
  fs::rename(root_ / "staging" / "i0.png", inbox() / "moved.png");
  ASSERT_TRUE(eventually([&] { return fs::exists(done() / "moved.png"); }, seconds(60))) << ingest->output();
  // The moved file was taken after both half files were there: neither was.
  EXPECT_TRUE(fs::exists(inbox() / "slow_before.png"));
  EXPECT_TRUE(fs::exists(inbox() / "a" / "slow_after.png"));
  for (int fd : {slow_before, slow_after}) {
    ASSERT_EQ(::write(fd, slow_bytes.data() + half, slow_bytes.size() - half),
              static_cast<ssize_t>(slow_bytes.size() - half));
    ::close(fd);
  }
  ASSERT_NO_FATAL_FAILURE(await_empty_inbox(*ingest));

  ingest->signal_group(SIGTERM);
  const auto code = ingest->wait(seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << ingest->output();
  ASSERT_NO_FATAL_FAILURE(expect_exact_results(14));
  EXPECT_TRUE(fs::exists(done() / "a" / "b" / "i4.png"));
  // The bad file, with its reason beside it.
  EXPECT_EQ(files(failed()), (std::vector<std::string>{"bad.png", "bad.png.error.txt"}));
  std::ifstream note(failed() / "bad.png.error.txt");
  const std::string reason((std::istreambuf_iterator<char>(note)), std::istreambuf_iterator<char>());
  EXPECT_EQ(reason.rfind((inbox() / "bad.png").string() + ": error: ", 0), 0u) << reason;
  EXPECT_NE(reason.find("not a recognised image format"), std::string::npos) << reason;
  // What is no image, or hidden, is left alone.
  EXPECT_TRUE(fs::exists(inbox() / "notes.txt"));
  EXPECT_TRUE(fs::exists(inbox() / ".partial.png"));
  EXPECT_NE(ingest->output().find("ignoring " + (inbox() / "notes.txt").string()), std::string::npos);
}

TEST_F(Ingest, KillingIngestAndTheBrokerMidRunLosesNothingAndDoesNothingTwice) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // Jobs pass the ranks' compute only as the test lets them (a turnstile),
  // so every kill finds jobs in flight.
  const fs::path gate = root_ / "gate";
  start_group("g", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  await_groups(1);
  ASSERT_NO_FATAL_FAILURE(write_images(inbox(), 24, 5));
  ASSERT_NO_FATAL_FAILURE(write_images(inbox() / "deep" / "er", 16, 6));
  std::ofstream(inbox() / "broken.png") << "\x89PNG\r\n\x1a\n truncated";

  auto ingest = start_ingest({"--window", "6"});
  release_holds(gate, 6);
  ASSERT_TRUE(eventually([&] { return files(done()).size() >= 5; }, seconds(120))) << ingest->output();
  // Six kill -9s of the ingest, each at a random moment while results of
  // the jobs just let through come in, are written, synced and their
  // originals moved (the moments vary; the outcome must not). Each new
  // ingest asks for the jobs in flight again under the same keys.
  std::mt19937 rng(20261202);
  for (int kill = 0; kill < 6; ++kill) {
    SCOPED_TRACE("kill " + std::to_string(kill));
    release_holds(gate, 1);
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(0, 150)(rng)));
    ingest->signal_group(SIGKILL);
    ASSERT_TRUE(ingest->wait(seconds(10)).has_value());
    ingest = start_ingest({"--window", "6"});
  }
  // Each rank passed at most 13 jobs: at least 14 are still to do.
  EXPECT_GE(inbox_left().size(), 14u);
  // kill -9 of the broker: the journal has the jobs; the ingest resubmits
  // what was in flight to the restarted broker.
  release_holds(gate, 2);
  broker_->signal_group(SIGKILL);
  ASSERT_TRUE(broker_->wait(seconds(10)).has_value());
  EXPECT_GE(inbox_left().size(), 10u);
  ASSERT_NO_FATAL_FAILURE(start_broker());
  open_gate(gate);
  ASSERT_NO_FATAL_FAILURE(await_empty_inbox(*ingest));
  ingest->signal_group(SIGINT);
  const auto code = ingest->wait(seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << ingest->output();

  ASSERT_NO_FATAL_FAILURE(expect_exact_results(40));
  EXPECT_EQ(files(failed()), (std::vector<std::string>{"broken.png", "broken.png.error.txt"}));
}

TEST_F(Ingest, LocalFilesAndDeleteLeaveOnlyResults) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  std::vector<std::string> argv = {IMGQ_MPIEXEC, "-n", "2", kBin + "/imgq-worker", "--broker", workers_,
                                   "--name", "local", "--heartbeat-ms", "200", "--allow-paths", root_.string()};
  groups_["local"] = std::make_unique<Subprocess>(argv, (root_ / "local.log").string());
  await_groups(1);
  ASSERT_NO_FATAL_FAILURE(write_images(inbox() / "x", 7, 9));
  fs::create_directories(root_ / "kept");
  for (int j = 0; j < 7; ++j) fs::copy_file(inbox() / "x" / ("i" + std::to_string(j) + ".png"),
                                            root_ / "kept" / ("i" + std::to_string(j) + ".png"));
  auto ingest = start_ingest({"--local", "--delete", "--format", "tif"});
  ASSERT_NO_FATAL_FAILURE(await_empty_inbox(*ingest));
  ingest->signal_group(SIGTERM);
  ASSERT_TRUE(ingest->wait(seconds(30)).has_value());
  EXPECT_FALSE(fs::exists(done()));
  std::vector<std::string> want;
  for (int j = 0; j < 7; ++j) want.push_back("x/i" + std::to_string(j) + ".tif");
  std::sort(want.begin(), want.end());
  EXPECT_EQ(files(out()), want) << ingest->output();
  for (int j = 0; j < 7; ++j) {
    const std::string name = "i" + std::to_string(j);
    ASSERT_TRUE(SameImage(expected(ops_, root_ / "kept" / (name + ".png")),
                          cv::imread((out() / "x" / (name + ".tif")).string(), cv::IMREAD_UNCHANGED)))
        << name;
  }
}

TEST_F(Ingest, SubmitFromFileStreamsAListFromAPipe) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_group("g");
  await_groups(1);
  ASSERT_NO_FATAL_FAILURE(write_images(root_ / "pics" / "sub", 5, 4));
  // Paths under the current folder keep their relative path; folders in the
  // list (as `find` prints them) are skipped; a missing file is an error.
  const std::string list = "pics\npics/sub\n" + [&] {
    std::string lines;
    for (int j = 0; j < 5; ++j) lines += "pics/sub/i" + std::to_string(j) + ".png\n";
    return lines;
  }() + "pics/missing.png\n";
  std::ofstream(root_ / "list.txt") << list;
  // No --progress: the broker's pong announces its (ephemeral) progress port.
  std::string cmd = "cd " + root_.string() + " && cat list.txt | " + kBin + "/imgq submit --from-file - --broker " +
                    clients_ + " --timeout 10 -o res";
  for (const std::string& op : ops_) cmd += " --op " + op;
  const auto [code, output] = shell(cmd + " 2>&1");
  EXPECT_EQ(code, 1) << output;  // one failed: the missing file
  EXPECT_NE(output.find("pics/missing.png: error: no such file"), std::string::npos) << output;
  EXPECT_NE(output.find("skipped 2 folder(s)"), std::string::npos) << output;
  for (int j = 0; j < 5; ++j) {
    const fs::path rel = fs::path("pics/sub") / ("i" + std::to_string(j) + ".png");
    ASSERT_TRUE(SameImage(expected(ops_, root_ / rel),
                          cv::imread((root_ / "res" / rel).string(), cv::IMREAD_UNCHANGED)))
        << rel;
  }
}

}  // namespace
}  // namespace imgq
