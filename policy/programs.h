// Pure rules of the program-office and SME workflow (DESIGN §3): unified social credit codes,
// program rules validated as a whole, eligibility of an application, and the limits of an
// award. Plain structs in, decisions out; no I/O; deterministic.
#ifndef VCH_POLICY_PROGRAMS_H_
#define VCH_POLICY_PROGRAMS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vch::policy {

// --- Unified social credit code (GB 32100-2015). ---

// OK when `uscc` is 18 characters from the code's alphabet (digits and upper-case letters
// except I, O, Z, S, V) whose last character is the check character computed from the first 17
// (weights 3^i mod 31, alphabet index). Otherwise INVALID_ARGUMENT, reason USCC_INVALID, with a
// field violation on `field` saying what is wrong (length, character, or check character).
absl::Status ValidateUscc(absl::string_view uscc, absl::string_view field = "uscc");

// The check character for the first 17 characters of a code (for tests and demo data).
// Precondition: `first17` is 17 characters of the alphabet.
char UsccCheckCharacter(absl::string_view first17);

// --- Issuers and regions (GB/T 2260). ---

enum class IssuerLevel { kCity = 1, kProvince = 2, kNational = 3 };

// OK when `region_code` is 6 digits naming a province-level division (first two digits one of
// the 34 province codes 11..82) at the given level: a province ends in "0000"; a city ends in
// "00" but not "0000"; national is "000000". INVALID_ARGUMENT / REGION_INVALID otherwise.
absl::Status ValidateRegionForLevel(absl::string_view region_code, IssuerLevel level,
                                    absl::string_view field = "region_code");

// Whether an enterprise registered in `enterprise_region` lies within the issuer's region:
// national: everywhere; province: same first 2 digits; city: same first 4 digits.
bool RegionWithin(absl::string_view enterprise_region, absl::string_view issuer_region,
                  IssuerLevel issuer_level);

// --- Programs. ---

enum class ProgramCategory { kAiRental = 1, kDataAndLlmTraining = 2, kResearch = 3, kGeneral = 4 };
enum class EnterpriseKind { kSme = 1, kResearchInstitution = 2, kStartup = 3 };
enum class SizeClass { kMicro = 1, kSmall = 2, kMedium = 3, kLarge = 4 };
enum class DatacenterScope { kLocal = 1, kNational = 2, kList = 3 };
enum class ProgramState { kDraft = 1, kOpen = 2, kClosed = 3, kArchived = 4 };
// Accelerator classes a program may allow (empty list = any).
enum class AcceleratorClass { kFp8Capable = 1, kFp16Datacenter = 2, kDomestic = 3 };
// How settlements pay the voucher share: into the datacenter's receivable (kDirect) or a
// payable to the enterprise, which paid the bill in full (kReimburse).
enum class SettlementStyle { kDirect = 1, kReimburse = 2 };

struct ProgramRules {
  std::string name;
  ProgramCategory category = ProgramCategory::kAiRental;
  int64_t planned_budget_fen = 0;       // what the office intends to fund (tranches add up to it)
  int32_t subsidy_ratio_bps = 0;        // 1..10000
  int64_t per_enterprise_cap_fen = 0;   // > 0, <= planned budget
  int64_t max_award_fen = 0;            // 0 = no per-award maximum; else <= cap
  int64_t monthly_spend_limit_fen = 0;  // 0 = none; applies at settlement
  std::vector<EnterpriseKind> eligible_kinds;     // non-empty, no duplicates
  std::vector<SizeClass> eligible_sizes;          // non-empty, no duplicates
  bool local_enterprises_only = true;             // enterprise region within the issuer's
  absl::Time application_start, application_end;  // start < end
  absl::Time redemption_start, redemption_end;    // start < end, application_start <=
                                                  // redemption_start, application_end <=
                                                  // redemption_end
  DatacenterScope datacenter_scope = DatacenterScope::kLocal;
  std::vector<std::string> datacenter_ids;             // required (non-empty) iff scope is kList
  std::vector<AcceleratorClass> allowed_accelerators;  // empty = any
  int32_t domestic_ratio_bps = 0;  // 0 = same as subsidy ratio; else subsidy ratio..10000
  int64_t price_ceiling_fen_per_gpu_hour = 0;  // > 0
  SettlementStyle settlement_style = SettlementStyle::kDirect;
};

// Validates the rules as a whole. OK, or INVALID_ARGUMENT (reason PROGRAM_RULES_INVALID) with
// one field violation per problem; field paths are under `prefix` (e.g.
// "program.subsidy_ratio_bps"
// for prefix "program" and the proto field names: name, category, planned_budget_fen,
// subsidy_ratio_bps, per_enterprise_cap_fen, max_award_fen, monthly_spend_limit_fen,
// eligible_kinds, eligible_sizes, application_window, redemption_window, datacenter_ids,
// domestic_ratio_bps, price_ceiling_fen_per_gpu_hour, datacenter_scope, allowed_accelerators).
absl::Status ValidateProgramRules(const ProgramRules& rules, absl::string_view prefix = "program");

// Allowed state transitions: DRAFT->OPEN, OPEN->CLOSED, CLOSED->ARCHIVED (and DRAFT->ARCHIVED
// for a program never opened). FAILED_PRECONDITION, reason PROGRAM_STATE_INVALID, otherwise.
absl::Status CheckProgramTransition(ProgramState from, ProgramState to);

// --- Applications and awards. ---

struct EnterpriseFacts {
  EnterpriseKind kind = EnterpriseKind::kSme;
  SizeClass size = SizeClass::kSmall;
  std::string region_code;
};

struct ProgramFacts {
  ProgramState state = ProgramState::kDraft;
  ProgramRules rules;
  std::string issuer_region_code;
  IssuerLevel issuer_level = IssuerLevel::kCity;
  int64_t budget_available_fen = 0;  // budget account's available balance now
};

// What one enterprise already has in one program.
struct EnterpriseStanding {
  int64_t awarded_fen = 0;  // net of clawbacks
};

// Eligibility at submission, checked in this order, first failure wins (FAILED_PRECONDITION
// with the reason): PROGRAM_NOT_OPEN, WINDOW_CLOSED (now outside the application window),
// NOT_ELIGIBLE_KIND, NOT_ELIGIBLE_SIZE, NOT_ELIGIBLE_REGION, and then the amount (the window is
// start-inclusive, end-exclusive; amount failures other than AMOUNT_INVALID are
// FAILED_PRECONDITION):
// INVALID_ARGUMENT / AMOUNT_INVALID if requested_fen <= 0, AWARD_MAX_EXCEEDED if above the
// per-award maximum, CAP_EXCEEDED if awarded + requested > cap.
absl::Status CheckEligibility(const ProgramFacts& program, const EnterpriseFacts& enterprise,
                              const EnterpriseStanding& standing, int64_t requested_fen,
                              absl::Time now);

// Limits of an approval of `amount_fen` for an application that requested `requested_fen`:
// PROGRAM_NOT_OPEN, AMOUNT_INVALID (<= 0), AMOUNT_EXCEEDS_REQUEST, AWARD_MAX_EXCEEDED,
// CAP_EXCEEDED, BUDGET_EXHAUSTED (amount > budget available). FAILED_PRECONDITION except
// AMOUNT_INVALID (INVALID_ARGUMENT).
absl::Status CheckAward(const ProgramFacts& program, const EnterpriseStanding& standing,
                        int64_t requested_fen, int64_t amount_fen);

}  // namespace vch::policy

#endif  // VCH_POLICY_PROGRAMS_H_
