// `imgq-broker --salvage FROM`: takes back what can be read from a journal
// that the broker moved aside (DIR/damaged-TIME: its database, log, mark and
// payload files) or that was copied off a failing disk, into the journal of
// --data-dir (no broker may be running on it).
//
// FROM is never written: its database and log are copied first. A database
// whose first page header is damaged (the 100 bytes SQLite needs to open
// it) gets a fresh header of the same layout, so its rows can be read.
// Each row that can be read is taken back as it was, checked as a broker
// checks what it reads: a job that had not finished needs its image (in the
// row, or FROM/payloads/ID.image, or FROM/ID.image as in a quarantine
// folder) at its stored size and CRC-32, and is queued again; a finished
// one with a result to deliver needs its result likewise; other finished
// jobs and tombstones are taken back for their keys and status. What cannot
// be taken back is reported by id and reason. Not thread-safe.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "imgq/broker/sqlite_journal.h"
#include "imgq/common/status.h"

namespace imgq::broker {

struct SalvageReport {
  bool header_repaired = false;  // the database's header was rebuilt to read it
  size_t rows = 0;               // rows read
  size_t unreadable = 0;         // rows that could not be read (by number)
  size_t queued = 0;             // unfinished jobs queued again
  size_t results = 0;            // results to deliver, taken back
  size_t ended = 0;              // other finished jobs and tombstones (for their keys)
  size_t present = 0;            // already in the journal: left as they are there
  std::vector<std::string> lost;  // "ID: why", for jobs that could not be taken back
  size_t unnamed_files = 0;       // payload files in FROM that no readable row names
  std::vector<std::string> problems;  // rows unreadable, SQLite's complaints

  // A few lines for a person: what came back, what did not, and why.
  std::string text(const std::filesystem::path& from, const std::filesystem::path& into) const;
};

// `present`: the jobs `into` already holds (open()'s Recovered::jobs).
Result<SalvageReport> salvage(const std::filesystem::path& from, SqliteJournal& into,
                              const std::vector<JobRecord>& present);

}  // namespace imgq::broker
