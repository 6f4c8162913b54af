// Redemptions, usage settlement and payouts in PostgreSQL (DESIGN §3-§5).
//
// RequestCompute and ReportUsage are the hot paths: concurrent callers queue, and each batch
// (gathered for at most a millisecond or two) runs in one durable transaction that locks its
// rows in the global order (redemptions -> pools -> monthly spend -> idempotency keys -> holds
// -> accounts), decides every request in memory with policy/ (placement, settlement, the
// posting engine), writes each table with one statement, commits and answers every caller. If
// the batch transaction fails as a whole, every request in it is run again alone, so one bad
// request never fails its neighbours. Everything else runs one transaction per call.
//
// Object-level scoping: a RedemptionScope names the caller's enterprise, datacenter or issuer
// ("" = any); rows outside it read as NOT_FOUND.
#ifndef VCH_STORAGE_REDEMPTION_STORE_H_
#define VCH_STORAGE_REDEMPTION_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/voucher.h"
#include "policy/placement.h"
#include "policy/programs.h"
#include "policy/settlement.h"
#include "storage/idempotency.h"
#include "storage/pg_pool.h"
#include "storage/program_store.h"

namespace vch::storage {

enum class RedemptionState {
  kPlaced = 1,
  kConfirmed = 2,
  kActive = 3,
  kSettled = 4,
  kCancelled = 5,
  kExpired = 6,
  kRejected = 7,
};

struct RedemptionRecord {
  int64_t id = 0;
  std::string program_id;
  std::string issuer_id;
  std::string uscc;
  std::string datacenter_id;
  std::string pool_id;  // within the datacenter
  // The request as made.
  std::string accelerator_model;
  bool fp8_required = false;
  bool domestic_required = false;
  int32_t min_memory_gib = 0;
  int64_t max_price_fen_per_gpu_hour = 0;
  std::string preferred_region_prefix;
  int32_t gpus = 0;
  int32_t hours = 0;
  // Terms.
  int64_t price_fen_per_gpu_hour = 0;
  int32_t ratio_bps = 0;
  policy::SettlementStyle style = policy::SettlementStyle::kDirect;
  int64_t estimated_bill_fen = 0;
  int64_t held_fen = 0;
  int64_t remaining_hold_fen = 0;
  int64_t hold_transfer_id = 0;
  int64_t capacity_hold_id = 0;
  absl::Time expires_at;
  RedemptionState state = RedemptionState::kPlaced;
  std::string state_reason;
  int64_t replaces = 0;
  int64_t replaced_by = 0;
  // Settled so far.
  int64_t gpu_seconds = 0;
  int64_t billed_fen = 0;
  int64_t subsidy_fen = 0;
  int32_t usage_records = 0;
  std::string voucher_key_id;
  std::string voucher_signature;  // 64 bytes
  absl::Time created_at;
  absl::Time updated_at;

  // The voucher terms this record was signed over.
  VoucherTerms Voucher() const;
};

// Who may see or act on a redemption: an enterprise (uscc), an operator (datacenter) or the
// staff of an issuer (issuer); all empty = anyone.
struct RedemptionScope {
  std::string uscc;
  std::string datacenter_id;
  std::string issuer_id;
};

// One RequestCompute.
struct ComputeRequest {
  IdempotencyKey key;
  std::string uscc;
  std::string program_id;
  // The engine's request, scope and accelerator classes of the program included.
  policy::PlacementRequest placement;
  int32_t hours = 0;
  // Re-placement after a rejection: the rejected redemption, and never its datacenter.
  int64_t replaces = 0;
  std::string exclude_datacenter;
};

struct ComputeOutcome {
  bool placed = false;
  RedemptionRecord redemption;         // when placed
  policy::PlacementDecision decision;  // score when placed; exclusion counts when not
};

// One ReportUsage.
struct UsageReport {
  int64_t redemption_id = 0;
  std::string usage_id;          // 1..128 characters
  std::string request_hash;      // of the report without anything that names the caller
  std::string datacenter_scope;  // the operator's datacenter ("" = any, platform admins)
  int64_t gpu_seconds = 0;
  absl::Time start;
  absl::Time end;
  bool final = false;
};

struct UsageRecord {
  int64_t redemption_id = 0;
  std::string usage_id;
  int64_t seq = 0;
  std::string program_id;
  std::string uscc;
  std::string datacenter_id;
  std::string pool_id;  // of the redemption (statements show it)
  int64_t gpu_seconds = 0;
  absl::Time start;
  absl::Time end;
  bool final = false;
  int64_t price_fen_per_gpu_hour = 0;
  int32_t ratio_bps = 0;
  int64_t bill_fen = 0;
  int64_t subsidy_fen = 0;
  int64_t copay_fen = 0;
  policy::SubsidyCap capped_by = policy::SubsidyCap::kNone;
  int64_t post_transfer_id = 0;
  int64_t release_transfer_id = 0;
  int64_t payout_id = 0;     // 0 = not paid yet
  std::string payout_payee;  // "datacenters/DC" or "enterprises/USCC" when paid
  absl::Time settled_at;
};

struct UsageOutcome {
  UsageRecord usage;
  RedemptionRecord redemption;  // right after this record settled
};

struct RejectOutcome {
  RedemptionRecord rejected;
  bool replaced = false;
  RedemptionRecord replacement;
  policy::PlacementDecision decision;  // of the re-placement
};

enum class PayeeKind { kDatacenter = 1, kEnterprise = 2 };

struct PayoutRecord {
  int64_t id = 0;
  std::string program_id;
  std::string issuer_id;
  PayeeKind payee_kind = PayeeKind::kDatacenter;
  std::string payee;  // datacenter id or USCC
  absl::Time period_start;
  absl::Time period_end;
  int64_t amount_fen = 0;
  int32_t lines = 0;
  int64_t transfer_id = 0;
  std::string created_by;
  absl::Time created_at;
};

struct PayoutRequest {
  std::string program_id;
  PayeeKind payee_kind = PayeeKind::kDatacenter;
  std::string payee;
  absl::Time period_start;
  absl::Time period_end;
  std::string issuer_scope;  // "" = any issuer (platform admins)
  std::string actor;
};

struct RedemptionOptions {
  // How long a placement waits for the operator's confirmation.
  absl::Duration placement_ttl = absl::Minutes(30);
  policy::PlacementWeights weights;
  // Signs every voucher; not owned, must outlive the store.
  const VoucherSigner* signer = nullptr;
  int max_batch = 256;
  absl::Duration max_wait = absl::Milliseconds(1);
  // Requests waiting for a batch, per path; one more is refused (RESOURCE_EXHAUSTED QUEUE_FULL)
  // rather than queued without bound.
  int max_queued = 4096;
  // Batch writers per hot path. One: at moderate rates a batch's fixed cost dominates, and two
  // writers would halve the batches and take turns on the same pool and account rows.
  int writer_threads = 1;
  // Attempts of a request that lost its pool's last GPUs to a concurrent batch.
  int place_attempts = 3;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// A batch's own transaction control (redemption_store.cc).
struct BatchTx;

class RedemptionStore {
 public:
  // `pool` serves the unbatched calls; the batches run on `batch_pool`, which should have a
  // connection per writer thread of each hot path (2 * writer_threads at least) so that handlers
  // holding every connection of `pool` never starve them.
  RedemptionStore(PgPool& pool, PgPool& batch_pool, RedemptionOptions options);
  ~RedemptionStore();  // answers queued callers, then stops
  RedemptionStore(const RedemptionStore&) = delete;
  RedemptionStore& operator=(const RedemptionStore&) = delete;

  // Places the request, holds the estimated voucher share (HOLD wallet -> receivable, or ->
  // payable for REIMBURSE programs) and the GPUs, and signs the voucher, in one transaction.
  // A request no pool can take writes nothing: outcome placed = false with the exclusion
  // counts (encoded, not stored). Errors: NOT_FOUND PROGRAM_NOT_FOUND, FAILED_PRECONDITION
  // PROGRAM_NOT_OPEN / REDEMPTION_WINDOW_CLOSED / NO_AWARD / INSUFFICIENT_FUNDS /
  // ESTIMATE_TOO_SMALL, ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED.
  absl::StatusOr<std::string> RequestCompute(ComputeRequest request,
                                             const Encoder<ComputeOutcome>& encode);

  // Settles one usage record (see policy::SettleUsage): POST of the subsidy to the
  // receivable / payable keeping the hold open, the final record releasing the rest; the
  // program's monthly spend limit applies. Once per (redemption, usage_id): the same report
  // again returns the first response, a different one ALREADY_EXISTS USAGE_ID_REUSED.
  // Errors: NOT_FOUND REDEMPTION_NOT_FOUND, FAILED_PRECONDITION REDEMPTION_NOT_CONFIRMED /
  // REDEMPTION_SETTLED / REDEMPTION_NOT_ACTIVE.
  absl::StatusOr<std::string> ReportUsage(UsageReport report, const Encoder<UsageOutcome>& encode);

  // RequestCompute and ReportUsage without blocking the caller: `done` is called exactly once
  // with what the blocking call would have returned, on one of the store's writer threads (or at
  // once on the calling thread if the store is shutting down). It must not block.
  using Done = std::function<void(absl::StatusOr<std::string>)>;
  void RequestComputeAsync(ComputeRequest request, Encoder<ComputeOutcome> encode, Done done);
  void ReportUsageAsync(UsageReport report, Encoder<UsageOutcome> encode, Done done);

  // PLACED -> CONFIRMED by the redemption's operator before it expires: the capacity hold is
  // consumed (the site's own reports count the GPUs from now on).
  absl::StatusOr<std::string> Confirm(const IdempotencyKey& key, int64_t id,
                                      const std::string& datacenter_scope,
                                      const Encoder<RedemptionRecord>& encode);
  // PLACED or CONFIRMED without usage -> CANCELLED by its enterprise: both holds released.
  absl::StatusOr<std::string> Cancel(const IdempotencyKey& key, int64_t id,
                                     const std::string& uscc_scope, const std::string& reason,
                                     const Encoder<RedemptionRecord>& encode);
  // PLACED -> REJECTED by its operator: both holds released, and unless the redemption is
  // itself a re-placement, `replacement` (the same request, built by the caller) is placed
  // elsewhere in the same transaction.
  absl::StatusOr<std::string> Reject(const IdempotencyKey& key, int64_t id,
                                     const std::string& datacenter_scope, const std::string& reason,
                                     std::optional<ComputeRequest> replacement,
                                     const Encoder<RejectOutcome>& encode);
  // Every PLACED redemption whose expiry is <= now becomes EXPIRED, releasing both holds,
  // exactly once however many callers race. Returns how many it expired.
  absl::StatusOr<int64_t> ExpirePlacements(absl::Time now);

  absl::StatusOr<RedemptionRecord> Get(int64_t id, const RedemptionScope& scope);
  struct Filter {
    std::string program_id;
    std::string uscc;
    std::string datacenter_id;
    std::optional<RedemptionState> state;
    int64_t before_id = 0;  // newest first: ids below this (0 = from the newest)
    int limit = 100;
  };
  absl::StatusOr<std::vector<RedemptionRecord>> List(const Filter& filter,
                                                     const RedemptionScope& scope);
  // PLACED at `datacenter_id` and not yet expired, oldest first, ids above after_id.
  absl::StatusOr<std::vector<RedemptionRecord>> ListPending(const std::string& datacenter_id,
                                                            int64_t after_id, int limit);

  // Pays the settled, unpaid claims of the payee in the program over [start, end) with one
  // PAYOUT transfer (receivable -> paid, or payable -> paid). FAILED_PRECONDITION
  // NOTHING_TO_PAY when there are none.
  absl::StatusOr<std::string> CreatePayout(const IdempotencyKey& key, const PayoutRequest& request,
                                           const Encoder<PayoutRecord>& encode);
  // Scope: issuer_id for issuer staff, datacenter_id / uscc for the payee itself.
  absl::StatusOr<PayoutRecord> GetPayout(int64_t id, const RedemptionScope& scope);
  struct PayoutFilter {
    std::string program_id;
    std::optional<PayeeKind> payee_kind;
    std::string payee;
    int64_t before_id = 0;
    int limit = 100;
  };
  absl::StatusOr<std::vector<PayoutRecord>> ListPayouts(const PayoutFilter& filter,
                                                        const RedemptionScope& scope);
  // The usage records a payout pays, in settlement order, seq above after_seq.
  absl::StatusOr<std::vector<UsageRecord>> ListPayoutLines(int64_t payout_id, int64_t after_seq,
                                                           int limit);

 private:
  struct ComputeOp;
  struct UsageOp;
  class AccountCache;
  template <typename Op>
  class Queue;

  void ExecuteComputeBatch(std::vector<ComputeOp*>& ops);
  // Decides and writes `ops` inside `tx` (see redemption_store.cc); `store_keys` = false for a
  // re-placement whose response is stored with the rejection instead. With `batch`, `tx` is a
  // nontransaction and BEGIN and COMMIT travel with the first reads and the writes.
  void ComputeInTx(pqxx::transaction_base& tx, bool store_keys, std::vector<ComputeOp*>& ops,
                   absl::Time now, BatchTx* batch = nullptr) const;
  void ExecuteUsageBatch(std::vector<UsageOp*>& ops);
  absl::Status UsageInTx(pqxx::transaction_base& tx, std::vector<UsageOp*>& ops, absl::Time now,
                         BatchTx& batch);

  PgPool& pool_;
  PgPool& batch_pool_;
  const RedemptionOptions options_;
  std::unique_ptr<AccountCache> known_accounts_;
  std::unique_ptr<Queue<ComputeOp>> compute_queue_;
  std::unique_ptr<Queue<UsageOp>> usage_queue_;
};

}  // namespace vch::storage

#endif  // VCH_STORAGE_REDEMPTION_STORE_H_
