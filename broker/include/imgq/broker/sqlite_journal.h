// The journal on disk: SQLite in WAL mode, in a data folder the broker owns.
// A commit is SQLite's COMMIT with synchronous=NORMAL (written to the log,
// not yet synced) followed by our own fdatasync of the log: inline, or on a
// thread of its own (start_background_sync) while the broker goes on with
// the next round, so that one fsync covers every commit made while the
// previous one ran. Payload files are fsynced before the COMMIT that names
// them, so a row on disk never refers to a file that is not.
//
//
//   DIR/LOCK            flock()ed while a broker uses DIR: a second broker
//                       on the same folder refuses to start
//   DIR/journal.db      one row per job: request, attempts, outcome, and
//   DIR/journal.db-wal  images and results up to kInlineBytes inline
//   DIR/payloads/       larger images and results, one file each, fsynced
//                       before the commit that refers to them
//
// Recovery reads row by row: a row that cannot be read is logged and left
// out, so one bad record never stops a broker; a database that cannot be
// opened at all is moved aside (journal.db.damaged-TIME) and a new one
// started, loudly. SQLite itself drops a torn WAL tail (a transaction whose
// commit frame never reached the disk was never acknowledged).
// Not thread-safe (the broker's one thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "imgq/broker/job_codec.h"
#include "imgq/broker/journal.h"

struct sqlite3;
struct sqlite3_stmt;

namespace imgq::broker {

// How far the journal had got, by the counters its `meta` row keeps
// (commits made, jobs ever stored). Also in DIR/journal.mark, written after
// every sync of the log and never inside it, so a log cut or lost cannot
// hide what it held. The mark has no fsync of its own: written after the
// log's, it never claims more than is on disk; at worst it claims less.
struct JournalMark {
  uint64_t commits = 0;
  uint64_t jobs = 0;
};

// What open() found on disk. Anything in `problems` (logged at error) means
// the journal is not known to be intact: then payload files no row names
// are quarantined, never removed.
struct Recovered {
  std::vector<JobRecord> jobs;  // in submission order
  std::vector<std::string> problems;  // rows or files left out, checks failed, for the log
  std::vector<std::string> notes;     // what open() did besides, for the log at info
  size_t damaged_rows = 0;            // rows left out
  size_t missing_payloads = 0;        // rows whose image or result file is missing or short
  uint64_t lost_commits = 0;          // synced commits (journal.mark) the journal no longer has...
  uint64_t lost_jobs = 0;             // ...and the jobs they had stored
  std::vector<std::filesystem::path> orphans;  // payload files no row refers to
  size_t orphan_files = 0;                     // of those, removed (the journal is intact)
  size_t quarantined_files = 0;                // or moved to `quarantine` (it is not)
  std::filesystem::path quarantine;
  std::filesystem::path moved_aside;  // an unreadable journal's folder (salvage reads it)
};

class SqliteJournal final : public Journal {
 public:
  // Images and results up to this size live in the database; larger ones in
  // files of their own (written once, fsynced, never rewritten).
  static constexpr size_t kInlineBytes = 256 * 1024;

  ~SqliteJournal() override;
  SqliteJournal(const SqliteJournal&) = delete;
  SqliteJournal& operator=(const SqliteJournal&) = delete;

  // Opens (creating) the journal in `dir` and reads what it holds.
  static Result<std::unique_ptr<SqliteJournal>> open(const std::filesystem::path& dir, Recovered* recovered);

  bool durable() const override { return true; }
  Status add(const JobRecord& job, const SharedBytes& image) override;
  void progressed(const JobRecord& job) override;
  void finish(const JobRecord& job, const SharedBytes& result) override;
  void drop_result(const std::string& id, Gone gone, double gone_at) override;
  void forget(const std::string& id) override;
  Result<uint64_t> commit() override;
  Result<uint64_t> synced() override;
  Status wait_synced(uint64_t ticket) override;
  bool syncing() override;
  bool dirty() const override { return in_transaction_; }

  // From now on the log is synced on a thread of its own, and images and
  // results stored in files are written and fsynced on another (an 80 MB
  // image is about 70 ms of write and fsync that the broker's loop no
  // longer waits for: the job is dispatched meanwhile, and accepted at the
  // first commit after its file is on disk). `notify_fd()` becomes readable
  // (an eventfd; read it to reset) each time synced() advances or the
  // payloads staged are all written. Until then commit() writes and syncs
  // everything before it returns.
  Status start_background_sync();
  // Tests: while held, staged payloads wait unwritten (syncing() is true).
  void hold_payload_writes_for_testing(bool hold);
  // Tests: while held, the log is not synced (synced() stays where it is).
  void hold_syncs_for_testing(bool hold);
  int notify_fd() const { return event_fd_; }
  Result<std::string> image(const std::string& id) override;
  Result<std::string> result(const std::string& id) override;
  DiskState disk_state() const override;
  std::vector<DiskError> take_disk_errors() override;
  DiskState probe_disk() override;
  bool maintain() override;
  // Free pages given back per maintain() (4 MiB of 4 KiB pages), and the
  // size the log is cut back to when SQLite resets it.
  static constexpr int kVacuumPages = 1024;
  static constexpr int64_t kLogLimitBytes = 4 << 20;
  // Tests: from now on every payload file, COMMIT or fsync of the log (by
  // `op`) fails with `error` (0: works again), as a disk would.
  void fail_disk_for_testing(DiskOp op, int error);

  // fsyncs so far: of the log (one per commit, or per group of commits in
  // the background) and of payload files.
  uint64_t syncs() const { return syncs_.load(); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  enum Stmt { kInsert, kProgressed, kFinish, kDropResult, kForget, kImage, kResult, kMeta, kStmts };

  explicit SqliteJournal(std::filesystem::path dir) : dir_(std::move(dir)) {}
  Status open_database();
  // Adds to an older table the columns the codec has and it lacks.
  Status add_missing_columns();
  // A journal made before space was given back: rewritten once so that it
  // can be (SQLite's auto_vacuum=INCREMENTAL, set by VACUUM); a note.
  Status enable_incremental_vacuum(Recovered* recovered);
  int64_t query_int(const char* pragma);
  Status load(Recovered* recovered);
  // A problem when the payload file of job `id` is missing or short.
  void check_payload(const std::string& id, const char* what, uint64_t bytes, Recovered* recovered) const;
  // After load(): SQLite's quick_check, the meta row against journal.mark,
  // and the payload files the rows name; what is wrong goes in `problems`.
  Status check(Recovered* recovered);
  // Orphan payload files: removed when nothing was wrong, else quarantined.
  void settle_orphans(Recovered* recovered);
  // An unreadable journal: it, its mark and its payloads go to a folder of
  // their own (DIR/damaged-TIME, for --salvage), and a new one starts.
  Status move_aside(const Status& why, Recovered* recovered);
  // journal.mark opened and set to where the journal is now.
  Status open_mark();
  Status begin();
  // Runs a staged write; a failure poisons the transaction (commit fails).
  void run_staged(sqlite3_stmt* stmt);
  Status sql_error(const std::string& what) const;
  // Notes a failed disk operation (from any thread) and returns `status`.
  Status disk_failed(DiskOp op, DiskState state, Status status);
  Status errno_failed(DiskOp op, const std::string& what, int error);
  // A failed SQLite call, noted when the disk is to blame (full, read-only,
  // I/O), as sql_error().
  Status sql_failed(DiskOp op, const std::string& what);
  // The error injected for `op` (fail_disk_for_testing), or 0.
  int injected(DiskOp op) const { return injected_[static_cast<size_t>(op)].load(std::memory_order_relaxed); }
  // Writes a payload file: on the writer thread when there is one (written
  // and fsynced there), else here (fsynced by commit()).
  Status write_payload(const std::string& file, const SharedBytes& bytes);
  void write_loop();
  Result<std::string> read_payload(const std::string& id, const char* column_blob, Stmt stmt);
  std::filesystem::path payload_path(const std::string& file) const { return dir_ / "payloads" / file; }

  std::filesystem::path dir_;
  int lock_fd_ = -1;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmts_[kStmts] = {};
  RecordBinder binders_[kStmts];  // the record's parameters of each statement
  bool in_transaction_ = false;
  Status staged_error_;                      // first failed staged write since the last commit
  std::vector<std::pair<int, std::string>> unsynced_;  // payload files written here: fd, name
  std::vector<std::string> written_apart_;             // payload files given to the writer thread
  std::vector<std::string> unlink_after_commit_;
  std::deque<std::pair<uint64_t, std::vector<std::string>>> unlink_when_synced_;  // ticket -> files
  std::atomic<uint64_t> syncs_{0};
  // The `meta` row's counters as of the last commit, and jobs added since.
  JournalMark mark_;
  uint64_t added_ = 0;
  int mark_fd_ = -1;  // DIR/journal.mark
  // Writes journal.mark (any thread; after a sync of the log).
  void write_mark(const JournalMark& mark);

  // Syncing the log: tickets committed and synced, the log's descriptor
  // (opened after the first commit creates the file), the thread.
  Status open_log();
  void sync_loop();
  int log_fd_ = -1;
  uint64_t committed_ = 0;
  int event_fd_ = -1;
  mutable std::mutex mutex_;  // guards what follows, shared with the sync thread
  std::condition_variable cv_;
  uint64_t requested_ = 0, synced_ = 0;
  JournalMark requested_mark_;  // the counters as of `requested_`
  Status sync_error_;
  bool stop_ = false;
  std::thread syncer_;
  // The payload writer: files to write (created, open), how many are not yet
  // durable, the first error since the last commit.
  struct PayloadWrite {
    int fd;
    std::string file;
    SharedBytes bytes;
  };
  std::deque<PayloadWrite> to_write_;
  size_t payloads_unsynced_ = 0;
  Status payload_error_;
  bool payloads_held_ = false;
  bool syncs_held_ = false;
  std::thread writer_;
  std::vector<DiskError> disk_errors_;  // since take_disk_errors()
  DiskState disk_state_ = DiskState::kHealthy;
  std::atomic<int> injected_[3] = {};
};

}  // namespace imgq::broker
