// Issuers, programs, enterprises, applications and awards in PostgreSQL. Mutations are
// idempotent (storage/idempotency.h): each takes the RPC's key and an encoder that turns its
// result into the response bytes stored with the key, and returns those bytes.
// Object-level scoping: `issuer_scope` names the caller's issuer ("" = any); rows of another
// issuer read as NOT_FOUND.
#ifndef VCH_STORAGE_PROGRAM_STORE_H_
#define VCH_STORAGE_PROGRAM_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "policy/programs.h"
#include "storage/idempotency.h"
#include "storage/ledger_writer.h"
#include "storage/pg_pool.h"

namespace vch::storage {

template <typename T>
using Encoder = std::function<std::string(const T&)>;

struct IssuerRecord {
  std::string id;
  std::string display_name;
  std::string region_code;
  policy::IssuerLevel level = policy::IssuerLevel::kCity;
  absl::Time created_at;
};

struct ProgramRecord {
  std::string id;
  std::string issuer_id;
  policy::ProgramState state = policy::ProgramState::kDraft;
  policy::ProgramRules rules;
  int64_t funded_fen = 0;            // sum of FUND tranches
  int64_t budget_available_fen = 0;  // the budget account's available balance
  int64_t treasury_account_id = 0;
  int64_t budget_account_id = 0;
  int64_t lapsed_account_id = 0;
  absl::Time created_at;
  absl::Time updated_at;
};

struct EnterpriseRecord {
  std::string uscc;
  std::string display_name;
  std::string region_code;
  policy::EnterpriseKind kind = policy::EnterpriseKind::kSme;
  policy::SizeClass size = policy::SizeClass::kSmall;
  absl::Time created_at;
  absl::Time updated_at;
};

enum class ApplicationState { kSubmitted = 1, kApproved = 2, kRejected = 3, kWithdrawn = 4 };

struct ApplicationRecord {
  int64_t id = 0;
  std::string program_id;
  std::string issuer_id;
  std::string uscc;
  int64_t requested_fen = 0;
  std::string purpose;
  ApplicationState state = ApplicationState::kSubmitted;
  int64_t awarded_fen = 0;
  std::string decision_reason;
  std::string decided_by;
  int64_t award_transfer_id = 0;
  absl::Time submitted_at;
  std::optional<absl::Time> decided_at;
  std::optional<absl::Time> withdrawn_at;
};

struct AwardRecord {
  std::string program_id;
  std::string issuer_id;
  std::string uscc;
  int64_t cap_fen = 0;
  int64_t awarded_fen = 0;
  int64_t clawed_back_fen = 0;
  int64_t wallet_account_id = 0;  // 0 before the first award
  int64_t wallet_available_fen = 0;
};

// --- Issuers. ---
absl::StatusOr<std::string> RegisterIssuer(PgPool& pool, const IdempotencyKey& key,
                                           const IssuerRecord& issuer,
                                           const Encoder<IssuerRecord>& encode);
absl::StatusOr<IssuerRecord> GetIssuer(PgPool& pool, const std::string& id);
absl::StatusOr<std::vector<IssuerRecord>> ListIssuers(PgPool& pool, const std::string& after_id,
                                                      int limit);

// --- Programs. ---
// Creates a DRAFT program of `issuer_id` with its treasury, budget and lapsed accounts.
absl::StatusOr<std::string> CreateProgram(PgPool& pool, const IdempotencyKey& key,
                                          const std::string& issuer_id,
                                          const std::string& program_id,
                                          const policy::ProgramRules& rules,
                                          const Encoder<ProgramRecord>& encode);
// Replaces the rules of a DRAFT program (FAILED_PRECONDITION / PROGRAM_NOT_DRAFT otherwise).
absl::StatusOr<std::string> UpdateProgram(PgPool& pool, const IdempotencyKey& key,
                                          const std::string& issuer_scope,
                                          const std::string& program_id,
                                          const policy::ProgramRules& rules,
                                          const Encoder<ProgramRecord>& encode);
absl::StatusOr<ProgramRecord> GetProgram(PgPool& pool, const std::string& program_id);
struct ProgramFilter {
  std::string issuer_id;                      // "" = any
  std::optional<policy::ProgramState> state;  // nullopt = any
  std::string after_id;
  int limit = 100;
};
absl::StatusOr<std::vector<ProgramRecord>> ListPrograms(PgPool& pool, const ProgramFilter& filter);
// Moves the program to `to` if policy::CheckProgramTransition allows it.
absl::StatusOr<std::string> TransitionProgram(PgPool& pool, const IdempotencyKey& key,
                                              const std::string& issuer_scope,
                                              const std::string& program_id,
                                              policy::ProgramState to,
                                              const Encoder<ProgramRecord>& encode);
// FUND transfer treasury -> budget of `amount_fen` (> 0), with `note` in its metadata. Programs
// that are ARCHIVED cannot be funded (PROGRAM_ARCHIVED).
absl::StatusOr<std::string> FundProgram(
    PgPool& pool, const IdempotencyKey& key, const std::string& issuer_scope,
    const std::string& program_id, int64_t amount_fen, const std::string& note,
    const std::function<std::string(const ProgramRecord&, int64_t transfer_id)>& encode);

// --- Enterprises. ---
// ALREADY_EXISTS / ENTERPRISE_EXISTS if the code is already registered (a retry with the same
// request_id replays the first response instead).
absl::StatusOr<std::string> RegisterEnterprise(PgPool& pool, const IdempotencyKey& key,
                                               const EnterpriseRecord& enterprise,
                                               const Encoder<EnterpriseRecord>& encode);
absl::StatusOr<std::string> UpdateEnterprise(PgPool& pool, const IdempotencyKey& key,
                                             const EnterpriseRecord& enterprise,
                                             const Encoder<EnterpriseRecord>& encode);
absl::StatusOr<EnterpriseRecord> GetEnterprise(PgPool& pool, const std::string& uscc);
absl::StatusOr<std::vector<EnterpriseRecord>> ListEnterprises(PgPool& pool,
                                                              const std::string& after_uscc,
                                                              int limit);

// --- Applications and awards. ---
// Checks eligibility (policy::CheckEligibility) at `now` and records a SUBMITTED application.
absl::StatusOr<std::string> SubmitApplication(PgPool& pool, const IdempotencyKey& key,
                                              const std::string& program_id,
                                              const std::string& uscc, int64_t requested_fen,
                                              const std::string& purpose, absl::Time now,
                                              const Encoder<ApplicationRecord>& encode);
struct ApplicationScope {
  std::string issuer_id;  // "" = any issuer
  std::string uscc;       // "" = any enterprise
};
absl::StatusOr<ApplicationRecord> GetApplication(PgPool& pool, int64_t id,
                                                 const ApplicationScope& scope);
struct ApplicationFilter {
  std::string program_id;
  std::optional<ApplicationState> state;
  std::string uscc;
  int64_t after_id = 0;
  int limit = 100;
};
absl::StatusOr<std::vector<ApplicationRecord>> ListApplications(PgPool& pool,
                                                                const ApplicationFilter& filter,
                                                                const ApplicationScope& scope);
absl::StatusOr<std::string> WithdrawApplication(PgPool& pool, const IdempotencyKey& key, int64_t id,
                                                const std::string& uscc,
                                                const Encoder<ApplicationRecord>& encode);
// Approves `amount_fen` (policy::CheckAward) and moves it budget -> the enterprise's wallet in
// the same transaction as the decision.
absl::StatusOr<std::string> ApproveApplication(PgPool& pool, const IdempotencyKey& key, int64_t id,
                                               const std::string& issuer_scope,
                                               const std::string& reviewer, int64_t amount_fen,
                                               const std::string& note,
                                               const Encoder<ApplicationRecord>& encode);
absl::StatusOr<std::string> RejectApplication(PgPool& pool, const IdempotencyKey& key, int64_t id,
                                              const std::string& issuer_scope,
                                              const std::string& reviewer,
                                              const std::string& reason,
                                              const Encoder<ApplicationRecord>& encode);
// CLAWBACK transfer wallet -> budget of at most the wallet's available balance.
absl::StatusOr<std::string> ClawbackAward(
    PgPool& pool, const IdempotencyKey& key, const std::string& issuer_scope,
    const std::string& program_id, const std::string& uscc, int64_t amount_fen,
    const std::string& reason, const std::string& actor,
    const std::function<std::string(const AwardRecord&, int64_t transfer_id)>& encode);
absl::StatusOr<AwardRecord> GetAward(PgPool& pool, const std::string& program_id,
                                     const std::string& uscc, const ApplicationScope& scope);

// Expires awards whose program's redemption window ended by `now`: each wallet's available
// credit moves back to the budget (program OPEN) or to the lapsed account (CLOSED, ARCHIVED) by
// EXPIRE transfers through `writer` (batched, exactly once per wallet state). Returns how many
// wallets it swept.
absl::StatusOr<int64_t> ExpireAwards(PgPool& pool, LedgerWriter& writer, absl::Time now);

}  // namespace vch::storage

#endif  // VCH_STORAGE_PROGRAM_STORE_H_
