#include "imgq/common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <string>

namespace imgq {
namespace {

// The fields of the event being logged on this thread (log_event), read by
// the JSON formatter during the same call.
thread_local const LogField* t_fields = nullptr;
thread_local size_t t_field_count = 0;

void append_json_string(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': dest.append(std::string_view("\\\"")); break;
      case '\\': dest.append(std::string_view("\\\\")); break;
      case '\n': dest.append(std::string_view("\\n")); break;
      case '\r': dest.append(std::string_view("\\r")); break;
      case '\t': dest.append(std::string_view("\\t")); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          dest.append(std::string_view(buf));
        } else {
          dest.push_back(static_cast<char>(c));
        }
    }
  }
  dest.push_back('"');
}

// {"time":"2026-12-03T09:10:55.894Z","level":"info","component":"broker","message":"...","fields":{...}}
class JsonFormatter : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string component) : component_(std::move(component)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since = msg.time.time_since_epoch();
    const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since).count();
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
    dest.append(std::string_view("{\"time\":\""));
    dest.append(std::string_view(stamp));
    dest.append(std::string_view("\",\"level\":"));
    const auto level = spdlog::level::to_string_view(msg.level);
    append_json_string(dest, std::string_view(level.data(), level.size()));
    dest.append(std::string_view(",\"component\":"));
    append_json_string(dest, component_);
    dest.append(std::string_view(",\"message\":"));
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    if (t_field_count != 0) {
      dest.append(std::string_view(",\"fields\":{"));
      bool first = true;
      for (const LogField* f = t_fields; f != t_fields + t_field_count; ++f) {
        if (!first) dest.push_back(',');
        first = false;
        append_json_string(dest, f->key);
        dest.push_back(':');
        if (f->quoted) {
          append_json_string(dest, f->value);
        } else {
          dest.append(std::string_view(f->value));
        }
      }
      dest.push_back('}');
    }
    dest.append(std::string_view("}\n"));
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(component_); }

 private:
  std::string component_;
};

}  // namespace

void init_logging(std::string_view role, std::string_view level, std::string_view format) {
  auto logger = spdlog::stderr_color_mt(std::string(role));
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>(std::string(role)));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  }
  spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
}

void log_event(spdlog::level::level_enum level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!spdlog::default_logger_raw()->should_log(level)) return;
  t_fields = fields.begin();
  t_field_count = fields.size();
  spdlog::log(level, "{}", message);
  t_fields = nullptr;
  t_field_count = 0;
}

}  // namespace imgq
