// Key files and allow-lists: what imgq keygen writes reads back, and keys
// with any Z85 digit (including '#') survive an allow-list.
#include "imgq/common/curve.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace imgq {
namespace {

namespace fs = std::filesystem;

class CurveFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("imgq_curve_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(CurveFiles, KeyPairRoundTripsAndIsPrivate) {
  if (!has_curve()) GTEST_SKIP() << "libzmq without CURVE";
  const auto pair = generate_key_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  ASSERT_TRUE(write_key_pair(dir_ / "alice", *pair).ok());
  const auto back = read_key_pair(dir_ / "alice.key");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->public_key, pair->public_key);
  EXPECT_EQ(back->secret_key, pair->secret_key);
  EXPECT_EQ(*read_public_key(dir_ / "alice.pub"), pair->public_key);
  EXPECT_EQ(*read_public_key(dir_ / "alice.key"), pair->public_key);
  EXPECT_EQ(fs::status(dir_ / "alice.key").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  // Never overwrites a key pair.
  EXPECT_FALSE(write_key_pair(dir_ / "alice", *pair).ok());
}

TEST_F(CurveFiles, AllowListKeepsKeysWithHashAndSkipsComments) {
  const std::string hash_first = "#" + std::string(39, 'a');
  const std::string hash_inside = std::string(20, 'b') + "#" + std::string(19, 'c');
  write("clients.allow", "# who may submit\n\n" + hash_first + "\n  " + hash_inside + "  laptop\npublic " +
                             std::string(40, 'd') + "\n#note\n");
  const auto keys = read_allow_list(dir_ / "clients.allow");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(*keys, (std::set<std::string>{hash_first, hash_inside, std::string(40, 'd')}));
}

TEST_F(CurveFiles, AllowListNamesTheBadLine) {
  write("bad.allow", std::string(40, 'a') + "\nnot-a-key\n");
  const auto keys = read_allow_list(dir_ / "bad.allow");
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.status().ToString().find("bad.allow:2: not a CURVE public key"), std::string::npos)
      << keys.status().ToString();
  // A missing file is named, for a list and for a key.
  const auto missing = read_allow_list(dir_ / "missing.allow");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find((dir_ / "missing.allow").string() + ": no such file"), std::string::npos)
      << missing.status().ToString();
  const auto no_key = read_key_pair(dir_ / "nobody.key");
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find((dir_ / "nobody.key").string()), std::string::npos)
      << no_key.status().ToString();
}

}  // namespace
}  // namespace imgq
