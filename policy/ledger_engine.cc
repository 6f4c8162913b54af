#include "policy/ledger_engine.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace vch::policy {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

constexpr std::array<std::pair<TransferKind, std::string_view>, 9> kKindNames = {{
    {TransferKind::kFund, "FUND"},
    {TransferKind::kAward, "AWARD"},
    {TransferKind::kHold, "HOLD"},
    {TransferKind::kPost, "POST"},
    {TransferKind::kVoid, "VOID"},
    {TransferKind::kExpire, "EXPIRE"},
    {TransferKind::kPayout, "PAYOUT"},
    {TransferKind::kClawback, "CLAWBACK"},
    {TransferKind::kReversal, "REVERSAL"},
}};

int64_t ClampToInt64(__int128 v) {
  if (v > kInt64Max) return kInt64Max;
  if (v < kInt64Min) return kInt64Min;
  return static_cast<int64_t>(v);
}

bool IsKnownKind(TransferKind kind) {
  return std::any_of(kKindNames.begin(), kKindNames.end(),
                     [kind](const auto& entry) { return entry.first == kind; });
}

// Kinds that resolve (part of) an existing hold when pending_id != 0.
bool ReferencesHold(const TransferRequest& request) {
  return request.kind == TransferKind::kPost || request.kind == TransferKind::kVoid ||
         (request.kind == TransferKind::kExpire && request.pending_id != 0);
}

// Adds delta to *field; false (field untouched) on int64 overflow.
[[nodiscard]] bool CheckedAdd(int64_t* field, int64_t delta) {
  int64_t out;
  if (__builtin_add_overflow(*field, delta, &out)) return false;
  *field = out;
  return true;
}

[[nodiscard]] bool CheckedSub(int64_t* field, int64_t delta) {
  int64_t out;
  if (__builtin_sub_overflow(*field, delta, &out)) return false;
  *field = out;
  return true;
}

TransferOutcome Fail(TransferReason reason) {
  TransferOutcome outcome;
  outcome.reason = reason;
  return outcome;
}

// Request-shape checks that need no state.
TransferReason ValidateShape(const TransferRequest& request, int64_t now_us) {
  if (!IsKnownKind(request.kind)) return TransferReason::kAmountInvalid;
  const bool hold_ref = ReferencesHold(request);
  if (hold_ref ? request.pending_id <= 0 : request.pending_id != 0) {
    return TransferReason::kPendingIdInvalid;
  }
  if (request.kind == TransferKind::kHold) {
    if (request.expires_at_us != 0 && request.expires_at_us <= now_us) {
      return TransferReason::kExpiryInvalid;
    }
  } else if (request.expires_at_us != 0) {
    return TransferReason::kExpiryInvalid;
  }
  if (hold_ref ? request.amount_fen < 0 : request.amount_fen <= 0) {
    return TransferReason::kAmountInvalid;
  }
  return TransferReason::kOk;
}

// HOLD and the posted kinds (FUND, AWARD, PAYOUT, CLAWBACK, REVERSAL, EXPIRE without pending_id).
TransferOutcome ApplyDirect(const TransferRequest& request, int64_t new_transfer_id,
                            const AccountState* debit_row, const AccountState* credit_row,
                            HoldState* new_hold) {
  const int64_t a = request.amount_fen;
  AccountState debit = *debit_row;
  AccountState credit = *credit_row;
  if ((debit.flags & kAccountNoOverdraft) != 0) {
    const __int128 available_after = static_cast<__int128>(debit.credits_posted_fen) -
                                     debit.debits_posted_fen - debit.debits_pending_fen - a;
    if (available_after < 0) return Fail(TransferReason::kInsufficientFunds);
  }
  const bool pending = request.kind == TransferKind::kHold;
  int64_t* debit_field = pending ? &debit.debits_pending_fen : &debit.debits_posted_fen;
  int64_t* credit_field = pending ? &credit.credits_pending_fen : &credit.credits_posted_fen;
  if (!CheckedAdd(debit_field, a) || !CheckedAdd(credit_field, a)) {
    return Fail(TransferReason::kOverflow);
  }
  if (new_hold != nullptr) {
    *new_hold = HoldState{.transfer_id = new_transfer_id,
                          .debit_account_id = debit.id,
                          .credit_account_id = credit.id,
                          .amount_fen = a,
                          .expires_at_us = request.expires_at_us};
  }
  TransferOutcome outcome;
  outcome.transfer_id = new_transfer_id;
  outcome.debit_account_id = debit.id;
  outcome.credit_account_id = credit.id;
  outcome.amount_fen = a;
  outcome.debit_after = debit;
  outcome.credit_after = credit;
  return outcome;
}

}  // namespace

int64_t AccountState::AvailableFen() const {
  return ClampToInt64(static_cast<__int128>(credits_posted_fen) - debits_posted_fen -
                      debits_pending_fen);
}

int64_t HoldState::RemainingFen() const {
  return ClampToInt64(static_cast<__int128>(amount_fen) - posted_fen - released_fen);
}

std::string_view TransferKindName(TransferKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "UNKNOWN";
}

std::optional<TransferKind> ParseTransferKind(std::string_view name) {
  for (const auto& [k, kind_name] : kKindNames) {
    if (kind_name == name) return k;
  }
  return std::nullopt;
}

std::string_view TransferReasonName(TransferReason reason) {
  switch (reason) {
    case TransferReason::kOk:
      return "OK";
    case TransferReason::kAmountInvalid:
      return "AMOUNT_INVALID";
    case TransferReason::kAccountNotFound:
      return "ACCOUNT_NOT_FOUND";
    case TransferReason::kSameAccount:
      return "SAME_ACCOUNT";
    case TransferReason::kInsufficientFunds:
      return "INSUFFICIENT_FUNDS";
    case TransferReason::kHoldNotFound:
      return "HOLD_NOT_FOUND";
    case TransferReason::kHoldAlreadyResolved:
      return "HOLD_ALREADY_RESOLVED";
    case TransferReason::kHoldExpired:
      return "HOLD_EXPIRED";
    case TransferReason::kHoldNotExpired:
      return "HOLD_NOT_EXPIRED";
    case TransferReason::kAmountExceedsHold:
      return "AMOUNT_EXCEEDS_HOLD";
    case TransferReason::kAccountMismatch:
      return "ACCOUNT_MISMATCH";
    case TransferReason::kPendingIdInvalid:
      return "PENDING_ID_INVALID";
    case TransferReason::kExpiryInvalid:
      return "EXPIRY_INVALID";
    case TransferReason::kOverflow:
      return "OVERFLOW";
  }
  return "UNKNOWN";
}

void LedgerState::PutAccount(const AccountState& account) { accounts_[account.id] = account; }

void LedgerState::PutHold(const HoldState& hold) { holds_[hold.transfer_id] = hold; }

const AccountState* LedgerState::FindAccount(int64_t id) const {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? nullptr : &it->second;
}

const HoldState* LedgerState::FindHold(int64_t transfer_id) const {
  auto it = holds_.find(transfer_id);
  return it == holds_.end() ? nullptr : &it->second;
}

namespace {

template <typename Container, typename Key>
std::vector<int64_t> SortedIds(const Container& c, Key key) {
  std::vector<int64_t> ids;
  ids.reserve(c.size());
  for (const auto& element : c) ids.push_back(key(element));
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

std::vector<int64_t> LedgerState::AccountIds() const {
  return SortedIds(accounts_, [](const auto& kv) { return kv.first; });
}

std::vector<int64_t> LedgerState::HoldIds() const {
  return SortedIds(holds_, [](const auto& kv) { return kv.first; });
}

std::vector<int64_t> LedgerState::TouchedAccountIds() const {
  return SortedIds(touched_accounts_, [](int64_t id) { return id; });
}

std::vector<int64_t> LedgerState::TouchedHoldIds() const {
  return SortedIds(touched_holds_, [](int64_t id) { return id; });
}

void LedgerState::UpdateAccount(const AccountState& account) {
  accounts_[account.id] = account;
  touched_accounts_.insert(account.id);
}

void LedgerState::UpdateHold(const HoldState& hold) {
  holds_[hold.transfer_id] = hold;
  touched_holds_.insert(hold.transfer_id);
}

TransferOutcome ApplyTransfer(LedgerState& state, const TransferRequest& request,
                              int64_t new_transfer_id, int64_t now_us) {
  if (TransferReason shape = ValidateShape(request, now_us); shape != TransferReason::kOk) {
    return Fail(shape);
  }

  if (!ReferencesHold(request)) {
    if (request.debit_account_id == request.credit_account_id) {
      return Fail(TransferReason::kSameAccount);
    }
    const AccountState* debit = state.FindAccount(request.debit_account_id);
    const AccountState* credit = state.FindAccount(request.credit_account_id);
    if (debit == nullptr || credit == nullptr) return Fail(TransferReason::kAccountNotFound);
    const bool is_hold = request.kind == TransferKind::kHold;
    if (is_hold && (new_transfer_id <= 0 || state.FindHold(new_transfer_id) != nullptr)) {
      return Fail(TransferReason::kPendingIdInvalid);
    }
    HoldState new_hold;
    TransferOutcome outcome =
        ApplyDirect(request, new_transfer_id, debit, credit, is_hold ? &new_hold : nullptr);
    if (!outcome.ok()) return outcome;
    state.UpdateAccount(outcome.debit_after);
    state.UpdateAccount(outcome.credit_after);
    if (is_hold) state.UpdateHold(new_hold);
    return outcome;
  }

  // POST / VOID / EXPIRE of a hold.
  const HoldState* hold_row = state.FindHold(request.pending_id);
  if (hold_row == nullptr) return Fail(TransferReason::kHoldNotFound);
  HoldState hold = *hold_row;
  if ((request.debit_account_id != 0 && request.debit_account_id != hold.debit_account_id) ||
      (request.credit_account_id != 0 && request.credit_account_id != hold.credit_account_id)) {
    return Fail(TransferReason::kAccountMismatch);
  }
  if (hold.resolved) return Fail(TransferReason::kHoldAlreadyResolved);
  const bool expired = hold.ExpiredAt(now_us);
  if (request.kind == TransferKind::kPost && expired) return Fail(TransferReason::kHoldExpired);
  if (request.kind == TransferKind::kExpire && !expired) {
    return Fail(TransferReason::kHoldNotExpired);
  }

  const __int128 remaining_wide =
      static_cast<__int128>(hold.amount_fen) - hold.posted_fen - hold.released_fen;
  // A loaded row whose posts and releases already exceed its amount cannot be resolved further.
  if (remaining_wide < 0) return Fail(TransferReason::kAmountExceedsHold);
  if (remaining_wide > kInt64Max) return Fail(TransferReason::kOverflow);
  const int64_t remaining = static_cast<int64_t>(remaining_wide);

  int64_t post = 0;     // moved from pending to posted
  int64_t release = 0;  // pending released back
  if (request.kind == TransferKind::kPost) {
    if (request.amount_fen > remaining) return Fail(TransferReason::kAmountExceedsHold);
    post = request.amount_fen == 0 ? remaining : request.amount_fen;
    if (!request.keep_open) release = remaining - post;
  } else {
    if (request.amount_fen > remaining) return Fail(TransferReason::kAmountExceedsHold);
    if (request.amount_fen != 0 && request.amount_fen != remaining) {
      return Fail(TransferReason::kAmountInvalid);
    }
    release = remaining;
  }

  // Only a corrupt loaded row can name one account twice; applying it would unbalance the ledger.
  if (hold.debit_account_id == hold.credit_account_id) return Fail(TransferReason::kSameAccount);
  const AccountState* debit_row = state.FindAccount(hold.debit_account_id);
  const AccountState* credit_row = state.FindAccount(hold.credit_account_id);
  if (debit_row == nullptr || credit_row == nullptr) {
    return Fail(TransferReason::kAccountNotFound);
  }
  AccountState debit = *debit_row;
  AccountState credit = *credit_row;
  // post + release <= remaining, so their sum cannot overflow.
  const int64_t unpend = post + release;
  if (!CheckedSub(&debit.debits_pending_fen, unpend) ||
      !CheckedAdd(&debit.debits_posted_fen, post) ||
      !CheckedSub(&credit.credits_pending_fen, unpend) ||
      !CheckedAdd(&credit.credits_posted_fen, post) || !CheckedAdd(&hold.posted_fen, post) ||
      !CheckedAdd(&hold.released_fen, release)) {
    return Fail(TransferReason::kOverflow);
  }
  hold.resolved = hold.RemainingFen() == 0;

  TransferOutcome outcome;
  outcome.transfer_id = new_transfer_id;
  outcome.debit_account_id = debit.id;
  outcome.credit_account_id = credit.id;
  outcome.amount_fen = request.kind == TransferKind::kPost ? post : release;
  outcome.released_fen = request.kind == TransferKind::kPost ? release : 0;
  outcome.debit_after = debit;
  outcome.credit_after = credit;
  state.UpdateAccount(debit);
  state.UpdateAccount(credit);
  state.UpdateHold(hold);
  return outcome;
}

std::vector<TransferOutcome> ApplyTransferBatch(LedgerState& state,
                                                const std::vector<TransferRequest>& requests,
                                                int64_t next_transfer_id, int64_t now_us) {
  std::vector<TransferOutcome> outcomes;
  outcomes.reserve(requests.size());
  bool ids_exhausted = false;
  for (const TransferRequest& request : requests) {
    if (ids_exhausted) {
      outcomes.push_back(Fail(TransferReason::kOverflow));
      continue;
    }
    outcomes.push_back(ApplyTransfer(state, request, next_transfer_id, now_us));
    if (outcomes.back().ok()) ids_exhausted = !CheckedAdd(&next_transfer_id, 1);
  }
  return outcomes;
}

}  // namespace vch::policy
