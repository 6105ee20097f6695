#include "imgq/common/zmq_frames.h"

namespace imgq {

bool recv_frames(zmq::socket_t& socket, Frames& frames, size_t max_frames, bool dontwait, bool* truncated) {
  frames.clear();
  if (truncated != nullptr) *truncated = false;
  zmq::message_t part;
  if (!socket.recv(part, dontwait ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) return false;
  frames.push_back(part.to_string());
  while (part.more()) {
    (void)socket.recv(part, zmq::recv_flags::none);
    if (frames.size() < max_frames) {
      frames.push_back(part.to_string());
    } else if (truncated != nullptr) {
      *truncated = true;
    }
  }
  return true;
}

void send_frames(zmq::socket_t& socket, const Frames& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    (void)socket.send(zmq::buffer(frames[i]), flags);
  }
}

int poll_sockets(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, count, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    throw;
  }
}

}  // namespace imgq
