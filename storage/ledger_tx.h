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

// Applies the transfers in order at `now_us` within `tx` (no commit): locks, decides with the
// posting engine, writes transfers, holds, balances and idempotency keys. One result per
// transfer; a failed transfer writes nothing. Throws pqxx exceptions on database errors.
//
// `also`, if given, is called with the results once they are decided and returns a statement
// (parameters inlined, see sql_arrays.h InlineParams; "" for none) that is sent together with
// the ledger's writes, in the same round trip: a caller's own writes that depend on which
// transfers succeeded.
std::vector<absl::StatusOr<TransferResult>> ApplyTransfersInTransaction(
    pqxx::dbtransaction& tx, const std::vector<PendingTransfer>& batch, int64_t now_us,
    const std::function<std::string(const std::vector<absl::StatusOr<TransferResult>>&)>& also =
        nullptr);

}  // namespace vch::storage

#endif  // VCH_STORAGE_LEDGER_TX_H_
