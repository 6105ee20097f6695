// The SQLite journal's two threads: one writes payload files (each fsynced,
// with its folder) before the commit that names them; one fsyncs the WAL
// after each commit, so the broker's loop never waits on a disk.
#include "imgq/broker/sqlite_journal.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <thread>

#include "journal_files.h"

namespace imgq::broker {

namespace fs = std::filesystem;

Status SqliteJournal::open_log() {
  const fs::path log = dir_ / "journal.db-wal";
  log_fd_ = ::open(log.c_str(), O_RDWR | O_CLOEXEC);
  if (log_fd_ < 0) return errno_failed(DiskOp::kWrite, "cannot open " + log.string(), errno);
  // The log's own name must survive a crash too.
  int error = 0;
  Status status = fsync_path(dir_, O_RDONLY | O_DIRECTORY, &error);
  return status.ok() ? status : disk_failed(DiskOp::kSync, disk_state_of_errno(error), status);
}

void SqliteJournal::write_mark(const JournalMark& mark) {
  if (mark_fd_ < 0) return;
  const std::string bytes = encode_mark(mark);
  (void)!::pwrite(mark_fd_, bytes.data(), bytes.size(), 0);
}

Result<uint64_t> SqliteJournal::synced() {
  uint64_t synced = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!sync_error_.ok()) return sync_error_;
    synced = synced_;
  }
  std::error_code ec;
  while (!unlink_when_synced_.empty() && unlink_when_synced_.front().first <= synced) {
    for (const std::string& name : unlink_when_synced_.front().second) fs::remove(payload_path(name), ec);
    unlink_when_synced_.pop_front();
  }
  return synced;
}

bool SqliteJournal::syncing() {
  std::lock_guard<std::mutex> lock(mutex_);
  return (sync_error_.ok() && synced_ < committed_) || payloads_unsynced_ > 0;
}

void SqliteJournal::hold_payload_writes_for_testing(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    payloads_held_ = hold;
  }
  cv_.notify_all();
}

void SqliteJournal::hold_syncs_for_testing(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    syncs_held_ = hold;
  }
  cv_.notify_all();
}

Status SqliteJournal::wait_synced(uint64_t ticket) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return synced_ >= ticket || !sync_error_.ok() || !syncer_.joinable(); });
  return sync_error_;
}

Status SqliteJournal::start_background_sync() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return Status::Internal(std::string("eventfd: ") + errno_text(errno));
  syncer_ = std::thread([this] { sync_loop(); });
  writer_ = std::thread([this] { write_loop(); });
  return Status::Ok();
}

void SqliteJournal::write_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (!to_write_.empty() && !payloads_held_); });
    if (stop_) return;
    PayloadWrite w = std::move(to_write_.front());
    to_write_.pop_front();
    lock.unlock();
    const fs::path path = payload_path(w.file);
    Status status;
    const std::string_view bytes = w.bytes.view();
    for (size_t written = 0; written < bytes.size();) {
      const ssize_t n = ::write(w.fd, bytes.data() + written, bytes.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        status = errno_failed(DiskOp::kWrite, "cannot write " + path.string(), n < 0 ? errno : ENOSPC);
        break;
      }
      written += static_cast<size_t>(n);
    }
    if (status.ok() && ::fsync(w.fd) != 0) status = errno_failed(DiskOp::kSync, "cannot sync " + path.string(), errno);
    ::close(w.fd);
    ++syncs_;
    w.bytes.reset();
    lock.lock();
    // The last of a batch: its folder too, so the new names last.
    if (to_write_.empty() && status.ok()) {
      lock.unlock();
      int error = 0;
      status = fsync_path(dir_ / "payloads", O_RDONLY | O_DIRECTORY, &error);
      if (!status.ok()) status = disk_failed(DiskOp::kSync, disk_state_of_errno(error), status);
      lock.lock();
    }
    if (!status.ok() && payload_error_.ok()) payload_error_ = status;
    if (--payloads_unsynced_ == 0) {
      const uint64_t one = 1;
      (void)!::write(event_fd_, &one, sizeof one);
    }
    cv_.notify_all();
  }
}

void SqliteJournal::sync_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (requested_ > synced_ && !syncs_held_); });
    if (requested_ <= synced_) return;  // stopping, nothing left to sync
    // Everything committed up to `target` is in the log's file: one
    // fdatasync makes all of it durable, however many commits that is.
    const uint64_t target = requested_;
    const JournalMark mark = requested_mark_;
    const int fd = log_fd_;
    lock.unlock();
    const int injected_error = injected(DiskOp::kSync);
    const int rc = injected_error != 0 ? -1 : ::fdatasync(fd);
    const int error = injected_error != 0 ? injected_error : errno;
    ++syncs_;
    Status failed;
    if (rc != 0) failed = errno_failed(DiskOp::kSync, "cannot sync " + (dir_ / "journal.db-wal").string(), error);
    if (rc == 0) write_mark(mark);
    lock.lock();
    if (rc != 0) {
      sync_error_ = failed;
    } else {
      synced_ = target;
    }
    const uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
    cv_.notify_all();
    if (rc != 0) return;
  }
}

}  // namespace imgq::broker
