// Ledger reads and account creation: accounts, statements, balances as of a time, and the
// verifier of DESIGN §4's invariants. Writes to balances go only through LedgerWriter.
#ifndef VCH_STORAGE_LEDGER_STORE_H_
#define VCH_STORAGE_LEDGER_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "policy/ledger_access.h"
#include "policy/ledger_engine.h"
#include "storage/pg_pool.h"

namespace vch::storage {

struct AccountRecord {
  policy::AccountState state;
  std::string program_id;
  std::string issuer_id;
  std::string kind;   // TREASURY, BUDGET, WALLET, RECEIVABLE, PAID, LAPSED, PAYABLE
  std::string owner;  // '' for program accounts
  absl::Time created_at;
};

struct NewAccount {
  std::string program_id;
  std::string issuer_id;
  std::string kind;
  std::string owner;
  bool no_overdraft = false;
};

// Creates the account, or returns the existing one with the same (program, kind, owner).
// ALREADY_EXISTS if that one has different flags or issuer; INVALID_ARGUMENT for bad fields.
absl::StatusOr<AccountRecord> EnsureAccount(PgPool& pool, const NewAccount& account);

// NOT_FOUND when absent or not visible in `scope` (existence must not leak).
absl::StatusOr<AccountRecord> GetAccount(PgPool& pool, int64_t account_id,
                                         const policy::LedgerReadScope& scope);

struct TransferRecord {
  int64_t id = 0;
  std::string program_id;
  policy::TransferKind kind = policy::TransferKind::kFund;
  int64_t debit_account_id = 0;
  int64_t credit_account_id = 0;
  int64_t amount_fen = 0;
  int64_t released_fen = 0;
  int64_t pending_id = 0;  // 0 = none
  std::optional<absl::Time> expires_at;
  std::string request_id;
  std::string metadata_json;
  absl::Time created_at;
  policy::AccountState debit_after;  // balances right after this transfer
  policy::AccountState credit_after;
};

// Most rows one ListTransfers returns: a 1000-row page plus one row that tells the caller
// whether another page follows.
inline constexpr int kMaxTransfersPerQuery = 1001;

struct TransferFilter {
  int64_t account_id = 0;  // 0 = any (only for scopes that see everything)
  std::optional<policy::TransferKind> kind;
  absl::Time start = absl::InfinitePast();  // created_at >= start
  absl::Time end = absl::InfiniteFuture();  // created_at < end
  int64_t after_id = 0;                     // page cursor: ids > after_id, ascending
  int page_size = 100;                      // 1..kMaxTransfersPerQuery
};

// A statement page in id order. Non-`all` scopes must name a visible account (else NOT_FOUND).
absl::StatusOr<std::vector<TransferRecord>> ListTransfers(PgPool& pool,
                                                          const TransferFilter& filter,
                                                          const policy::LedgerReadScope& scope);

struct BalanceAt {
  policy::AccountState balance;  // as of `at` (all zero before the first transfer)
  int64_t last_transfer_id = 0;  // the transfer that produced it; 0 if none
};

// The account's balance after the last transfer created at or before `at`.
absl::StatusOr<BalanceAt> GetBalanceAt(PgPool& pool, int64_t account_id, absl::Time at,
                                       const policy::LedgerReadScope& scope);

struct LedgerVerification {
  int64_t accounts = 0;
  int64_t transfers = 0;
  int64_t holds = 0;
  // One line per violated invariant instance, e.g. "invariant 8: account 12 debits_posted 500,
  // recomputed 400". Empty = the ledger verifies.
  std::vector<std::string> violations;
};

// Checks DESIGN §4's invariants 1, 2, 3, 5, 6, 7 and 8 on one consistent snapshot: for 5, every
// settlement row within its ratio, each redemption's hold posted exactly what its usage records
// settled, each payout paying exactly its lines. (Invariant 4 is the program_enterprises CHECK.)
absl::StatusOr<LedgerVerification> VerifyLedger(PgPool& pool);

}  // namespace vch::storage

#endif  // VCH_STORAGE_LEDGER_STORE_H_
