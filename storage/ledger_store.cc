#include "storage/ledger_store.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "storage/sql_arrays.h"

namespace vch::storage {
namespace {

using policy::AccountState;
using policy::LedgerReadScope;

constexpr char kAccountColumns[] =
    "id, flags, debits_pending_fen, debits_posted_fen, credits_pending_fen, credits_posted_fen, "
    "program_id, issuer_id, kind, owner, (extract(epoch FROM created_at) * 1000000)::bigint";

// $1 all, $2 issuer, $3 owner, $4 owner kinds: the visibility rule of policy::LedgerReadScope.
constexpr char kVisible[] =
    "($1::boolean OR (issuer_id = $2 AND $2 <> '') OR "
    "(owner = $3 AND $3 <> '' AND kind = ANY($4::text[])))";

constexpr char kInsertAccount[] =
    "INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner, flags) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT accounts_one_per_kind_and_owner "
    "DO NOTHING";
// A statement of its own after the insert: under READ COMMITTED it sees an account a
// concurrent transaction inserted while this one waited.
const std::string kFindAccount =
    absl::StrCat("SELECT ", kAccountColumns,
                 " FROM ledger_accounts WHERE program_id = $1 AND kind = $2 AND owner = $3");

const std::string kGetAccount =
    absl::StrCat("SELECT ", kAccountColumns, " FROM ledger_accounts WHERE id = $5 AND ", kVisible);

constexpr char kTransferColumns[] = R"sql(
  id, program_id, kind, debit_account_id, credit_account_id, amount_fen, released_fen,
  COALESCE(pending_id, 0), COALESCE((extract(epoch FROM expires_at) * 1000000)::bigint, 0),
  request_id, metadata::text, (extract(epoch FROM created_at) * 1000000)::bigint,
  debit_debits_pending_fen, debit_debits_posted_fen, debit_credits_pending_fen,
  debit_credits_posted_fen, credit_debits_pending_fen, credit_debits_posted_fen,
  credit_credits_pending_fen, credit_credits_posted_fen)sql";

// $1 account (0 = any), $2 kind (0 = any), $3/$4 time range in unix micros, $5 after id, $6 limit.
const std::string kListTransfers = absl::StrCat("SELECT ", kTransferColumns, R"sql(
FROM ledger_transfers
WHERE ($1 = 0 OR debit_account_id = $1 OR credit_account_id = $1)
  AND ($2 = 0 OR kind = $2)
  AND created_at >= timestamptz 'epoch' + $3::bigint * interval '1 microsecond'
  AND created_at < timestamptz 'epoch' + $4::bigint * interval '1 microsecond'
  AND id > $5
ORDER BY id LIMIT $6)sql");

// The last transfer touching the account at or before $2, from either side.
constexpr char kBalanceAt[] = R"sql(
SELECT id, dp, dpo, cp, cpo FROM (
  (SELECT id, debit_debits_pending_fen dp, debit_debits_posted_fen dpo,
          debit_credits_pending_fen cp, debit_credits_posted_fen cpo
   FROM ledger_transfers
   WHERE debit_account_id = $1
     AND created_at <= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
   ORDER BY id DESC LIMIT 1)
  UNION ALL
  (SELECT id, credit_debits_pending_fen, credit_debits_posted_fen,
          credit_credits_pending_fen, credit_credits_posted_fen
   FROM ledger_transfers
   WHERE credit_account_id = $1
     AND created_at <= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
   ORDER BY id DESC LIMIT 1)) last
ORDER BY id DESC LIMIT 1)sql";

// Clamps absl time bounds to what timestamptz holds.
int64_t ToMicrosClamped(absl::Time t) {
  constexpr int64_t kMin = -62135596800000000;  // year 1
  constexpr int64_t kMax = 253402300799000000;  // year 9999
  if (t == absl::InfinitePast()) return kMin;
  if (t == absl::InfiniteFuture()) return kMax;
  return std::clamp(absl::ToUnixMicros(t), kMin, kMax);
}

AccountRecord AccountFromRow(const pqxx::row& row) {
  AccountRecord a;
  a.state.id = row[0].as<int64_t>();
  a.state.flags = row[1].as<uint32_t>();
  a.state.debits_pending_fen = row[2].as<int64_t>();
  a.state.debits_posted_fen = row[3].as<int64_t>();
  a.state.credits_pending_fen = row[4].as<int64_t>();
  a.state.credits_posted_fen = row[5].as<int64_t>();
  a.program_id = row[6].as<std::string>();
  a.issuer_id = row[7].as<std::string>();
  a.kind = row[8].as<std::string>();
  a.owner = row[9].as<std::string>();
  a.created_at = absl::FromUnixMicros(row[10].as<int64_t>());
  return a;
}

absl::Status AccountNotFound(int64_t id) {
  return DomainError(absl::StatusCode::kNotFound, "ACCOUNT_NOT_FOUND",
                     absl::StrCat("account ", id, " not found"));
}

bool ValidKey(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<AccountRecord> EnsureAccount(PgPool& pool, const NewAccount& account) {
  ViolationCollector v;
  if (!ValidKey(account.program_id)) v.Add("program_id", "must be 1-64 of [A-Za-z0-9._-]");
  if (!ValidKey(account.issuer_id)) v.Add("issuer_id", "must be 1-64 of [A-Za-z0-9._-]");
  static const char* kKinds[] = {"TREASURY", "BUDGET", "WALLET", "RECEIVABLE",
                                 "PAID",     "LAPSED", "PAYABLE"};
  if (std::find(std::begin(kKinds), std::end(kKinds), account.kind) == std::end(kKinds)) {
    v.Add("kind", "must be one of TREASURY, BUDGET, WALLET, RECEIVABLE, PAID, LAPSED, PAYABLE");
  }
  if (!account.owner.empty() && !ValidKey(account.owner)) {
    v.Add("owner", "must be empty or 1-64 of [A-Za-z0-9._-]");
  }
  VCH_RETURN_IF_ERROR(v.Finish());
  const int flags = account.no_overdraft ? static_cast<int>(policy::kAccountNoOverdraft) : 0;
  AccountRecord record;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    tx.exec_params0(kInsertAccount, account.program_id, account.issuer_id, account.kind,
                    account.owner, flags);
    record = AccountFromRow(
        tx.exec_params1(kFindAccount, account.program_id, account.kind, account.owner));
    return absl::OkStatus();
  }));
  if (static_cast<int>(record.state.flags) != flags || record.issuer_id != account.issuer_id) {
    return DomainError(
        absl::StatusCode::kAlreadyExists, "ACCOUNT_EXISTS",
        absl::StrCat("account ", record.state.id, " exists with a different issuer or flags"));
  }
  return record;
}

absl::StatusOr<AccountRecord> GetAccount(PgPool& pool, int64_t account_id,
                                         const LedgerReadScope& scope) {
  std::optional<AccountRecord> record;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    pqxx::result r = tx.exec_params(kGetAccount, scope.all, scope.issuer, scope.owner,
                                    TextArray(scope.owner_kinds), account_id);
    if (!r.empty()) record = AccountFromRow(r[0]);
    return absl::OkStatus();
  }));
  if (!record) return AccountNotFound(account_id);
  return *record;
}

absl::StatusOr<std::vector<TransferRecord>> ListTransfers(PgPool& pool,
                                                          const TransferFilter& filter,
                                                          const LedgerReadScope& scope) {
  ViolationCollector v;
  if (filter.page_size < 1 || filter.page_size > kMaxTransfersPerQuery) {
    v.Add("page_size", absl::StrCat("must be 1..", kMaxTransfersPerQuery));
  }
  if (filter.end <= filter.start) v.Add("time_range", "end must be after start");
  if (filter.account_id < 0) v.Add("account", "must be a positive id");
  if (!scope.all && filter.account_id == 0) {
    v.Add("account", "required: list the transfers of one of your accounts");
  }
  VCH_RETURN_IF_ERROR(v.Finish());
  if (filter.account_id != 0) {
    VCH_RETURN_IF_ERROR(GetAccount(pool, filter.account_id, scope).status());
  }
  std::vector<TransferRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& row : tx.exec_params(
             kListTransfers, filter.account_id, filter.kind ? static_cast<int>(*filter.kind) : 0,
             ToMicrosClamped(filter.start), ToMicrosClamped(filter.end), filter.after_id,
             filter.page_size)) {
      TransferRecord t;
      t.id = row[0].as<int64_t>();
      t.program_id = row[1].as<std::string>();
      t.kind = static_cast<policy::TransferKind>(row[2].as<int>());
      t.debit_account_id = row[3].as<int64_t>();
      t.credit_account_id = row[4].as<int64_t>();
      t.amount_fen = row[5].as<int64_t>();
      t.released_fen = row[6].as<int64_t>();
      t.pending_id = row[7].as<int64_t>();
      if (int64_t us = row[8].as<int64_t>(); us != 0) t.expires_at = absl::FromUnixMicros(us);
      t.request_id = row[9].as<std::string>();
      t.metadata_json = row[10].as<std::string>();
      t.created_at = absl::FromUnixMicros(row[11].as<int64_t>());
      AccountState* sides[2] = {&t.debit_after, &t.credit_after};
      sides[0]->id = t.debit_account_id;
      sides[1]->id = t.credit_account_id;
      for (int s = 0; s < 2; ++s) {
        sides[s]->debits_pending_fen = row[12 + 4 * s].as<int64_t>();
        sides[s]->debits_posted_fen = row[13 + 4 * s].as<int64_t>();
        sides[s]->credits_pending_fen = row[14 + 4 * s].as<int64_t>();
        sides[s]->credits_posted_fen = row[15 + 4 * s].as<int64_t>();
      }
      out.push_back(std::move(t));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<BalanceAt> GetBalanceAt(PgPool& pool, int64_t account_id, absl::Time at,
                                       const LedgerReadScope& scope) {
  VCH_ASSIGN_OR_RETURN(AccountRecord account, GetAccount(pool, account_id, scope));
  BalanceAt out;
  out.balance.id = account_id;
  out.balance.flags = account.state.flags;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    pqxx::result r = tx.exec_params(kBalanceAt, account_id, ToMicrosClamped(at));
    if (!r.empty()) {
      out.last_transfer_id = r[0][0].as<int64_t>();
      out.balance.debits_pending_fen = r[0][1].as<int64_t>();
      out.balance.debits_posted_fen = r[0][2].as<int64_t>();
      out.balance.credits_pending_fen = r[0][3].as<int64_t>();
      out.balance.credits_posted_fen = r[0][4].as<int64_t>();
    }
    return absl::OkStatus();
  }));
  return out;
}

namespace {

// Each check returns rows of (subject, detail) describing violations.
struct Check {
  const char* invariant;
  const char* sql;
};

// Per transfer kind, its effect on the debit side's and credit side's totals:
// posted kinds move posted totals; HOLD adds pending; POST converts pending to posted and
// releases the rest; VOID and hold EXPIRE release pending.
#define VCH_PENDING_EFFECT                                                              \
  "CASE WHEN kind = 3 THEN amount_fen WHEN kind = 4 THEN -(amount_fen + released_fen) " \
  "WHEN kind = 5 OR (kind = 6 AND pending_id IS NOT NULL) THEN -amount_fen ELSE 0 END"
#define VCH_POSTED_EFFECT                                                                      \
  "CASE WHEN kind IN (1, 2, 4, 7, 8, 9) OR (kind = 6 AND pending_id IS NULL) THEN amount_fen " \
  "ELSE 0 END"

constexpr Check kChecks[] = {
    {"invariant 1: debits equal credits over all accounts",
     "SELECT 'ledger', format('posted debits - credits = %s, pending debits - credits = %s', "
     "sum(debits_posted_fen) - sum(credits_posted_fen), "
     "sum(debits_pending_fen) - sum(credits_pending_fen)) FROM ledger_accounts "
     "HAVING sum(debits_posted_fen) <> sum(credits_posted_fen) "
     "OR sum(debits_pending_fen) <> sum(credits_pending_fen)"},
    {"invariant 1: every transfer moves a positive amount between two accounts",
     "SELECT 'transfer ' || id, 'amount or accounts invalid' FROM ledger_transfers "
     "WHERE amount_fen <= 0 OR debit_account_id = credit_account_id"},
    {"invariant 2: no-overdraft accounts never below zero",
     "SELECT 'account ' || id, format('available %s', "
     "credits_posted_fen - debits_posted_fen - debits_pending_fen) FROM ledger_accounts "
     "WHERE flags & 1 = 1 AND credits_posted_fen - debits_posted_fen - debits_pending_fen < 0"},
    {"invariant 3: holds resolved at most once and matching their transfers",
     "SELECT 'hold ' || h.transfer_id, format('posted %s/%s released %s/%s amount %s/%s', "
     "h.posted_fen, COALESCE(t.posted, 0), h.released_fen, COALESCE(t.released, 0), "
     "h.amount_fen, ht.amount_fen) "
     "FROM ledger_holds h JOIN ledger_transfers ht ON ht.id = h.transfer_id "
     "LEFT JOIN (SELECT pending_id, sum(CASE WHEN kind = 4 THEN amount_fen ELSE 0 END) posted, "
     "  sum(CASE WHEN kind = 4 THEN released_fen ELSE amount_fen END) released "
     "  FROM ledger_transfers WHERE pending_id IS NOT NULL GROUP BY pending_id) t "
     "ON t.pending_id = h.transfer_id "
     "WHERE ht.kind <> 3 OR ht.amount_fen <> h.amount_fen "
     "OR COALESCE(t.posted, 0) <> h.posted_fen OR COALESCE(t.released, 0) <> h.released_fen "
     "OR h.posted_fen + h.released_fen > h.amount_fen "
     "OR h.resolved <> (h.posted_fen + h.released_fen = h.amount_fen)"},
    {"invariant 3: every HOLD has its hold row",
     "SELECT 'transfer ' || t.id, 'HOLD without a hold row' FROM ledger_transfers t "
     "LEFT JOIN ledger_holds h ON h.transfer_id = t.id WHERE t.kind = 3 AND h.transfer_id IS NULL"},
    {"invariant 5: every settlement within the subsidy ratio",
     "SELECT 'usage ' || redemption_id || '/' || usage_id, format('subsidy %s bill %s ratio %s', "
     "subsidy_fen, bill_fen, ratio_bps) FROM usage_records "
     "WHERE subsidy_fen::numeric * 10000 > bill_fen::numeric * ratio_bps "
     "OR bill_fen <> subsidy_fen + copay_fen"},
    {"invariant 5: each redemption's credit hold posted exactly what its usage settled",
     "SELECT 'redemption ' || r.id, format('settled %s (%s in its row), hold posted %s', "
     "COALESCE(u.subsidy, 0), r.subsidy_fen, h.posted_fen) FROM redemptions r "
     "JOIN ledger_holds h ON h.transfer_id = r.hold_transfer_id "
     "LEFT JOIN (SELECT redemption_id, sum(subsidy_fen) subsidy, sum(bill_fen) bill, count(*) n "
     "  FROM usage_records GROUP BY redemption_id) u ON u.redemption_id = r.id "
     "WHERE COALESCE(u.subsidy, 0) <> h.posted_fen OR COALESCE(u.subsidy, 0) <> r.subsidy_fen "
     "OR COALESCE(u.bill, 0) <> r.billed_fen OR COALESCE(u.n, 0) <> r.usage_records"},
    {"invariant 5: each payout paid exactly its lines",
     "SELECT 'payout ' || p.id, format('amount %s, lines add up to %s', p.amount_fen, "
     "COALESCE(l.total, 0)) FROM payouts p JOIN ledger_transfers t ON t.id = p.transfer_id "
     "LEFT JOIN (SELECT pl.payout_id, sum(u.subsidy_fen) total FROM payout_lines pl "
     "  JOIN usage_records u USING (redemption_id, usage_id) GROUP BY pl.payout_id) l "
     "  ON l.payout_id = p.id "
     "WHERE COALESCE(l.total, 0) <> p.amount_fen OR t.amount_fen <> p.amount_fen OR t.kind <> 7"},
    {"invariant 6: each request id takes effect once",
     "SELECT request_scope || '/' || request_id, count(*)::text FROM ledger_transfers "
     "GROUP BY request_scope, request_id HAVING count(*) > 1"},
    // A redemption's credit hold is recorded by the redemption itself (its key is
    // "hold-<redemption id>", which only that redemption's batch ever uses), and a usage
    // record's POST or VOID by the usage record ("usage-<settlement seq>").
    {"invariant 6: every transfer has its idempotency record",
     "SELECT 'transfer ' || t.id, 'no idempotency record' FROM ledger_transfers t "
     "LEFT JOIN idempotency_keys k ON k.scope = t.request_scope AND k.request_id = t.request_id "
     "WHERE k.request_id IS NULL AND NOT EXISTS (SELECT 1 FROM redemptions r "
     "WHERE r.hold_transfer_id = t.id AND t.request_scope = 'system.redemption' "
     "AND t.request_id = 'hold-' || r.id) AND NOT EXISTS (SELECT 1 FROM usage_records u "
     "WHERE u.post_transfer_id = t.id AND t.request_scope = 'system.redemption' "
     "AND t.request_id = 'usage-' || u.seq) AND NOT EXISTS (SELECT 1 FROM usage_records u "
     "WHERE u.release_transfer_id = t.id AND t.request_scope = 'system.redemption' "
     "AND t.request_id = 'usage-' || u.seq)"},
    {"invariant 7: append-only triggers in place",
     "SELECT 'trigger ' || name, 'missing or disabled' FROM unnest(ARRAY["
     "'ledger_transfers_append_only', 'ledger_transfers_no_truncate', "
     "'ledger_holds_forward_only', 'ledger_holds_no_truncate', 'idempotency_keys_append_only', "
     "'idempotency_keys_no_truncate', 'usage_records_append_only', 'usage_records_no_truncate', "
     "'payouts_append_only', 'payout_lines_append_only', 'redemptions_guard']) AS name "
     "WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = name AND tgenabled <> 'D')"},
    {"invariant 8: stored balances equal balances recomputed from transfers",
     "WITH effects AS ("
     "  SELECT debit_account_id AS id, " VCH_PENDING_EFFECT " AS dp, " VCH_POSTED_EFFECT
     "  AS dpo, 0::bigint AS cp, 0::bigint AS cpo FROM ledger_transfers"
     "  UNION ALL"
     "  SELECT credit_account_id, 0, 0, " VCH_PENDING_EFFECT ", " VCH_POSTED_EFFECT
     "  FROM ledger_transfers),"
     " sums AS (SELECT id, sum(dp) dp, sum(dpo) dpo, sum(cp) cp, sum(cpo) cpo FROM effects"
     "  GROUP BY id) "
     "SELECT 'account ' || a.id, format('stored %s/%s/%s/%s recomputed %s/%s/%s/%s', "
     "a.debits_pending_fen, a.debits_posted_fen, a.credits_pending_fen, a.credits_posted_fen, "
     "COALESCE(s.dp, 0), COALESCE(s.dpo, 0), COALESCE(s.cp, 0), COALESCE(s.cpo, 0)) "
     "FROM ledger_accounts a LEFT JOIN sums s ON s.id = a.id "
     "WHERE COALESCE(s.dp, 0) <> a.debits_pending_fen OR COALESCE(s.dpo, 0) <> a.debits_posted_fen "
     "OR COALESCE(s.cp, 0) <> a.credits_pending_fen OR COALESCE(s.cpo, 0) <> a.credits_posted_fen"},
    {"invariant 8: the balance recorded by each account's last transfer is its stored balance",
     "SELECT 'account ' || a.id, format('last transfer %s recorded %s/%s/%s/%s', last.id, "
     "last.dp, last.dpo, last.cp, last.cpo) FROM ledger_accounts a "
     "JOIN LATERAL (SELECT * FROM ("
     "  (SELECT id, debit_debits_pending_fen dp, debit_debits_posted_fen dpo, "
     "   debit_credits_pending_fen cp, debit_credits_posted_fen cpo FROM ledger_transfers "
     "   WHERE debit_account_id = a.id ORDER BY id DESC LIMIT 1) UNION ALL "
     "  (SELECT id, credit_debits_pending_fen, credit_debits_posted_fen, "
     "   credit_credits_pending_fen, credit_credits_posted_fen FROM ledger_transfers "
     "   WHERE credit_account_id = a.id ORDER BY id DESC LIMIT 1)) x ORDER BY id DESC LIMIT 1) "
     "last "
     "ON true WHERE last.dp <> a.debits_pending_fen OR last.dpo <> a.debits_posted_fen "
     "OR last.cp <> a.credits_pending_fen OR last.cpo <> a.credits_posted_fen"},
};

#undef VCH_PENDING_EFFECT
#undef VCH_POSTED_EFFECT

}  // namespace

absl::StatusOr<LedgerVerification> VerifyLedger(PgPool& pool) {
  LedgerVerification report;
  VCH_RETURN_IF_ERROR(RunTransaction(
      pool,
      [&](pqxx::dbtransaction& tx) {
        tx.exec0("SET TRANSACTION READ ONLY");
        report = LedgerVerification{};
        report.accounts = tx.exec("SELECT count(*) FROM ledger_accounts")[0][0].as<int64_t>();
        report.transfers = tx.exec("SELECT count(*) FROM ledger_transfers")[0][0].as<int64_t>();
        report.holds = tx.exec("SELECT count(*) FROM ledger_holds")[0][0].as<int64_t>();
        for (const Check& check : kChecks) {
          for (const pqxx::row& row : tx.exec(check.sql)) {
            report.violations.push_back(absl::StrCat(
                check.invariant, ": ", row[0].as<std::string>(), ": ", row[1].as<std::string>()));
          }
        }
        return absl::OkStatus();
      },
      {.serializable = true}));
  return report;
}

}  // namespace vch::storage
