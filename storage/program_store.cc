#include "storage/program_store.h"

#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/errors.h"
#include "base/json_log.h"
#include "base/status_macros.h"
#include "storage/ledger_store.h"
#include "storage/ledger_tx.h"
#include "storage/sql_arrays.h"

namespace vch::storage {
namespace {

using policy::ProgramRules;
using policy::ProgramState;

// --- Queries. ---

constexpr char kInsertIssuer[] = R"sql(
INSERT INTO issuers (id, display_name, region_code, level) VALUES ($1, $2, $3, $4)
RETURNING vch_us(created_at))sql";

constexpr char kIssuerColumns[] = "id, display_name, region_code, level, vch_us(created_at)";

constexpr char kProgramSelect[] = R"sql(
SELECT p.id, p.issuer_id, p.state, p.display_name, p.category, p.planned_budget_fen,
       p.subsidy_ratio_bps, p.per_enterprise_cap_fen, p.max_award_fen, p.monthly_spend_limit_fen,
       array_to_string(p.eligible_kinds, ','), array_to_string(p.eligible_sizes, ','),
       p.local_enterprises_only, vch_us(p.application_start), vch_us(p.application_end),
       vch_us(p.redemption_start), vch_us(p.redemption_end), p.datacenter_scope,
       array_to_string(p.datacenter_ids, ','), array_to_string(p.allowed_accelerators, ','),
       p.domestic_ratio_bps, p.price_ceiling_fen_per_gpu_hour, t.debits_posted_fen,
       b.credits_posted_fen - b.debits_posted_fen - b.debits_pending_fen,
       p.treasury_account_id, p.budget_account_id, p.lapsed_account_id,
       vch_us(p.created_at), vch_us(p.updated_at), p.settlement_style
FROM programs p
JOIN ledger_accounts t ON t.id = p.treasury_account_id
JOIN ledger_accounts b ON b.id = p.budget_account_id)sql";

constexpr char kRulesColumns[] =
    "display_name, category, planned_budget_fen, subsidy_ratio_bps, per_enterprise_cap_fen, "
    "max_award_fen, monthly_spend_limit_fen, eligible_kinds, eligible_sizes, "
    "local_enterprises_only, application_start, application_end, redemption_start, "
    "redemption_end, datacenter_scope, datacenter_ids, allowed_accelerators, domestic_ratio_bps, "
    "price_ceiling_fen_per_gpu_hour, settlement_style";
// $1..$20 in the order of kRulesColumns.
constexpr char kRulesValues[] =
    "$1, $2, $3, $4, $5, $6, $7, $8::smallint[], $9::smallint[], $10, vch_ts($11), vch_ts($12), "
    "vch_ts($13), vch_ts($14), $15, $16::text[], $17::smallint[], $18, $19, $20";

constexpr char kEnterpriseColumns[] =
    "uscc, display_name, region_code, kind, size_class, vch_us(created_at), vch_us(updated_at)";

constexpr char kApplicationColumns[] = R"sql(
  id, program_id, issuer_id, uscc, requested_fen, purpose, state, awarded_fen, decision_reason,
  decided_by, COALESCE(award_transfer_id, 0), vch_us(submitted_at),
  COALESCE(vch_us(decided_at), 0), COALESCE(vch_us(withdrawn_at), 0))sql";

// --- Conversions. ---

template <typename Enum>
std::vector<Enum> EnumList(const std::string& csv) {
  std::vector<Enum> out;
  for (absl::string_view part : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v)) out.push_back(static_cast<Enum>(v));
  }
  return out;
}

template <typename Enum>
std::string EnumArray(const std::vector<Enum>& values) {
  std::vector<int64_t> ints;
  for (Enum v : values) ints.push_back(static_cast<int64_t>(v));
  return BigintArray(ints);
}

ProgramRecord ProgramFromRow(const pqxx::row& r) {
  ProgramRecord p;
  p.id = r[0].as<std::string>();
  p.issuer_id = r[1].as<std::string>();
  p.state = static_cast<ProgramState>(r[2].as<int>());
  ProgramRules& x = p.rules;
  x.name = r[3].as<std::string>();
  x.category = static_cast<policy::ProgramCategory>(r[4].as<int>());
  x.planned_budget_fen = r[5].as<int64_t>();
  x.subsidy_ratio_bps = r[6].as<int32_t>();
  x.per_enterprise_cap_fen = r[7].as<int64_t>();
  x.max_award_fen = r[8].as<int64_t>();
  x.monthly_spend_limit_fen = r[9].as<int64_t>();
  x.eligible_kinds = EnumList<policy::EnterpriseKind>(r[10].as<std::string>());
  x.eligible_sizes = EnumList<policy::SizeClass>(r[11].as<std::string>());
  x.local_enterprises_only = r[12].as<bool>();
  x.application_start = absl::FromUnixMicros(r[13].as<int64_t>());
  x.application_end = absl::FromUnixMicros(r[14].as<int64_t>());
  x.redemption_start = absl::FromUnixMicros(r[15].as<int64_t>());
  x.redemption_end = absl::FromUnixMicros(r[16].as<int64_t>());
  x.datacenter_scope = static_cast<policy::DatacenterScope>(r[17].as<int>());
  x.datacenter_ids = absl::StrSplit(r[18].as<std::string>(), ',', absl::SkipEmpty());
  x.allowed_accelerators = EnumList<policy::AcceleratorClass>(r[19].as<std::string>());
  x.domestic_ratio_bps = r[20].as<int32_t>();
  x.price_ceiling_fen_per_gpu_hour = r[21].as<int64_t>();
  p.funded_fen = r[22].as<int64_t>();
  p.budget_available_fen = r[23].as<int64_t>();
  p.treasury_account_id = r[24].as<int64_t>();
  p.budget_account_id = r[25].as<int64_t>();
  p.lapsed_account_id = r[26].as<int64_t>();
  p.created_at = absl::FromUnixMicros(r[27].as<int64_t>());
  p.updated_at = absl::FromUnixMicros(r[28].as<int64_t>());
  x.settlement_style = static_cast<policy::SettlementStyle>(r[29].as<int>());
  return p;
}

IssuerRecord IssuerFromRow(const pqxx::row& r) {
  return {r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
          static_cast<policy::IssuerLevel>(r[3].as<int>()),
          absl::FromUnixMicros(r[4].as<int64_t>())};
}

EnterpriseRecord EnterpriseFromRow(const pqxx::row& r) {
  return {r[0].as<std::string>(),
          r[1].as<std::string>(),
          r[2].as<std::string>(),
          static_cast<policy::EnterpriseKind>(r[3].as<int>()),
          static_cast<policy::SizeClass>(r[4].as<int>()),
          absl::FromUnixMicros(r[5].as<int64_t>()),
          absl::FromUnixMicros(r[6].as<int64_t>())};
}

ApplicationRecord ApplicationFromRow(const pqxx::row& r) {
  ApplicationRecord a;
  a.id = r[0].as<int64_t>();
  a.program_id = r[1].as<std::string>();
  a.issuer_id = r[2].as<std::string>();
  a.uscc = r[3].as<std::string>();
  a.requested_fen = r[4].as<int64_t>();
  a.purpose = r[5].as<std::string>();
  a.state = static_cast<ApplicationState>(r[6].as<int>());
  a.awarded_fen = r[7].as<int64_t>();
  a.decision_reason = r[8].as<std::string>();
  a.decided_by = r[9].as<std::string>();
  a.award_transfer_id = r[10].as<int64_t>();
  a.submitted_at = absl::FromUnixMicros(r[11].as<int64_t>());
  if (int64_t us = r[12].as<int64_t>(); us != 0) a.decided_at = absl::FromUnixMicros(us);
  if (int64_t us = r[13].as<int64_t>(); us != 0) a.withdrawn_at = absl::FromUnixMicros(us);
  return a;
}

absl::Status NotFound(absl::string_view what, absl::string_view id, absl::string_view reason) {
  return DomainError(absl::StatusCode::kNotFound, reason,
                     absl::StrCat(what, " ", id, " not found"));
}

// The rules as the 20 parameters of kRulesValues.
#define VCH_RULES_PARAMS(r)                                                                     \
  (r).name, static_cast<int>((r).category), (r).planned_budget_fen, (r).subsidy_ratio_bps,      \
      (r).per_enterprise_cap_fen, (r).max_award_fen, (r).monthly_spend_limit_fen,               \
      EnumArray((r).eligible_kinds), EnumArray((r).eligible_sizes), (r).local_enterprises_only, \
      absl::ToUnixMicros((r).application_start), absl::ToUnixMicros((r).application_end),       \
      absl::ToUnixMicros((r).redemption_start), absl::ToUnixMicros((r).redemption_end),         \
      static_cast<int>((r).datacenter_scope), TextArray((r).datacenter_ids),                    \
      EnumArray((r).allowed_accelerators), (r).domestic_ratio_bps,                              \
      (r).price_ceiling_fen_per_gpu_hour, static_cast<int>((r).settlement_style)

absl::StatusOr<ProgramRecord> LoadProgram(pqxx::dbtransaction& tx, const std::string& id,
                                          const std::string& issuer_scope, bool for_update) {
  pqxx::result r = tx.exec_params(
      absl::StrCat(kProgramSelect, " WHERE p.id = $1 AND ($2 = '' OR p.issuer_id = $2)",
                   for_update ? " FOR UPDATE OF p" : ""),
      id, issuer_scope);
  if (r.empty()) return NotFound("program", id, "PROGRAM_NOT_FOUND");
  return ProgramFromRow(r[0]);
}

absl::StatusOr<IssuerRecord> LoadIssuer(pqxx::dbtransaction& tx, const std::string& id) {
  pqxx::result r =
      tx.exec_params(absl::StrCat("SELECT ", kIssuerColumns, " FROM issuers WHERE id = $1"), id);
  if (r.empty()) return NotFound("issuer", id, "ISSUER_NOT_FOUND");
  return IssuerFromRow(r[0]);
}

absl::StatusOr<EnterpriseRecord> LoadEnterprise(pqxx::dbtransaction& tx, const std::string& uscc) {
  pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kEnterpriseColumns, " FROM enterprises WHERE uscc = $1"), uscc);
  if (r.empty()) return NotFound("enterprise", uscc, "ENTERPRISE_NOT_FOUND");
  return EnterpriseFromRow(r[0]);
}

absl::StatusOr<ApplicationRecord> LoadApplication(pqxx::dbtransaction& tx, int64_t id,
                                                  const ApplicationScope& scope, bool for_update) {
  pqxx::result r =
      tx.exec_params(absl::StrCat("SELECT ", kApplicationColumns,
                                  " FROM applications WHERE id = $1 AND ($2 = '' OR issuer_id = $2)"
                                  " AND ($3 = '' OR uscc = $3)",
                                  for_update ? " FOR UPDATE" : ""),
                     id, scope.issuer_id, scope.uscc);
  if (r.empty()) return NotFound("application", absl::StrCat(id), "APPLICATION_NOT_FOUND");
  return ApplicationFromRow(r[0]);
}

// Creates (or finds) a ledger account inside `tx`. Two statements on purpose: under READ
// COMMITTED a statement that waited for a concurrent insert of the same account still reads its
// old snapshot, so the lookup must be a statement of its own to see the committed row.
int64_t EnsureAccountInTx(pqxx::dbtransaction& tx, const std::string& program_id,
                          const std::string& issuer_id, const std::string& kind,
                          const std::string& owner, bool no_overdraft) {
  tx.exec_params0(
      "INSERT INTO ledger_accounts (program_id, issuer_id, kind, owner, flags) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT accounts_one_per_kind_and_owner "
      "DO NOTHING",
      program_id, issuer_id, kind, owner, no_overdraft ? 1 : 0);
  return tx
      .exec_params1(
          "SELECT id FROM ledger_accounts WHERE program_id = $1 AND kind = $2 AND owner = $3",
          program_id, kind, owner)[0]
      .as<int64_t>();
}

// Runs one transfer inside `tx` under a key derived from the RPC's key; a rejection becomes
// the status returned.
absl::StatusOr<TransferResult> TransferInTx(pqxx::dbtransaction& tx, const IdempotencyKey& key,
                                            absl::string_view what, policy::TransferRequest t,
                                            std::string metadata_json) {
  TransferSubmission s{.request_scope = absl::StrCat("rpc/", key.scope),
                       .request_id = absl::StrCat(what, "/", key.request_id),
                       .transfer = t,
                       .metadata_json = std::move(metadata_json)};
  std::vector<absl::StatusOr<TransferResult>> results = ApplyTransfersInTransaction(
      tx, {{&s, TransferRequestHash(s)}}, absl::ToUnixMicros(absl::Now()));
  return std::move(results[0]);
}

std::string JsonObject(std::initializer_list<std::pair<absl::string_view, absl::string_view>> kv) {
  std::string out = "{";
  for (const auto& [k, v] : kv) {
    if (out.size() > 1) out += ",";
    AppendJsonString(&out, k);
    out += ":";
    AppendJsonString(&out, v);
  }
  return out + "}";
}

policy::EnterpriseStanding StandingInTx(pqxx::dbtransaction& tx, const std::string& program_id,
                                        const std::string& uscc) {
  pqxx::result r = tx.exec_params(
      "SELECT awarded_fen - clawed_back_fen FROM program_enterprises WHERE program_id = $1 "
      "AND uscc = $2",
      program_id, uscc);
  return {.awarded_fen = r.empty() ? 0 : r[0][0].as<int64_t>()};
}

policy::ProgramFacts FactsOf(const ProgramRecord& p, const IssuerRecord& issuer) {
  return {.state = p.state,
          .rules = p.rules,
          .issuer_region_code = issuer.region_code,
          .issuer_level = issuer.level,
          .budget_available_fen = p.budget_available_fen};
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Issuers

absl::StatusOr<std::string> RegisterIssuer(PgPool& pool, const IdempotencyKey& key,
                                           const IssuerRecord& issuer,
                                           const Encoder<IssuerRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    if (!tx.exec_params("SELECT 1 FROM issuers WHERE id = $1", issuer.id).empty()) {
      return DomainError(absl::StatusCode::kAlreadyExists, "ISSUER_EXISTS",
                         absl::StrCat("issuer ", issuer.id, " already exists"));
    }
    IssuerRecord out = issuer;
    out.created_at =
        absl::FromUnixMicros(tx.exec_params1(kInsertIssuer, issuer.id, issuer.display_name,
                                             issuer.region_code, static_cast<int>(issuer.level))[0]
                                 .as<int64_t>());
    return encode(out);
  });
}

absl::StatusOr<IssuerRecord> GetIssuer(PgPool& pool, const std::string& id) {
  std::optional<IssuerRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    absl::StatusOr<IssuerRecord> r = LoadIssuer(tx, id);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<IssuerRecord>> ListIssuers(PgPool& pool, const std::string& after_id,
                                                      int limit) {
  std::vector<IssuerRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& r :
         tx.exec_params(absl::StrCat("SELECT ", kIssuerColumns,
                                     " FROM issuers WHERE id > $1 ORDER BY id LIMIT $2"),
                        after_id, limit)) {
      out.push_back(IssuerFromRow(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

// ------------------------------------------------------------------------------------------
// Programs

absl::StatusOr<std::string> CreateProgram(PgPool& pool, const IdempotencyKey& key,
                                          const std::string& issuer_id,
                                          const std::string& program_id, const ProgramRules& rules,
                                          const Encoder<ProgramRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_RETURN_IF_ERROR(LoadIssuer(tx, issuer_id).status());
    if (!tx.exec_params("SELECT 1 FROM programs WHERE id = $1", program_id).empty()) {
      return DomainError(absl::StatusCode::kAlreadyExists, "PROGRAM_EXISTS",
                         absl::StrCat("program ", program_id, " already exists"));
    }
    const int64_t treasury = EnsureAccountInTx(tx, program_id, issuer_id, "TREASURY", "", false);
    const int64_t budget = EnsureAccountInTx(tx, program_id, issuer_id, "BUDGET", "", true);
    const int64_t lapsed = EnsureAccountInTx(tx, program_id, issuer_id, "LAPSED", "", false);
    tx.exec_params0(absl::StrCat("INSERT INTO programs (", kRulesColumns,
                                 ", id, issuer_id, treasury_account_id, budget_account_id, "
                                 "lapsed_account_id) VALUES (",
                                 kRulesValues, ", $21, $22, $23, $24, $25)"),
                    VCH_RULES_PARAMS(rules), program_id, issuer_id, treasury, budget, lapsed);
    VCH_ASSIGN_OR_RETURN(ProgramRecord p, LoadProgram(tx, program_id, issuer_id, false));
    return encode(p);
  });
}

absl::StatusOr<std::string> UpdateProgram(PgPool& pool, const IdempotencyKey& key,
                                          const std::string& issuer_scope,
                                          const std::string& program_id, const ProgramRules& rules,
                                          const Encoder<ProgramRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(ProgramRecord current, LoadProgram(tx, program_id, issuer_scope, true));
    if (current.state != ProgramState::kDraft) {
      return DomainError(absl::StatusCode::kFailedPrecondition, "PROGRAM_NOT_DRAFT",
                         absl::StrCat("program ", program_id, " is no longer a draft"));
    }
    std::vector<std::string> columns = absl::StrSplit(kRulesColumns, ", ");
    std::string assignments;
    for (size_t i = 0; i < columns.size(); ++i) {
      absl::StrAppend(&assignments, i ? ", " : "", columns[i], " = ");
      std::vector<std::string> values = absl::StrSplit(kRulesValues, ", ");
      absl::StrAppend(&assignments, values[i]);
    }
    tx.exec_params0(
        absl::StrCat("UPDATE programs SET ", assignments, ", updated_at = now() WHERE id = $21"),
        VCH_RULES_PARAMS(rules), program_id);
    VCH_ASSIGN_OR_RETURN(ProgramRecord p, LoadProgram(tx, program_id, issuer_scope, false));
    return encode(p);
  });
}

absl::StatusOr<ProgramRecord> GetProgram(PgPool& pool, const std::string& program_id) {
  std::optional<ProgramRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    absl::StatusOr<ProgramRecord> r = LoadProgram(tx, program_id, "", false);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<ProgramRecord>> ListPrograms(PgPool& pool, const ProgramFilter& filter) {
  std::vector<ProgramRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& r : tx.exec_params(
             absl::StrCat(kProgramSelect,
                          " WHERE ($1 = '' OR p.issuer_id = $1) AND ($2 = 0 OR p.state = $2)"
                          " AND p.id > $3 ORDER BY p.id LIMIT $4"),
             filter.issuer_id, filter.state ? static_cast<int>(*filter.state) : 0, filter.after_id,
             filter.limit)) {
      out.push_back(ProgramFromRow(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> TransitionProgram(PgPool& pool, const IdempotencyKey& key,
                                              const std::string& issuer_scope,
                                              const std::string& program_id, ProgramState to,
                                              const Encoder<ProgramRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(ProgramRecord current, LoadProgram(tx, program_id, issuer_scope, true));
    VCH_RETURN_IF_ERROR(policy::CheckProgramTransition(current.state, to));
    tx.exec_params0("UPDATE programs SET state = $2, updated_at = now() WHERE id = $1", program_id,
                    static_cast<int>(to));
    VCH_ASSIGN_OR_RETURN(ProgramRecord p, LoadProgram(tx, program_id, issuer_scope, false));
    return encode(p);
  });
}

absl::StatusOr<std::string> FundProgram(
    PgPool& pool, const IdempotencyKey& key, const std::string& issuer_scope,
    const std::string& program_id, int64_t amount_fen, const std::string& note,
    const std::function<std::string(const ProgramRecord&, int64_t)>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(ProgramRecord current, LoadProgram(tx, program_id, issuer_scope, true));
    if (current.state == ProgramState::kArchived) {
      return DomainError(absl::StatusCode::kFailedPrecondition, "PROGRAM_ARCHIVED",
                         absl::StrCat("program ", program_id, " is archived"));
    }
    VCH_ASSIGN_OR_RETURN(TransferResult fund,
                         TransferInTx(tx, key, "fund",
                                      {.kind = policy::TransferKind::kFund,
                                       .debit_account_id = current.treasury_account_id,
                                       .credit_account_id = current.budget_account_id,
                                       .amount_fen = amount_fen},
                                      JsonObject({{"note", note}})));
    VCH_ASSIGN_OR_RETURN(ProgramRecord p, LoadProgram(tx, program_id, issuer_scope, false));
    return encode(p, fund.outcome.transfer_id);
  });
}

// ------------------------------------------------------------------------------------------
// Enterprises

absl::StatusOr<std::string> RegisterEnterprise(PgPool& pool, const IdempotencyKey& key,
                                               const EnterpriseRecord& e,
                                               const Encoder<EnterpriseRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("INSERT INTO enterprises (uscc, display_name, region_code, kind, size_class) "
                     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uscc) DO NOTHING RETURNING ",
                     kEnterpriseColumns),
        e.uscc, e.display_name, e.region_code, static_cast<int>(e.kind), static_cast<int>(e.size));
    if (r.empty()) {
      return DomainError(absl::StatusCode::kAlreadyExists, "ENTERPRISE_EXISTS",
                         absl::StrCat("enterprise ", e.uscc, " is already registered"));
    }
    return encode(EnterpriseFromRow(r[0]));
  });
}

absl::StatusOr<std::string> UpdateEnterprise(PgPool& pool, const IdempotencyKey& key,
                                             const EnterpriseRecord& e,
                                             const Encoder<EnterpriseRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("UPDATE enterprises SET display_name = $2, region_code = $3, kind = $4, "
                     "size_class = $5, updated_at = now() WHERE uscc = $1 RETURNING ",
                     kEnterpriseColumns),
        e.uscc, e.display_name, e.region_code, static_cast<int>(e.kind), static_cast<int>(e.size));
    if (r.empty()) return NotFound("enterprise", e.uscc, "ENTERPRISE_NOT_FOUND");
    return encode(EnterpriseFromRow(r[0]));
  });
}

absl::StatusOr<EnterpriseRecord> GetEnterprise(PgPool& pool, const std::string& uscc) {
  std::optional<EnterpriseRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    absl::StatusOr<EnterpriseRecord> r = LoadEnterprise(tx, uscc);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<EnterpriseRecord>> ListEnterprises(PgPool& pool,
                                                              const std::string& after_uscc,
                                                              int limit) {
  std::vector<EnterpriseRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& r :
         tx.exec_params(absl::StrCat("SELECT ", kEnterpriseColumns,
                                     " FROM enterprises WHERE uscc > $1 ORDER BY uscc LIMIT $2"),
                        after_uscc, limit)) {
      out.push_back(EnterpriseFromRow(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

// ------------------------------------------------------------------------------------------
// Applications and awards

absl::StatusOr<std::string> SubmitApplication(PgPool& pool, const IdempotencyKey& key,
                                              const std::string& program_id,
                                              const std::string& uscc, int64_t requested_fen,
                                              const std::string& purpose, absl::Time now,
                                              const Encoder<ApplicationRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    // FOR SHARE first: the program cannot close between the check and the insert.
    tx.exec_params("SELECT 1 FROM programs WHERE id = $1 FOR SHARE", program_id);
    VCH_ASSIGN_OR_RETURN(ProgramRecord program, LoadProgram(tx, program_id, "", false));
    VCH_ASSIGN_OR_RETURN(IssuerRecord issuer, LoadIssuer(tx, program.issuer_id));
    VCH_ASSIGN_OR_RETURN(EnterpriseRecord enterprise, LoadEnterprise(tx, uscc));
    VCH_RETURN_IF_ERROR(policy::CheckEligibility(
        FactsOf(program, issuer),
        {.kind = enterprise.kind, .size = enterprise.size, .region_code = enterprise.region_code},
        StandingInTx(tx, program_id, uscc), requested_fen, now));
    pqxx::row r = tx.exec_params1(
        absl::StrCat("INSERT INTO applications (program_id, issuer_id, uscc, requested_fen, "
                     "purpose, submitted_at) VALUES ($1, $2, $3, $4, $5, vch_ts($6)) RETURNING ",
                     kApplicationColumns),
        program_id, program.issuer_id, uscc, requested_fen, purpose, absl::ToUnixMicros(now));
    return encode(ApplicationFromRow(r));
  });
}

absl::StatusOr<ApplicationRecord> GetApplication(PgPool& pool, int64_t id,
                                                 const ApplicationScope& scope) {
  std::optional<ApplicationRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    absl::StatusOr<ApplicationRecord> r = LoadApplication(tx, id, scope, false);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<std::vector<ApplicationRecord>> ListApplications(PgPool& pool,
                                                                const ApplicationFilter& filter,
                                                                const ApplicationScope& scope) {
  std::vector<ApplicationRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& r :
         tx.exec_params(absl::StrCat("SELECT ", kApplicationColumns,
                                     " FROM applications WHERE ($1 = '' OR program_id = $1)"
                                     " AND ($2 = 0 OR state = $2) AND ($3 = '' OR uscc = $3)"
                                     " AND ($4 = '' OR issuer_id = $4) AND ($5 = '' OR uscc = $5)"
                                     " AND id > $6 ORDER BY id LIMIT $7"),
                        filter.program_id, filter.state ? static_cast<int>(*filter.state) : 0,
                        filter.uscc, scope.issuer_id, scope.uscc, filter.after_id, filter.limit)) {
      out.push_back(ApplicationFromRow(r));
    }
    return absl::OkStatus();
  }));
  return out;
}

namespace {

absl::Status NotPending(const ApplicationRecord& a) {
  static const char* kNames[] = {"", "SUBMITTED", "APPROVED", "REJECTED", "WITHDRAWN"};
  return DomainError(absl::StatusCode::kFailedPrecondition, "APPLICATION_NOT_PENDING",
                     absl::StrCat("application ", a.id, " is ", kNames[static_cast<int>(a.state)],
                                  ", not SUBMITTED"));
}

}  // namespace

absl::StatusOr<std::string> WithdrawApplication(PgPool& pool, const IdempotencyKey& key, int64_t id,
                                                const std::string& uscc,
                                                const Encoder<ApplicationRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(ApplicationRecord a, LoadApplication(tx, id, {.uscc = uscc}, true));
    if (a.state != ApplicationState::kSubmitted) return NotPending(a);
    pqxx::row r = tx.exec_params1(
        absl::StrCat("UPDATE applications SET state = 4, withdrawn_at = now() WHERE id = $1 "
                     "RETURNING ",
                     kApplicationColumns),
        id);
    return encode(ApplicationFromRow(r));
  });
}

absl::StatusOr<std::string> ApproveApplication(PgPool& pool, const IdempotencyKey& key, int64_t id,
                                               const std::string& issuer_scope,
                                               const std::string& reviewer, int64_t amount_fen,
                                               const std::string& note,
                                               const Encoder<ApplicationRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    // Lock order: application, program (share), standing row, then the ledger's own order.
    VCH_ASSIGN_OR_RETURN(ApplicationRecord a,
                         LoadApplication(tx, id, {.issuer_id = issuer_scope}, true));
    if (a.state != ApplicationState::kSubmitted) return NotPending(a);
    tx.exec_params("SELECT 1 FROM programs WHERE id = $1 FOR SHARE", a.program_id);
    VCH_ASSIGN_OR_RETURN(ProgramRecord program, LoadProgram(tx, a.program_id, "", false));
    VCH_ASSIGN_OR_RETURN(IssuerRecord issuer, LoadIssuer(tx, program.issuer_id));
    const int64_t wallet =
        EnsureAccountInTx(tx, program.id, program.issuer_id, "WALLET", a.uscc, true);
    tx.exec_params0(
        "INSERT INTO program_enterprises (program_id, uscc, issuer_id, cap_fen, "
        "wallet_account_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        program.id, a.uscc, program.issuer_id, program.rules.per_enterprise_cap_fen, wallet);
    pqxx::row standing = tx.exec_params1(
        "SELECT awarded_fen - clawed_back_fen FROM program_enterprises WHERE program_id = $1 "
        "AND uscc = $2 FOR UPDATE",
        program.id, a.uscc);
    // The budget's available balance under its row lock: concurrent approvals serialize here.
    pqxx::row budget = tx.exec_params1(
        "SELECT credits_posted_fen - debits_posted_fen - debits_pending_fen FROM ledger_accounts "
        "WHERE id = $1 FOR UPDATE",
        program.budget_account_id);
    policy::ProgramFacts facts = FactsOf(program, issuer);
    facts.budget_available_fen = budget[0].as<int64_t>();
    VCH_RETURN_IF_ERROR(policy::CheckAward(facts, {.awarded_fen = standing[0].as<int64_t>()},
                                           a.requested_fen, amount_fen));
    absl::StatusOr<TransferResult> award =
        TransferInTx(tx, key, "award",
                     {.kind = policy::TransferKind::kAward,
                      .debit_account_id = program.budget_account_id,
                      .credit_account_id = wallet,
                      .amount_fen = amount_fen},
                     JsonObject({{"application", absl::StrCat(a.id)}, {"reviewer", reviewer}}));
    if (!award.ok()) {
      if (ReasonOf(award.status()) == "INSUFFICIENT_FUNDS") {
        return DomainError(absl::StatusCode::kFailedPrecondition, "BUDGET_EXHAUSTED",
                           "the program's budget cannot cover this award");
      }
      return award.status();
    }
    tx.exec_params0(
        "UPDATE program_enterprises SET awarded_fen = awarded_fen + $3 WHERE program_id = $1 "
        "AND uscc = $2",
        program.id, a.uscc, amount_fen);
    pqxx::row r = tx.exec_params1(
        absl::StrCat("UPDATE applications SET state = 2, awarded_fen = $2, decision_reason = $3, "
                     "decided_by = $4, award_transfer_id = $5, decided_at = now() WHERE id = $1 "
                     "RETURNING ",
                     kApplicationColumns),
        id, amount_fen, note, reviewer, award->outcome.transfer_id);
    return encode(ApplicationFromRow(r));
  });
}

absl::StatusOr<std::string> RejectApplication(PgPool& pool, const IdempotencyKey& key, int64_t id,
                                              const std::string& issuer_scope,
                                              const std::string& reviewer,
                                              const std::string& reason,
                                              const Encoder<ApplicationRecord>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(ApplicationRecord a,
                         LoadApplication(tx, id, {.issuer_id = issuer_scope}, true));
    if (a.state != ApplicationState::kSubmitted) return NotPending(a);
    pqxx::row r = tx.exec_params1(
        absl::StrCat("UPDATE applications SET state = 3, decision_reason = $2, decided_by = $3, "
                     "decided_at = now() WHERE id = $1 RETURNING ",
                     kApplicationColumns),
        id, reason, reviewer);
    return encode(ApplicationFromRow(r));
  });
}

namespace {

absl::StatusOr<AwardRecord> LoadAward(pqxx::dbtransaction& tx, const std::string& program_id,
                                      const std::string& uscc, const ApplicationScope& scope,
                                      bool for_update) {
  // Visibility: the program must be in the caller's issuer scope.
  pqxx::result p = tx.exec_params(
      "SELECT issuer_id, per_enterprise_cap_fen FROM programs WHERE id = $1 "
      "AND ($2 = '' OR issuer_id = $2)",
      program_id, scope.issuer_id);
  if (p.empty() || (!scope.uscc.empty() && scope.uscc != uscc)) {
    return NotFound("award of", absl::StrCat(uscc, " in ", program_id), "AWARD_NOT_FOUND");
  }
  AwardRecord out{.program_id = program_id,
                  .issuer_id = p[0][0].as<std::string>(),
                  .uscc = uscc,
                  .cap_fen = p[0][1].as<int64_t>()};
  pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT pe.cap_fen, pe.awarded_fen, pe.clawed_back_fen, pe.wallet_account_id, "
                   "a.credits_posted_fen - a.debits_posted_fen - a.debits_pending_fen "
                   "FROM program_enterprises pe JOIN ledger_accounts a ON a.id = "
                   "pe.wallet_account_id WHERE pe.program_id = $1 AND pe.uscc = $2",
                   for_update ? " FOR UPDATE OF pe" : ""),
      program_id, uscc);
  if (!r.empty()) {
    out.cap_fen = r[0][0].as<int64_t>();
    out.awarded_fen = r[0][1].as<int64_t>();
    out.clawed_back_fen = r[0][2].as<int64_t>();
    out.wallet_account_id = r[0][3].as<int64_t>();
    out.wallet_available_fen = r[0][4].as<int64_t>();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ClawbackAward(
    PgPool& pool, const IdempotencyKey& key, const std::string& issuer_scope,
    const std::string& program_id, const std::string& uscc, int64_t amount_fen,
    const std::string& reason, const std::string& actor,
    const std::function<std::string(const AwardRecord&, int64_t)>& encode) {
  return RunIdempotent(pool, key, [&](pqxx::dbtransaction& tx) -> absl::StatusOr<std::string> {
    VCH_ASSIGN_OR_RETURN(AwardRecord award,
                         LoadAward(tx, program_id, uscc, {.issuer_id = issuer_scope}, true));
    if (award.wallet_account_id == 0) {
      return DomainError(absl::StatusCode::kFailedPrecondition, "NO_AWARD",
                         absl::StrCat(uscc, " has no award in ", program_id));
    }
    VCH_ASSIGN_OR_RETURN(ProgramRecord program, LoadProgram(tx, program_id, "", false));
    absl::StatusOr<TransferResult> clawback =
        TransferInTx(tx, key, "clawback",
                     {.kind = policy::TransferKind::kClawback,
                      .debit_account_id = award.wallet_account_id,
                      .credit_account_id = program.budget_account_id,
                      .amount_fen = amount_fen},
                     JsonObject({{"reason", reason}, {"actor", actor}}));
    if (!clawback.ok()) {
      if (ReasonOf(clawback.status()) == "INSUFFICIENT_FUNDS") {
        return DomainError(
            absl::StatusCode::kFailedPrecondition, "CLAWBACK_EXCEEDS_BALANCE",
            absl::StrCat("the wallet holds only ", award.wallet_available_fen, " fen available"));
      }
      return clawback.status();
    }
    tx.exec_params0(
        "UPDATE program_enterprises SET clawed_back_fen = clawed_back_fen + $3 WHERE "
        "program_id = $1 AND uscc = $2",
        program_id, uscc, amount_fen);
    tx.exec_params0(
        "INSERT INTO clawbacks (transfer_id, program_id, uscc, amount_fen, reason, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        clawback->outcome.transfer_id, program_id, uscc, amount_fen, reason, actor);
    VCH_ASSIGN_OR_RETURN(AwardRecord after, LoadAward(tx, program_id, uscc, {}, false));
    return encode(after, clawback->outcome.transfer_id);
  });
}

absl::StatusOr<AwardRecord> GetAward(PgPool& pool, const std::string& program_id,
                                     const std::string& uscc, const ApplicationScope& scope) {
  std::optional<AwardRecord> out;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    absl::StatusOr<AwardRecord> r = LoadAward(tx, program_id, uscc, scope, false);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  }));
  return *out;
}

absl::StatusOr<int64_t> ExpireAwards(PgPool& pool, LedgerWriter& writer, absl::Time now) {
  struct Sweep {
    int64_t wallet, destination, available, credits_posted, debits_posted, debits_pending;
    std::string program;
  };
  std::vector<Sweep> due;
  VCH_RETURN_IF_ERROR(RunTransaction(pool, [&](pqxx::dbtransaction& tx) {
    for (const pqxx::row& r : tx.exec_params(
             "SELECT pe.wallet_account_id, "
             "CASE WHEN p.state = 2 THEN p.budget_account_id ELSE p.lapsed_account_id END, "
             "a.credits_posted_fen - a.debits_posted_fen - a.debits_pending_fen, "
             "a.credits_posted_fen, a.debits_posted_fen, a.debits_pending_fen, p.id "
             "FROM programs p JOIN program_enterprises pe ON pe.program_id = p.id "
             "JOIN ledger_accounts a ON a.id = pe.wallet_account_id "
             "WHERE p.redemption_end <= vch_ts($1) AND p.state IN (2, 3, 4) "
             "AND a.credits_posted_fen - a.debits_posted_fen - a.debits_pending_fen > 0 "
             "ORDER BY pe.wallet_account_id LIMIT 5000",
             absl::ToUnixMicros(now))) {
      due.push_back({r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<int64_t>(), r[3].as<int64_t>(),
                     r[4].as<int64_t>(), r[5].as<int64_t>(), r[6].as<std::string>()});
    }
    return absl::OkStatus();
  }));
  std::vector<TransferSubmission> submissions;
  for (const Sweep& s : due) {
    // The key names the wallet's state (all three totals), so each state is swept once; a later
    // change (a hold voided after the sweep) makes a new state and a new sweep, and since every
    // sweep raises debits_posted no state repeats.
    submissions.push_back({.request_scope = "system.award_expiry",
                           .request_id = absl::StrCat("wallet-", s.wallet, "-", s.credits_posted,
                                                      "-", s.debits_posted, "-", s.debits_pending),
                           .transfer = {.kind = policy::TransferKind::kExpire,
                                        .debit_account_id = s.wallet,
                                        .credit_account_id = s.destination,
                                        .amount_fen = s.available},
                           .metadata_json = JsonObject(
                               {{"program", s.program}, {"cause", "redemption window ended"}})});
  }
  int64_t swept = 0;
  for (const auto& r : writer.SubmitAll(std::move(submissions))) {
    if (r.ok() && !r->replayed) ++swept;
  }
  return swept;
}

}  // namespace vch::storage
