// What the broker core's tests share: an outbox that records, a PNG the
// header check accepts, and a decoder for what was sent.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "imgq/broker/broker_core.h"
#include "imgq/schemas/codec.h"

namespace imgq::broker::testing {

struct Sent {
  std::string to;
  std::string type;
  Frames frames;
};

class RecordingOutbox : public Outbox {
 public:
  bool to_client(const std::string& identity, Frames frames) override {
    if (gone.count(identity)) return false;
    clients.push_back({identity, type_of(frames[0]), std::move(frames)});
    return true;
  }
  void to_worker(const std::string& identity, Frames frames) override {
    workers.push_back({identity, type_of(frames[0]), std::move(frames)});
  }
  void publish(const std::string& topic, std::string event) override {
    events.push_back({topic, *proto::decode_header(event)->as<proto::Event>()});
  }
  static std::string type_of(std::string_view header) { return proto::decode_header(header)->type(); }

  std::vector<Sent> clients, workers;
  std::vector<std::pair<std::string, proto::Event>> events;
  std::set<std::string> gone;
};

// A PNG as far as the broker's header check looks (signature, IHDR, a
// padding chunk, IEND), `total` bytes long when that is at least 57.
inline std::string png_bytes(size_t total = 0, uint32_t width = 2, uint32_t height = 2) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    return be32(static_cast<uint32_t>(data.size())) + type + data + be32(0);
  };
  std::string ihdr = be32(width) + be32(height) + std::string("\x08\x00\x00\x00\x00", 5);
  std::string head = "\x89PNG\r\n\x1a\n" + chunk("IHDR", ihdr);
  const std::string end = chunk("IEND", "");
  const size_t fixed = head.size() + end.size() + 12;
  if (total >= fixed) head += chunk("zzPd", std::string(total - fixed, 'p'));
  return head + end;
}
inline const std::string kImg = png_bytes();

template <typename T>
T decode(std::string_view header) {
  auto h = proto::decode_header(header);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  auto m = h->as<T>();
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return *m;
}

}  // namespace imgq::broker::testing
