// PostgreSQL array literals for passing many rows as a few parameters (libpqxx 6 has no array
// parameters): `INSERT ... SELECT * FROM unnest($1::bigint[], $2::text[])`.
#ifndef VCH_STORAGE_SQL_ARRAYS_H_
#define VCH_STORAGE_SQL_ARRAYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vch::storage {

std::string BigintArray(const std::vector<int64_t>& values);
std::string NullableBigintArray(const std::vector<std::optional<int64_t>>& values);
std::string BoolArray(const std::vector<bool>& values);
// Every element double-quoted with backslash escapes, so any text round-trips.
std::string TextArray(const std::vector<std::string>& values);

// `sql` with each placeholder $1, $2, ... replaced by values[0], values[1], ... verbatim, in one
// pass (a value that contains "$2" stays as it is): for statements sent together in one round
// trip through pqxx::pipeline, which takes plain statements only. The caller quotes every value
// that needs it (pqxx's tx.quote). `sql` must not use '$' otherwise (no dollar quoting).
// Throws std::out_of_range for a placeholder without a value.
std::string InlineParams(std::string_view sql, const std::vector<std::string>& values);

// "EXECUTE name(v1, ...)": a statement prepared on the connection (PgPool::RegisterPrepared)
// run by name with values the caller quoted, for a pqxx::pipeline; no parsing or planning of
// the statement itself on the server (its plan is cached on the connection).
std::string ExecutePrepared(std::string_view name, const std::vector<std::string>& values);

}  // namespace vch::storage

#endif  // VCH_STORAGE_SQL_ARRAYS_H_
