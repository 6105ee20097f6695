#include "imgq/common/batch_paths.h"

#include <fstream>

#include <gtest/gtest.h>
#include <unistd.h>

namespace imgq {
namespace {

namespace fs = std::filesystem;

class BatchPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("imgq_batch_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    for (const char* f : {"in/b.JPG", "in/a.png", "in/x/y/c.tif", "in/readme.txt", "solo.webp"}) {
      fs::create_directories((root_ / f).parent_path());
      std::ofstream(root_ / f) << "x";
    }
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(BatchPaths, FoldersKeepRelativePathsInSortedOrder) {
  const auto plan = plan_batch({(root_ / "in").string(), (root_ / "solo.webp").string()}, "out", "");
  const auto& items = plan.items;
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].source, root_ / "in" / "a.png");
  EXPECT_EQ(items[0].output, fs::path("out/a.png"));
  EXPECT_EQ(items[1].output, fs::path("out/b.jpg")) << "extensions are written lower-case";
  EXPECT_EQ(items[2].output, fs::path("out/x/y/c.tif"));
  EXPECT_EQ(items[3].output, fs::path("out/solo.webp"));
  for (const auto& item : items) EXPECT_TRUE(item.problem.ok()) << item.problem.ToString();
  EXPECT_EQ(plan.not_images, 1u) << "readme.txt";
  EXPECT_TRUE(plan.empty.empty());
}

TEST_F(BatchPaths, FormatReplacesTheExtension) {
  const auto items = plan_batch({(root_ / "in").string()}, "out", "PNG").items;
  EXPECT_EQ(items[1].output, fs::path("out/b.png"));
  EXPECT_EQ(items[2].output, fs::path("out/x/y/c.png"));
}

TEST_F(BatchPaths, MissingInputsAndCollisionsAreProblems) {
  const auto items = plan_batch({(root_ / "nope").string(), (root_ / "in/a.png").string(),
                                 (root_ / "in/x/../a.png").string()}, "out", "").items;
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].problem.code(), StatusCode::kNotFound);
  EXPECT_TRUE(items[1].problem.ok());
  EXPECT_EQ(items[2].problem.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(items[2].problem.message().find("would overwrite the result of"), std::string::npos);
}

// A run never takes results as inputs: its own output folder inside the
// input, and folders of earlier results (marked when imgq made them), are
// passed over; files being written are never inputs.
TEST_F(BatchPaths, OutputFoldersAndPartialFilesAreNeverInputs) {
  ASSERT_TRUE(make_results_folder(root_ / "in" / "old-results").ok());
  std::ofstream(root_ / "in" / "old-results" / "a.png") << "x";
  fs::create_directories(root_ / "in" / "out");
  std::ofstream(root_ / "in" / "out" / "z.png") << "x";
  std::ofstream(root_ / "in" / ".a.imgq-part12.png") << "x";
  const auto plan = plan_batch({(root_ / "in").string()}, root_ / "in" / "out", "");
  ASSERT_EQ(plan.items.size(), 3u);
  for (const auto& item : plan.items) {
    EXPECT_EQ(item.source.string().find("results"), std::string::npos) << item.source;
    EXPECT_EQ(item.source.string().find("/out/"), std::string::npos) << item.source;
    EXPECT_EQ(item.source.string().find("imgq-part"), std::string::npos) << item.source;
  }
  EXPECT_EQ(plan.result_folders, 1u);
  // Given by name, a results folder is walked like any other.
  EXPECT_EQ(plan_batch({(root_ / "in" / "old-results").string()}, "out", "").items.size(), 1u);
}

// a.png and a.jpg of one folder, both written as PNG: the one that keeps
// its extension keeps its name, the other keeps its input's extension too.
TEST_F(BatchPaths, AChangedExtensionThatMeetsAnotherResultKeepsTheInputsToo) {
  std::ofstream(root_ / "in" / "a.jpg") << "x";
  const auto items = plan_batch({(root_ / "in").string()}, "out", "", /*edges=*/true).items;
  std::map<std::string, std::string> outputs;
  for (const auto& item : items) {
    EXPECT_TRUE(item.problem.ok()) << item.problem.ToString();
    outputs[item.source.filename().string()] = item.output.string();
  }
  EXPECT_EQ(outputs["a.png"], "out/a.png");
  EXPECT_EQ(outputs["a.jpg"], "out/a.jpg.png");
  EXPECT_EQ(outputs["b.JPG"], "out/b.png");
}

TEST_F(BatchPaths, AFolderWithoutImagesIsNamed) {
  fs::create_directories(root_ / "docs");
  std::ofstream(root_ / "docs" / "a.txt") << "x";
  const auto plan = plan_batch({(root_ / "docs").string(), (root_ / "in").string()}, "out", "");
  ASSERT_EQ(plan.empty.size(), 1u);
  EXPECT_EQ(plan.empty[0], (root_ / "docs").string());
}

// A results folder a command made is gone again if nothing was written into
// it; one that existed, or that got a result, stays.
TEST_F(BatchPaths, AResultsFolderThatStayedEmptyIsRemoved) {
  {
    ResultsFolder unused;
    ASSERT_TRUE(unused.open(root_ / "made").ok());
    EXPECT_TRUE(fs::exists(root_ / "made" / kResultsMarker));
  }
  EXPECT_FALSE(fs::exists(root_ / "made"));
  {
    ResultsFolder used;
    ASSERT_TRUE(used.open(root_ / "used").ok());
    std::ofstream(root_ / "used" / "a.png") << "x";
  }
  EXPECT_TRUE(fs::exists(root_ / "used" / "a.png"));
  fs::create_directories(root_ / "existing");
  {
    ResultsFolder existing;
    ASSERT_TRUE(existing.open(root_ / "existing").ok());
  }
  EXPECT_TRUE(fs::is_directory(root_ / "existing"));
  ResultsFolder file;
  const Status refused = file.open(root_ / "solo.webp");
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("is a file"), std::string::npos) << refused.message();
}

// An edge map or threshold of a JPEG is written as PNG unless a format is
// given; a format imgq cannot write becomes PNG.
TEST(Formats, TheDefaultOutputFormat) {
  EXPECT_EQ(output_extension("a.JPG", "", false), "jpg");
  EXPECT_EQ(output_extension("a.jpg", "", true), "png");
  EXPECT_EQ(output_extension("a.webp", "", true), "png");
  EXPECT_EQ(output_extension("a.tif", "", true), "tif");
  EXPECT_EQ(output_extension("a.jpg", "JPEG", true), "jpeg");
  EXPECT_EQ(output_extension("a.jp2", "", false), "png");
}

TEST(Formats, NamesAndExtensions) {
  EXPECT_TRUE(is_output_format("PNG"));
  EXPECT_FALSE(is_output_format("gif"));
  EXPECT_TRUE(is_image_extension("JPEG"));
  EXPECT_FALSE(is_image_extension("txt"));
  EXPECT_EQ(extension_of("a/b.TiF"), "tif");
  EXPECT_EQ(extension_of("a/b"), "");
}

}  // namespace
}  // namespace imgq
