#include "imgq/broker/sqlite_journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <sstream>

#include <msgpack.hpp>

#include "imgq/common/text.h"

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
);)sql";

constexpr const char* kStatements[] = {
    // kInsert
    "INSERT INTO jobs (id, line, owner, key, digest, priority, ops, format, name, path, output, timeout_ms, "
    "submitted, attempts, image, image_file, image_bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    // kDispatched
    "UPDATE jobs SET attempts = ? WHERE id = ?",
    // kFinish
    "UPDATE jobs SET state = ?, code = ?, message = ?, stats = ?, finished = ?, result = ?, result_file = ?, "
    "result_bytes = ?, image = NULL, image_file = 0, attempts = ?, gone = ?, gone_at = ? WHERE id = ?",
    // kDropResult
    "UPDATE jobs SET result = NULL, result_file = 0, gone = ?, gone_at = ? WHERE id = ?",
    // kForget
    "DELETE FROM jobs WHERE id = ?",
    // kImage
    "SELECT image, image_file, image_bytes FROM jobs WHERE id = ?",
    // kResult
    "SELECT result, result_file, result_bytes FROM jobs WHERE id = ?",
};

std::string pack_stats(const proto::JobStats& stats) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, stats);
  return std::string(buffer.data(), buffer.size());
}

proto::JobStats unpack_stats(const void* data, int size) {
  proto::JobStats stats;
  if (data == nullptr || size <= 0) return stats;
  try {
    msgpack::object_handle handle = msgpack::unpack(static_cast<const char*>(data), static_cast<size_t>(size));
    handle.get().convert(stats);
  } catch (const std::exception&) {
    stats = {};  // statistics are informative; a damaged blob costs nothing else
  }
  return stats;
}

std::string column_text(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text),
                                                       static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
}

void bind_text(sqlite3_stmt* stmt, int index, const std::string& text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

void bind_blob(sqlite3_stmt* stmt, int index, std::string_view bytes) {
  sqlite3_bind_blob64(stmt, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
}

std::string errno_text(int error) { return std::strerror(error); }

Status fsync_path(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("cannot open " + path.string() + ": " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return Status::Unavailable("cannot sync " + path.string() + ": " + errno_text(error));
  return Status::Ok();
}

// ENOSPC and EDQUOT: the disk, not the request, is the problem; retry later.
Status write_error(const std::string& what, int error) {
  const std::string text = what + ": " + errno_text(error);
  return error == ENOSPC || error == EDQUOT ? Status::ResourceExhausted(text) : Status::Unavailable(text);
}

std::string utc_stamp() {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
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
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status SqliteJournal::sql_error(const std::string& what) const {
  const int code = db_ == nullptr ? SQLITE_ERROR : sqlite3_errcode(db_);
  const std::string text = "the journal in " + dir_.string() + ": " + what + ": " +
                           (db_ == nullptr ? "no database" : sqlite3_errmsg(db_));
  return code == SQLITE_FULL ? Status::ResourceExhausted(text) : Status::Unavailable(text);
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
  if (!status.ok()) {
    // Unreadable as a whole: keep it for a post-mortem, start afresh.
    for (sqlite3_stmt*& stmt : journal->stmts_) sqlite3_finalize(stmt), stmt = nullptr;
    sqlite3_close(journal->db_);
    journal->db_ = nullptr;
    const std::string suffix = ".damaged-" + utc_stamp();
    for (const char* file : {"journal.db", "journal.db-wal", "journal.db-shm"}) {
      fs::rename(dir / file, dir / (std::string(file) + suffix), ec);
    }
    found = {};
    found.problems.push_back(status.message() + "; moved it aside as journal.db" + suffix +
                             " and started an empty journal");
    IMGQ_RETURN_IF_ERROR(journal->open_database());
    IMGQ_RETURN_IF_ERROR(journal->load(&found));
  }
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
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
    char* error = nullptr;
    if (sqlite3_exec(db_, pragma, nullptr, nullptr, &error) != SQLITE_OK) {
      sqlite3_free(error);
      return sql_error(std::string("cannot prepare the journal (") + pragma + ")");
    }
  }
  for (int i = 0; i < kStmts; ++i) {
    if (sqlite3_prepare_v3(db_, kStatements[i], -1, SQLITE_PREPARE_PERSISTENT, &stmts_[i], nullptr) != SQLITE_OK) {
      return sql_error(std::string("cannot prepare ") + kStatements[i]);
    }
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
  if (sqlite3_prepare_v2(db_,
                         "SELECT id, line, owner, key, digest, priority, ops, format, name, path, output, "
                         "timeout_ms, submitted, attempts, image_file, image_bytes, state, code, message, stats, "
                         "finished, result_file, result_bytes, gone, gone_at FROM jobs WHERE seq = ?",
                         -1, &row, nullptr) != SQLITE_OK) {
    return sql_error("cannot read the journal");
  }
  std::set<std::string> payloads;
  for (int64_t seq : seqs) {
    sqlite3_reset(row);
    sqlite3_bind_int64(row, 1, seq);
    if (sqlite3_step(row) != SQLITE_ROW) {
      recovered->problems.push_back("row " + std::to_string(seq) + " cannot be read (" + sqlite3_errmsg(db_) +
                                    "); left out");
      continue;
    }
    StoredJob job;
    job.id = column_text(row, 0);
    job.line = column_text(row, 1);
    job.owner = column_text(row, 2);
    job.key = column_text(row, 3);
    job.digest = column_text(row, 4);
    job.priority = sqlite3_column_int(row, 5);
    job.ops = split_lines(column_text(row, 6));
    job.format = column_text(row, 7);
    job.name = column_text(row, 8);
    job.path = column_text(row, 9);
    job.output = column_text(row, 10);
    job.timeout_ms = sqlite3_column_int64(row, 11);
    job.submitted = sqlite3_column_double(row, 12);
    job.attempts = sqlite3_column_int(row, 13);
    const bool image_file = sqlite3_column_int(row, 14) != 0;
    job.image_bytes = static_cast<uint64_t>(sqlite3_column_int64(row, 15));
    job.state = column_text(row, 16);
    job.code = sqlite3_column_int(row, 17);
    job.message = column_text(row, 18);
    job.stats = unpack_stats(sqlite3_column_blob(row, 19), sqlite3_column_bytes(row, 19));
    job.finished = sqlite3_column_double(row, 20);
    const bool result_file = sqlite3_column_int(row, 21) != 0;
    job.result_bytes = static_cast<uint64_t>(sqlite3_column_int64(row, 22));
    job.gone = column_text(row, 23);
    job.gone_at = sqlite3_column_double(row, 24);
    if (job.id.size() != 16) {
      recovered->problems.push_back("row " + std::to_string(seq) + " has no valid job id; left out");
      continue;
    }
    if (image_file) payloads.insert(job.id + ".image");
    if (result_file) payloads.insert(job.id + ".result");
    recovered->jobs.push_back(std::move(job));
  }
  sqlite3_finalize(row);
  // Payloads no committed row refers to were written by a round that never
  // committed: nobody was told about them.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ / "payloads", ec)) {
    if (payloads.count(entry.path().filename().string()) == 0) {
      fs::remove(entry.path(), ec);
      ++recovered->orphan_files;
    }
  }
  return Status::Ok();
}

Status SqliteJournal::begin() {
  if (in_transaction_) return Status::Ok();
  if (sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) return sql_error("cannot begin");
  in_transaction_ = true;
  staged_error_ = Status::Ok();
  return Status::Ok();
}

void SqliteJournal::run_staged(sqlite3_stmt* stmt) {
  const int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE && staged_error_.ok()) staged_error_ = sql_error("cannot stage a change");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

Status SqliteJournal::write_payload(const std::string& file, const SharedBytes& bytes) {
  const fs::path path = payload_path(file);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return write_error("cannot create " + path.string(), errno);
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
      return write_error("cannot write " + path.string(), error);
    }
    written += static_cast<size_t>(n);
  }
  unsynced_.emplace_back(fd, file);
  return Status::Ok();
}

Status SqliteJournal::add(const StoredJob& job, const SharedBytes& image) {
  IMGQ_RETURN_IF_ERROR(begin());
  const bool in_file = image.size() > kInlineBytes;
  if (in_file) IMGQ_RETURN_IF_ERROR(write_payload(job.id + ".image", image));
  // (A failed insert below leaves the file to the commit's rollback, or to
  // the next open as an orphan.)
  sqlite3_stmt* s = stmts_[kInsert];
  bind_text(s, 1, job.id);
  bind_text(s, 2, job.line);
  bind_text(s, 3, job.owner);
  bind_text(s, 4, job.key);
  bind_text(s, 5, job.digest);
  sqlite3_bind_int(s, 6, job.priority);
  bind_text(s, 7, join_lines(job.ops));
  bind_text(s, 8, job.format);
  bind_text(s, 9, job.name);
  bind_text(s, 10, job.path);
  bind_text(s, 11, job.output);
  sqlite3_bind_int64(s, 12, job.timeout_ms);
  sqlite3_bind_double(s, 13, job.submitted);
  sqlite3_bind_int(s, 14, job.attempts);
  if (in_file) {
    sqlite3_bind_null(s, 15);
  } else {
    bind_blob(s, 15, image.view());
  }
  sqlite3_bind_int(s, 16, in_file ? 1 : 0);
  sqlite3_bind_int64(s, 17, static_cast<int64_t>(image.size()));
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return sql_error("cannot store job " + job.id);
  return Status::Ok();
}

void SqliteJournal::dispatched(const std::string& id, int attempts) {
  if (!begin().ok()) return;
  sqlite3_stmt* s = stmts_[kDispatched];
  sqlite3_bind_int(s, 1, attempts);
  bind_text(s, 2, id);
  run_staged(s);
}

void SqliteJournal::finish(const StoredJob& job, const SharedBytes& result) {
  if (!begin().ok()) return;
  const bool in_file = result.size() > kInlineBytes;
  if (in_file) {
    Status written = write_payload(job.id + ".result", result);
    if (!written.ok() && staged_error_.ok()) staged_error_ = written;
  }
  sqlite3_stmt* s = stmts_[kFinish];
  bind_text(s, 1, job.state);
  sqlite3_bind_int(s, 2, job.code);
  bind_text(s, 3, job.message);
  bind_blob(s, 4, pack_stats(job.stats));
  sqlite3_bind_double(s, 5, job.finished);
  if (in_file || result.empty()) {
    sqlite3_bind_null(s, 6);
  } else {
    bind_blob(s, 6, result.view());
  }
  sqlite3_bind_int(s, 7, in_file ? 1 : 0);
  sqlite3_bind_int64(s, 8, static_cast<int64_t>(result.size()));
  sqlite3_bind_int(s, 9, job.attempts);
  bind_text(s, 10, job.gone);
  sqlite3_bind_double(s, 11, job.gone_at);
  bind_text(s, 12, job.id);
  run_staged(s);
  unlink_after_commit_.push_back(job.id + ".image");
}

void SqliteJournal::drop_result(const std::string& id, const std::string& gone, double gone_at) {
  if (!begin().ok()) return;
  sqlite3_stmt* s = stmts_[kDropResult];
  bind_text(s, 1, gone);
  sqlite3_bind_double(s, 2, gone_at);
  bind_text(s, 3, id);
  run_staged(s);
  unlink_after_commit_.push_back(id + ".result");
}

void SqliteJournal::forget(const std::string& id) {
  if (!begin().ok()) return;
  sqlite3_stmt* s = stmts_[kForget];
  bind_text(s, 1, id);
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
    if (status.ok() && ::fsync(fd) != 0) status = write_error("cannot sync " + payload_path(name).string(), errno);
    ::close(fd);
    ++syncs_;
  }
  if (status.ok() && !unsynced_.empty()) status = fsync_path(dir_ / "payloads", O_RDONLY | O_DIRECTORY);
  if (status.ok() && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = sql_error("cannot commit");
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
  if (!status.ok()) return status;
  if (log_fd_ < 0) IMGQ_RETURN_IF_ERROR(open_log());
  const uint64_t ticket = ++committed_;
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requested_ = ticket;
    }
    cv_.notify_all();
  } else {
    if (::fdatasync(log_fd_) != 0) {
      const Status failed = write_error("cannot sync " + (dir_ / "journal.db-wal").string(), errno);
      std::lock_guard<std::mutex> lock(mutex_);
      sync_error_ = failed;
      return failed;
    }
    ++syncs_;
    std::lock_guard<std::mutex> lock(mutex_);
    synced_ = ticket;
  }
  // Files the committed rows no longer name go once those rows are durable
  // (before, a crash would bring back rows that still name them).
  if (!unlink.empty()) unlink_when_synced_.emplace_back(ticket, std::move(unlink));
  (void)synced();
  return ticket;
}

Status SqliteJournal::open_log() {
  const fs::path log = dir_ / "journal.db-wal";
  log_fd_ = ::open(log.c_str(), O_RDWR | O_CLOEXEC);
  if (log_fd_ < 0) return Status::Unavailable("cannot open " + log.string() + ": " + errno_text(errno));
  // The log's own name must survive a crash too.
  return fsync_path(dir_, O_RDONLY | O_DIRECTORY);
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
        status = write_error("cannot write " + path.string(), n < 0 ? errno : ENOSPC);
        break;
      }
      written += static_cast<size_t>(n);
    }
    if (status.ok() && ::fsync(w.fd) != 0) status = write_error("cannot sync " + path.string(), errno);
    ::close(w.fd);
    ++syncs_;
    w.bytes.reset();
    lock.lock();
    // The last of a batch: its folder too, so the new names last.
    if (to_write_.empty() && status.ok()) {
      lock.unlock();
      status = fsync_path(dir_ / "payloads", O_RDONLY | O_DIRECTORY);
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
    cv_.wait(lock, [&] { return stop_ || requested_ > synced_; });
    if (requested_ <= synced_) return;  // stopping, nothing left to sync
    // Everything committed up to `target` is in the log's file: one
    // fdatasync makes all of it durable, however many commits that is.
    const uint64_t target = requested_;
    const int fd = log_fd_;
    lock.unlock();
    const int rc = ::fdatasync(fd);
    const int error = errno;
    ++syncs_;
    lock.lock();
    if (rc != 0) {
      sync_error_ = write_error("cannot sync " + (dir_ / "journal.db-wal").string(), error);
    } else {
      synced_ = target;
    }
    const uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
    cv_.notify_all();
    if (rc != 0) return;
  }
}

Result<std::string> SqliteJournal::read_payload(const std::string& id, const char* what, Stmt which) {
  sqlite3_stmt* s = stmts_[which];
  bind_text(s, 1, id);
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? Status::NotFound(std::string("the journal holds no ") + what + " for job " + id)
                             : sql_error(std::string("cannot read the ") + what + " of job " + id);
  }
  const bool in_file = sqlite3_column_int(s, 1) != 0;
  const uint64_t bytes = static_cast<uint64_t>(sqlite3_column_int64(s, 2));
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
  if (data.size() != bytes) {
    return Status::Internal(std::string("the journal's copy of the ") + what + " of job " + id + " is damaged (" +
                            std::to_string(data.size()) + " of " + std::to_string(bytes) + " bytes)");
  }
  return data;
}

Result<std::string> SqliteJournal::image(const std::string& id) { return read_payload(id, "image", kImage); }
Result<std::string> SqliteJournal::result(const std::string& id) { return read_payload(id, "result", kResult); }

}  // namespace imgq::broker
