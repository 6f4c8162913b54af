// Structured logging: one JSON object per line on stderr, safe to call from any thread.
#ifndef VCH_BASE_JSON_LOG_H_
#define VCH_BASE_JSON_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

#include "absl/strings/string_view.h"

namespace vch {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// A log field value: strings are JSON-escaped, numbers and booleans written bare.
using LogValue = std::variant<absl::string_view, int64_t, bool>;
struct LogField {
  absl::string_view key;
  LogValue value;
  LogField(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(absl::string_view(v)) {}
  LogField(absl::string_view k, const char* v) : key(k), value(absl::string_view(v)) {}
  LogField(absl::string_view k, int64_t v) : key(k), value(v) {}
  LogField(absl::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(absl::string_view k, bool v) : key(k), value(v) {}
};

// Lines below this level are dropped. Default kInfo.
void SetMinLogLevel(LogLevel level);
bool ParseLogLevel(absl::string_view name, LogLevel* level);

// Writes {"ts":"<RFC 3339 UTC>","level":"info","msg":"...",<fields>} and a newline in one write.
void Log(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields = {});

// Appends `text` to `out` as a JSON string literal (with quotes).
void AppendJsonString(std::string* out, absl::string_view text);

}  // namespace vch

#endif  // VCH_BASE_JSON_LOG_H_
