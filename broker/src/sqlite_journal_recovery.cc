// The SQLite journal's start: what it checks before the broker trusts it,
// and what it does with what does not add up (see sqlite_journal.h).
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>

#include "imgq/broker/sqlite_journal.h"

#include "journal_files.h"

namespace imgq::broker {
namespace {

namespace fs = std::filesystem;

// 20261203T190425Z: sorts by time, and says when to a person.
std::string utc_stamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

}  // namespace

void SqliteJournal::check_payload(const std::string& id, const char* what, uint64_t bytes,
                                  Recovered* recovered) const {
  const fs::path path = payload_path(id + "." + what);
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size == bytes) return;
  ++recovered->missing_payloads;
  recovered->problems.push_back(
      "job " + id + ": its stored " + what + " " + path.string() +
      (ec ? " is missing" : " has " + std::to_string(size) + " of its " + std::to_string(bytes) + " bytes") +
      (std::string(what) == "image" ? "; the job fails when dispatched" : "; the result is never delivered"));
}

Status SqliteJournal::check(Recovered* recovered) {
  // SQLite's own check of its pages and indexes (quick_check: O(size), no
  // index contents against their tables).
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA quick_check(10)", -1, &stmt, nullptr) != SQLITE_OK) {
    return sql_error("cannot check the journal");
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const char* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    if (text != nullptr && std::string(text) != "ok") recovered->problems.push_back("SQLite's check: " + std::string(text));
  }
  sqlite3_finalize(stmt);

  // The counters as the journal has them now, against the mark left by the
  // last sync: fewer commits here than synced then is a log that lost them.
  mark_.commits = static_cast<uint64_t>(std::max<int64_t>(0, query_int("SELECT commits FROM meta WHERE id = 1")));
  mark_.jobs = static_cast<uint64_t>(std::max<int64_t>(0, query_int("SELECT jobs FROM meta WHERE id = 1")));
  JournalMark synced;
  std::string bytes(kMarkBytes, '\0');
  const int fd = ::open((dir_ / "journal.mark").c_str(), O_RDONLY | O_CLOEXEC);
  const bool have_mark = fd >= 0 && ::pread(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()) &&
                         decode_mark(bytes, &synced);
  if (fd >= 0) ::close(fd);
  if (have_mark && synced.commits > mark_.commits) {
    recovered->lost_commits = synced.commits - mark_.commits;
    recovered->lost_jobs = synced.jobs > mark_.jobs ? synced.jobs - mark_.jobs : 0;
    recovered->problems.push_back(
        "the journal lost its last " + std::to_string(recovered->lost_commits) +
        " commit(s), which were on disk before (journal.mark: " + std::to_string(synced.commits) +
        " commits, the journal has " + std::to_string(mark_.commits) + "); " + std::to_string(recovered->lost_jobs) +
        " job(s) accepted in them are gone, their ids unknown (their clients get 'unknown job'; imgq submit "
        "resubmits its unfinished ones when it sees the broker restart), and jobs they finished or acknowledged "
        "are back as they were before: journal.db-wal was cut, damaged or replaced");
  }
  return Status::Ok();
}

void SqliteJournal::settle_orphans(Recovered* recovered) {
  std::error_code ec;
  if (recovered->problems.empty()) {
    // Intact: written by a round that never committed, named by no one.
    for (const fs::path& file : recovered->orphans) {
      if (fs::remove(file, ec)) ++recovered->orphan_files;
    }
    return;
  }
  if (recovered->orphans.empty()) return;
  // Not known to be intact: their rows may be what was lost. Kept aside,
  // for --salvage and for people.
  recovered->quarantine = dir_ / ("quarantine-" + utc_stamp());
  fs::create_directories(recovered->quarantine, ec);
  for (const fs::path& file : recovered->orphans) {
    fs::rename(file, recovered->quarantine / file.filename(), ec);
    if (!ec) ++recovered->quarantined_files;
  }
}

Status SqliteJournal::move_aside(const Status& why, Recovered* recovered) {
  for (sqlite3_stmt*& stmt : stmts_) sqlite3_finalize(stmt), stmt = nullptr;
  sqlite3_close(db_);
  db_ = nullptr;
  const fs::path aside = dir_ / ("damaged-" + utc_stamp());
  std::error_code ec;
  fs::create_directories(aside, ec);
  if (ec) return Status::Unavailable("cannot create " + aside.string() + ": " + ec.message());
  // The database with its log and mark, and the payloads: everything a
  // salvage needs, together.
  for (const char* file : {"journal.db", "journal.db-wal", "journal.db-shm", "journal.mark", "payloads"}) {
    fs::rename(dir_ / file, aside / file, ec);
  }
  fs::create_directories(dir_ / "payloads", ec);
  if (ec) return Status::Unavailable("cannot create " + (dir_ / "payloads").string() + ": " + ec.message());
  *recovered = {};
  recovered->moved_aside = aside;
  recovered->problems.push_back(why.message() + "; moved it, its log and its payload files to " + aside.string() +
                                " and started an empty journal (imgq-broker --salvage " + aside.string() +
                                " takes back what can be read)");
  IMGQ_RETURN_IF_ERROR(open_database());
  IMGQ_RETURN_IF_ERROR(load(recovered));
  mark_ = {};
  return Status::Ok();
}

Status SqliteJournal::open_mark() {
  mark_fd_ = ::open((dir_ / "journal.mark").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (mark_fd_ < 0) return errno_failed(DiskOp::kWrite, "cannot open " + (dir_ / "journal.mark").string(), errno);
  // From now on it marks this journal: a loss is reported once.
  write_mark(mark_);
  return Status::Ok();
}

}  // namespace imgq::broker
