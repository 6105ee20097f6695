// Helpers the broker core's files share (broker/src only): times as text,
// key scoping, digests, sessions and path checks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/broker/broker_core.h"
#include "imgq/common/checksum.h"
#include "imgq/common/formats.h"
#include "imgq/common/text.h"

namespace imgq::broker {

// The most jobs a group may hold at once, whatever its hello says.
inline constexpr int kMaxSlots = 256;

inline double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

inline std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", seconds(d));
  return buf;
}

// "2026-12-01 21:30:05 UTC", for messages about when something happened.
inline std::string utc_text(double unix_seconds) { return time_text(unix_seconds, /*utc=*/true); }

// Keys are scoped to the submitter's CURVE key (empty without CURVE).
inline std::string scoped_key(const std::string& owner, const std::string& key) { return owner + '\x1f' + key; }

// What an idempotency key stands for: the image (its CRC-32, crc32_of(),
// and size; or the local files) and the request, not its priority or
// timeout. Two submits of one key with different digests are a conflict.
// The format as canonical_output_format() spells it (jpg and jpeg, png and
// PNG ask for the same).
inline std::string digest_of(uint32_t crc, std::string_view image, const std::vector<std::string>& ops,
                             const std::string& format, const std::string& path, const std::string& output) {
  std::string request = canonical_output_format(format) + '\n' + path + '\n' + output;
  for (const std::string& op : ops) request += '\n' + op;
  const uint32_t request_crc = crc32_of(request);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08x:%zu:%08x", crc, image.size(), request_crc);
  return buf;
}

inline bool is_session(const std::string& s) {
  return s.size() == 8 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// An absolute path without "." and "..", and without a trailing '/' (but "/").
inline std::string lexically_normal(const std::string& path) {
  std::string normal = std::filesystem::path(path).lexically_normal().string();
  if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

// Whether `file` lies in one of `folders`, all lexically normal, by name: the
// group checks again with the links resolved, and refuses what is outside.
// Plain string comparisons: dispatch asks this for many jobs and groups.
inline bool inside_any(const std::vector<std::string>& folders, const std::string& file) {
  return std::any_of(folders.begin(), folders.end(), [&](const std::string& folder) {
    return file.starts_with(folder) &&
           (file.size() == folder.size() || folder == "/" || file[folder.size()] == '/');
  });
}

}  // namespace imgq::broker
