// A job as the broker keeps it and its journal stores it: one record, the
// same fields and types in memory and in a row (job_codec.h maps each field
// to its column by name). Adding a field is one line here and one in the
// codec.
//
// A job's state is explicit and stored, `running` included, so a restart
// reads it instead of guessing. Its lifecycle (docs/architecture.md has the
// same table):
//
//   from        event                                   to
//   (new)       a submit is stored                      queued
//   queued      a group takes it                        running
//   queued      cancel                                  cancelled
//   queued      its image cannot be read back           failed
//   running     the group answers                       done | failed
//   running     cancel, or past its deadline            cancelled | failed
//   running     its group dies or leaves                queued (again) | failed (past --max-attempts)
//   running     the broker restarts                     queued (again) | failed (past --max-attempts)
//   done/failed/cancelled: the result is kept until acknowledged or expired
//   (`gone`), then the job is a tombstone answering for its key one more TTL.
//
// Orthogonal to the state, a job is `pending` until the commit that stores
// it is on disk (nobody hears of it before), its `accepted` may be held back
// for its result to stand for it, and a change may wait to be recorded
// (commit_policy.h): those are the broker's bookkeeping, not the job's state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/schemas/messages.h"

namespace imgq::broker {

enum class JobState : uint8_t { kQueued, kRunning, kDone, kFailed, kCancelled };

// The name on the wire and in the journal (proto::kQueued, ...).
std::string_view state_name(JobState state);
// The state a name stands for; nullopt for any other text.
std::optional<JobState> parse_state(std::string_view name);
inline bool finished_state(JobState s) {
  return s == JobState::kDone || s == JobState::kFailed || s == JobState::kCancelled;
}
// Whether the lifecycle above allows `from` -> `to`.
bool allowed_transition(JobState from, JobState to);

// What became of a finished job's result.
enum class Gone : uint8_t { kNo, kAcknowledged, kExpired };
std::string_view gone_name(Gone gone);  // "", "acknowledged", "expired"

struct JobRecord {
  // The request.
  std::string id;
  std::string line;    // the fairness line it queued in (its client's connection)
  std::string owner;   // the client's CURVE public key; empty without CURVE
  std::string key;     // idempotency key; empty = none
  std::string digest;  // what the key stands for: image (or paths) and request
  int priority = 4;
  std::vector<std::string> ops;
  std::string format, name, path, output;
  int64_t timeout_ms = 0;  // one attempt's longest run
  double submitted = 0;    // Unix seconds
  uint64_t image_bytes = 0;
  // CRC-32 of the image (common/checksum.h), taken when it arrived and
  // checked whenever it is read back; none in rows of earlier brokers.
  std::optional<uint32_t> image_crc;
  // The attempts.
  JobState state = JobState::kQueued;
  int attempts = 0;  // dispatches so far
  // The outcome, once finished.
  int code = 0;
  std::string message;
  proto::JobStats stats;
  double finished = 0;        // Unix seconds
  uint64_t result_bytes = 0;  // a done job's result image (0: none, or a local file)
  std::optional<uint32_t> result_crc;  // of the result image, as image_crc
  Gone gone = Gone::kNo;
  double gone_at = 0;  // Unix seconds
};

}  // namespace imgq::broker
