#include "storage/sql_arrays.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace vch::storage {

std::string BigintArray(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, values[i]);
  }
  out.push_back('}');
  return out;
}

std::string NullableBigintArray(const std::vector<std::optional<int64_t>>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    if (values[i]) {
      absl::StrAppend(&out, *values[i]);
    } else {
      out.append("NULL");
    }
  }
  out.push_back('}');
  return out;
}

std::string BoolArray(const std::vector<bool>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back(values[i] ? 't' : 'f');
  }
  out.push_back('}');
  return out;
}

std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

std::string InlineParams(std::string_view sql, const std::vector<std::string>& values) {
  std::string out;
  out.reserve(sql.size() + 64 * values.size());
  for (size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] != '$' || i + 1 >= sql.size() || sql[i + 1] < '0' || sql[i + 1] > '9') {
      out.push_back(sql[i]);
      continue;
    }
    size_t n = 0;
    while (i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
      n = n * 10 + static_cast<size_t>(sql[i + 1] - '0');
      ++i;
    }
    out.append(values.at(n - 1));
  }
  return out;
}

std::string ExecutePrepared(std::string_view name, const std::vector<std::string>& values) {
  std::string out = absl::StrCat("EXECUTE ", std::string(name));
  if (!values.empty()) absl::StrAppend(&out, "(", absl::StrJoin(values, ", "), ")");
  return out;
}

}  // namespace vch::storage
