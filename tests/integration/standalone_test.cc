// imgq-worker's standalone mode end to end: a real `mpiexec -n 2` group on a
// folder tree holding 8- and 16-bit images, a corrupt file and a non-image.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "common/subprocess.h"
#include "common/test_images.h"
#include "imgq/mpi_workers/ops.h"

namespace imgq {
namespace {

namespace fs = std::filesystem;
using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

RunResult run_worker(int ranks, const std::string& args) {
  auto [code, output] = imgq::testing::run_shell(std::string(IMGQ_MPIEXEC) + " -n " + std::to_string(ranks) + " " +
                                                 IMGQ_BIN_DIR + "/imgq-worker " + args + " 2>&1");
  return {code, std::move(output)};
}

class Standalone : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("imgq_standalone_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    in_ = root_ / "photos";
    out_ = root_ / "out";
    fs::create_directories(in_ / "sub" / "deep");
    write(in_ / "a.png", make_image(67, 45, CV_8U, 3, Pattern::kShapes));
    write(in_ / "sub" / "b.tif", make_image(31, 52, CV_16U, 1, Pattern::kShapes));
    write(in_ / "sub" / "deep" / "c.png", make_image(3, 5, CV_8U, 4, Pattern::kNoise));
    std::ofstream(in_ / "broken.png") << "not a png";
    std::ofstream(in_ / "notes.txt") << "not an image, not picked up";
  }
  void TearDown() override { fs::remove_all(root_); }

  static void write(const fs::path& p, const cv::Mat& m) { ASSERT_TRUE(cv::imwrite(p.string(), m)); }

  fs::path root_, in_, out_;
};

cv::Mat expected_for(const fs::path& input, const std::vector<std::string>& specs) {
  auto result = workers::apply_pipeline(*schemas::parse_pipeline(specs),
                                        cv::imread(input.string(), cv::IMREAD_UNCHANGED));
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ok() ? *result : cv::Mat();
}

TEST_F(Standalone, FolderKeepsRelativePathsAndReportsTheCorruptFile) {
  const std::vector<std::string> specs = {"gaussian_blur:ksize=5", "invert"};
  const RunResult r = run_worker(2, "--input " + in_.string() + " --op gaussian_blur:ksize=5 --op invert --out " +
                                        out_.string() + " --format png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find((in_ / "broken.png").string() + ": error: not a recognised image format"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("4 image(s): 3 succeeded, 1 failed"), std::string::npos) << r.output;

  for (const char* rel : {"a", "sub/b", "sub/deep/c"}) {
    const fs::path source = fs::exists(in_ / (std::string(rel) + ".png")) ? in_ / (std::string(rel) + ".png")
                                                                          : in_ / (std::string(rel) + ".tif");
    const fs::path result = out_ / (std::string(rel) + ".png");
    ASSERT_TRUE(fs::exists(result)) << result;
    EXPECT_TRUE(SameImage(expected_for(source, specs), cv::imread(result.string(), cv::IMREAD_UNCHANGED)))
        << rel;
  }
  EXPECT_FALSE(fs::exists(out_ / "broken.png"));
  EXPECT_FALSE(fs::exists(out_ / "notes.png"));
  EXPECT_FALSE(fs::exists(out_ / "notes.txt"));
}

TEST_F(Standalone, AllGoodIsExitZeroAndKeepsTheInputsFormat) {
  const RunResult r = run_worker(3, "--input " + (in_ / "sub" / "b.tif").string() + " --input " +
                                        (in_ / "a.png").string() + " --op canny --out " + out_.string());
  EXPECT_EQ(r.exit_code, 1) << "b.tif is 16-bit, canny must refuse it: " << r.output;
  EXPECT_NE(r.output.find("b.tif: error: op 1: canny: not supported on a 16-bit 1-channel image"),
            std::string::npos)
      << r.output;
  ASSERT_TRUE(fs::exists(out_ / "a.png"));

  const RunResult ok = run_worker(2, "--input " + (in_ / "sub" / "b.tif").string() +
                                         " --op to_8bit --op canny --out " + out_.string());
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(SameImage(expected_for(in_ / "sub" / "b.tif", {"to_8bit", "canny"}),
                        cv::imread((out_ / "b.tif").string(), cv::IMREAD_UNCHANGED)));
}

TEST_F(Standalone, WholeImagesPerRankAndStripsMixedAreExact) {
  // Above 1000 pixels in strips (a PPM with every rank reading and writing
  // its own rows), at most 1000 whole, one per rank; a bad file among them.
  fs::create_directories(root_ / "mixed");
  std::vector<fs::path> sources;
  for (int i = 0; i < 9; ++i) {
    const bool big = i % 3 == 0;
    const fs::path source = root_ / "mixed" / ("m" + std::to_string(i) + (i == 6 ? ".ppm" : ".png"));
    write(source, make_image(big ? 61 + i : 17 + i, big ? 45 : 23, i % 2 ? CV_16U : CV_8U, i == 6 ? 3 : 1 + 2 * (i % 2),
                             i % 4 ? Pattern::kShapes : Pattern::kNoise));
    sources.push_back(source);
  }
  std::ofstream(root_ / "mixed" / "m9.png") << "\x89PNG but no more";
  const std::vector<std::string> specs = {"gaussian_blur:ksize=5", "sharpen"};
  for (const char* strip_above : {"1000", "0"}) {
    fs::remove_all(out_);
    const RunResult r = run_worker(3, "--input " + (root_ / "mixed").string() +
                                          " --op gaussian_blur:ksize=5 --op sharpen --strip-above " + strip_above +
                                          " --out " + out_.string() + " --log-level debug");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("m9.png: error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("10 image(s): 9 succeeded, 1 failed"), std::string::npos) << r.output;
    for (const fs::path& source : sources) {
      const fs::path result = out_ / source.filename();
      EXPECT_TRUE(SameImage(expected_for(source, specs), cv::imread(result.string(), cv::IMREAD_UNCHANGED)))
          << "--strip-above " << strip_above << ": " << result;
    }
    // The PPM's rows were read from the file by every rank ("decode 0.000").
    EXPECT_NE(r.output.find("m6.ppm: done (decode 0.000"), std::string::npos) << r.output;
    std::vector<uchar> want;
    ASSERT_TRUE(cv::imencode(".ppm", expected_for(sources[6], specs), want));
    std::ifstream got_file(out_ / "m6.ppm", std::ios::binary);
    const std::vector<uchar> got((std::istreambuf_iterator<char>(got_file)), {});
    EXPECT_TRUE(got == want) << "the PPM written by the ranks differs from OpenCV's";
  }
}

TEST_F(Standalone, UsageErrorsExitTwoBeforeAnyWork) {
  const RunResult bad_op = run_worker(2, "--input " + in_.string() + " --op median_blur:ksize=4 --out " + out_.string());
  EXPECT_EQ(bad_op.exit_code, 2) << bad_op.output;
  EXPECT_NE(bad_op.output.find("median_blur: ksize must be an odd integer"), std::string::npos) << bad_op.output;
  EXPECT_FALSE(fs::exists(out_));

  const RunResult bad_format = run_worker(1, "--input " + in_.string() + " --out " + out_.string() + " --format gif");
  EXPECT_EQ(bad_format.exit_code, 2) << bad_format.output;
  EXPECT_NE(bad_format.output.find("--format gif is not one of png"), std::string::npos) << bad_format.output;
}

TEST_F(Standalone, TwoInputsNeverShareAnOutput) {
  const RunResult r = run_worker(1, "--input " + (in_ / "a.png").string() + " --input " +
                                        (in_ / "sub" / "deep" / "c.png").string() + " --input " +
                                        (in_ / "a.png").string() + " --out " + out_.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("would overwrite the result of"), std::string::npos) << r.output;
}

TEST(ListOps, PrintsEveryOp) {
  const RunResult r = run_worker(1, "--list-ops");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* op : {"gaussian_blur", "canny", "equalize_hist", "edge_detection = canny"}) {
    EXPECT_NE(r.output.find(op), std::string::npos) << op;
  }
}

}  // namespace
}  // namespace imgq
