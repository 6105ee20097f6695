#include "imgq/schemas/codec.h"

#include <algorithm>
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
  if (ver == nullptr) return Status::InvalidArgument("missing protocol version \"ver\"");
  if (ver->type != msgpack::type::POSITIVE_INTEGER) {
    return Status::InvalidArgument("protocol version \"ver\" must be an unsigned integer (1), got " +
                                   Header::type_text(*ver));
  }
  if (ver->via.u64 != static_cast<uint64_t>(kVersion)) {
    return Status::InvalidArgument("protocol version " + std::to_string(ver->via.u64) +
                                   " is not supported; this peer speaks version " + std::to_string(kVersion));
  }
  const msgpack::object* type = find_key(root, "type");
  if (type != nullptr && type->type != msgpack::type::STR) {
    return Status::InvalidArgument("message type \"type\" must be a str, got " + Header::type_text(*type));
  }
  header.type_ = as_text(type);
  if (header.type_.empty()) return Status::InvalidArgument("missing message type \"type\"");
  return header;
}

std::string Header::key_text(const msgpack::object& key) {
  if (key.type != msgpack::type::STR) return "(a key that is not a string)";
  return "\"" + std::string(key.via.str.ptr, std::min<size_t>(key.via.str.size, 64)) + "\"";
}

std::string Header::type_text(const msgpack::object& value) {
  switch (value.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a bool";
    case msgpack::type::POSITIVE_INTEGER: return "an unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER: return "a negative integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a str";
    case msgpack::type::BIN: return "bin (strings must be msgpack str)";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    default: return "an extension type";
  }
}

namespace {

// A SAX-style pass over a header that broke a decoder limit: the top map's
// `req` and `job`, read in place (nothing allocated but the parser's stack of
// open containers), stopping once both are seen.
class IdFinder : public msgpack::null_visitor {
 public:
  explicit IdFinder(RequestIds* ids) : ids_(ids) {}
  bool start_map(uint32_t) { return ++depth_, true; }
  bool end_map() { return --depth_, true; }
  bool start_array(uint32_t) { return ++depth_, true; }
  bool end_array() { return --depth_, true; }
  bool start_map_key() { return key_ = depth_ == 1, field_ = Field::kOther, true; }
  bool end_map_key() { return key_ = false, true; }
  bool end_map_value() {
    if (depth_ == 1) field_ = Field::kOther;
    return !(seen_req_ && seen_job_);  // both read: stop
  }
  bool visit_str(const char* v, uint32_t size) {
    const std::string_view text(v, size);
    if (key_) {
      field_ = text == "req" ? Field::kReq : text == "job" ? Field::kJob : Field::kOther;
    } else if (depth_ == 1 && field_ == Field::kJob) {
      seen_job_ = true;
      if (size == 16 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos) ids_->job = text;
    }
    return true;
  }
  bool visit_positive_integer(uint64_t v) {
    if (!key_ && depth_ == 1 && field_ == Field::kReq) ids_->req = v, seen_req_ = true;
    return true;
  }
  void parse_error(size_t, size_t) {}
  void insufficient_bytes(size_t, size_t) {}

 private:
  enum class Field { kOther, kReq, kJob };
  RequestIds* ids_;
  int depth_ = 0;
  bool key_ = false, seen_req_ = false, seen_job_ = false;
  Field field_ = Field::kOther;
};

}  // namespace

RequestIds peek_request_ids(std::string_view bytes) {
  RequestIds ids;
  if (bytes.empty()) return ids;
  if (bytes.size() <= kMaxHeaderBytes) {
    try {
      size_t offset = 0;
      msgpack::object_handle handle = msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr, nullptr, limits());
      const msgpack::object& root = handle.get();
      if (root.type != msgpack::type::MAP) return ids;
      if (const msgpack::object* req = find_key(root, "req"); req && req->type == msgpack::type::POSITIVE_INTEGER) {
        ids.req = req->via.u64;
      }
      const std::string job = as_text(find_key(root, "job"));
      // Job ids are 16 hex digits; anything else is not echoed.
      if (job.size() == 16 && job.find_first_not_of("0123456789abcdef") == std::string::npos) ids.job = job;
      return ids;
    } catch (const std::exception&) {
    }
  }
  // Too long, too deep, too wide, an extension type: its `req` and `job` are
  // still echoed when they can be read (section 7), from its first 64 KiB
  // at most, without building the header.
  IdFinder finder(&ids);
  size_t offset = 0;
  try {
    msgpack::parse(bytes.data(), std::min(bytes.size(), kMaxHeaderBytes), offset, finder);
  } catch (const std::exception&) {
  }
  return ids;
}

}  // namespace imgq::proto
