// The ledger schema (migrations/V0002__ledger.sql) refuses every invariant violation by itself:
// each named constraint and trigger is driven to a violation in plain SQL and the test checks
// which one refused it, plus the valid paths next to each refusal, and the Status that
// storage::RunTransaction maps the refusals to.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "storage/pg_error.h"
#include "storage/pg_pool.h"
#include "tests/testing/sql_refusals.h"
#include "tests/testing/test_db.h"

namespace vch::storage {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;
using ::vch::testing::Accepted;
using ::vch::testing::CreateTestDatabase;
using ::vch::testing::IsOk;
using ::vch::testing::RefusedBy;
using ::vch::testing::RefusedByTrigger;
using ::vch::testing::StatusIs;

constexpr absl::StatusCode kFailedPrecondition = absl::StatusCode::kFailedPrecondition;
constexpr absl::StatusCode kAlreadyExists = absl::StatusCode::kAlreadyExists;

// Transfer kinds as stored (policy::TransferKind).
enum TransferKind : int {
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
constexpr int kAllKinds[] = {kFund,   kAward,  kHold,     kPost,    kVoid,
                             kExpire, kPayout, kClawback, kReversal};

// An id that no account or transfer has.
constexpr int64_t kMissingId = 999999;

// A ledger_accounts row; valid as is (a wallet in program p1).
struct AccountRow {
  std::string program_id = "p1";
  std::string issuer_id = "i1";
  std::string kind = "WALLET";
  std::string owner = "91110000MA0000000A";
  int flags = 0;
  int64_t debits_pending_fen = 0;
  int64_t debits_posted_fen = 0;
  int64_t credits_pending_fen = 0;
  int64_t credits_posted_fen = 0;
};

// A ledger_transfers row; valid as is (an AWARD of 100 fen between the fixture's two accounts).
struct TransferRow {
  int64_t id = 1;
  int kind = kAward;
  std::optional<int64_t> debit_account_id;   // Unset: the fixture's debit account.
  std::optional<int64_t> credit_account_id;  // Unset: the fixture's credit account.
  int64_t amount_fen = 100;
  int64_t released_fen = 0;
  std::optional<int64_t> pending_id;
  std::string expires_at = "NULL";  // An SQL expression.
  std::string request_scope = "transfers";
  std::string request_id;  // Empty: "req-<id>".
};

// A ledger_holds row; valid as is (an open hold of 100 fen on transfer 1).
struct HoldRow {
  int64_t transfer_id = 1;
  std::optional<int64_t> debit_account_id;   // Unset: the fixture's debit account.
  std::optional<int64_t> credit_account_id;  // Unset: the fixture's credit account.
  int64_t amount_fen = 100;
  int64_t posted_fen = 0;
  int64_t released_fen = 0;
  std::string expires_at = "'2030-01-01T00:00:00Z'";  // An SQL expression.
  bool resolved = false;
};

class LedgerSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateTestDatabase();
    conn_ = std::make_unique<pqxx::connection>(dsn_);
    debit_ = InsertAccount({.kind = "TREASURY", .owner = ""});
    credit_ = InsertAccount({.kind = "BUDGET", .owner = ""});
  }

  std::string ErrorOf(const std::string& sql) { return ::vch::testing::SqlErrorOf(*conn_, sql); }

  // Runs `sql` through storage::RunTransaction and returns the mapped status.
  absl::Status RunSql(const std::string& sql) {
    if (pool_ == nullptr) {
      absl::StatusOr<std::unique_ptr<PgPool>> pool = PgPool::Create({.dsn = dsn_, .size = 1});
      if (!pool.ok()) return pool.status();
      pool_ = std::move(*pool);
    }
    return RunTransaction(*pool_, [&sql](pqxx::dbtransaction& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  }

  // Runs a query that must succeed (outside any explicit transaction).
  pqxx::result Query(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql);
  }

  template <typename T>
  T Scalar(const std::string& sql) {
    return Query(sql)[0][0].as<T>();
  }

  std::string AccountSql(const AccountRow& row) {
    return absl::StrCat(
        "INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner, flags, "
        "debits_pending_fen, debits_posted_fen, credits_pending_fen, credits_posted_fen) VALUES (",
        conn_->quote(row.program_id), ", ", conn_->quote(row.issuer_id), ", ",
        conn_->quote(row.kind), ", ", conn_->quote(row.owner), ", ", row.flags, ", ",
        row.debits_pending_fen, ", ", row.debits_posted_fen, ", ", row.credits_pending_fen, ", ",
        row.credits_posted_fen, ")");
  }

  // Inserts an account that must be accepted and returns its id.
  int64_t InsertAccount(const AccountRow& row) {
    return Scalar<int64_t>(AccountSql(row) + " RETURNING id");
  }

  std::string TransferSql(const TransferRow& row) {
    const std::string request_id =
        row.request_id.empty() ? absl::StrCat("req-", row.id) : row.request_id;
    return absl::StrCat(
        "INSERT INTO ledger_transfers (id, program_id, kind, debit_account_id, credit_account_id, "
        "amount_fen, released_fen, pending_id, expires_at, request_scope, request_id, created_at, "
        "debit_debits_pending_fen, debit_debits_posted_fen, debit_credits_pending_fen, "
        "debit_credits_posted_fen, credit_debits_pending_fen, credit_debits_posted_fen, "
        "credit_credits_pending_fen, credit_credits_posted_fen) VALUES (",
        row.id, ", 'p1', ", row.kind, ", ", row.debit_account_id.value_or(debit_), ", ",
        row.credit_account_id.value_or(credit_), ", ", row.amount_fen, ", ", row.released_fen, ", ",
        row.pending_id.has_value() ? absl::StrCat(*row.pending_id) : "NULL", ", ", row.expires_at,
        ", ", conn_->quote(row.request_scope), ", ", conn_->quote(request_id), ", now(), 0, ",
        row.amount_fen, ", 0, 0, 0, 0, 0, ", row.amount_fen, ")");
  }

  std::string HoldSql(const HoldRow& row) {
    return absl::StrCat(
        "INSERT INTO ledger_holds (transfer_id, program_id, debit_account_id, credit_account_id, "
        "amount_fen, posted_fen, released_fen, expires_at, resolved) VALUES (",
        row.transfer_id, ", 'p1', ", row.debit_account_id.value_or(debit_), ", ",
        row.credit_account_id.value_or(credit_), ", ", row.amount_fen, ", ", row.posted_fen, ", ",
        row.released_fen, ", ", row.expires_at, ", ", row.resolved ? "true" : "false", ")");
  }

  // A HOLD transfer `id` of `amount_fen` and its open hold row.
  void CreateOpenHold(int64_t id, int64_t amount_fen = 100) {
    ASSERT_THAT(ErrorOf(TransferSql({.id = id,
                                     .kind = kHold,
                                     .amount_fen = amount_fen,
                                     .expires_at = "'2030-01-01T00:00:00Z'"})),
                Accepted());
    ASSERT_THAT(ErrorOf(HoldSql({.transfer_id = id, .amount_fen = amount_fen})), Accepted());
  }

  // "posted/released/resolved" of hold `id`.
  std::string HoldState(int64_t id) {
    pqxx::result r = Query(absl::StrCat(
        "SELECT posted_fen, released_fen, resolved FROM ledger_holds WHERE transfer_id = ", id));
    if (r.size() != 1) return absl::StrCat(r.size(), " rows");
    return absl::StrCat(r[0][0].as<int64_t>(), "/", r[0][1].as<int64_t>(), "/",
                        r[0][2].as<bool>() ? "resolved" : "open");
  }

  std::string IdempotencyKeySql(const std::string& scope, const std::string& request_id) {
    return absl::StrCat(
        "INSERT INTO idempotency_keys (scope, request_id, request_hash, response) VALUES (",
        conn_->quote(scope), ", ", conn_->quote(request_id), ", 'sha256:ab', '\\x0a0b'::bytea)");
  }

  int64_t Count(const std::string& table) {
    return Scalar<int64_t>(absl::StrCat("SELECT count(*) FROM ", table));
  }

  std::string dsn_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<PgPool> pool_;
  int64_t debit_ = 0;
  int64_t credit_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The schema itself.

TEST_F(LedgerSchemaTest, SchemaHasExactlyTheConstraintsAndTriggersTestedHere) {
  // A constraint or trigger added to the ledger tables needs a test in this file.
  std::vector<std::string> constraints;
  for (const auto& row :
       Query("SELECT conname FROM pg_constraint WHERE conrelid IN ('ledger_accounts'::regclass, "
             "'ledger_transfers'::regclass, 'ledger_holds'::regclass, "
             "'idempotency_keys'::regclass)")) {
    constraints.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(constraints, UnorderedElementsAreArray<std::string>({
                               "ledger_accounts_pkey",
                               "accounts_program_id_nonempty",
                               "accounts_issuer_id_nonempty",
                               "accounts_kind_known",
                               "accounts_flags_known",
                               "accounts_debits_pending_nonnegative",
                               "accounts_debits_posted_nonnegative",
                               "accounts_credits_pending_nonnegative",
                               "accounts_credits_posted_nonnegative",
                               "accounts_no_overdraft",
                               "accounts_one_per_kind_and_owner",
                               "ledger_transfers_pkey",
                               "transfers_kind_known",
                               "transfers_amount_positive",
                               "transfers_released_nonnegative",
                               "transfers_distinct_accounts",
                               "transfers_pending_id_matches_kind",
                               "transfers_released_only_on_post",
                               "transfers_expiry_only_on_hold",
                               "transfers_request_once",
                               "ledger_holds_pkey",
                               "holds_amount_positive",
                               "holds_posted_nonnegative",
                               "holds_released_nonnegative",
                               "holds_resolved_at_most_once",
                               "holds_resolved_iff_exhausted",
                               "idempotency_keys_pkey",
                               "idempotency_request_id_valid",
                           }));
  std::vector<std::string> triggers;
  for (const auto& row :
       Query("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
             "('ledger_accounts'::regclass, 'ledger_transfers'::regclass, "
             "'ledger_holds'::regclass, 'idempotency_keys'::regclass)")) {
    triggers.push_back(row[0].as<std::string>());
  }
  EXPECT_THAT(triggers, UnorderedElementsAreArray<std::string>({
                            "ledger_accounts_no_delete",
                            "ledger_accounts_key_immutable",
                            "ledger_transfers_append_only",
                            "ledger_transfers_no_truncate",
                            "ledger_transfers_insert_check",
                            "ledger_holds_forward_only",
                            "ledger_holds_no_truncate",
                            "ledger_holds_insert_check",
                            "idempotency_keys_append_only",
                            "idempotency_keys_no_truncate",
                        }));
}

// ---------------------------------------------------------------------------------------------
// ledger_accounts

TEST_F(LedgerSchemaTest, ValidAccountIsStoredWithDefaults) {
  const int64_t id = Scalar<int64_t>(
      "INSERT INTO ledger_accounts (program_id, issuer_id, kind) VALUES ('p2', 'i1', 'LAPSED') "
      "RETURNING id");
  pqxx::result r = Query(absl::StrCat(
      "SELECT owner, flags, debits_pending_fen, debits_posted_fen, credits_pending_fen, "
      "credits_posted_fen, created_at IS NOT NULL FROM ledger_accounts WHERE id = ",
      id));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "");
  EXPECT_EQ(r[0][1].as<int>(), 0);
  for (int column = 2; column <= 5; ++column) EXPECT_EQ(r[0][column].as<int64_t>(), 0);
  EXPECT_TRUE(r[0][6].as<bool>());
  // Every known kind is accepted.
  for (const char* kind :
       {"TREASURY", "BUDGET", "WALLET", "RECEIVABLE", "PAID", "LAPSED", "PAYABLE"}) {
    EXPECT_THAT(ErrorOf(AccountSql({.program_id = "p3", .kind = kind})), Accepted()) << kind;
  }
  EXPECT_EQ(Count("ledger_accounts"), 2 + 1 + 7);
}

TEST_F(LedgerSchemaTest, AccountProgramAndIssuerMustBeNonEmpty) {
  EXPECT_THAT(ErrorOf(AccountSql({.program_id = ""})), RefusedBy("accounts_program_id_nonempty"));
  EXPECT_THAT(ErrorOf(AccountSql({.issuer_id = ""})), RefusedBy("accounts_issuer_id_nonempty"));
  EXPECT_THAT(ErrorOf(AccountSql({})), Accepted());
}

TEST_F(LedgerSchemaTest, AccountKindMustBeKnown) {
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "SAVINGS"})), RefusedBy("accounts_kind_known"));
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "wallet"})), RefusedBy("accounts_kind_known"));
  EXPECT_THAT(ErrorOf(AccountSql({.kind = ""})), RefusedBy("accounts_kind_known"));
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "WALLET"})), Accepted());
}

TEST_F(LedgerSchemaTest, AccountFlagsAllowOnlyTheNoOverdraftBit) {
  for (int flags : {2, 3, 4, -1}) {
    EXPECT_THAT(ErrorOf(AccountSql({.flags = flags})), RefusedBy("accounts_flags_known")) << flags;
  }
  EXPECT_THAT(ErrorOf(AccountSql({.owner = "a", .flags = 0})), Accepted());
  EXPECT_THAT(ErrorOf(AccountSql({.owner = "b", .flags = 1})), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET flags = 2 WHERE owner = 'a'"),
              RefusedBy("accounts_flags_known"));
}

TEST_F(LedgerSchemaTest, AccountTotalsMustBeNonNegative) {
  EXPECT_THAT(ErrorOf(AccountSql({.debits_pending_fen = -1})),
              RefusedBy("accounts_debits_pending_nonnegative"));
  EXPECT_THAT(ErrorOf(AccountSql({.debits_posted_fen = -1})),
              RefusedBy("accounts_debits_posted_nonnegative"));
  EXPECT_THAT(ErrorOf(AccountSql({.credits_pending_fen = -1})),
              RefusedBy("accounts_credits_pending_nonnegative"));
  EXPECT_THAT(ErrorOf(AccountSql({.credits_posted_fen = -1})),
              RefusedBy("accounts_credits_posted_nonnegative"));
  // An update that takes a total below zero is refused the same way.
  const std::string where = absl::StrCat(" WHERE id = ", debit_);
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET debits_pending_fen = -1" + where),
              RefusedBy("accounts_debits_pending_nonnegative"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET debits_posted_fen = -1" + where),
              RefusedBy("accounts_debits_posted_nonnegative"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET credits_pending_fen = -1" + where),
              RefusedBy("accounts_credits_pending_nonnegative"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET credits_posted_fen = -1" + where),
              RefusedBy("accounts_credits_posted_nonnegative"));
  EXPECT_THAT(ErrorOf(AccountSql({.debits_pending_fen = 0,
                                  .debits_posted_fen = 0,
                                  .credits_pending_fen = 0,
                                  .credits_posted_fen = 0})),
              Accepted());
}

TEST_F(LedgerSchemaTest, NoOverdraftAccountRefusesDebitsBeyondPostedCredits) {
  // Exactly zero available is fine.
  const int64_t id = InsertAccount(
      {.flags = 1, .debits_pending_fen = 40, .debits_posted_fen = 60, .credits_posted_fen = 100});
  const std::string where = absl::StrCat(" WHERE id = ", id);
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET debits_pending_fen = 41" + where),
              RefusedBy("accounts_no_overdraft"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET debits_posted_fen = 61" + where),
              RefusedBy("accounts_no_overdraft"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET credits_posted_fen = 99" + where),
              RefusedBy("accounts_no_overdraft"));
  // Pending credits do not fund debits.
  EXPECT_THAT(
      ErrorOf("UPDATE ledger_accounts SET debits_pending_fen = 41, credits_pending_fen = 500" +
              where),
      RefusedBy("accounts_no_overdraft"));
  EXPECT_THAT(RunSql("UPDATE ledger_accounts SET debits_posted_fen = 61" + where),
              StatusIs(kFailedPrecondition, "INSUFFICIENT_FUNDS"));
  EXPECT_EQ(
      Scalar<int64_t>("SELECT debits_pending_fen + debits_posted_fen FROM ledger_accounts" + where),
      100);
  // More credits make room for more debits.
  EXPECT_THAT(
      ErrorOf("UPDATE ledger_accounts SET credits_posted_fen = 150, debits_pending_fen = 90" +
              where),
      Accepted());
  // New accounts are checked too.
  EXPECT_THAT(ErrorOf(AccountSql({.owner = "x", .flags = 1, .debits_posted_fen = 1})),
              RefusedBy("accounts_no_overdraft"));
  EXPECT_THAT(ErrorOf(AccountSql({.owner = "y", .flags = 1, .debits_pending_fen = 1})),
              RefusedBy("accounts_no_overdraft"));
  EXPECT_THAT(ErrorOf(AccountSql(
                  {.owner = "z", .flags = 1, .debits_pending_fen = 1, .credits_pending_fen = 100})),
              RefusedBy("accounts_no_overdraft"));
}

TEST_F(LedgerSchemaTest, AccountWithoutNoOverdraftFlagMayGoNegative) {
  const int64_t id =
      InsertAccount({.flags = 0, .debits_pending_fen = 50, .debits_posted_fen = 100});
  const std::string where = absl::StrCat(" WHERE id = ", id);
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET debits_posted_fen = 1000" + where), Accepted());
  EXPECT_EQ(Scalar<int64_t>("SELECT credits_posted_fen - debits_posted_fen - debits_pending_fen "
                            "FROM ledger_accounts" +
                            where),
            -1050);
  // Setting the flag on an overdrawn account is refused.
  EXPECT_THAT(ErrorOf("UPDATE ledger_accounts SET flags = 1" + where),
              RefusedBy("accounts_no_overdraft"));
}

TEST_F(LedgerSchemaTest, OneAccountPerProgramKindAndOwner) {
  ASSERT_THAT(ErrorOf(AccountSql({.kind = "WALLET", .owner = "o1"})), Accepted());
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "WALLET", .owner = "o1"})),
              RefusedBy("accounts_one_per_kind_and_owner"));
  // A different issuer does not make a second wallet of the same owner in the program.
  EXPECT_THAT(ErrorOf(AccountSql({.issuer_id = "i2", .kind = "WALLET", .owner = "o1"})),
              RefusedBy("accounts_one_per_kind_and_owner"));
  // Program accounts (owner '') are one per kind: the fixture made the TREASURY of p1.
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "TREASURY", .owner = ""})),
              RefusedBy("accounts_one_per_kind_and_owner"));
  EXPECT_THAT(RunSql(AccountSql({.kind = "WALLET", .owner = "o1"})),
              StatusIs(kAlreadyExists, "ALREADY_EXISTS"));
  // Any one of the three differing is a different account.
  EXPECT_THAT(ErrorOf(AccountSql({.program_id = "p2", .kind = "WALLET", .owner = "o1"})),
              Accepted());
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "PAYABLE", .owner = "o1"})), Accepted());
  EXPECT_THAT(ErrorOf(AccountSql({.kind = "WALLET", .owner = "o2"})), Accepted());
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM ledger_accounts WHERE owner = 'o1'"), 3);
}

// ---------------------------------------------------------------------------------------------
// ledger_transfers

TEST_F(LedgerSchemaTest, ValidTransferIsStored) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 7, .amount_fen = 250})), Accepted());
  pqxx::result r = Query(
      "SELECT kind, debit_account_id, credit_account_id, amount_fen, released_fen, "
      "pending_id IS NULL, expires_at IS NULL, request_scope, request_id, metadata::text "
      "FROM ledger_transfers WHERE id = 7");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<int>(), kAward);
  EXPECT_EQ(r[0][1].as<int64_t>(), debit_);
  EXPECT_EQ(r[0][2].as<int64_t>(), credit_);
  EXPECT_EQ(r[0][3].as<int64_t>(), 250);
  EXPECT_EQ(r[0][4].as<int64_t>(), 0);
  EXPECT_TRUE(r[0][5].as<bool>());
  EXPECT_TRUE(r[0][6].as<bool>());
  EXPECT_EQ(r[0][7].as<std::string>(), "transfers");
  EXPECT_EQ(r[0][8].as<std::string>(), "req-7");
  EXPECT_EQ(r[0][9].as<std::string>(), "{}");
}

TEST_F(LedgerSchemaTest, EveryKindHasAValidShape) {
  EXPECT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kFund})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kAward})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kHold, .expires_at = "now()"})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 4, .kind = kHold})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 5, .kind = kPost, .amount_fen = 60, .pending_id = 3})),
              Accepted());
  EXPECT_THAT(ErrorOf(TransferSql(
                  {.id = 6, .kind = kPost, .amount_fen = 30, .released_fen = 10, .pending_id = 3})),
              Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 7, .kind = kVoid, .pending_id = 4})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 8, .kind = kExpire, .pending_id = 4})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 9, .kind = kExpire})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 10, .kind = kPayout})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 11, .kind = kClawback})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 12, .kind = kReversal})), Accepted());
  EXPECT_EQ(Count("ledger_transfers"), 12);
  EXPECT_EQ(Scalar<int>("SELECT count(DISTINCT kind) FROM ledger_transfers"), 9);
}

TEST_F(LedgerSchemaTest, TransferKindMustBeKnown) {
  for (int kind : {0, 10, -1}) {
    EXPECT_THAT(ErrorOf(TransferSql({.kind = kind})), RefusedBy("transfers_kind_known")) << kind;
  }
  EXPECT_EQ(Count("ledger_transfers"), 0);
}

TEST_F(LedgerSchemaTest, TransferAmountMustBePositive) {
  EXPECT_THAT(ErrorOf(TransferSql({.amount_fen = 0})), RefusedBy("transfers_amount_positive"));
  EXPECT_THAT(ErrorOf(TransferSql({.amount_fen = -5})), RefusedBy("transfers_amount_positive"));
  EXPECT_THAT(ErrorOf(TransferSql({.amount_fen = 1})), Accepted());
}

TEST_F(LedgerSchemaTest, TransferReleasedMustBeNonNegative) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kPost, .released_fen = -1, .pending_id = 1})),
              RefusedBy("transfers_released_nonnegative"));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kPost, .released_fen = 0, .pending_id = 1})),
              Accepted());
}

TEST_F(LedgerSchemaTest, TransferAccountsMustDiffer) {
  EXPECT_THAT(ErrorOf(TransferSql({.debit_account_id = debit_, .credit_account_id = debit_})),
              RefusedBy("transfers_distinct_accounts"));
  EXPECT_THAT(RunSql(TransferSql({.debit_account_id = credit_, .credit_account_id = credit_})),
              StatusIs(kFailedPrecondition, "CONSTRAINT_VIOLATED"));
  EXPECT_THAT(ErrorOf(TransferSql({.debit_account_id = credit_, .credit_account_id = debit_})),
              Accepted());
}

TEST_F(LedgerSchemaTest, TransferAccountsMustExistInTheTransfersProgram) {
  // ledger_transfers_insert_check, once per statement: both accounts exist and belong to the
  // transfer's program ('p1').
  const int64_t other_program = InsertAccount({.program_id = "p2", .kind = "BUDGET", .owner = ""});
  const std::string kRefused = "TRANSFER_ACCOUNT_INVALID: transfer 1 moves from account ";
  EXPECT_THAT(ErrorOf(TransferSql({.debit_account_id = kMissingId})),
              RefusedByTrigger("VC006", absl::StrCat(kRefused, kMissingId, " to account ", credit_,
                                                     ", not both accounts of program p1")));
  EXPECT_THAT(ErrorOf(TransferSql({.credit_account_id = kMissingId})),
              RefusedByTrigger("VC006", absl::StrCat(kRefused, debit_, " to account ", kMissingId,
                                                     ", not both accounts of program p1")));
  EXPECT_THAT(
      ErrorOf(TransferSql({.credit_account_id = other_program})),
      RefusedByTrigger("VC006", absl::StrCat(kRefused, debit_, " to account ", other_program,
                                             ", not both accounts of program p1")));
  EXPECT_THAT(
      ErrorOf(TransferSql({.debit_account_id = other_program})),
      RefusedByTrigger("VC006", absl::StrCat(kRefused, other_program, " to account ", credit_,
                                             ", not both accounts of program p1")));
  EXPECT_THAT(RunSql(TransferSql({.credit_account_id = kMissingId})),
              StatusIs(kFailedPrecondition, "TRANSFER_ACCOUNT_INVALID"));
  EXPECT_EQ(Count("ledger_transfers"), 0);
  // One bad row refuses its whole statement.
  EXPECT_THAT(ErrorOf(TransferSql({.id = 1}) + ", " +
                      TransferSql({.id = 2, .credit_account_id = other_program})
                          .substr(TransferSql({.id = 2}).find("VALUES (") + 7)),
              RefusedByTrigger("VC006", absl::StrCat("TRANSFER_ACCOUNT_INVALID: transfer 2")));
  EXPECT_EQ(Count("ledger_transfers"), 0);
  EXPECT_THAT(ErrorOf(TransferSql({})), Accepted());
}

TEST_F(LedgerSchemaTest, AccountsAreNeverDeletedAndKeepTheirKeys) {
  // Transfers name their accounts without a foreign key (ledger_transfers_insert_check checks
  // them once per statement), so accounts are never deleted and their id and program never
  // change; their balances do.
  ASSERT_THAT(ErrorOf(TransferSql({})), Accepted());
  const std::string kUndeletable = "ROW_UNDELETABLE: rows of ledger_accounts are never deleted";
  EXPECT_THAT(ErrorOf(absl::StrCat("DELETE FROM ledger_accounts WHERE id = ", credit_)),
              RefusedByTrigger("VC004", absl::StrCat(kUndeletable, "; DELETE is refused")));
  EXPECT_THAT(ErrorOf("TRUNCATE ledger_accounts CASCADE"),
              RefusedByTrigger("VC004", absl::StrCat(kUndeletable, "; TRUNCATE is refused")));
  const std::string kImmutable = "KEY_IMMUTABLE: the key of a row of ledger_accounts never changes";
  EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE ledger_accounts SET id = ", kMissingId,
                                   " WHERE id = ", credit_)),
              RefusedByTrigger("VC005", kImmutable));
  EXPECT_THAT(
      ErrorOf(absl::StrCat("UPDATE ledger_accounts SET program_id = 'p2' WHERE id = ", credit_)),
      RefusedByTrigger("VC005", kImmutable));
  EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE ledger_accounts SET id = id, program_id = program_id, "
                                   "credits_posted_fen = 100 WHERE id = ",
                                   credit_)),
              Accepted());
  EXPECT_EQ(Count("ledger_accounts"), 2);
}

TEST_F(LedgerSchemaTest, PostAndVoidRequirePendingId) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kPost})),
              RefusedBy("transfers_pending_id_matches_kind"));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kVoid})),
              RefusedBy("transfers_pending_id_matches_kind"));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kPost, .pending_id = 1})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kVoid, .pending_id = 1})), Accepted());
}

TEST_F(LedgerSchemaTest, OtherKindsMustNotHavePendingId) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  for (int kind : {kFund, kAward, kHold, kPayout, kClawback, kReversal}) {
    EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kind, .pending_id = 1})),
                RefusedBy("transfers_pending_id_matches_kind"))
        << kind;
  }
  EXPECT_EQ(Count("ledger_transfers"), 1);
}

TEST_F(LedgerSchemaTest, ExpireMayOrMayNotHavePendingId) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kExpire, .pending_id = 1})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kExpire})), Accepted());
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM ledger_transfers WHERE kind = 6"), 2);
}

TEST_F(LedgerSchemaTest, PendingIdMustNameAHoldBetweenTheSameAccounts) {
  // ledger_transfers_insert_check: a POST, VOID or EXPIRE of a hold names a HOLD of its program
  // between the same two accounts (the engine copies them from the hold).
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  ASSERT_THAT(ErrorOf(TransferSql({.id = 2})), Accepted());  // an AWARD
  const int64_t third = InsertAccount({.kind = "LAPSED", .owner = ""});
  auto refused = [](int64_t id, int64_t pending) {
    return RefusedByTrigger(
        "VC008", absl::StrCat("TRANSFER_PENDING_INVALID: transfer ", id, " resolves ", pending,
                              ", which is not a HOLD between its accounts in "
                              "program p1"));
  };
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kPost, .pending_id = kMissingId})),
              refused(3, kMissingId));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kVoid, .pending_id = kMissingId})),
              refused(3, kMissingId));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kExpire, .pending_id = kMissingId})),
              refused(3, kMissingId));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kPost, .pending_id = 2})), refused(3, 2));
  EXPECT_THAT(
      ErrorOf(TransferSql({.id = 3, .kind = kPost, .credit_account_id = third, .pending_id = 1})),
      refused(3, 1));
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3,
                                   .kind = kVoid,
                                   .debit_account_id = credit_,
                                   .credit_account_id = debit_,
                                   .pending_id = 1})),
              refused(3, 1));
  EXPECT_THAT(RunSql(TransferSql({.id = 3, .kind = kPost, .pending_id = kMissingId})),
              StatusIs(kFailedPrecondition, "TRANSFER_PENDING_INVALID"));
  EXPECT_EQ(Count("ledger_transfers"), 2);
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kPost, .pending_id = 1})), Accepted());
}

TEST_F(LedgerSchemaTest, ReleasedOnlyOnPost) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  for (int kind : kAllKinds) {
    if (kind == kPost) continue;
    std::optional<int64_t> pending_id;
    if (kind == kVoid || kind == kExpire) pending_id = 1;
    EXPECT_THAT(
        ErrorOf(TransferSql({.id = 2, .kind = kind, .released_fen = 10, .pending_id = pending_id})),
        RefusedBy("transfers_released_only_on_post"))
        << kind;
  }
  EXPECT_THAT(ErrorOf(TransferSql(
                  {.id = 2, .kind = kPost, .amount_fen = 90, .released_fen = 10, .pending_id = 1})),
              Accepted());
}

TEST_F(LedgerSchemaTest, ExpiryOnlyOnHold) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  for (int kind : kAllKinds) {
    if (kind == kHold) continue;
    std::optional<int64_t> pending_id;
    if (kind == kPost || kind == kVoid) pending_id = 1;
    EXPECT_THAT(ErrorOf(TransferSql({.id = 2,
                                     .kind = kind,
                                     .pending_id = pending_id,
                                     .expires_at = "'2030-01-01T00:00:00Z'"})),
                RefusedBy("transfers_expiry_only_on_hold"))
        << kind;
  }
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kHold, .expires_at = "now()"})), Accepted());
}

TEST_F(LedgerSchemaTest, RequestCreatesAtMostOneTransfer) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .request_scope = "s", .request_id = "r"})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .request_scope = "s", .request_id = "r"})),
              RefusedBy("transfers_request_once"));
  EXPECT_THAT(RunSql(TransferSql({.id = 2, .request_scope = "s", .request_id = "r"})),
              StatusIs(kAlreadyExists, "ALREADY_EXISTS"));
  // The same request id in another scope, or another id in the same scope, is another request.
  EXPECT_THAT(ErrorOf(TransferSql({.id = 2, .request_scope = "t", .request_id = "r"})), Accepted());
  EXPECT_THAT(ErrorOf(TransferSql({.id = 3, .request_scope = "s", .request_id = "r2"})),
              Accepted());
  // Transfer ids are unique too.
  EXPECT_THAT(ErrorOf(TransferSql({.id = 1, .request_scope = "s", .request_id = "r3"})),
              RefusedBy("ledger_transfers_pkey"));
  EXPECT_EQ(Count("ledger_transfers"), 3);
}

TEST_F(LedgerSchemaTest, TransfersRefuseUpdate) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .amount_fen = 100})), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE ledger_transfers SET amount_fen = 1 WHERE id = 1"),
              RefusedByTrigger("VC001", "APPEND_ONLY: ledger_transfers is append-only; UPDATE"));
  // Even an update that changes nothing.
  EXPECT_THAT(ErrorOf("UPDATE ledger_transfers SET metadata = metadata"),
              RefusedByTrigger("VC001", "APPEND_ONLY: ledger_transfers is append-only; UPDATE"));
  EXPECT_THAT(RunSql("UPDATE ledger_transfers SET request_id = 'other'"),
              StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Scalar<std::string>("SELECT amount_fen || '/' || request_id FROM ledger_transfers"),
            "100/req-1");
}

TEST_F(LedgerSchemaTest, TransfersRefuseDelete) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1})), Accepted());
  EXPECT_THAT(ErrorOf("DELETE FROM ledger_transfers WHERE id = 1"),
              RefusedByTrigger("VC001", "APPEND_ONLY: ledger_transfers is append-only; DELETE"));
  EXPECT_THAT(RunSql("DELETE FROM ledger_transfers"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("ledger_transfers"), 1);
}

TEST_F(LedgerSchemaTest, TransfersRefuseTruncate) {
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1));
  // TRUNCATE of ledger_transfers alone stops at the foreign key from ledger_holds, before any
  // trigger runs; with the referencing table included the trigger refuses it.
  EXPECT_THAT(ErrorOf("TRUNCATE ledger_transfers"),
              AllOf(HasSubstr("[0A000]"),
                    HasSubstr("cannot truncate a table referenced in a foreign key constraint")));
  EXPECT_THAT(ErrorOf("TRUNCATE ledger_transfers CASCADE"),
              RefusedByTrigger("VC001", "APPEND_ONLY: ledger_transfers is append-only; TRUNCATE"));
  // (Later migrations add more tables referencing transfers; CASCADE includes them all.)
  EXPECT_THAT(RunSql("TRUNCATE ledger_holds, ledger_transfers CASCADE"),
              StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("ledger_transfers"), 1);
  EXPECT_EQ(Count("ledger_holds"), 1);
}

// ---------------------------------------------------------------------------------------------
// ledger_holds

TEST_F(LedgerSchemaTest, ValidHoldIsStoredOpen) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold, .amount_fen = 500})), Accepted());
  ASSERT_THAT(ErrorOf("INSERT INTO ledger_holds (transfer_id, program_id, debit_account_id, "
                      "credit_account_id, amount_fen) SELECT id, program_id, debit_account_id, "
                      "credit_account_id, amount_fen FROM ledger_transfers WHERE id = 1"),
              Accepted());
  EXPECT_EQ(HoldState(1), "0/0/open");
  EXPECT_TRUE(Scalar<bool>("SELECT expires_at IS NULL FROM ledger_holds"));
  EXPECT_EQ(Scalar<int64_t>("SELECT amount_fen FROM ledger_holds"), 500);
}

TEST_F(LedgerSchemaTest, OpenHoldAdvancesThenResolvesOnce) {
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1, 100));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 30 WHERE transfer_id = 1"), Accepted());
  EXPECT_EQ(HoldState(1), "30/0/open");
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 50, released_fen = 10"), Accepted());
  EXPECT_EQ(HoldState(1), "50/10/open");
  // Staying put is allowed while open.
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 50"), Accepted());
  EXPECT_THAT(
      ErrorOf("UPDATE ledger_holds SET posted_fen = 70, released_fen = 30, resolved = true"),
      Accepted());
  EXPECT_EQ(HoldState(1), "70/30/resolved");
  // Resolved: no update at all, not even one that changes nothing.
  const char* kRefused = "HOLD_ALREADY_RESOLVED: hold 1 is resolved";
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET resolved = true"),
              RefusedByTrigger("VC002", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 100, released_fen = 0"),
              RefusedByTrigger("VC002", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 0, released_fen = 0, resolved = false"),
              RefusedByTrigger("VC002", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET expires_at = NULL"),
              RefusedByTrigger("VC002", kRefused));
  EXPECT_THAT(RunSql("UPDATE ledger_holds SET released_fen = 30"),
              StatusIs(kFailedPrecondition, "HOLD_ALREADY_RESOLVED"));
  EXPECT_EQ(HoldState(1), "70/30/resolved");
}

TEST_F(LedgerSchemaTest, HoldCanBeResolvedInOneStep) {
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1, 100));
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(2, 100));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 100, resolved = true "
                      "WHERE transfer_id = 1"),
              Accepted());
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET released_fen = 100, resolved = true "
                      "WHERE transfer_id = 2"),
              Accepted());
  EXPECT_EQ(HoldState(1), "100/0/resolved");
  EXPECT_EQ(HoldState(2), "0/100/resolved");
  // Inserted already resolved is consistent too.
  ASSERT_THAT(ErrorOf(TransferSql({.id = 3, .kind = kHold})), Accepted());
  EXPECT_THAT(
      ErrorOf(HoldSql({.transfer_id = 3, .posted_fen = 40, .released_fen = 60, .resolved = true})),
      Accepted());
}

TEST_F(LedgerSchemaTest, HoldAmountsMustBeValid) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  // (resolved = true keeps holds_resolved_iff_exhausted satisfied for a zero amount.)
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 0, .resolved = true})),
              RefusedBy("holds_amount_positive"));
  EXPECT_THAT(ErrorOf(HoldSql({.posted_fen = -1})), RefusedBy("holds_posted_nonnegative"));
  EXPECT_THAT(ErrorOf(HoldSql({.released_fen = -1})), RefusedBy("holds_released_nonnegative"));
  EXPECT_EQ(Count("ledger_holds"), 0);
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 100})), Accepted());
}

TEST_F(LedgerSchemaTest, HoldCannotPostAndReleaseMoreThanItsAmount) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 60, .released_fen = 50})),
              RefusedBy("holds_resolved_at_most_once"));
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 101})),
              RefusedBy("holds_resolved_at_most_once"));
  ASSERT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 60})), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET released_fen = 41"),
              RefusedBy("holds_resolved_at_most_once"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 150"),
              RefusedBy("holds_resolved_at_most_once"));
  EXPECT_THAT(RunSql("UPDATE ledger_holds SET posted_fen = 150"),
              StatusIs(kFailedPrecondition, "CONSTRAINT_VIOLATED"));
  EXPECT_EQ(HoldState(1), "60/0/open");
}

TEST_F(LedgerSchemaTest, HoldResolvedFlagMustMatchAmounts) {
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 50, .resolved = true})),
              RefusedBy("holds_resolved_iff_exhausted"));
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 100, .resolved = false})),
              RefusedBy("holds_resolved_iff_exhausted"));
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 30, .released_fen = 70})),
              RefusedBy("holds_resolved_iff_exhausted"));
  ASSERT_THAT(ErrorOf(HoldSql({.amount_fen = 100, .posted_fen = 30})), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET resolved = true"),
              RefusedBy("holds_resolved_iff_exhausted"));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET released_fen = 70"),
              RefusedBy("holds_resolved_iff_exhausted"));
  EXPECT_EQ(HoldState(1), "30/0/open");
}

TEST_F(LedgerSchemaTest, OpenHoldOnlyMovesForward) {
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1, 100));
  ASSERT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 30, released_fen = 10"), Accepted());
  const int64_t other = InsertAccount({});
  const char* kRefused = "HOLD_IMMUTABLE: hold 1 may only post or release more";
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 29"),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET released_fen = 0"),
              RefusedByTrigger("VC003", kRefused));
  // Moving posted into released (or back) takes something back.
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 20, released_fen = 20"),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET amount_fen = 200"),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET amount_fen = 40"),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE ledger_holds SET debit_account_id = ", other)),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf(absl::StrCat("UPDATE ledger_holds SET credit_account_id = ", other)),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET expires_at = expires_at + interval '1 day'"),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(ErrorOf("UPDATE ledger_holds SET expires_at = NULL"),
              RefusedByTrigger("VC003", kRefused));
  EXPECT_THAT(RunSql("UPDATE ledger_holds SET posted_fen = 0"),
              StatusIs(kFailedPrecondition, "HOLD_IMMUTABLE"));
  EXPECT_EQ(HoldState(1), "30/10/open");
  EXPECT_TRUE(Scalar<bool>(absl::StrCat(
      "SELECT amount_fen = 100 AND debit_account_id = ", debit_, " AND credit_account_id = ",
      credit_, " AND expires_at = '2030-01-01T00:00:00Z' FROM ledger_holds")));
}

TEST_F(LedgerSchemaTest, OpenHoldKeepsItsTransferAndProgram) {
  // "hold % may only post or release more": an open hold cannot be moved to another transfer
  // (which also makes the original hold row disappear) or another program.
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1, 100));
  ASSERT_THAT(ErrorOf(TransferSql({.id = 2, .kind = kHold})), Accepted());
  EXPECT_THAT(RunSql("UPDATE ledger_holds SET transfer_id = 2 WHERE transfer_id = 1"),
              StatusIs(kFailedPrecondition));
  EXPECT_THAT(RunSql("UPDATE ledger_holds SET program_id = 'p2' WHERE transfer_id = 1"),
              StatusIs(kFailedPrecondition));
  EXPECT_EQ(Scalar<std::string>("SELECT transfer_id || '/' || program_id FROM ledger_holds"),
            "1/p1");
}

TEST_F(LedgerSchemaTest, HoldsAreNeverDeleted) {
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1, 100));
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(2, 100));
  ASSERT_THAT(ErrorOf("UPDATE ledger_holds SET posted_fen = 100, resolved = true "
                      "WHERE transfer_id = 2"),
              Accepted());
  const char* kRefused = "APPEND_ONLY: ledger_holds rows are never deleted";
  EXPECT_THAT(ErrorOf("DELETE FROM ledger_holds WHERE transfer_id = 1"),
              RefusedByTrigger("VC001", kRefused));
  EXPECT_THAT(ErrorOf("DELETE FROM ledger_holds WHERE transfer_id = 2"),
              RefusedByTrigger("VC001", kRefused));
  EXPECT_THAT(RunSql("DELETE FROM ledger_holds"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("ledger_holds"), 2);
}

TEST_F(LedgerSchemaTest, HoldsCannotBeTruncated) {
  // "hold rows are never deleted" holds for TRUNCATE as well.
  ASSERT_NO_FATAL_FAILURE(CreateOpenHold(1, 100));
  EXPECT_THAT(RunSql("TRUNCATE ledger_holds"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("ledger_holds"), 1);
}

TEST_F(LedgerSchemaTest, HoldMustBeTheStateOfItsHoldTransfer) {
  // ledger_holds_insert_check, once per statement: the hold row's transfer is a HOLD with the
  // same program, accounts and amount.
  ASSERT_THAT(ErrorOf(TransferSql({.id = 1, .kind = kHold})), Accepted());
  ASSERT_THAT(ErrorOf(TransferSql({.id = 2})), Accepted());  // an AWARD
  const int64_t third = InsertAccount({.kind = "LAPSED", .owner = ""});
  auto refused = [](int64_t id) {
    return RefusedByTrigger(
        "VC007", absl::StrCat("HOLD_TRANSFER_MISMATCH: hold ", id,
                              " is not the state of a HOLD transfer with its program, accounts "
                              "and amount"));
  };
  EXPECT_THAT(ErrorOf(HoldSql({.transfer_id = kMissingId})), refused(kMissingId));
  EXPECT_THAT(ErrorOf(HoldSql({.transfer_id = 2})), refused(2));
  EXPECT_THAT(ErrorOf(HoldSql({.debit_account_id = kMissingId})), refused(1));
  EXPECT_THAT(ErrorOf(HoldSql({.debit_account_id = third})), refused(1));
  EXPECT_THAT(ErrorOf(HoldSql({.credit_account_id = third})), refused(1));
  EXPECT_THAT(ErrorOf(HoldSql({.amount_fen = 99})), refused(1));
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(HoldSql({}), {{"'p1'", "'p2'"}})), refused(1));
  EXPECT_THAT(RunSql(HoldSql({.amount_fen = 99})),
              StatusIs(kFailedPrecondition, "HOLD_TRANSFER_MISMATCH"));
  EXPECT_EQ(Count("ledger_holds"), 0);
  ASSERT_THAT(ErrorOf(HoldSql({})), Accepted());
  // One hold row per transfer.
  EXPECT_THAT(ErrorOf(HoldSql({})), RefusedBy("ledger_holds_pkey"));
  EXPECT_THAT(RunSql(HoldSql({})), StatusIs(kAlreadyExists, "ALREADY_EXISTS"));
  EXPECT_EQ(Count("ledger_holds"), 1);
}

// ---------------------------------------------------------------------------------------------
// idempotency_keys

TEST_F(LedgerSchemaTest, ValidIdempotencyKeyIsStored) {
  ASSERT_THAT(ErrorOf(IdempotencyKeySql("issue", "r1")), Accepted());
  pqxx::result r = Query(
      "SELECT request_hash, encode(response, 'hex'), created_at IS NOT NULL FROM "
      "idempotency_keys WHERE scope = 'issue' AND request_id = 'r1'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "sha256:ab");
  EXPECT_EQ(r[0][1].as<std::string>(), "0a0b");
  EXPECT_TRUE(r[0][2].as<bool>());
}

TEST_F(LedgerSchemaTest, IdempotencyRequestIdMustBeNonEmptyAndAtMost128Characters) {
  EXPECT_THAT(ErrorOf(IdempotencyKeySql("issue", "")), RefusedBy("idempotency_request_id_valid"));
  EXPECT_THAT(ErrorOf(IdempotencyKeySql("issue", std::string(129, 'a'))),
              RefusedBy("idempotency_request_id_valid"));
  EXPECT_THAT(ErrorOf(IdempotencyKeySql("issue", std::string(128, 'a'))), Accepted());
  EXPECT_THAT(ErrorOf(IdempotencyKeySql("issue", "a")), Accepted());
  EXPECT_EQ(Count("idempotency_keys"), 2);
}

TEST_F(LedgerSchemaTest, IdempotencyKeyIsUsedOnce) {
  ASSERT_THAT(ErrorOf(IdempotencyKeySql("issue", "r1")), Accepted());
  EXPECT_THAT(ErrorOf(IdempotencyKeySql("issue", "r1")), RefusedBy("idempotency_keys_pkey"));
  EXPECT_THAT(RunSql(IdempotencyKeySql("issue", "r1")),
              StatusIs(kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  // Keys are per scope.
  EXPECT_THAT(ErrorOf(IdempotencyKeySql("redeem", "r1")), Accepted());
  EXPECT_EQ(Count("idempotency_keys"), 2);
}

TEST_F(LedgerSchemaTest, IdempotencyKeyReuseRollsBackTheEffect) {
  // The key is committed in the same transaction as the transfer it records (AIP-155).
  ASSERT_THAT(RunSql(TransferSql({.id = 1, .request_scope = "issue", .request_id = "r1"}) + "; " +
                     IdempotencyKeySql("issue", "r1")),
              IsOk());
  EXPECT_THAT(RunSql(TransferSql({.id = 2, .request_scope = "other", .request_id = "r1"}) + "; " +
                     IdempotencyKeySql("issue", "r1")),
              StatusIs(kAlreadyExists, "IDEMPOTENCY_KEY_REUSED"));
  EXPECT_EQ(Count("ledger_transfers"), 1);
  EXPECT_EQ(Count("idempotency_keys"), 1);
}

TEST_F(LedgerSchemaTest, IdempotencyKeysRefuseUpdateAndDelete) {
  ASSERT_THAT(ErrorOf(IdempotencyKeySql("issue", "r1")), Accepted());
  EXPECT_THAT(ErrorOf("UPDATE idempotency_keys SET response = '\\x00'::bytea"),
              RefusedByTrigger("VC001", "APPEND_ONLY: idempotency_keys is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("UPDATE idempotency_keys SET request_hash = request_hash"),
              RefusedByTrigger("VC001", "APPEND_ONLY: idempotency_keys is append-only; UPDATE"));
  EXPECT_THAT(ErrorOf("DELETE FROM idempotency_keys WHERE request_id = 'r1'"),
              RefusedByTrigger("VC001", "APPEND_ONLY: idempotency_keys is append-only; DELETE"));
  EXPECT_THAT(RunSql("UPDATE idempotency_keys SET request_hash = 'sha256:cd'"),
              StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_THAT(RunSql("DELETE FROM idempotency_keys"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Scalar<std::string>(
                "SELECT request_hash || '/' || encode(response, 'hex') FROM idempotency_keys"),
            "sha256:ab/0a0b");
}

TEST_F(LedgerSchemaTest, IdempotencyKeysCannotBeTruncated) {
  // The table is append-only (idempotency_keys_append_only); V0001 says append-only tables
  // guard TRUNCATE as well.
  ASSERT_THAT(ErrorOf(IdempotencyKeySql("issue", "r1")), Accepted());
  EXPECT_THAT(RunSql("TRUNCATE idempotency_keys"), StatusIs(kFailedPrecondition, "APPEND_ONLY"));
  EXPECT_EQ(Count("idempotency_keys"), 1);
}

}  // namespace
}  // namespace vch::storage
