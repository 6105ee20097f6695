#include "imgq/common/zmq_frames.h"

namespace imgq {

bool recv_frames(zmq::socket_t& socket, Frames& frames, size_t max_frames, bool dontwait, bool* truncated,
                 std::string* user_id) {
  frames.clear();
  if (truncated != nullptr) *truncated = false;
  zmq::message_t part;
  if (!socket.recv(part, dontwait ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) return false;
  // A ROUTER's identity frame is its own and carries no metadata: the
  // peer's User-Id is on the frames the peer sent.
  auto take_user_id = [&] {
    if (user_id == nullptr || !user_id->empty()) return;
    const char* user = zmq_msg_gets(part.handle(), "User-Id");
    if (user != nullptr) user_id->assign(user);
  };
  if (user_id != nullptr) user_id->clear();
  take_user_id();
  frames.push_back(part.to_string());
  while (part.more()) {
    (void)socket.recv(part, zmq::recv_flags::none);
    take_user_id();
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

namespace {

// Below this a copy is cheaper than a heap object and a free callback.
constexpr size_t kZeroCopyBytes = 64 * 1024;

// `bytes` (a string or a byte vector) as a message that owns its buffer.
template <typename Bytes>
zmq::message_t owning_message(Bytes&& bytes) {
  if (bytes.size() < kZeroCopyBytes) return zmq::message_t(bytes.data(), bytes.size());
  auto* owned = new Bytes(std::move(bytes));
  return zmq::message_t(
      owned->data(), owned->size(), [](void*, void* hint) { delete static_cast<Bytes*>(hint); }, owned);
}

}  // namespace

zmq::message_t message_of(std::string&& frame) { return owning_message(std::move(frame)); }
zmq::message_t message_of(std::vector<uint8_t>&& frame) { return owning_message(std::move(frame)); }

SharedBytes::SharedBytes(std::string bytes) {
  if (bytes.empty()) return;
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  data_ = owned->data();
  size_ = owned->size();
  owner_ = std::move(owned);
}

SharedBytes::SharedBytes(zmq::message_t message) {
  if (message.size() == 0) return;
  auto owned = std::make_shared<const zmq::message_t>(std::move(message));
  data_ = static_cast<const char*>(owned->data());
  size_ = owned->size();
  owner_ = std::move(owned);
}

zmq::message_t SharedBytes::message() const {
  if (size_ < kZeroCopyBytes) return zmq::message_t(data_, size_);
  // The message holds a reference until ZeroMQ has sent it (its I/O thread
  // may drop it: shared_ptr counts atomically).
  auto* reference = new std::shared_ptr<const void>(owner_);
  return zmq::message_t(
      const_cast<char*>(data_), size_,
      [](void*, void* hint) { delete static_cast<std::shared_ptr<const void>*>(hint); }, reference);
}

void send_frames(zmq::socket_t& socket, Frames&& frames) {
  Messages parts;
  parts.reserve(frames.size());
  for (std::string& frame : frames) parts.push_back(message_of(std::move(frame)));
  send_messages(socket, parts);
}

bool recv_messages(zmq::socket_t& socket, Messages& parts, size_t max_frames, bool dontwait) {
  parts.clear();
  zmq::message_t part;
  if (!socket.recv(part, dontwait ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) return false;
  bool more = part.more();
  parts.push_back(std::move(part));
  while (more) {
    zmq::message_t next;
    (void)socket.recv(next, zmq::recv_flags::none);
    more = next.more();
    if (parts.size() < max_frames) parts.push_back(std::move(next));
  }
  return true;
}

void send_messages(zmq::socket_t& socket, Messages& parts) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto flags = i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    (void)socket.send(parts[i], flags);
  }
  parts.clear();
}

bool recv_shared(zmq::socket_t& socket, std::vector<SharedBytes>& frames, size_t max_frames, bool dontwait) {
  Messages parts;
  frames.clear();
  if (!recv_messages(socket, parts, max_frames, dontwait)) return false;
  for (zmq::message_t& part : parts) frames.emplace_back(std::move(part));
  return true;
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
