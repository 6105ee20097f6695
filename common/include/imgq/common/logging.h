// Logging setup shared by every imgq executable: spdlog to stderr, with the
// process role (and MPI rank, where there is one) in each line, so that the
// interleaved output of an mpiexec job stays readable. As text, or as JSON
// (one object a line: time, level, component, message and, for the events
// operators act on, fields) for a log pipeline.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <spdlog/common.h>

namespace imgq {

// Configures the default spdlog logger. `level` is one of trace, debug, info,
// warn, error, off (cli::log_levels(); an unknown name keeps "info");
// `format` "text" or "json".
void init_logging(std::string_view role, std::string_view level = "info", std::string_view format = "text");

// One field of an event: its value as text, and whether JSON should quote it
// (false for numbers and booleans).
struct LogField {
  std::string_view key;
  std::string value;
  bool quoted = true;
};
inline LogField field(std::string_view key, std::string value) { return {key, std::move(value), true}; }
inline LogField field(std::string_view key, long long value) { return {key, std::to_string(value), false}; }

// Logs `message` (which says the facts to a person) with the same facts as
// fields for machines: under --log-format json they are the object's
// "fields"; as text only the message is written.
void log_event(spdlog::level::level_enum level, std::string_view message, std::initializer_list<LogField> fields);

}  // namespace imgq
