#include "imgq/broker/job_codec.h"

#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <functional>

#include <msgpack.hpp>

#include "imgq/common/text.h"

namespace imgq::broker {
namespace {

std::string text_of(sqlite3_stmt* s, int i) {
  const unsigned char* text = sqlite3_column_text(s, i);
  return text == nullptr ? std::string()
                         : std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(sqlite3_column_bytes(s, i)));
}

// Text, never NULL (a null pointer would bind NULL, even for "").
void bind_text(sqlite3_stmt* s, int i, std::string_view text) {
  sqlite3_bind_text(s, i, text.empty() ? "" : text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

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

// One field of the record as a column: how it is bound and read. A field
// that does not read returns false.
struct Column {
  ColumnSpec spec;
  std::function<void(sqlite3_stmt*, int, const JobRecord&)> bind;
  std::function<bool(sqlite3_stmt*, int, JobRecord&)> read;
};

template <typename F>
Column text_column(std::string name, F field) {
  return {{name, "TEXT NOT NULL DEFAULT ''"},
          [field](sqlite3_stmt* s, int i, const JobRecord& r) { bind_text(s, i, field(const_cast<JobRecord&>(r))); },
          [field](sqlite3_stmt* s, int i, JobRecord& r) {
            field(r) = text_of(s, i);
            return true;
          }};
}

template <typename T, typename F>
Column integer_column(std::string name, F field) {
  return {{name, "INTEGER NOT NULL DEFAULT 0"},
          [field](sqlite3_stmt* s, int i, const JobRecord& r) {
            sqlite3_bind_int64(s, i, static_cast<int64_t>(field(const_cast<JobRecord&>(r))));
          },
          [field](sqlite3_stmt* s, int i, JobRecord& r) {
            field(r) = static_cast<T>(sqlite3_column_int64(s, i));
            return true;
          }};
}

template <typename F>
Column real_column(std::string name, F field) {
  return {{name, "REAL NOT NULL DEFAULT 0"},
          [field](sqlite3_stmt* s, int i, const JobRecord& r) {
            sqlite3_bind_double(s, i, field(const_cast<JobRecord&>(r)));
          },
          [field](sqlite3_stmt* s, int i, JobRecord& r) {
            field(r) = sqlite3_column_double(s, i);
            return true;
          }};
}

// A checksum: NULL when there is none (rows written before checksums).
template <typename F>
Column checksum_column(std::string name, F field) {
  return {{name, "INTEGER"},
          [field](sqlite3_stmt* s, int i, const JobRecord& r) {
            const std::optional<uint32_t>& crc = field(const_cast<JobRecord&>(r));
            if (crc) {
              sqlite3_bind_int64(s, i, *crc);
            } else {
              sqlite3_bind_null(s, i);
            }
          },
          [field](sqlite3_stmt* s, int i, JobRecord& r) {
            if (sqlite3_column_type(s, i) == SQLITE_NULL) {
              field(r).reset();
              return true;
            }
            const int64_t v = sqlite3_column_int64(s, i);
            if (v < 0 || v > UINT32_MAX) return false;
            field(r) = static_cast<uint32_t>(v);
            return true;
          }};
}

Column outcome(Column column) {
  column.spec.outcome = true;
  return column;
}

// The table: one entry per field, in the table's column order (a table,
// kept whole however long: one line per field is the point).
const std::vector<Column>& columns() {
  static const std::vector<Column> table = {
      text_column("id", [](JobRecord& r) -> std::string& { return r.id; }),
      text_column("line", [](JobRecord& r) -> std::string& { return r.line; }),
      text_column("owner", [](JobRecord& r) -> std::string& { return r.owner; }),
      text_column("key", [](JobRecord& r) -> std::string& { return r.key; }),
      text_column("digest", [](JobRecord& r) -> std::string& { return r.digest; }),
      integer_column<int>("priority", [](JobRecord& r) -> int& { return r.priority; }),
      {{"ops", "TEXT NOT NULL DEFAULT ''"},
       [](sqlite3_stmt* s, int i, const JobRecord& r) { bind_text(s, i, join_lines(r.ops)); },
       [](sqlite3_stmt* s, int i, JobRecord& r) {
         r.ops = split_lines(text_of(s, i));
         return true;
       }},
      text_column("format", [](JobRecord& r) -> std::string& { return r.format; }),
      text_column("name", [](JobRecord& r) -> std::string& { return r.name; }),
      text_column("path", [](JobRecord& r) -> std::string& { return r.path; }),
      text_column("output", [](JobRecord& r) -> std::string& { return r.output; }),
      integer_column<int64_t>("timeout_ms", [](JobRecord& r) -> int64_t& { return r.timeout_ms; }),
      real_column("submitted", [](JobRecord& r) -> double& { return r.submitted; }),
      integer_column<int>("attempts", [](JobRecord& r) -> int& { return r.attempts; }),
      integer_column<uint64_t>("image_bytes", [](JobRecord& r) -> uint64_t& { return r.image_bytes; }),
      checksum_column("image_crc", [](JobRecord& r) -> std::optional<uint32_t>& { return r.image_crc; }),
      // A finished job's state by name; '' while unfinished, as every
      // journal has had it (so an earlier broker reads this one too).
      {{"state", "TEXT NOT NULL DEFAULT ''"},
       [](sqlite3_stmt* s, int i, const JobRecord& r) {
         bind_text(s, i, finished_state(r.state) ? state_name(r.state) : std::string_view());
       },
       [](sqlite3_stmt* s, int i, JobRecord& r) {
         const std::string name = text_of(s, i);
         if (name.empty()) return true;  // unfinished: `running` says which (read_record)
         // (No broker writes an unfinished state's name here; one read is
         // taken as it says rather than losing the job.)
         const auto state = parse_state(name);
         if (state) r.state = *state;
         return state.has_value();
       }},
      // An unfinished job: 1 running, 0 queued. NULL in rows of brokers from
      // before it (read_record decides by attempts).
      {{"running", "INTEGER"},
       [](sqlite3_stmt* s, int i, const JobRecord& r) {
         sqlite3_bind_int(s, i, r.state == JobState::kRunning ? 1 : 0);
       },
       [](sqlite3_stmt* s, int i, JobRecord& r) {
         if (sqlite3_column_type(s, i) != SQLITE_NULL && sqlite3_column_int(s, i) != 0) r.state = JobState::kRunning;
         return true;
       }},
      // The outcome, set when the job finishes: a new row leaves these to
      // their defaults (an insert binds no stats to pack, no outcome).
      outcome(integer_column<int>("code", [](JobRecord& r) -> int& { return r.code; })),
      outcome(text_column("message", [](JobRecord& r) -> std::string& { return r.message; })),
      outcome({{"stats", "BLOB"},
       [](sqlite3_stmt* s, int i, const JobRecord& r) {
         const std::string packed = pack_stats(r.stats);
         sqlite3_bind_blob64(s, i, packed.data(), packed.size(), SQLITE_TRANSIENT);
       },
       [](sqlite3_stmt* s, int i, JobRecord& r) {
         r.stats = unpack_stats(sqlite3_column_blob(s, i), sqlite3_column_bytes(s, i));
         return true;
       }}),
      outcome(real_column("finished", [](JobRecord& r) -> double& { return r.finished; })),
      outcome(integer_column<uint64_t>("result_bytes", [](JobRecord& r) -> uint64_t& { return r.result_bytes; })),
      outcome(checksum_column("result_crc", [](JobRecord& r) -> std::optional<uint32_t>& { return r.result_crc; })),
      outcome({{"gone", "TEXT NOT NULL DEFAULT ''"},
       [](sqlite3_stmt* s, int i, const JobRecord& r) { bind_text(s, i, gone_name(r.gone)); },
       [](sqlite3_stmt* s, int i, JobRecord& r) {
         const std::string name = text_of(s, i);
         r.gone = name == "acknowledged" ? Gone::kAcknowledged : name == "expired" ? Gone::kExpired : Gone::kNo;
         return name.empty() || r.gone != Gone::kNo;
       }}),
      outcome(real_column("gone_at", [](JobRecord& r) -> double& { return r.gone_at; })),
  };
  return table;
}

}  // namespace

const std::vector<ColumnSpec>& record_columns() {
  static const std::vector<ColumnSpec> specs = [] {
    std::vector<ColumnSpec> out;
    for (const Column& c : columns()) out.push_back(c.spec);
    return out;
  }();
  return specs;
}

std::string record_column_list() {
  std::string out;
  for (const Column& c : columns()) out += (out.empty() ? "" : ", ") + c.spec.name;
  return out;
}

RecordBinder::RecordBinder(sqlite3_stmt* stmt) {
  const std::vector<Column>& table = columns();
  for (size_t c = 0; c < table.size(); ++c) {
    const int index = sqlite3_bind_parameter_index(stmt, (":" + table[c].spec.name).c_str());
    if (index > 0) params_.emplace_back(c, index);
  }
}

void RecordBinder::bind(sqlite3_stmt* stmt, const JobRecord& record) const {
  const std::vector<Column>& table = columns();
  for (const auto& [column, index] : params_) table[column].bind(stmt, index, record);
}

Result<JobRecord> read_record(sqlite3_stmt* stmt) {
  JobRecord record;
  bool finished = false, running_known = false;
  const int count = sqlite3_column_count(stmt);
  for (const Column& c : columns()) {
    for (int i = 0; i < count; ++i) {
      if (std::strcmp(sqlite3_column_name(stmt, i), c.spec.name.c_str()) != 0) continue;
      if (c.spec.name == "running") {
        running_known = sqlite3_column_type(stmt, i) != SQLITE_NULL;
        if (finished) break;  // a finished job's state is its name
      }
      if (!c.read(stmt, i, record)) {
        return Status::InvalidArgument("its " + c.spec.name + " reads \"" + text_of(stmt, i) + "\"");
      }
      if (c.spec.name == "state") finished = sqlite3_column_bytes(stmt, i) > 0 && finished_state(record.state);
      break;
    }
  }
  // Written before `running` was stored: a dispatched job (attempts > 0) ran.
  if (!finished && !running_known) record.state = record.attempts > 0 ? JobState::kRunning : JobState::kQueued;
  return record;
}

}  // namespace imgq::broker
