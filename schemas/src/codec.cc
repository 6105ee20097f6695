#include "imgq/schemas/codec.h"

#include <cstring>

namespace imgq::proto {
namespace {

// Enough for any header imgq sends (an op list is a few dozen strings).
const msgpack::unpack_limit& limits() {
  static const msgpack::unpack_limit limit(/*array=*/1024, /*map=*/64, /*str=*/16 * 1024,
                                           /*bin=*/16 * 1024, /*ext=*/0, /*depth=*/6);
  return limit;
}

const msgpack::object* find_key(const msgpack::object& map, std::string_view key) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object_kv& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
      return &kv.val;
    }
  }
  return nullptr;
}

std::string as_text(const msgpack::object* o) {
  if (o == nullptr || o->type != msgpack::type::STR) return {};
  return std::string(o->via.str.ptr, o->via.str.size);
}

}  // namespace

Status Header::require(std::initializer_list<const char*> keys) const {
  for (const char* key : keys) {
    if (find_key(handle_.get(), key) == nullptr) {
      return Status::InvalidArgument(type_ + ": required field \"" + key + "\" is missing");
    }
  }
  return Status::Ok();
}

Result<Header> decode_header(std::string_view bytes) {
  if (bytes.empty()) return Status::InvalidArgument("empty header frame");
  if (bytes.size() > kMaxHeaderBytes) {
    return Status::InvalidArgument("header frame of " + std::to_string(bytes.size()) +
                                   " bytes is larger than " + std::to_string(kMaxHeaderBytes));
  }
  Header header;
  size_t offset = 0;
  try {
    header.handle_ = msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr, nullptr, limits());
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("header is not valid msgpack within limits (") + e.what() + ")");
  }
  if (offset != bytes.size()) {
    return Status::InvalidArgument("header has " + std::to_string(bytes.size() - offset) +
                                   " trailing bytes");
  }
  const msgpack::object& root = header.handle_.get();
  if (root.type != msgpack::type::MAP) return Status::InvalidArgument("header is not a msgpack map");
  if (as_text(find_key(root, "sig")) != kSignature) {
    return Status::InvalidArgument("not an imgq message (signature \"sig\" is not \"IMGQ\")");
  }
  const msgpack::object* ver = find_key(root, "ver");
  if (ver == nullptr || ver->type != msgpack::type::POSITIVE_INTEGER) {
    return Status::InvalidArgument("missing protocol version \"ver\"");
  }
  if (ver->via.u64 != static_cast<uint64_t>(kVersion)) {
    return Status::InvalidArgument("protocol version " + std::to_string(ver->via.u64) +
                                   " is not supported; this peer speaks version " + std::to_string(kVersion));
  }
  header.type_ = as_text(find_key(root, "type"));
  if (header.type_.empty()) return Status::InvalidArgument("missing message type \"type\"");
  return header;
}

}  // namespace imgq::proto
