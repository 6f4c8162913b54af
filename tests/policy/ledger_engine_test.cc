#include "policy/ledger_engine.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vch::policy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kNow = 1'000'000;
constexpr int64_t kNewId = 7;

// Fixture accounts.
constexpr int64_t kOperator = 1;  // no flags: may go negative (funding source)
constexpr int64_t kUser = 2;      // no-overdraft; 1000 posted credits, 400 held by holds 100, 101
constexpr int64_t kProvider = 3;  // no-overdraft; 400 pending credits from holds 100, 101
constexpr int64_t kPool = 4;      // no-overdraft; empty
// Fixture holds.
constexpr int64_t kOpenHold = 100;      // user -> provider 300, expires at kNow + 1'000'000
constexpr int64_t kExpiredHold = 101;   // user -> provider 100, expired at kNow / 2
constexpr int64_t kResolvedHold = 102;  // user -> provider 100, posted 60, released 40
constexpr int64_t kOrphanHold = 103;    // 88 -> 89 (accounts not loaded) 10, never expires
constexpr int64_t kCorruptHold = 104;   // 4 -> 4 (corrupt row) 10, never expires

AccountState Acct(int64_t id, uint32_t flags, int64_t debits_pending, int64_t debits_posted,
                  int64_t credits_pending, int64_t credits_posted) {
  return AccountState{.id = id,
                      .flags = flags,
                      .debits_pending_fen = debits_pending,
                      .debits_posted_fen = debits_posted,
                      .credits_pending_fen = credits_pending,
                      .credits_posted_fen = credits_posted};
}

HoldState Hold(int64_t id, int64_t debit, int64_t credit, int64_t amount, int64_t posted,
               int64_t released, int64_t expires_at, bool resolved) {
  return HoldState{.transfer_id = id,
                   .debit_account_id = debit,
                   .credit_account_id = credit,
                   .amount_fen = amount,
                   .posted_fen = posted,
                   .released_fen = released,
                   .expires_at_us = expires_at,
                   .resolved = resolved};
}

// Copies of rows; a missing row is a test failure (not a crash) and yields a default row.
AccountState AccountOf(const LedgerState& state, int64_t id) {
  const AccountState* row = state.FindAccount(id);
  if (row == nullptr) {
    ADD_FAILURE() << "account " << id << " missing";
    return AccountState{};
  }
  return *row;
}

HoldState HoldOf(const LedgerState& state, int64_t id) {
  const HoldState* row = state.FindHold(id);
  if (row == nullptr) {
    ADD_FAILURE() << "hold " << id << " missing";
    return HoldState{};
  }
  return *row;
}

std::vector<AccountState> FixtureAccounts() {
  return {Acct(kOperator, 0, 0, 0, 0, 0), Acct(kUser, kAccountNoOverdraft, 400, 0, 0, 1000),
          Acct(kProvider, kAccountNoOverdraft, 0, 0, 400, 0),
          Acct(kPool, kAccountNoOverdraft, 0, 0, 0, 0)};
}

std::vector<HoldState> FixtureHolds() {
  return {Hold(kOpenHold, kUser, kProvider, 300, 0, 0, kNow + 1'000'000, false),
          Hold(kExpiredHold, kUser, kProvider, 100, 0, 0, kNow / 2, false),
          Hold(kResolvedHold, kUser, kProvider, 100, 60, 40, 0, true),
          Hold(kOrphanHold, 88, 89, 10, 0, 0, 0, false),
          Hold(kCorruptHold, kPool, kPool, 10, 0, 0, 0, false)};
}

LedgerState FixtureState() {
  LedgerState state;
  for (const AccountState& a : FixtureAccounts()) state.PutAccount(a);
  for (const HoldState& h : FixtureHolds()) state.PutHold(h);
  return state;
}

// ---------------------------------------------------------------------------------------------
// Table-driven single transfers against the fixture.

struct Case {
  std::string name;
  TransferRequest request;
  TransferReason want;
  int64_t want_amount = 0;
  int64_t want_released = 0;
  std::vector<AccountState> want_accounts = {};  // full rows of the (debit, credit) accounts after
  std::optional<HoldState> want_hold = std::nullopt;  // the hold row changed or created
  int64_t new_id = kNewId;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

TransferRequest Req(TransferKind kind, int64_t debit, int64_t credit, int64_t amount) {
  return TransferRequest{
      .kind = kind, .debit_account_id = debit, .credit_account_id = credit, .amount_fen = amount};
}

TransferRequest HoldRef(TransferKind kind, int64_t pending_id, int64_t amount,
                        bool keep_open = false) {
  return TransferRequest{
      .kind = kind, .amount_fen = amount, .pending_id = pending_id, .keep_open = keep_open};
}

template <typename F>
TransferRequest With(TransferRequest request, F mutate) {
  mutate(request);
  return request;
}

std::vector<Case> Cases() {
  using K = TransferKind;
  using R = TransferReason;
  const uint32_t nod = kAccountNoOverdraft;
  std::vector<Case> cases = {
      // Success paths of every kind.
      {"FundFromOperator",
       Req(K::kFund, kOperator, kUser, 500),
       R::kOk,
       500,
       0,
       {Acct(kOperator, 0, 0, 500, 0, 0), Acct(kUser, nod, 400, 0, 0, 1500)}},
      {"AwardToPool",
       Req(K::kAward, kOperator, kPool, 70),
       R::kOk,
       70,
       0,
       {Acct(kOperator, 0, 0, 70, 0, 0), Acct(kPool, nod, 0, 0, 0, 70)}},
      {"HoldExactlyAvailable",
       Req(K::kHold, kUser, kPool, 600),
       R::kOk,
       600,
       0,
       {Acct(kUser, nod, 1000, 0, 0, 1000), Acct(kPool, nod, 0, 0, 600, 0)},
       Hold(kNewId, kUser, kPool, 600, 0, 0, 0, false)},
      {"HoldWithExpiry",
       With(Req(K::kHold, kUser, kPool, 5), [](auto& r) { r.expires_at_us = kNow + 1; }),
       R::kOk,
       5,
       0,
       {Acct(kUser, nod, 405, 0, 0, 1000), Acct(kPool, nod, 0, 0, 5, 0)},
       Hold(kNewId, kUser, kPool, 5, 0, 0, kNow + 1, false)},
      {"PartialPostReleasesRest",
       HoldRef(K::kPost, kOpenHold, 120),
       R::kOk,
       120,
       180,
       {Acct(kUser, nod, 100, 120, 0, 1000), Acct(kProvider, nod, 0, 0, 100, 120)},
       Hold(kOpenHold, kUser, kProvider, 300, 120, 180, kNow + 1'000'000, true)},
      {"PostZeroPostsWholeRemaining",
       HoldRef(K::kPost, kOpenHold, 0),
       R::kOk,
       300,
       0,
       {Acct(kUser, nod, 100, 300, 0, 1000), Acct(kProvider, nod, 0, 0, 100, 300)},
       Hold(kOpenHold, kUser, kProvider, 300, 300, 0, kNow + 1'000'000, true)},
      {"PostKeepOpen",
       HoldRef(K::kPost, kOpenHold, 120, true),
       R::kOk,
       120,
       0,
       {Acct(kUser, nod, 280, 120, 0, 1000), Acct(kProvider, nod, 0, 0, 280, 120)},
       Hold(kOpenHold, kUser, kProvider, 300, 120, 0, kNow + 1'000'000, false)},
      {"PostKeepOpenWholeRemainingResolves",
       HoldRef(K::kPost, kOpenHold, 300, true),
       R::kOk,
       300,
       0,
       {Acct(kUser, nod, 100, 300, 0, 1000), Acct(kProvider, nod, 0, 0, 100, 300)},
       Hold(kOpenHold, kUser, kProvider, 300, 300, 0, kNow + 1'000'000, true)},
      {"PostWithMatchingAccounts",
       With(HoldRef(K::kPost, kOpenHold, 1),
            [](auto& r) {
              r.debit_account_id = kUser;
              r.credit_account_id = kProvider;
            }),
       R::kOk,
       1,
       299,
       {Acct(kUser, nod, 100, 1, 0, 1000), Acct(kProvider, nod, 0, 0, 100, 1)},
       Hold(kOpenHold, kUser, kProvider, 300, 1, 299, kNow + 1'000'000, true)},
      {"VoidZeroAmount",
       HoldRef(K::kVoid, kOpenHold, 0),
       R::kOk,
       300,
       0,
       {Acct(kUser, nod, 100, 0, 0, 1000), Acct(kProvider, nod, 0, 0, 100, 0)},
       Hold(kOpenHold, kUser, kProvider, 300, 0, 300, kNow + 1'000'000, true)},
      {"VoidExactRemaining",
       HoldRef(K::kVoid, kOpenHold, 300),
       R::kOk,
       300,
       0,
       {Acct(kUser, nod, 100, 0, 0, 1000), Acct(kProvider, nod, 0, 0, 100, 0)},
       Hold(kOpenHold, kUser, kProvider, 300, 0, 300, kNow + 1'000'000, true)},
      {"VoidAfterExpiry",
       HoldRef(K::kVoid, kExpiredHold, 0),
       R::kOk,
       100,
       0,
       {Acct(kUser, nod, 300, 0, 0, 1000), Acct(kProvider, nod, 0, 0, 300, 0)},
       Hold(kExpiredHold, kUser, kProvider, 100, 0, 100, kNow / 2, true)},
      {"ExpireHold",
       HoldRef(K::kExpire, kExpiredHold, 100),
       R::kOk,
       100,
       0,
       {Acct(kUser, nod, 300, 0, 0, 1000), Acct(kProvider, nod, 0, 0, 300, 0)},
       Hold(kExpiredHold, kUser, kProvider, 100, 0, 100, kNow / 2, true)},
      {"ExpireWithoutHoldMovesFunds",
       Req(K::kExpire, kUser, kPool, 600),
       R::kOk,
       600,
       0,
       {Acct(kUser, nod, 400, 600, 0, 1000), Acct(kPool, nod, 0, 0, 0, 600)}},
      {"Payout",
       Req(K::kPayout, kUser, kOperator, 250),
       R::kOk,
       250,
       0,
       {Acct(kUser, nod, 400, 250, 0, 1000), Acct(kOperator, 0, 0, 0, 0, 250)}},
      {"ClawbackExactlyAvailable",
       Req(K::kClawback, kUser, kOperator, 600),
       R::kOk,
       600,
       0,
       {Acct(kUser, nod, 400, 600, 0, 1000), Acct(kOperator, 0, 0, 0, 0, 600)}},
      {"Reversal",
       Req(K::kReversal, kOperator, kUser, 5),
       R::kOk,
       5,
       0,
       {Acct(kOperator, 0, 0, 5, 0, 0), Acct(kUser, nod, 400, 0, 0, 1005)}},

      // AMOUNT_INVALID
      {"FundZero", Req(K::kFund, kOperator, kUser, 0), R::kAmountInvalid},
      {"AwardNegative", Req(K::kAward, kOperator, kUser, -5), R::kAmountInvalid},
      {"HoldZero", Req(K::kHold, kUser, kPool, 0), R::kAmountInvalid},
      {"PayoutMin", Req(K::kPayout, kUser, kOperator, kMin), R::kAmountInvalid},
      {"ExpireWithoutHoldZero", Req(K::kExpire, kUser, kPool, 0), R::kAmountInvalid},
      {"PostNegative", HoldRef(K::kPost, kOpenHold, -1), R::kAmountInvalid},
      {"VoidPartial", HoldRef(K::kVoid, kOpenHold, 50), R::kAmountInvalid},
      {"ExpirePartial", HoldRef(K::kExpire, kExpiredHold, 99), R::kAmountInvalid},
      {"UnknownKind", Req(static_cast<TransferKind>(42), kOperator, kUser, 5), R::kAmountInvalid},
      // ACCOUNT_NOT_FOUND
      {"CreditMissing", Req(K::kFund, kOperator, 99, 5), R::kAccountNotFound},
      {"DebitMissing", Req(K::kAward, 99, kUser, 5), R::kAccountNotFound},
      {"DebitZero", Req(K::kFund, 0, kUser, 5), R::kAccountNotFound},
      {"PostHoldAccountsMissing", HoldRef(K::kPost, kOrphanHold, 0), R::kAccountNotFound},
      // SAME_ACCOUNT
      {"FundSameAccount", Req(K::kFund, kUser, kUser, 5), R::kSameAccount},
      {"HoldSameAccount", Req(K::kHold, kUser, kUser, 5), R::kSameAccount},
      {"VoidCorruptHold", HoldRef(K::kVoid, kCorruptHold, 0), R::kSameAccount},
      // INSUFFICIENT_FUNDS
      {"PayoutOverAvailable", Req(K::kPayout, kUser, kOperator, 601), R::kInsufficientFunds},
      {"HoldOverAvailable", Req(K::kHold, kUser, kPool, 601), R::kInsufficientFunds},
      {"PendingCreditsDoNotCount", Req(K::kPayout, kProvider, kOperator, 1), R::kInsufficientFunds},
      // HOLD_NOT_FOUND
      {"PostMissingHold", HoldRef(K::kPost, 999, 0), R::kHoldNotFound},
      {"VoidMissingHold", HoldRef(K::kVoid, 999, 0), R::kHoldNotFound},
      {"ExpireMissingHold", HoldRef(K::kExpire, 999, 0), R::kHoldNotFound},
      // HOLD_ALREADY_RESOLVED
      {"PostResolved", HoldRef(K::kPost, kResolvedHold, 0), R::kHoldAlreadyResolved},
      {"VoidResolved", HoldRef(K::kVoid, kResolvedHold, 0), R::kHoldAlreadyResolved},
      {"ExpireResolved", HoldRef(K::kExpire, kResolvedHold, 0), R::kHoldAlreadyResolved},
      // HOLD_EXPIRED
      {"PostExpired", HoldRef(K::kPost, kExpiredHold, 10), R::kHoldExpired},
      // HOLD_NOT_EXPIRED
      {"ExpireBeforeExpiry", HoldRef(K::kExpire, kOpenHold, 0), R::kHoldNotExpired},
      {"ExpireNeverExpiring", HoldRef(K::kExpire, kOrphanHold, 0), R::kHoldNotExpired},
      // AMOUNT_EXCEEDS_HOLD
      {"PostOverRemaining", HoldRef(K::kPost, kOpenHold, 301), R::kAmountExceedsHold},
      {"PostKeepOpenOverRemaining", HoldRef(K::kPost, kOpenHold, 301, true), R::kAmountExceedsHold},
      {"VoidOverRemaining", HoldRef(K::kVoid, kOpenHold, 301), R::kAmountExceedsHold},
      // ACCOUNT_MISMATCH
      {"PostWrongDebit",
       With(HoldRef(K::kPost, kOpenHold, 0), [](auto& r) { r.debit_account_id = kPool; }),
       R::kAccountMismatch},
      {"PostWrongCredit",
       With(HoldRef(K::kPost, kOpenHold, 0), [](auto& r) { r.credit_account_id = kPool; }),
       R::kAccountMismatch},
      {"VoidWrongDebit",
       With(HoldRef(K::kVoid, kOpenHold, 0), [](auto& r) { r.debit_account_id = kOperator; }),
       R::kAccountMismatch},
      {"MismatchBeforeResolved",
       With(HoldRef(K::kPost, kResolvedHold, 0), [](auto& r) { r.credit_account_id = kPool; }),
       R::kAccountMismatch},
      // PENDING_ID_INVALID
      {"FundWithPendingId",
       With(Req(K::kFund, kOperator, kUser, 5), [](auto& r) { r.pending_id = kOpenHold; }),
       R::kPendingIdInvalid},
      {"HoldWithPendingId",
       With(Req(K::kHold, kUser, kPool, 5), [](auto& r) { r.pending_id = kOpenHold; }),
       R::kPendingIdInvalid},
      {"PostWithoutPendingId", HoldRef(K::kPost, 0, 0), R::kPendingIdInvalid},
      {"VoidWithoutPendingId", HoldRef(K::kVoid, 0, 0), R::kPendingIdInvalid},
      {"PostNegativePendingId", HoldRef(K::kPost, -1, 0), R::kPendingIdInvalid},
      {"ExpireNegativePendingId", HoldRef(K::kExpire, -1, 0), R::kPendingIdInvalid},
      {"HoldIdCollides",
       Req(K::kHold, kUser, kPool, 5),
       R::kPendingIdInvalid,
       0,
       0,
       {},
       std::nullopt,
       kOpenHold},
      {"HoldIdZero",
       Req(K::kHold, kUser, kPool, 5),
       R::kPendingIdInvalid,
       0,
       0,
       {},
       std::nullopt,
       0},
      // EXPIRY_INVALID
      {"HoldExpiresNow",
       With(Req(K::kHold, kUser, kPool, 5), [](auto& r) { r.expires_at_us = kNow; }),
       R::kExpiryInvalid},
      {"HoldExpiresInPast",
       With(Req(K::kHold, kUser, kPool, 5), [](auto& r) { r.expires_at_us = kNow - 1; }),
       R::kExpiryInvalid},
      {"FundWithExpiry",
       With(Req(K::kFund, kOperator, kUser, 5), [](auto& r) { r.expires_at_us = kNow + 1; }),
       R::kExpiryInvalid},
      {"PostWithExpiry",
       With(HoldRef(K::kPost, kOpenHold, 0), [](auto& r) { r.expires_at_us = kNow + 1; }),
       R::kExpiryInvalid},
  };
  return cases;
}

class LedgerEngineTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(LedgerEngineTableTest, AppliesExactly) {
  const Case& c = GetParam();
  LedgerState state = FixtureState();
  const TransferOutcome out = ApplyTransfer(state, c.request, c.new_id, kNow);
  ASSERT_EQ(TransferReasonName(out.reason), TransferReasonName(c.want));

  if (!out.ok()) {
    // Only the reason is set, and nothing changed.
    EXPECT_EQ(out.transfer_id, 0);
    EXPECT_EQ(out.debit_account_id, 0);
    EXPECT_EQ(out.credit_account_id, 0);
    EXPECT_EQ(out.amount_fen, 0);
    EXPECT_EQ(out.released_fen, 0);
    EXPECT_EQ(out.debit_after, AccountState{});
    EXPECT_EQ(out.credit_after, AccountState{});
    for (const AccountState& a : FixtureAccounts()) EXPECT_EQ(AccountOf(state, a.id), a);
    for (const HoldState& h : FixtureHolds()) EXPECT_EQ(HoldOf(state, h.transfer_id), h);
    EXPECT_THAT(state.AccountIds(), ElementsAre(1, 2, 3, 4));
    EXPECT_THAT(state.HoldIds(), ElementsAre(100, 101, 102, 103, 104));
    EXPECT_THAT(state.TouchedAccountIds(), IsEmpty());
    EXPECT_THAT(state.TouchedHoldIds(), IsEmpty());
    return;
  }

  ASSERT_EQ(c.want_accounts.size(), 2u);
  const AccountState& want_debit = c.want_accounts[0];
  const AccountState& want_credit = c.want_accounts[1];
  EXPECT_EQ(out.transfer_id, c.new_id);
  EXPECT_EQ(out.debit_account_id, want_debit.id);
  EXPECT_EQ(out.credit_account_id, want_credit.id);
  EXPECT_EQ(out.amount_fen, c.want_amount);
  EXPECT_EQ(out.released_fen, c.want_released);
  EXPECT_EQ(out.debit_after, want_debit);
  EXPECT_EQ(out.credit_after, want_credit);
  EXPECT_EQ(AccountOf(state, want_debit.id), want_debit);
  EXPECT_EQ(AccountOf(state, want_credit.id), want_credit);
  std::set<int64_t> touched = {want_debit.id, want_credit.id};
  for (const AccountState& a : FixtureAccounts()) {
    if (!touched.contains(a.id)) {
      EXPECT_EQ(AccountOf(state, a.id), a) << a.id;
    }
  }
  EXPECT_EQ(state.TouchedAccountIds(), std::vector<int64_t>(touched.begin(), touched.end()));

  if (c.want_hold.has_value()) {
    const HoldState* hold = state.FindHold(c.want_hold->transfer_id);
    ASSERT_NE(hold, nullptr);
    EXPECT_EQ(*hold, *c.want_hold);
    EXPECT_THAT(state.TouchedHoldIds(), ElementsAre(c.want_hold->transfer_id));
  } else {
    EXPECT_THAT(state.TouchedHoldIds(), IsEmpty());
  }
  for (const HoldState& h : FixtureHolds()) {
    if (c.want_hold.has_value() && h.transfer_id == c.want_hold->transfer_id) continue;
    EXPECT_EQ(HoldOf(state, h.transfer_id), h) << h.transfer_id;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LedgerEngineTableTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(LedgerEngineTableCoverageTest, EveryReasonAndEveryKindSucceeds) {
  std::set<TransferReason> reasons;
  std::set<TransferKind> ok_kinds;
  for (const Case& c : Cases()) {
    reasons.insert(c.want);
    if (c.want == TransferReason::kOk) ok_kinds.insert(c.request.kind);
  }
  // kOverflow is covered by the dedicated overflow tests below.
  reasons.insert(TransferReason::kOverflow);
  EXPECT_EQ(reasons.size(), 14u);
  EXPECT_EQ(ok_kinds.size(), 9u);
}

// ---------------------------------------------------------------------------------------------
// Names.

TEST(LedgerEngineNamesTest, KindNamesRoundTrip) {
  const std::vector<std::pair<TransferKind, std::string_view>> want = {
      {TransferKind::kFund, "FUND"},         {TransferKind::kAward, "AWARD"},
      {TransferKind::kHold, "HOLD"},         {TransferKind::kPost, "POST"},
      {TransferKind::kVoid, "VOID"},         {TransferKind::kExpire, "EXPIRE"},
      {TransferKind::kPayout, "PAYOUT"},     {TransferKind::kClawback, "CLAWBACK"},
      {TransferKind::kReversal, "REVERSAL"},
  };
  for (const auto& [kind, name] : want) {
    EXPECT_EQ(TransferKindName(kind), name);
    EXPECT_EQ(ParseTransferKind(name), kind);
  }
  EXPECT_EQ(TransferKindName(static_cast<TransferKind>(0)), "UNKNOWN");
  EXPECT_EQ(ParseTransferKind("fund"), std::nullopt);
  EXPECT_EQ(ParseTransferKind("UNKNOWN"), std::nullopt);
  EXPECT_EQ(ParseTransferKind(""), std::nullopt);
  EXPECT_EQ(ParseTransferKind("FUND "), std::nullopt);
}

TEST(LedgerEngineNamesTest, ReasonNames) {
  using R = TransferReason;
  EXPECT_EQ(TransferReasonName(R::kOk), "OK");
  EXPECT_EQ(TransferReasonName(R::kAmountInvalid), "AMOUNT_INVALID");
  EXPECT_EQ(TransferReasonName(R::kAccountNotFound), "ACCOUNT_NOT_FOUND");
  EXPECT_EQ(TransferReasonName(R::kSameAccount), "SAME_ACCOUNT");
  EXPECT_EQ(TransferReasonName(R::kInsufficientFunds), "INSUFFICIENT_FUNDS");
  EXPECT_EQ(TransferReasonName(R::kHoldNotFound), "HOLD_NOT_FOUND");
  EXPECT_EQ(TransferReasonName(R::kHoldAlreadyResolved), "HOLD_ALREADY_RESOLVED");
  EXPECT_EQ(TransferReasonName(R::kHoldExpired), "HOLD_EXPIRED");
  EXPECT_EQ(TransferReasonName(R::kHoldNotExpired), "HOLD_NOT_EXPIRED");
  EXPECT_EQ(TransferReasonName(R::kAmountExceedsHold), "AMOUNT_EXCEEDS_HOLD");
  EXPECT_EQ(TransferReasonName(R::kAccountMismatch), "ACCOUNT_MISMATCH");
  EXPECT_EQ(TransferReasonName(R::kPendingIdInvalid), "PENDING_ID_INVALID");
  EXPECT_EQ(TransferReasonName(R::kExpiryInvalid), "EXPIRY_INVALID");
  EXPECT_EQ(TransferReasonName(R::kOverflow), "OVERFLOW");
  EXPECT_EQ(TransferReasonName(static_cast<R>(99)), "UNKNOWN");
  EXPECT_EQ(static_cast<int16_t>(R::kOverflow), 13);
}

// ---------------------------------------------------------------------------------------------
// Derived values.

TEST(LedgerEngineStateTest, AvailableFenIsExactAndClamped) {
  EXPECT_EQ(Acct(1, 0, 400, 250, 77, 1000).AvailableFen(), 350);
  EXPECT_EQ(Acct(1, 0, 10, 5, 0, 0).AvailableFen(), -15);
  EXPECT_EQ(Acct(1, 0, 0, kMin, 0, kMax).AvailableFen(), kMax);
  EXPECT_EQ(Acct(1, 0, kMax, kMax, 0, kMin).AvailableFen(), kMin);
  EXPECT_EQ(Acct(1, 0, 1, 0, 0, kMax).AvailableFen(), kMax - 1);
}

TEST(LedgerEngineStateTest, RemainingAndExpiry) {
  const HoldState hold = Hold(1, 2, 3, 300, 120, 30, 50, false);
  EXPECT_EQ(hold.RemainingFen(), 150);
  EXPECT_FALSE(hold.ExpiredAt(49));
  EXPECT_TRUE(hold.ExpiredAt(50));
  EXPECT_FALSE(Hold(1, 2, 3, 1, 0, 0, 0, false).ExpiredAt(kMax));
  EXPECT_EQ(Hold(1, 2, 3, kMax, kMin, 0, 0, false).RemainingFen(), kMax);
}

TEST(LedgerEngineStateTest, PutDoesNotTouchAndTouchedIsSortedUnique) {
  LedgerState state;
  for (int64_t id : {9, 5, 3, 7}) state.PutAccount(Acct(id, 0, 0, 0, 0, 0));
  EXPECT_THAT(state.AccountIds(), ElementsAre(3, 5, 7, 9));
  EXPECT_THAT(state.TouchedAccountIds(), IsEmpty());
  EXPECT_EQ(state.FindAccount(4), nullptr);
  EXPECT_EQ(state.FindHold(4), nullptr);

  ASSERT_TRUE(ApplyTransfer(state, Req(TransferKind::kFund, 9, 5, 10), 1, kNow).ok());
  ASSERT_TRUE(ApplyTransfer(state, Req(TransferKind::kFund, 5, 3, 4), 2, kNow).ok());
  ASSERT_EQ(ApplyTransfer(state, Req(TransferKind::kFund, 7, 7, 4), 3, kNow).reason,
            TransferReason::kSameAccount);
  ASSERT_TRUE(ApplyTransfer(state, Req(TransferKind::kHold, 3, 9, 1), 20, kNow).ok());
  ASSERT_TRUE(ApplyTransfer(state, Req(TransferKind::kHold, 3, 5, 2), 11, kNow).ok());
  ASSERT_TRUE(ApplyTransfer(state, HoldRef(TransferKind::kVoid, 20, 0), 12, kNow).ok());
  EXPECT_THAT(state.TouchedAccountIds(), ElementsAre(3, 5, 9));
  EXPECT_THAT(state.TouchedHoldIds(), ElementsAre(11, 20));
  EXPECT_THAT(state.HoldIds(), ElementsAre(11, 20));
  EXPECT_EQ(AccountOf(state, 3), Acct(3, 0, 2, 0, 0, 4));
  EXPECT_EQ(AccountOf(state, 5), Acct(5, 0, 0, 4, 2, 10));
  EXPECT_EQ(AccountOf(state, 9), Acct(9, 0, 0, 10, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Multi-step hold lifecycles.

class LedgerEngineLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_.PutAccount(Acct(kUser, kAccountNoOverdraft, 0, 0, 0, 1000));
    state_.PutAccount(Acct(kProvider, kAccountNoOverdraft, 0, 0, 0, 0));
  }
  LedgerState state_;
};

TEST_F(LedgerEngineLifecycleTest, KeepOpenPostsThenVoidThenPostIsResolved) {
  const uint32_t nod = kAccountNoOverdraft;
  TransferOutcome out =
      ApplyTransfer(state_, Req(TransferKind::kHold, kUser, kProvider, 500), 10, kNow);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.debit_after, Acct(kUser, nod, 500, 0, 0, 1000));
  EXPECT_EQ(AccountOf(state_, kUser).AvailableFen(), 500);

  out = ApplyTransfer(state_, HoldRef(TransferKind::kPost, 10, 100, true), 11, kNow);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.amount_fen, 100);
  EXPECT_EQ(out.released_fen, 0);
  EXPECT_EQ(out.debit_after, Acct(kUser, nod, 400, 100, 0, 1000));
  EXPECT_EQ(out.credit_after, Acct(kProvider, nod, 0, 0, 400, 100));

  out = ApplyTransfer(state_, HoldRef(TransferKind::kPost, 10, 50, true), 12, kNow + 5);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(HoldOf(state_, 10), Hold(10, kUser, kProvider, 500, 150, 0, 0, false));
  EXPECT_EQ(AccountOf(state_, kUser).AvailableFen(), 500);

  out = ApplyTransfer(state_, HoldRef(TransferKind::kVoid, 10, 0), 13, kNow + 6);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.amount_fen, 350);
  EXPECT_EQ(out.released_fen, 0);
  EXPECT_EQ(out.debit_after, Acct(kUser, nod, 0, 150, 0, 1000));
  EXPECT_EQ(out.credit_after, Acct(kProvider, nod, 0, 0, 0, 150));
  EXPECT_EQ(HoldOf(state_, 10), Hold(10, kUser, kProvider, 500, 150, 350, 0, true));
  EXPECT_EQ(AccountOf(state_, kUser).AvailableFen(), 850);

  out = ApplyTransfer(state_, HoldRef(TransferKind::kPost, 10, 0), 14, kNow + 7);
  EXPECT_EQ(out.reason, TransferReason::kHoldAlreadyResolved);
  out = ApplyTransfer(state_, HoldRef(TransferKind::kVoid, 10, 0), 14, kNow + 7);
  EXPECT_EQ(out.reason, TransferReason::kHoldAlreadyResolved);
  EXPECT_EQ(AccountOf(state_, kUser), Acct(kUser, nod, 0, 150, 0, 1000));
  EXPECT_THAT(state_.TouchedHoldIds(), ElementsAre(10));
}

TEST_F(LedgerEngineLifecycleTest, ExpiryBoundaries) {
  const uint32_t nod = kAccountNoOverdraft;
  TransferRequest hold = Req(TransferKind::kHold, kUser, kProvider, 200);
  hold.expires_at_us = kNow + 10;
  ASSERT_TRUE(ApplyTransfer(state_, hold, 10, kNow).ok());

  EXPECT_EQ(ApplyTransfer(state_, HoldRef(TransferKind::kExpire, 10, 0), 11, kNow + 9).reason,
            TransferReason::kHoldNotExpired);
  // Still postable one microsecond before expiry; keep it open.
  TransferOutcome out =
      ApplyTransfer(state_, HoldRef(TransferKind::kPost, 10, 20, true), 11, kNow + 9);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(ApplyTransfer(state_, HoldRef(TransferKind::kPost, 10, 20, true), 12, kNow + 10).reason,
            TransferReason::kHoldExpired);
  EXPECT_EQ(HoldOf(state_, 10), Hold(10, kUser, kProvider, 200, 20, 0, kNow + 10, false));

  out = ApplyTransfer(state_, HoldRef(TransferKind::kExpire, 10, 180), 12, kNow + 10);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.amount_fen, 180);
  EXPECT_EQ(out.debit_after, Acct(kUser, nod, 0, 20, 0, 1000));
  EXPECT_EQ(out.credit_after, Acct(kProvider, nod, 0, 0, 0, 20));
  EXPECT_EQ(HoldOf(state_, 10), Hold(10, kUser, kProvider, 200, 20, 180, kNow + 10, true));
  EXPECT_EQ(ApplyTransfer(state_, HoldRef(TransferKind::kVoid, 10, 0), 13, kNow + 11).reason,
            TransferReason::kHoldAlreadyResolved);
  EXPECT_EQ(ApplyTransfer(state_, HoldRef(TransferKind::kExpire, 10, 0), 13, kNow + 11).reason,
            TransferReason::kHoldAlreadyResolved);
}

TEST_F(LedgerEngineLifecycleTest, HeldFundsAreNotSpendable) {
  ASSERT_TRUE(
      ApplyTransfer(state_, Req(TransferKind::kHold, kUser, kProvider, 700), 10, kNow).ok());
  EXPECT_EQ(
      ApplyTransfer(state_, Req(TransferKind::kPayout, kUser, kProvider, 301), 11, kNow).reason,
      TransferReason::kInsufficientFunds);
  ASSERT_TRUE(
      ApplyTransfer(state_, Req(TransferKind::kPayout, kUser, kProvider, 300), 11, kNow).ok());
  EXPECT_EQ(AccountOf(state_, kUser), Acct(kUser, kAccountNoOverdraft, 700, 300, 0, 1000));
  EXPECT_EQ(AccountOf(state_, kUser).AvailableFen(), 0);
}

// ---------------------------------------------------------------------------------------------
// Overflow.

TEST(LedgerEngineOverflowTest, PostedCreditOverflowChangesNothing) {
  LedgerState state;
  state.PutAccount(Acct(1, 0, 0, 0, 0, 0));
  state.PutAccount(Acct(2, 0, 0, 0, 0, kMax - 5));
  const TransferOutcome out = ApplyTransfer(state, Req(TransferKind::kFund, 1, 2, 6), 1, kNow);
  EXPECT_EQ(out.reason, TransferReason::kOverflow);
  EXPECT_EQ(out.transfer_id, 0);
  EXPECT_EQ(AccountOf(state, 1), Acct(1, 0, 0, 0, 0, 0));
  EXPECT_EQ(AccountOf(state, 2), Acct(2, 0, 0, 0, 0, kMax - 5));
  EXPECT_THAT(state.TouchedAccountIds(), IsEmpty());

  ASSERT_TRUE(ApplyTransfer(state, Req(TransferKind::kFund, 1, 2, 5), 1, kNow).ok());
  EXPECT_EQ(AccountOf(state, 1), Acct(1, 0, 0, 5, 0, 0));
  EXPECT_EQ(AccountOf(state, 2), Acct(2, 0, 0, 0, 0, kMax));
}

TEST(LedgerEngineOverflowTest, PostedDebitOverflowChangesNothing) {
  LedgerState state;
  state.PutAccount(Acct(1, 0, 0, kMax - 1, 0, 0));
  state.PutAccount(Acct(2, 0, 0, 0, 0, 0));
  EXPECT_EQ(ApplyTransfer(state, Req(TransferKind::kAward, 1, 2, 2), 1, kNow).reason,
            TransferReason::kOverflow);
  EXPECT_EQ(ApplyTransfer(state, Req(TransferKind::kAward, 1, 2, kMax), 1, kNow).reason,
            TransferReason::kOverflow);
  EXPECT_EQ(AccountOf(state, 1), Acct(1, 0, 0, kMax - 1, 0, 0));
  EXPECT_EQ(AccountOf(state, 2), Acct(2, 0, 0, 0, 0, 0));
}

TEST(LedgerEngineOverflowTest, NoOverdraftCheckIsExactNearLimits) {
  LedgerState state;
  // Available is exactly kMax; debits may reach it but not pass it.
  state.PutAccount(Acct(1, kAccountNoOverdraft, 0, 0, 0, kMax));
  state.PutAccount(Acct(2, 0, 0, 0, 0, 0));
  EXPECT_EQ(ApplyTransfer(state, Req(TransferKind::kPayout, 1, 2, kMax), 1, kNow).reason,
            TransferReason::kOk);
  EXPECT_EQ(AccountOf(state, 1), Acct(1, kAccountNoOverdraft, 0, kMax, 0, kMax));
  EXPECT_EQ(ApplyTransfer(state, Req(TransferKind::kPayout, 1, 2, 1), 2, kNow).reason,
            TransferReason::kInsufficientFunds);
}

TEST(LedgerEngineOverflowTest, HoldPendingOverflowCreatesNoHold) {
  LedgerState state;
  state.PutAccount(Acct(1, 0, 0, 0, 0, 0));
  state.PutAccount(Acct(2, 0, 0, 0, kMax, 0));
  EXPECT_EQ(ApplyTransfer(state, Req(TransferKind::kHold, 1, 2, 1), 5, kNow).reason,
            TransferReason::kOverflow);
  EXPECT_EQ(state.FindHold(5), nullptr);
  EXPECT_THAT(state.TouchedHoldIds(), IsEmpty());
  EXPECT_EQ(AccountOf(state, 1), Acct(1, 0, 0, 0, 0, 0));
}

TEST(LedgerEngineOverflowTest, PostOverflowLeavesHoldOpen) {
  LedgerState state;
  state.PutAccount(Acct(1, 0, 10, 0, 0, 0));
  state.PutAccount(Acct(2, 0, 0, 0, 10, kMax - 3));
  state.PutHold(Hold(5, 1, 2, 10, 0, 0, 0, false));
  EXPECT_EQ(ApplyTransfer(state, HoldRef(TransferKind::kPost, 5, 4), 6, kNow).reason,
            TransferReason::kOverflow);
  EXPECT_EQ(HoldOf(state, 5), Hold(5, 1, 2, 10, 0, 0, 0, false));
  EXPECT_EQ(AccountOf(state, 1), Acct(1, 0, 10, 0, 0, 0));
  EXPECT_EQ(AccountOf(state, 2), Acct(2, 0, 0, 0, 10, kMax - 3));
  EXPECT_THAT(state.TouchedAccountIds(), IsEmpty());

  // Posting 3 fits; the other 7 is released.
  const TransferOutcome out = ApplyTransfer(state, HoldRef(TransferKind::kPost, 5, 3), 6, kNow);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.released_fen, 7);
  EXPECT_EQ(AccountOf(state, 2), Acct(2, 0, 0, 0, 0, kMax));
  EXPECT_EQ(HoldOf(state, 5), Hold(5, 1, 2, 10, 3, 7, 0, true));
}

TEST(LedgerEngineOverflowTest, CorruptHoldRows) {
  LedgerState state;
  state.PutAccount(Acct(1, 0, 0, 0, 0, 0));
  state.PutAccount(Acct(2, 0, 0, 0, 0, 0));
  state.PutHold(Hold(5, 1, 2, 10, 8, 8, 0, false));     // posted + released > amount
  state.PutHold(Hold(6, 1, 2, kMax, -8, 0, 0, false));  // remaining past INT64_MAX
  EXPECT_EQ(ApplyTransfer(state, HoldRef(TransferKind::kVoid, 5, 0), 7, kNow).reason,
            TransferReason::kAmountExceedsHold);
  EXPECT_EQ(ApplyTransfer(state, HoldRef(TransferKind::kVoid, 6, 0), 7, kNow).reason,
            TransferReason::kOverflow);
  EXPECT_THAT(state.TouchedAccountIds(), IsEmpty());
  EXPECT_THAT(state.TouchedHoldIds(), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Batches.

TEST(LedgerEngineBatchTest, FailureInTheMiddleFailsAloneAndIdsAreDense) {
  const uint32_t nod = kAccountNoOverdraft;
  LedgerState state;
  state.PutAccount(Acct(kOperator, 0, 0, 0, 0, 0));
  state.PutAccount(Acct(kUser, nod, 0, 0, 0, 0));
  state.PutAccount(Acct(kProvider, nod, 0, 0, 0, 0));
  const std::vector<TransferRequest> batch = {
      Req(TransferKind::kFund, kOperator, kUser, 1000),
      Req(TransferKind::kPayout, kUser, kOperator, 1001),  // insufficient
      Req(TransferKind::kHold, kUser, kProvider, 400),     // gets id 101
      HoldRef(TransferKind::kPost, 101, 150),              // releases 250
      HoldRef(TransferKind::kPost, 101, 0),                // already resolved
      Req(TransferKind::kPayout, kUser, kOperator, 850),   // exactly available
  };
  const std::vector<TransferOutcome> out = ApplyTransferBatch(state, batch, 100, kNow);
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(out[0].reason, TransferReason::kOk);
  EXPECT_EQ(out[0].transfer_id, 100);
  EXPECT_EQ(out[1].reason, TransferReason::kInsufficientFunds);
  EXPECT_EQ(out[1].transfer_id, 0);
  EXPECT_EQ(out[2].reason, TransferReason::kOk);
  EXPECT_EQ(out[2].transfer_id, 101);
  EXPECT_EQ(out[2].debit_after, Acct(kUser, nod, 400, 0, 0, 1000));
  EXPECT_EQ(out[3].reason, TransferReason::kOk);
  EXPECT_EQ(out[3].transfer_id, 102);
  EXPECT_EQ(out[3].amount_fen, 150);
  EXPECT_EQ(out[3].released_fen, 250);
  EXPECT_EQ(out[3].debit_after, Acct(kUser, nod, 0, 150, 0, 1000));
  EXPECT_EQ(out[3].credit_after, Acct(kProvider, nod, 0, 0, 0, 150));
  EXPECT_EQ(out[4].reason, TransferReason::kHoldAlreadyResolved);
  EXPECT_EQ(out[5].reason, TransferReason::kOk);
  EXPECT_EQ(out[5].transfer_id, 103);
  EXPECT_EQ(out[5].debit_after, Acct(kUser, nod, 0, 1000, 0, 1000));
  EXPECT_EQ(out[5].credit_after, Acct(kOperator, 0, 0, 1000, 0, 850));

  EXPECT_EQ(AccountOf(state, kOperator), Acct(kOperator, 0, 0, 1000, 0, 850));
  EXPECT_EQ(AccountOf(state, kUser), Acct(kUser, nod, 0, 1000, 0, 1000));
  EXPECT_EQ(AccountOf(state, kProvider), Acct(kProvider, nod, 0, 0, 0, 150));
  EXPECT_EQ(HoldOf(state, 101), Hold(101, kUser, kProvider, 400, 150, 250, 0, true));
  EXPECT_THAT(state.HoldIds(), ElementsAre(101));
  EXPECT_THAT(state.TouchedAccountIds(), ElementsAre(kOperator, kUser, kProvider));
  EXPECT_THAT(state.TouchedHoldIds(), ElementsAre(101));
}

TEST(LedgerEngineBatchTest, EmptyBatch) {
  LedgerState state;
  EXPECT_THAT(ApplyTransferBatch(state, {}, 1, kNow), IsEmpty());
}

TEST(LedgerEngineBatchTest, IdSequenceExhaustionFailsTheRest) {
  LedgerState state;
  state.PutAccount(Acct(1, 0, 0, 0, 0, 0));
  state.PutAccount(Acct(2, 0, 0, 0, 0, 0));
  const std::vector<TransferRequest> batch = {
      Req(TransferKind::kFund, 1, 2, 0),  // fails: does not consume kMax - 1
      Req(TransferKind::kFund, 1, 2, 1),
      Req(TransferKind::kFund, 1, 2, 2),
      Req(TransferKind::kFund, 1, 2, 4),
  };
  const std::vector<TransferOutcome> out = ApplyTransferBatch(state, batch, kMax - 1, kNow);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].reason, TransferReason::kAmountInvalid);
  EXPECT_EQ(out[1].transfer_id, kMax - 1);
  EXPECT_EQ(out[2].transfer_id, kMax);
  EXPECT_EQ(out[3].reason, TransferReason::kOverflow);
  EXPECT_EQ(out[3].transfer_id, 0);
  EXPECT_EQ(AccountOf(state, 2), Acct(2, 0, 0, 0, 0, 3));
}

// ---------------------------------------------------------------------------------------------
// Randomized property test.

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  // Integer in [lo, hi]; modulo bias is irrelevant here and keeps the sequence identical across
  // standard libraries.
  int64_t In(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(engine_() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Percent(int p) { return In(0, 99) < p; }

 private:
  std::mt19937_64 engine_;
};

constexpr int64_t kPropertyAccounts = 10;  // ids 1..10 exist; 11 never does

// Tracks holds across operations so that each check only walks the open ones: a hold is checked
// on every operation while open, snapshotted when it resolves, and resolved holds are compared
// with their snapshots (they must never change again) at the end.
class HoldTracker {
 public:
  void Created(int64_t id) {
    all_.push_back(id);
    open_.push_back(id);
  }
  const std::vector<int64_t>& all() const { return all_; }
  const std::vector<int64_t>& open() const { return open_; }

  // Fails fatally if any invariant is broken.
  void Check(const LedgerState& state) {
    __int128 debits_posted = 0, credits_posted = 0, debits_pending = 0, credits_pending = 0;
    std::vector<__int128> open_debit(kPropertyAccounts + 1), open_credit(kPropertyAccounts + 1);
    std::vector<int64_t> still_open;
    for (int64_t id : open_) {
      const HoldState* h = state.FindHold(id);
      ASSERT_NE(h, nullptr) << id;
      ASSERT_GT(h->amount_fen, 0) << id;
      ASSERT_GE(h->posted_fen, 0) << id;
      ASSERT_GE(h->released_fen, 0) << id;
      ASSERT_TRUE(static_cast<__int128>(h->posted_fen) + h->released_fen <= h->amount_fen) << id;
      if (h->resolved) {
        ASSERT_EQ(h->RemainingFen(), 0) << id;
        closed_[id] = *h;
        continue;
      }
      ASSERT_GT(h->RemainingFen(), 0) << id;
      open_debit[h->debit_account_id] += h->RemainingFen();
      open_credit[h->credit_account_id] += h->RemainingFen();
      still_open.push_back(id);
    }
    open_ = std::move(still_open);
    for (int64_t id = 1; id <= kPropertyAccounts; ++id) {
      const AccountState& a = AccountOf(state, id);
      debits_posted += a.debits_posted_fen;
      credits_posted += a.credits_posted_fen;
      debits_pending += a.debits_pending_fen;
      credits_pending += a.credits_pending_fen;
      if ((a.flags & kAccountNoOverdraft) != 0) {
        ASSERT_GE(a.AvailableFen(), 0) << id;
      }
      ASSERT_TRUE(a.debits_pending_fen == open_debit[id]) << id;
      ASSERT_TRUE(a.credits_pending_fen == open_credit[id]) << id;
    }
    ASSERT_TRUE(debits_posted == credits_posted);
    ASSERT_TRUE(debits_pending == credits_pending);
  }

  void CheckFinal(const LedgerState& state) const {
    std::vector<int64_t> sorted = all_;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(state.HoldIds(), sorted);
    ASSERT_EQ(closed_.size() + open_.size(), all_.size());
    for (const auto& [id, snapshot] : closed_) ASSERT_EQ(HoldOf(state, id), snapshot) << id;
  }

 private:
  std::vector<int64_t> all_;
  std::vector<int64_t> open_;
  absl::flat_hash_map<int64_t, HoldState> closed_;
};

// open_ids / all_ids: holds open after the previous operation / ever created.
TransferRequest RandomRequest(Rng& rng, const std::vector<int64_t>& open_ids,
                              const std::vector<int64_t>& all_ids, int64_t now) {
  constexpr TransferKind kKinds[] = {
      TransferKind::kFund,   TransferKind::kAward,    TransferKind::kHold,
      TransferKind::kPost,   TransferKind::kVoid,     TransferKind::kExpire,
      TransferKind::kPayout, TransferKind::kClawback, TransferKind::kReversal};
  TransferRequest r;
  // Extra weight on holds and their resolution; VOID / EXPIRE keep the number of open holds small.
  constexpr TransferKind kExtra[] = {
      TransferKind::kHold, TransferKind::kHold,   TransferKind::kPost,  TransferKind::kVoid,
      TransferKind::kVoid, TransferKind::kExpire, TransferKind::kExpire};
  const int64_t pick = rng.In(0, 15);
  r.kind = pick < 9 ? kKinds[pick] : kExtra[pick - 9];
  if (rng.Percent(1)) r.kind = static_cast<TransferKind>(rng.In(10, 20));
  const bool hold_ref = r.kind == TransferKind::kPost || r.kind == TransferKind::kVoid ||
                        (r.kind == TransferKind::kExpire && rng.Percent(60));
  if (hold_ref) {
    if (!open_ids.empty() && rng.Percent(75)) {
      r.pending_id = open_ids[rng.In(0, static_cast<int64_t>(open_ids.size()) - 1)];
    } else if (!all_ids.empty() && rng.Percent(70)) {
      r.pending_id = all_ids[rng.In(0, static_cast<int64_t>(all_ids.size()) - 1)];
    } else {
      r.pending_id = rng.In(-1, 3);
    }
    r.amount_fen = rng.Percent(50) ? 0 : rng.In(-1, 400);
    r.keep_open = rng.Percent(50);
    if (rng.Percent(5)) r.debit_account_id = rng.In(1, kPropertyAccounts);
    if (rng.Percent(5)) r.credit_account_id = rng.In(1, kPropertyAccounts);
  } else {
    r.debit_account_id = rng.In(1, kPropertyAccounts + 1);
    r.credit_account_id = rng.In(1, kPropertyAccounts + 1);
    if (r.kind == TransferKind::kFund && rng.Percent(60)) r.debit_account_id = 1;
    r.amount_fen = rng.Percent(3) ? rng.In(-2, 0) : rng.In(1, 3000);
    if (rng.Percent(2)) r.pending_id = rng.In(1, 1000);
  }
  if (r.kind == TransferKind::kHold) {
    r.expires_at_us = rng.Percent(40) ? 0 : now + rng.In(-50, 3000);
  } else if (rng.Percent(1)) {
    r.expires_at_us = now + 1;
  }
  return r;
}

std::vector<AccountState> AllAccounts(const LedgerState& state) {
  std::vector<AccountState> rows;
  for (int64_t id = 1; id <= kPropertyAccounts; ++id) rows.push_back(AccountOf(state, id));
  return rows;
}

TEST(LedgerEnginePropertyTest, RandomOperationsKeepInvariants) {
  constexpr uint64_t kSeeds[] = {1, 7, 42, 20240601};
  constexpr int kOpsPerSeed = 4000;
  std::set<TransferReason> reasons_seen;
  std::set<TransferKind> kinds_ok;
  int ok_count = 0;
  int total = 0;
  for (uint64_t seed : kSeeds) {
    SCOPED_TRACE(::testing::Message() << "seed=" << seed);
    ::testing::Test::RecordProperty("seed_" + std::to_string(seed), static_cast<int>(seed));
    Rng rng(seed);
    LedgerState state;
    // 1: operator (may go negative); 2..7 no-overdraft users and providers; 8: system sink;
    // 9/10: a balanced pair near INT64_MAX so that overflow paths are exercised.
    state.PutAccount(Acct(1, 0, 0, 0, 0, 0));
    for (int64_t id = 2; id <= 7; ++id) {
      state.PutAccount(Acct(id, kAccountNoOverdraft, 0, 0, 0, 0));
    }
    state.PutAccount(Acct(8, 0, 0, 0, 0, 0));
    state.PutAccount(Acct(9, 0, 0, 0, 0, kMax - 2000));
    state.PutAccount(Acct(10, 0, 0, kMax - 2000, 0, 0));
    HoldTracker holds;
    int64_t next_id = 1;
    int64_t now = kNow;
    for (int op = 0; op < kOpsPerSeed; ++op) {
      now += rng.In(0, 60);
      const int batch_size = rng.Percent(20) ? static_cast<int>(rng.In(1, 4)) : 1;
      std::vector<TransferRequest> batch;
      for (int i = 0; i < batch_size; ++i)
        batch.push_back(RandomRequest(rng, holds.open(), holds.all(), now));

      const std::vector<AccountState> accounts_before = AllAccounts(state);
      const std::vector<TransferOutcome> outcomes = ApplyTransferBatch(state, batch, next_id, now);
      ASSERT_EQ(outcomes.size(), batch.size());
      int ok_in_batch = 0;
      for (size_t i = 0; i < outcomes.size(); ++i) {
        const TransferOutcome& out = outcomes[i];
        ++total;
        reasons_seen.insert(out.reason);
        if (!out.ok()) {
          ASSERT_EQ(out.transfer_id, 0);
          continue;
        }
        ++ok_count;
        kinds_ok.insert(batch[i].kind);
        ASSERT_EQ(out.transfer_id, next_id + ok_in_batch) << "op " << op;
        ++ok_in_batch;
        if (batch[i].kind == TransferKind::kHold) holds.Created(out.transfer_id);
      }
      next_id += ok_in_batch;
      if (ok_in_batch == 0) {
        ASSERT_EQ(AllAccounts(state), accounts_before) << "op " << op;
      }
      if (batch_size == 1 && outcomes[0].ok()) {
        const TransferOutcome& out = outcomes[0];
        ASSERT_EQ(AccountOf(state, out.debit_account_id), out.debit_after);
        ASSERT_EQ(AccountOf(state, out.credit_account_id), out.credit_after);
      }
      ASSERT_NO_FATAL_FAILURE(holds.Check(state)) << "op " << op;
    }
    ASSERT_NO_FATAL_FAILURE(holds.CheckFinal(state));
    const std::vector<int64_t> touched = state.TouchedAccountIds();
    ASSERT_TRUE(std::is_sorted(touched.begin(), touched.end()));
    ASSERT_EQ(std::adjacent_find(touched.begin(), touched.end()), touched.end());
    ASSERT_EQ(state.TouchedHoldIds(), state.HoldIds());
  }
  // The generator reaches every outcome and every kind's success path.
  EXPECT_EQ(reasons_seen.size(), 14u);
  EXPECT_EQ(kinds_ok.size(), 9u);
  EXPECT_GT(ok_count, total / 4);
  ::testing::Test::RecordProperty("ops", total);
  ::testing::Test::RecordProperty("ok", ok_count);
}

}  // namespace
}  // namespace vch::policy
