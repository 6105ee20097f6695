#include <gtest/gtest.h>

#include "imgq/common/zmq_frames.h"

namespace imgq {
namespace {

TEST(SharedBytesTest, CopiesShareTheBytes) {
  SharedBytes a(std::string(100, 'x'));
  const char* data = a.data();
  SharedBytes b = a;
  EXPECT_EQ(b.data(), data);
  a.reset();
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.size(), 100u);
  EXPECT_EQ(b, std::string(100, 'x'));
}

TEST(SharedBytesTest, AMessageArrivesWithoutACopy) {
  zmq::message_t message(std::string(70'000, 'm'));
  const void* data = message.data();
  SharedBytes bytes(std::move(message));
  EXPECT_EQ(static_cast<const void*>(bytes.data()), data);
  EXPECT_EQ(bytes.size(), 70'000u);
}

// A large message refers to the bytes, and keeps them alive after every
// other owner is gone; a small one is a copy.
TEST(SharedBytesTest, LargeMessagesReferSmallOnesCopy) {
  zmq::message_t large;
  const char* data = nullptr;
  {
    SharedBytes bytes(std::string(1 << 20, 'L'));
    data = bytes.data();
    large = bytes.message();
  }
  EXPECT_EQ(large.data<char>(), data);
  EXPECT_EQ(large.to_string_view(), std::string(1 << 20, 'L'));

  SharedBytes small("header");
  zmq::message_t copy = small.message();
  EXPECT_NE(copy.data<char>(), small.data());
  EXPECT_EQ(copy.to_string_view(), "header");
}

// recv_shared takes whole messages, as recv_frames does, capped and drained.
TEST(SharedBytesTest, RecvSharedTakesWholeMessagesCapped) {
  zmq::context_t context;
  zmq::socket_t a(context, zmq::socket_type::pair), b(context, zmq::socket_type::pair);
  a.bind("inproc://shared-bytes-test");
  b.connect("inproc://shared-bytes-test");
  send_frames(a, Frames{"header", std::string(200'000, 'p')});
  send_frames(a, Frames{"one", "two", "three", "four"});
  send_frames(a, Frames{"next"});
  std::vector<SharedBytes> frames;
  ASSERT_TRUE(recv_shared(b, frames, 3, /*dontwait=*/false));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], "header");
  EXPECT_EQ(frames[1], std::string(200'000, 'p'));
  ASSERT_TRUE(recv_shared(b, frames, 3, /*dontwait=*/false));
  ASSERT_EQ(frames.size(), 3u);  // the fourth frame read and dropped
  EXPECT_EQ(frames[2], "three");
  ASSERT_TRUE(recv_shared(b, frames, 3, /*dontwait=*/false));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], "next");
  EXPECT_FALSE(recv_shared(b, frames, 3, /*dontwait=*/true));
  EXPECT_TRUE(frames.empty());
}

TEST(SharedBytesTest, EmptyIsEmpty) {
  EXPECT_TRUE(SharedBytes().empty());
  EXPECT_TRUE(SharedBytes(std::string()).empty());
  EXPECT_EQ(SharedBytes().message().size(), 0u);
  EXPECT_EQ(SharedBytes().view(), "");
}

}  // namespace
}  // namespace imgq
