// The redemption schema (migrations/V0005__redemption.sql, with the set-based checks of
// V0006__set_based_checks.sql) refuses every invariant violation by itself: each named
// constraint, unique index and trigger is driven to a violation in plain SQL next to a
// near-identical statement that is accepted, so each test shows that the constraint itself
// bites. Invariant 5 of DESIGN §4 (subsidy * 10000 <= bill * ratio) is tested at its boundary
// with amounts near INT64_MAX; invariant 6 (a usage record settles once) by the keys.
//
// PostgreSQL tests the CHECK constraints of a row in alphabetical order of their names and
// reports the first that fails; rows here break one constraint at a time except where noted.
// The cross-row checks (redemptions_insert_check, usage_records_insert_check and
// payout_lines_match_payouts) run AFTER INSERT once per statement, after all of the
// statement's rows passed their own CHECKs, unique keys and foreign keys: a row that one of
// those refuses need not agree with other rows. Every accepted row agrees with them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/sql_refusals.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;
using ::vch::testing::Accepted;
using ::vch::testing::CreateTestDatabase;
using ::vch::testing::RefusedBy;
using ::vch::testing::RefusedByTrigger;

constexpr int64_t kMaxFen = std::numeric_limits<int64_t>::max();  // 9223372036854775807

// The fixture's parents: issuer, OPEN program (DIRECT settlement), enterprise, datacenter, pool.
constexpr char kIssuer[] = "iss-a";
constexpr char kProgram[] = "prog-a";
constexpr char kUscc[] = "91350100M000100Y43";
constexpr char kOtherUscc[] = "91440300708461136T";
constexpr char kDatacenter[] = "dc1";
constexpr char kPool[] = "p1";
// Parents that only some tests add (AddIssuer, AddProgram, AddEnterprise, AddPool).
constexpr char kOtherIssuer[] = "iss-b";
constexpr char kOtherProgram[] = "prog-b";
constexpr char kOtherDatacenter[] = "dc2";
constexpr char kOtherPool[] = "p2";

// An id that no row has.
constexpr int64_t kMissingId = 999999;

// Transfer kinds as stored (policy::TransferKind).
constexpr int kHold = 3;
constexpr int kPost = 4;
constexpr int kVoid = 5;
constexpr int kPayout = 7;

// Capacity hold states as stored.
constexpr int kHeld = 1;
constexpr int kReleased = 2;
constexpr int kConsumed = 3;

// Redemption states as stored.
constexpr int kPlaced = 1;
constexpr int kConfirmed = 2;
constexpr int kActive = 3;
constexpr int kSettled = 4;
constexpr int kCancelled = 5;
constexpr int kRejected = 7;

// A redemptions row; valid as is (PLACED: 2 GPUs for 10 hours at 28 yuan, 80% voucher share).
struct RedemptionRow {
  int64_t id = 1;
  std::string program_id = kProgram;
  std::string issuer_id = kIssuer;
  std::string uscc = kUscc;
  std::string datacenter_id = kDatacenter;
  std::string pool_id = kPool;
  // The request as made (the column defaults).
  std::string accelerator_model;
  bool fp8_required = false;
  bool domestic_required = false;
  int min_memory_gib = 0;
  int64_t max_price_fen_per_gpu_hour = 0;
  std::string preferred_region_prefix;
  int gpus = 2;
  int hours = 10;
  int64_t price_fen_per_gpu_hour = 2'800;
  int ratio_bps = 8'000;
  int settlement_style = 1;
  // Unset: gpus * hours * price (in int64: set it explicitly for amounts near INT64_MAX).
  std::optional<int64_t> estimated_bill_fen;
  // Unset: floor(estimate * ratio / 10000) (idem).
  std::optional<int64_t> held_fen;
  // Unset: a fresh HOLD transfer of held_fen in program_id with its untouched ledger_holds row,
  // debiting the wallet of uscc in program_id (EnterpriseWallet) / a fresh HELD capacity hold
  // of gpus in datacenter_id/pool_id: what redemptions_insert_check requires.
  std::optional<int64_t> hold_transfer_id;
  std::optional<int64_t> capacity_hold_id;
  int state = kPlaced;
  std::optional<int64_t> replaces;
  std::optional<int> generation;  // Unset: 0 without replaces, 1 with.
  std::optional<int64_t> replaced_by;
  int64_t gpu_seconds = 0;
  int64_t billed_fen = 0;
  int64_t subsidy_fen = 0;
  int usage_records = 0;
  int signature_bytes = 64;
  std::string request_id;  // Empty: "req-<id>".
};

// A usage_records row; valid as is (one hour of 1 GPU at 28 yuan on redemption 1, 80% share)
// when redemption 1 has the default RedemptionRow terms, which it carries.
struct UsageRow {
  int64_t redemption_id = 1;
  std::string usage_id = "u1";
  std::optional<int64_t> seq;  // Unset: the column default.
  std::string program_id = kProgram;
  std::string issuer_id = kIssuer;
  std::string uscc = kUscc;
  std::string datacenter_id = kDatacenter;
  int settlement_style = 1;
  int64_t gpu_seconds = 3'600;
  std::string start_at = "'2026-03-10T00:00:00Z'";  // An SQL expression.
  std::string end_at = "'2026-03-10T01:00:00Z'";    // An SQL expression.
  bool final = false;
  int64_t price_fen_per_gpu_hour = 2'800;
  int ratio_bps = 8'000;
  std::optional<int64_t> bill_fen;     // Unset: floor(gpu_seconds * price / 3600) in int64.
  std::optional<int64_t> subsidy_fen;  // Unset: floor(bill * ratio / 10000) in int64.
  std::optional<int64_t> copay_fen;    // Unset: bill - subsidy.
  int capped_by = 0;
  // Unset: the fixture's POST transfer when the subsidy is not 0, else NULL. 0: NULL.
  std::optional<int64_t> post_transfer_id;
  std::optional<int64_t> release_transfer_id;         // Unset or 0: NULL.
  std::string settled_at = "'2026-03-10T02:00:00Z'";  // An SQL expression.
};

// A payouts row; valid when its lines are inserted by one statement right after it (in the
// same transaction).
struct PayoutRow {
  int64_t id = 1;
  std::string program_id = kProgram;
  std::string issuer_id = kIssuer;
  int payee_kind = 1;
  std::string payee = kDatacenter;
  std::string period_start = "'2026-03-01T00:00:00+08'";  // An SQL expression.
  std::string period_end = "'2026-04-01T00:00:00+08'";    // An SQL expression.
  int64_t amount_fen = 2'240;
  int lines = 1;
  // Unset: a fresh PAYOUT transfer of amount_fen in program_id that moves the payee's claims to
  // its PAID account (NewPayoutTransfer).
  std::optional<int64_t> transfer_id;
  std::string request_id;  // Empty: "payout-<id>".
};

class RedemptionSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conn_ = std::make_unique<pqxx::connection>(CreateTestDatabase());
    ASSERT_TRUE(Scalar<bool>(absl::StrCat("SELECT vch_uscc_valid(", Q(kUscc),
                                          ") AND vch_uscc_valid(", Q(kOtherUscc), ")")));
    ASSERT_NO_FATAL_FAILURE(AddIssuer(kIssuer));
    ASSERT_NO_FATAL_FAILURE(AddProgram(kProgram, 2));
    ASSERT_NO_FATAL_FAILURE(AddEnterprise(kUscc));
    ASSERT_NO_FATAL_FAILURE(AddPool(kDatacenter, kPool));
    wallet_ = EnterpriseWallet(kProgram, kUscc);
    receivable_ = Account(kProgram, "RECEIVABLE", kDatacenter);
    hold_transfer_id_ = NewHoldTransfer(10'000);
    post_transfer_id_ = NewTransfer(kPost, 10'000, hold_transfer_id_);
  }

  void AddIssuer(const std::string& id) {
    ASSERT_THAT(ErrorOf(absl::StrCat("INSERT INTO issuers (id, display_name, region_code, level) "
                                     "VALUES (",
                                     Q(id), ", 'Issuer', '310000', 2)")),
                Accepted())
        << id;
  }

  void AddProgram(const std::string& id, int state,
                  std::optional<int> settlement_style = std::nullopt,
                  const std::string& issuer_id = kIssuer) {
    ASSERT_THAT(ErrorOf(ProgramSql(id, state, settlement_style, issuer_id)), Accepted()) << id;
  }

  void AddEnterprise(const std::string& uscc) {
    ASSERT_THAT(
        ErrorOf(absl::StrCat("INSERT INTO enterprises (uscc, display_name, region_code, kind, "
                             "size_class) VALUES (",
                             Q(uscc), ", 'Enterprise', '310115', 1, 2)")),
        Accepted())
        << uscc;
  }

  // A pool of 64 H800 at 28 yuan, and its datacenter unless it exists.
  void AddPool(const std::string& datacenter_id, const std::string& pool_id) {
    ASSERT_THAT(ErrorOf(absl::StrCat("INSERT INTO datacenters (id, display_name, region_code, hub, "
                                     "national_network) VALUES (",
                                     Q(datacenter_id),
                                     ", 'Site', '520100', 6, true) ON CONFLICT (id) DO NOTHING")),
                Accepted())
        << datacenter_id;
    ASSERT_THAT(ErrorOf(absl::StrCat(
                    "INSERT INTO gpu_pools (datacenter_id, id, accelerator_model, "
                    "domestic, fp8, memory_gib, gpus_total, price_fen_per_gpu_hour) "
                    "VALUES (",
                    Q(datacenter_id), ", ", Q(pool_id), ", 'H800', false, true, 80, 64, 2800)")),
                Accepted())
        << datacenter_id << "/" << pool_id;
  }

  std::string ErrorOf(const std::string& sql) { return ::vch::testing::SqlErrorOf(*conn_, sql); }

  // Runs a statement that must succeed (outside any explicit transaction).
  pqxx::result Query(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql);
  }

  template <typename T>
  T Scalar(const std::string& sql) {
    return Query(sql)[0][0].as<T>();
  }

  int64_t Count(const std::string& table) {
    return Scalar<int64_t>(absl::StrCat("SELECT count(*) FROM ", table));
  }

  std::string Q(const std::string& text) { return conn_->quote(text); }

  // The WALLET account of `uscc` in `program_id` named by its program_enterprises row (cap
  // 100000 fen, nothing awarded); both are made on first use. When the program or the
  // enterprise does not exist, a WALLET account of that program and owner that no
  // program_enterprises row names (ledger accounts do not reference programs or enterprises).
  int64_t EnterpriseWallet(const std::string& program_id, const std::string& uscc) {
    const auto known = wallets_.find({program_id, uscc});
    if (known != wallets_.end()) return known->second;
    if (!Scalar<bool>(
            absl::StrCat("SELECT EXISTS (SELECT 1 FROM programs WHERE id = ", Q(program_id),
                         ") AND EXISTS (SELECT 1 FROM enterprises WHERE uscc = ", Q(uscc), ")"))) {
      return Account(program_id, "WALLET", uscc);
    }
    const int64_t wallet = Scalar<int64_t>(absl::StrCat(
        "WITH w AS (INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner) "
        "SELECT id, issuer_id, 'WALLET', ",
        Q(uscc), " FROM programs WHERE id = ", Q(program_id),
        " RETURNING id, program_id, issuer_id) INSERT INTO program_enterprises (program_id, uscc, "
        "issuer_id, cap_fen, wallet_account_id) SELECT program_id, ",
        Q(uscc), ", issuer_id, 100000, id FROM w RETURNING wallet_account_id"));
    wallets_.emplace(std::make_pair(program_id, uscc), wallet);
    return wallet;
  }

  // A program `id` of `issuer_id` in `state`, with its TREASURY, BUDGET and LAPSED accounts
  // made by the same statement. `settlement_style` unset: the column default.
  std::string ProgramSql(const std::string& id, int state,
                         std::optional<int> settlement_style = std::nullopt,
                         const std::string& issuer_id = kIssuer) {
    auto account = [&](const char* kind) {
      return absl::StrCat("INSERT INTO ledger_accounts (program_id, issuer_id, kind) VALUES (",
                          Q(id), ", ", Q(issuer_id), ", '", kind, "') RETURNING id");
    };
    return absl::StrCat(
        "WITH t AS (", account("TREASURY"), "), b AS (", account("BUDGET"), "), l AS (",
        account("LAPSED"),
        ") INSERT INTO programs (id, issuer_id, display_name, category, state, "
        "planned_budget_fen, subsidy_ratio_bps, per_enterprise_cap_fen, eligible_kinds, "
        "eligible_sizes, local_enterprises_only, application_start, application_end, "
        "redemption_start, redemption_end, datacenter_scope, price_ceiling_fen_per_gpu_hour, "
        "treasury_account_id, budget_account_id, lapsed_account_id",
        settlement_style.has_value() ? ", settlement_style" : "", ") SELECT ", Q(id), ", ",
        Q(issuer_id), ", 'Program', 1, ", state,
        ", 1000000, 8000, 100000, '{1}', '{2}', false, '2026-01-01T00:00:00Z', "
        "'2026-06-01T00:00:00Z', '2026-02-01T00:00:00Z', '2026-12-01T00:00:00Z', 1, 5000, "
        "t.id, b.id, l.id",
        settlement_style.has_value() ? absl::StrCat(", ", *settlement_style) : "", " FROM t, b, l");
  }

  // The `kind` account of `owner` in `program_id` (of the program's issuer; of the fixture
  // issuer when the program does not exist, as ledger accounts do not reference programs), made
  // on first use; returns its id.
  int64_t Account(const std::string& program_id, const std::string& kind,
                  const std::string& owner) {
    Query(absl::StrCat("INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner) SELECT ",
                       Q(program_id), ", COALESCE((SELECT issuer_id FROM programs WHERE id = ",
                       Q(program_id), "), ", Q(kIssuer), "), ", Q(kind), ", ", Q(owner),
                       " ON CONFLICT ON CONSTRAINT accounts_one_per_kind_and_owner DO NOTHING"));
    return Scalar<int64_t>(
        absl::StrCat("SELECT id FROM ledger_accounts WHERE program_id = ", Q(program_id),
                     " AND kind = ", Q(kind), " AND owner = ", Q(owner)));
  }

  // The default accounts of a transfer of `program_id`: the fixture enterprise's wallet and the
  // fixture datacenter's receivable in that program (a transfer's accounts are of its program:
  // ledger_transfers_insert_check).
  int64_t DefaultDebit(const std::string& program_id) {
    return program_id == kProgram ? wallet_ : Account(program_id, "WALLET", kUscc);
  }
  int64_t DefaultCredit(const std::string& program_id) {
    return program_id == kProgram ? receivable_ : Account(program_id, "RECEIVABLE", kDatacenter);
  }

  // A ledger transfer of `program_id` from `debit_account_id` (unset: DefaultDebit) to
  // `credit_account_id` (unset: DefaultCredit); returns its id. (The schema ties a redemption to
  // its HOLD by kind, amount, program_id, its ledger hold and the debited wallet; a payout's
  // transfer must also move the payee's claims in the payout's program: see NewPayoutTransfer.)
  int64_t NewTransfer(int kind, int64_t amount_fen, std::optional<int64_t> pending_id,
                      const std::string& program_id = kProgram,
                      std::optional<int64_t> debit_account_id = std::nullopt,
                      std::optional<int64_t> credit_account_id = std::nullopt,
                      int64_t released_fen = 0) {
    if (!debit_account_id.has_value()) debit_account_id = DefaultDebit(program_id);
    if (!credit_account_id.has_value()) credit_account_id = DefaultCredit(program_id);
    const int64_t id = next_transfer_id_++;
    Query(absl::StrCat(
        "INSERT INTO ledger_transfers (id, program_id, kind, debit_account_id, credit_account_id, "
        "amount_fen, released_fen, pending_id, expires_at, request_scope, request_id, created_at, "
        "debit_debits_pending_fen, debit_debits_posted_fen, debit_credits_pending_fen, "
        "debit_credits_posted_fen, credit_debits_pending_fen, credit_debits_posted_fen, "
        "credit_credits_pending_fen, credit_credits_posted_fen) VALUES (",
        id, ", ", Q(program_id), ", ", kind, ", ", *debit_account_id, ", ", *credit_account_id,
        ", ", amount_fen, ", ", released_fen, ", ",
        pending_id.has_value() ? absl::StrCat(*pending_id) : "NULL", ", ",
        kind == kHold ? "'2030-01-01T00:00:00Z'" : "NULL", ", 'transfers', 'req-", id,
        "', now(), 0, 0, 0, 0, 0, 0, 0, 0)"));
    return id;
  }

  // A PAYOUT transfer of `amount_fen` in `program_id` that pays `payee`'s claims as
  // payout_matches_lines requires: from its RECEIVABLE (payee_kind 1, a datacenter's DIRECT
  // claims; also for an unknown kind) or PAYABLE (payee_kind 2, an enterprise's REIMBURSE
  // claims) account of the program to its PAID account of the program. Returns its id.
  int64_t NewPayoutTransfer(int64_t amount_fen, const std::string& program_id = kProgram,
                            int payee_kind = 1, const std::string& payee = kDatacenter) {
    return NewTransfer(kPayout, amount_fen, std::nullopt, program_id,
                       Account(program_id, payee_kind == 2 ? "PAYABLE" : "RECEIVABLE", payee),
                       Account(program_id, "PAID", payee));
  }

  // A HOLD transfer of `amount_fen` and its open, untouched ledger_holds row; returns the
  // transfer id. With another `kind`, only the transfer (a hold row must be the state of a HOLD
  // transfer: ledger_holds_insert_check).
  int64_t NewHoldTransfer(int64_t amount_fen, const std::string& program_id = kProgram,
                          std::optional<int64_t> debit_account_id = std::nullopt,
                          int kind = kHold) {
    const int64_t debit = debit_account_id.value_or(DefaultDebit(program_id));
    const int64_t id = NewTransfer(kind, amount_fen, std::nullopt, program_id, debit);
    if (kind != kHold) return id;
    Query(absl::StrCat(
        "INSERT INTO ledger_holds (transfer_id, program_id, debit_account_id, credit_account_id, "
        "amount_fen, expires_at) VALUES (",
        id, ", ", Q(program_id), ", ", debit, ", ", DefaultCredit(program_id), ", ", amount_fen,
        ", '2030-01-01T00:00:00Z')"));
    return id;
  }

  // A capacity hold of `gpus` in a pool, HELD unless `state` says otherwise; returns its id.
  int64_t NewCapacityHold(int gpus, const std::string& datacenter_id = kDatacenter,
                          const std::string& pool_id = kPool, int state = kHeld) {
    return Scalar<int64_t>(absl::StrCat(
        "INSERT INTO capacity_holds (datacenter_id, pool_id, gpus, owner, purpose, state, "
        "expires_at, resolved_at) VALUES (",
        Q(datacenter_id), ", ", Q(pool_id), ", ", gpus, ", 'redemptions', 'redemptions/r', ", state,
        ", '2030-01-01T00:00:00Z', ", state == kHeld ? "NULL" : "now()", ") RETURNING id"));
  }

  // The INSERT of `r`. Makes the hold transfer (and the wallet it debits) and capacity hold it
  // needs first (committed even if the INSERT is then refused).
  std::string RedemptionSql(const RedemptionRow& r) {
    const int64_t estimate =
        r.estimated_bill_fen.value_or(int64_t{r.gpus} * r.hours * r.price_fen_per_gpu_hour);
    const int64_t held = r.held_fen.value_or(estimate * r.ratio_bps / 10'000);
    const int64_t hold = r.hold_transfer_id.has_value()
                             ? *r.hold_transfer_id
                             : NewHoldTransfer(std::max<int64_t>(held, 1), r.program_id,
                                               EnterpriseWallet(r.program_id, r.uscc));
    const int64_t capacity_hold =
        r.capacity_hold_id.has_value()
            ? *r.capacity_hold_id
            : NewCapacityHold(std::max(r.gpus, 1), r.datacenter_id, r.pool_id);
    const int generation = r.generation.value_or(r.replaces.has_value() ? 1 : 0);
    auto id_or_null = [](const std::optional<int64_t>& id) {
      return id.has_value() ? absl::StrCat(*id) : std::string("NULL");
    };
    return absl::StrCat(
        "INSERT INTO redemptions (id, program_id, issuer_id, uscc, datacenter_id, pool_id, "
        "accelerator_model, fp8_required, domestic_required, min_memory_gib, "
        "max_price_fen_per_gpu_hour, preferred_region_prefix, gpus, "
        "hours, price_fen_per_gpu_hour, ratio_bps, settlement_style, estimated_bill_fen, "
        "held_fen, hold_transfer_id, capacity_hold_id, expires_at, state, replaces, generation, "
        "replaced_by, gpu_seconds, billed_fen, subsidy_fen, usage_records, voucher_key_id, "
        "voucher_signature, request_scope, request_id, created_at, updated_at) VALUES (",
        r.id, ", ", Q(r.program_id), ", ", Q(r.issuer_id), ", ", Q(r.uscc), ", ",
        Q(r.datacenter_id), ", ", Q(r.pool_id), ", ", Q(r.accelerator_model), ", ",
        r.fp8_required ? "true" : "false", ", ", r.domestic_required ? "true" : "false", ", ",
        r.min_memory_gib, ", ", r.max_price_fen_per_gpu_hour, ", ", Q(r.preferred_region_prefix),
        ", ", r.gpus, ", ", r.hours, ", ", r.price_fen_per_gpu_hour, ", ", r.ratio_bps, ", ",
        r.settlement_style, ", ", estimate, ", ", held, ", ", hold, ", ", capacity_hold,
        ", '2030-01-01T00:00:00Z', ", r.state, ", ", id_or_null(r.replaces), ", ", generation, ", ",
        id_or_null(r.replaced_by), ", ", r.gpu_seconds, ", ", r.billed_fen, ", ", r.subsidy_fen,
        ", ", r.usage_records, ", 'ed25519-test', decode(repeat('ab', ", r.signature_bytes,
        "), 'hex'), 'redemptions', ",
        Q(r.request_id.empty() ? absl::StrCat("req-", r.id) : r.request_id), ", now(), now())");
  }

  void AddRedemption(const RedemptionRow& r) {
    ASSERT_THAT(ErrorOf(RedemptionSql(r)), Accepted()) << "redemption " << r.id;
  }

  std::string UsageSql(const UsageRow& u) {
    const int64_t bill = u.bill_fen.value_or(u.gpu_seconds * u.price_fen_per_gpu_hour / 3'600);
    const int64_t subsidy = u.subsidy_fen.value_or(bill * u.ratio_bps / 10'000);
    const int64_t copay = u.copay_fen.value_or(bill - subsidy);
    const int64_t post = u.post_transfer_id.has_value() ? *u.post_transfer_id
                         : subsidy != 0                 ? NewPostOf(u.redemption_id, subsidy)
                                                        : 0;
    const int64_t release = u.release_transfer_id.value_or(0);
    auto id_or_null = [](int64_t id) { return id == 0 ? std::string("NULL") : absl::StrCat(id); };
    return absl::StrCat(
        "INSERT INTO usage_records (redemption_id, usage_id, ", u.seq.has_value() ? "seq, " : "",
        "program_id, issuer_id, uscc, datacenter_id, settlement_style, gpu_seconds, start_at, "
        "end_at, final, price_fen_per_gpu_hour, ratio_bps, bill_fen, subsidy_fen, copay_fen, "
        "capped_by, post_transfer_id, release_transfer_id, request_hash, settled_at) VALUES (",
        u.redemption_id, ", ", Q(u.usage_id), ", ",
        u.seq.has_value() ? absl::StrCat(*u.seq, ", ") : "", Q(u.program_id), ", ", Q(u.issuer_id),
        ", ", Q(u.uscc), ", ", Q(u.datacenter_id), ", ", u.settlement_style, ", ", u.gpu_seconds,
        ", ", u.start_at, ", ", u.end_at, ", ", u.final ? "true" : "false", ", ",
        u.price_fen_per_gpu_hour, ", ", u.ratio_bps, ", ", bill, ", ", subsidy, ", ", copay, ", ",
        u.capped_by, ", ", id_or_null(post), ", ", id_or_null(release), ", 'sha256:ab', ",
        u.settled_at, ")");
  }

  // The credit hold of redemption `redemption_id`; the fixture's hold when there is none.
  int64_t HoldOf(int64_t redemption_id) {
    const pqxx::result hold =
        Query(absl::StrCat("SELECT hold_transfer_id FROM redemptions WHERE id = ", redemption_id));
    return hold.empty() ? hold_transfer_id_ : hold[0][0].as<int64_t>();
  }

  // A transfer of `kind` resolving hold `hold`: of its program, between its accounts (as the
  // ledger makes them, and as ledger_transfers_insert_check requires).
  int64_t NewResolutionOf(int kind, int64_t hold, int64_t amount_fen, int64_t released_fen) {
    const pqxx::result h = Query(absl::StrCat(
        "SELECT program_id, debit_account_id, credit_account_id FROM ledger_transfers WHERE id = ",
        hold));
    return NewTransfer(kind, amount_fen, hold, h[0][0].as<std::string>(), h[0][1].as<int64_t>(),
                       h[0][2].as<int64_t>(), released_fen);
  }

  // A POST of `amount_fen` (at least 1) on the credit hold of redemption `redemption_id` (see
  // HoldOf), as a usage record's post_transfer_id must be (usage_records_insert_check); with
  // `released_fen`, the POST that closes the hold releasing that much. Returns its id.
  int64_t NewPostOf(int64_t redemption_id, int64_t amount_fen, int64_t released_fen = 0) {
    return NewResolutionOf(kPost, HoldOf(redemption_id), std::max<int64_t>(amount_fen, 1),
                           released_fen);
  }

  // A VOID of `amount_fen` on the credit hold of redemption `redemption_id`: a release.
  int64_t NewVoidOf(int64_t redemption_id, int64_t amount_fen = 100) {
    return NewResolutionOf(kVoid, HoldOf(redemption_id), amount_fen, 0);
  }

  void AddUsage(const UsageRow& u) {
    ASSERT_THAT(ErrorOf(UsageSql(u)), Accepted()) << "usage " << u.usage_id;
  }

  // The INSERT of `p`. Makes its PAYOUT transfer (of its amount in its program, from the
  // payee's claims to its PAID account, and those accounts) first unless given.
  std::string PayoutSql(const PayoutRow& p) {
    const int64_t transfer = p.transfer_id.has_value()
                                 ? *p.transfer_id
                                 : NewPayoutTransfer(std::max<int64_t>(p.amount_fen, 1),
                                                     p.program_id, p.payee_kind, p.payee);
    return absl::StrCat(
        "INSERT INTO payouts (id, program_id, issuer_id, payee_kind, payee, period_start, "
        "period_end, amount_fen, lines, transfer_id, created_by, request_scope, request_id, "
        "created_at) VALUES (",
        p.id, ", ", Q(p.program_id), ", ", Q(p.issuer_id), ", ", p.payee_kind, ", ", Q(p.payee),
        ", ", p.period_start, ", ", p.period_end, ", ", p.amount_fen, ", ", p.lines, ", ", transfer,
        ", 'ISSUER:iss-a/staff', 'payouts', ",
        Q(p.request_id.empty() ? absl::StrCat("payout-", p.id) : p.request_id), ", now())");
  }

  // One INSERT of lines (payout id, redemption id, usage id), as the storage code writes them:
  // payout_lines_match_payouts checks each payout they join once, when the statement ends.
  std::string LinesSql(const std::vector<std::tuple<int64_t, int64_t, std::string>>& lines) {
    std::string sql = "INSERT INTO payout_lines (payout_id, redemption_id, usage_id) VALUES ";
    const char* separator = "";
    for (const auto& [payout_id, redemption_id, usage_id] : lines) {
      absl::StrAppend(&sql, separator, "(", payout_id, ", ", redemption_id, ", ", Q(usage_id), ")");
      separator = ", ";
    }
    return sql;
  }

  std::string LineSql(int64_t payout_id, int64_t redemption_id, const std::string& usage_id) {
    return LinesSql({{payout_id, redemption_id, usage_id}});
  }

  // A payout and then all its lines by one statement, in one transaction (the payout's own
  // check runs at COMMIT; no statement when `lines` is empty).
  std::string PayoutWithLinesSql(const PayoutRow& p,
                                 const std::vector<std::pair<int64_t, std::string>>& lines) {
    std::string sql = PayoutSql(p);
    std::vector<std::tuple<int64_t, int64_t, std::string>> rows;
    for (const auto& [redemption_id, usage_id] : lines) {
      rows.emplace_back(p.id, redemption_id, usage_id);
    }
    if (!rows.empty()) absl::StrAppend(&sql, "; ", LinesSql(rows));
    return sql;
  }

  std::string SpendSql(const std::string& program_id, const std::string& month, int64_t limit_fen,
                       int64_t spent_fen) {
    return absl::StrCat(
        "INSERT INTO program_monthly_spend (program_id, month, limit_fen, spent_fen) VALUES (",
        Q(program_id), ", ", Q(month), ", ", limit_fen, ", ", spent_fen, ")");
  }

  std::unique_ptr<pqxx::connection> conn_;
  // The fixture enterprise's wallet in the fixture program.
  int64_t wallet_ = 0;
  // EnterpriseWallet's, by (program, USCC).
  std::map<std::pair<std::string, std::string>, int64_t> wallets_;
  int64_t receivable_ = 0;
  int64_t hold_transfer_id_ = 0;
  int64_t post_transfer_id_ = 0;
  int64_t next_transfer_id_ = 1;
};

std::string TermsImmutable(int64_t id) {
  return absl::StrCat("REDEMPTION_IMMUTABLE: the terms of redemption ", id, " never change");
}

std::string TotalsOnlyGrow(int64_t id) {
  return absl::StrCat("REDEMPTION_IMMUTABLE: settled totals of redemption ", id, " only grow");
}

std::string StateInvalid(int64_t id, int from, int to) {
  return absl::StrCat("REDEMPTION_STATE_INVALID: redemption ", id, " cannot go from state ", from,
                      " to ", to);
}

std::string HoldMismatch(int64_t transfer_id, int64_t held_fen, const std::string& uscc,
                         const std::string& program_id) {
  return absl::StrCat("REDEMPTION_HOLD_MISMATCH: transfer ", transfer_id,
                      " is not an open HOLD of ", held_fen, " fen from the wallet of ", uscc,
                      " in program ", program_id);
}

std::string CapacityHoldMismatch(int64_t capacity_hold_id, int gpus,
                                 const std::string& datacenter_id, const std::string& pool_id) {
  return absl::StrCat("REDEMPTION_HOLD_MISMATCH: capacity hold ", capacity_hold_id,
                      " is not a HELD hold of ", gpus, " GPUs in ", datacenter_id, "/", pool_id);
}

std::string ProgramMismatch(int64_t id, const std::string& program_id,
                            const std::string& issuer_id) {
  return absl::StrCat("REDEMPTION_PROGRAM_MISMATCH: redemption ", id, " names program ", program_id,
                      " of issuer ", issuer_id, ", which does not exist");
}

std::string ReplacesInvalid(int64_t replaces) {
  return absl::StrCat("REDEMPTION_REPLACES_INVALID: ", replaces,
                      " is not a rejected first placement of this request");
}

std::string TransferMismatch(const std::string& usage_id, int64_t redemption_id) {
  return absl::StrCat("USAGE_TRANSFER_MISMATCH: usage record ", usage_id, " of redemption ",
                      redemption_id, " names transfers that do not settle its hold");
}

std::string TermsMismatch(const std::string& usage_id, int64_t redemption_id) {
  return absl::StrCat("USAGE_TERMS_MISMATCH: usage record ", usage_id, " of redemption ",
                      redemption_id, " does not carry its terms");
}

std::string SpendImmutable(const std::string& program_id, const std::string& month) {
  return absl::StrCat("MONTHLY_SPEND_IMMUTABLE: monthly spend of ", program_id, " in ", month,
                      " only grows");
}

// ---------------------------------------------------------------------------------------------
// The schema itself.

TEST_F(RedemptionSchemaTest, SchemaHasExactlyTheConstraintsAndTriggersTestedHere) {
  // A constraint, unique index or trigger added to the redemption tables needs a test here.
  const std::string tables =
      "('redemptions'::regclass, 'usage_records'::regclass, "
      "'program_monthly_spend'::regclass, 'payouts'::regclass, 'payout_lines'::regclass)";
  std::vector<std::string> constraints;
  for (const auto& row :
       Query(absl::StrCat("SELECT conname FROM pg_constraint WHERE conrelid IN ", tables))) {
    constraints.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(constraints, UnorderedElementsAreArray<std::string>({
                               "redemptions_pkey",
                               "redemptions_gpus_positive",
                               "redemptions_hours_range",
                               "redemptions_price_positive",
                               "redemptions_ratio_range",
                               "redemptions_settlement_style_known",
                               "redemptions_held_positive",
                               "redemptions_state_known",
                               "redemptions_replaced_once",
                               "redemptions_replaces_fkey",
                               "redemptions_replaced_by_fkey",
                               "redemptions_gpu_seconds_nonnegative",
                               "redemptions_billed_nonnegative",
                               "redemptions_subsidy_nonnegative",
                               "redemptions_signature_length",
                               "redemptions_estimate_exact",
                               "redemptions_hold_is_share",
                               "redemptions_subsidy_within_hold",
                               "redemptions_subsidy_within_ratio",
                               "redemptions_generation",
                               "redemptions_replaced_only_when_rejected",
                               "redemptions_request_once",
                               "redemptions_hold_once",
                               "redemptions_capacity_hold_once",
                               "usage_records_pkey",
                               "usage_records_id_valid",
                               "usage_records_settlement_style_known",
                               "usage_records_gpu_seconds_nonnegative",
                               "usage_records_price_positive",
                               "usage_records_ratio_range",
                               "usage_records_subsidy_nonnegative",
                               "usage_records_capped_by_known",
                               "usage_records_interval",
                               "usage_records_bill_exact",
                               "usage_records_subsidy_within_ratio",
                               "usage_records_copay",
                               "usage_records_post_iff_subsidy",
                               "usage_records_release_only_final",
                               "program_monthly_spend_pkey",
                               "program_monthly_spend_program_id_fkey",
                               "program_monthly_spend_first_day",
                               "program_monthly_spend_limit_positive",
                               "program_monthly_spend_nonnegative",
                               "program_monthly_spend_within_limit",
                               "payouts_pkey",
                               "payouts_program_id_fkey",
                               "payouts_issuer_id_fkey",
                               "payouts_payee_kind_known",
                               "payouts_payee_nonempty",
                               "payouts_amount_positive",
                               "payouts_lines_positive",
                               "payouts_transfer_once",
                               "payouts_transfer_id_fkey",
                               "payouts_period_ordered",
                               "payouts_request_once",
                               "payouts_match_lines",
                               "payout_lines_paid_once",
                               "payout_lines_payout_id_fkey",
                               "payout_lines_usage_fkey",
                           }));
  // Unique indexes that are not a constraint's (violations name the index).
  std::vector<std::string> unique_indexes;
  for (const auto& row : Query(absl::StrCat(
           "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
           "WHERE i.indisunique AND i.indrelid IN ",
           tables,
           " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid "
           "AND k.conrelid = i.indrelid)"))) {
    unique_indexes.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(unique_indexes, UnorderedElementsAreArray<std::string>({
                                  "usage_records_one_final",
                                  "usage_records_seq",
                              }));
  // Each trigger as "name timing events level [DEFERRED] [transition tables] function": the
  // cross-row checks rely on running AFTER INSERT once per statement, after every row of the
  // statement passed its own constraints (each reads the statement's rows as its NEW TABLE),
  // and the payout's check on running at commit.
  std::vector<std::string> triggers;
  for (const auto& row : Query(absl::StrCat(
           "SELECT tgname || CASE WHEN tgtype & 2 <> 0 THEN ' BEFORE' ELSE ' AFTER' END "
           "|| CASE WHEN tgtype & 4 <> 0 THEN ' INSERT' ELSE '' END "
           "|| CASE WHEN tgtype & 16 <> 0 THEN ' UPDATE' ELSE '' END "
           "|| CASE WHEN tgtype & 8 <> 0 THEN ' DELETE' ELSE '' END "
           "|| CASE WHEN tgtype & 32 <> 0 THEN ' TRUNCATE' ELSE '' END "
           "|| CASE WHEN tgtype & 1 <> 0 THEN ' ROW' ELSE ' STATEMENT' END "
           "|| CASE WHEN tgdeferrable AND tginitdeferred THEN ' DEFERRED' ELSE '' END "
           "|| CASE WHEN tgoldtable IS NOT NULL THEN ' OLD TABLE ' || tgoldtable ELSE '' END "
           "|| CASE WHEN tgnewtable IS NOT NULL THEN ' NEW TABLE ' || tgnewtable ELSE '' END "
           "|| ' ' || tgfoid::regproc::text "
           "FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN ",
           tables))) {
    triggers.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(triggers,
              UnorderedElementsAreArray<std::string>({
                  "redemptions_guard BEFORE UPDATE DELETE ROW redemptions_guard",
                  "redemptions_insert_check AFTER INSERT STATEMENT NEW TABLE new_redemptions "
                  "redemptions_insert_check",
                  "redemptions_no_truncate BEFORE TRUNCATE STATEMENT vch_forbid_mutation",
                  "usage_records_insert_check AFTER INSERT STATEMENT NEW TABLE new_records "
                  "usage_records_insert_check",
                  "usage_records_append_only BEFORE UPDATE DELETE ROW vch_forbid_mutation",
                  "usage_records_no_truncate BEFORE TRUNCATE STATEMENT vch_forbid_mutation",
                  "program_monthly_spend_forward_only BEFORE UPDATE DELETE ROW "
                  "program_monthly_spend_forward_only",
                  "program_monthly_spend_no_truncate BEFORE TRUNCATE STATEMENT vch_forbid_mutation",
                  "payouts_append_only BEFORE UPDATE DELETE ROW vch_forbid_mutation",
                  "payouts_no_truncate BEFORE TRUNCATE STATEMENT vch_forbid_mutation",
                  "payouts_match_lines AFTER INSERT ROW DEFERRED payouts_match_lines",
                  "payout_lines_append_only BEFORE UPDATE DELETE ROW vch_forbid_mutation",
                  "payout_lines_no_truncate BEFORE TRUNCATE STATEMENT vch_forbid_mutation",
                  "payout_lines_match_payouts AFTER INSERT STATEMENT NEW TABLE new_lines "
                  "payout_lines_match_payouts",
              }));
  // V0005 adds one constraint to programs (the rest of programs is program_store_test's).
  EXPECT_EQ(Scalar<std::string>("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE "
                                "conrelid = 'programs'::regclass AND "
                                "conname = 'programs_settlement_style_known'"),
            "CHECK ((settlement_style = ANY (ARRAY[1, 2])))");
}

// ---------------------------------------------------------------------------------------------
// programs.settlement_style

TEST_F(RedemptionSchemaTest, ProgramSettlementStyleMustBeKnown) {
  for (int style : {0, 3, -1}) {
    EXPECT_THAT(ErrorOf(ProgramSql(absl::StrCat("prog-s", style + 10), 1, style)),
                RefusedBy("programs_settlement_style_known"))
        << style;
  }
  EXPECT_THAT(ErrorOf(ProgramSql("prog-direct", 1, 1)), Accepted());
  EXPECT_THAT(ErrorOf(ProgramSql("prog-reimburse", 1, 2)), Accepted());
  // DIRECT by default.
  EXPECT_THAT(ErrorOf(ProgramSql("prog-default", 1)), Accepted());
  EXPECT_EQ(Scalar<int>("SELECT settlement_style FROM programs WHERE id = 'prog-default'"), 1);
  // Updates of a DRAFT are checked too.
  EXPECT_THAT(ErrorOf("UPDATE programs SET settlement_style = 3 WHERE id = 'prog-direct'"),
              RefusedBy("programs_settlement_style_known"));
  EXPECT_THAT(ErrorOf("UPDATE programs SET settlement_style = 2 WHERE id = 'prog-direct'"),
              Accepted());
  EXPECT_EQ(Scalar<int>("SELECT settlement_style FROM programs WHERE id = 'prog-direct'"), 2);
}

TEST_F(RedemptionSchemaTest, ProgramSettlementStyleIsFixedOnceTheProgramOpened) {
  ASSERT_THAT(ErrorOf(ProgramSql("prog-draft", 1, 1)), Accepted());
  ASSERT_THAT(ErrorOf(ProgramSql("prog-closed", 3, 1)), Accepted());
  ASSERT_THAT(ErrorOf(ProgramSql("prog-archived", 4, 1)), Accepted());
  for (const char* id : {kProgram, "prog-closed", "prog-archived"}) {
    const std::string where = absl::StrCat(" WHERE id = ", Q(id));
    EXPECT_THAT(ErrorOf("UPDATE programs SET settlement_style = 2" + where),
                RefusedByTrigger("VC012", absl::StrCat("PROGRAM_NOT_DRAFT: rules of program ", id,
                                                       " are fixed once it opened")))
        << id;
    // Leaving it as it is stays allowed.
    EXPECT_THAT(ErrorOf("UPDATE programs SET settlement_style = 1, updated_at = now()" + where),
                Accepted())
        << id;
  }
  // Changed while opening, or together with a state change out of OPEN.
  EXPECT_THAT(ErrorOf(absl::StrCat(
                  "UPDATE programs SET settlement_style = 2, state = 3 WHERE id = ", Q(kProgram))),
              RefusedByTrigger("VC012", "PROGRAM_NOT_DRAFT"));
  EXPECT_THAT(
      ErrorOf("UPDATE programs SET settlement_style = 2, state = 2 WHERE id = 'prog-draft'"),
      Accepted());
  EXPECT_THAT(ErrorOf("UPDATE programs SET settlement_style = 1 WHERE id = 'prog-draft'"),
              RefusedByTrigger("VC012", "PROGRAM_NOT_DRAFT: rules of program prog-draft"));
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(id || '=' || settlement_style, ',' ORDER BY id) "
                                "FROM programs"),
            "prog-a=1,prog-archived=1,prog-closed=1,prog-draft=2");
}

// ---------------------------------------------------------------------------------------------
// redemptions: inserts

TEST_F(RedemptionSchemaTest, ValidRedemptionIsStoredWithDefaults) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({}));
  pqxx::result r = Query(
      "SELECT estimated_bill_fen, held_fen, state, generation, replaces IS NULL, "
      "replaced_by IS NULL, gpu_seconds, billed_fen, subsidy_fen, usage_records, state_reason, "
      "accelerator_model, fp8_required, domestic_required, min_memory_gib, "
      "max_price_fen_per_gpu_hour, preferred_region_prefix, length(voucher_signature) "
      "FROM redemptions WHERE id = 1");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<int64_t>(), 56'000);
  EXPECT_EQ(r[0][1].as<int64_t>(), 44'800);
  EXPECT_EQ(r[0][2].as<int>(), kPlaced);
  EXPECT_EQ(r[0][3].as<int>(), 0);
  EXPECT_TRUE(r[0][4].as<bool>());
  EXPECT_TRUE(r[0][5].as<bool>());
  for (int column = 6; column <= 9; ++column) EXPECT_EQ(r[0][column].as<int64_t>(), 0);
  EXPECT_EQ(r[0][10].as<std::string>(), "");
  EXPECT_EQ(r[0][11].as<std::string>(), "");
  EXPECT_FALSE(r[0][12].as<bool>());
  EXPECT_FALSE(r[0][13].as<bool>());
  EXPECT_EQ(r[0][14].as<int>(), 0);
  EXPECT_EQ(r[0][15].as<int64_t>(), 0);
  EXPECT_EQ(r[0][16].as<std::string>(), "");
  EXPECT_EQ(r[0][17].as<int>(), 64);
  // The hold the redemption names joins its ledger hold.
  EXPECT_EQ(Scalar<int64_t>("SELECT h.amount_fen FROM redemptions r JOIN ledger_holds h "
                            "ON h.transfer_id = r.hold_transfer_id WHERE r.id = 1"),
            44'800);
}

TEST_F(RedemptionSchemaTest, HotTablesSampleSmall) {
  // The tables the hot paths append to are analyzed from small samples (V0008): every column
  // has a statistics target of 10, or 0 for those nothing filters on, so that autovacuum's
  // ANALYZE stays short. A column added later without one fails here.
  const std::string hot =
      "('redemptions', 'ledger_transfers', 'ledger_holds', 'capacity_holds', 'usage_records', "
      "'idempotency_keys')";
  EXPECT_THAT(
      Query(absl::StrCat("SELECT c.relname || '.' || a.attname || ' ' || a.attstattarget FROM "
                         "pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname IN ",
                         hot,
                         " AND c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT "
                         "a.attisdropped AND a.attstattarget NOT IN (0, 10)")),
      ::testing::IsEmpty());
  EXPECT_EQ(Scalar<int64_t>(absl::StrCat(
                "SELECT count(DISTINCT c.relname) FROM pg_attribute a JOIN pg_class c ON c.oid = "
                "a.attrelid WHERE c.relname IN ",
                hot, " AND a.attnum > 0 AND a.attstattarget = 10")),
            6);
  EXPECT_EQ(Scalar<int64_t>("SELECT attstattarget FROM pg_attribute WHERE attrelid = "
                            "'redemptions'::regclass AND attname = 'voucher_signature'"),
            0);
  EXPECT_EQ(Scalar<int64_t>("SELECT attstattarget FROM pg_attribute WHERE attrelid = "
                            "'redemptions'::regclass AND attname = 'uscc'"),
            10);
}

TEST_F(RedemptionSchemaTest, SetBasedChecksLookRowsUpByIndex) {
  // Each set-based check runs with sequential scans, hash and merge joins off, so that a plan
  // cached while its tables were small cannot scan them whole once they are large
  // (migrations/V0006__set_based_checks.sql).
  EXPECT_THAT(Query("SELECT proname || ' ' || array_to_string(proconfig, ' ') FROM pg_proc "
                    "WHERE proname LIKE '%\\_insert\\_check' ORDER BY proname"),
              ::testing::SizeIs(5));
  for (const auto& row : Query("SELECT proname || ' ' || array_to_string(proconfig, ' ') FROM "
                               "pg_proc WHERE proname LIKE '%\\_insert\\_check'")) {
    const std::string config = row[0].as<std::string>();
    EXPECT_THAT(config, AllOf(HasSubstr("enable_seqscan=off"), HasSubstr("enable_hashjoin=off"),
                              HasSubstr("enable_mergejoin=off")))
        << config;
  }
}

TEST_F(RedemptionSchemaTest, RedemptionMustReferenceItsParents) {
  // redemptions_insert_check, once per statement: the program exists with this issuer, and the
  // hold and capacity hold tie the row to an award of a registered enterprise and to a pool.
  EXPECT_THAT(ErrorOf(RedemptionSql({.program_id = "prog-none"})),
              RefusedByTrigger("VC047", ProgramMismatch(1, "prog-none", kIssuer)));
  EXPECT_THAT(ErrorOf(RedemptionSql({.issuer_id = "iss-none"})),
              RefusedByTrigger("VC047", ProgramMismatch(1, kProgram, "iss-none")));
  // A registered issuer that is not the program's.
  ASSERT_NO_FATAL_FAILURE(AddIssuer(kOtherIssuer));
  EXPECT_THAT(ErrorOf(RedemptionSql({.issuer_id = kOtherIssuer})),
              RefusedByTrigger("VC047", ProgramMismatch(1, kProgram, kOtherIssuer)));
  // A valid code of an enterprise that is not registered (the hold debits the fixture
  // enterprise's wallet, which is not its wallet).
  EXPECT_THAT(ErrorOf(RedemptionSql({.uscc = kOtherUscc})),
              RefusedByTrigger("VC043", "REDEMPTION_HOLD_MISMATCH: transfer "));
  EXPECT_THAT(ErrorOf(RedemptionSql({.hold_transfer_id = kMissingId})),
              RefusedByTrigger("VC043", HoldMismatch(kMissingId, 44'800, kUscc, kProgram)));
  EXPECT_THAT(ErrorOf(RedemptionSql({.capacity_hold_id = kMissingId})),
              RefusedByTrigger("VC043", CapacityHoldMismatch(kMissingId, 2, kDatacenter, kPool)));
  EXPECT_THAT(ErrorOf(RedemptionSql({.replaces = kMissingId})),
              RefusedBy("redemptions_replaces_fkey"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.state = kRejected, .replaced_by = kMissingId})),
              RefusedBy("redemptions_replaced_by_fkey"));
  EXPECT_EQ(Count("redemptions"), 0);
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .state = kRejected})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 3, .replaces = 2})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 4, .state = kRejected, .replaced_by = 3})), Accepted());
  // Naming a replacement that does not exist, by an update the guard allows.
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 7, replaced_by = 999999 WHERE id = 1"),
              RefusedBy("redemptions_replaced_by_fkey"));
  EXPECT_EQ(Count("redemptions"), 4);
}

TEST_F(RedemptionSchemaTest, RedemptionPoolMustExistInItsDatacenter) {
  ASSERT_NO_FATAL_FAILURE(AddPool(kDatacenter, kOtherPool));
  ASSERT_NO_FATAL_FAILURE(AddPool(kOtherDatacenter, kOtherPool));
  // The pool is the capacity hold's, whose own check requires it to exist (capacity_holds_
  // insert_check): a redemption naming a pool its capacity hold is not in is refused. These name
  // a hold in dc1/p1.
  const int64_t in_p1 = NewCapacityHold(2);
  EXPECT_THAT(ErrorOf(RedemptionSql({.pool_id = "p9", .capacity_hold_id = in_p1})),
              RefusedByTrigger("VC043", CapacityHoldMismatch(in_p1, 2, kDatacenter, "p9")));
  // dc2 exists, but its pools are p2 only.
  EXPECT_THAT(
      ErrorOf(RedemptionSql({.datacenter_id = kOtherDatacenter, .capacity_hold_id = in_p1})),
      RefusedByTrigger("VC043", CapacityHoldMismatch(in_p1, 2, kOtherDatacenter, kPool)));
  EXPECT_THAT(ErrorOf(RedemptionSql({.datacenter_id = "dc9", .capacity_hold_id = in_p1})),
              RefusedByTrigger("VC043", CapacityHoldMismatch(in_p1, 2, "dc9", kPool)));
  EXPECT_EQ(Count("redemptions"), 0);
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .pool_id = kOtherPool})), Accepted());
  EXPECT_THAT(
      ErrorOf(RedemptionSql({.id = 3, .datacenter_id = kOtherDatacenter, .pool_id = kOtherPool})),
      Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(datacenter_id || '/' || pool_id, ',' ORDER BY "
                                "id) FROM redemptions"),
            "dc1/p1,dc1/p2,dc2/p2");
}

TEST_F(RedemptionSchemaTest, RequestHoldAndCapacityHoldMakeOneRedemptionEach) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1, .request_id = "r"}));
  const int64_t hold = Scalar<int64_t>("SELECT hold_transfer_id FROM redemptions WHERE id = 1");
  const int64_t capacity_hold =
      Scalar<int64_t>("SELECT capacity_hold_id FROM redemptions WHERE id = 1");
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .request_id = "r2"})), RefusedBy("redemptions_pkey"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .request_id = "r"})),
              RefusedBy("redemptions_request_once"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .hold_transfer_id = hold})),
              RefusedBy("redemptions_hold_once"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .capacity_hold_id = capacity_hold})),
              RefusedBy("redemptions_capacity_hold_once"));
  EXPECT_EQ(Count("redemptions"), 1);
  // Another id, request, hold and capacity hold: another redemption.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .request_id = "r2"})), Accepted());
  EXPECT_EQ(Count("redemptions"), 2);
}

TEST_F(RedemptionSchemaTest, RedemptionSizeAndTermsMustBeInRange) {
  // gpus <= 0 makes the estimate and the hold <= 0 as well; gpus_positive is first by name.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .gpus = 0})), RefusedBy("redemptions_gpus_positive"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .gpus = -1})),
              RefusedBy("redemptions_gpus_positive"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .hours = 2'161})),
              RefusedBy("redemptions_hours_range"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .ratio_bps = 10'001})),
              RefusedBy("redemptions_ratio_range"));
  for (int style : {0, 3}) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .settlement_style = style})),
                RefusedBy("redemptions_settlement_style_known"))
        << style;
  }
  for (int state : {0, 8}) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .state = state})),
                RefusedBy("redemptions_state_known"))
        << state;
  }
  // hours < 1, price <= 0 and ratio < 1 always make a zero hold, so redemptions_held_positive
  // (earlier by name) refuses them first; without it, their own constraints do.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .hours = 0})),
              RefusedBy("redemptions_held_positive"));
  const std::string without_held_positive =
      "ALTER TABLE redemptions DROP CONSTRAINT redemptions_held_positive; ";
  EXPECT_THAT(ErrorOf(without_held_positive + RedemptionSql({.id = 1, .hours = 0})),
              RefusedBy("redemptions_hours_range"));
  EXPECT_THAT(
      ErrorOf(without_held_positive + RedemptionSql({.id = 1, .price_fen_per_gpu_hour = 0})),
      RefusedBy("redemptions_price_positive"));
  EXPECT_THAT(ErrorOf(without_held_positive + RedemptionSql({.id = 1, .ratio_bps = 0})),
              RefusedBy("redemptions_ratio_range"));
  // (Each of those transactions was rolled back, the DROP with it.)
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM pg_constraint WHERE "
                            "conname = 'redemptions_held_positive'"),
            1);
  EXPECT_EQ(Count("redemptions"), 0);
  // The bounds themselves.
  EXPECT_THAT(
      ErrorOf(RedemptionSql(
          {.id = 1, .gpus = 1, .hours = 1, .price_fen_per_gpu_hour = 1, .ratio_bps = 10'000})),
      Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .hours = 2'160, .ratio_bps = 1})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 3, .settlement_style = 2})), Accepted());
  int64_t id = 10;
  for (int state = 1; state <= 7; ++state) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = id++, .state = state})), Accepted()) << state;
  }
  EXPECT_EQ(Count("redemptions"), 3 + 7);
}

TEST_F(RedemptionSchemaTest, RedemptionEstimateIsExactlyGpusTimesHoursTimesPrice) {
  // 3 * 7 * 2801 = 58821.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1,
                                     .gpus = 3,
                                     .hours = 7,
                                     .price_fen_per_gpu_hour = 2'801,
                                     .estimated_bill_fen = 58'822,
                                     .held_fen = 47'057})),
              RefusedBy("redemptions_estimate_exact"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1,
                                     .gpus = 3,
                                     .hours = 7,
                                     .price_fen_per_gpu_hour = 2'801,
                                     .estimated_bill_fen = 58'820,
                                     .held_fen = 47'056})),
              RefusedBy("redemptions_estimate_exact"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1,
                                     .gpus = 3,
                                     .hours = 7,
                                     .price_fen_per_gpu_hour = 2'801,
                                     .estimated_bill_fen = 58'821,
                                     .held_fen = 47'056})),
              Accepted());
  // Near INT64_MAX the product is computed in numeric: 1 * 1 * max is exact, and 2 * 1 * max
  // (beyond bigint) is a mismatch rather than an overflow error.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2,
                                     .gpus = 1,
                                     .hours = 1,
                                     .price_fen_per_gpu_hour = kMaxFen,
                                     .ratio_bps = 10'000,
                                     .estimated_bill_fen = kMaxFen,
                                     .held_fen = kMaxFen})),
              Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 3,
                                     .gpus = 2,
                                     .hours = 1,
                                     .price_fen_per_gpu_hour = kMaxFen,
                                     .ratio_bps = 10'000,
                                     .estimated_bill_fen = kMaxFen,
                                     .held_fen = kMaxFen})),
              RefusedBy("redemptions_estimate_exact"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 3,
                                     .gpus = 1,
                                     .hours = 2,
                                     .price_fen_per_gpu_hour = kMaxFen / 2 + 1,
                                     .ratio_bps = 10'000,
                                     .estimated_bill_fen = kMaxFen,
                                     .held_fen = kMaxFen})),
              RefusedBy("redemptions_estimate_exact"));
  EXPECT_EQ(Count("redemptions"), 2);
}

TEST_F(RedemptionSchemaTest, RedemptionHoldIsTheFlooredVoucherShareOfTheEstimate) {
  // 58821 * 6667 / 10000 = 39215.9607: the hold is 39215 (floor), not 39216 (rounded).
  const RedemptionRow base{
      .gpus = 3, .hours = 7, .price_fen_per_gpu_hour = 2'801, .ratio_bps = 6'667};
  for (int64_t held : {39'216, 39'214}) {
    RedemptionRow r = base;
    r.held_fen = held;
    EXPECT_THAT(ErrorOf(RedemptionSql(r)), RefusedBy("redemptions_hold_is_share")) << held;
  }
  RedemptionRow exact = base;
  exact.held_fen = 39'215;
  EXPECT_THAT(ErrorOf(RedemptionSql(exact)), Accepted());
  // Near INT64_MAX: floor(9223372036854775807 * 7000 / 10000) = 6456360425798343064.
  const RedemptionRow big{.gpus = 1,
                          .hours = 1,
                          .price_fen_per_gpu_hour = kMaxFen,
                          .ratio_bps = 7'000,
                          .estimated_bill_fen = kMaxFen};
  for (int64_t held : {6'456'360'425'798'343'065, 6'456'360'425'798'343'063}) {
    RedemptionRow r = big;
    r.id = 2;
    r.held_fen = held;
    EXPECT_THAT(ErrorOf(RedemptionSql(r)), RefusedBy("redemptions_hold_is_share")) << held;
  }
  RedemptionRow big_exact = big;
  big_exact.id = 2;
  big_exact.held_fen = 6'456'360'425'798'343'064;
  EXPECT_THAT(ErrorOf(RedemptionSql(big_exact)), Accepted());
  // A share that floors to 0 is consistent but holds nothing: refused by held_positive.
  EXPECT_THAT(
      ErrorOf(RedemptionSql(
          {.id = 3, .gpus = 1, .hours = 1, .price_fen_per_gpu_hour = 1, .ratio_bps = 9'999})),
      RefusedBy("redemptions_held_positive"));
  EXPECT_THAT(
      ErrorOf(RedemptionSql(
          {.id = 3, .gpus = 1, .hours = 1, .price_fen_per_gpu_hour = 2, .ratio_bps = 5'000})),
      Accepted());
  EXPECT_EQ(Scalar<int64_t>("SELECT held_fen FROM redemptions WHERE id = 3"), 1);
  EXPECT_EQ(Count("redemptions"), 3);
}

TEST_F(RedemptionSchemaTest, RedemptionSettledTotalsMustBeNonNegative) {
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .state = kActive, .gpu_seconds = -1})),
              RefusedBy("redemptions_gpu_seconds_nonnegative"));
  // A negative bill also breaks invariant 5 for a zero subsidy; billed_nonnegative is first.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .state = kActive, .billed_fen = -1})),
              RefusedBy("redemptions_billed_nonnegative"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .state = kActive, .subsidy_fen = -1})),
              RefusedBy("redemptions_subsidy_nonnegative"));
  EXPECT_THAT(
      ErrorOf(RedemptionSql(
          {.id = 1, .state = kActive, .gpu_seconds = 0, .billed_fen = 0, .subsidy_fen = 0})),
      Accepted());
}

TEST_F(RedemptionSchemaTest, RedemptionSubsidyStaysWithinTheHold) {
  // Held 44800 of an 80% share; a bill of 60000 would allow 48000 by the ratio alone.
  EXPECT_THAT(ErrorOf(RedemptionSql(
                  {.id = 1, .state = kActive, .billed_fen = 60'000, .subsidy_fen = 44'801})),
              RefusedBy("redemptions_subsidy_within_hold"));
  EXPECT_THAT(ErrorOf(RedemptionSql(
                  {.id = 1, .state = kActive, .billed_fen = 60'000, .subsidy_fen = 44'800})),
              Accepted());
}

TEST_F(RedemptionSchemaTest, RedemptionSubsidyWithinRatioAtTheBoundary) {
  // Invariant 5: subsidy * 10000 <= billed * ratio. 5600 * 8000 / 10000 = 4480 exactly.
  EXPECT_THAT(ErrorOf(RedemptionSql(
                  {.id = 1, .state = kActive, .billed_fen = 5'600, .subsidy_fen = 4'481})),
              RefusedBy("redemptions_subsidy_within_ratio"));
  EXPECT_THAT(ErrorOf(RedemptionSql(
                  {.id = 1, .state = kActive, .billed_fen = 5'600, .subsidy_fen = 4'480})),
              Accepted());
  // Totals that grow past the ratio are refused too (3 -> 3 is allowed by the guard).
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET subsidy_fen = 4481 WHERE id = 1"),
              RefusedBy("redemptions_subsidy_within_ratio"));
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET billed_fen = 5602, subsidy_fen = 4481 WHERE id = 1"),
              Accepted());
  // Near INT64_MAX, where subsidy * 10000 and billed * ratio overflow bigint: billed
  // 9223372036854775800 at 70% allows exactly 6456360425798343060 (hold 6456360425798343064).
  const RedemptionRow big{.id = 2,
                          .gpus = 1,
                          .hours = 1,
                          .price_fen_per_gpu_hour = kMaxFen,
                          .ratio_bps = 7'000,
                          .estimated_bill_fen = kMaxFen,
                          .held_fen = 6'456'360'425'798'343'064,
                          .state = kActive,
                          .billed_fen = 9'223'372'036'854'775'800};
  RedemptionRow over = big;
  over.subsidy_fen = 6'456'360'425'798'343'061;
  EXPECT_THAT(ErrorOf(RedemptionSql(over)), RefusedBy("redemptions_subsidy_within_ratio"));
  RedemptionRow equal = big;
  equal.subsidy_fen = 6'456'360'425'798'343'060;
  EXPECT_THAT(ErrorOf(RedemptionSql(equal)), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET subsidy_fen = 6456360425798343061 WHERE id = 2"),
              RefusedBy("redemptions_subsidy_within_ratio"));
  EXPECT_EQ(
      Scalar<std::string>("SELECT string_agg(billed_fen || '/' || subsidy_fen, ',' ORDER BY id) "
                          "FROM redemptions"),
      "5602/4481,9223372036854775800/6456360425798343060");
}

TEST_F(RedemptionSchemaTest, VoucherSignatureIs64Bytes) {
  for (int bytes : {0, 63, 65}) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.signature_bytes = bytes})),
                RefusedBy("redemptions_signature_length"))
        << bytes;
  }
  EXPECT_THAT(ErrorOf(RedemptionSql({.signature_bytes = 64})), Accepted());
}

TEST_F(RedemptionSchemaTest, ReplacementIsGenerationOneAndOnlyOne) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1, .state = kRejected}));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .replaces = 1, .generation = 0})),
              RefusedBy("redemptions_generation"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .replaces = 1, .generation = 2})),
              RefusedBy("redemptions_generation"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .generation = 1})),
              RefusedBy("redemptions_generation"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2, .replaces = 1, .generation = 1})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 3, .state = kRejected, .generation = 0})), Accepted());
  // A rejected redemption is placed again at most once.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 4, .replaces = 1})),
              RefusedBy("redemptions_replaced_once"));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 4, .replaces = 3})), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(id || ':' || coalesce(replaces::text, '-') || "
                                "':' || generation, ',' ORDER BY id) FROM redemptions"),
            "1:-:0,2:1:1,3:-:0,4:3:1");
}

TEST_F(RedemptionSchemaTest, OnlyARejectedRedemptionNamesItsReplacementOnce) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1, .state = kRejected}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 2, .replaces = 1}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 3}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 4}));
  // Inserted naming a replacement: only when REJECTED.
  for (int state : {kPlaced, kConfirmed, kActive, kSettled, kCancelled, 6}) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = 10, .state = state, .replaced_by = 2})),
                RefusedBy("redemptions_replaced_only_when_rejected"))
        << state;
  }
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 10, .state = kRejected, .replaced_by = 2})), Accepted());
  // Updated: a transition the guard allows, with a replacement, still needs REJECTED.
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 5, replaced_by = 2 WHERE id = 3"),
              RefusedBy("redemptions_replaced_only_when_rejected"));
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 7, replaced_by = 2 WHERE id = 3"),
              Accepted());
  // REJECTED -> REJECTED only to set the replacement, once.
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state_reason = 'x' WHERE id = 1"),
              RefusedByTrigger("VC041", StateInvalid(1, 7, 7)));
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET replaced_by = 2 WHERE id = 1"), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET replaced_by = 4 WHERE id = 1"),
              RefusedByTrigger("VC041", StateInvalid(1, 7, 7)));
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET replaced_by = NULL WHERE id = 1"),
              RefusedByTrigger("VC041", StateInvalid(1, 7, 7)));
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET replaced_by = 2 WHERE id = 1"),
              RefusedByTrigger("VC041", StateInvalid(1, 7, 7)));
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(id || ':' || state || ':' || "
                                "coalesce(replaced_by::text, '-'), ',' ORDER BY id) "
                                "FROM redemptions"),
            "1:7:2,2:1:-,3:7:2,4:1:-,10:7:2");
}

// ---------------------------------------------------------------------------------------------
// redemptions: redemptions_insert_check

TEST_F(RedemptionSchemaTest, RedemptionHoldMustBeAHoldOfExactlyItsShareInItsProgram) {
  ASSERT_NO_FATAL_FAILURE(AddProgram(kOtherProgram, 2));
  const int64_t wallet_b = EnterpriseWallet(kOtherProgram, kUscc);
  // The default row holds 44800 fen of prog-a. Unless noted, each of these is an open hold from
  // the enterprise's prog-a wallet that differs in one thing only.
  const std::vector<int64_t> not_its_hold = {
      // A PAYOUT, with and without a ledger_holds row.
      NewHoldTransfer(44'800, kProgram, std::nullopt, kPayout),
      NewTransfer(kPayout, 44'800, std::nullopt),
      // The POST of an open hold (which has no ledger_holds row of its own).
      NewTransfer(kPost, 44'800, NewHoldTransfer(44'800)),
      NewHoldTransfer(44'801),
      NewHoldTransfer(44'799),
      // A hold of prog-b (from the enterprise's prog-b wallet: a transfer's accounts are of its
      // program, which ledger_transfers_insert_check enforces).
      NewHoldTransfer(44'800, kOtherProgram, wallet_b),
  };
  for (int64_t transfer : not_its_hold) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .hold_transfer_id = transfer})),
                RefusedByTrigger("VC043", HoldMismatch(transfer, 44'800, kUscc, kProgram)))
        << transfer;
  }
  // A redemption of prog-b with a hold of prog-a (from the prog-a wallet; a prog-a transfer
  // from the prog-b wallet cannot be written at all).
  for (int64_t of_program_a : {NewHoldTransfer(44'800)}) {
    EXPECT_THAT(ErrorOf(RedemptionSql(
                    {.id = 2, .program_id = kOtherProgram, .hold_transfer_id = of_program_a})),
                RefusedByTrigger("VC043", HoldMismatch(of_program_a, 44'800, kUscc, kOtherProgram)))
        << of_program_a;
  }
  EXPECT_EQ(Count("redemptions"), 0);
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .hold_transfer_id = NewHoldTransfer(44'800)})),
              Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql(
                  {.id = 2,
                   .program_id = kOtherProgram,
                   .hold_transfer_id = NewHoldTransfer(44'800, kOtherProgram, wallet_b)})),
              Accepted());
  // Near INT64_MAX the amounts compare exactly.
  const RedemptionRow big{.id = 3,
                          .gpus = 1,
                          .hours = 1,
                          .price_fen_per_gpu_hour = kMaxFen,
                          .ratio_bps = 7'000,
                          .estimated_bill_fen = kMaxFen,
                          .held_fen = 6'456'360'425'798'343'064};
  RedemptionRow one_less = big;
  one_less.hold_transfer_id = NewHoldTransfer(6'456'360'425'798'343'063);
  EXPECT_THAT(ErrorOf(RedemptionSql(one_less)),
              RefusedByTrigger("VC043", HoldMismatch(*one_less.hold_transfer_id,
                                                     6'456'360'425'798'343'064, kUscc, kProgram)));
  EXPECT_THAT(ErrorOf(RedemptionSql(big)), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(r.id || ':' || r.program_id || ':' || "
                                "t.amount_fen, ',' ORDER BY r.id) FROM redemptions r JOIN "
                                "ledger_transfers t ON t.id = r.hold_transfer_id AND t.kind = 3"),
            "1:prog-a:44800,2:prog-b:44800,3:prog-a:6456360425798343064");
}

TEST_F(RedemptionSchemaTest, RedemptionCapacityHoldMustBeAHeldHoldOfItsGpusInItsPool) {
  ASSERT_NO_FATAL_FAILURE(AddPool(kDatacenter, kOtherPool));
  ASSERT_NO_FATAL_FAILURE(AddPool(kOtherDatacenter, kPool));
  // The default row places 2 GPUs in dc1/p1.
  const std::vector<int64_t> not_its_hold = {
      NewCapacityHold(3),
      NewCapacityHold(1),
      NewCapacityHold(2, kDatacenter, kOtherPool),
      NewCapacityHold(2, kOtherDatacenter, kPool),
      NewCapacityHold(2, kDatacenter, kPool, kReleased),
      NewCapacityHold(2, kDatacenter, kPool, kConsumed),
  };
  for (int64_t capacity_hold : not_its_hold) {
    EXPECT_THAT(
        ErrorOf(RedemptionSql({.id = 1, .capacity_hold_id = capacity_hold})),
        RefusedByTrigger("VC043", CapacityHoldMismatch(capacity_hold, 2, kDatacenter, kPool)))
        << capacity_hold;
  }
  // A hold that was HELD, once resolved.
  const int64_t resolved = NewCapacityHold(2);
  Query(absl::StrCat("UPDATE capacity_holds SET state = 2, resolved_at = now() WHERE id = ",
                     resolved));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .capacity_hold_id = resolved})),
              RefusedByTrigger("VC043", CapacityHoldMismatch(resolved, 2, kDatacenter, kPool)));
  // The hold of dc2/p1 for a redemption in dc2/p1 (same pool id, other datacenter).
  const int64_t in_dc1 = NewCapacityHold(2);
  EXPECT_THAT(ErrorOf(RedemptionSql(
                  {.id = 2, .datacenter_id = kOtherDatacenter, .capacity_hold_id = in_dc1})),
              RefusedByTrigger("VC043", CapacityHoldMismatch(in_dc1, 2, kOtherDatacenter, kPool)));
  EXPECT_EQ(Count("redemptions"), 0);
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .capacity_hold_id = NewCapacityHold(2)})),
              Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 2,
                                     .datacenter_id = kOtherDatacenter,
                                     .capacity_hold_id = NewCapacityHold(2, kOtherDatacenter)})),
              Accepted());
  EXPECT_THAT(
      ErrorOf(RedemptionSql({.id = 3,
                             .pool_id = kOtherPool,
                             .gpus = 5,
                             .capacity_hold_id = NewCapacityHold(5, kDatacenter, kOtherPool)})),
      Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(r.id || ':' || h.datacenter_id || '/' || "
                                "h.pool_id || ':' || h.gpus, ',' ORDER BY r.id) FROM redemptions r "
                                "JOIN capacity_holds h ON h.id = r.capacity_hold_id"),
            "1:dc1/p1:2,2:dc2/p1:2,3:dc1/p2:5");
}

TEST_F(RedemptionSchemaTest, ReplacementReplacesARejectedFirstPlacementOfItsEnterpriseAndProgram) {
  ASSERT_NO_FATAL_FAILURE(AddEnterprise(kOtherUscc));
  ASSERT_NO_FATAL_FAILURE(AddProgram(kOtherProgram, 2));
  // 1..6: the fixture enterprise's first placements of prog-a in every state but REJECTED.
  for (int state = 1; state <= 6; ++state) {
    ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = state, .state = state}));
  }
  // Rejected first placements: 7 of another enterprise, 8 of another program, 11 and 12 of the
  // fixture's; 10 is the rejected replacement of 9.
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 7, .uscc = kOtherUscc, .state = kRejected}));
  ASSERT_NO_FATAL_FAILURE(
      AddRedemption({.id = 8, .program_id = kOtherProgram, .state = kRejected}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 9, .state = kRejected}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 10, .replaces = 9}));
  ASSERT_THAT(ErrorOf("UPDATE redemptions SET state = 7 WHERE id = 10"), Accepted());
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 11, .state = kRejected}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 12, .state = kRejected}));
  // The fixture enterprise's replacement in prog-a of each of them.
  for (int64_t replaces : {1, 2, 3, 4, 5, 6, 7, 8, 10}) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = 20, .replaces = replaces})),
                RefusedByTrigger("VC044", ReplacesInvalid(replaces)))
        << replaces;
  }
  // Another enterprise's, or another program's, replacement of 12.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 20, .uscc = kOtherUscc, .replaces = 12})),
              RefusedByTrigger("VC044", ReplacesInvalid(12)));
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 20, .program_id = kOtherProgram, .replaces = 12})),
              RefusedByTrigger("VC044", ReplacesInvalid(12)));
  EXPECT_EQ(Count("redemptions"), 12);
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 20, .replaces = 11})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 21, .replaces = 12})), Accepted());
  // Another enterprise and program replace their own.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 22, .uscc = kOtherUscc, .replaces = 7})), Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 23, .program_id = kOtherProgram, .replaces = 8})),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(id || '>' || replaces, ',' ORDER BY id) FROM "
                                "redemptions WHERE replaces IS NOT NULL"),
            "10>9,20>11,21>12,22>7,23>8");
}

// A redemption holds what it says only if its HOLD still holds it: an open ledger hold that
// debits its own enterprise's wallet in its program (program_enterprises.wallet_account_id).
TEST_F(RedemptionSchemaTest, RedemptionHoldMustBeAnOpenHoldOfItsEnterprisesWallet) {
  ASSERT_NO_FATAL_FAILURE(AddEnterprise(kOtherUscc));
  ASSERT_NO_FATAL_FAILURE(AddProgram(kOtherProgram, 2));
  // HOLDs of 44800 fen in prog-a from the fixture enterprise's prog-a wallet, no longer open:
  // voided (or expired), posted, partly posted and the rest released, and one without a
  // ledger_holds row at all.
  const std::vector<std::pair<std::string, std::string>> resolutions = {
      {"voided", "released_fen = amount_fen"},
      {"posted", "posted_fen = amount_fen"},
      {"partly posted, rest released", "posted_fen = 100, released_fen = amount_fen - 100"},
  };
  std::vector<std::pair<std::string, int64_t>> not_its_hold;
  for (const auto& [what, resolution] : resolutions) {
    const int64_t hold = NewHoldTransfer(44'800);
    ASSERT_THAT(ErrorOf(absl::StrCat("UPDATE ledger_holds SET ", resolution,
                                     ", resolved = true WHERE transfer_id = ", hold)),
                Accepted())
        << what;
    not_its_hold.emplace_back(what, hold);
  }
  not_its_hold.emplace_back("no ledger hold", NewTransfer(kHold, 44'800, std::nullopt));
  // Open HOLDs of 44800 fen in prog-a from another account: the other enterprise's prog-a
  // wallet and the program's budget (no wallet). (One from the enterprise's own wallet in
  // prog-b cannot be written: a transfer's accounts are of its program.)
  const int64_t budget = Scalar<int64_t>(
      absl::StrCat("SELECT budget_account_id FROM programs WHERE id = ", Q(kProgram)));
  not_its_hold.emplace_back(
      "other enterprise's wallet",
      NewHoldTransfer(44'800, kProgram, EnterpriseWallet(kProgram, kOtherUscc)));
  not_its_hold.emplace_back("program budget", NewHoldTransfer(44'800, kProgram, budget));
  for (const auto& [what, hold] : not_its_hold) {
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .hold_transfer_id = hold})),
                RefusedByTrigger("VC043", HoldMismatch(hold, 44'800, kUscc, kProgram)))
        << what;
  }
  // The other enterprise's redemption with the fixture enterprise's hold.
  const int64_t fixture_hold = NewHoldTransfer(44'800);
  EXPECT_THAT(
      ErrorOf(RedemptionSql({.id = 2, .uscc = kOtherUscc, .hold_transfer_id = fixture_hold})),
      RefusedByTrigger("VC043", HoldMismatch(fixture_hold, 44'800, kOtherUscc, kProgram)));
  EXPECT_EQ(Count("redemptions"), 0);
  // Each enterprise's redemption with an open hold from its own wallet.
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = 1, .hold_transfer_id = fixture_hold})), Accepted());
  EXPECT_THAT(
      ErrorOf(RedemptionSql({.id = 2,
                             .uscc = kOtherUscc,
                             .hold_transfer_id = NewHoldTransfer(
                                 44'800, kProgram, EnterpriseWallet(kProgram, kOtherUscc))})),
      Accepted());
  EXPECT_EQ(Scalar<std::string>(
                "SELECT string_agg(r.id || ':' || pe.program_id || '/' || pe.uscc || ':' || "
                "h.resolved, ',' ORDER BY r.id) FROM redemptions r "
                "JOIN ledger_transfers t ON t.id = r.hold_transfer_id "
                "JOIN ledger_holds h ON h.transfer_id = t.id "
                "JOIN program_enterprises pe ON pe.wallet_account_id = t.debit_account_id"),
            absl::StrCat("1:prog-a/", kUscc, ":false,2:prog-a/", kOtherUscc, ":false"));
}

// A redemption holds all of held_fen only if nothing of its HOLD was posted or released yet:
// a hold partly posted or released, though still open and of the right amount, is refused
// (redemptions_insert_check compares held_fen with the transfer's amount and requires the
// ledger hold untouched).
TEST_F(RedemptionSchemaTest, RedemptionHoldMustStillHoldAllOfItsShare) {
  int64_t id = 1;
  for (const char* use : {"posted_fen = 1", "released_fen = 1", "posted_fen = 1, released_fen = 1",
                          "posted_fen = 44799", "released_fen = 44799"}) {
    const int64_t hold = NewHoldTransfer(44'800);
    ASSERT_THAT(
        ErrorOf(absl::StrCat("UPDATE ledger_holds SET ", use, " WHERE transfer_id = ", hold)),
        Accepted())
        << use;
    ASSERT_FALSE(
        Scalar<bool>(absl::StrCat("SELECT resolved FROM ledger_holds WHERE transfer_id = ", hold)))
        << use;
    EXPECT_THAT(ErrorOf(RedemptionSql({.id = id++, .hold_transfer_id = hold})),
                RefusedByTrigger("VC043", HoldMismatch(hold, 44'800, kUscc, kProgram)))
        << use;
  }
  EXPECT_EQ(Count("redemptions"), 0);
  // A hold whose row was updated without posting or releasing anything still holds it all.
  const int64_t untouched = NewHoldTransfer(44'800);
  ASSERT_THAT(ErrorOf(absl::StrCat("UPDATE ledger_holds SET posted_fen = 0, released_fen = 0 "
                                   "WHERE transfer_id = ",
                                   untouched)),
              Accepted());
  EXPECT_THAT(ErrorOf(RedemptionSql({.id = id, .hold_transfer_id = untouched})), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT r.id || ':' || h.amount_fen || ':' || h.posted_fen || ':' "
                                "|| h.released_fen FROM redemptions r JOIN ledger_holds h "
                                "ON h.transfer_id = r.hold_transfer_id"),
            absl::StrCat(id, ":44800:0:0"));
}

// ---------------------------------------------------------------------------------------------
// redemptions: redemptions_guard

TEST_F(RedemptionSchemaTest, RedemptionTermsNeverChange) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 2, .state = kRejected}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 3, .state = kActive}));
  const int64_t other_hold = NewHoldTransfer(44'800);
  const int64_t other_capacity_hold = NewCapacityHold(2);
  // Each alone, with an allowed transition (PLACED -> CONFIRMED); checks and foreign keys would
  // refuse some of these too, but the guard runs first.
  const std::vector<std::string> changes = {
      "id = 9",
      "program_id = 'prog-b'",
      "issuer_id = 'iss-b'",
      absl::StrCat("uscc = ", Q(kOtherUscc)),
      "datacenter_id = 'dc2'",
      "pool_id = 'p2'",
      "accelerator_model = 'H800'",
      "fp8_required = true",
      "domestic_required = true",
      "min_memory_gib = 80",
      "max_price_fen_per_gpu_hour = 2800",
      "preferred_region_prefix = '52'",
      "gpus = 3",
      "hours = 11",
      "price_fen_per_gpu_hour = 2801",
      "ratio_bps = 7999",
      "settlement_style = 2",
      "estimated_bill_fen = 56001",
      "held_fen = 44801",
      absl::StrCat("hold_transfer_id = ", other_hold),
      absl::StrCat("capacity_hold_id = ", other_capacity_hold),
      "expires_at = expires_at + interval '1 microsecond'",
      "replaces = 2, generation = 1",
      "generation = 1",
      "voucher_key_id = 'ed25519-other'",
      "voucher_signature = decode(repeat('cd', 64), 'hex')",
      "request_scope = 'other'",
      "request_id = 'other'",
      "request_hash = 'other'",
      "created_at = created_at - interval '1 microsecond'",
  };
  for (const std::string& change : changes) {
    EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 2, " + change + " WHERE id = 1"),
                RefusedByTrigger("VC040", TermsImmutable(1)))
        << change;
    // Staying ACTIVE does not open them either.
    EXPECT_THAT(ErrorOf("UPDATE redemptions SET " + change + " WHERE id = 3"),
                RefusedByTrigger("VC040", TermsImmutable(3)))
        << change;
  }
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 2, state_reason = 'confirmed', "
                      "updated_at = now() WHERE id = 1"),
              Accepted());
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state_reason = 'running', updated_at = now(), "
                      "gpu_seconds = 1 WHERE id = 3"),
              Accepted());
  EXPECT_EQ(Scalar<std::string>(
                "SELECT string_agg(id || ':' || state || ':' || gpus || ':' || held_fen || ':' || "
                "request_id, ',' ORDER BY id) FROM redemptions"),
            "1:2:2:44800:req-1,2:7:2:44800:req-2,3:3:2:44800:req-3");
}

TEST_F(RedemptionSchemaTest, RedemptionRequestNeverChanges) {
  const RedemptionRow request{.accelerator_model = "H800",
                              .fp8_required = true,
                              .domestic_required = true,
                              .min_memory_gib = 80,
                              .max_price_fen_per_gpu_hour = 3'000,
                              .preferred_region_prefix = "52"};
  RedemptionRow placed = request;
  placed.id = 1;
  ASSERT_NO_FATAL_FAILURE(AddRedemption(placed));
  RedemptionRow active = request;
  active.id = 2;
  active.state = kActive;
  ASSERT_NO_FATAL_FAILURE(AddRedemption(active));
  // Each field to another value and back to the column default, alone.
  for (const char* change :
       {"accelerator_model = 'H20'", "accelerator_model = ''", "fp8_required = false",
        "domestic_required = false", "min_memory_gib = 81", "min_memory_gib = 0",
        "max_price_fen_per_gpu_hour = 3001", "max_price_fen_per_gpu_hour = 0",
        "preferred_region_prefix = '5201'", "preferred_region_prefix = ''"}) {
    EXPECT_THAT(
        ErrorOf(absl::StrCat("UPDATE redemptions SET state = 2, ", change, " WHERE id = 1")),
        RefusedByTrigger("VC040", TermsImmutable(1)))
        << change;
    EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE redemptions SET ", change, " WHERE id = 2")),
                RefusedByTrigger("VC040", TermsImmutable(2)))
        << change;
  }
  // Written again as they are, with an allowed transition.
  const std::string same =
      "accelerator_model = 'H800', fp8_required = true, domestic_required = true, "
      "min_memory_gib = 80, max_price_fen_per_gpu_hour = 3000, preferred_region_prefix = '52'";
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 2, " + same + " WHERE id = 1"), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET gpu_seconds = 60, " + same + " WHERE id = 2"),
              Accepted());
  EXPECT_EQ(Scalar<std::string>(
                "SELECT string_agg(id || ':' || state || ':' || accelerator_model || ':' || "
                "fp8_required || ':' || domestic_required || ':' || min_memory_gib || ':' || "
                "max_price_fen_per_gpu_hour || ':' || preferred_region_prefix, ',' ORDER BY id) "
                "FROM redemptions"),
            "1:2:H800:true:true:80:3000:52,2:3:H800:true:true:80:3000:52");
}

TEST_F(RedemptionSchemaTest, RedemptionSettledTotalsOnlyGrow) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1,
                                         .state = kActive,
                                         .gpu_seconds = 7'200,
                                         .billed_fen = 5'600,
                                         .subsidy_fen = 4'480,
                                         .usage_records = 2}));
  for (const char* change :
       {"gpu_seconds = 7199", "billed_fen = 5599", "subsidy_fen = 4479", "usage_records = 1",
        "gpu_seconds = 0, billed_fen = 0, subsidy_fen = 0, usage_records = 0"}) {
    EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE redemptions SET ", change, " WHERE id = 1")),
                RefusedByTrigger("VC040", TotalsOnlyGrow(1)))
        << change;
    EXPECT_THAT(
        ErrorOf(absl::StrCat("UPDATE redemptions SET state = 4, ", change, " WHERE id = 1")),
        RefusedByTrigger("VC040", TotalsOnlyGrow(1)))
        << change;
  }
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET gpu_seconds = 10800, billed_fen = 8400, "
                      "subsidy_fen = 6720, usage_records = 3 WHERE id = 1"),
              Accepted());
  // Equal totals are not a decrease.
  EXPECT_THAT(ErrorOf("UPDATE redemptions SET state = 4, gpu_seconds = 10800, billed_fen = 8400, "
                      "subsidy_fen = 6720, usage_records = 3 WHERE id = 1"),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT state || ':' || gpu_seconds || ':' || billed_fen || ':' || "
                                "subsidy_fen || ':' || usage_records FROM redemptions"),
            "4:10800:8400:6720:3");
}

TEST_F(RedemptionSchemaTest, RedemptionStatesMoveOnlyAlongTheAllowedTransitions) {
  // PLACED -> CONFIRMED | CANCELLED | EXPIRED | REJECTED; CONFIRMED -> ACTIVE | SETTLED |
  // CANCELLED; ACTIVE -> ACTIVE | SETTLED. (REJECTED -> REJECTED naming the replacement is
  // OnlyARejectedRedemptionNamesItsReplacementOnce.)
  const std::set<std::pair<int, int>> allowed = {{1, 2}, {1, 5}, {1, 6}, {1, 7}, {2, 3},
                                                 {2, 4}, {2, 5}, {3, 3}, {3, 4}};
  for (int from = 1; from <= 7; ++from) {
    for (int to = 1; to <= 7; ++to) {
      const int64_t id = 10 * from + to;
      ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = id, .state = from}));
      const std::string sql =
          absl::StrCat("UPDATE redemptions SET state = ", to, " WHERE id = ", id);
      if (allowed.count({from, to}) > 0) {
        EXPECT_THAT(ErrorOf(sql), Accepted()) << from << " -> " << to;
      } else {
        EXPECT_THAT(ErrorOf(sql), RefusedByTrigger("VC041", StateInvalid(id, from, to)))
            << from << " -> " << to;
      }
    }
  }
  // Exactly the allowed transitions changed a state (3 -> 3 keeps it).
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM redemptions WHERE state <> id / 10"),
            static_cast<int64_t>(allowed.size()) - 1);
}

TEST_F(RedemptionSchemaTest, RedemptionsAreNeverDeletedOrTruncated) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 2, .state = kCancelled}));
  for (int id : {1, 2}) {
    EXPECT_THAT(ErrorOf(absl::StrCat("DELETE FROM redemptions WHERE id = ", id)),
                RefusedByTrigger("VC001", "APPEND_ONLY: redemptions are never deleted"));
  }
  // (Usage records name their redemption without a foreign key, so TRUNCATE reaches the
  // trigger with or without CASCADE.)
  EXPECT_THAT(ErrorOf("TRUNCATE redemptions"),
              RefusedByTrigger("VC001", "APPEND_ONLY: redemptions is append-only; TRUNCATE"));
  EXPECT_THAT(ErrorOf("TRUNCATE redemptions CASCADE"),
              RefusedByTrigger("VC001", "APPEND_ONLY: redemptions is append-only; TRUNCATE"));
  EXPECT_THAT(ErrorOf("TRUNCATE redemptions, usage_records, payout_lines"),
              RefusedByTrigger("VC001", "APPEND_ONLY: redemptions is append-only; TRUNCATE"));
  EXPECT_EQ(Count("redemptions"), 2);
}

// ---------------------------------------------------------------------------------------------
// usage_records

class UsageRecordsTest : public RedemptionSchemaTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(RedemptionSchemaTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1, .state = kActive}));
    ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 2, .state = kActive}));
  }
};

TEST_F(UsageRecordsTest, ValidUsageRecordIsStoredInSettlementOrder) {
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u1"}));
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u2", .gpu_seconds = 1'800}));
  EXPECT_EQ(Scalar<std::string>(
                "SELECT string_agg(usage_id || ':' || bill_fen || '/' || subsidy_fen || '/' || "
                "copay_fen || ':' || (post_transfer_id IS NOT NULL), ',' ORDER BY seq) "
                "FROM usage_records"),
            "u1:2800/2240/560:true,u2:1400/1120/280:true");
  EXPECT_TRUE(Scalar<bool>("SELECT max(seq) > min(seq) FROM usage_records"));
}

TEST_F(UsageRecordsTest, UsageRecordFieldsMustBeValid) {
  // For the bounds, redemptions at 1 fen/h with a 0.01% share (5 GPUs for 2000 hours hold 1
  // fen) and at a 100% share.
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 3,
                                         .gpus = 5,
                                         .hours = 2'000,
                                         .price_fen_per_gpu_hour = 1,
                                         .ratio_bps = 1,
                                         .state = kActive}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 4, .ratio_bps = 10'000, .state = kActive}));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = ""})), RefusedBy("usage_records_id_valid"));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = std::string(129, 'u')})),
              RefusedBy("usage_records_id_valid"));
  // gpu_seconds -1 at 1 fen/h bills div(-1, 3600) = 0, so only this check fails.
  EXPECT_THAT(ErrorOf(UsageSql({.gpu_seconds = -1, .price_fen_per_gpu_hour = 1})),
              RefusedBy("usage_records_gpu_seconds_nonnegative"));
  EXPECT_THAT(ErrorOf(UsageSql({.price_fen_per_gpu_hour = 0})),
              RefusedBy("usage_records_price_positive"));
  EXPECT_THAT(ErrorOf(UsageSql({.gpu_seconds = 1, .price_fen_per_gpu_hour = -1})),
              RefusedBy("usage_records_price_positive"));
  EXPECT_THAT(ErrorOf(UsageSql({.ratio_bps = 0})), RefusedBy("usage_records_ratio_range"));
  EXPECT_THAT(ErrorOf(UsageSql({.ratio_bps = 10'001, .subsidy_fen = 2'800})),
              RefusedBy("usage_records_ratio_range"));
  EXPECT_THAT(ErrorOf(UsageSql({.subsidy_fen = -1, .post_transfer_id = post_transfer_id_})),
              RefusedBy("usage_records_subsidy_nonnegative"));
  for (int capped_by : {-1, 3}) {
    EXPECT_THAT(ErrorOf(UsageSql({.capped_by = capped_by})),
                RefusedBy("usage_records_capped_by_known"))
        << capped_by;
  }
  EXPECT_THAT(ErrorOf(UsageSql({.start_at = "'2026-03-10T01:00:00Z'",
                                .end_at = "'2026-03-10T00:59:59.999999Z'"})),
              RefusedBy("usage_records_interval"));
  EXPECT_EQ(Count("usage_records"), 0);
  // The bounds themselves.
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = std::string(128, 'u'), .capped_by = 2})), Accepted());
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "a", .gpu_seconds = 0, .capped_by = 1})), Accepted());
  EXPECT_THAT(
      ErrorOf(UsageSql(
          {.redemption_id = 3, .usage_id = "b", .price_fen_per_gpu_hour = 1, .ratio_bps = 1})),
      Accepted());
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 4, .usage_id = "c", .ratio_bps = 10'000})),
              Accepted());
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "d",
                                .start_at = "'2026-03-10T01:00:00Z'",
                                .end_at = "'2026-03-10T01:00:00Z'"})),
              Accepted());
  EXPECT_EQ(Count("usage_records"), 5);
}

TEST_F(UsageRecordsTest, UsageRecordMustSettleItsRedemptionsHold) {
  // usage_records_insert_check, once per statement: the redemption exists (with the terms the
  // record carries), its POST is a POST of its subsidy (2240 fen) on the redemption's credit
  // hold, and its release a VOID of that hold or the closing POST itself.
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = kMissingId})),
              RefusedByTrigger("VC045", TermsMismatch("u1", kMissingId)));
  const std::vector<std::pair<std::string, int64_t>> not_its_post = {
      {"missing", kMissingId},
      {"a POST of another hold", post_transfer_id_},
      {"a POST of its hold of another amount", NewPostOf(1, 2'241)},
      {"a POST of another redemption's hold", NewPostOf(2, 2'240)},
      {"a VOID of its hold", NewVoidOf(1, 2'240)},
  };
  for (const auto& [what, post] : not_its_post) {
    EXPECT_THAT(ErrorOf(UsageSql({.post_transfer_id = post})),
                RefusedByTrigger("VC048", TransferMismatch("u1", 1)))
        << what;
  }
  const std::vector<std::pair<std::string, int64_t>> not_its_release = {
      {"missing", kMissingId},
      {"a VOID of another redemption's hold", NewVoidOf(2)},
      {"a POST that releases nothing", NewPostOf(1, 2'240)},
  };
  for (const auto& [what, release] : not_its_release) {
    EXPECT_THAT(ErrorOf(UsageSql({.final = true, .release_transfer_id = release})),
                RefusedByTrigger("VC048", TransferMismatch("u1", 1)))
        << what;
  }
  // A closing POST is the release only of the record it posts for.
  EXPECT_THAT(ErrorOf(UsageSql({.final = true, .release_transfer_id = NewPostOf(1, 2'240, 100)})),
              RefusedByTrigger("VC048", TransferMismatch("u1", 1)));
  EXPECT_EQ(Count("usage_records"), 0);
  EXPECT_THAT(
      ErrorOf(UsageSql({.usage_id = "void", .final = true, .release_transfer_id = NewVoidOf(1)})),
      Accepted());
  const int64_t closing = NewPostOf(2, 2'240, 100);
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 2,
                                .usage_id = "closing",
                                .final = true,
                                .post_transfer_id = closing,
                                .release_transfer_id = closing})),
              Accepted());
  EXPECT_EQ(Count("usage_records"), 2);
}

TEST_F(UsageRecordsTest, UsageBillIsExactlyTheFlooredMeteredPrice) {
  // Redemption 3 at 2801 fen/h; redemption 4 at the maximum price with a 0.01% share.
  ASSERT_NO_FATAL_FAILURE(
      AddRedemption({.id = 3, .price_fen_per_gpu_hour = 2'801, .state = kActive}));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 4,
                                         .gpus = 1,
                                         .hours = 1,
                                         .price_fen_per_gpu_hour = kMaxFen,
                                         .ratio_bps = 1,
                                         .state = kActive}));
  // 5000 s at 2801 fen/h = 3890.277...: 3890.
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 3,
                                .gpu_seconds = 5'000,
                                .price_fen_per_gpu_hour = 2'801,
                                .bill_fen = 3'891})),
              RefusedBy("usage_records_bill_exact"));
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 3,
                                .gpu_seconds = 5'000,
                                .price_fen_per_gpu_hour = 2'801,
                                .bill_fen = 3'889})),
              RefusedBy("usage_records_bill_exact"));
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 3,
                                .usage_id = "u1",
                                .gpu_seconds = 5'000,
                                .price_fen_per_gpu_hour = 2'801,
                                .bill_fen = 3'890})),
              Accepted());
  // Near INT64_MAX (gpu_seconds * price is far beyond bigint): 3599 s at the maximum price is
  // floor(9223372036854775807 * 3599 / 3600) = 9220809989066760591.
  const UsageRow big{.redemption_id = 4,
                     .usage_id = "u2",
                     .gpu_seconds = 3'599,
                     .price_fen_per_gpu_hour = kMaxFen,
                     .ratio_bps = 1,
                     .subsidy_fen = 0};
  for (int64_t bill : {9'220'809'989'066'760'592, 9'220'809'989'066'760'590}) {
    UsageRow u = big;
    u.bill_fen = bill;
    EXPECT_THAT(ErrorOf(UsageSql(u)), RefusedBy("usage_records_bill_exact")) << bill;
  }
  UsageRow exact = big;
  exact.bill_fen = 9'220'809'989'066'760'591;
  EXPECT_THAT(ErrorOf(UsageSql(exact)), Accepted());
  EXPECT_EQ(Count("usage_records"), 2);
}

TEST_F(UsageRecordsTest, UsageSubsidyWithinRatioAtTheBoundary) {
  // Invariant 5 per record: one hour at 2800 fen/h, 80%: at most 2240.
  EXPECT_THAT(ErrorOf(UsageSql({.subsidy_fen = 2'241})),
              RefusedBy("usage_records_subsidy_within_ratio"));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u1", .subsidy_fen = 2'240})), Accepted());
  // Below the share is fine (capped by the hold or the monthly limit).
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u2", .subsidy_fen = 1, .capped_by = 1})), Accepted());
  // Near INT64_MAX: 3600 s at 9223372036854775800 fen/h bills 9223372036854775800; at 70% the
  // subsidy may be exactly 6456360425798343060 (subsidy * 10000 is ~6.5e22, beyond bigint), on
  // redemption 3 of 1 GPU-hour at that price.
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 3,
                                         .gpus = 1,
                                         .hours = 1,
                                         .price_fen_per_gpu_hour = 9'223'372'036'854'775'800,
                                         .ratio_bps = 7'000,
                                         .held_fen = 6'456'360'425'798'343'060,
                                         .state = kActive}));
  const UsageRow big{.redemption_id = 3,
                     .usage_id = "u3",
                     .gpu_seconds = 3'600,
                     .price_fen_per_gpu_hour = 9'223'372'036'854'775'800,
                     .ratio_bps = 7'000,
                     .bill_fen = 9'223'372'036'854'775'800};
  UsageRow over = big;
  over.subsidy_fen = 6'456'360'425'798'343'061;
  EXPECT_THAT(ErrorOf(UsageSql(over)), RefusedBy("usage_records_subsidy_within_ratio"));
  UsageRow equal = big;
  equal.subsidy_fen = 6'456'360'425'798'343'060;
  EXPECT_THAT(ErrorOf(UsageSql(equal)), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT copay_fen::text FROM usage_records WHERE usage_id = 'u3'"),
            "2767011611056432740");
  EXPECT_EQ(Count("usage_records"), 3);
}

TEST_F(UsageRecordsTest, UsageCopayIsTheBillMinusTheSubsidy) {
  EXPECT_THAT(ErrorOf(UsageSql({.copay_fen = 561})), RefusedBy("usage_records_copay"));
  EXPECT_THAT(ErrorOf(UsageSql({.copay_fen = 559})), RefusedBy("usage_records_copay"));
  // A subsidy above the bill would need a negative copay (refused by the copay check, first by
  // name, before invariant 5).
  EXPECT_THAT(ErrorOf(UsageSql({.subsidy_fen = 2'801, .copay_fen = -1})),
              RefusedBy("usage_records_copay"));
  EXPECT_THAT(ErrorOf(UsageSql({.copay_fen = 560})), Accepted());
}

TEST_F(UsageRecordsTest, UsagePostTransferExactlyWhenThereIsASubsidy) {
  EXPECT_THAT(ErrorOf(UsageSql({.subsidy_fen = 2'240, .post_transfer_id = 0})),
              RefusedBy("usage_records_post_iff_subsidy"));
  EXPECT_THAT(ErrorOf(UsageSql({.subsidy_fen = 0, .post_transfer_id = post_transfer_id_})),
              RefusedBy("usage_records_post_iff_subsidy"));
  EXPECT_THAT(
      ErrorOf(UsageSql(
          {.usage_id = "u1", .subsidy_fen = 2'240, .post_transfer_id = NewPostOf(1, 2'240)})),
      Accepted());
  EXPECT_THAT(ErrorOf(UsageSql(
                  {.usage_id = "u2", .subsidy_fen = 0, .capped_by = 2, .post_transfer_id = 0})),
              Accepted());
  EXPECT_EQ(Count("usage_records"), 2);
}

TEST_F(UsageRecordsTest, UsageReleaseOnlyOnTheFinalRecord) {
  EXPECT_THAT(ErrorOf(UsageSql({.final = false, .release_transfer_id = post_transfer_id_})),
              RefusedBy("usage_records_release_only_final"));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u1", .final = false})), Accepted());
  EXPECT_THAT(
      ErrorOf(UsageSql({.usage_id = "u2", .final = true, .release_transfer_id = NewVoidOf(1)})),
      Accepted());
  // A final record need not release anything (the hold was used up).
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 2, .usage_id = "u1", .final = true})), Accepted());
}

TEST_F(UsageRecordsTest, UsageIdSettlesOncePerRedemption) {
  // Invariant 6: a usage record is applied once.
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u1"}));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u1"})), RefusedBy("usage_records_pkey"));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u1", .gpu_seconds = 60, .final = true})),
              RefusedBy("usage_records_pkey"));
  // The same operator id on another redemption is another record; case matters.
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 2, .usage_id = "u1"})), Accepted());
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "U1"})), Accepted());
  EXPECT_EQ(Count("usage_records"), 3);
}

TEST_F(UsageRecordsTest, OneFinalRecordPerRedemptionAndUniqueSettlementOrder) {
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u1", .final = false}));
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u2", .final = false}));
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u3", .final = true}));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u4", .final = true})),
              RefusedBy("usage_records_one_final"));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u4", .final = false})), Accepted());
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 2, .usage_id = "u4", .final = true})), Accepted());
  // seq is unique (payout statements list lines in it).
  const int64_t seq = Scalar<int64_t>("SELECT min(seq) FROM usage_records");
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u5", .seq = seq})), RefusedBy("usage_records_seq"));
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u5", .seq = 1'000'000})), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(redemption_id || '/' || usage_id, ',' "
                                "ORDER BY redemption_id, usage_id) FROM usage_records "
                                "WHERE final"),
            "1/u3,2/u4");
}

TEST_F(UsageRecordsTest, UsageSettlementStyleMustBeKnown) {
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 3, .settlement_style = 2, .state = kActive}));
  for (int style : {0, 3, -1}) {
    EXPECT_THAT(ErrorOf(UsageSql({.settlement_style = style})),
                RefusedBy("usage_records_settlement_style_known"))
        << style;
  }
  EXPECT_EQ(Count("usage_records"), 0);
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 1, .settlement_style = 1})), Accepted());
  EXPECT_THAT(ErrorOf(UsageSql({.redemption_id = 3, .settlement_style = 2})), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(redemption_id || ':' || settlement_style, ',' "
                                "ORDER BY redemption_id) FROM usage_records"),
            "1:1,3:2");
}

TEST_F(UsageRecordsTest, UsageRecordCarriesItsRedemptionsTerms) {
  // Redemption 9 differs from redemption 1 in every term a usage record copies.
  ASSERT_NO_FATAL_FAILURE(AddIssuer(kOtherIssuer));
  ASSERT_NO_FATAL_FAILURE(AddProgram(kOtherProgram, 2, std::nullopt, kOtherIssuer));
  ASSERT_NO_FATAL_FAILURE(AddEnterprise(kOtherUscc));
  ASSERT_NO_FATAL_FAILURE(AddPool(kOtherDatacenter, kPool));
  ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 9,
                                         .program_id = kOtherProgram,
                                         .issuer_id = kOtherIssuer,
                                         .uscc = kOtherUscc,
                                         .datacenter_id = kOtherDatacenter,
                                         .price_fen_per_gpu_hour = 2'801,
                                         .ratio_bps = 7'999,
                                         .settlement_style = 2,
                                         .state = kActive}));
  const UsageRow of_1{.redemption_id = 1, .usage_id = "ok"};
  const UsageRow of_9{.redemption_id = 9,
                      .usage_id = "ok",
                      .program_id = kOtherProgram,
                      .issuer_id = kOtherIssuer,
                      .uscc = kOtherUscc,
                      .datacenter_id = kOtherDatacenter,
                      .settlement_style = 2,
                      .price_fen_per_gpu_hour = 2'801,
                      .ratio_bps = 7'999};
  struct Term {
    const char* name;
    void (*copy)(UsageRow& to, const UsageRow& from);
  };
  const Term terms[] = {
      {"program_id", [](UsageRow& to, const UsageRow& from) { to.program_id = from.program_id; }},
      {"issuer_id", [](UsageRow& to, const UsageRow& from) { to.issuer_id = from.issuer_id; }},
      {"uscc", [](UsageRow& to, const UsageRow& from) { to.uscc = from.uscc; }},
      {"datacenter_id",
       [](UsageRow& to, const UsageRow& from) { to.datacenter_id = from.datacenter_id; }},
      {"settlement_style",
       [](UsageRow& to, const UsageRow& from) { to.settlement_style = from.settlement_style; }},
      {"price_fen_per_gpu_hour",
       [](UsageRow& to, const UsageRow& from) {
         to.price_fen_per_gpu_hour = from.price_fen_per_gpu_hour;
       }},
      {"ratio_bps", [](UsageRow& to, const UsageRow& from) { to.ratio_bps = from.ratio_bps; }},
  };
  // One term of the other redemption, in each direction (bill, subsidy and copay follow the
  // price and ratio, so the row's own checks pass).
  for (const Term& term : terms) {
    UsageRow on_1 = of_1;
    term.copy(on_1, of_9);
    on_1.usage_id = term.name;
    EXPECT_THAT(ErrorOf(UsageSql(on_1)), RefusedByTrigger("VC045", TermsMismatch(term.name, 1)))
        << term.name;
    UsageRow on_9 = of_9;
    term.copy(on_9, of_1);
    on_9.usage_id = term.name;
    EXPECT_THAT(ErrorOf(UsageSql(on_9)), RefusedByTrigger("VC045", TermsMismatch(term.name, 9)))
        << term.name;
  }
  EXPECT_EQ(Count("usage_records"), 0);
  EXPECT_THAT(ErrorOf(UsageSql(of_1)), Accepted());
  EXPECT_THAT(ErrorOf(UsageSql(of_9)), Accepted());
  EXPECT_EQ(Scalar<std::string>(
                "SELECT string_agg(concat_ws(':', redemption_id, program_id, issuer_id, uscc, "
                "datacenter_id, settlement_style, price_fen_per_gpu_hour, ratio_bps, bill_fen, "
                "subsidy_fen), ',' ORDER BY redemption_id) FROM usage_records"),
            absl::StrCat("1:prog-a:iss-a:", kUscc, ":dc1:1:2800:8000:2800:2240,9:prog-b:iss-b:",
                         kOtherUscc, ":dc2:2:2801:7999:2801:2240"));
}

TEST_F(UsageRecordsTest, UsageRecordsAreAppendOnly) {
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u1"}));
  EXPECT_THAT(ErrorOf("UPDATE usage_records SET subsidy_fen = 0, copay_fen = 2800, "
                      "post_transfer_id = NULL"),
              RefusedByTrigger("VC001", "APPEND_ONLY: usage_records is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("UPDATE usage_records SET capped_by = capped_by"),
              RefusedByTrigger("VC001", "APPEND_ONLY: usage_records is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("DELETE FROM usage_records WHERE usage_id = 'u1'"),
              RefusedByTrigger("VC001", "APPEND_ONLY: usage_records is append-only; DELETE"));
  EXPECT_THAT(ErrorOf("TRUNCATE usage_records"),
              AllOf(HasSubstr("[0A000]"),
                    HasSubstr("cannot truncate a table referenced in a foreign key constraint")));
  EXPECT_THAT(ErrorOf("TRUNCATE usage_records CASCADE"),
              RefusedByTrigger("VC001", "APPEND_ONLY: usage_records is append-only; TRUNCATE"));
  EXPECT_THAT(ErrorOf("TRUNCATE usage_records, payout_lines"),
              RefusedByTrigger("VC001", "APPEND_ONLY: usage_records is append-only; TRUNCATE"));
  EXPECT_EQ(Scalar<std::string>("SELECT usage_id || ':' || subsidy_fen FROM usage_records"),
            "u1:2240");
  // Inserting stays allowed.
  EXPECT_THAT(ErrorOf(UsageSql({.usage_id = "u2"})), Accepted());
}

// ---------------------------------------------------------------------------------------------
// program_monthly_spend

TEST_F(RedemptionSchemaTest, MonthlySpendRowsMustBeValid) {
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-02", 1'000, 0)),
              RefusedBy("program_monthly_spend_first_day"));
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-02-28", 1'000, 0)),
              RefusedBy("program_monthly_spend_first_day"));
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 0, 0)),
              RefusedBy("program_monthly_spend_limit_positive"));
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 1'000, -1)),
              RefusedBy("program_monthly_spend_nonnegative"));
  EXPECT_THAT(ErrorOf(SpendSql("prog-none", "2026-03-01", 1'000, 0)),
              RefusedBy("program_monthly_spend_program_id_fkey"));
  EXPECT_EQ(Count("program_monthly_spend"), 0);
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 1, 0)), Accepted());
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 1'000, 0)),
              RefusedBy("program_monthly_spend_pkey"));
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-04-01", 1'000, 0)), Accepted());
  EXPECT_EQ(Scalar<int64_t>("SELECT spent_fen FROM program_monthly_spend WHERE month = "
                            "'2026-04-01'"),
            0);
}

TEST_F(RedemptionSchemaTest, MonthlySpendStaysWithinItsLimit) {
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 1'000, 1'001)),
              RefusedBy("program_monthly_spend_within_limit"));
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 1'000, 1'000)), Accepted());
  ASSERT_THAT(ErrorOf(SpendSql(kProgram, "2026-04-01", 1'000, 400)), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE program_monthly_spend SET spent_fen = spent_fen + 601 "
                      "WHERE month = '2026-04-01'"),
              RefusedBy("program_monthly_spend_within_limit"));
  EXPECT_THAT(ErrorOf("UPDATE program_monthly_spend SET spent_fen = spent_fen + 600 "
                      "WHERE month = '2026-04-01'"),
              Accepted());
  // A limit lowered under the spend: the guard refuses any change of the limit first
  // (MonthlySpendOnlyGrowsAndIsNeverDeleted); without it, this check does.
  EXPECT_THAT(ErrorOf("UPDATE program_monthly_spend SET limit_fen = 999 WHERE month = "
                      "'2026-04-01'"),
              RefusedByTrigger("VC046", SpendImmutable(kProgram, "2026-04-01")));
  EXPECT_THAT(ErrorOf("ALTER TABLE program_monthly_spend DISABLE TRIGGER "
                      "program_monthly_spend_forward_only; UPDATE program_monthly_spend SET "
                      "limit_fen = 999 WHERE month = '2026-04-01'"),
              RefusedBy("program_monthly_spend_within_limit"));
  // (That transaction was rolled back, the DISABLE with it.)
  EXPECT_EQ(Scalar<std::string>("SELECT tgenabled FROM pg_trigger WHERE "
                                "tgname = 'program_monthly_spend_forward_only'"),
            "O");
  // At the top of bigint.
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-05-01", kMaxFen - 1, kMaxFen)),
              RefusedBy("program_monthly_spend_within_limit"));
  EXPECT_THAT(ErrorOf(SpendSql(kProgram, "2026-05-01", kMaxFen, kMaxFen)), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(month || ':' || spent_fen || '/' || limit_fen, "
                                "',' ORDER BY month) FROM program_monthly_spend"),
            "2026-03-01:1000/1000,2026-04-01:1000/1000,"
            "2026-05-01:9223372036854775807/9223372036854775807");
}

TEST_F(RedemptionSchemaTest, MonthlySpendOnlyGrowsAndIsNeverDeleted) {
  ASSERT_NO_FATAL_FAILURE(AddProgram(kOtherProgram, 2));
  ASSERT_THAT(ErrorOf(SpendSql(kProgram, "2026-03-01", 1'000, 400)), Accepted());
  ASSERT_THAT(ErrorOf(SpendSql(kProgram, "2026-04-01", 1'000, 0)), Accepted());
  // Each alone; the checks and keys would refuse some of these too, but the guard runs first.
  for (const char* change :
       {"program_id = 'prog-b'", "program_id = 'prog-none'", "month = '2026-05-01'",
        "month = '2026-04-01'", "month = '2026-03-02'", "limit_fen = 1001", "limit_fen = 999",
        "limit_fen = 400", "spent_fen = 399", "spent_fen = 0", "spent_fen = -1"}) {
    EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE program_monthly_spend SET ", change,
                                     " WHERE month = '2026-03-01'")),
                RefusedByTrigger("VC046", SpendImmutable(kProgram, "2026-03-01")))
        << change;
  }
  // The same values, and a growing spend, are accepted.
  EXPECT_THAT(ErrorOf("UPDATE program_monthly_spend SET program_id = 'prog-a', month = "
                      "'2026-03-01', limit_fen = 1000, spent_fen = 400 WHERE month = '2026-03-01'"),
              Accepted());
  EXPECT_THAT(
      ErrorOf("UPDATE program_monthly_spend SET spent_fen = 401 WHERE month = '2026-03-01'"),
      Accepted());
  EXPECT_THAT(
      ErrorOf("UPDATE program_monthly_spend SET spent_fen = 1000 WHERE month = '2026-03-01'"),
      Accepted());
  EXPECT_THAT(ErrorOf("DELETE FROM program_monthly_spend WHERE month = '2026-04-01'"),
              RefusedByTrigger("VC001", "APPEND_ONLY: monthly spend is never deleted"));
  EXPECT_THAT(ErrorOf("DELETE FROM program_monthly_spend"),
              RefusedByTrigger("VC001", "APPEND_ONLY: monthly spend is never deleted"));
  EXPECT_THAT(
      ErrorOf("TRUNCATE program_monthly_spend"),
      RefusedByTrigger("VC001", "APPEND_ONLY: program_monthly_spend is append-only; TRUNCATE"));
  // Deleting nothing fires no row trigger; inserting stays allowed.
  EXPECT_THAT(ErrorOf("DELETE FROM program_monthly_spend WHERE month = '2027-01-01'"), Accepted());
  EXPECT_THAT(ErrorOf(SpendSql(kOtherProgram, "2026-03-01", 500, 0)), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(program_id || ':' || month || ':' || spent_fen "
                                "|| '/' || limit_fen, ',' ORDER BY program_id, month) FROM "
                                "program_monthly_spend"),
            "prog-a:2026-03-01:1000/1000,prog-a:2026-04-01:0/1000,prog-b:2026-03-01:0/500");
}

// ---------------------------------------------------------------------------------------------
// payouts and payout_lines

class PayoutsTest : public RedemptionSchemaTest {
 protected:
  // Redemption 1 (DIRECT, dc1) with claims u1 (2240), u2 (1120) and u0 (no subsidy);
  // redemption 2 (REIMBURSE) with claim e1 (2240) of the fixture's enterprise; redemption 3 of
  // prog-b (issuer iss-b; DIRECT, dc1) with claim u3 (2240); redemption 4 (DIRECT, dc2) with
  // claim u4 (2240). All settled on 2026-03-10.
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(RedemptionSchemaTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(AddIssuer(kOtherIssuer));
    ASSERT_NO_FATAL_FAILURE(AddProgram(kOtherProgram, 2, std::nullopt, kOtherIssuer));
    ASSERT_NO_FATAL_FAILURE(AddPool(kOtherDatacenter, kPool));
    ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 1, .state = kActive}));
    ASSERT_NO_FATAL_FAILURE(AddRedemption({.id = 2, .settlement_style = 2, .state = kActive}));
    ASSERT_NO_FATAL_FAILURE(AddRedemption(
        {.id = 3, .program_id = kOtherProgram, .issuer_id = kOtherIssuer, .state = kActive}));
    ASSERT_NO_FATAL_FAILURE(
        AddRedemption({.id = 4, .datacenter_id = kOtherDatacenter, .state = kActive}));
    ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u1"}));
    ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u2", .gpu_seconds = 1'800}));
    ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u0", .subsidy_fen = 0, .capped_by = 2}));
    ASSERT_NO_FATAL_FAILURE(
        AddUsage({.redemption_id = 2, .usage_id = "e1", .settlement_style = 2}));
    ASSERT_NO_FATAL_FAILURE(AddUsage({.redemption_id = 3,
                                      .usage_id = "u3",
                                      .program_id = kOtherProgram,
                                      .issuer_id = kOtherIssuer}));
    ASSERT_NO_FATAL_FAILURE(
        AddUsage({.redemption_id = 4, .usage_id = "u4", .datacenter_id = kOtherDatacenter}));
  }

  std::string Mismatch(int64_t id, int64_t amount, int lines, int64_t total, int n) {
    return absl::StrCat("PAYOUT_MISMATCH: payout ", id, " pays ", amount, " fen over ", lines,
                        " lines, its lines add up to ", total, " over ", n);
  }
};

TEST_F(PayoutsTest, PayoutFieldsMustBeValid) {
  const std::vector<std::pair<int64_t, std::string>> u1 = {{1, "u1"}};
  for (int kind : {0, 3}) {
    EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.payee_kind = kind}, u1)),
                RefusedBy("payouts_payee_kind_known"))
        << kind;
  }
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.payee = ""}, u1)), RefusedBy("payouts_payee_nonempty"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 0}, u1)),
              RefusedBy("payouts_amount_positive"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.lines = 0}, u1)), RefusedBy("payouts_lines_positive"));
  // The shortest period is 1 microsecond (here the one in which u1 settled).
  const std::string settled = "'2026-03-10T02:00:00Z'";
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.period_start = settled, .period_end = settled}, u1)),
              RefusedBy("payouts_period_ordered"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql(
                  {.period_start = settled, .period_end = "'2026-03-10T01:59:59.999999Z'"}, u1)),
              RefusedBy("payouts_period_ordered"));
  EXPECT_EQ(Count("payouts"), 0);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql(
                  {.period_start = settled, .period_end = "'2026-03-10T02:00:00.000001Z'"}, u1)),
              Accepted());
  EXPECT_EQ(Count("payouts"), 1);
  EXPECT_EQ(Count("payout_lines"), 1);
}

TEST_F(PayoutsTest, PayoutMustReferenceItsProgramIssuerAndTransferOnce) {
  const std::vector<std::pair<int64_t, std::string>> u1 = {{1, "u1"}};
  const std::vector<std::pair<int64_t, std::string>> u2 = {{1, "u2"}};
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.program_id = "prog-none"}, u1)),
              RefusedBy("payouts_program_id_fkey"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.issuer_id = "iss-none"}, u1)),
              RefusedBy("payouts_issuer_id_fkey"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.transfer_id = kMissingId}, u1)),
              RefusedBy("payouts_transfer_id_fkey"));
  const int64_t transfer = NewPayoutTransfer(2'240);
  ASSERT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1, .transfer_id = transfer}, u1)), Accepted());
  // One payout per transfer, per request and per id.
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.id = 2, .amount_fen = 1'120, .transfer_id = transfer}, u2)),
      RefusedBy("payouts_transfer_once"));
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.id = 2, .amount_fen = 1'120, .request_id = "payout-1"}, u2)),
      RefusedBy("payouts_request_once"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1, .amount_fen = 1'120, .request_id = "x"}, u2)),
              RefusedBy("payouts_pkey"));
  EXPECT_EQ(Count("payouts"), 1);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2, .amount_fen = 1'120}, u2)), Accepted());
  EXPECT_EQ(Count("payouts"), 2);
}

TEST_F(PayoutsTest, PayoutAmountMustBeTheSumOfItsLinesAtCommit) {
  const std::vector<std::pair<int64_t, std::string>> u1u2 = {{1, "u1"}, {1, "u2"}};
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 3'361, .lines = 2}, u1u2)),
              RefusedByTrigger("VC042", Mismatch(1, 3'361, 2, 3'360, 2)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 3'359, .lines = 2}, u1u2)),
              RefusedByTrigger("VC042", Mismatch(1, 3'359, 2, 3'360, 2)));
  // The count too.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 3'360, .lines = 3}, u1u2)),
              RefusedByTrigger("VC042", Mismatch(1, 3'360, 3, 3'360, 2)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 3'360, .lines = 1}, u1u2)),
              RefusedByTrigger("VC042", Mismatch(1, 3'360, 1, 3'360, 2)));
  // A payout without lines.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 2'240, .lines = 1}, {})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 0, 0)));
  EXPECT_EQ(Count("payouts"), 0);
  EXPECT_EQ(Count("payout_lines"), 0);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 3'360, .lines = 2}, u1u2)), Accepted());
  EXPECT_EQ(Count("payouts"), 1);
  EXPECT_EQ(Count("payout_lines"), 2);
}

TEST_F(PayoutsTest, PayoutLinesMustBeClaimsOfItsProgramAndPayee) {
  // The sums and counts match; one line is not this payout's to pay.
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.amount_fen = 4'480, .lines = 2}, {{1, "u1"}, {3, "u3"}})),
      RefusedByTrigger("VC042", Mismatch(1, 4'480, 2, 4'480, 2)));
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.amount_fen = 4'480, .lines = 2}, {{1, "u1"}, {4, "u4"}})),
      RefusedByTrigger("VC042", Mismatch(1, 4'480, 2, 4'480, 2)));
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.amount_fen = 2'240, .lines = 2}, {{1, "u1"}, {1, "u0"}})),
      RefusedByTrigger("VC042", Mismatch(1, 2'240, 2, 2'240, 2)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.payee = "dc2"}, {{1, "u1"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  // A DIRECT claim paid to the enterprise, and a REIMBURSE claim paid to the datacenter.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.payee_kind = 2, .payee = kUscc}, {{1, "u1"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.payee_kind = 1, .payee = kDatacenter}, {{2, "e1"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.payee_kind = 2, .payee = kOtherUscc}, {{2, "e1"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_EQ(Count("payouts"), 0);
  // The datacenter's own DIRECT claims; the enterprise's own REIMBURSE claim; the other
  // datacenter's and the other program's claims paid by their own payouts.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1, .amount_fen = 3'360, .lines = 2},
                                         {{1, "u1"}, {1, "u2"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2, .payee_kind = 2, .payee = kUscc}, {{2, "e1"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 3, .payee = kOtherDatacenter}, {{4, "u4"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql(
                  {.id = 4, .program_id = kOtherProgram, .issuer_id = kOtherIssuer}, {{3, "u3"}})),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(payout_id || ':' || redemption_id || '/' || "
                                "usage_id, ',' ORDER BY payout_id, usage_id) FROM payout_lines"),
            "1:1/u1,1:1/u2,2:2/e1,3:4/u4,4:3/u3");
}

TEST_F(PayoutsTest, PayoutLinesMustBeSettledWithinItsPeriod) {
  // Claims of redemption 1 around March 2026 (China Standard Time), 2240 fen each.
  const std::pair<const char*, const char*> claims[] = {
      {"feb-last", "'2026-02-28T23:59:59.999999+08'"},
      {"mar-first", "'2026-03-01T00:00:00+08'"},
      {"mar-last", "'2026-03-31T23:59:59.999999+08'"},
      {"apr-first", "'2026-04-01T00:00:00+08'"},
  };
  for (const auto& [usage_id, settled_at] : claims) {
    ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = usage_id, .settled_at = settled_at}));
  }
  // The default payout is for [2026-03-01, 2026-04-01) +08.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({}, {{1, "feb-last"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({}, {{1, "apr-first"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 4'480, .lines = 2},
                                         {{1, "mar-first"}, {1, "apr-first"}})),
              RefusedByTrigger("VC042", Mismatch(1, 4'480, 2, 4'480, 2)));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.amount_fen = 4'480, .lines = 2},
                                         {{1, "feb-last"}, {1, "mar-last"}})),
              RefusedByTrigger("VC042", Mismatch(1, 4'480, 2, 4'480, 2)));
  EXPECT_EQ(Count("payouts"), 0);
  // Both ends of March; February's and April's claims in their own months.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1, .amount_fen = 4'480, .lines = 2},
                                         {{1, "mar-first"}, {1, "mar-last"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2,
                                          .period_start = "'2026-02-01T00:00:00+08'",
                                          .period_end = "'2026-03-01T00:00:00+08'"},
                                         {{1, "feb-last"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 3,
                                          .period_start = "'2026-04-01T00:00:00+08'",
                                          .period_end = "'2026-05-01T00:00:00+08'"},
                                         {{1, "apr-first"}})),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(payout_id || ':' || usage_id, ',' ORDER BY "
                                "payout_id, usage_id) FROM payout_lines"),
            "1:mar-first,1:mar-last,2:feb-last,3:apr-first");
}

TEST_F(PayoutsTest, PayoutIssuerMustBeItsProgramsIssuer) {
  // Both issuers exist (the foreign key passes); prog-a is iss-a's, prog-b is iss-b's.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.issuer_id = kOtherIssuer}, {{1, "u1"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.program_id = kOtherProgram, .issuer_id = kIssuer}, {{3, "u3"}})),
      RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 1)));
  EXPECT_EQ(Count("payouts"), 0);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1, .issuer_id = kIssuer}, {{1, "u1"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql(
                  {.id = 2, .program_id = kOtherProgram, .issuer_id = kOtherIssuer}, {{3, "u3"}})),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(id || ':' || program_id || ':' || issuer_id, "
                                "',' ORDER BY id) FROM payouts"),
            "1:prog-a:iss-a,2:prog-b:iss-b");
}

TEST_F(PayoutsTest, PayoutLineMustReferenceAPayoutAndAUsageRecord) {
  EXPECT_THAT(ErrorOf(LineSql(kMissingId, 1, "u1")), RefusedBy("payout_lines_payout_id_fkey"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({}, {{1, "u9"}})), RefusedBy("payout_lines_usage_fkey"));
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({}, {{2, "u1"}})), RefusedBy("payout_lines_usage_fkey"));
  EXPECT_EQ(Count("payout_lines"), 0);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({}, {{1, "u1"}})), Accepted());
}

TEST_F(PayoutsTest, UsageRecordIsPaidOnce) {
  ASSERT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1}, {{1, "u1"}})), Accepted());
  // Again by another payout.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2}, {{1, "u1"}})),
              RefusedBy("payout_lines_paid_once"));
  // Twice in one payout.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2, .amount_fen = 2'240, .lines = 2},
                                         {{1, "u2"}, {1, "u2"}})),
              RefusedBy("payout_lines_paid_once"));
  EXPECT_EQ(Count("payouts"), 1);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2, .amount_fen = 1'120}, {{1, "u2"}})), Accepted());
  EXPECT_EQ(Count("payout_lines"), 2);
}

TEST_F(PayoutsTest, PayoutsAndLinesAreAppendOnly) {
  ASSERT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1}, {{1, "u1"}})), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE payouts SET amount_fen = 1"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payouts is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("UPDATE payouts SET payee = payee"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payouts is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("DELETE FROM payouts"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payouts is append-only; DELETE"));
  EXPECT_THAT(ErrorOf("UPDATE payout_lines SET usage_id = 'u2'"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payout_lines is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("UPDATE payout_lines SET payout_id = payout_id"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payout_lines is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("DELETE FROM payout_lines"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payout_lines is append-only; DELETE"));
  EXPECT_THAT(ErrorOf("TRUNCATE payout_lines"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payout_lines is append-only; TRUNCATE"));
  EXPECT_THAT(ErrorOf("TRUNCATE payouts"),
              AllOf(HasSubstr("[0A000]"),
                    HasSubstr("cannot truncate a table referenced in a foreign key constraint")));
  EXPECT_THAT(ErrorOf("TRUNCATE payouts CASCADE"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payouts is append-only; TRUNCATE"));
  EXPECT_THAT(ErrorOf("TRUNCATE payouts, payout_lines"),
              RefusedByTrigger("VC001", "APPEND_ONLY: payouts is append-only; TRUNCATE"));
  EXPECT_EQ(Scalar<std::string>("SELECT p.amount_fen || ':' || l.usage_id FROM payouts p "
                                "JOIN payout_lines l ON l.payout_id = p.id"),
            "2240:u1");
}

// payouts_match_lines checks a payout once, at the commit of the transaction that wrote it;
// payout_lines_match_payouts checks it again after every statement that adds lines to it, in
// that transaction or any later one. A line added later breaks the count (and the sum unless
// it pays nothing), so no claim counts as paid, by payout_lines_paid_once, without a transfer
// that paid it.
TEST_F(PayoutsTest, LineAddedToACommittedPayoutIsRefused) {
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u5"}));
  ASSERT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1}, {{1, "u1"}})), Accepted());
  EXPECT_THAT(ErrorOf(LineSql(1, 1, "u2")),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 3'360, 2)));
  // Even a claim of another program, or one without a subsidy (the sum stays).
  EXPECT_THAT(ErrorOf(LineSql(1, 3, "u3")),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 4'480, 2)));
  EXPECT_THAT(ErrorOf(LineSql(1, 1, "u0")),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 2'240, 2)));
  // Or from a transaction that writes another payout, by a statement of its own or together
  // with the other payout's lines.
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2, .amount_fen = 1'120}, {{1, "u2"}}) + "; " +
                      LineSql(1, 1, "u5")),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 4'480, 2)));
  EXPECT_THAT(ErrorOf(PayoutSql({.id = 2, .amount_fen = 1'120}) + "; " +
                      LinesSql({{2, 1, "u2"}, {1, 1, "u5"}})),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 4'480, 2)));
  EXPECT_EQ(Count("payouts"), 1);
  EXPECT_EQ(Count("payout_lines"), 1);
  // Its own lines by several statements: refused by the first after which they do not add up.
  EXPECT_THAT(ErrorOf(PayoutSql({.id = 2, .amount_fen = 3'360, .lines = 2}) + "; " +
                      LineSql(2, 1, "u2") + "; " + LineSql(2, 1, "u5")),
              RefusedByTrigger("VC042", Mismatch(2, 3'360, 2, 1'120, 1)));
  EXPECT_EQ(Count("payouts"), 1);
  // By one statement in the payout's transaction, also inside a savepoint: accepted.
  EXPECT_THAT(ErrorOf(PayoutSql({.id = 2, .amount_fen = 3'360, .lines = 2}) + "; SAVEPOINT s; " +
                      LinesSql({{2, 1, "u2"}, {2, 1, "u5"}}) + "; RELEASE SAVEPOINT s"),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(payout_id || ':' || redemption_id || '/' || "
                                "usage_id, ',' ORDER BY payout_id, usage_id) FROM payout_lines"),
            "1:1/u1,2:1/u2,2:1/u5");
}

// SET CONSTRAINTS payouts_match_lines IMMEDIATE (or ALL IMMEDIATE) runs the payout's check in
// the middle of its transaction, and payouts_match_lines never runs again; lines added after it
// are checked by payout_lines_match_payouts.
TEST_F(PayoutsTest, LineAddedAfterThePayoutWasCheckedIsRefused) {
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u5"}));
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u6"}));
  // A claim of its own, then another of its program and payee, or one of another program.
  const std::string checked_1 = PayoutWithLinesSql({.id = 1}, {{1, "u1"}}) +
                                "; SET CONSTRAINTS payouts_match_lines IMMEDIATE";
  EXPECT_THAT(ErrorOf(checked_1 + "; " + LineSql(1, 1, "u2")),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 3'360, 2)));
  EXPECT_THAT(ErrorOf(checked_1 + "; " + LineSql(1, 3, "u3")),
              RefusedByTrigger("VC042", Mismatch(1, 2'240, 1, 4'480, 2)));
  const std::string checked_2 =
      PayoutWithLinesSql({.id = 2}, {{1, "u5"}}) + "; SET CONSTRAINTS ALL IMMEDIATE";
  EXPECT_THAT(ErrorOf(checked_2 + "; " + LineSql(2, 1, "u6")),
              RefusedByTrigger("VC042", Mismatch(2, 2'240, 1, 4'480, 2)));
  EXPECT_THAT(ErrorOf(checked_2 + "; " + LineSql(2, 4, "u4")),
              RefusedByTrigger("VC042", Mismatch(2, 2'240, 1, 4'480, 2)));
  // Checked before its lines were written: refused by that check.
  EXPECT_THAT(ErrorOf(PayoutSql({.id = 3}) + "; SET CONSTRAINTS payouts_match_lines IMMEDIATE; " +
                      LineSql(3, 1, "u6")),
              RefusedByTrigger("VC042", Mismatch(3, 2'240, 1, 0, 0)));
  EXPECT_EQ(Count("payouts"), 0);
  EXPECT_EQ(Count("payout_lines"), 0);
  // Checked early with all of its lines, and nothing added after: accepted.
  EXPECT_THAT(ErrorOf(checked_1), Accepted());
  EXPECT_THAT(ErrorOf(checked_2), Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(payout_id || ':' || redemption_id || '/' || "
                                "usage_id, ',' ORDER BY payout_id, usage_id) FROM payout_lines"),
            "1:1/u1,2:1/u5");
}

// A payout written in a subtransaction of the lines' transaction (a savepoint, a PL/pgSQL block
// with an EXCEPTION clause) takes its lines like any other.
TEST_F(PayoutsTest, LinesJoinAPayoutWrittenInASavepointOfTheirTransaction) {
  ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = "u5"}));
  EXPECT_THAT(ErrorOf("SAVEPOINT s; " + PayoutSql({.id = 1}) + "; RELEASE SAVEPOINT s; " +
                      LineSql(1, 1, "u1")),
              Accepted());
  EXPECT_THAT(
      ErrorOf("DO $$ BEGIN BEGIN " + PayoutSql({.id = 2, .amount_fen = 1'120}) +
              "; EXCEPTION WHEN unique_violation THEN RAISE; END; END $$; " + LineSql(2, 1, "u2")),
      Accepted());
  // Lines in a savepoint of their own, the payout in another.
  EXPECT_THAT(
      ErrorOf("SAVEPOINT a; " + PayoutSql({.id = 3}) + "; RELEASE SAVEPOINT a; SAVEPOINT b; " +
              LineSql(3, 1, "u5") + "; RELEASE SAVEPOINT b"),
      Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(payout_id || ':' || redemption_id || '/' || "
                                "usage_id, ',' ORDER BY payout_id, usage_id) FROM payout_lines"),
            "1:1/u1,2:1/u2,3:1/u5");
}

// A payout pays its lines by one PAYOUT transfer of its amount in its program.
TEST_F(PayoutsTest, PayoutTransferMustBeAPayoutOfItsAmountInItsProgram) {
  // Payout i to dc1 pays claim wi (2240 fen) with a transfer from dc1's RECEIVABLE account to
  // its PAID account in prog-a (so only what is named differs): a HOLD, a POST, PAYOUTs of 1
  // fen more and 1 fen less; and a PAYOUT of prog-b between dc1's accounts in prog-b. (A PAYOUT
  // of prog-b between prog-a accounts cannot be written: a transfer's accounts are of its
  // program.)
  const int64_t paid = Account(kProgram, "PAID", kDatacenter);
  const int64_t hold = NewTransfer(kHold, 2'240, std::nullopt, kProgram, receivable_, paid);
  const std::vector<int64_t> transfers = {
      hold,
      NewTransfer(kPost, 2'240, hold, kProgram, receivable_, paid),
      NewTransfer(kPayout, 2'241, std::nullopt, kProgram, receivable_, paid),
      NewTransfer(kPayout, 2'239, std::nullopt, kProgram, receivable_, paid),
      NewPayoutTransfer(2'240, kOtherProgram),
  };
  for (size_t i = 0; i < transfers.size(); ++i) {
    const int64_t id = static_cast<int64_t>(i) + 1;
    const std::string claim = absl::StrCat("w", id);
    ASSERT_NO_FATAL_FAILURE(AddUsage({.usage_id = claim}));
    EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = id, .transfer_id = transfers[i]}, {{1, claim}})),
                RefusedByTrigger("VC042", Mismatch(id, 2'240, 1, 2'240, 1)))
        << transfers[i];
  }
  EXPECT_EQ(Count("payouts"), 0);
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 1,
                                          .transfer_id = NewTransfer(kPayout, 2'240, std::nullopt,
                                                                     kProgram, receivable_, paid)},
                                         {{1, "u1"}})),
              Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2,
                                          .program_id = kOtherProgram,
                                          .issuer_id = kOtherIssuer,
                                          .transfer_id = NewPayoutTransfer(2'240, kOtherProgram)},
                                         {{3, "u3"}})),
              Accepted());
  EXPECT_EQ(Scalar<std::string>("SELECT string_agg(p.id || ':' || t.kind || ':' || t.program_id || "
                                "':' || t.amount_fen, ',' ORDER BY p.id) FROM payouts p "
                                "JOIN ledger_transfers t ON t.id = p.transfer_id"),
            "1:7:prog-a:2240,2:7:prog-b:2240");
}

// A payout's transfer moves its own payee's claims to the payee's PAID account: it debits the
// payee's RECEIVABLE (a datacenter, DIRECT claims) or PAYABLE (an enterprise, REIMBURSE claims)
// account and credits its PAID account, both accounts of the payout's program. So a payout to
// one payee cannot name a PAYOUT that moved another payee's claims, or moved them elsewhere.
TEST_F(PayoutsTest, PayoutTransferMustMoveItsPayeesClaimsToItsPaidAccount) {
  ASSERT_NO_FATAL_FAILURE(AddEnterprise(kOtherUscc));
  const int64_t paid_dc1 = Account(kProgram, "PAID", kDatacenter);
  const int64_t payable_dc1 = Account(kProgram, "PAYABLE", kDatacenter);
  const int64_t receivable_dc2 = Account(kProgram, "RECEIVABLE", kOtherDatacenter);
  const int64_t paid_dc2 = Account(kProgram, "PAID", kOtherDatacenter);
  const int64_t receivable_dc1_b = Account(kOtherProgram, "RECEIVABLE", kDatacenter);
  const int64_t paid_dc1_b = Account(kOtherProgram, "PAID", kDatacenter);
  const int64_t payable = Account(kProgram, "PAYABLE", kUscc);
  const int64_t paid = Account(kProgram, "PAID", kUscc);
  const int64_t receivable = Account(kProgram, "RECEIVABLE", kUscc);
  const int64_t other_payable = Account(kProgram, "PAYABLE", kOtherUscc);
  const int64_t other_paid = Account(kProgram, "PAID", kOtherUscc);
  struct Case {
    const char* what;
    int payee_kind;
    int64_t debit_account_id;
    int64_t credit_account_id;
  };
  // Payout i pays claim wi (DIRECT, to dc1) or ei (REIMBURSE, to the fixture enterprise) with a
  // PAYOUT of 2240 fen in prog-a. (Moving claims between programs cannot be written at all:
  // ledger_transfers_insert_check.)
  const std::vector<Case> cases = {
      {"dc2's claims to dc2's PAID account", 1, receivable_dc2, paid_dc2},
      {"dc1's claims to dc2's PAID account", 1, receivable_, paid_dc2},
      {"dc2's claims to dc1's PAID account", 1, receivable_dc2, paid_dc1},
      {"the enterprise's wallet to dc1's receivable", 1, wallet_, receivable_},
      {"dc1's PAYABLE to its PAID account", 1, payable_dc1, paid_dc1},
      {"dc1's PAID account back to its receivable", 1, paid_dc1, receivable_},
      {"dc1's receivable to its PAYABLE", 1, receivable_, payable_dc1},
      {"the enterprise's RECEIVABLE to its PAID account", 2, receivable, paid},
      {"the other enterprise's PAYABLE to the enterprise's PAID account", 2, other_payable, paid},
      {"the enterprise's PAYABLE to the other enterprise's PAID account", 2, payable, other_paid},
      {"the enterprise's PAYABLE to its wallet", 2, payable, wallet_},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const int64_t id = static_cast<int64_t>(i) + 1;
    const bool direct = c.payee_kind == 1;
    const std::string claim = absl::StrCat(direct ? "w" : "e", id);
    const int64_t redemption = direct ? 1 : 2;
    ASSERT_NO_FATAL_FAILURE(AddUsage(
        {.redemption_id = redemption, .usage_id = claim, .settlement_style = c.payee_kind}));
    const int64_t transfer = NewTransfer(kPayout, 2'240, std::nullopt, kProgram, c.debit_account_id,
                                         c.credit_account_id);
    EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = id,
                                            .payee_kind = c.payee_kind,
                                            .payee = direct ? kDatacenter : kUscc,
                                            .transfer_id = transfer},
                                           {{redemption, claim}})),
                RefusedByTrigger("VC042", Mismatch(id, 2'240, 1, 2'240, 1)))
        << c.what;
  }
  EXPECT_EQ(Count("payouts"), 0);
  // Each payee's own claims to its own PAID account: dc1's, the enterprise's, dc2's, and dc1's
  // in prog-b.
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.id = 1,
                                  .transfer_id = NewTransfer(kPayout, 2'240, std::nullopt, kProgram,
                                                             receivable_, paid_dc1)},
                                 {{1, "u1"}})),
      Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql({.id = 2,
                                          .payee_kind = 2,
                                          .payee = kUscc,
                                          .transfer_id = NewTransfer(kPayout, 2'240, std::nullopt,
                                                                     kProgram, payable, paid)},
                                         {{2, "e1"}})),
              Accepted());
  EXPECT_THAT(
      ErrorOf(PayoutWithLinesSql({.id = 3,
                                  .payee = kOtherDatacenter,
                                  .transfer_id = NewTransfer(kPayout, 2'240, std::nullopt, kProgram,
                                                             receivable_dc2, paid_dc2)},
                                 {{4, "u4"}})),
      Accepted());
  EXPECT_THAT(ErrorOf(PayoutWithLinesSql(
                  {.id = 4,
                   .program_id = kOtherProgram,
                   .issuer_id = kOtherIssuer,
                   .transfer_id = NewTransfer(kPayout, 2'240, std::nullopt, kOtherProgram,
                                              receivable_dc1_b, paid_dc1_b)},
                  {{3, "u3"}})),
              Accepted());
  EXPECT_EQ(Scalar<std::string>(
                "SELECT string_agg(p.id || ':' || p.payee || ':' || d.program_id || '/' || d.kind "
                "|| '/' || d.owner || '>' || c.program_id || '/' || c.kind || '/' || c.owner, ',' "
                "ORDER BY p.id) FROM payouts p JOIN ledger_transfers t ON t.id = p.transfer_id "
                "JOIN ledger_accounts d ON d.id = t.debit_account_id "
                "JOIN ledger_accounts c ON c.id = t.credit_account_id"),
            absl::StrCat("1:dc1:prog-a/RECEIVABLE/dc1>prog-a/PAID/dc1,2:", kUscc,
                         ":prog-a/PAYABLE/", kUscc, ">prog-a/PAID/", kUscc,
                         ",3:dc2:prog-a/RECEIVABLE/dc2>prog-a/PAID/dc2,"
                         "4:dc1:prog-b/RECEIVABLE/dc1>prog-b/PAID/dc1"));
}

}  // namespace
}  // namespace vch::storage
