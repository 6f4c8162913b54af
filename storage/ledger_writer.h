// The batching ledger writer: the only code that changes ledger balances. Concurrent callers
// enqueue transfers; one writer thread runs each batch (up to max_batch, gathered for at most
// max_wait) in one durable transaction that locks its idempotency keys, holds and accounts in a
// fixed order, applies the posting engine, writes every transfer and each touched row once,
// records the idempotency keys, commits, and answers every caller. Thread-safe.
#ifndef VCH_STORAGE_LEDGER_WRITER_H_
#define VCH_STORAGE_LEDGER_WRITER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "policy/ledger_engine.h"
#include "storage/pg_pool.h"

namespace vch::storage {

// One transfer with its idempotency key. `request_scope` separates key spaces (the caller's
// tenant, or "system" for vch's own work); `request_id` is the client's key (1..128 chars).
struct TransferSubmission {
  std::string request_scope;
  std::string request_id;
  policy::TransferRequest transfer;
  std::string metadata_json = "{}";  // must be a JSON object
};

struct TransferResult {
  policy::TransferOutcome outcome;  // always ok() here; failures are statuses
  absl::Time created_at;
  bool replayed = false;  // answered from the idempotency record of an earlier success
};

struct LedgerWriterOptions {
  int max_batch = 1024;
  // How long an idle writer waits for more requests after the first arrives. A writer that
  // just finished a batch takes what queued meanwhile at once (group commit).
  absl::Duration max_wait = absl::Milliseconds(2);
  // Batches in flight at once, each on its own connection: one prepares while another waits
  // for its WAL flush. Batches touching the same accounts serialize on their row locks.
  int writer_threads = 2;
  // Background expiry of due holds; 0 = off (tests call ExpireDueHolds themselves).
  absl::Duration expiry_interval = absl::Milliseconds(250);
  // The ledger's clock: transfer times and hold expiry. Replaceable in tests.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Fault injection for tests: runs inside each batch transaction just before COMMIT, with the
  // backend pid of the batch's connection.
  std::function<void(int backend_pid)> before_commit_for_test;
};

// Maps a failed transfer's reason to a Status with that reason (INSUFFICIENT_FUNDS and
// HOLD_* -> FAILED_PRECONDITION, ACCOUNT_NOT_FOUND / HOLD_NOT_FOUND -> NOT_FOUND,
// AMOUNT_INVALID & co -> INVALID_ARGUMENT, OVERFLOW -> OUT_OF_RANGE).
absl::Status TransferReasonStatus(policy::TransferReason reason);

class LedgerWriter {
 public:
  LedgerWriter(PgPool& pool, LedgerWriterOptions options = {});
  ~LedgerWriter();  // answers queued callers, then stops
  LedgerWriter(const LedgerWriter&) = delete;
  LedgerWriter& operator=(const LedgerWriter&) = delete;

  // Applies one transfer exactly once per (scope, request_id); blocks until its batch commits.
  // Same key and same request after a success: the stored result (replayed = true). Same key,
  // different request: ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED. A rejected transfer is a status
  // with the engine's reason and consumes nothing (its key may be used again). Infrastructure
  // failures: UNAVAILABLE (nothing committed) or, only when even the transaction's status could
  // not be learned, UNAVAILABLE / OUTCOME_UNKNOWN.
  absl::StatusOr<TransferResult> Submit(TransferSubmission submission);

  // Submits all at once (they may share batches); results in the same order.
  std::vector<absl::StatusOr<TransferResult>> SubmitAll(
      std::vector<TransferSubmission> submissions);

  // Expires every open hold whose expiry is <= clock(), through the same batch path; each hold
  // exactly once (key "system.expiry"/"hold-<id>"). Returns how many holds it expired.
  absl::StatusOr<int64_t> ExpireDueHolds();

  // Batches committed so far (for tests and metrics).
  int64_t batches_committed() const;

 private:
  struct Pending;
  void RunWriter();
  void RunExpiry();
  void ExecuteBatch(std::vector<Pending*>& batch);

  PgPool& pool_;
  const LedgerWriterOptions options_;
  mutable absl::Mutex mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t batches_committed_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> writers_;
  std::thread expiry_;
};

}  // namespace vch::storage

#endif  // VCH_STORAGE_LEDGER_WRITER_H_
