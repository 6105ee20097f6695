#include "imgq/broker/sqlite_journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <sstream>

#include <msgpack.hpp>

#include "imgq/broker/job_codec.h"
#include "imgq/common/checksum.h"
#include "imgq/common/text.h"

#include "journal_files.h"

namespace imgq::broker {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  line TEXT NOT NULL, owner TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
  priority INTEGER NOT NULL, ops TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
  path TEXT NOT NULL, output TEXT NOT NULL, timeout_ms INTEGER NOT NULL, submitted REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  image BLOB, image_file INTEGER NOT NULL DEFAULT 0, image_bytes INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT '', code INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
  stats BLOB, finished REAL NOT NULL DEFAULT 0,
  result BLOB, result_file INTEGER NOT NULL DEFAULT 0, result_bytes INTEGER NOT NULL DEFAULT 0,
  gone TEXT NOT NULL DEFAULT '', gone_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  commits INTEGER NOT NULL, jobs INTEGER NOT NULL
);)sql";

// The statements, by name. Record columns are bound from the record by
// their names (job_codec.h); the journal binds its own (:image, :result,
// where they live) and the row's :id.
std::string statement(int which) {
  switch (which) {
    case 0: {  // kInsert: a new job's columns (its outcome takes the defaults)
      std::string columns, values;
      for (const ColumnSpec& c : record_columns()) {
        if (c.outcome) continue;
        columns += (columns.empty() ? "" : ", ") + c.name;
        values += (values.empty() ? ":" : ", :") + c.name;
      }
      return "INSERT INTO jobs (" + columns + ", image, image_file) VALUES (" + values + ", :image, :image_file)";
    }
    case 1:  // kProgressed
      return "UPDATE jobs SET running = :running, attempts = :attempts WHERE id = :id";
    case 2:  // kFinish
      return "UPDATE jobs SET state = :state, code = :code, message = :message, stats = :stats, finished = :finished, "
             "result = :result, result_file = :result_file, result_bytes = :result_bytes, result_crc = :result_crc, image = NULL, "
             "image_file = 0, attempts = :attempts, running = :running, gone = :gone, gone_at = :gone_at WHERE id = :id";
    case 3:  // kDropResult
      // A tombstone keeps what its key and status need, not the run's stats.
      return "UPDATE jobs SET result = NULL, result_file = 0, stats = NULL, ops = '', gone = :gone, gone_at = :gone_at "
             "WHERE id = :id";
    case 4:  // kForget
      return "DELETE FROM jobs WHERE id = :id";
    case 5:  // kImage
      return "SELECT image, image_file, image_bytes, image_crc FROM jobs WHERE id = :id";
    case 6:  // kResult
      return "SELECT result, result_file, result_bytes, result_crc FROM jobs WHERE id = :id";
    default:  // kMeta: every commit counts itself and its new jobs (journal.mark)
      return "INSERT OR REPLACE INTO meta (id, commits, jobs) VALUES (1, :commits, :jobs)";
  }
}

// Binds the named parameter `name` (one the journal owns).
void bind_text(sqlite3_stmt* stmt, const char* name, std::string_view text) {
  sqlite3_bind_text(stmt, sqlite3_bind_parameter_index(stmt, name), text.empty() ? "" : text.data(),
                    static_cast<int>(text.size()), SQLITE_TRANSIENT);
}
void bind_int(sqlite3_stmt* stmt, const char* name, int64_t value) {
  sqlite3_bind_int64(stmt, sqlite3_bind_parameter_index(stmt, name), value);
}
void bind_double(sqlite3_stmt* stmt, const char* name, double value) {
  sqlite3_bind_double(stmt, sqlite3_bind_parameter_index(stmt, name), value);
}
// Bytes, or NULL when empty.
void bind_bytes(sqlite3_stmt* stmt, const char* name, std::string_view bytes) {
  const int index = sqlite3_bind_parameter_index(stmt, name);
  if (bytes.empty()) {
    sqlite3_bind_null(stmt, index);
  } else {
    sqlite3_bind_blob64(stmt, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  }
}

}  // namespace

SqliteJournal::~SqliteJournal() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  // Payloads not yet written belong to commits never made: their files go
  // at the next open, as orphans.
  if (writer_.joinable()) writer_.join();
  for (PayloadWrite& w : to_write_) ::close(w.fd);
  if (log_fd_ >= 0) ::close(log_fd_);
  if (event_fd_ >= 0) ::close(event_fd_);
  for (auto& [fd, name] : unsynced_) ::close(fd);
  for (sqlite3_stmt* stmt : stmts_) sqlite3_finalize(stmt);
  if (db_ != nullptr) sqlite3_close(db_);
  if (mark_fd_ >= 0) ::close(mark_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status SqliteJournal::sql_error(const std::string& what) const {
  const int code = db_ == nullptr ? SQLITE_ERROR : sqlite3_errcode(db_);
  const std::string text = "the journal in " + dir_.string() + ": " + what + ": " +
                           (db_ == nullptr ? "no database" : sqlite3_errmsg(db_));
  return code == SQLITE_FULL ? Status::ResourceExhausted(text) : Status::Unavailable(text);
}

Status SqliteJournal::disk_failed(DiskOp op, DiskState state, Status status) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Bounded: a loop that never takes them keeps the newest 1,000.
  if (disk_errors_.size() >= 1000) disk_errors_.erase(disk_errors_.begin());
  disk_errors_.push_back({op, state, status.message()});
  disk_state_ = state;
  return status;
}

Status SqliteJournal::errno_failed(DiskOp op, const std::string& what, int error) {
  return disk_failed(op, disk_state_of_errno(error), write_error(what, error));
}

Status SqliteJournal::sql_failed(DiskOp op, const std::string& what) {
  Status status = sql_error(what);
  switch (sqlite3_errcode(db_) & 0xff) {
    case SQLITE_FULL:
      return disk_failed(op, DiskState::kFull, std::move(status));
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return disk_failed(op, DiskState::kReadOnly, std::move(status));
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
      const int error = sqlite3_system_errno(db_);
      return disk_failed(op, error == 0 ? DiskState::kFailing : disk_state_of_errno(error), std::move(status));
    }
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return disk_failed(op, DiskState::kFailing, std::move(status));
    default:
      return status;  // ours, not the disk's
  }
}

DiskState SqliteJournal::disk_state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return disk_state_;
}

std::vector<DiskError> SqliteJournal::take_disk_errors() {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::exchange(disk_errors_, {});
}

void SqliteJournal::fail_disk_for_testing(DiskOp op, int error) {
  injected_[static_cast<size_t>(op)].store(error, std::memory_order_relaxed);
}

DiskState SqliteJournal::probe_disk() {
  // As much as a small commit writes; the file goes at once.
  const fs::path path = dir_ / "disk-probe";
  static const std::string kBytes(64 * 1024, '\0');
  int error = injected(DiskOp::kWrite);
  if (error == 0) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      error = errno;
    } else {
      if (::write(fd, kBytes.data(), kBytes.size()) != static_cast<ssize_t>(kBytes.size())) {
        error = errno == 0 ? ENOSPC : errno;
      } else if (::fsync(fd) != 0) {
        error = errno;
      }
      ::close(fd);
      ::unlink(path.c_str());
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  disk_state_ = error == 0 ? DiskState::kHealthy : disk_state_of_errno(error);
  return disk_state_;
}

Result<std::unique_ptr<SqliteJournal>> SqliteJournal::open(const fs::path& dir, Recovered* recovered) {
  std::unique_ptr<SqliteJournal> journal(new SqliteJournal(dir));
  std::error_code ec;
  fs::create_directories(dir / "payloads", ec);
  if (ec) return Status::Unavailable("cannot create the data dir " + dir.string() + ": " + ec.message());
  journal->lock_fd_ = ::open((dir / "LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (journal->lock_fd_ < 0) {
    return Status::Unavailable("cannot open " + (dir / "LOCK").string() + ": " + errno_text(errno));
  }
  if (::flock(journal->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::Unavailable("the data dir " + dir.string() + " is in use by another imgq-broker (" +
                               (dir / "LOCK").string() + " is locked)");
  }
  Recovered found;
  Status status = journal->open_database();
  if (status.ok()) status = journal->load(&found);
  if (status.ok()) status = journal->check(&found);
  if (status.ok()) status = journal->enable_incremental_vacuum(&found);
  if (!status.ok()) IMGQ_RETURN_IF_ERROR(journal->move_aside(status, &found));
  journal->settle_orphans(&found);
  IMGQ_RETURN_IF_ERROR(journal->open_mark());
  if (recovered != nullptr) *recovered = std::move(found);
  return journal;
}

Status SqliteJournal::open_database() {
  const std::string file = (dir_ / "journal.db").string();
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return sql_error("cannot open " + file);
  }
  // WAL: a commit appends to the log; we fsync the log ourselves after the
  // COMMIT (commit(), sync_loop()), so SQLite need not (NORMAL: it still
  // syncs around checkpoints).
  // auto_vacuum before the table exists: a new journal can give space back.
  // journal_size_limit: the log is cut back to 4 MiB whenever it restarts.
  const std::string limit = "PRAGMA journal_size_limit=" + std::to_string(kLogLimitBytes);
  for (const char* pragma : {"PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                             limit.c_str(), kSchema}) {
    char* error = nullptr;
    if (sqlite3_exec(db_, pragma, nullptr, nullptr, &error) != SQLITE_OK) {
      sqlite3_free(error);
      return sql_error(std::string("cannot prepare the journal (") + pragma + ")");
    }
  }
  IMGQ_RETURN_IF_ERROR(add_missing_columns());
  for (int i = 0; i < kStmts; ++i) {
    const std::string sql = statement(i);
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmts_[i], nullptr) != SQLITE_OK) {
      return sql_error("cannot prepare " + sql);
    }
    binders_[i] = RecordBinder(stmts_[i]);
  }
  return Status::Ok();
}

int64_t SqliteJournal::query_int(const char* pragma) {
  sqlite3_stmt* stmt = nullptr;
  int64_t value = -1;
  if (sqlite3_prepare_v2(db_, pragma, -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return value;
}

Status SqliteJournal::enable_incremental_vacuum(Recovered* recovered) {
  constexpr int64_t kIncremental = 2;
  if (query_int("PRAGMA auto_vacuum") == kIncremental) return Status::Ok();
  const auto started = std::chrono::steady_clock::now();
  const int64_t before = query_int("PRAGMA page_count") * query_int("PRAGMA page_size");
  if (sqlite3_exec(db_, "PRAGMA auto_vacuum=INCREMENTAL", nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_exec(db_, "VACUUM", nullptr, nullptr, nullptr) != SQLITE_OK) {
    // Not fatal: the journal works, it only keeps its peak size.
    recovered->problems.push_back(sql_error("cannot rewrite the journal to give space back").message() +
                                  "; it keeps working, at its largest size so far");
    return Status::Ok();
  }
  const int64_t after = query_int("PRAGMA page_count") * query_int("PRAGMA page_size");
  char text[160];
  std::snprintf(text, sizeof text,
                "rewrote the journal once so that it gives space back (%.1f MB -> %.1f MB, %.2f s)",
                static_cast<double>(before) / 1e6, static_cast<double>(after) / 1e6, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  recovered->notes.push_back(text);
  return Status::Ok();
}

bool SqliteJournal::maintain() {
  if (in_transaction_) return false;
  bool did = false;
  if (const int64_t free_pages = query_int("PRAGMA freelist_count"); free_pages > 0) {
    const std::string vacuum =
        "PRAGMA incremental_vacuum(" + std::to_string(std::min<int64_t>(free_pages, kVacuumPages)) + ")";
    if (sqlite3_exec(db_, vacuum.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      (void)sql_failed(DiskOp::kCommit, "cannot give back free pages");
      return false;
    }
    did = true;
  }
  // The log back into the database, and cut to nothing: once a burst is
  // over, its megabytes of log are not kept.
  struct stat st {};
  if (log_fd_ >= 0 && ::fstat(log_fd_, &st) == 0 && st.st_size > 0) {
    int busy = 0, logged = 0, moved = 0;
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &logged, &moved) != SQLITE_OK) {
      busy = sqlite3_errcode(db_);
    }
    if (busy != 0 && busy != SQLITE_BUSY) (void)sql_failed(DiskOp::kSync, "cannot checkpoint the log");
    did = did || busy == 0;
  }
  return did;
}

Status SqliteJournal::add_missing_columns() {
  std::set<std::string> present;
  sqlite3_stmt* info = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA table_info(jobs)", -1, &info, nullptr) != SQLITE_OK) {
    return sql_error("cannot read the journal's columns");
  }
  while (sqlite3_step(info) == SQLITE_ROW) {
    present.insert(reinterpret_cast<const char*>(sqlite3_column_text(info, 1)));
  }
  sqlite3_finalize(info);
  for (const ColumnSpec& c : record_columns()) {
    if (present.count(c.name) != 0) continue;
    const std::string sql = "ALTER TABLE jobs ADD COLUMN " + c.name + " " + c.sql;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) return sql_error("cannot " + sql);
  }
  return Status::Ok();
}

Status SqliteJournal::load(Recovered* recovered) {
  // Every row's number first, then each row alone: a damaged row is left
  // out by itself instead of ending the scan.
  std::vector<int64_t> seqs;
  {
    sqlite3_stmt* list = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT seq FROM jobs ORDER BY seq", -1, &list, nullptr) != SQLITE_OK) {
      return sql_error("cannot read the journal");
    }
    int rc;
    while ((rc = sqlite3_step(list)) == SQLITE_ROW) seqs.push_back(sqlite3_column_int64(list, 0));
    sqlite3_finalize(list);
    if (rc != SQLITE_DONE) return sql_error("cannot read the journal's rows");
  }
  sqlite3_stmt* row = nullptr;
  const std::string select =
      "SELECT " + record_column_list() + ", image_file, result_file FROM jobs WHERE seq = :seq";
  if (sqlite3_prepare_v2(db_, select.c_str(), -1, &row, nullptr) != SQLITE_OK) {
    return sql_error("cannot read the journal");
  }
  std::set<std::string> payloads;
  for (int64_t seq : seqs) {
    sqlite3_reset(row);
    sqlite3_bind_int64(row, sqlite3_bind_parameter_index(row, ":seq"), seq);
    if (sqlite3_step(row) != SQLITE_ROW) {
      recovered->problems.push_back("row " + std::to_string(seq) + " cannot be read (" + sqlite3_errmsg(db_) +
                                    "); left out");
      ++recovered->damaged_rows;
      continue;
    }
    auto record = read_record(row);
    if (!record.ok()) {
      recovered->problems.push_back("row " + std::to_string(seq) + " is damaged: " + record.status().message() +
                                    "; left out");
      ++recovered->damaged_rows;
      continue;
    }
    JobRecord job = std::move(record).value();
    const int columns = static_cast<int>(record_columns().size());
    const bool image_file = sqlite3_column_int(row, columns) != 0;
    const bool result_file = sqlite3_column_int(row, columns + 1) != 0;
    if (job.id.size() != 16) {
      recovered->problems.push_back("row " + std::to_string(seq) + " has no valid job id; left out");
      ++recovered->damaged_rows;
      continue;
    }
    if (image_file) payloads.insert(job.id + ".image");
    if (result_file) payloads.insert(job.id + ".result");
    // Whether the files it names are there, whole (a stat each; their
    // checksums are checked when they are read).
    if (image_file && !finished_state(job.state)) check_payload(job.id, "image", job.image_bytes, recovered);
    if (result_file && job.gone == Gone::kNo) check_payload(job.id, "result", job.result_bytes, recovered);
    recovered->jobs.push_back(std::move(job));
  }
  sqlite3_finalize(row);
  // Payloads no committed row refers to were written by a round that never
  // committed (nobody was told about them), or their rows are lost:
  // settle_orphans() decides.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ / "payloads", ec)) {
    if (payloads.count(entry.path().filename().string()) == 0) recovered->orphans.push_back(entry.path());
  }
  return Status::Ok();
}

Status SqliteJournal::begin() {
  if (in_transaction_) return Status::Ok();
  if (sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) return sql_failed(DiskOp::kCommit, "cannot begin");
  in_transaction_ = true;
  staged_error_ = Status::Ok();
  return Status::Ok();
}

void SqliteJournal::run_staged(sqlite3_stmt* stmt) {
  const int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE && staged_error_.ok()) staged_error_ = sql_failed(DiskOp::kCommit, "cannot stage a change");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

Status SqliteJournal::write_payload(const std::string& file, const SharedBytes& bytes) {
  const fs::path path = payload_path(file);
  if (const int error = injected(DiskOp::kWrite)) return errno_failed(DiskOp::kWrite, "cannot create " + path.string(), error);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_failed(DiskOp::kWrite, "cannot create " + path.string(), errno);
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      to_write_.push_back({fd, file, bytes});
      ++payloads_unsynced_;
    }
    written_apart_.push_back(file);
    cv_.notify_all();
    return Status::Ok();
  }
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(path.c_str());
      return errno_failed(DiskOp::kWrite, "cannot write " + path.string(), error);
    }
    written += static_cast<size_t>(n);
  }
  unsynced_.emplace_back(fd, file);
  return Status::Ok();
}

Status SqliteJournal::add(const JobRecord& job, const SharedBytes& image) {
  // The file first: one that cannot be created leaves no transaction open,
  // so no empty commit says the disk is fine.
  const bool in_file = image.size() > kInlineBytes;
  if (in_file) IMGQ_RETURN_IF_ERROR(write_payload(job.id + ".image", image));
  IMGQ_RETURN_IF_ERROR(begin());
  // (A failed insert below leaves the file to the commit's rollback, or to
  // the next open as an orphan.)
  sqlite3_stmt* s = stmts_[kInsert];
  binders_[kInsert].bind(s, job);
  bind_bytes(s, ":image", in_file ? std::string_view() : image.view());
  bind_int(s, ":image_file", in_file ? 1 : 0);
  bind_int(s, ":image_bytes", static_cast<int64_t>(image.size()));
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return sql_failed(DiskOp::kCommit, "cannot store job " + job.id);
  ++added_;
  return Status::Ok();
}

void SqliteJournal::progressed(const JobRecord& job) {
  if (!begin().ok()) return;
  sqlite3_stmt* s = stmts_[kProgressed];
  binders_[kProgressed].bind(s, job);
  run_staged(s);
}

void SqliteJournal::finish(const JobRecord& job, const SharedBytes& result) {
  if (!begin().ok()) return;
  const bool in_file = result.size() > kInlineBytes;
  if (in_file) {
    Status written = write_payload(job.id + ".result", result);
    if (!written.ok() && staged_error_.ok()) staged_error_ = written;
  }
  sqlite3_stmt* s = stmts_[kFinish];
  binders_[kFinish].bind(s, job);
  bind_bytes(s, ":result", in_file ? std::string_view() : result.view());
  bind_int(s, ":result_file", in_file ? 1 : 0);
  bind_int(s, ":result_bytes", static_cast<int64_t>(result.size()));
  run_staged(s);
  unlink_after_commit_.push_back(job.id + ".image");
}

void SqliteJournal::drop_result(const std::string& id, Gone gone, double gone_at) {
  if (!begin().ok()) return;
  sqlite3_stmt* s = stmts_[kDropResult];
  bind_text(s, ":gone", gone_name(gone));
  bind_double(s, ":gone_at", gone_at);
  bind_text(s, ":id", id);
  run_staged(s);
  unlink_after_commit_.push_back(id + ".result");
}

void SqliteJournal::forget(const std::string& id) {
  if (!begin().ok()) return;
  sqlite3_stmt* s = stmts_[kForget];
  bind_text(s, ":id", id);
  run_staged(s);
  unlink_after_commit_.push_back(id + ".image");
  unlink_after_commit_.push_back(id + ".result");
}

Result<uint64_t> SqliteJournal::commit() {
  if (!in_transaction_) return committed_;
  Status status = staged_error_;
  // The payloads first: a committed row must never refer to a file that a
  // crash could leave half-written. Those on the writer thread: all written
  // and fsynced, with their folder (the core commits once syncing() says
  // so, or when stopping: then this waits).
  if (!written_apart_.empty()) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return payloads_unsynced_ == 0; });
    if (status.ok()) status = payload_error_;
    payload_error_ = Status::Ok();
  }
  for (auto& [fd, name] : unsynced_) {
    if (status.ok() && ::fsync(fd) != 0) {
      status = errno_failed(DiskOp::kSync, "cannot sync " + payload_path(name).string(), errno);
    }
    ::close(fd);
    ++syncs_;
  }
  if (int error = 0; status.ok() && !unsynced_.empty()) {
    status = fsync_path(dir_ / "payloads", O_RDONLY | O_DIRECTORY, &error);
    if (!status.ok()) status = disk_failed(DiskOp::kSync, disk_state_of_errno(error), status);
  }
  if (status.ok()) {
    sqlite3_stmt* meta = stmts_[kMeta];
    bind_int(meta, ":commits", static_cast<int64_t>(mark_.commits + 1));
    bind_int(meta, ":jobs", static_cast<int64_t>(mark_.jobs + added_));
    const int rc = sqlite3_step(meta);
    sqlite3_reset(meta);
    if (rc != SQLITE_DONE) status = sql_failed(DiskOp::kCommit, "cannot count the commit");
  }
  if (const int error = injected(DiskOp::kCommit); status.ok() && error != 0) {
    status = errno_failed(DiskOp::kCommit, "cannot commit to " + (dir_ / "journal.db-wal").string(), error);
  }
  if (status.ok() && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = sql_failed(DiskOp::kCommit, "cannot commit");
  }
  if (!status.ok()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    std::error_code ec;
    for (auto& [fd, name] : unsynced_) fs::remove(payload_path(name), ec);
    for (const std::string& name : written_apart_) fs::remove(payload_path(name), ec);
  }
  unsynced_.clear();
  written_apart_.clear();
  std::vector<std::string> unlink = std::move(unlink_after_commit_);
  unlink_after_commit_.clear();
  in_transaction_ = false;
  staged_error_ = Status::Ok();
  const uint64_t added = std::exchange(added_, 0);
  if (!status.ok()) return status;
  mark_.commits += 1;
  mark_.jobs += added;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    disk_state_ = DiskState::kHealthy;
  }
  if (log_fd_ < 0) IMGQ_RETURN_IF_ERROR(open_log());
  const uint64_t ticket = ++committed_;
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requested_ = ticket;
      requested_mark_ = mark_;
    }
    cv_.notify_all();
  } else {
    const int error = injected(DiskOp::kSync) != 0 ? injected(DiskOp::kSync) : ::fdatasync(log_fd_) != 0 ? errno : 0;
    if (error != 0) {
      const Status failed = errno_failed(DiskOp::kSync, "cannot sync " + (dir_ / "journal.db-wal").string(), error);
      std::lock_guard<std::mutex> lock(mutex_);
      sync_error_ = failed;
      return failed;
    }
    ++syncs_;
    write_mark(mark_);
    std::lock_guard<std::mutex> lock(mutex_);
    synced_ = ticket;
  }
  // Files the committed rows no longer name go once those rows are durable
  // (before, a crash would bring back rows that still name them).
  if (!unlink.empty()) unlink_when_synced_.emplace_back(ticket, std::move(unlink));
  (void)synced();
  return ticket;
}

Result<std::string> SqliteJournal::read_payload(const std::string& id, const char* what, Stmt which) {
  sqlite3_stmt* s = stmts_[which];
  bind_text(s, ":id", id);
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? Status::NotFound(std::string("the journal holds no ") + what + " for job " + id)
                             : sql_error(std::string("cannot read the ") + what + " of job " + id);
  }
  const bool in_file = sqlite3_column_int(s, 1) != 0;
  const uint64_t bytes = static_cast<uint64_t>(sqlite3_column_int64(s, 2));
  const bool checked = sqlite3_column_type(s, 3) != SQLITE_NULL;
  const auto crc = static_cast<uint32_t>(sqlite3_column_int64(s, 3));
  std::string data;
  if (!in_file) {
    const void* blob = sqlite3_column_blob(s, 0);
    data.assign(static_cast<const char*>(blob), blob == nullptr ? 0 : static_cast<size_t>(sqlite3_column_bytes(s, 0)));
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (in_file) {
    const fs::path path = payload_path(id + (which == kImage ? ".image" : ".result"));
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::Internal(std::string("the journal's copy of the ") + what + " of job " + id +
                                        " is missing (" + path.string() + ": " + errno_text(errno) + ")");
    data.resize(bytes);
    size_t got = 0;
    while (got < bytes) {
      const ssize_t n = ::read(fd, data.data() + got, bytes - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    data.resize(got);
  }
  const std::string where = in_file ? payload_path(id + (which == kImage ? ".image" : ".result")).string()
                                    : std::string("journal.db");
  if (data.size() != bytes) {
    return damaged_payload(what, id, where, std::to_string(data.size()) + " of " + std::to_string(bytes) + " bytes");
  }
  if (checked) {
    if (const uint32_t now = crc32_of(data); now != crc) {
      char text[64];
      std::snprintf(text, sizeof text, "checksum %08x where %08x was stored", now, crc);
      return damaged_payload(what, id, where, text);
    }
  }
  return data;
}

Result<std::string> SqliteJournal::image(const std::string& id) { return read_payload(id, "image", kImage); }
Result<std::string> SqliteJournal::result(const std::string& id) { return read_payload(id, "result", kResult); }

}  // namespace imgq::broker
