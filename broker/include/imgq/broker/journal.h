// The broker's journal: what it has accepted and finished, on disk, so that
// a broker killed at any instant loses nothing it acknowledged.
// See ../../../../schemas/PROTOCOL.md, section 10 (delivery guarantees).
//
// The core stages changes (a job accepted, dispatched, finished, its result
// acknowledged, forgotten) as it handles messages; commit() writes every
// change staged since the last commit at once and returns its ticket; the
// ticket is durable once synced() reaches it (one fsync for the commit, or
// for several: group commit). The server commits once per poll-loop round,
// and the core answers `accepted` only once the commit that stored the job
// is durable.
//
// Two implementations: MemoryJournal (nothing on disk: `--memory-only`) and
// SqliteJournal (sqlite_journal.h). Not thread-safe: the broker's one thread
// owns it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/broker/job_record.h"
#include "imgq/common/status.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/monitoring/broker_metrics.h"

namespace imgq::broker {

// A stored image or result whose bytes are not those that arrived (its
// size or its checksum differs): an io_error naming the job, what, where
// and how; never delivered. is_damaged() tells it from other errors.
Status damaged_payload(std::string_view what, const std::string& id, const std::string& where,
                       const std::string& how);
bool is_damaged(const Status& status);

using monitoring::DiskOp;
using monitoring::DiskState;

// A write, commit or fsync of the journal that failed: what, why (the
// state it shows the disk in), and a line for the operator naming the path
// and the system's reason.
struct DiskError {
  DiskOp op;
  DiskState state;
  std::string message;
};
// EROFS, EACCES, EPERM: read_only; ENOSPC, EDQUOT, EFBIG: full; else failing.
DiskState disk_state_of_errno(int error);

class Journal {
 public:
  virtual ~Journal() = default;

  // Whether what is staged survives a crash once committed (false: memory
  // only, and the core keeps results in memory itself).
  virtual bool durable() const = 0;

  // Stages a new job with its image (empty for a local-files job). An error
  // (the disk is full, the folder is not writable) means nothing was staged.
  // The journal may hold on to `image` (a reference, not a copy) and write
  // it after add() returns, before the commit that stores the job.
  virtual Status add(const JobRecord& job, const SharedBytes& image) = 0;
  // Stages an unfinished job's state and attempts (dispatched, requeued).
  virtual void progressed(const JobRecord& job) = 0;
  // Stages a finished job (state, code, message, stats, finished, attempts,
  // and gone/gone_at if its result is already acknowledged) and its result
  // image (empty when there is none, or it is gone), held on to as `add`'s.
  virtual void finish(const JobRecord& job, const SharedBytes& result) = 0;
  // Stages the end of a result: acknowledged or expired, and when; the row
  // stays as a tombstone for the key until forget().
  virtual void drop_result(const std::string& id, Gone gone, double gone_at) = 0;
  virtual void forget(const std::string& id) = 0;

  // Writes everything staged as one commit; its ticket (tickets grow). On
  // error nothing staged since the last commit is kept (the core refuses
  // the submits it was holding back).
  virtual Result<uint64_t> commit() = 0;
  // The last ticket on disk: every commit up to it survives a crash. An
  // error if making a commit durable failed (then nothing after it is).
  virtual Result<uint64_t> synced() = 0;
  // Waits until `ticket` is durable (or that failed).
  virtual Status wait_synced(uint64_t ticket) = 0;
  // Whether a commit is still being made durable, or images and results
  // staged are still being written: the caller may stage more and commit
  // once not, so that one commit and one fsync take all.
  virtual bool syncing() = 0;
  // Whether something is staged and not yet committed.
  virtual bool dirty() const = 0;

  // The stored bytes of a job's image or result, read back from disk and
  // checked against the record's size and checksum (damaged_payload()).
  virtual Result<std::string> image(const std::string& id) = 0;
  virtual Result<std::string> result(const std::string& id) = 0;

  // The disk as the last write to it found it (healthy until one fails,
  // and again after one succeeds).
  virtual DiskState disk_state() const { return DiskState::kHealthy; }
  // The failed operations since the last call, oldest first, for the log
  // and the metrics (the journal's threads add to it).
  virtual std::vector<DiskError> take_disk_errors() { return {}; }
  // Writes and fsyncs a small file beside the journal, and removes it: the
  // disk state it finds (not an error when it fails). While the disk is in
  // trouble and no submit comes to find out, this says when it is back.
  virtual DiskState probe_disk() { return DiskState::kHealthy; }

  // Gives back space at a quiet moment (nothing staged or syncing): up to
  // a bounded number of free pages of the database (rows of forgotten jobs)
  // and the log, checkpointed and truncated. Each call costs at most a few
  // megabytes of writing; false when there was nothing left to do.
  virtual bool maintain() { return false; }
};

// Nothing on disk: every call succeeds, and nothing survives the process.
class MemoryJournal final : public Journal {
 public:
  bool durable() const override { return false; }
  Status add(const JobRecord&, const SharedBytes&) override { return Status::Ok(); }
  void progressed(const JobRecord&) override {}
  void finish(const JobRecord&, const SharedBytes&) override {}
  void drop_result(const std::string&, Gone, double) override {}
  void forget(const std::string&) override {}
  Result<uint64_t> commit() override { return ++ticket_; }
  Result<uint64_t> synced() override { return ticket_; }
  Status wait_synced(uint64_t) override { return Status::Ok(); }
  bool syncing() override { return false; }
  bool dirty() const override { return false; }
  Result<std::string> image(const std::string& id) override {
    return Status::NotFound("no stored image for job " + id + " (the broker keeps nothing on disk)");
  }
  Result<std::string> result(const std::string& id) override {
    return Status::NotFound("no stored result for job " + id + " (the broker keeps nothing on disk)");
  }

 private:
  uint64_t ticket_ = 0;
};

}  // namespace imgq::broker
