#include "imgq/broker/journal.h"

#include <cerrno>

namespace imgq::broker {
namespace {
constexpr std::string_view kDamaged = " is damaged (";
}  // namespace

Status damaged_payload(std::string_view what, const std::string& id, const std::string& where,
                       const std::string& how) {
  const std::string outcome = what == "image" ? "the job fails; submit the image again"
                                              : "it is not delivered; submit the image again for a new one";
  return Status::IoError("the broker's stored copy of the " + std::string(what) + " of job " + id +
                         std::string(kDamaged) + how + ", in " + where + "): " + outcome);
}

bool is_damaged(const Status& status) {
  return status.code() == StatusCode::kIoError && status.message().find(kDamaged) != std::string::npos;
}

DiskState disk_state_of_errno(int error) {
  switch (error) {
    case EROFS:
    case EACCES:
    case EPERM:
      return DiskState::kReadOnly;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return DiskState::kFull;
    default:
      return DiskState::kFailing;
  }
}

}  // namespace imgq::broker
