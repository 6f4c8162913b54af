// Issuers, programs, enterprises, applications and awards against a real PostgreSQL: the
// program lifecycle, idempotent mutations (stored bytes replayed, keys not consumed by
// failures), eligibility at submission writing nothing when refused, awards moving exactly
// their amount budget -> wallet, concurrent approvals that never overspend a budget nor an
// enterprise's cap, clawbacks, and the exactly-once expiry of awards; the ledger verifies
// after each.
#include "storage/program_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "policy/programs.h"
#include "storage/ledger_store.h"
#include "storage/ledger_writer.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using policy::EnterpriseKind;
using policy::IssuerLevel;
using policy::ProgramRules;
using policy::ProgramState;
using policy::SizeClass;
using ::testing::HasSubstr;
using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;
using ::vch::testing::StatusIs;

constexpr absl::StatusCode kFailedPrecondition = absl::StatusCode::kFailedPrecondition;
constexpr absl::StatusCode kNotFound = absl::StatusCode::kNotFound;
constexpr absl::StatusCode kAlreadyExists = absl::StatusCode::kAlreadyExists;
constexpr absl::StatusCode kInvalidArgument = absl::StatusCode::kInvalidArgument;

// A valid code: "91" + region (6 digits) + "MA" + 7 digits of `n`, plus its check character.
std::string Uscc(const std::string& region, int n) {
  const std::string first17 = absl::StrFormat("91%sMA%07d", region, n);
  return first17 + policy::UsccCheckCharacter(first17);
}

// Encoders write checkable, '|'-joined fields; Fields() splits them back.
std::vector<std::string> Fields(const std::string& bytes) { return absl::StrSplit(bytes, '|'); }

std::string EncodeProgram(const ProgramRecord& p) {
  return absl::StrCat(p.id, "|", p.issuer_id, "|", static_cast<int>(p.state), "|", p.funded_fen,
                      "|", p.budget_available_fen);
}

std::string EncodeApplication(const ApplicationRecord& a) {
  return absl::StrCat(a.id, "|", a.program_id, "|", a.uscc, "|", static_cast<int>(a.state), "|",
                      a.requested_fen, "|", a.awarded_fen, "|", a.award_transfer_id);
}

std::string EncodeEnterprise(const EnterpriseRecord& e) {
  return absl::StrCat(e.uscc, "|", e.display_name, "|", e.region_code, "|",
                      static_cast<int>(e.kind), "|", static_cast<int>(e.size));
}

int64_t AppId(const std::string& bytes) {
  int64_t id = 0;
  EXPECT_TRUE(absl::SimpleAtoi(Fields(bytes)[0], &id)) << bytes;
  return id;
}

// Rows that any mutation might write; equal snapshots = nothing written.
struct Counts {
  int64_t applications, transfers, accounts, program_enterprises, idempotency_keys, clawbacks;
  int64_t submitted, approved, rejected, withdrawn;
  friend bool operator==(const Counts&, const Counts&) = default;
};

std::ostream& operator<<(std::ostream& os, const Counts& c) {
  return os << "apps=" << c.applications << " transfers=" << c.transfers
            << " accounts=" << c.accounts << " pe=" << c.program_enterprises
            << " keys=" << c.idempotency_keys << " clawbacks=" << c.clawbacks
            << " states=" << c.submitted << "/" << c.approved << "/" << c.rejected << "/"
            << c.withdrawn;
}

class ProgramStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateTestDatabase();
    pool_ = std::move(*PgPool::Create({.dsn = dsn_, .size = 16}));
    sql_ = std::make_unique<pqxx::connection>(dsn_);
    // Whole seconds, so times round-trip through microsecond columns exactly.
    now_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  }

  IdempotencyKey Key(const std::string& op, const std::string& hash = "") {
    const std::string id = absl::StrCat(op, "-", ++key_counter_);
    return {.scope = absl::StrCat("test/", op), .request_id = id, .request_hash = hash + id};
  }

  void AddIssuer(const std::string& id, const std::string& region, IssuerLevel level) {
    ASSERT_THAT(
        RegisterIssuer(*pool_, Key("RegisterIssuer"),
                       {.id = id, .display_name = id, .region_code = region, .level = level},
                       [](const IssuerRecord& i) { return i.id; }),
        IsOk());
  }

  // Valid rules: applications open now, redemption ends in 60 days; SMEs and startups, micro to
  // medium, local only, cap 100'000 fen.
  ProgramRules Rules(const std::string& name = "AI compute vouchers") {
    ProgramRules r;
    r.name = name;
    r.category = policy::ProgramCategory::kAiRental;
    r.planned_budget_fen = 100'000'000'000;
    r.subsidy_ratio_bps = 8000;
    r.per_enterprise_cap_fen = 100'000;
    r.eligible_kinds = {EnterpriseKind::kSme, EnterpriseKind::kStartup};
    r.eligible_sizes = {SizeClass::kMicro, SizeClass::kSmall, SizeClass::kMedium};
    r.local_enterprises_only = true;
    r.application_start = now_ - absl::Hours(1);
    r.application_end = now_ + absl::Hours(24 * 30);
    r.redemption_start = now_ - absl::Hours(1);
    r.redemption_end = now_ + absl::Hours(24 * 60);
    r.datacenter_scope = policy::DatacenterScope::kLocal;
    r.price_ceiling_fen_per_gpu_hour = 2'000;
    EXPECT_THAT(policy::ValidateProgramRules(r), IsOk());
    return r;
  }

  // Creates a DRAFT program and returns its record.
  ProgramRecord Create(const std::string& issuer, const std::string& id, const ProgramRules& r) {
    ProgramRecord out;
    absl::StatusOr<std::string> s =
        CreateProgram(*pool_, Key("CreateProgram"), issuer, id, r, [&](const ProgramRecord& p) {
          out = p;
          return EncodeProgram(p);
        });
    EXPECT_THAT(s, IsOk());
    return out;
  }

  absl::StatusOr<std::string> Transition(const std::string& scope, const std::string& id,
                                         ProgramState to) {
    return TransitionProgram(*pool_, Key("TransitionProgram"), scope, id, to, EncodeProgram);
  }

  absl::StatusOr<std::string> Fund(const std::string& scope, const std::string& id, int64_t fen) {
    return FundProgram(*pool_, Key("FundProgram"), scope, id, fen, "tranche",
                       [](const ProgramRecord& p, int64_t transfer_id) {
                         return absl::StrCat(EncodeProgram(p), "|", transfer_id);
                       });
  }

  // Creates, opens and funds a program.
  ProgramRecord OpenFunded(const std::string& issuer, const std::string& id, const ProgramRules& r,
                           int64_t fund_fen) {
    Create(issuer, id, r);
    EXPECT_THAT(Transition(issuer, id, ProgramState::kOpen), IsOk());
    if (fund_fen > 0) {
      EXPECT_THAT(Fund(issuer, id, fund_fen), IsOk());
    }
    absl::StatusOr<ProgramRecord> p = GetProgram(*pool_, id);
    EXPECT_THAT(p, IsOk());
    return *p;
  }

  void AddEnterprise(const std::string& uscc, const std::string& region,
                     EnterpriseKind kind = EnterpriseKind::kSme,
                     SizeClass size = SizeClass::kSmall) {
    ASSERT_THAT(RegisterEnterprise(*pool_, Key("RegisterEnterprise"),
                                   {.uscc = uscc,
                                    .display_name = absl::StrCat("Enterprise ", uscc),
                                    .region_code = region,
                                    .kind = kind,
                                    .size = size},
                                   EncodeEnterprise),
                IsOk());
  }

  absl::StatusOr<std::string> Submit(const std::string& program, const std::string& uscc,
                                     int64_t fen, absl::Time now) {
    return SubmitApplication(*pool_, Key("SubmitApplication"), program, uscc, fen, "training", now,
                             EncodeApplication);
  }

  // Submits and returns the new application's id (0 on failure).
  int64_t SubmitOk(const std::string& program, const std::string& uscc, int64_t fen) {
    absl::StatusOr<std::string> s = Submit(program, uscc, fen, now_);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? AppId(*s) : 0;
  }

  absl::StatusOr<std::string> Approve(int64_t app, const std::string& scope, int64_t fen) {
    return ApproveApplication(*pool_, Key("ApproveApplication"), app, scope, "reviewer-1", fen,
                              "meets the criteria", EncodeApplication);
  }

  ApplicationRecord App(int64_t id) {
    absl::StatusOr<ApplicationRecord> a = GetApplication(*pool_, id, {});
    EXPECT_THAT(a, IsOk());
    return a.ok() ? *a : ApplicationRecord{};
  }

  policy::AccountState Account(int64_t id) {
    absl::StatusOr<AccountRecord> a = GetAccount(*pool_, id, {.all = true});
    EXPECT_THAT(a, IsOk());
    return a.ok() ? a->state : policy::AccountState{};
  }

  int64_t Available(int64_t account_id) { return Account(account_id).AvailableFen(); }

  int64_t Query(const std::string& sql) {
    pqxx::nontransaction tx(*sql_);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  Counts Snapshot() {
    return {Query("SELECT count(*) FROM applications"),
            Query("SELECT count(*) FROM ledger_transfers"),
            Query("SELECT count(*) FROM ledger_accounts"),
            Query("SELECT count(*) FROM program_enterprises"),
            Query("SELECT count(*) FROM idempotency_keys"),
            Query("SELECT count(*) FROM clawbacks"),
            Query("SELECT count(*) FROM applications WHERE state = 1"),
            Query("SELECT count(*) FROM applications WHERE state = 2"),
            Query("SELECT count(*) FROM applications WHERE state = 3"),
            Query("SELECT count(*) FROM applications WHERE state = 4")};
  }

  // Opens every pooled connection now: the pool opens them lazily under its mutex, which would
  // stagger the first use by concurrent threads and so serialize what should race.
  void WarmPool() {
    std::vector<PgPool::Lease> leases;
    for (int i = 0; i < pool_->size(); ++i) {
      absl::StatusOr<PgPool::Lease> lease = pool_->Acquire();
      ASSERT_THAT(lease, IsOk());
      leases.push_back(std::move(*lease));
    }
  }

  // Runs `op` on a thread, waits (bounded) until it is blocked behind the open transaction
  // `blocker` of backend `blocker_pid` (or done), then commits `blocker` and joins.
  void RunBehind(pqxx::work& blocker, int blocker_pid, const std::function<void()>& op) {
    std::atomic<bool> done{false};
    std::thread runner([&] {
      op();
      done = true;
    });
    const std::string blocked = absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE ",
                                             blocker_pid, " = ANY(pg_blocking_pids(pid))");
    for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
         !done && absl::Now() < deadline && Query(blocked) == 0;) {
    }
    blocker.commit();
    runner.join();
  }

  void ExpectLedgerVerifies() {
    absl::StatusOr<LedgerVerification> v = VerifyLedger(*pool_);
    ASSERT_THAT(v, IsOk());
    EXPECT_TRUE(v->violations.empty()) << v->violations.front();
    // Invariant 4, which VerifyLedger leaves to the award tables.
    EXPECT_EQ(Query("SELECT count(*) FROM program_enterprises WHERE awarded_fen - clawed_back_fen "
                    "> cap_fen"),
              0);
    // program_enterprises agrees with the ledger: net awards = AWARD - CLAWBACK transfers.
    EXPECT_EQ(Query("SELECT count(*) FROM program_enterprises pe WHERE pe.awarded_fen <> "
                    "(SELECT COALESCE(sum(amount_fen), 0) FROM ledger_transfers WHERE kind = 2 "
                    "AND credit_account_id = pe.wallet_account_id) OR pe.clawed_back_fen <> "
                    "(SELECT COALESCE(sum(amount_fen), 0) FROM ledger_transfers WHERE kind = 8 "
                    "AND debit_account_id = pe.wallet_account_id)"),
              0);
  }

  std::string dsn_;
  std::unique_ptr<PgPool> pool_;
  std::unique_ptr<pqxx::connection> sql_;
  absl::Time now_;
  // An SME in Chengdu's Jinjiang district.
  const std::string kChengduEnterprise = Uscc("510104", 1);
  int key_counter_ = 0;
};

// ------------------------------------------------------------------------------------------
// 1. Program lifecycle

TEST_F(ProgramStoreTest, ProgramLifecycleFromDraftToArchived) {
  AddIssuer("shandong", "370000", IssuerLevel::kProvince);
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRules rules = Rules("Shandong compute vouchers 2026");

  // Create: DRAFT, with its treasury, budget and lapsed accounts.
  ProgramRecord created;
  absl::StatusOr<std::string> bytes = CreateProgram(
      *pool_, Key("CreateProgram"), "shandong", "sd-ai-2026", rules, [&](const ProgramRecord& p) {
        created = p;
        return EncodeProgram(p);
      });
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(*bytes, "sd-ai-2026|shandong|1|0|0");
  EXPECT_EQ(created.state, ProgramState::kDraft);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_accounts WHERE program_id = 'sd-ai-2026'"), 3);
  const std::map<int64_t, std::pair<std::string, bool>> accounts = {
      {created.treasury_account_id, {"TREASURY", false}},
      {created.budget_account_id, {"BUDGET", true}},
      {created.lapsed_account_id, {"LAPSED", false}}};
  ASSERT_EQ(accounts.size(), 3u);  // three distinct ids
  for (const auto& [id, kind_and_no_overdraft] : accounts) {
    absl::StatusOr<AccountRecord> a = GetAccount(*pool_, id, {.all = true});
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(a->kind, kind_and_no_overdraft.first);
    EXPECT_EQ(a->program_id, "sd-ai-2026");
    EXPECT_EQ(a->issuer_id, "shandong");
    EXPECT_EQ(a->owner, "");
    EXPECT_EQ((a->state.flags & 1) != 0, kind_and_no_overdraft.second) << a->kind;
    EXPECT_EQ(a->state, (policy::AccountState{.id = id, .flags = a->state.flags}));
  }

  // The rules round-trip exactly.
  absl::StatusOr<ProgramRecord> got = GetProgram(*pool_, "sd-ai-2026");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->issuer_id, "shandong");
  EXPECT_EQ(got->rules.name, rules.name);
  EXPECT_EQ(got->rules.planned_budget_fen, rules.planned_budget_fen);
  EXPECT_EQ(got->rules.subsidy_ratio_bps, 8000);
  EXPECT_EQ(got->rules.per_enterprise_cap_fen, 100'000);
  EXPECT_EQ(got->rules.eligible_kinds, rules.eligible_kinds);
  EXPECT_EQ(got->rules.eligible_sizes, rules.eligible_sizes);
  EXPECT_EQ(got->rules.application_start, rules.application_start);
  EXPECT_EQ(got->rules.application_end, rules.application_end);
  EXPECT_EQ(got->rules.redemption_start, rules.redemption_start);
  EXPECT_EQ(got->rules.redemption_end, rules.redemption_end);
  EXPECT_EQ(got->rules.datacenter_scope, policy::DatacenterScope::kLocal);
  EXPECT_EQ(got->rules.price_ceiling_fen_per_gpu_hour, 2'000);

  // Update while DRAFT.
  ProgramRules changed = rules;
  changed.name = "Shandong compute vouchers 2026 (revised)";
  changed.per_enterprise_cap_fen = 5'000'000;
  changed.max_award_fen = 1'000'000;
  changed.eligible_sizes = {SizeClass::kSmall};
  changed.datacenter_scope = policy::DatacenterScope::kList;
  changed.datacenter_ids = {"jinan-1", "qingdao-2"};
  ASSERT_THAT(
      UpdateProgram(*pool_, Key("UpdateProgram"), "shandong", "sd-ai-2026", changed, EncodeProgram),
      IsOk());
  got = GetProgram(*pool_, "sd-ai-2026");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->rules.name, changed.name);
  EXPECT_EQ(got->rules.per_enterprise_cap_fen, 5'000'000);
  EXPECT_EQ(got->rules.max_award_fen, 1'000'000);
  EXPECT_EQ(got->rules.eligible_sizes, std::vector<SizeClass>{SizeClass::kSmall});
  EXPECT_EQ(got->rules.datacenter_ids, (std::vector<std::string>{"jinan-1", "qingdao-2"}));
  EXPECT_GE(got->updated_at, got->created_at);

  // Another issuer's scope sees nothing: NOT_FOUND for update, transition and fund.
  EXPECT_THAT(
      UpdateProgram(*pool_, Key("UpdateProgram"), "shanghai", "sd-ai-2026", rules, EncodeProgram),
      StatusIs(kNotFound, "PROGRAM_NOT_FOUND"));
  EXPECT_THAT(Transition("shanghai", "sd-ai-2026", ProgramState::kOpen),
              StatusIs(kNotFound, "PROGRAM_NOT_FOUND"));
  EXPECT_THAT(Fund("shanghai", "sd-ai-2026", 100), StatusIs(kNotFound, "PROGRAM_NOT_FOUND"));
  EXPECT_THAT(Transition("", "no-such-program", ProgramState::kOpen),
              StatusIs(kNotFound, "PROGRAM_NOT_FOUND"));

  // Open; the rules are then fixed.
  ASSERT_THAT(Transition("shandong", "sd-ai-2026", ProgramState::kOpen), IsOk());
  EXPECT_THAT(
      UpdateProgram(*pool_, Key("UpdateProgram"), "shandong", "sd-ai-2026", rules, EncodeProgram),
      StatusIs(kFailedPrecondition, "PROGRAM_NOT_DRAFT"));
  got = GetProgram(*pool_, "sd-ai-2026");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, ProgramState::kOpen);
  EXPECT_EQ(got->rules.name, changed.name);

  // Two tranches: 30 M CNY, then 1 B CNY.
  absl::StatusOr<std::string> first = Fund("shandong", "sd-ai-2026", 3'000'000'000);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(Fields(*first)[3], "3000000000");
  absl::StatusOr<std::string> second = Fund("", "sd-ai-2026", 100'000'000'000);
  ASSERT_THAT(second, IsOk());
  EXPECT_NE(Fields(*first)[5], Fields(*second)[5]);  // two transfers
  got = GetProgram(*pool_, "sd-ai-2026");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->funded_fen, 103'000'000'000);
  EXPECT_EQ(got->budget_available_fen, 103'000'000'000);
  EXPECT_EQ(Available(created.budget_account_id), 103'000'000'000);
  EXPECT_EQ(Account(created.treasury_account_id).debits_posted_fen, 103'000'000'000);
  EXPECT_EQ(Available(created.treasury_account_id), -103'000'000'000);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 1 AND program_id = "
                  "'sd-ai-2026'"),
            2);
  EXPECT_THAT(Fund("shandong", "sd-ai-2026", 0), StatusIs(kInvalidArgument, "AMOUNT_INVALID"));

  // Illegal transitions from OPEN.
  for (ProgramState to : {ProgramState::kDraft, ProgramState::kOpen, ProgramState::kArchived}) {
    EXPECT_THAT(Transition("shandong", "sd-ai-2026", to),
                StatusIs(kFailedPrecondition, "PROGRAM_STATE_INVALID"))
        << static_cast<int>(to);
  }
  ASSERT_THAT(Transition("shandong", "sd-ai-2026", ProgramState::kClosed), IsOk());
  for (ProgramState to : {ProgramState::kDraft, ProgramState::kOpen, ProgramState::kClosed}) {
    EXPECT_THAT(Transition("shandong", "sd-ai-2026", to),
                StatusIs(kFailedPrecondition, "PROGRAM_STATE_INVALID"))
        << static_cast<int>(to);
  }
  // A CLOSED program can still be funded (only ARCHIVED cannot).
  ASSERT_THAT(Fund("shandong", "sd-ai-2026", 1), IsOk());
  absl::StatusOr<std::string> archived =
      Transition("shandong", "sd-ai-2026", ProgramState::kArchived);
  ASSERT_THAT(archived, IsOk());
  EXPECT_EQ(*archived, "sd-ai-2026|shandong|4|103000000001|103000000001");
  for (ProgramState to : {ProgramState::kDraft, ProgramState::kOpen, ProgramState::kClosed,
                          ProgramState::kArchived}) {
    EXPECT_THAT(Transition("shandong", "sd-ai-2026", to),
                StatusIs(kFailedPrecondition, "PROGRAM_STATE_INVALID"))
        << static_cast<int>(to);
  }
  EXPECT_THAT(Fund("shandong", "sd-ai-2026", 1), StatusIs(kFailedPrecondition, "PROGRAM_ARCHIVED"));
  EXPECT_EQ(GetProgram(*pool_, "sd-ai-2026")->funded_fen, 103'000'000'001);

  // A draft may be archived without ever opening.
  Create("shandong", "sd-never-opened", rules);
  EXPECT_THAT(Transition("shandong", "sd-never-opened", ProgramState::kClosed),
              StatusIs(kFailedPrecondition, "PROGRAM_STATE_INVALID"));
  EXPECT_THAT(Transition("shandong", "sd-never-opened", ProgramState::kArchived), IsOk());

  // Duplicate program ids, also from another issuer; an unknown issuer.
  const Counts before = Snapshot();
  EXPECT_THAT(
      CreateProgram(*pool_, Key("CreateProgram"), "shandong", "sd-ai-2026", rules, EncodeProgram),
      StatusIs(kAlreadyExists, "PROGRAM_EXISTS"));
  EXPECT_THAT(
      CreateProgram(*pool_, Key("CreateProgram"), "shanghai", "sd-ai-2026", rules, EncodeProgram),
      StatusIs(kAlreadyExists, "PROGRAM_EXISTS"));
  EXPECT_THAT(
      CreateProgram(*pool_, Key("CreateProgram"), "beijing", "bj-ai-2026", rules, EncodeProgram),
      StatusIs(kNotFound, "ISSUER_NOT_FOUND"));
  EXPECT_EQ(Snapshot(), before);

  // Listing by issuer and state.
  Create("shanghai", "sh-ai-2026", rules);
  absl::StatusOr<std::vector<ProgramRecord>> listed = ListPrograms(*pool_, {});
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].id, "sd-ai-2026");
  EXPECT_EQ((*listed)[1].id, "sd-never-opened");
  EXPECT_EQ((*listed)[2].id, "sh-ai-2026");
  listed = ListPrograms(*pool_, {.issuer_id = "shandong"});
  ASSERT_THAT(listed, IsOk());
  EXPECT_EQ(listed->size(), 2u);
  listed = ListPrograms(*pool_, {.state = ProgramState::kDraft});
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, "sh-ai-2026");
  listed = ListPrograms(*pool_, {.after_id = "sd-ai-2026", .limit = 1});
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, "sd-never-opened");
  ExpectLedgerVerifies();
}

// ------------------------------------------------------------------------------------------
// 2. Idempotency

TEST_F(ProgramStoreTest, SameKeyReplaysStoredBytesDifferentRequestIsRefused) {
  AddIssuer("shandong", "370000", IssuerLevel::kProvince);
  OpenFunded("shandong", "sd-ai-2026", Rules(), 0);

  int encoder_calls = 0;
  auto encode = [&](const ProgramRecord& r, int64_t transfer_id) {
    ++encoder_calls;
    return absl::StrCat(EncodeProgram(r), "|", transfer_id);
  };
  const IdempotencyKey key{.scope = "ISSUER_ADMIN:shandong/FundProgram",
                           .request_id = "0b6c1a9e-fund-1",
                           .request_hash = "hash-of-fund-3000000000"};
  absl::StatusOr<std::string> first =
      FundProgram(*pool_, key, "shandong", "sd-ai-2026", 3'000'000'000, "tranche 1", encode);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(encoder_calls, 1);
  // Another tranche under another key changes the program...
  ASSERT_THAT(Fund("shandong", "sd-ai-2026", 5), IsOk());
  // ...but the replay answers the stored bytes without running again.
  absl::StatusOr<std::string> again =
      FundProgram(*pool_, key, "shandong", "sd-ai-2026", 3'000'000'000, "tranche 1", encode);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(Fields(*again)[3], "3000000000");
  EXPECT_EQ(encoder_calls, 1);
  EXPECT_EQ(GetProgram(*pool_, "sd-ai-2026")->funded_fen, 3'000'000'005);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 1"), 2);

  // Same key, different request: refused, no effect, encoder not called.
  IdempotencyKey other = key;
  other.request_hash = "hash-of-fund-7";
  EXPECT_THAT(FundProgram(*pool_, other, "shandong", "sd-ai-2026", 7, "tranche 1", encode),
              StatusIs(kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  EXPECT_EQ(encoder_calls, 1);
  EXPECT_EQ(GetProgram(*pool_, "sd-ai-2026")->funded_fen, 3'000'000'005);
  // The same request id in another scope is another key.
  IdempotencyKey elsewhere = key;
  elsewhere.scope = "ISSUER_ADMIN:other/FundProgram";
  ASSERT_THAT(
      FundProgram(*pool_, elsewhere, "shandong", "sd-ai-2026", 3'000'000'000, "tranche 1", encode),
      IsOk());
  EXPECT_EQ(encoder_calls, 2);
  EXPECT_EQ(GetProgram(*pool_, "sd-ai-2026")->funded_fen, 6'000'000'005);
  // A missing request id is refused before anything runs.
  IdempotencyKey empty = key;
  empty.request_id = "";
  EXPECT_THAT(FundProgram(*pool_, empty, "shandong", "sd-ai-2026", 1, "", encode),
              StatusIs(kInvalidArgument));

  // CreateProgram replays too (no PROGRAM_EXISTS on the replay).
  const IdempotencyKey create_key{.scope = "s", .request_id = "create-1", .request_hash = "h"};
  absl::StatusOr<std::string> created =
      CreateProgram(*pool_, create_key, "shandong", "sd-second", Rules(), EncodeProgram);
  ASSERT_THAT(created, IsOk());
  absl::StatusOr<std::string> created_again =
      CreateProgram(*pool_, create_key, "shandong", "sd-second", Rules(), EncodeProgram);
  ASSERT_THAT(created_again, IsOk());
  EXPECT_EQ(*created_again, *created);
  EXPECT_EQ(Query("SELECT count(*) FROM programs"), 2);
  ExpectLedgerVerifies();
}

TEST_F(ProgramStoreTest, FailedApprovalDoesNotConsumeItsKeyAndReplayAwardsOnce) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  ProgramRecord p = OpenFunded("chengdu", "cd-ai-2026", Rules(), 10'000);
  AddEnterprise(kChengduEnterprise, "510104");
  const int64_t app = SubmitOk("cd-ai-2026", kChengduEnterprise, 50'000);

  int encoder_calls = 0;
  auto encode = [&](const ApplicationRecord& a) {
    ++encoder_calls;
    return EncodeApplication(a);
  };
  const IdempotencyKey key{.scope = "REVIEWER:chengdu/ApproveApplication",
                           .request_id = "approve-1",
                           .request_hash = "approve-50000"};
  const Counts before = Snapshot();
  EXPECT_THAT(ApproveApplication(*pool_, key, app, "chengdu", "reviewer-1", 50'000, "ok", encode),
              StatusIs(kFailedPrecondition, "BUDGET_EXHAUSTED"));
  EXPECT_EQ(encoder_calls, 0);
  EXPECT_EQ(Snapshot(), before);  // no key, no wallet, no standing row, no transfer
  ASSERT_THAT(Fund("chengdu", "cd-ai-2026", 40'000), IsOk());
  absl::StatusOr<std::string> approved =
      ApproveApplication(*pool_, key, app, "chengdu", "reviewer-1", 50'000, "ok", encode);
  ASSERT_THAT(approved, IsOk());
  EXPECT_EQ(encoder_calls, 1);
  EXPECT_EQ(Fields(*approved)[3], "2");
  EXPECT_EQ(Fields(*approved)[5], "50000");
  // The replay returns the stored bytes; the award happened once.
  absl::StatusOr<std::string> replay =
      ApproveApplication(*pool_, key, app, "chengdu", "reviewer-1", 50'000, "ok", encode);
  ASSERT_THAT(replay, IsOk());
  EXPECT_EQ(*replay, *approved);
  EXPECT_EQ(encoder_calls, 1);
  EXPECT_EQ(Available(p.budget_account_id), 0);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 2"), 1);
  absl::StatusOr<AwardRecord> award = GetAward(*pool_, "cd-ai-2026", kChengduEnterprise, {});
  ASSERT_THAT(award, IsOk());
  EXPECT_EQ(award->awarded_fen, 50'000);
  EXPECT_EQ(award->wallet_available_fen, 50'000);
  // Same key, another amount: refused.
  IdempotencyKey reused = key;
  reused.request_hash = "approve-40000";
  EXPECT_THAT(
      ApproveApplication(*pool_, reused, app, "chengdu", "reviewer-1", 40'000, "ok", encode),
      StatusIs(kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  EXPECT_EQ(encoder_calls, 1);
  ExpectLedgerVerifies();
}

// ------------------------------------------------------------------------------------------
// 3. Enterprises

TEST_F(ProgramStoreTest, EnterprisesRegisterUpdateGetListAndTheDatabaseChecksTheCode) {
  // The known-valid codes and generated ones register.
  const std::vector<std::string> codes = {"91350100M000100Y43", "91440300708461136T",
                                          Uscc("310115", 7), Uscc("510104", 8), Uscc("370102", 9)};
  EnterpriseRecord captured;
  absl::StatusOr<std::string> bytes = RegisterEnterprise(*pool_, Key("RegisterEnterprise"),
                                                         {.uscc = codes[0],
                                                          .display_name = "Fuzhou AI Ltd",
                                                          .region_code = "350102",
                                                          .kind = EnterpriseKind::kStartup,
                                                          .size = SizeClass::kMicro},
                                                         [&](const EnterpriseRecord& e) {
                                                           captured = e;
                                                           return EncodeEnterprise(e);
                                                         });
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(*bytes, absl::StrCat(codes[0], "|Fuzhou AI Ltd|350102|3|1"));
  EXPECT_GT(captured.created_at, absl::UnixEpoch());
  for (size_t i = 1; i < codes.size(); ++i) AddEnterprise(codes[i], "310115");

  // Duplicate with other data: ENTERPRISE_EXISTS, and the stored row is untouched.
  EXPECT_THAT(RegisterEnterprise(*pool_, Key("RegisterEnterprise"),
                                 {.uscc = codes[0],
                                  .display_name = "Impostor",
                                  .region_code = "110105",
                                  .kind = EnterpriseKind::kSme,
                                  .size = SizeClass::kLarge},
                                 EncodeEnterprise),
              StatusIs(kAlreadyExists, "ENTERPRISE_EXISTS"));
  absl::StatusOr<EnterpriseRecord> got = GetEnterprise(*pool_, codes[0]);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->display_name, "Fuzhou AI Ltd");
  EXPECT_EQ(got->region_code, "350102");
  EXPECT_EQ(got->kind, EnterpriseKind::kStartup);
  EXPECT_EQ(got->size, SizeClass::kMicro);
  EXPECT_EQ(got->created_at, captured.created_at);

  // Update.
  ASSERT_THAT(UpdateEnterprise(*pool_, Key("UpdateEnterprise"),
                               {.uscc = codes[0],
                                .display_name = "Fuzhou AI Group",
                                .region_code = "350104",
                                .kind = EnterpriseKind::kSme,
                                .size = SizeClass::kMedium},
                               EncodeEnterprise),
              IsOk());
  got = GetEnterprise(*pool_, codes[0]);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->display_name, "Fuzhou AI Group");
  EXPECT_EQ(got->region_code, "350104");
  EXPECT_EQ(got->kind, EnterpriseKind::kSme);
  EXPECT_EQ(got->size, SizeClass::kMedium);
  EXPECT_EQ(got->created_at, captured.created_at);
  EXPECT_GE(got->updated_at, got->created_at);
  EXPECT_THAT(
      UpdateEnterprise(*pool_, Key("UpdateEnterprise"),
                       {.uscc = Uscc("310115", 99), .display_name = "x", .region_code = "310115"},
                       EncodeEnterprise),
      StatusIs(kNotFound, "ENTERPRISE_NOT_FOUND"));
  EXPECT_THAT(GetEnterprise(*pool_, Uscc("310115", 99)),
              StatusIs(kNotFound, "ENTERPRISE_NOT_FOUND"));

  // Pagination in code order.
  std::vector<std::string> sorted = codes;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> paged;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<std::vector<EnterpriseRecord>> list = ListEnterprises(*pool_, after, 2);
    ASSERT_THAT(list, IsOk());
    if (list->empty()) break;
    EXPECT_LE(list->size(), 2u);
    for (const EnterpriseRecord& e : *list) paged.push_back(e.uscc);
    after = list->back().uscc;
  }
  EXPECT_EQ(paged, sorted);

  // The database checks the code too: straight SQL with a wrong check character is refused by
  // enterprises_uscc_valid, and it accepts exactly the check character policy computes.
  const std::string first17 = "91310000MA1FL4XY2";
  const char right = policy::UsccCheckCharacter(first17);
  EXPECT_THAT(policy::ValidateUscc(first17 + right), IsOk());
  const std::string alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  for (char c : alphabet) {
    pqxx::work tx(*sql_);
    const std::string code = first17 + c;
    EXPECT_EQ(tx.exec_params1("SELECT vch_uscc_valid($1)", code)[0].as<bool>(), c == right) << code;
    EXPECT_EQ(policy::ValidateUscc(code).ok(), c == right) << code;
  }
  const std::string wrong = first17 + (right == '0' ? '1' : '0');
  try {
    pqxx::work tx(*sql_);
    tx.exec_params0(
        "INSERT INTO enterprises (uscc, display_name, region_code, kind, size_class) "
        "VALUES ($1, 'Bad check', '310115', 1, 2)",
        wrong);
    tx.commit();
    ADD_FAILURE() << "the database accepted " << wrong;
  } catch (const pqxx::check_violation& e) {
    EXPECT_THAT(e.what(), HasSubstr("enterprises_uscc_valid"));
  }
  // Through storage the database's refusal surfaces as a status and nothing is stored.
  const Counts before = Snapshot();
  absl::StatusOr<std::string> bad = RegisterEnterprise(
      *pool_, Key("RegisterEnterprise"),
      {.uscc = wrong, .display_name = "Bad check", .region_code = "310115"}, EncodeEnterprise);
  EXPECT_THAT(bad, StatusIs(kInvalidArgument, "USCC_INVALID"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("enterprises_uscc_valid"));
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(Query("SELECT count(*) FROM enterprises"), 5);
}

// ------------------------------------------------------------------------------------------
// 4. Applications

TEST_F(ProgramStoreTest, SubmitChecksEligibilityAndRefusalsWriteNothing) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  ProgramRules rules = Rules();
  rules.per_enterprise_cap_fen = 100'000;
  ProgramRecord p = OpenFunded("chengdu", "cd-ai-2026", rules, 1'000'000);
  const std::string sme = kChengduEnterprise;
  const std::string institute = Uscc("510107", 2);
  const std::string large = Uscc("510105", 3);
  const std::string shanghai = Uscc("310115", 4);
  const std::string chongqing = Uscc("500103", 5);
  AddEnterprise(sme, "510104", EnterpriseKind::kSme, SizeClass::kSmall);
  AddEnterprise(institute, "510107", EnterpriseKind::kResearchInstitution, SizeClass::kSmall);
  AddEnterprise(large, "510105", EnterpriseKind::kStartup, SizeClass::kLarge);
  AddEnterprise(shanghai, "310115", EnterpriseKind::kSme, SizeClass::kMicro);
  AddEnterprise(chongqing, "500103", EnterpriseKind::kSme, SizeClass::kMicro);

  // Eligible: SUBMITTED with what was asked, at `now`.
  ApplicationRecord submitted;
  absl::StatusOr<std::string> bytes =
      SubmitApplication(*pool_, Key("SubmitApplication"), "cd-ai-2026", sme, 80'000,
                        "fine-tuning a 7B model", now_, [&](const ApplicationRecord& a) {
                          submitted = a;
                          return EncodeApplication(a);
                        });
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(submitted.state, ApplicationState::kSubmitted);
  EXPECT_EQ(submitted.program_id, "cd-ai-2026");
  EXPECT_EQ(submitted.issuer_id, "chengdu");
  EXPECT_EQ(submitted.uscc, sme);
  EXPECT_EQ(submitted.requested_fen, 80'000);
  EXPECT_EQ(submitted.purpose, "fine-tuning a 7B model");
  EXPECT_EQ(submitted.submitted_at, now_);
  EXPECT_EQ(submitted.awarded_fen, 0);
  EXPECT_EQ(submitted.award_transfer_id, 0);
  EXPECT_FALSE(submitted.decided_at.has_value());
  EXPECT_FALSE(submitted.withdrawn_at.has_value());
  EXPECT_EQ(AppId(*bytes), submitted.id);
  EXPECT_EQ(App(submitted.id).purpose, "fine-tuning a 7B model");

  // A draft program of the same issuer, and one with a per-award maximum open to anyone.
  Create("chengdu", "cd-draft", rules);
  ProgramRules open_rules = Rules();
  open_rules.local_enterprises_only = false;
  open_rules.max_award_fen = 20'000;
  OpenFunded("chengdu", "cd-national", open_rules, 0);

  const Counts before = Snapshot();
  EXPECT_THAT(Submit("cd-ai-2026", institute, 10'000, now_),
              StatusIs(kFailedPrecondition, "NOT_ELIGIBLE_KIND"));
  EXPECT_THAT(Submit("cd-ai-2026", large, 10'000, now_),
              StatusIs(kFailedPrecondition, "NOT_ELIGIBLE_SIZE"));
  EXPECT_THAT(Submit("cd-ai-2026", shanghai, 10'000, now_),
              StatusIs(kFailedPrecondition, "NOT_ELIGIBLE_REGION"));
  EXPECT_THAT(Submit("cd-ai-2026", chongqing, 10'000, now_),
              StatusIs(kFailedPrecondition, "NOT_ELIGIBLE_REGION"));
  // The window is [start, end).
  EXPECT_THAT(Submit("cd-ai-2026", sme, 10'000, rules.application_end),
              StatusIs(kFailedPrecondition, "WINDOW_CLOSED"));
  EXPECT_THAT(Submit("cd-ai-2026", sme, 10'000, rules.application_start - absl::Microseconds(1)),
              StatusIs(kFailedPrecondition, "WINDOW_CLOSED"));
  EXPECT_THAT(Submit("cd-draft", sme, 10'000, now_),
              StatusIs(kFailedPrecondition, "PROGRAM_NOT_OPEN"));
  // Cap headroom is checked at submission: nothing awarded yet, so the request alone counts.
  EXPECT_THAT(Submit("cd-ai-2026", sme, 100'001, now_),
              StatusIs(kFailedPrecondition, "CAP_EXCEEDED"));
  EXPECT_THAT(Submit("cd-ai-2026", sme, 0, now_), StatusIs(kInvalidArgument, "AMOUNT_INVALID"));
  EXPECT_THAT(Submit("cd-national", shanghai, 20'001, now_),
              StatusIs(kFailedPrecondition, "AWARD_MAX_EXCEEDED"));
  EXPECT_THAT(Submit("no-such-program", sme, 10'000, now_),
              StatusIs(kNotFound, "PROGRAM_NOT_FOUND"));
  EXPECT_THAT(Submit("cd-ai-2026", Uscc("510104", 77), 10'000, now_),
              StatusIs(kNotFound, "ENTERPRISE_NOT_FOUND"));
  EXPECT_EQ(Snapshot(), before);

  // The window's first microsecond is open; the last one too.
  EXPECT_THAT(Submit("cd-ai-2026", sme, 100'000, rules.application_start), IsOk());
  EXPECT_THAT(Submit("cd-ai-2026", sme, 100'000, rules.application_end - absl::Microseconds(1)),
              IsOk());
  // Not local-only: the Shanghai enterprise may apply up to the per-award maximum.
  EXPECT_THAT(Submit("cd-national", shanghai, 20'000, now_), IsOk());
  EXPECT_EQ(Snapshot().applications, before.applications + 3);
  EXPECT_EQ(Snapshot().submitted, before.submitted + 3);

  // Once CLOSED, submissions stop; cap headroom counts awards made so far.
  ASSERT_THAT(Approve(submitted.id, "chengdu", 80'000), IsOk());
  const Counts after_award = Snapshot();
  EXPECT_THAT(Submit("cd-ai-2026", sme, 20'001, now_),
              StatusIs(kFailedPrecondition, "CAP_EXCEEDED"));
  EXPECT_EQ(Snapshot(), after_award);
  EXPECT_THAT(Submit("cd-ai-2026", sme, 20'000, now_), IsOk());
  ASSERT_THAT(Transition("chengdu", "cd-ai-2026", ProgramState::kClosed), IsOk());
  const Counts closed = Snapshot();
  EXPECT_THAT(Submit("cd-ai-2026", sme, 1'000, now_),
              StatusIs(kFailedPrecondition, "PROGRAM_NOT_OPEN"));
  EXPECT_EQ(Snapshot(), closed);
  EXPECT_EQ(p.issuer_id, "chengdu");
  ExpectLedgerVerifies();
}

TEST_F(ProgramStoreTest, ProvinceLevelCityTreatsItsDistrictsAsLocal) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  OpenFunded("shanghai", "sh-ai-2026", Rules(), 100'000);
  const std::string pudong = Uscc("310115", 1);
  const std::string hangzhou = Uscc("330106", 2);
  AddEnterprise(pudong, "310115");
  AddEnterprise(hangzhou, "330106");
  EXPECT_THAT(Submit("sh-ai-2026", pudong, 10'000, now_), IsOk());
  EXPECT_THAT(Submit("sh-ai-2026", hangzhou, 10'000, now_),
              StatusIs(kFailedPrecondition, "NOT_ELIGIBLE_REGION"));
  EXPECT_EQ(Query("SELECT count(*) FROM applications"), 1);
}

TEST_F(ProgramStoreTest, WithdrawOnlyByTheApplicantAndOnlyWhilePending) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  OpenFunded("chengdu", "cd-ai-2026", Rules(), 1'000'000);
  const std::string other = Uscc("510104", 2);
  AddEnterprise(kChengduEnterprise, "510104");
  AddEnterprise(other, "510104");
  const int64_t app = SubmitOk("cd-ai-2026", kChengduEnterprise, 30'000);

  const Counts before = Snapshot();
  EXPECT_THAT(WithdrawApplication(*pool_, Key("Withdraw"), app, other, EncodeApplication),
              StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  EXPECT_THAT(
      WithdrawApplication(*pool_, Key("Withdraw"), 987654, kChengduEnterprise, EncodeApplication),
      StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  EXPECT_EQ(Snapshot(), before);
  absl::StatusOr<std::string> withdrawn =
      WithdrawApplication(*pool_, Key("Withdraw"), app, kChengduEnterprise, EncodeApplication);
  ASSERT_THAT(withdrawn, IsOk());
  EXPECT_EQ(Fields(*withdrawn)[3], "4");
  ApplicationRecord a = App(app);
  EXPECT_EQ(a.state, ApplicationState::kWithdrawn);
  ASSERT_TRUE(a.withdrawn_at.has_value());
  EXPECT_GE(*a.withdrawn_at, a.submitted_at);
  EXPECT_FALSE(a.decided_at.has_value());

  const Counts after = Snapshot();
  EXPECT_THAT(
      WithdrawApplication(*pool_, Key("Withdraw"), app, kChengduEnterprise, EncodeApplication),
      StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_THAT(Approve(app, "chengdu", 30'000),
              StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_THAT(RejectApplication(*pool_, Key("Reject"), app, "chengdu", "reviewer-1", "late",
                                EncodeApplication),
              StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_EQ(Snapshot(), after);
  EXPECT_EQ(App(app).state, ApplicationState::kWithdrawn);
}

TEST_F(ProgramStoreTest, ApproveMovesExactlyTheAwardBudgetToWallet) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("chengdu", "cd-ai-2026", Rules(), 1'000'000);
  AddEnterprise(kChengduEnterprise, "510104");
  const int64_t app = SubmitOk("cd-ai-2026", kChengduEnterprise, 60'000);

  // Refusals before the first award write nothing (not even a wallet or standing row).
  const Counts before = Snapshot();
  EXPECT_THAT(Approve(app, "shanghai", 60'000), StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  EXPECT_THAT(Approve(987654, "", 60'000), StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  EXPECT_THAT(Approve(app, "chengdu", 60'001),
              StatusIs(kFailedPrecondition, "AMOUNT_EXCEEDS_REQUEST"));
  EXPECT_THAT(Approve(app, "chengdu", 0), StatusIs(kInvalidArgument, "AMOUNT_INVALID"));
  EXPECT_THAT(Approve(app, "chengdu", -5), StatusIs(kInvalidArgument, "AMOUNT_INVALID"));
  EXPECT_EQ(Snapshot(), before);

  // A partial award (less than requested).
  ApplicationRecord decided;
  absl::StatusOr<std::string> bytes =
      ApproveApplication(*pool_, Key("ApproveApplication"), app, "chengdu", "reviewer-7", 45'000,
                         "partly", [&](const ApplicationRecord& a) {
                           decided = a;
                           return EncodeApplication(a);
                         });
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(decided.state, ApplicationState::kApproved);
  EXPECT_EQ(decided.awarded_fen, 45'000);
  EXPECT_EQ(decided.requested_fen, 60'000);
  EXPECT_EQ(decided.decided_by, "reviewer-7");
  EXPECT_EQ(decided.decision_reason, "partly");
  ASSERT_NE(decided.award_transfer_id, 0);
  ASSERT_TRUE(decided.decided_at.has_value());
  EXPECT_GE(*decided.decided_at, decided.submitted_at);
  EXPECT_EQ(Fields(*bytes)[6], absl::StrCat(decided.award_transfer_id));
  ApplicationRecord stored = App(app);
  EXPECT_EQ(stored.state, ApplicationState::kApproved);
  EXPECT_EQ(stored.award_transfer_id, decided.award_transfer_id);
  EXPECT_EQ(stored.decided_at, decided.decided_at);

  // The AWARD transfer: budget -> wallet, exactly 45'000.
  absl::StatusOr<AwardRecord> award = GetAward(*pool_, "cd-ai-2026", kChengduEnterprise, {});
  ASSERT_THAT(award, IsOk());
  ASSERT_NE(award->wallet_account_id, 0);
  EXPECT_EQ(award->issuer_id, "chengdu");
  EXPECT_EQ(award->cap_fen, 100'000);
  EXPECT_EQ(award->awarded_fen, 45'000);
  EXPECT_EQ(award->clawed_back_fen, 0);
  EXPECT_EQ(award->wallet_available_fen, 45'000);
  {
    pqxx::nontransaction tx(*sql_);
    pqxx::row t = tx.exec_params1(
        "SELECT kind, debit_account_id, credit_account_id, amount_fen, program_id "
        "FROM ledger_transfers WHERE id = $1",
        decided.award_transfer_id);
    EXPECT_EQ(t[0].as<int>(), 2);
    EXPECT_EQ(t[1].as<int64_t>(), p.budget_account_id);
    EXPECT_EQ(t[2].as<int64_t>(), award->wallet_account_id);
    EXPECT_EQ(t[3].as<int64_t>(), 45'000);
    EXPECT_EQ(t[4].as<std::string>(), "cd-ai-2026");
  }
  const policy::AccountState wallet = Account(award->wallet_account_id);
  EXPECT_EQ(wallet.credits_posted_fen, 45'000);
  EXPECT_EQ(wallet.debits_posted_fen, 0);
  EXPECT_EQ(wallet.debits_pending_fen, 0);
  EXPECT_NE(wallet.flags & 1, 0u);  // no overdraft
  EXPECT_EQ(Available(p.budget_account_id), 955'000);
  EXPECT_EQ(GetProgram(*pool_, "cd-ai-2026")->budget_available_fen, 955'000);
  EXPECT_EQ(GetProgram(*pool_, "cd-ai-2026")->funded_fen, 1'000'000);
  absl::StatusOr<AccountRecord> wallet_record =
      GetAccount(*pool_, award->wallet_account_id, {.all = true});
  ASSERT_THAT(wallet_record, IsOk());
  EXPECT_EQ(wallet_record->kind, "WALLET");
  EXPECT_EQ(wallet_record->owner, kChengduEnterprise);

  // Approving again (another key) is refused and writes nothing.
  const Counts after = Snapshot();
  EXPECT_THAT(Approve(app, "chengdu", 45'000),
              StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_THAT(RejectApplication(*pool_, Key("Reject"), app, "chengdu", "reviewer-1", "no",
                                EncodeApplication),
              StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_THAT(
      WithdrawApplication(*pool_, Key("Withdraw"), app, kChengduEnterprise, EncodeApplication),
      StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_EQ(Snapshot(), after);
  EXPECT_EQ(Available(award->wallet_account_id), 45'000);
  EXPECT_EQ(Available(p.budget_account_id), 955'000);

  // The cap binds across applications: 45'000 awarded, cap 100'000.
  const int64_t second = SubmitOk("cd-ai-2026", kChengduEnterprise, 55'000);
  const int64_t third = SubmitOk("cd-ai-2026", kChengduEnterprise, 10'000);
  ASSERT_THAT(Approve(second, "", 55'000), IsOk());
  const Counts at_cap = Snapshot();
  EXPECT_THAT(Approve(third, "chengdu", 1), StatusIs(kFailedPrecondition, "CAP_EXCEEDED"));
  EXPECT_EQ(Snapshot(), at_cap);
  EXPECT_EQ(GetAward(*pool_, "cd-ai-2026", kChengduEnterprise, {})->awarded_fen, 100'000);
  EXPECT_EQ(Available(p.budget_account_id), 900'000);

  // A closed program awards nothing.
  const std::string other = Uscc("510104", 2);
  AddEnterprise(other, "510104");
  const int64_t late = SubmitOk("cd-ai-2026", other, 10'000);
  ASSERT_THAT(Transition("chengdu", "cd-ai-2026", ProgramState::kClosed), IsOk());
  const Counts closed = Snapshot();
  EXPECT_THAT(Approve(late, "chengdu", 10'000), StatusIs(kFailedPrecondition, "PROGRAM_NOT_OPEN"));
  EXPECT_EQ(Snapshot(), closed);
  ExpectLedgerVerifies();
}

TEST_F(ProgramStoreTest, ApproveOverBudgetWritesNothing) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  ProgramRecord p = OpenFunded("chengdu", "cd-ai-2026", Rules(), 70'000);
  const std::string a = Uscc("510104", 1);
  const std::string b = Uscc("510104", 2);
  AddEnterprise(a, "510104");
  AddEnterprise(b, "510104");
  const int64_t first = SubmitOk("cd-ai-2026", a, 50'000);
  const int64_t second = SubmitOk("cd-ai-2026", b, 50'000);
  ASSERT_THAT(Approve(first, "chengdu", 50'000), IsOk());
  const Counts before = Snapshot();
  EXPECT_THAT(Approve(second, "chengdu", 20'001),
              StatusIs(kFailedPrecondition, "BUDGET_EXHAUSTED"));
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(App(second).state, ApplicationState::kSubmitted);
  EXPECT_EQ(GetAward(*pool_, "cd-ai-2026", b, {})->wallet_account_id, 0);
  EXPECT_EQ(Available(p.budget_account_id), 20'000);
  // Exactly what is left can be awarded.
  ASSERT_THAT(Approve(second, "chengdu", 20'000), IsOk());
  EXPECT_EQ(Available(p.budget_account_id), 0);
  EXPECT_EQ(GetAward(*pool_, "cd-ai-2026", b, {})->wallet_available_fen, 20'000);
  ExpectLedgerVerifies();
}

TEST_F(ProgramStoreTest, RejectNeedsAPendingApplicationAndAReason) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  OpenFunded("chengdu", "cd-ai-2026", Rules(), 1'000'000);
  AddEnterprise(kChengduEnterprise, "510104");
  const int64_t app = SubmitOk("cd-ai-2026", kChengduEnterprise, 30'000);

  const Counts before = Snapshot();
  EXPECT_THAT(RejectApplication(*pool_, Key("Reject"), app, "shanghai", "reviewer-1",
                                "out of scope", EncodeApplication),
              StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  // The database requires a reason for a rejection (applications_rejection_has_reason).
  absl::StatusOr<std::string> no_reason =
      RejectApplication(*pool_, Key("Reject"), app, "chengdu", "reviewer-1", "", EncodeApplication);
  EXPECT_THAT(no_reason, StatusIs(kInvalidArgument, "REASON_REQUIRED"));
  EXPECT_THAT(std::string(no_reason.status().message()),
              HasSubstr("applications_rejection_has_reason"));
  EXPECT_EQ(Snapshot(), before);

  ApplicationRecord rejected;
  ASSERT_THAT(RejectApplication(*pool_, Key("Reject"), app, "chengdu", "reviewer-2",
                                "purpose outside the program",
                                [&](const ApplicationRecord& a) {
                                  rejected = a;
                                  return EncodeApplication(a);
                                }),
              IsOk());
  EXPECT_EQ(rejected.state, ApplicationState::kRejected);
  EXPECT_EQ(rejected.decision_reason, "purpose outside the program");
  EXPECT_EQ(rejected.decided_by, "reviewer-2");
  EXPECT_EQ(rejected.awarded_fen, 0);
  EXPECT_EQ(rejected.award_transfer_id, 0);
  EXPECT_TRUE(rejected.decided_at.has_value());
  EXPECT_EQ(App(app).state, ApplicationState::kRejected);

  const Counts after = Snapshot();
  EXPECT_THAT(RejectApplication(*pool_, Key("Reject"), app, "chengdu", "reviewer-2", "again",
                                EncodeApplication),
              StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_THAT(Approve(app, "chengdu", 30'000),
              StatusIs(kFailedPrecondition, "APPLICATION_NOT_PENDING"));
  EXPECT_EQ(Snapshot(), after);
  EXPECT_EQ(after.transfers, before.transfers);
}

TEST_F(ProgramStoreTest, ListAndGetApplicationsRespectFiltersAndScopes) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  OpenFunded("chengdu", "cd-ai-2026", Rules(), 1'000'000);
  OpenFunded("shanghai", "sh-ai-2026", Rules(), 1'000'000);
  const std::string cd1 = Uscc("510104", 1);
  const std::string cd2 = Uscc("510104", 2);
  const std::string sh1 = Uscc("310115", 3);
  AddEnterprise(cd1, "510104");
  AddEnterprise(cd2, "510104");
  AddEnterprise(sh1, "310115");
  const int64_t a1 = SubmitOk("cd-ai-2026", cd1, 10'000);
  const int64_t a2 = SubmitOk("cd-ai-2026", cd2, 20'000);
  const int64_t a3 = SubmitOk("cd-ai-2026", cd1, 30'000);
  const int64_t a4 = SubmitOk("sh-ai-2026", sh1, 40'000);
  ASSERT_THAT(Approve(a1, "chengdu", 10'000), IsOk());
  ASSERT_THAT(WithdrawApplication(*pool_, Key("Withdraw"), a2, cd2, EncodeApplication), IsOk());

  auto ids = [&](const ApplicationFilter& filter, const ApplicationScope& scope) {
    std::vector<int64_t> out;
    absl::StatusOr<std::vector<ApplicationRecord>> list = ListApplications(*pool_, filter, scope);
    EXPECT_THAT(list, IsOk());
    if (list.ok()) {
      for (const ApplicationRecord& a : *list) out.push_back(a.id);
    }
    return out;
  };
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(ids({}, {}), (Ids{a1, a2, a3, a4}));
  EXPECT_EQ(ids({.program_id = "cd-ai-2026"}, {}), (Ids{a1, a2, a3}));
  EXPECT_EQ(ids({.state = ApplicationState::kSubmitted}, {}), (Ids{a3, a4}));
  EXPECT_EQ(ids({.state = ApplicationState::kApproved}, {}), (Ids{a1}));
  EXPECT_EQ(ids({.state = ApplicationState::kWithdrawn}, {}), (Ids{a2}));
  EXPECT_EQ(ids({.uscc = cd1}, {}), (Ids{a1, a3}));
  EXPECT_EQ(
      ids({.program_id = "cd-ai-2026", .state = ApplicationState::kSubmitted, .uscc = cd1}, {}),
      (Ids{a3}));
  EXPECT_EQ(ids({.after_id = a1, .limit = 2}, {}), (Ids{a2, a3}));
  // Issuer scope: only that issuer's applications, even when the filter names another program.
  EXPECT_EQ(ids({}, {.issuer_id = "shanghai"}), (Ids{a4}));
  EXPECT_EQ(ids({.program_id = "cd-ai-2026"}, {.issuer_id = "shanghai"}), Ids{});
  EXPECT_EQ(ids({}, {.issuer_id = "chengdu"}), (Ids{a1, a2, a3}));
  // Enterprise scope: only its own, whatever the filter asks.
  EXPECT_EQ(ids({}, {.uscc = cd2}), (Ids{a2}));
  EXPECT_EQ(ids({.uscc = cd1}, {.uscc = cd2}), Ids{});

  EXPECT_THAT(GetApplication(*pool_, a4, {.issuer_id = "chengdu"}),
              StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  EXPECT_THAT(GetApplication(*pool_, a1, {.uscc = cd2}),
              StatusIs(kNotFound, "APPLICATION_NOT_FOUND"));
  EXPECT_THAT(GetApplication(*pool_, a1, {.issuer_id = "chengdu", .uscc = cd1}), IsOk());
  EXPECT_THAT(GetApplication(*pool_, a4, {.issuer_id = "shanghai"}), IsOk());
  // Awards are scoped the same way.
  EXPECT_THAT(GetAward(*pool_, "cd-ai-2026", cd1, {.issuer_id = "shanghai"}),
              StatusIs(kNotFound, "AWARD_NOT_FOUND"));
  EXPECT_THAT(GetAward(*pool_, "cd-ai-2026", cd1, {.uscc = cd2}),
              StatusIs(kNotFound, "AWARD_NOT_FOUND"));
  absl::StatusOr<AwardRecord> own = GetAward(*pool_, "cd-ai-2026", cd1, {.uscc = cd1});
  ASSERT_THAT(own, IsOk());
  EXPECT_EQ(own->awarded_fen, 10'000);
  // No award yet: a record with no wallet.
  absl::StatusOr<AwardRecord> none = GetAward(*pool_, "cd-ai-2026", cd2, {});
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(none->wallet_account_id, 0);
  EXPECT_EQ(none->awarded_fen, 0);
  EXPECT_EQ(none->cap_fen, 100'000);
}

// A submission racing the program's closing: TransitionProgram's update is open (not committed)
// when the submission starts; once it commits, the program is CLOSED and the submission must be
// refused (SubmitApplication takes the program FOR SHARE so that it "cannot close between the
// check and the insert").
TEST_F(ProgramStoreTest, SubmissionRacingTheProgramsClosingIsRefused) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  OpenFunded("shanghai", "sh-ai-2026", Rules(), 1'000'000);
  const std::string code = Uscc("310115", 1);
  AddEnterprise(code, "310115");
  pqxx::connection other(dsn_);
  pqxx::work closer(other);
  // What TransitionProgram(kClosed) writes.
  closer.exec0("UPDATE programs SET state = 3, updated_at = now() WHERE id = 'sh-ai-2026'");
  absl::StatusOr<std::string> submitted;
  RunBehind(closer, other.backendpid(),
            [&] { submitted = Submit("sh-ai-2026", code, 10'000, now_); });
  EXPECT_EQ(GetProgram(*pool_, "sh-ai-2026")->state, ProgramState::kClosed);
  EXPECT_THAT(submitted.status(), StatusIs(kFailedPrecondition, "PROGRAM_NOT_OPEN"));
  EXPECT_EQ(Query("SELECT count(*) FROM applications"), 0);
}

// The same race for an approval: it takes the program FOR SHARE before reading its state, so it
// sees the program CLOSED and awards nothing.
TEST_F(ProgramStoreTest, ApprovalRacingTheProgramsClosingIsRefused) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("shanghai", "sh-ai-2026", Rules(), 1'000'000);
  const std::string code = Uscc("310115", 1);
  AddEnterprise(code, "310115");
  const int64_t app = SubmitOk("sh-ai-2026", code, 10'000);
  const Counts before = Snapshot();
  pqxx::connection other(dsn_);
  pqxx::work closer(other);
  closer.exec0("UPDATE programs SET state = 3, updated_at = now() WHERE id = 'sh-ai-2026'");
  absl::StatusOr<std::string> approved;
  RunBehind(closer, other.backendpid(), [&] { approved = Approve(app, "shanghai", 10'000); });
  EXPECT_THAT(approved.status(), StatusIs(kFailedPrecondition, "PROGRAM_NOT_OPEN"));
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(Available(p.budget_account_id), 1'000'000);
}

// ------------------------------------------------------------------------------------------
// 5. Concurrency: "50 concurrent approvals against one budget never overspend it, and never
// exceed one enterprise's cap even when its applications are approved concurrently".

// Runs `approve(i)` for i in [0, n) from n threads released at once; returns the statuses.
std::vector<absl::Status> RunConcurrently(int n, const std::function<absl::Status(int)>& approve) {
  std::vector<absl::Status> results(n);
  std::latch start(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = approve(i);
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

TEST_F(ProgramStoreTest, FiftyConcurrentApprovalsNeverOverspendTheBudget) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("shanghai", "sh-ai-2026", Rules(), 1'000'000);
  constexpr int kApps = 50;
  constexpr int64_t kAmount = 30'000;
  std::vector<std::string> codes;
  std::vector<int64_t> apps;
  for (int i = 0; i < kApps; ++i) {
    codes.push_back(Uscc("310115", 100 + i));
    AddEnterprise(codes.back(), "310115");
    apps.push_back(SubmitOk("sh-ai-2026", codes.back(), kAmount));
  }
  WarmPool();
  const absl::Time start = absl::Now();
  std::vector<absl::Status> results = RunConcurrently(kApps, [&](int i) {
    return ApproveApplication(*pool_,
                              {.scope = "REVIEWER:shanghai/ApproveApplication",
                               .request_id = absl::StrCat("approve-", i),
                               .request_hash = absl::StrCat("app-", apps[i])},
                              apps[i], "shanghai", "reviewer-1", kAmount, "ok", EncodeApplication)
        .status();
  });
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));

  int ok = 0, exhausted = 0;
  for (int i = 0; i < kApps; ++i) {
    if (results[i].ok()) {
      ++ok;
    } else if (results[i].code() == kFailedPrecondition &&
               ReasonOf(results[i]) == "BUDGET_EXHAUSTED") {
      ++exhausted;
    } else {
      ADD_FAILURE() << "approval " << i << ": " << results[i] << " (" << ReasonOf(results[i])
                    << ")";
    }
  }
  EXPECT_EQ(ok, 33);
  EXPECT_EQ(exhausted, 17);
  EXPECT_EQ(Available(p.budget_account_id), 1'000'000 - 33 * kAmount);
  EXPECT_EQ(GetProgram(*pool_, "sh-ai-2026")->budget_available_fen, 10'000);
  int64_t wallets = 0;
  int awarded = 0;
  for (int i = 0; i < kApps; ++i) {
    absl::StatusOr<AwardRecord> award = GetAward(*pool_, "sh-ai-2026", codes[i], {});
    ASSERT_THAT(award, IsOk());
    const ApplicationRecord a = App(apps[i]);
    if (results[i].ok()) {
      ++awarded;
      EXPECT_EQ(a.state, ApplicationState::kApproved);
      EXPECT_EQ(award->awarded_fen, kAmount);
      EXPECT_EQ(award->wallet_available_fen, kAmount);
    } else {
      EXPECT_EQ(a.state, ApplicationState::kSubmitted);
      EXPECT_EQ(award->wallet_account_id, 0);
    }
    wallets += award->wallet_available_fen;
  }
  EXPECT_EQ(awarded, 33);
  EXPECT_EQ(wallets, 33 * kAmount);
  EXPECT_EQ(Query("SELECT COALESCE(sum(amount_fen), 0) FROM ledger_transfers WHERE kind = 2"),
            33 * kAmount);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_accounts WHERE kind = 'WALLET'"), 33);
  EXPECT_EQ(Query("SELECT count(*) FROM program_enterprises"), 33);
  ExpectLedgerVerifies();
}

TEST_F(ProgramStoreTest, ConcurrentApprovalsForOneEnterpriseNeverExceedItsCap) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("shanghai", "sh-ai-2026", Rules(), 10'000'000);
  ASSERT_EQ(p.rules.per_enterprise_cap_fen, 100'000);
  const std::string code = Uscc("310115", 1);
  AddEnterprise(code, "310115");
  constexpr int kApps = 10;
  std::vector<int64_t> apps;
  // Each request alone is within the cap; nothing is awarded yet, so all are accepted.
  for (int i = 0; i < kApps; ++i) apps.push_back(SubmitOk("sh-ai-2026", code, 30'000));

  WarmPool();
  const absl::Time start = absl::Now();
  std::vector<absl::Status> results = RunConcurrently(kApps, [&](int i) {
    return ApproveApplication(*pool_,
                              {.scope = "REVIEWER:shanghai/ApproveApplication",
                               .request_id = absl::StrCat("approve-", i),
                               .request_hash = absl::StrCat("app-", apps[i])},
                              apps[i], "shanghai", "reviewer-1", 30'000, "ok", EncodeApplication)
        .status();
  });
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  int ok = 0, capped = 0;
  for (int i = 0; i < kApps; ++i) {
    if (results[i].ok()) {
      ++ok;
    } else if (results[i].code() == kFailedPrecondition && ReasonOf(results[i]) == "CAP_EXCEEDED") {
      ++capped;
    } else {
      ADD_FAILURE() << "approval " << i << ": " << results[i] << " (" << ReasonOf(results[i])
                    << ")";
    }
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(capped, 7);
  absl::StatusOr<AwardRecord> award = GetAward(*pool_, "sh-ai-2026", code, {});
  ASSERT_THAT(award, IsOk());
  EXPECT_EQ(award->awarded_fen, 90'000);
  EXPECT_EQ(award->wallet_available_fen, 90'000);
  EXPECT_EQ(Query("SELECT awarded_fen FROM program_enterprises"), 90'000);
  EXPECT_EQ(Available(p.budget_account_id), 10'000'000 - 90'000);
  EXPECT_EQ(Query("SELECT count(*) FROM applications WHERE state = 2"), 3);
  EXPECT_EQ(Query("SELECT count(*) FROM applications WHERE state = 1"), 7);
  ExpectLedgerVerifies();
}

TEST_F(ProgramStoreTest, ConcurrentApprovalsOfOneApplicationAwardItOnce) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("shanghai", "sh-ai-2026", Rules(), 1'000'000);
  const std::string code = Uscc("310115", 1);
  AddEnterprise(code, "310115");
  const int64_t app = SubmitOk("sh-ai-2026", code, 30'000);
  WarmPool();
  // Ten reviewers with ten keys, and ten retries of one key, all at once.
  constexpr int kThreads = 20;
  std::vector<absl::StatusOr<std::string>> results(kThreads, absl::UnknownError("not run"));
  RunConcurrently(kThreads, [&](int i) {
    const bool shared = i >= kThreads / 2;
    results[i] =
        ApproveApplication(*pool_,
                           {.scope = "REVIEWER:shanghai/ApproveApplication",
                            .request_id = shared ? "retried" : absl::StrCat("reviewer-", i),
                            .request_hash = "approve-30000"},
                           app, "shanghai", "reviewer-1", 30'000, "ok", EncodeApplication);
    return results[i].status();
  });
  int ok = 0, not_pending = 0;
  std::string shared_bytes;
  for (int i = 0; i < kThreads; ++i) {
    if (i >= kThreads / 2) {
      // Every retry of one key gets one answer: all the stored bytes, or all refused.
      if (i == kThreads / 2) {
        shared_bytes = results[i].ok() ? *results[i] : "";
      } else {
        EXPECT_EQ(results[i].ok() ? *results[i] : "", shared_bytes) << i;
      }
    }
    if (results[i].ok()) {
      ++ok;
      EXPECT_EQ(Fields(*results[i])[3], "2");
    } else if (ReasonOf(results[i].status()) == "APPLICATION_NOT_PENDING") {
      ++not_pending;
    } else {
      ADD_FAILURE() << "approval " << i << ": " << results[i].status();
    }
  }
  // One award: either a distinct-key approval (1 ok) or the shared key (10 ok, same bytes).
  EXPECT_TRUE(ok == 1 || ok == kThreads / 2) << ok;
  EXPECT_EQ(ok + not_pending, kThreads);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 2"), 1);
  EXPECT_EQ(GetAward(*pool_, "sh-ai-2026", code, {})->wallet_available_fen, 30'000);
  EXPECT_EQ(Available(p.budget_account_id), 970'000);
  ExpectLedgerVerifies();
}

// The race behind the cap test's failures, made deterministic: an approval whose wallet is being
// created by another, not yet committed transaction (as a concurrent first approval for the same
// enterprise does) must wait for it and then use that wallet.
TEST_F(ProgramStoreTest, FirstAwardWaitingOnAConcurrentlyCreatedWalletSucceeds) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("shanghai", "sh-ai-2026", Rules(), 1'000'000);
  const std::string code = Uscc("310115", 1);
  AddEnterprise(code, "310115");
  const int64_t app = SubmitOk("sh-ai-2026", code, 30'000);

  pqxx::connection other(dsn_);
  pqxx::work blocker(other);
  const int64_t wallet =
      blocker
          .exec_params1(
              "INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner, flags) "
              "VALUES ('sh-ai-2026', 'shanghai', 'WALLET', $1, 1) RETURNING id",
              code)[0]
          .as<int64_t>();
  absl::StatusOr<std::string> approved;
  RunBehind(blocker, other.backendpid(), [&] { approved = Approve(app, "shanghai", 30'000); });
  EXPECT_THAT(approved.status(), IsOk());  // the wallet's creator committed: use its wallet
  absl::StatusOr<AwardRecord> award = GetAward(*pool_, "sh-ai-2026", code, {});
  ASSERT_THAT(award, IsOk());
  EXPECT_EQ(award->wallet_account_id, wallet);
  EXPECT_EQ(award->awarded_fen, approved.ok() ? 30'000 : 0);
  EXPECT_EQ(Available(wallet), approved.ok() ? 30'000 : 0);
  EXPECT_EQ(Available(p.budget_account_id), approved.ok() ? 970'000 : 1'000'000);
  ExpectLedgerVerifies();
}

// Two creations of one program id racing: the loser must see PROGRAM_EXISTS, as it would one
// moment later. The winner is simulated by an open transaction that has written what
// CreateProgram writes (the three accounts and the program row).
TEST_F(ProgramStoreTest, CreateProgramRacingACreationOfTheSameIdIsProgramExists) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  pqxx::connection other(dsn_);
  pqxx::work blocker(other);
  std::vector<int64_t> ids;
  for (const char* kind : {"TREASURY", "BUDGET", "LAPSED"}) {
    ids.push_back(blocker
                      .exec_params1("INSERT INTO ledger_accounts (program_id, issuer_id, kind, "
                                    "flags) VALUES ('sh-ai-2026', 'shanghai', $1, $2) RETURNING id",
                                    kind, std::string(kind) == "BUDGET" ? 1 : 0)[0]
                      .as<int64_t>());
  }
  blocker.exec_params0(
      "INSERT INTO programs (id, issuer_id, display_name, category, planned_budget_fen, "
      "subsidy_ratio_bps, per_enterprise_cap_fen, eligible_kinds, eligible_sizes, "
      "local_enterprises_only, application_start, application_end, redemption_start, "
      "redemption_end, datacenter_scope, price_ceiling_fen_per_gpu_hour, treasury_account_id, "
      "budget_account_id, lapsed_account_id) VALUES ('sh-ai-2026', 'shanghai', 'winner', 1, "
      "1000000, 8000, 100000, '{1}', '{2}', true, now(), now() + interval '1 day', now(), "
      "now() + interval '2 days', 1, 2000, $1, $2, $3)",
      ids[0], ids[1], ids[2]);
  absl::StatusOr<std::string> created;
  RunBehind(blocker, other.backendpid(), [&] {
    created = CreateProgram(*pool_, Key("CreateProgram"), "shanghai", "sh-ai-2026", Rules(),
                            EncodeProgram);
  });
  EXPECT_THAT(created.status(), StatusIs(kAlreadyExists, "PROGRAM_EXISTS"));
  absl::StatusOr<ProgramRecord> p = GetProgram(*pool_, "sh-ai-2026");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->rules.name, "winner");
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_accounts"), 3);
  EXPECT_EQ(Query("SELECT count(*) FROM idempotency_keys"), 1);  // the issuer's registration
}

// ------------------------------------------------------------------------------------------
// 6. Clawback

TEST_F(ProgramStoreTest, ClawbackReturnsUnspentCreditWithAReason) {
  AddIssuer("chengdu", "510100", IssuerLevel::kCity);
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRecord p = OpenFunded("chengdu", "cd-ai-2026", Rules(), 1'000'000);
  AddEnterprise(kChengduEnterprise, "510104");
  const std::string never = Uscc("510104", 2);
  AddEnterprise(never, "510104");
  const int64_t app = SubmitOk("cd-ai-2026", kChengduEnterprise, 80'000);
  ASSERT_THAT(Approve(app, "chengdu", 80'000), IsOk());
  const int64_t wallet = GetAward(*pool_, "cd-ai-2026", kChengduEnterprise, {})->wallet_account_id;
  ASSERT_NE(wallet, 0);

  auto clawback = [&](const std::string& scope, const std::string& uscc, int64_t fen,
                      const std::string& reason) {
    return ClawbackAward(*pool_, Key("Clawback"), scope, "cd-ai-2026", uscc, fen, reason, "admin-1",
                         [](const AwardRecord& a, int64_t transfer_id) {
                           return absl::StrCat(a.awarded_fen, "|", a.clawed_back_fen, "|",
                                               a.wallet_available_fen, "|", transfer_id);
                         });
  };
  const Counts before = Snapshot();
  // A reason is required: the database refuses the row, and the transfer rolls back with it.
  absl::StatusOr<std::string> no_reason = clawback("chengdu", kChengduEnterprise, 10'000, "");
  EXPECT_THAT(no_reason, StatusIs(kInvalidArgument, "REASON_REQUIRED"));
  EXPECT_THAT(std::string(no_reason.status().message()), HasSubstr("clawbacks_reason_nonempty"));
  EXPECT_THAT(clawback("chengdu", kChengduEnterprise, 80'001, "misuse"),
              StatusIs(kFailedPrecondition, "CLAWBACK_EXCEEDS_BALANCE"));
  EXPECT_THAT(clawback("chengdu", kChengduEnterprise, 0, "misuse"),
              StatusIs(kInvalidArgument, "AMOUNT_INVALID"));
  EXPECT_THAT(clawback("shanghai", kChengduEnterprise, 10'000, "misuse"),
              StatusIs(kNotFound, "AWARD_NOT_FOUND"));
  EXPECT_THAT(clawback("chengdu", never, 10'000, "misuse"),
              StatusIs(kFailedPrecondition, "NO_AWARD"));
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(Available(wallet), 80'000);
  EXPECT_EQ(Available(p.budget_account_id), 920'000);

  // Within the wallet's available credit: wallet -> budget.
  absl::StatusOr<std::string> done =
      clawback("chengdu", kChengduEnterprise, 30'000, "purpose not met");
  ASSERT_THAT(done, IsOk());
  std::vector<std::string> f = Fields(*done);
  EXPECT_EQ(f[0], "80000");
  EXPECT_EQ(f[1], "30000");
  EXPECT_EQ(f[2], "50000");
  EXPECT_EQ(Available(wallet), 50'000);
  EXPECT_EQ(Available(p.budget_account_id), 950'000);
  {
    pqxx::nontransaction tx(*sql_);
    pqxx::row t = tx.exec_params1(
        "SELECT t.kind, t.debit_account_id, t.credit_account_id, t.amount_fen, c.reason, "
        "c.created_by, c.amount_fen FROM ledger_transfers t JOIN clawbacks c ON c.transfer_id = "
        "t.id WHERE t.id = $1",
        std::stoll(f[3]));
    EXPECT_EQ(t[0].as<int>(), 8);
    EXPECT_EQ(t[1].as<int64_t>(), wallet);
    EXPECT_EQ(t[2].as<int64_t>(), p.budget_account_id);
    EXPECT_EQ(t[3].as<int64_t>(), 30'000);
    EXPECT_EQ(t[4].as<std::string>(), "purpose not met");
    EXPECT_EQ(t[5].as<std::string>(), "admin-1");
    EXPECT_EQ(t[6].as<int64_t>(), 30'000);
  }
  // Above what is left.
  const Counts after = Snapshot();
  EXPECT_THAT(clawback("chengdu", kChengduEnterprise, 50'001, "misuse"),
              StatusIs(kFailedPrecondition, "CLAWBACK_EXCEEDS_BALANCE"));
  EXPECT_EQ(Snapshot(), after);
  absl::StatusOr<AwardRecord> award =
      GetAward(*pool_, "cd-ai-2026", kChengduEnterprise, {.issuer_id = "chengdu"});
  ASSERT_THAT(award, IsOk());
  EXPECT_EQ(award->awarded_fen, 80'000);
  EXPECT_EQ(award->clawed_back_fen, 30'000);
  EXPECT_EQ(award->wallet_available_fen, 50'000);
  EXPECT_EQ(Query("SELECT clawed_back_fen FROM program_enterprises"), 30'000);

  // Net awards count against the cap: 50'000 net, so 50'000 more may be awarded.
  const int64_t more = SubmitOk("cd-ai-2026", kChengduEnterprise, 50'000);
  ASSERT_THAT(Approve(more, "chengdu", 50'000), IsOk());
  EXPECT_EQ(GetAward(*pool_, "cd-ai-2026", kChengduEnterprise, {})->wallet_available_fen, 100'000);
  ExpectLedgerVerifies();
}

// ------------------------------------------------------------------------------------------
// 7. Award expiry

TEST_F(ProgramStoreTest, ExpiredAwardsReturnToBudgetOrLapseExactlyOnce) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRules rules = Rules();
  ProgramRules later = Rules();
  later.redemption_end = rules.redemption_end + absl::Hours(24 * 30);
  ProgramRecord open = OpenFunded("shanghai", "sh-open", rules, 1'000'000);
  ProgramRecord closed = OpenFunded("shanghai", "sh-closed", rules, 1'000'000);
  ProgramRecord running = OpenFunded("shanghai", "sh-running", later, 1'000'000);
  const std::string e1 = Uscc("310115", 1);
  const std::string e2 = Uscc("310115", 2);
  const std::string e3 = Uscc("310115", 3);
  const std::string e4 = Uscc("310115", 4);
  for (const std::string& e : {e1, e2, e3, e4}) AddEnterprise(e, "310115");
  ASSERT_THAT(Approve(SubmitOk("sh-open", e1, 50'000), "shanghai", 50'000), IsOk());
  ASSERT_THAT(Approve(SubmitOk("sh-open", e4, 20'000), "shanghai", 20'000), IsOk());
  ASSERT_THAT(Approve(SubmitOk("sh-closed", e2, 70'000), "shanghai", 70'000), IsOk());
  ASSERT_THAT(Approve(SubmitOk("sh-running", e3, 40'000), "shanghai", 40'000), IsOk());
  ASSERT_THAT(Transition("shanghai", "sh-closed", ProgramState::kClosed), IsOk());
  auto wallet = [&](const std::string& program, const std::string& uscc) {
    return GetAward(*pool_, program, uscc, {})->wallet_account_id;
  };
  const int64_t w1 = wallet("sh-open", e1), w2 = wallet("sh-closed", e2);
  const int64_t w3 = wallet("sh-running", e3), w4 = wallet("sh-open", e4);

  LedgerWriter writer(*pool_, {.expiry_interval = absl::ZeroDuration()});
  // Part of e4's credit is held by a redemption when the window ends.
  const int64_t receivable = EnsureAccount(*pool_, {.program_id = "sh-open",
                                                    .issuer_id = "shanghai",
                                                    .kind = "RECEIVABLE",
                                                    .owner = "dc-lingang-1"})
                                 ->state.id;
  absl::StatusOr<TransferResult> hold =
      writer.Submit({.request_scope = "test",
                     .request_id = "hold-1",
                     .transfer = {.kind = policy::TransferKind::kHold,
                                  .debit_account_id = w4,
                                  .credit_account_id = receivable,
                                  .amount_fen = 5'000}});
  ASSERT_THAT(hold, IsOk());

  // Not yet: the window ends at redemption_end (the stroke of it is expired).
  const Counts before = Snapshot();
  absl::StatusOr<int64_t> swept =
      ExpireAwards(*pool_, writer, rules.redemption_end - absl::Microseconds(1));
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 0);
  EXPECT_EQ(Snapshot(), before);

  swept = ExpireAwards(*pool_, writer, rules.redemption_end);
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 3);
  // OPEN program: back to its budget. CLOSED: to its lapsed account. Still running: untouched.
  EXPECT_EQ(Available(w1), 0);
  EXPECT_EQ(Available(w4), 0);
  EXPECT_EQ(Account(w4).debits_pending_fen, 5'000);
  EXPECT_EQ(Available(open.budget_account_id), 1'000'000 - 50'000 - 20'000 + 50'000 + 15'000);
  EXPECT_EQ(Account(open.lapsed_account_id).credits_posted_fen, 0);
  EXPECT_EQ(Available(w2), 0);
  EXPECT_EQ(Available(closed.budget_account_id), 930'000);
  EXPECT_EQ(Account(closed.lapsed_account_id).credits_posted_fen, 70'000);
  EXPECT_EQ(Available(w3), 40'000);
  EXPECT_EQ(Available(running.budget_account_id), 960'000);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 6"), 3);
  EXPECT_EQ(Query("SELECT sum(amount_fen) FROM ledger_transfers WHERE kind = 6"), 135'000);
  // Awards themselves are history: standing rows are unchanged.
  EXPECT_EQ(GetAward(*pool_, "sh-closed", e2, {})->awarded_fen, 70'000);

  // Exactly once: a second run (also later, before the running program's end) expires nothing.
  const Counts once = Snapshot();
  swept = ExpireAwards(*pool_, writer, later.redemption_end - absl::Microseconds(1));
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 0);
  swept = ExpireAwards(*pool_, writer, rules.redemption_end);
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 0);
  EXPECT_EQ(Snapshot(), once);
  ExpectLedgerVerifies();

  // The held credit is released later (the redemption is voided): a new wallet state, swept once.
  ASSERT_THAT(writer.Submit({.request_scope = "test",
                             .request_id = "void-1",
                             .transfer = {.kind = policy::TransferKind::kVoid,
                                          .pending_id = hold->outcome.transfer_id}}),
              IsOk());
  EXPECT_EQ(Available(w4), 5'000);
  swept = ExpireAwards(*pool_, writer, rules.redemption_end);
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(Available(w4), 0);
  EXPECT_EQ(Available(open.budget_account_id), 1'000'000);
  swept = ExpireAwards(*pool_, writer, rules.redemption_end);
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 0);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 6"), 4);

  // The running program's window ends in its turn; every wallet is then empty, once.
  swept = ExpireAwards(*pool_, writer, later.redemption_end + absl::Hours(24 * 365));
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(Available(w3), 0);
  EXPECT_EQ(Available(running.budget_account_id), 1'000'000);
  swept = ExpireAwards(*pool_, writer, later.redemption_end + absl::Hours(24 * 365));
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 0);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 6"), 5);
  EXPECT_EQ(Query("SELECT sum(amount_fen) FROM ledger_transfers WHERE kind = 6"),
            50'000 + 15'000 + 70'000 + 5'000 + 40'000);
  ExpectLedgerVerifies();
}

// A wallet's state for the sweep is (credits, debits posted + pending); two different states can
// share it: credit held by two holds, swept, then one hold voided returns to the same sum. The
// released credit must still be swept, once.
TEST_F(ProgramStoreTest, ExpirySweepsCreditReleasedAfterAnEarlierSweep) {
  AddIssuer("shanghai", "310000", IssuerLevel::kProvince);
  ProgramRules rules = Rules();
  ProgramRecord p = OpenFunded("shanghai", "sh-ai-2026", rules, 1'000'000);
  const std::string code = Uscc("310115", 1);
  AddEnterprise(code, "310115");
  ASSERT_THAT(Approve(SubmitOk("sh-ai-2026", code, 20'000), "shanghai", 20'000), IsOk());
  const int64_t wallet = GetAward(*pool_, "sh-ai-2026", code, {})->wallet_account_id;
  LedgerWriter writer(*pool_, {.expiry_interval = absl::ZeroDuration()});
  const int64_t receivable = EnsureAccount(*pool_, {.program_id = "sh-ai-2026",
                                                    .issuer_id = "shanghai",
                                                    .kind = "RECEIVABLE",
                                                    .owner = "dc-lingang-1"})
                                 ->state.id;
  auto hold = [&](const std::string& id, int64_t fen) {
    absl::StatusOr<TransferResult> r =
        writer.Submit({.request_scope = "test",
                       .request_id = id,
                       .transfer = {.kind = policy::TransferKind::kHold,
                                    .debit_account_id = wallet,
                                    .credit_account_id = receivable,
                                    .amount_fen = fen}});
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->outcome.transfer_id : 0;
  };
  hold("hold-a", 10'000);
  const int64_t b = hold("hold-b", 5'000);

  absl::StatusOr<int64_t> swept = ExpireAwards(*pool_, writer, rules.redemption_end);
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(Available(wallet), 0);
  EXPECT_EQ(Available(p.budget_account_id), 985'000);

  ASSERT_THAT(writer.Submit({.request_scope = "test",
                             .request_id = "void-b",
                             .transfer = {.kind = policy::TransferKind::kVoid, .pending_id = b}}),
              IsOk());
  ASSERT_EQ(Available(wallet), 5'000);
  swept = ExpireAwards(*pool_, writer, rules.redemption_end);
  ASSERT_THAT(swept, IsOk());
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(Available(wallet), 0);
  EXPECT_EQ(Available(p.budget_account_id), 990'000);
  EXPECT_EQ(Query("SELECT count(*) FROM ledger_transfers WHERE kind = 6"), 2);
  ExpectLedgerVerifies();
}

}  // namespace
}  // namespace vch::storage
