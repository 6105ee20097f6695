// Encoding and decoding protocol headers (messages.h) with untrusted input in
// mind: a size cap, msgpack unpack limits (so a header declaring a 4 GB string
// or a million-entry array is refused before any allocation), no trailing
// bytes, the signature and version checked, and required keys present.
// msgpack's exceptions stop here and become InvalidArgument. Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "imgq/common/status.h"
#include "imgq/schemas/messages.h"

namespace imgq::proto {

// Headers are small; images travel in their own frame.
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;

template <typename T>
std::string encode(const T& message) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, message);
  return std::string(buffer.data(), buffer.size());
}

// A header decoded far enough to know its type.
class Header {
 public:
  const std::string& type() const { return type_; }

  // Converts to the message struct; `required` keys must be present.
  template <typename T>
  Result<T> as(std::initializer_list<const char*> required = {}) const {
    IMGQ_RETURN_IF_ERROR(require(required));
    try {
      T message;
      handle_.get().convert(message);
      return message;
    } catch (const std::exception& e) {
      return Status::InvalidArgument(std::string(T::kType) + ": a field has the wrong type (" +
                                     e.what() + ")");
    }
  }

 private:
  friend Result<Header> decode_header(std::string_view bytes);
  Status require(std::initializer_list<const char*> keys) const;

  msgpack::object_handle handle_;
  std::string type_;
};

Result<Header> decode_header(std::string_view bytes);

}  // namespace imgq::proto
