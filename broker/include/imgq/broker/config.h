// The broker's settings and the protocol's timing constants
// (schemas/PROTOCOL.md, section 6).
#pragma once

#include <algorithm>

#include <chrono>
#include <cstddef>
#include <set>
#include <string>

#include "imgq/broker/commit_policy.h"
#include "imgq/schemas/messages.h"

namespace imgq::broker {

using Duration = std::chrono::milliseconds;

inline constexpr Duration kHeartbeatInterval = proto::kHeartbeatInterval;
inline constexpr int kLiveness = proto::kLiveness;  // intervals without a message before a peer is dead

struct BrokerConfig {
  size_t max_queued = 100'000;                    // waiting jobs
  size_t max_queued_bytes = size_t{4} << 30;      // their encoded images, in bytes
  // The least share of unfinished jobs (waiting or running) one client may
  // hold: its CURVE key, else its connection. Its share is max_queued /
  // (active clients + 1), never less than this (BrokerCore::share_of). 0: a
  // tenth of max_queued. One client that floods is refused past its share
  // while every other one is admitted.
  size_t max_queued_per_client = 0;
  size_t per_client_limit() const {
    return max_queued_per_client != 0 ? max_queued_per_client : std::max<size_t>(1, max_queued / 10);
  }
  // The same floor for a client's results waiting for acknowledgement
  // (bytes); 0: a tenth of max_kept_bytes.
  uint64_t max_kept_bytes_per_client = 0;
  uint64_t kept_per_client_limit() const {
    return max_kept_bytes_per_client != 0 ? max_kept_bytes_per_client : std::max<uint64_t>(1, max_kept_bytes / 10);
  }
  size_t max_image_bytes = size_t{256} << 20;     // one submitted image
  uint64_t max_pixels = 250'000'000;              // declared in an image's header; 0 = no limit
  Duration job_timeout{10 * 60 * 1000};           // longest run of one attempt; a submit may ask less or more
  Duration result_ttl{10 * 60 * 1000};            // how long an unacknowledged result is kept
  uint64_t max_kept_bytes = uint64_t{2} << 30;    // results waiting for acknowledgement; past it submits wait
  Duration heartbeat_interval = kHeartbeatInterval;
  int liveness = kLiveness;
  int max_attempts = 3;                           // dispatches before a job fails
  Duration retry_after{1000};                     // hint sent with queue-full errors
  // When the journal commits (commit_policy.h); --commit-gap-us sets its gap.
  CommitPolicy commit;
  // CURVE public keys (Z85) that may list, read and cancel every client's
  // jobs (--allow-operators); results stay their owners'.
  std::set<std::string> operator_keys;
};

}  // namespace imgq::broker
