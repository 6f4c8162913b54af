// Posting engine of the voucher ledger: decides each transfer of a batch against locked account and
// hold rows (loaded by storage) and mutates that in-memory slice, TigerBeetle-style double entry.
#ifndef VCH_POLICY_LEDGER_ENGINE_H_
#define VCH_POLICY_LEDGER_ENGINE_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace vch::policy {

// Persisted as int16; values are stable.
enum class TransferKind : int16_t {
  kFund = 1,
  kAward = 2,
  kHold = 3,
  kPost = 4,
  kVoid = 5,
  kExpire = 6,
  kPayout = 7,
  kClawback = 8,
  kReversal = 9,
};

// "FUND", "AWARD", "HOLD", "POST", "VOID", "EXPIRE", "PAYOUT", "CLAWBACK", "REVERSAL";
// "UNKNOWN" for a value outside the enum.
std::string_view TransferKindName(TransferKind kind);
// Inverse of TransferKindName; exact upper-case names only ("UNKNOWN" is not accepted).
std::optional<TransferKind> ParseTransferKind(std::string_view name);

enum AccountFlag : uint32_t {
  // Debits (posted + pending) may never exceed posted credits, i.e. AvailableFen() stays >= 0.
  kAccountNoOverdraft = 1u << 0,
};

// One account row. All amounts are fen; a healthy row has all four balances >= 0.
struct AccountState {
  int64_t id = 0;
  uint32_t flags = 0;  // AccountFlag bits
  int64_t debits_pending_fen = 0;
  int64_t debits_posted_fen = 0;
  int64_t credits_pending_fen = 0;
  int64_t credits_posted_fen = 0;

  // credits_posted - debits_posted - debits_pending, computed exactly in 128 bits and clamped to
  // [INT64_MIN, INT64_MAX]. Negative only for accounts without kAccountNoOverdraft.
  int64_t AvailableFen() const;

  friend bool operator==(const AccountState&, const AccountState&) = default;
};

// A pending (two-phase) transfer created by a HOLD. Invariant: posted + released <= amount, and
// remaining == 0 once resolved.
struct HoldState {
  int64_t transfer_id = 0;  // id of the HOLD transfer
  int64_t debit_account_id = 0;
  int64_t credit_account_id = 0;
  int64_t amount_fen = 0;     // original held amount
  int64_t posted_fen = 0;     // sum of POSTs so far
  int64_t released_fen = 0;   // voided / expired / released remainder so far
  int64_t expires_at_us = 0;  // unix micros; 0 = never expires
  bool resolved = false;      // true once closed

  // amount - posted - released, computed in 128 bits and clamped to the int64 range.
  int64_t RemainingFen() const;
  // True iff the hold has an expiry and now_us >= expires_at_us.
  bool ExpiredAt(int64_t now_us) const { return expires_at_us != 0 && now_us >= expires_at_us; }

  friend bool operator==(const HoldState&, const HoldState&) = default;
};

struct TransferRequest {
  TransferKind kind = TransferKind::kFund;
  // POST / VOID / EXPIRE-of-a-hold: each may be 0 (taken from the hold) or must equal the hold's.
  int64_t debit_account_id = 0;
  int64_t credit_account_id = 0;
  // fen. POST: amount to post, 0 = the whole remaining. VOID / EXPIRE-of-a-hold: must be 0 or
  // exactly the remaining. Every other kind: must be > 0.
  int64_t amount_fen = 0;
  // POST, VOID: required (> 0), the HOLD's transfer id. EXPIRE: > 0 expires that hold, 0 makes it
  // an ordinary posted transfer (award expiry moving funds). Every other kind: must be 0.
  int64_t pending_id = 0;
  // HOLD only: unix micros, 0 = never, otherwise must be > now. Must be 0 for every other kind.
  int64_t expires_at_us = 0;
  // POST only (ignored otherwise): false = the rest of the hold is released and the hold resolved;
  // true = the hold stays open for further POSTs until VOID / EXPIRE or until fully posted.
  bool keep_open = false;
};

// Persisted as int16; values are stable.
enum class TransferReason : int16_t {
  kOk = 0,
  kAmountInvalid,
  kAccountNotFound,
  kSameAccount,
  kInsufficientFunds,
  kHoldNotFound,
  kHoldAlreadyResolved,
  kHoldExpired,
  kHoldNotExpired,
  kAmountExceedsHold,
  kAccountMismatch,
  kPendingIdInvalid,
  kExpiryInvalid,
  kOverflow,
};

// Stable upper snake case: "OK", "AMOUNT_INVALID", ..., "OVERFLOW"; "UNKNOWN" outside the enum.
std::string_view TransferReasonName(TransferReason reason);

// On failure only `reason` is set; every other field keeps its default (zero) value.
struct TransferOutcome {
  TransferReason reason = TransferReason::kOk;
  int64_t transfer_id = 0;  // id assigned to this transfer
  // Resolved accounts (from the hold for POST / VOID / EXPIRE-of-a-hold).
  int64_t debit_account_id = 0;
  int64_t credit_account_id = 0;
  // fen: held (HOLD), posted (POST), released (VOID / EXPIRE-of-a-hold), moved (others).
  int64_t amount_fen = 0;
  // fen: POST without keep_open: remainder released at the same time; 0 otherwise.
  int64_t released_fen = 0;
  // Both account rows right after this transfer (for balance history).
  AccountState debit_after;
  AccountState credit_after;

  bool ok() const { return reason == TransferReason::kOk; }
};

class LedgerState;

// Applies one transfer at time now_us (unix micros). new_transfer_id is assigned by the caller,
// must be > 0 and unused; for a HOLD it keys the new hold, and a HOLD whose id is <= 0 or already
// names a hold in `state` fails with kPendingIdInvalid. On failure `state` is unchanged.
//
// Checks run in this order and the first failing one is reported:
//  - every kind: pending_id (kPendingIdInvalid), expires_at_us (kExpiryInvalid), amount
//    (kAmountInvalid); an out-of-range kind value fails with kAmountInvalid.
//  - HOLD and posted kinds: same account (kSameAccount), accounts exist (kAccountNotFound), new
//    hold id (HOLD only, kPendingIdInvalid), no-overdraft (kInsufficientFunds), kOverflow.
//  - POST / VOID / EXPIRE-of-a-hold: kHoldNotFound, kAccountMismatch, kHoldAlreadyResolved, expiry
//    (POST: kHoldExpired; EXPIRE: kHoldNotExpired; VOID: none, an expired hold may be voided),
//    amount vs remaining (kAmountExceedsHold if larger; VOID/EXPIRE: kAmountInvalid if neither 0
//    nor the remaining), a loaded hold naming one account twice (kSameAccount), accounts exist
//    (kAccountNotFound), kOverflow. A loaded hold whose posted + released already exceed its
//    amount fails with kAmountExceedsHold.
TransferOutcome ApplyTransfer(LedgerState& state, const TransferRequest& request,
                              int64_t new_transfer_id, int64_t now_us);

// Applies requests in order, each at now_us; outcomes are index-aligned with requests. Ids are
// next_transfer_id, next_transfer_id + 1, ... consumed only by successful transfers (failures get
// transfer_id 0 and leave no gap). If the id sequence would pass INT64_MAX, the remaining requests
// fail with kOverflow.
std::vector<TransferOutcome> ApplyTransferBatch(LedgerState& state,
                                                const std::vector<TransferRequest>& requests,
                                                int64_t next_transfer_id, int64_t now_us);

// The in-memory slice a batch works on: rows loaded (and locked) by storage plus the changes made
// by ApplyTransfer. Not thread-safe.
class LedgerState {
 public:
  // Load (or replace) a row; loading does not mark it touched.
  void PutAccount(const AccountState& account);
  void PutHold(const HoldState& hold);

  // nullptr if absent. Pointers are invalidated by any later Put* or ApplyTransfer*.
  const AccountState* FindAccount(int64_t id) const;
  const HoldState* FindHold(int64_t transfer_id) const;

  // All loaded or created ids, ascending.
  std::vector<int64_t> AccountIds() const;
  std::vector<int64_t> HoldIds() const;

  // Ids of rows changed by successful transfers since construction, each once, ascending; a hold
  // created by a HOLD is included (storage inserts it if it did not load it).
  std::vector<int64_t> TouchedAccountIds() const;
  std::vector<int64_t> TouchedHoldIds() const;

 private:
  friend TransferOutcome ApplyTransfer(LedgerState&, const TransferRequest&, int64_t, int64_t);

  void UpdateAccount(const AccountState& account);
  void UpdateHold(const HoldState& hold);

  absl::flat_hash_map<int64_t, AccountState> accounts_;
  absl::flat_hash_map<int64_t, HoldState> holds_;
  absl::flat_hash_set<int64_t> touched_accounts_;
  absl::flat_hash_set<int64_t> touched_holds_;
};

}  // namespace vch::policy

#endif  // VCH_POLICY_LEDGER_ENGINE_H_
