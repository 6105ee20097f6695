// Between a JobRecord and its row in the journal's `jobs` table: every field
// is a named column (its SQL type and default written once, here), bound to a
// statement's named parameter `:column` and read from a SELECT by name, so no
// column number is written anywhere by hand. The journal's own columns (the
// image and result bytes, where they live) are bound by the journal.
//
// The on-disk format is that of every earlier journal, both ways: the same
// table and columns, plus `running` (whether an unfinished job was running),
// which a journal of an earlier broker gets when it is opened (ALTER TABLE
// ... ADD COLUMN, NULL in its rows) and an earlier broker ignores. `state`
// holds a finished job's state and '' while it is unfinished, as it always
// has (an earlier broker reads any other name as finished). A row with
// `running` NULL was written before it: such a job ran when it had been
// dispatched (attempts > 0), else it waited.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "imgq/broker/job_record.h"
#include "imgq/common/status.h"

struct sqlite3_stmt;

namespace imgq::broker {

struct ColumnSpec {
  std::string name;
  std::string sql;       // type and constraint, e.g. "TEXT NOT NULL DEFAULT ''"
  bool outcome = false;  // set when the job finishes; a new row takes the default
};
// The record's columns, in table order.
const std::vector<ColumnSpec>& record_columns();
// "id, line, owner, ..." (for a SELECT).
std::string record_column_list();

// The record columns a prepared statement names as parameters (`:NAME`),
// found once: binding a record then costs no name lookups (a tiny job binds
// one twice).
class RecordBinder {
 public:
  RecordBinder() = default;
  explicit RecordBinder(sqlite3_stmt* stmt);
  // Binds every parameter of `stmt` (the statement given at construction)
  // that names a record column; other parameters are left to the caller.
  void bind(sqlite3_stmt* stmt, const JobRecord& record) const;

 private:
  std::vector<std::pair<size_t, int>> params_;  // (the codec's column, the parameter's index)
};

// The record in the current row of `stmt`, a SELECT of (at least) the
// record's columns, found by their names. InvalidArgument when a field does
// not read (a damaged row).
Result<JobRecord> read_record(sqlite3_stmt* stmt);

}  // namespace imgq::broker
