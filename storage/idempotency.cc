#include "storage/idempotency.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/sha256.h"

namespace vch::storage {
namespace {

constexpr char kLockKey[] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
constexpr char kFindKey[] =
    "SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND request_id = $2";
constexpr char kStoreKey[] =
    "INSERT INTO idempotency_keys (scope, request_id, request_hash, response) "
    "VALUES ($1, $2, $3, $4)";

}  // namespace

absl::StatusOr<std::string> RunIdempotent(
    PgPool& pool, const IdempotencyKey& key,
    const std::function<absl::StatusOr<std::string>(pqxx::dbtransaction&)>& body) {
  if (key.request_id.empty() || key.request_id.size() > 128) {
    return InvalidArgument({{"request_id", "required: 1 to 128 characters (a UUID)"}});
  }
  std::string response;
  absl::Status status = RunTransaction(pool, [&](pqxx::dbtransaction& tx) -> absl::Status {
    tx.exec_params(kLockKey, absl::StrCat(key.scope, "\x1f", key.request_id));
    pqxx::result found = tx.exec_params(kFindKey, key.scope, key.request_id);
    if (!found.empty()) {
      if (found[0][0].as<std::string>() != key.request_hash) {
        return DomainError(absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED",
                           absl::StrCat("request_id '", key.request_id,
                                        "' was already used with a different request"));
      }
      pqxx::binarystring stored(found[0][1]);
      response = stored.str();
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> fresh = body(tx);
    if (!fresh.ok()) return fresh.status();
    response = std::move(*fresh);
    tx.exec_params0(kStoreKey, key.scope, key.request_id, key.request_hash,
                    pqxx::binarystring(response));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<std::optional<std::string>> FindIdempotentResponse(PgPool& pool,
                                                                  const IdempotencyKey& key) {
  std::optional<std::string> response;
  absl::Status status = RunTransaction(pool, [&](pqxx::dbtransaction& tx) -> absl::Status {
    pqxx::result found = tx.exec_params(kFindKey, key.scope, key.request_id);
    if (found.empty()) return absl::OkStatus();
    if (found[0][0].as<std::string>() != key.request_hash) {
      return DomainError(absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED",
                         absl::StrCat("request_id '", key.request_id,
                                      "' was already used with a different request"));
    }
    response = pqxx::binarystring(found[0][1]).str();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return response;
}

}  // namespace vch::storage
