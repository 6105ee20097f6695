#include "imgq/broker/job_record.h"

namespace imgq::broker {

std::string_view state_name(JobState state) {
  switch (state) {
    case JobState::kQueued: return proto::kQueued;
    case JobState::kRunning: return proto::kRunning;
    case JobState::kDone: return proto::kDone;
    case JobState::kFailed: return proto::kFailed;
    case JobState::kCancelled: return proto::kCancelled;
  }
  return proto::kFailed;
}

std::optional<JobState> parse_state(std::string_view name) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kFailed, JobState::kCancelled}) {
    if (state_name(s) == name) return s;
  }
  return std::nullopt;
}

bool allowed_transition(JobState from, JobState to) {
  switch (from) {
    case JobState::kQueued:  // dispatched, cancelled, or its image lost
      return to == JobState::kRunning || to == JobState::kCancelled || to == JobState::kFailed;
    case JobState::kRunning:  // answered, stopped, or back in the queue
      return to == JobState::kDone || to == JobState::kFailed || to == JobState::kCancelled ||
             to == JobState::kQueued;
    case JobState::kDone:
    case JobState::kFailed:
    case JobState::kCancelled:
      return false;  // finished for good: only its result goes (Gone)
  }
  return false;
}

std::string_view gone_name(Gone gone) {
  switch (gone) {
    case Gone::kNo: return "";
    case Gone::kAcknowledged: return "acknowledged";
    case Gone::kExpired: return "expired";
  }
  return "";
}

}  // namespace imgq::broker
