// Whole ZeroMQ messages as vectors of frames, the one way imgq reads and
// writes multipart messages. Reading caps the frames kept, so an untrusted
// peer cannot make us hold a thousand-part message; the excess is drained.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

namespace imgq {

using Frames = std::vector<std::string>;

// Reads one whole message, keeping at most `max_frames` frames (the rest is
// read and dropped; `truncated` says so). False when `dontwait` and nothing
// is waiting. `user_id`: the peer's ZAP user id (with CURVE, the public key
// the broker's ZAP handler admitted), empty when there is none.
bool recv_frames(zmq::socket_t& socket, Frames& frames, size_t max_frames, bool dontwait,
                 bool* truncated = nullptr, std::string* user_id = nullptr);

// Sends `frames` as one message. Throws zmq::error_t as cppzmq does.
void send_frames(zmq::socket_t& socket, const Frames& frames);
// The same without copying large frames: each string moves into its
// message, which frees it once ZeroMQ has sent it. For images, whose copies
// (into fresh pages) cost as much as a socket hop.
void send_frames(zmq::socket_t& socket, Frames&& frames);
// `frame` as a message: moved in when large, copied when small.
zmq::message_t message_of(std::string&& frame);
zmq::message_t message_of(std::vector<uint8_t>&& frame);

// Whole messages as ZeroMQ messages, to pass on without copying a byte:
// receive from one socket, look at the header, send to another.
using Messages = std::vector<zmq::message_t>;
bool recv_messages(zmq::socket_t& socket, Messages& parts, size_t max_frames, bool dontwait);
// Sends `parts` as one message (they are empty afterwards).
void send_messages(zmq::socket_t& socket, Messages& parts);

// Bytes that several owners share and nobody changes: an image the broker
// keeps for a retry while the same buffer is on its way to a group, the
// frame a message arrived in. Copying one is taking a reference; the bytes
// are never copied, from the socket they came in on to the one they leave by.
class SharedBytes {
 public:
  SharedBytes() = default;
  // Takes the string (moved in: no copy of the bytes).
  SharedBytes(std::string bytes);  // NOLINT(google-explicit-constructor): frames are written as strings
  SharedBytes(const char* text) : SharedBytes(std::string(text)) {}  // NOLINT(google-explicit-constructor)
  // Takes the message's buffer as it is.
  explicit SharedBytes(zmq::message_t message);

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_, size_}; }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)
  std::string str() const { return std::string(view()); }
  // Drops this owner's reference (the bytes go with the last one).
  void reset() { *this = SharedBytes(); }
  // A message of these bytes: a reference when large, a copy when small.
  zmq::message_t message() const;

  friend bool operator==(const SharedBytes& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const SharedBytes& a, const std::string& b) { return a.view() == b; }
  friend bool operator==(const SharedBytes& a, const char* b) { return a.view() == b; }
  friend bool operator==(const SharedBytes& a, const SharedBytes& b) { return a.view() == b.view(); }

 private:
  std::shared_ptr<const void> owner_;
  const char* data_ = "";
  size_t size_ = 0;
};

// recv_frames without copying: each frame stays in the buffer ZeroMQ
// received it into (a result image of 80 MB is not copied again).
bool recv_shared(zmq::socket_t& socket, std::vector<SharedBytes>& frames, size_t max_frames, bool dontwait);

// zmq::poll that returns 0 (nothing ready) when a signal interrupts it, so
// a SIGTERM or SIGINT handler's flag is seen instead of an exception.
int poll_sockets(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);

}  // namespace imgq
