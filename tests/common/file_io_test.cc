#include "imgq/common/file_io.h"

#include <fstream>

#include <gtest/gtest.h>
#include <unistd.h>

namespace imgq {
namespace {

namespace fs = std::filesystem;

class FileIo : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("imgq_file_io_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void put(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  static std::string text(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  fs::path root_;
};

TEST_F(FileIo, DurableWriteCreatesFoldersAndLeavesNoTemporaryFile) {
  const std::string data = "result bytes";
  ASSERT_TRUE(write_file(root_ / "a" / "b" / "r.png", bytes_of(data), /*durable=*/true).ok());
  EXPECT_EQ(text(root_ / "a" / "b" / "r.png"), data);
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "a" / "b"), fs::directory_iterator()), 1);
}

TEST_F(FileIo, MoveNeverReplacesAndSaysWhy) {
  put(root_ / "from", "new");
  put(root_ / "to", "old");
  const Status taken = move_no_replace(root_ / "from", root_ / "to");
  EXPECT_EQ(taken.code(), StatusCode::kConflict) << taken.ToString();
  EXPECT_EQ(text(root_ / "to"), "old");
  EXPECT_TRUE(fs::exists(root_ / "from"));
  ASSERT_TRUE(move_no_replace(root_ / "from", root_ / "sub" / "to").ok());
  EXPECT_EQ(text(root_ / "sub" / "to"), "new");
  EXPECT_FALSE(fs::exists(root_ / "from"));
  EXPECT_EQ(move_no_replace(root_ / "from", root_ / "again").code(), StatusCode::kNotFound);
}

TEST_F(FileIo, PlaceUniqueNumbersNamesBeforeTheExtension) {
  put(root_ / "img.jpg", "1");
  put(root_ / "img.1.jpg", "2");
  put(root_ / "src", "3");
  auto placed = place_unique(root_ / "img.jpg",
                             [&](const fs::path& name) { return move_no_replace(root_ / "src", name); });
  ASSERT_TRUE(placed.ok()) << placed.status().ToString();
  EXPECT_EQ(*placed, root_ / "img.2.jpg");
  EXPECT_EQ(text(root_ / "img.2.jpg"), "3");
  // Any error other than a taken name ends the search with that error.
  auto failed = place_unique(root_ / "x.png", [](const fs::path&) { return Status::IoError("disk gone"); });
  EXPECT_EQ(failed.status().code(), StatusCode::kIoError);
}

TEST_F(FileIo, SameContentsComparesBytesNotNames) {
  put(root_ / "a", std::string(200000, 'x'));
  put(root_ / "b", std::string(200000, 'x'));
  put(root_ / "c", std::string(199999, 'x') + "y");
  EXPECT_TRUE(same_contents(root_ / "a", root_ / "b"));
  EXPECT_FALSE(same_contents(root_ / "a", root_ / "c"));
  EXPECT_FALSE(same_contents(root_ / "a", root_ / "missing"));
}

}  // namespace
}  // namespace imgq
