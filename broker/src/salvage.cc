// imgq-broker --salvage: see salvage.h.
#include "imgq/broker/salvage.h"

#include <sqlite3.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>

#include "imgq/broker/job_codec.h"
#include "imgq/common/checksum.h"
#include "imgq/common/file_io.h"

namespace imgq::broker {
namespace {

namespace fs = std::filesystem;

constexpr size_t kHeaderBytes = 100;  // SQLite's database header
constexpr size_t kPageBytes = 4096;   // SQLite's default page size; the journal never sets another

// The copy's header rebuilt from a new database of the same layout (page
// size, WAL, incremental vacuum), with the copy's own page count.
Status repair_header(const fs::path& copy, const fs::path& scratch) {
  fs::remove(scratch);
  sqlite3* fresh = nullptr;
  if (sqlite3_open(scratch.c_str(), &fresh) != SQLITE_OK) return Status::Internal("cannot create " + scratch.string());
  const char* layout =
      "PRAGMA page_size=4096; PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL; "
      "CREATE TABLE t (x); PRAGMA wal_checkpoint(TRUNCATE)";
  const int rc = sqlite3_exec(fresh, layout, nullptr, nullptr, nullptr);
  sqlite3_close(fresh);
  if (rc != SQLITE_OK) return Status::Internal("cannot create " + scratch.string());
  auto header = read_file_string(scratch);
  if (!header.ok() || header->size() < kHeaderBytes) return Status::Internal("cannot read " + scratch.string());
  std::error_code ec;
  const uintmax_t size = fs::file_size(copy, ec);
  if (ec || size < kPageBytes || size % kPageBytes != 0) {
    return Status::IoError(copy.string() + " is not a whole number of 4 KiB pages; its header cannot be rebuilt");
  }
  std::string bytes = header->substr(0, kHeaderBytes);
  const uint32_t pages = static_cast<uint32_t>(size / kPageBytes);
  for (int i = 0; i < 4; ++i) bytes[28 + static_cast<size_t>(i)] = static_cast<char>(pages >> (8 * (3 - i)));
  for (size_t at : {32, 36}) bytes.replace(at, 4, 4, '\0');  // no free list: it is not needed to read
  std::fstream file(copy, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(0);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return file ? Status::Ok() : Status::IoError("cannot write " + copy.string());
}

int64_t count_rows(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    n = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return n;
}

// A stored image or result of job `id`: from the row, or from a file in
// FROM; checked against its size and checksum. Nothing when missing or damaged.
class PayloadReader {
 public:
  explicit PayloadReader(fs::path from) : from_(std::move(from)) {}

  std::optional<std::string> read(const std::string& id, const char* what, sqlite3_stmt* row, int blob, int in_file,
                                  uint64_t bytes, const std::optional<uint32_t>& crc, std::string* why) {
    std::string data;
    if (sqlite3_column_int(row, in_file) != 0) {
      const std::string name = id + "." + what;
      std::optional<std::string> found;
      for (const fs::path& path : {from_ / "payloads" / name, from_ / name}) {
        if (auto file = read_file_string(path); file.ok()) {
          found = std::move(*file);
          named_.insert(fs::weakly_canonical(path).string());
          break;
        }
      }
      if (!found) {
        *why = std::string("its ") + what + " file is missing";
        return std::nullopt;
      }
      data = std::move(*found);
    } else {
      const void* b = sqlite3_column_blob(row, blob);
      data.assign(static_cast<const char*>(b), b == nullptr ? 0 : static_cast<size_t>(sqlite3_column_bytes(row, blob)));
    }
    if (data.size() != bytes) {
      *why = std::string("its ") + what + " has " + std::to_string(data.size()) + " of " + std::to_string(bytes) + " bytes";
      return std::nullopt;
    }
    if (crc && crc32_of(data) != *crc) {
      *why = std::string("its ") + what + " does not match its checksum";
      return std::nullopt;
    }
    return data;
  }
  // Payload files in FROM that no row read named.
  size_t unnamed() const {
    size_t n = 0;
    std::error_code ec;
    for (const fs::path& folder : {from_ / "payloads", from_}) {
      for (const auto& entry : fs::directory_iterator(folder, ec)) {
        const std::string ext = entry.path().extension().string();
        if ((ext == ".image" || ext == ".result") && named_.count(fs::weakly_canonical(entry.path()).string()) == 0) ++n;
      }
    }
    return n;
  }

 private:
  fs::path from_;
  std::set<std::string> named_;
};

}  // namespace

Result<SalvageReport> salvage(const fs::path& from, SqliteJournal& into, const std::vector<JobRecord>& present) {
  SalvageReport report;
  const fs::path work = into.dir() / ("salvage-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work, ec);
  if (ec) return Status::Unavailable("cannot create " + work.string() + ": " + ec.message());
  if (!fs::exists(from / "journal.db")) return Status::NotFound(from.string() + " holds no journal.db to salvage");
  for (const char* file : {"journal.db", "journal.db-wal"}) {
    if (fs::exists(from / file)) fs::copy_file(from / file, work / file, ec);
    if (ec) return Status::Unavailable("cannot copy " + (from / file).string() + ": " + ec.message());
  }
  sqlite3* db = nullptr;
  auto open_copy = [&] {
    sqlite3_close(db);
    db = nullptr;
    sqlite3_open_v2((work / "journal.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    return count_rows(db);
  };
  if (open_copy() < 0) {
    report.problems.push_back(std::string("the database cannot be opened as it is (") + sqlite3_errmsg(db) +
                              "); its header rebuilt");
    sqlite3_close(db);
    db = nullptr;
    IMGQ_RETURN_IF_ERROR(repair_header(work / "journal.db", work / "header.db"));
    report.header_repaired = true;
    if (open_copy() < 0) {
      const std::string why = sqlite3_errmsg(db);
      sqlite3_close(db);
      fs::remove_all(work, ec);
      return Status::IoError("the database in " + from.string() + " cannot be read, even with a new header: " + why);
    }
  }

  std::set<std::string> known;
  for (const JobRecord& job : present) known.insert(job.id);
  std::vector<int64_t> seqs;
  {
    sqlite3_stmt* list = nullptr;
    sqlite3_prepare_v2(db, "SELECT seq FROM jobs ORDER BY seq", -1, &list, nullptr);
    int rc;
    while ((rc = sqlite3_step(list)) == SQLITE_ROW) seqs.push_back(sqlite3_column_int64(list, 0));
    if (rc != SQLITE_DONE) report.problems.push_back(std::string("the list of rows ends early: ") + sqlite3_errmsg(db));
    sqlite3_finalize(list);
  }
  const int columns = static_cast<int>(record_columns().size());
  const std::string select = "SELECT " + record_column_list() +
                             ", image, image_file, result, result_file FROM jobs WHERE seq = :seq";
  sqlite3_stmt* row = nullptr;
  if (sqlite3_prepare_v2(db, select.c_str(), -1, &row, nullptr) != SQLITE_OK) {
    const Status failed = Status::IoError(std::string("cannot read the rows: ") + sqlite3_errmsg(db));
    sqlite3_close(db);
    fs::remove_all(work, ec);
    return failed;
  }
  PayloadReader payloads(from);
  for (int64_t seq : seqs) {
    sqlite3_reset(row);
    sqlite3_bind_int64(row, 1, seq);
    Result<JobRecord> record = sqlite3_step(row) == SQLITE_ROW ? read_record(row)
                                                               : Status::IoError(sqlite3_errmsg(db));
    if (!record.ok() || record->id.size() != 16) {
      ++report.unreadable;
      report.problems.push_back("row " + std::to_string(seq) + " cannot be read: " +
                                (record.ok() ? std::string("no job id") : record.status().message()));
      continue;
    }
    ++report.rows;
    JobRecord job = std::move(record).value();
    if (known.count(job.id) != 0) {
      ++report.present;
      continue;
    }
    std::string why;
    if (!finished_state(job.state)) {
      std::optional<std::string> image;
      if (job.path.empty()) {
        image = payloads.read(job.id, "image", row, columns, columns + 1, job.image_bytes, job.image_crc, &why);
        if (!image) {
          report.lost.push_back(job.id + ": " + why);
          continue;
        }
      }
      job.state = JobState::kQueued;  // it ran when the broker stopped: it runs again
      IMGQ_RETURN_IF_ERROR(into.add(job, image ? SharedBytes(std::move(*image)) : SharedBytes()));
      ++report.queued;
      continue;
    }
    SharedBytes result;
    if (job.state == JobState::kDone && job.gone == Gone::kNo && job.path.empty() && job.result_bytes > 0) {
      auto bytes = payloads.read(job.id, "result", row, columns + 2, columns + 3, job.result_bytes, job.result_crc, &why);
      if (!bytes) {
        report.lost.push_back(job.id + ": " + why);
        continue;
      }
      result = SharedBytes(std::move(*bytes));
      ++report.results;
    } else {
      ++report.ended;
    }
    IMGQ_RETURN_IF_ERROR(into.add(job, SharedBytes()));
    into.finish(job, result);
  }
  sqlite3_finalize(row);
  sqlite3_close(db);
  fs::remove_all(work, ec);
  report.unnamed_files = payloads.unnamed();
  auto ticket = into.commit();
  if (!ticket.ok()) return ticket.status();
  IMGQ_RETURN_IF_ERROR(into.wait_synced(*ticket));
  return report;
}

std::string SalvageReport::text(const fs::path& from, const fs::path& into) const {
  std::ostringstream out;
  out << "salvaged " << from.string() << " into " << into.string() << (header_repaired ? " (its header rebuilt)" : "")
      << ": " << rows << " row(s) read; " << queued << " job(s) queued again, " << results
      << " result(s) to deliver, " << ended << " finished job(s) kept for their keys";
  if (present > 0) out << "; " << present << " already there";
  out << "\n";
  for (const std::string& p : problems) out << "  " << p << "\n";
  if (!lost.empty()) {
    out << lost.size() << " job(s) could not be taken back:\n";
    for (size_t i = 0; i < lost.size() && i < 20; ++i) out << "  " << lost[i] << "\n";
    if (lost.size() > 20) out << "  ... and " << lost.size() - 20 << " more\n";
  }
  if (unreadable > 0) out << unreadable << " row(s) could not be read at all (their jobs' ids are unknown)\n";
  if (unnamed_files > 0) {
    out << unnamed_files << " payload file(s) in " << from.string()
        << " belong to no row that could be read (left there; without their rows their requests are unknown)\n";
  }
  return out.str();
}

}  // namespace imgq::broker
