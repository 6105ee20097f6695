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
  const auto items = plan_batch({(root_ / "in").string(), (root_ / "solo.webp").string()}, "out", "");
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].source, root_ / "in" / "a.png");
  EXPECT_EQ(items[0].output, fs::path("out/a.png"));
  EXPECT_EQ(items[1].output, fs::path("out/b.JPG"));
  EXPECT_EQ(items[2].output, fs::path("out/x/y/c.tif"));
  EXPECT_EQ(items[3].output, fs::path("out/solo.webp"));
  for (const auto& item : items) EXPECT_TRUE(item.problem.ok()) << item.problem.ToString();
}

TEST_F(BatchPaths, FormatReplacesTheExtension) {
  const auto items = plan_batch({(root_ / "in").string()}, "out", "png");
  EXPECT_EQ(items[1].output, fs::path("out/b.png"));
  EXPECT_EQ(items[2].output, fs::path("out/x/y/c.png"));
}

TEST_F(BatchPaths, MissingInputsAndCollisionsAreProblems) {
  const auto items = plan_batch({(root_ / "nope").string(), (root_ / "in/a.png").string(),
                                 (root_ / "in/x/../a.png").string()}, "out", "");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].problem.code(), StatusCode::kNotFound);
  EXPECT_TRUE(items[1].problem.ok());
  EXPECT_EQ(items[2].problem.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(items[2].problem.message().find("would overwrite the result of"), std::string::npos);
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
