// Storage-internal: the ledger's write path inside a caller's transaction. LedgerWriter runs it
// for each batch; domain operations that must commit a transfer together with their own rows
// (an award with its application decision) run it in their transaction. Lock order, which every
// caller must keep: idempotency keys (advisory, sorted) -> holds (by id) -> accounts (by id);
// domain rows a caller locks come before all of these.
#ifndef VCH_STORAGE_LEDGER_TX_H_
#define VCH_STORAGE_LEDGER_TX_H_

#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/ledger_writer.h"

namespace vch::storage {

struct PendingTransfer {
  const TransferSubmission* submission;  // not owned
  std::string request_hash;              // TransferRequestHash(*submission)
};

// What idempotency compares: every field of the submission that changes its effect.
std::string TransferRequestHash(const TransferSubmission& submission);

// The columns of an account row as ApplyTransfersInTransaction reads them, for a caller that
// locks the accounts itself (LedgerTxOptions::locked_accounts).
inline constexpr char kLedgerAccountColumns[] =
    "id, flags, debits_pending_fen, debits_posted_fen, credits_pending_fen, credits_posted_fen, "
    "program_id";

// The columns of a hold row as ApplyTransfersInTransaction reads them, for a caller that locks
// the holds itself (LedgerTxOptions::locked_holds).
inline constexpr char kLedgerHoldColumns[] =
    "transfer_id, debit_account_id, credit_account_id, amount_fen, posted_fen, released_fen, "
    "COALESCE((extract(epoch FROM expires_at) * 1000000)::bigint, 0), resolved";

// Draws $1 new transfer ids. Drawn after the accounts of the transfers are locked, so that an
// account's transfers number in the order they commit (VerifyLedger's invariant 8 and balances
// at a time read an account's last transfer by id).
inline constexpr char kNextTransferIds[] =
    "SELECT nextval('ledger_transfer_id_seq') FROM generate_series(1, $1::int)";

// What a caller has already done in its own round trips (so that the ledger adds none before
// its write), and how the write is sent. Every field is optional.
struct LedgerTxOptions {
  // Every transfer's idempotency key is new (made from an id this transaction drew from a
  // sequence), so the keys are neither locked nor looked up, and get no idempotency_keys row
  // (the transfer's own unique request_scope and request_id record them).
  bool fresh_keys = false;
  // Rows whose first columns are kLedgerAccountColumns: every account the transfers touch,
  // locked by the caller (ORDER BY id FOR UPDATE, after its own earlier locks), and at least one
  // new transfer id per transfer (kNextTransferIds, after those locks). An account missing from
  // the rows reads as ACCOUNT_NOT_FOUND.
  const pqxx::result* locked_accounts = nullptr;
  const std::vector<int64_t>* transfer_ids = nullptr;
  // With locked_accounts, for transfers with a pending_id: rows of kLedgerHoldColumns, every
  // hold the transfers name, locked by the caller before the accounts (ORDER BY transfer_id FOR
  // UPDATE). A hold missing from the rows reads as HOLD_NOT_FOUND.
  const pqxx::result* locked_holds = nullptr;
  // If any transfer fails, write nothing (and call neither `also` nor COMMIT): the caller
  // abandons the transaction.
  bool all_or_nothing = false;
  // The write runs as the statement LedgerWriteStatement() registered on the connection's pool.
  bool prepared_write = false;
  // The caller began the transaction with a BEGIN of its own (on a pqxx::nontransaction): send
  // COMMIT in the round trip of the write. `*committed` is set just before that round trip
  // (true: COMMIT was sent; if the round trip throws, whether it took effect is unknown unless
  // the server answered with an error). No write, no COMMIT: the caller commits.
  bool commit_with_write = false;
  bool* committed = nullptr;
};

// The ledger's write (transfers, holds, balances, keys) as a statement to register on a pool
// (PgPool::RegisterPrepared) whose transactions set LedgerTxOptions::prepared_write.
PreparedStatement LedgerWriteStatement();

// Applies the transfers in order at `now_us` within `tx` (no commit): locks, decides with the
// posting engine, writes transfers, holds, balances and idempotency keys. One result per
// transfer; a failed transfer writes nothing. Throws pqxx exceptions on database errors.
//
// `also`, if given, is called with the results once they are decided and returns a statement
// (parameters inlined, see sql_arrays.h InlineParams; "" for none) that is sent together with
// the ledger's writes, in the same round trip: a caller's own writes that depend on which
// transfers succeeded.
std::vector<absl::StatusOr<TransferResult>> ApplyTransfersInTransaction(
    pqxx::transaction_base& tx, const std::vector<PendingTransfer>& batch, int64_t now_us,
    const std::function<std::string(const std::vector<absl::StatusOr<TransferResult>>&)>& also =
        nullptr,
    const LedgerTxOptions& options = {});

}  // namespace vch::storage

#endif  // VCH_STORAGE_LEDGER_TX_H_
