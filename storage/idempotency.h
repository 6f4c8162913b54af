// AIP-155 idempotency for mutating RPCs: the key, the hash of the request, the effect and the
// stored response commit in one transaction.
#ifndef VCH_STORAGE_IDEMPOTENCY_H_
#define VCH_STORAGE_IDEMPOTENCY_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "storage/pg_pool.h"

namespace vch::storage {

struct IdempotencyKey {
  std::string scope;         // the caller's key space, e.g. "ISSUER_ADMIN:shanghai/FundProgram"
  std::string request_id;    // the client's key, 1..128 characters
  std::string request_hash;  // SHA-256 of the request without its request_id
};

// Runs `body` once per key: the first time, in a transaction that also stores the response
// bytes `body` returns; later with the same hash, the stored bytes without running `body`;
// with a different hash, ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED. A failed `body` stores
// nothing, so the key may be used again. Concurrent callers with one key serialize on it.
absl::StatusOr<std::string> RunIdempotent(
    PgPool& pool, const IdempotencyKey& key,
    const std::function<absl::StatusOr<std::string>(pqxx::dbtransaction&)>& body);

// The response stored under `key`, nullopt if none; ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED if
// the key was used with a different request. For operations that must decide before they can
// write (placement reads a snapshot first), so a replay answers before deciding anew.
absl::StatusOr<std::optional<std::string>> FindIdempotentResponse(PgPool& pool,
                                                                  const IdempotencyKey& key);

}  // namespace vch::storage

#endif  // VCH_STORAGE_IDEMPOTENCY_H_
