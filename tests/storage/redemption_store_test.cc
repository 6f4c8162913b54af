// storage::RedemptionStore against a real PostgreSQL: the money path's exact amounts, usage
// reported twice or concurrently, cancel and expiry racing with confirm, failures isolated in a
// batch, races for a pool's last GPUs, re-placement after a rejection, payouts paying each usage
// record once. Every amount below is worked out by hand in its comment.
#include "storage/redemption_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "storage/capacity_store.h"
#include "storage/ledger_store.h"
#include "storage/program_store.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using policy::EnterpriseKind;
using policy::IssuerLevel;
using policy::ProgramState;
using policy::SizeClass;
using ::testing::ElementsAre;
using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;
using ::vch::testing::StatusIs;

std::string Uscc(const std::string& region, int n) {
  const std::string first17 = absl::StrFormat("91%sMA%07d", region, n);
  return first17 + policy::UsccCheckCharacter(first17);
}

// "placed|id|held|pool" or "unplaced|INSUFFICIENT_GPUS-count".
std::string EncodeCompute(const ComputeOutcome& o) {
  if (!o.placed) {
    return absl::StrCat(
        "unplaced|",
        o.decision.excluded[static_cast<int>(policy::ExclusionReason::kInsufficientGpus)]);
  }
  return absl::StrCat("placed|", o.redemption.id, "|", o.redemption.held_fen, "|",
                      o.redemption.datacenter_id, "/", o.redemption.pool_id);
}

// Every field of an outcome, to compare a retry's answer with the first.
std::string EncodeComputeFully(const ComputeOutcome& o) {
  const RedemptionRecord& r = o.redemption;
  std::vector<std::string> f;
  auto add = [&f](const auto&... values) { (f.push_back(absl::StrCat(values)), ...); };
  add(o.placed ? 1 : 0, r.id, r.program_id, r.issuer_id, r.uscc, r.datacenter_id, r.pool_id,
      r.accelerator_model, r.fp8_required ? 1 : 0, r.domestic_required ? 1 : 0, r.min_memory_gib,
      r.max_price_fen_per_gpu_hour, r.preferred_region_prefix, r.gpus, r.hours,
      r.price_fen_per_gpu_hour, r.ratio_bps, static_cast<int>(r.style), r.estimated_bill_fen,
      r.held_fen, r.remaining_hold_fen, r.hold_transfer_id, r.capacity_hold_id,
      absl::FormatTime(r.expires_at), static_cast<int>(r.state), r.state_reason, r.replaces,
      r.replaced_by, r.gpu_seconds, r.billed_fen, r.subsidy_fen, r.usage_records, r.voucher_key_id,
      absl::BytesToHexString(r.voucher_signature), absl::FormatTime(r.created_at),
      absl::FormatTime(r.updated_at));
  return absl::StrJoin(f, "|");
}

std::string EncodeUsage(const UsageOutcome& o) {
  return absl::StrCat(o.usage.usage_id, "|", o.usage.bill_fen, "|", o.usage.subsidy_fen, "|",
                      o.usage.copay_fen, "|", static_cast<int>(o.usage.capped_by), "|",
                      o.redemption.remaining_hold_fen, "|", o.usage.post_transfer_id, "|",
                      o.usage.release_transfer_id);
}

std::string EncodeRedemption(const RedemptionRecord& r) {
  return absl::StrCat(r.id, "|", static_cast<int>(r.state), "|", r.remaining_hold_fen);
}

std::vector<std::string> Fields(const std::string& s) { return absl::StrSplit(s, '|'); }

int64_t IdOf(const std::string& placed) {
  int64_t id = 0;
  EXPECT_TRUE(absl::SimpleAtoi(Fields(placed).at(1), &id)) << placed;
  return id;
}

constexpr int64_t kAwardFen = 1'000'000;  // 10,000.00 CNY
constexpr int64_t kPrice = 1'500;         // fen per GPU-hour

class RedemptionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateTestDatabase();
    pool_ = std::move(*PgPool::Create({.dsn = dsn_, .size = 16}));
    batch_pool_ = std::move(*PgPool::Create({.dsn = dsn_, .size = 4}));
    conn_ = std::make_unique<pqxx::connection>(dsn_);
    now_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    clock_us_ = absl::ToUnixMicros(now_);
    signer_ = std::move(*VoucherSigner::Generate(""));
    MakeStore();
    Seed();
  }

  void MakeStore(int max_queued = 4096, int writer_threads = 1) {
    store_.reset();
    RedemptionOptions o;
    o.writer_threads = writer_threads;
    o.max_queued = max_queued;
    o.placement_ttl = absl::Minutes(30);
    o.signer = signer_.get();
    o.clock = [this] { return absl::FromUnixMicros(clock_us_.load()); };
    store_ = std::make_unique<RedemptionStore>(*pool_, *batch_pool_, std::move(o));
  }

  IdempotencyKey Key(const std::string& op) {
    const std::string id = absl::StrCat(op, "-", ++key_counter_);
    return {.scope = absl::StrCat("test/", op), .request_id = id, .request_hash = "h-" + id};
  }

  policy::ProgramRules Rules() {
    policy::ProgramRules r;
    r.name = "AI compute vouchers";
    r.category = policy::ProgramCategory::kAiRental;
    r.planned_budget_fen = 100'000'000'000;
    r.subsidy_ratio_bps = 8000;
    r.per_enterprise_cap_fen = 10'000'000;
    r.eligible_kinds = {EnterpriseKind::kSme};
    r.eligible_sizes = {SizeClass::kSmall};
    r.local_enterprises_only = false;
    r.application_start = now_ - absl::Hours(1);
    r.application_end = now_ + absl::Hours(24 * 30);
    r.redemption_start = now_ - absl::Hours(1);
    r.redemption_end = now_ + absl::Hours(24 * 60);
    r.datacenter_scope = policy::DatacenterScope::kNational;
    r.price_ceiling_fen_per_gpu_hour = 3'000;
    return r;
  }

  // Program "sh-ai" (8000 bps, DIRECT, NATIONAL), funded; enterprises 1..4 awarded kAwardFen
  // each; datacenters dc-a and dc-b, each with one 64-GPU pool "p" at kPrice, all free.
  void Seed() {
    auto ok = [](const absl::StatusOr<std::string>& s) { ASSERT_THAT(s, IsOk()); };
    ok(RegisterIssuer(*pool_, Key("issuer"),
                      {.id = "shanghai",
                       .display_name = "Shanghai",
                       .region_code = "310000",
                       .level = IssuerLevel::kProvince},
                      [](const IssuerRecord& i) { return i.id; }));
    AddProgram("sh-ai", Rules());
    for (int n = 1; n <= 4; ++n) AddAwardedEnterprise("sh-ai", n);
    for (const char* dc : {"dc-a", "dc-b"}) AddSite(dc, 64);
  }

  void AddProgram(const std::string& id, const policy::ProgramRules& rules) {
    auto encode = [](const ProgramRecord& p) { return p.id; };
    ASSERT_THAT(CreateProgram(*pool_, Key("program"), "shanghai", id, rules, encode), IsOk());
    ASSERT_THAT(TransitionProgram(*pool_, Key("open"), "shanghai", id, ProgramState::kOpen, encode),
                IsOk());
    ASSERT_THAT(FundProgram(*pool_, Key("fund"), "shanghai", id, 1'000'000'000, "tranche",
                            [](const ProgramRecord& p, int64_t) { return p.id; }),
                IsOk());
  }

  void AddAwardedEnterprise(const std::string& program, int n, int64_t award = kAwardFen) {
    const std::string uscc = Uscc("310115", n);
    absl::StatusOr<std::string> reg =
        RegisterEnterprise(*pool_, Key("enterprise"),
                           {.uscc = uscc,
                            .display_name = absl::StrCat("Enterprise ", n),
                            .region_code = "310115",
                            .kind = EnterpriseKind::kSme,
                            .size = SizeClass::kSmall},
                           [](const EnterpriseRecord& e) { return e.uscc; });
    ASSERT_TRUE(reg.ok() || reg.status().code() == absl::StatusCode::kAlreadyExists)
        << reg.status();
    int64_t app = 0;
    ASSERT_THAT(SubmitApplication(*pool_, Key("submit"), program, uscc, award, "training", now_,
                                  [&](const ApplicationRecord& a) {
                                    app = a.id;
                                    return absl::StrCat(a.id);
                                  }),
                IsOk());
    ASSERT_THAT(ApproveApplication(*pool_, Key("approve"), app, "shanghai", "reviewer", award, "ok",
                                   [](const ApplicationRecord& a) { return absl::StrCat(a.id); }),
                IsOk());
  }

  void AddSite(const std::string& dc, int32_t gpus, bool domestic = false) {
    ASSERT_THAT(RegisterDatacenter(*pool_, Key("dc"),
                                   {.id = dc,
                                    .display_name = dc,
                                    .region_code = "520100",
                                    .hub = policy::NationalHub::kGuizhou,
                                    .national_network = true},
                                   [](const DatacenterRecord& d) { return d.id; }),
                IsOk());
    ASSERT_THAT(RegisterPool(*pool_, Key("pool"),
                             {.datacenter_id = dc,
                              .id = "pool",
                              .accelerator_model = "H800",
                              .vendor = "NVIDIA",
                              .domestic = domestic,
                              .fp8 = true,
                              .memory_gib = 80,
                              .gpus_total = gpus,
                              .price_fen_per_gpu_hour = kPrice},
                             [](const PoolRecord& p) { return p.id; }),
                IsOk());
    ASSERT_THAT(ReportCapacity(*pool_, Key("report"), dc, {{.pool_id = "pool", .gpus_free = gpus}},
                               now_, [](const std::vector<PoolRecord>&) { return std::string(); }),
                IsOk());
  }

  ComputeRequest Request(int enterprise, int32_t gpus, int32_t hours,
                         const std::string& program = "sh-ai") {
    ComputeRequest r;
    r.key = Key(absl::StrCat("compute-", enterprise));
    r.uscc = Uscc("310115", enterprise);
    r.program_id = program;
    r.placement.request_id = r.key.request_id;
    r.placement.gpus = gpus;
    r.placement.scope.kind = policy::ScopeKind::kNational;
    r.placement.scope.price_ceiling_fen_per_gpu_hour = 3'000;
    r.hours = hours;
    return r;
  }

  absl::StatusOr<std::string> Compute(ComputeRequest r) {
    return store_->RequestCompute(std::move(r), EncodeCompute);
  }

  // Places and returns the redemption id (0 on failure).
  int64_t Placed(int enterprise, int32_t gpus, int32_t hours) {
    absl::StatusOr<std::string> s = Compute(Request(enterprise, gpus, hours));
    EXPECT_THAT(s, IsOk());
    if (!s.ok() || !absl::StartsWith(*s, "placed|")) {
      ADD_FAILURE() << (s.ok() ? *s : s.status().ToString());
      return 0;
    }
    return IdOf(*s);
  }

  absl::StatusOr<std::string> Confirm(int64_t id, const std::string& dc = "") {
    return store_->Confirm(Key("confirm"), id, dc, EncodeRedemption);
  }

  absl::StatusOr<std::string> Usage(int64_t id, const std::string& usage_id, int64_t gpu_seconds,
                                    bool final = false) {
    UsageReport r;
    r.redemption_id = id;
    r.usage_id = usage_id;
    r.request_hash = absl::StrCat(gpu_seconds, final);
    r.gpu_seconds = gpu_seconds;
    r.start = now_ - absl::Hours(1);
    r.end = now_;
    r.final = final;
    return store_->ReportUsage(std::move(r), EncodeUsage);
  }

  int64_t WalletAvailable(int enterprise, const std::string& program = "sh-ai") {
    absl::StatusOr<AwardRecord> a =
        GetAward(*pool_, program, Uscc("310115", enterprise), ApplicationScope{});
    EXPECT_THAT(a, IsOk());
    return a.ok() ? a->wallet_available_fen : -1;
  }

  int64_t Scalar(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  int64_t GpusHeld(const std::string& dc) {
    return Scalar(absl::StrCat("SELECT gpus_held FROM gpu_pools WHERE datacenter_id = '", dc,
                               "' AND id = 'pool'"));
  }

  // A test trigger: the database refuses every redemption of 7 hours ("refused by the test").
  void RefuseSevenHourRedemptions() {
    pqxx::nontransaction tx(*conn_);
    tx.exec0(R"sql(
      CREATE FUNCTION test_refuse_seven_hours() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.hours = 7 THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$)sql");
    tx.exec0(
        "CREATE TRIGGER test_refuse BEFORE INSERT ON redemptions FOR EACH ROW "
        "EXECUTE FUNCTION test_refuse_seven_hours()");
  }

  // Waits (at most 5 s) until `n` backends of this database wait for a row lock.
  void WaitForALockWaiter(int n = 1) {
    for (int i = 0; i < 500; ++i) {
      if (Scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                 "datname = current_database()") >= n) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "fewer than " << n << " backends waited for a lock";
  }

  // Sends the requests at the same moment, one thread each, and returns their answers.
  std::vector<absl::StatusOr<std::string>> ComputeAll(const std::vector<ComputeRequest>& requests) {
    std::vector<absl::StatusOr<std::string>> answers(requests.size(), absl::UnknownError(""));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] { answers[i] = Compute(requests[i]); });
    }
    for (std::thread& t : threads) t.join();
    return answers;
  }

  void ExpectLedgerVerifies() {
    absl::StatusOr<LedgerVerification> v = VerifyLedger(*pool_);
    ASSERT_THAT(v, IsOk());
    EXPECT_THAT(v->violations, ::testing::IsEmpty());
  }

  std::string dsn_;
  std::unique_ptr<PgPool> pool_;
  std::unique_ptr<PgPool> batch_pool_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<VoucherSigner> signer_;
  std::unique_ptr<RedemptionStore> store_;
  absl::Time now_;
  std::atomic<int64_t> clock_us_{0};
  std::atomic<int> key_counter_{0};
};

TEST_F(RedemptionStoreTest, FlowHoldsSettlesAndReleasesExactly) {
  // 8 GPUs x 10 h x 1,500 fen = 120,000 fen estimated; held 80 % = 96,000 fen.
  absl::StatusOr<std::string> placed = Compute(Request(1, 8, 10));
  ASSERT_THAT(placed, IsOk());
  EXPECT_THAT(Fields(*placed), ElementsAre("placed", ::testing::_, "96000", "dc-a/pool"));
  const int64_t id = IdOf(*placed);
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 96'000);
  EXPECT_EQ(GpusHeld("dc-a"), 8);

  ASSERT_THAT(Confirm(id, "dc-a"), IsOk());
  EXPECT_EQ(GpusHeld("dc-a"), 0);  // the site's reports count them from now on

  // 36,000 GPU-s x 1,500 / 3,600 = 15,000 fen billed; 80 % = 12,000 subsidy; 3,000 co-payment.
  absl::StatusOr<std::string> u1 = Usage(id, "u1", 36'000);
  ASSERT_THAT(u1, IsOk());
  EXPECT_THAT(Fields(*u1),
              ElementsAre("u1", "15000", "12000", "3000", "0", "84000", ::testing::_, "0"));
  // Final: 3,601 GPU-s x 1,500 / 3,600 = 1,500.41.. -> 1,500 billed; 1,200 subsidy; the other
  // 96,000 - 12,000 - 1,200 = 82,800 fen go back to the wallet.
  absl::StatusOr<std::string> u2 = Usage(id, "u2", 3'601, true);
  ASSERT_THAT(u2, IsOk());
  EXPECT_THAT(Fields(*u2), ElementsAre("u2", "1500", "1200", "300", "0", "0", ::testing::_,
                                       Fields(*u2)[6]));  // the final POST released the rest
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 13'200);
  absl::StatusOr<RedemptionRecord> r = store_->Get(id, {});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->state, RedemptionState::kSettled);
  EXPECT_EQ(r->billed_fen, 16'500);
  EXPECT_EQ(r->subsidy_fen, 13'200);
  EXPECT_EQ(r->gpu_seconds, 39'601);
  EXPECT_EQ(r->remaining_hold_fen, 0);
  EXPECT_EQ(Scalar("SELECT credits_posted_fen FROM ledger_accounts WHERE kind = 'RECEIVABLE' "
                   "AND owner = 'dc-a'"),
            13'200);
  // Usage after the final record is refused.
  EXPECT_THAT(Usage(id, "u3", 10), StatusIs(absl::StatusCode::kFailedPrecondition));
  // The voucher verifies with the signer's public key.
  EXPECT_THAT(VerifyVoucherSignature(CanonicalVoucherPayload(r->Voucher()), r->voucher_signature,
                                     signer_->public_key_pem()),
              IsOk());
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, DoubleReportedUsageTakesEffectOnce) {
  const int64_t id = Placed(1, 8, 10);
  ASSERT_THAT(Confirm(id), IsOk());
  absl::StatusOr<std::string> first = Usage(id, "u-1", 36'000);
  ASSERT_THAT(first, IsOk());
  // Resent one after another and eight at once: the first answer every time.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*Usage(id, "u-1", 36'000), *first);
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> answers(8, absl::UnknownError(""));
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { answers[i] = Usage(id, "u-1", 36'000); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& a : answers) EXPECT_EQ(a.value_or("failed"), *first);
  // The same id with other content is refused and changes nothing.
  EXPECT_THAT(Usage(id, "u-1", 36'001), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(Scalar("SELECT count(*) FROM usage_records"), 1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 4"), 1);
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 96'000);  // 12,000 posted out of the 96,000 held
  absl::StatusOr<RedemptionRecord> r = store_->Get(id, {});
  EXPECT_EQ(r->subsidy_fen, 12'000);
  EXPECT_EQ(r->remaining_hold_fen, 84'000);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, NewUsageIdInBatchWithItsResendSettlesOnce) {
  const int64_t id = Placed(1, 8, 10);
  ASSERT_THAT(Confirm(id), IsOk());
  // The same new record sent by 16 threads at once, so that copies share a batch.
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> answers(16, absl::UnknownError(""));
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] { answers[i] = Usage(id, "same", 7'200); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& a : answers) {
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(*a, *answers[0]);
  }
  // 7,200 GPU-s x 1,500 / 3,600 = 3,000 billed, 2,400 subsidy.
  EXPECT_THAT(Fields(*answers[0]),
              ElementsAre("same", "3000", "2400", "600", "0", "93600", ::testing::_, "0"));
  EXPECT_EQ(Scalar("SELECT count(*) FROM usage_records"), 1);
  EXPECT_EQ(Scalar("SELECT subsidy_fen FROM redemptions"), 2'400);
}

TEST_F(RedemptionStoreTest, ConcurrentUsageOnOneRedemptionNeverExceedsTheHold) {
  // Held 96,000 fen. 16 operators' threads x 10 records of 3,600 GPU-s each: 1,500 billed and
  // 1,200 subsidised per record, 160 x 1,200 = 192,000 wanted; the hold caps it at 96,000.
  const int64_t id = Placed(1, 8, 10);
  ASSERT_THAT(Confirm(id), IsOk());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (!Usage(id, absl::StrCat("t", t, "-", i), 3'600).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Scalar("SELECT count(*) FROM usage_records"), 160);
  EXPECT_EQ(Scalar("SELECT sum(subsidy_fen) FROM usage_records"), 96'000);
  EXPECT_EQ(Scalar("SELECT sum(bill_fen) FROM usage_records"), 240'000);
  // Exactly 80 records got their full 1,200 (96,000 / 1,200) and the rest were capped to 0.
  EXPECT_EQ(Scalar("SELECT count(*) FROM usage_records WHERE subsidy_fen = 1200"), 80);
  EXPECT_EQ(Scalar("SELECT count(*) FROM usage_records WHERE capped_by = 1"), 80);
  absl::StatusOr<RedemptionRecord> r = store_->Get(id, {});
  EXPECT_EQ(r->subsidy_fen, 96'000);
  EXPECT_EQ(r->billed_fen, 240'000);
  EXPECT_EQ(r->usage_records, 160);
  EXPECT_EQ(r->remaining_hold_fen, 0);
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 96'000);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, CancelRacingWithConfirmReleasesEachHoldOnce) {
  constexpr int kN = 12;
  std::vector<int64_t> ids;
  for (int i = 0; i < kN; ++i) ids.push_back(Placed(1 + i % 4, 2, 1));  // 2 x 1 x 1,500 -> 2,400
  ASSERT_EQ(GpusHeld("dc-a") + GpusHeld("dc-b"), 2 * kN);
  std::vector<absl::StatusOr<std::string>> cancels(kN, absl::UnknownError(""));
  std::vector<absl::StatusOr<std::string>> confirms(kN, absl::UnknownError(""));
  std::vector<std::thread> threads;
  for (int i = 0; i < kN; ++i) {
    threads.emplace_back([&, i] {
      cancels[i] = store_->Cancel(Key("cancel"), ids[i], Uscc("310115", 1 + i % 4), "changed plans",
                                  EncodeRedemption);
    });
    threads.emplace_back([&, i] { confirms[i] = Confirm(ids[i]); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kN; ++i) {
    // Cancel takes PLACED and CONFIRMED alike, so it always wins in the end; confirm either came
    // first (and the GPUs were consumed) or found the redemption cancelled.
    ASSERT_THAT(cancels[i], IsOk());
    const int64_t cap_state = Scalar(absl::StrCat(
        "SELECT h.state FROM capacity_holds h JOIN redemptions r ON r.capacity_hold_id = h.id "
        "WHERE r.id = ",
        ids[i]));
    if (confirms[i].ok()) {
      EXPECT_EQ(cap_state, 3) << ids[i];
    } else {
      EXPECT_THAT(confirms[i], StatusIs(absl::StatusCode::kFailedPrecondition));
      EXPECT_EQ(cap_state, 2) << ids[i];
    }
    EXPECT_EQ(Scalar(absl::StrCat("SELECT state FROM redemptions WHERE id = ", ids[i])), 5);
  }
  EXPECT_EQ(GpusHeld("dc-a") + GpusHeld("dc-b"), 0);
  EXPECT_EQ(Scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 5"), kN);
  for (int n = 1; n <= 4; ++n) EXPECT_EQ(WalletAvailable(n), kAwardFen);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, ExpiryRacingWithConfirmResolvesEachPlacementOnce) {
  constexpr int kN = 12;
  std::vector<int64_t> ids;
  for (int i = 0; i < kN; ++i) ids.push_back(Placed(1 + i % 4, 2, 1));
  // Confirm still sees the placement in time; the expiry sweeps as if it were later.
  clock_us_ = absl::ToUnixMicros(now_ + absl::Minutes(30) - absl::Microseconds(1));
  const absl::Time later = now_ + absl::Minutes(31);
  std::vector<absl::StatusOr<std::string>> confirms(kN, absl::UnknownError(""));
  std::atomic<int64_t> expired{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < 3; ++s) {
    threads.emplace_back([&] {
      absl::StatusOr<int64_t> n = store_->ExpirePlacements(later);
      ASSERT_THAT(n, IsOk());
      expired += *n;
    });
  }
  for (int i = 0; i < kN; ++i) threads.emplace_back([&, i] { confirms[i] = Confirm(ids[i]); });
  for (std::thread& t : threads) t.join();
  int confirmed = 0;
  for (int i = 0; i < kN; ++i) {
    const int64_t state = Scalar(absl::StrCat("SELECT state FROM redemptions WHERE id = ", ids[i]));
    if (confirms[i].ok()) {
      ++confirmed;
      EXPECT_EQ(state, 2);
    } else {
      EXPECT_THAT(confirms[i], StatusIs(absl::StatusCode::kFailedPrecondition));
      EXPECT_EQ(state, 6);
    }
  }
  EXPECT_EQ(expired.load(), kN - confirmed);
  // Every expired placement was voided once; confirmed ones keep their 2,400 fen held.
  EXPECT_EQ(Scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 5"), kN - confirmed);
  EXPECT_EQ(Scalar("SELECT count(*) FROM capacity_holds WHERE state = 2"), kN - confirmed);
  EXPECT_EQ(Scalar("SELECT count(*) FROM capacity_holds WHERE state = 3"), confirmed);
  EXPECT_EQ(GpusHeld("dc-a") + GpusHeld("dc-b"), 0);
  int64_t held = 0;
  for (int n = 1; n <= 4; ++n) held += kAwardFen - WalletAvailable(n);
  EXPECT_EQ(held, 2'400 * confirmed);
  // Once expired, a late confirmation is refused; sweeping again finds nothing.
  EXPECT_EQ(store_->ExpirePlacements(later).value_or(-1), 0);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, ConfirmAfterExpiryIsRefusedEvenBeforeTheSweep) {
  const int64_t id = Placed(1, 2, 1);
  clock_us_ = absl::ToUnixMicros(now_ + absl::Minutes(30));
  EXPECT_THAT(Confirm(id), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Scalar("SELECT state FROM redemptions"), 1);
  EXPECT_EQ(store_->ExpirePlacements(now_ + absl::Minutes(30)).value_or(-1), 1);
  EXPECT_EQ(WalletAvailable(1), kAwardFen);
  EXPECT_EQ(GpusHeld("dc-a"), 0);
}

TEST_F(RedemptionStoreTest, FailuresInABatchFailAlone) {
  // Enterprise 9 has no award, program "nope" does not exist, enterprise 2 asks for more than
  // its award covers (32 GPUs x 40 h x 1,500 = 1,920,000 fen, 80 % = 1,536,000 > 1,000,000):
  // each fails by itself while the others, sent at the same moment, are placed.
  std::vector<ComputeRequest> requests;
  requests.push_back(Request(9, 1, 1));
  requests.push_back(Request(1, 1, 1, "nope"));
  requests.push_back(Request(2, 32, 40));
  for (int i = 0; i < 5; ++i) requests.push_back(Request(3, 1, 1));
  std::vector<absl::StatusOr<std::string>> answers = ComputeAll(requests);
  EXPECT_THAT(answers[0], StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(answers[1], StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(answers[2], StatusIs(absl::StatusCode::kFailedPrecondition));
  for (size_t i = 3; i < answers.size(); ++i) {
    ASSERT_THAT(answers[i], IsOk());
    EXPECT_TRUE(absl::StartsWith(*answers[i], "placed|")) << *answers[i];
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM redemptions"), 5);
  EXPECT_EQ(WalletAvailable(2), kAwardFen);
  EXPECT_EQ(WalletAvailable(3), kAwardFen - 5 * 1'200);  // 1 x 1 x 1,500 x 80 %
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, AWriteRefusedByTheDatabaseRollsBackItsWholeBatch) {
  // A batch sends its COMMIT in the round trip of its writes. Here the database refuses one
  // redemption of a batch of six (a test trigger): nothing of the batch may stay written, and
  // each request is then run alone, so only the refused one fails.
  RefuseSevenHourRedemptions();
  // Hold every pool so that the writer blocks on its first batch; the six requests sent
  // meanwhile then queue and go out together in one batch.
  pqxx::connection blocker(dsn_);
  auto blocking = std::make_unique<pqxx::work>(blocker);
  blocking->exec("SELECT 1 FROM gpu_pools FOR UPDATE");
  std::vector<std::thread> fillers;
  std::vector<absl::StatusOr<std::string>> filled(2, absl::UnknownError(""));
  for (int i = 0; i < 2; ++i) {
    fillers.emplace_back([&, i] { filled[i] = Compute(Request(1 + i, 1, 1)); });
  }
  // Until a writer waits for the pools (the two fillers may share a batch).
  WaitForALockWaiter();
  std::vector<ComputeRequest> requests;
  requests.push_back(Request(4, 1, 7));
  for (int i = 0; i < 5; ++i) requests.push_back(Request(3, 1, 1));
  std::vector<absl::StatusOr<std::string>> answers;
  std::thread sender([&] { answers = ComputeAll(requests); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // all six queued
  blocking->commit();
  for (std::thread& t : fillers) t.join();
  sender.join();
  for (const auto& f : filled) EXPECT_THAT(f, IsOk());
  EXPECT_FALSE(answers[0].ok());
  EXPECT_THAT(answers[0].status().message(), ::testing::HasSubstr("refused by the test"));
  for (size_t i = 1; i < answers.size(); ++i) {
    ASSERT_THAT(answers[i], IsOk());
    EXPECT_TRUE(absl::StartsWith(*answers[i], "placed|")) << *answers[i];
  }
  // Seven placements (two fillers, five of enterprise 3), each with its hold and its GPUs, and
  // nothing of the refused request.
  EXPECT_EQ(Scalar("SELECT count(*) FROM redemptions"), 7);
  EXPECT_EQ(Scalar("SELECT count(*) FROM ledger_holds"), 7);
  EXPECT_EQ(Scalar("SELECT count(*) FROM capacity_holds"), 7);
  EXPECT_EQ(Scalar("SELECT coalesce(sum(gpus_held), 0) FROM gpu_pools"), 7);
  EXPECT_EQ(WalletAvailable(4), kAwardFen);
  EXPECT_EQ(WalletAvailable(3), kAwardFen - 5 * 1'200);  // 1 x 1 x 1,500 x 80 %
  // The writers' connections are usable again: enterprise 4 is placed at once.
  EXPECT_TRUE(absl::StartsWith(Compute(Request(4, 1, 1)).value_or(""), "placed|"));
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, AnAccountMadeByABatchThatRolledBackIsNotRemembered) {
  // The first placement at dc-a makes dc-a's receivable in its batch. The database refuses that
  // batch (a test trigger), so the receivable is gone with it: the store must not remember its
  // id, and the next placement at dc-a makes it again and succeeds.
  RefuseSevenHourRedemptions();
  ComputeRequest refused = Request(1, 1, 7);
  refused.exclude_datacenter = "dc-b";
  EXPECT_THAT(Compute(refused).status().message(), ::testing::HasSubstr("refused by the test"));
  EXPECT_EQ(Scalar("SELECT count(*) FROM ledger_accounts WHERE kind = 'RECEIVABLE'"), 0);
  ComputeRequest next = Request(2, 1, 1);
  next.exclude_datacenter = "dc-b";
  absl::StatusOr<std::string> placed = Compute(next);
  ASSERT_THAT(placed, IsOk());
  EXPECT_THAT(*placed, ::testing::EndsWith("dc-a/pool"));
  EXPECT_EQ(Scalar("SELECT count(*) FROM ledger_accounts WHERE kind = 'RECEIVABLE'"), 1);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, AWalletsTransfersNumberInTheOrderTheyCommit) {
  // Enterprise 1 asks twice: first at dc-a, whose pool another transaction holds, then at
  // dc-b. The second batch commits first; the first commits once dc-a is free. Each hold's
  // transfer id must be drawn after the wallet is locked, so that the wallet's last transfer by
  // id records its balance (VerifyLedger's invariant 8) whichever batch drew its ids first.
  // Two writers, as two vchd replicas would have.
  MakeStore(/*max_queued=*/4096, /*writer_threads=*/2);
  ComputeRequest at_a = Request(1, 1, 1);
  at_a.exclude_datacenter = "dc-b";
  ComputeRequest at_b = Request(1, 1, 1);
  at_b.exclude_datacenter = "dc-a";
  pqxx::connection blocker(dsn_);
  auto blocking = std::make_unique<pqxx::work>(blocker);
  blocking->exec("SELECT 1 FROM gpu_pools WHERE datacenter_id = 'dc-a' FOR UPDATE");
  absl::StatusOr<std::string> first = absl::UnknownError("");
  std::thread waiting([&] { first = Compute(at_a); });
  WaitForALockWaiter();
  absl::StatusOr<std::string> second = Compute(at_b);  // the other writer, not blocked
  ASSERT_THAT(second, IsOk());
  EXPECT_THAT(*second, ::testing::EndsWith("dc-b/pool"));
  blocking->commit();
  waiting.join();
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(*first, ::testing::EndsWith("dc-a/pool"));
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 2 * 1'200);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, AFullQueueRefusesAtOnceAndTheQueuedStillRun) {
  // With the compute writer blocked on held pools and two requests queued behind it, a third is
  // refused at once (RESOURCE_EXHAUSTED QUEUE_FULL, answered on the calling thread) instead of
  // waiting; the queued ones are placed once the pools are free.
  MakeStore(/*max_queued=*/2);
  pqxx::connection blocker(dsn_);
  auto blocking = std::make_unique<pqxx::work>(blocker);
  blocking->exec("SELECT 1 FROM gpu_pools FOR UPDATE");
  absl::StatusOr<std::string> filled = absl::UnknownError("");
  std::thread first([&] { filled = Compute(Request(1, 1, 1)); });
  WaitForALockWaiter();  // the writer is blocked in its batch
  absl::Mutex mu;
  std::vector<absl::StatusOr<std::string>> queued;
  auto collect = [&](absl::StatusOr<std::string> r) {
    absl::MutexLock lock(&mu);
    queued.push_back(std::move(r));
  };
  store_->RequestComputeAsync(Request(3, 1, 1), EncodeCompute, collect);
  store_->RequestComputeAsync(Request(3, 1, 1), EncodeCompute, collect);
  absl::StatusOr<std::string> refused = absl::UnknownError("not answered");
  store_->RequestComputeAsync(Request(4, 1, 1), EncodeCompute,
                              [&](absl::StatusOr<std::string> r) { refused = std::move(r); });
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted, "QUEUE_FULL"));
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(queued.empty());
  }
  blocking->commit();
  first.join();
  {
    absl::MutexLock lock(&mu);
    auto both = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return queued.size() == 2; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&both), absl::Seconds(10)));
    for (const auto& q : queued) {
      ASSERT_THAT(q, IsOk());
      EXPECT_TRUE(absl::StartsWith(*q, "placed|")) << *q;
    }
  }
  EXPECT_THAT(filled, IsOk());
  EXPECT_EQ(Scalar("SELECT count(*) FROM redemptions"), 3);
  EXPECT_EQ(WalletAvailable(4), kAwardFen);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, RequestIdTakesEffectOnce) {
  ComputeRequest r = Request(1, 4, 2);
  absl::StatusOr<std::string> first = Compute(r);
  ASSERT_THAT(first, IsOk());
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> again(8, absl::UnknownError(""));
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { again[i] = Compute(r); });
  for (std::thread& t : threads) t.join();
  for (const auto& a : again) EXPECT_EQ(a.value_or("failed"), *first);
  r.key.request_hash = "different";
  EXPECT_THAT(Compute(r), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(Scalar("SELECT count(*) FROM redemptions"), 1);
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 9'600);  // 4 x 2 x 1,500 x 80 %
}

TEST_F(RedemptionStoreTest, ARetryIsAnsweredFromTheRedemptionAsItWasPlaced) {
  // A redemption is its RequestCompute's idempotency record (V0007): no idempotency_keys row is
  // written, and a retry after the redemption was confirmed and partly settled still gets the
  // first answer, every field of it (state, remaining hold, totals and times as placed).
  const ComputeRequest r = Request(1, 2, 3);
  absl::StatusOr<std::string> first = store_->RequestCompute(r, EncodeComputeFully);
  ASSERT_THAT(first, IsOk());
  const int64_t id = Scalar("SELECT max(id) FROM redemptions");
  auto text = [this](const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec1(sql)[0].as<std::string>();
  };
  const std::string dc =
      text(absl::StrCat("SELECT datacenter_id FROM redemptions WHERE id = ", id));
  ASSERT_THAT(Confirm(id, dc), IsOk());
  ASSERT_THAT(Usage(id, "u1", 3'600), IsOk());
  EXPECT_EQ(Scalar(absl::StrCat("SELECT usage_records FROM redemptions WHERE id = ", id)), 1);
  EXPECT_EQ(store_->RequestCompute(r, EncodeComputeFully).value_or("failed"), *first);
  EXPECT_THAT(*first, ::testing::StartsWith("1|1|sh-ai|"));  // placed: redemption 1
  EXPECT_EQ(Scalar(absl::StrCat("SELECT count(*) FROM idempotency_keys WHERE scope = ",
                                conn_->quote(r.key.scope))),
            0);
  EXPECT_EQ(text(absl::StrCat("SELECT request_hash FROM redemptions WHERE id = ", id)),
            r.key.request_hash);
  ComputeRequest other = r;
  other.key.request_hash = "different";
  EXPECT_THAT(store_->RequestCompute(other, EncodeComputeFully),
              StatusIs(absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  EXPECT_EQ(Scalar("SELECT count(*) FROM redemptions"), 1);
}

TEST_F(RedemptionStoreTest, KeysWithQuotesAndPlaceholdersRoundTrip) {
  // Batches send some statements with their values inlined: nothing in a key may change them.
  ComputeRequest r = Request(1, 1, 1);
  r.key.scope = "ENTERPRISE:x/$2 'scope'";
  r.key.request_id = R"(it's $1 "$2" o'clock\)";
  absl::StatusOr<std::string> first = Compute(r);
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(absl::StartsWith(*first, "placed|")) << *first;
  EXPECT_EQ(Compute(r).value_or("failed"), *first);
  pqxx::nontransaction tx(*conn_);
  pqxx::result row = tx.exec("SELECT request_scope, request_id FROM redemptions");
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row[0][0].as<std::string>(), r.key.scope);
  EXPECT_EQ(row[0][1].as<std::string>(), r.key.request_id);
}

TEST_F(RedemptionStoreTest, RacesForTheLastGpusNeverOverbook) {
  // 128 GPUs in all (two sites of 64); 24 requests of 8 GPUs at once want 192.
  std::vector<absl::StatusOr<std::string>> answers(24, absl::UnknownError(""));
  std::vector<std::thread> threads;
  for (int i = 0; i < 24; ++i) {
    threads.emplace_back([&, i] { answers[i] = Compute(Request(1 + i % 4, 8, 1)); });
  }
  for (std::thread& t : threads) t.join();
  int placed = 0;
  for (const auto& a : answers) {
    ASSERT_THAT(a, IsOk());
    if (absl::StartsWith(*a, "placed|")) {
      ++placed;
    } else {
      EXPECT_EQ(*a, "unplaced|2") << "both pools full";
    }
  }
  EXPECT_EQ(placed, 16);
  EXPECT_EQ(GpusHeld("dc-a"), 64);
  EXPECT_EQ(GpusHeld("dc-b"), 64);
}

TEST_F(RedemptionStoreTest, RejectReplacesOnceElsewhere) {
  const int64_t id = Placed(1, 8, 10);  // dc-a (ties go to the lower pool id)
  ComputeRequest again = Request(1, 8, 10);
  absl::StatusOr<std::string> rejected =
      store_->Reject(Key("reject"), id, "dc-a", "maintenance", again, [](const RejectOutcome& o) {
        return absl::StrCat(static_cast<int>(o.rejected.state), "|", o.replaced, "|",
                            o.replacement.id, "|", o.replacement.datacenter_id, "|",
                            o.replacement.replaces);
      });
  ASSERT_THAT(rejected, IsOk());
  const std::vector<std::string> f = Fields(*rejected);
  EXPECT_EQ(f[0], "7");
  EXPECT_EQ(f[1], "1");
  EXPECT_EQ(f[3], "dc-b");
  EXPECT_EQ(f[4], absl::StrCat(id));
  int64_t replacement = 0;
  ASSERT_TRUE(absl::SimpleAtoi(f[2], &replacement));
  EXPECT_EQ(GpusHeld("dc-a"), 0);
  EXPECT_EQ(GpusHeld("dc-b"), 8);
  EXPECT_EQ(WalletAvailable(1), kAwardFen - 96'000);  // only the replacement's estimate held
  EXPECT_EQ(store_->Get(id, {})->replaced_by, replacement);
  // The replacement's rejection does not place it a third time.
  absl::StatusOr<std::string> second =
      store_->Reject(Key("reject"), replacement, "dc-b", "full", again,
                     [](const RejectOutcome& o) { return absl::StrCat(o.replaced); });
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(*second, "0");
  EXPECT_EQ(WalletAvailable(1), kAwardFen);
  EXPECT_EQ(GpusHeld("dc-b"), 0);
  // Another site's operator cannot reject it.
  const int64_t third = Placed(1, 1, 1);
  EXPECT_THAT(store_->Reject(Key("reject"), third, "dc-b", "not ours", std::nullopt,
                             [](const RejectOutcome&) { return std::string(); }),
              StatusIs(absl::StatusCode::kNotFound));
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, PayoutsPayEachUsageRecordOnce) {
  const int64_t a = Placed(1, 8, 10);
  ASSERT_THAT(Confirm(a), IsOk());
  ASSERT_THAT(Usage(a, "a1", 36'000), IsOk());  // 12,000 subsidy
  ASSERT_THAT(Usage(a, "b1", 7'200), IsOk());   // 2,400 subsidy
  const std::string dc = store_->Get(a, {})->datacenter_id;
  PayoutRequest req{.program_id = "sh-ai",
                    .payee_kind = PayeeKind::kDatacenter,
                    .payee = dc,
                    .period_start = now_ - absl::Hours(24),
                    .period_end = now_ + absl::Hours(24),
                    .issuer_scope = "shanghai",
                    .actor = "test"};
  // Four payouts at once with different request ids: one pays 14,400 fen, the rest find
  // nothing left to pay.
  std::vector<absl::StatusOr<std::string>> answers(4, absl::UnknownError(""));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      answers[i] = store_->CreatePayout(Key("payout"), req, [](const PayoutRecord& p) {
        return absl::StrCat(p.id, "|", p.amount_fen, "|", p.lines);
      });
    });
  }
  for (std::thread& t : threads) t.join();
  int paid = 0;
  int64_t payout_id = 0;
  for (const auto& x : answers) {
    if (x.ok()) {
      ++paid;
      EXPECT_EQ(Fields(*x)[1], "14400");
      EXPECT_EQ(Fields(*x)[2], "2");
      ASSERT_TRUE(absl::SimpleAtoi(Fields(*x)[0], &payout_id));
    } else {
      EXPECT_THAT(x, StatusIs(absl::StatusCode::kFailedPrecondition));
    }
  }
  EXPECT_EQ(paid, 1);
  EXPECT_EQ(Scalar(absl::StrCat("SELECT debits_posted_fen FROM ledger_accounts WHERE kind = "
                                "'RECEIVABLE' AND owner = '",
                                dc, "'")),
            14'400);
  EXPECT_EQ(Scalar(absl::StrCat("SELECT credits_posted_fen FROM ledger_accounts WHERE kind = "
                                "'PAID' AND owner = '",
                                dc, "'")),
            14'400);
  absl::StatusOr<std::vector<UsageRecord>> lines = store_->ListPayoutLines(payout_id, 0, 10);
  ASSERT_THAT(lines, IsOk());
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[0].usage_id, "a1");
  EXPECT_EQ((*lines)[1].usage_id, "b1");
  EXPECT_EQ((*lines)[0].payout_id, payout_id);
  // A later usage record is paid by the next payout, alone.
  ASSERT_THAT(Usage(a, "a2", 3'600, true), IsOk());  // 1,200 subsidy
  absl::StatusOr<std::string> next = store_->CreatePayout(
      Key("payout"), req, [](const PayoutRecord& p) { return absl::StrCat(p.amount_fen); });
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(*next, "1200");
  // Another issuer's admin cannot pay out this program.
  req.issuer_scope = "chengdu";
  EXPECT_THAT(
      store_->CreatePayout(Key("payout"), req, [](const PayoutRecord&) { return std::string(); }),
      StatusIs(absl::StatusCode::kNotFound));
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, MonthlySpendLimitCapsSettlement) {
  policy::ProgramRules rules = Rules();
  rules.monthly_spend_limit_fen = 20'000;
  AddProgram("sh-capped", rules);
  AddAwardedEnterprise("sh-capped", 1);
  absl::StatusOr<std::string> placed = Compute(Request(1, 8, 10, "sh-capped"));
  ASSERT_THAT(placed, IsOk());
  const int64_t id = IdOf(*placed);
  ASSERT_THAT(Confirm(id), IsOk());
  // 12,000 subsidy fits; the next 12,000 is capped at the 8,000 left; then nothing is left.
  EXPECT_THAT(Fields(*Usage(id, "m1", 36'000))[2], "12000");
  absl::StatusOr<std::string> capped = Usage(id, "m2", 36'000);
  ASSERT_THAT(capped, IsOk());
  EXPECT_THAT(Fields(*capped),
              ElementsAre("m2", "15000", "8000", "7000", "2", "76000", ::testing::_, "0"));
  EXPECT_THAT(Fields(*Usage(id, "m3", 36'000))[2], "0");
  EXPECT_EQ(Scalar("SELECT spent_fen FROM program_monthly_spend WHERE program_id = 'sh-capped'"),
            20'000);
  ExpectLedgerVerifies();
}

TEST_F(RedemptionStoreTest, VerifyLedgerCatchesSettlementsThatDisagreeWithTheLedger) {
  const int64_t id = Placed(1, 8, 10);
  ASSERT_THAT(Confirm(id), IsOk());
  ASSERT_THAT(Usage(id, "u1", 36'000), IsOk());  // 12,000 subsidy posted
  ExpectLedgerVerifies();
  // Tampering past the append-only trigger (as the table owner could): the settled subsidy no
  // longer matches what the hold posted, nor its ratio.
  {
    pqxx::work tx(*conn_);
    tx.exec0("ALTER TABLE usage_records DISABLE TRIGGER usage_records_append_only");
    tx.exec0("ALTER TABLE usage_records DROP CONSTRAINT usage_records_subsidy_within_ratio");
    tx.exec0("ALTER TABLE usage_records DROP CONSTRAINT usage_records_copay");
    tx.exec0("UPDATE usage_records SET subsidy_fen = 15000, copay_fen = 0");
    tx.commit();
  }
  absl::StatusOr<LedgerVerification> v = VerifyLedger(*pool_);
  ASSERT_THAT(v, IsOk());
  std::string all;
  for (const std::string& line : v->violations) absl::StrAppend(&all, line, "\n");
  EXPECT_THAT(all, ::testing::HasSubstr("invariant 5: every settlement within the subsidy ratio"));
  EXPECT_THAT(all, ::testing::HasSubstr(
                       "invariant 5: each redemption's credit hold posted exactly what its usage"));
  EXPECT_THAT(all, ::testing::HasSubstr("invariant 7: append-only triggers in place"));
}

TEST_F(RedemptionStoreTest, ACreditHoldIsRecordedByItsRedemptionAndNothingElseGoesUnrecorded) {
  // A redemption's credit hold has no idempotency_keys row of its own: its key,
  // "hold-<redemption id>", is recorded by the redemption (VerifyLedger's invariant 6 accepts it
  // for exactly that redemption). Any other transfer without its key row is reported.
  const int64_t id = Placed(1, 1, 1);
  EXPECT_EQ(Scalar(absl::StrCat("SELECT count(*) FROM idempotency_keys WHERE request_id = 'hold-",
                                id, "'")),
            0);
  ExpectLedgerVerifies();
  {
    pqxx::work tx(*conn_);
    // The hold's key names another redemption, and an AWARD's key row is gone (as the table
    // owner could do past the triggers).
    tx.exec0("ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_append_only");
    tx.exec0("ALTER TABLE idempotency_keys DISABLE TRIGGER idempotency_keys_append_only");
    tx.exec0(absl::StrCat("UPDATE ledger_transfers SET request_id = 'hold-", id + 1,
                          "' WHERE request_id = 'hold-", id, "'"));
    tx.exec0(
        "DELETE FROM idempotency_keys k USING ledger_transfers t WHERE t.kind = 2 AND "
        "k.scope = t.request_scope AND k.request_id = t.request_id AND t.id = (SELECT min(id) FROM "
        "ledger_transfers WHERE kind = 2)");
    tx.commit();
  }
  absl::StatusOr<LedgerVerification> v = VerifyLedger(*pool_);
  ASSERT_THAT(v, IsOk());
  int unrecorded = 0;
  for (const std::string& line : v->violations) {
    if (absl::StrContains(line, "every transfer has its idempotency record")) ++unrecorded;
  }
  EXPECT_EQ(unrecorded, 2) << absl::StrJoin(v->violations, "\n");
}

}  // namespace
}  // namespace vch::storage
