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
    } catch (const std::exception&) {
      return Status::InvalidArgument(std::string(T::kType) + ": " + wrong_field<T>());
    }
  }

 private:
  friend Result<Header> decode_header(std::string_view bytes);

// What a request's header says of itself even when it does not decode as a
// message (wrong version, a field of the wrong type, ...): its `req` (0 when
// unreadable) and `job` (empty), so an error reply can echo them.
struct RequestIds {
  uint64_t req = 0;
  std::string job;
};
RequestIds peek_request_ids(std::string_view bytes);
  Status require(std::initializer_list<const char*> keys) const;

  // Which field did not convert: each key is tried alone. "field "priority"
  // has the wrong type (got a str)", or a generic text if none alone fails.
  template <typename T>
  std::string wrong_field() const {
    const msgpack::object& map = handle_.get();
    for (uint32_t i = 0; i < map.via.map.size; ++i) {
      const msgpack::object_kv& kv = map.via.map.ptr[i];
      if (!convertible<T>(kv, kv.val)) return wrong_value<T>(kv);
    }
    return "a field has the wrong type";
  }
  // What is wrong with the field `kv` that does not convert: an integer out
  // of its type's range, the entry of an array that is of the wrong type
  // (each tried alone), or the field's own type.
  template <typename T>
  std::string wrong_value(msgpack::object_kv kv) const {
    const std::string field = "field " + key_text(kv.key);
    const std::string see = "; schemas/CLIENT-PROTOCOL.md gives each field's type and range)";
    if (kv.val.type == msgpack::type::POSITIVE_INTEGER || kv.val.type == msgpack::type::NEGATIVE_INTEGER) {
      const std::string value = kv.val.type == msgpack::type::POSITIVE_INTEGER ? std::to_string(kv.val.via.u64)
                                                                               : std::to_string(kv.val.via.i64);
      if (convertible<T>(kv, kv.val.type == msgpack::type::POSITIVE_INTEGER ? msgpack::object(uint64_t{0})
                                                                            : msgpack::object(int64_t{-1}))) {
        return field + " is out of range (got " + value + see;
      }
    }
    if (kv.val.type == msgpack::type::ARRAY) {
      for (uint32_t i = 0; i < kv.val.via.array.size; ++i) {
        msgpack::object entry;
        entry.type = msgpack::type::ARRAY;
        entry.via.array.size = 1;
        entry.via.array.ptr = &kv.val.via.array.ptr[i];
        if (!convertible<T>(kv, entry)) {
          return field + " entry " + std::to_string(i) + " has the wrong type (got " +
                 type_text(kv.val.via.array.ptr[i]) + see;
        }
      }
    }
    return field + " has the wrong type (got " + type_text(kv.val) + see;
  }
  // Whether the field `kv` would convert with `value` in its place.
  template <typename T>
  static bool convertible(msgpack::object_kv kv, const msgpack::object& value) {
    kv.val = value;
    msgpack::object one;
    one.type = msgpack::type::MAP;
    one.via.map.size = 1;
    one.via.map.ptr = &kv;
    try {
      T probe;
      one.convert(probe);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  static std::string key_text(const msgpack::object& key);
  static std::string type_text(const msgpack::object& value);

  msgpack::object_handle handle_;
  std::string type_;
};

Result<Header> decode_header(std::string_view bytes);

// What a request's header says of itself even when it does not decode as a
// message (wrong version, a field of the wrong type, ...): its `req` (0 when
// unreadable) and `job` (empty), so an error reply can echo them.
struct RequestIds {
  uint64_t req = 0;
  std::string job;
};
RequestIds peek_request_ids(std::string_view bytes);

}  // namespace imgq::proto
