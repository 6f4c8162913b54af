#include "policy/programs.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/errors.h"

namespace vch::policy {
namespace {

// GB 32100-2015: the 31 characters of the code, in check-digit order. I, O, Z, S and V are left
// out because they are easily mistaken for 1, 0, 2, 5 and U.
constexpr absl::string_view kUsccAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
constexpr int kUsccModulus = 31;
constexpr size_t kUsccLength = 18;
// Weight of position i (0-based) is 3^i mod 31.
constexpr int kUsccWeights[kUsccLength - 1] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                               29, 25, 13, 8,  24, 10, 30, 28};

constexpr size_t kMaxNameCharacters = 200;
constexpr int32_t kMaxBps = 10000;

int UsccIndex(char c) {
  size_t pos = kUsccAlphabet.find(c);
  return pos == absl::string_view::npos ? -1 : static_cast<int>(pos);
}

bool IsDigits(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// GB/T 2260 province-level prefixes: 31 mainland divisions, Taiwan (71), Hong Kong (81), Macao
// (82).
bool IsProvincePrefix(absl::string_view two) {
  if (two.size() != 2 || !IsDigits(two)) return false;
  int p = (two[0] - '0') * 10 + (two[1] - '0');
  return (p >= 11 && p <= 15) || (p >= 21 && p <= 23) || (p >= 31 && p <= 37) ||
         (p >= 41 && p <= 46) || (p >= 50 && p <= 54) || (p >= 61 && p <= 65) || p == 71 ||
         p == 81 || p == 82;
}

absl::string_view LevelName(IssuerLevel level) {
  switch (level) {
    case IssuerLevel::kCity:
      return "city";
    case IssuerLevel::kProvince:
      return "province";
    case IssuerLevel::kNational:
      return "national";
  }
  return "unknown";
}

absl::string_view StateName(ProgramState state) {
  switch (state) {
    case ProgramState::kDraft:
      return "DRAFT";
    case ProgramState::kOpen:
      return "OPEN";
    case ProgramState::kClosed:
      return "CLOSED";
    case ProgramState::kArchived:
      return "ARCHIVED";
  }
  return "UNKNOWN";
}

absl::string_view KindName(EnterpriseKind kind) {
  switch (kind) {
    case EnterpriseKind::kSme:
      return "SME";
    case EnterpriseKind::kResearchInstitution:
      return "RESEARCH_INSTITUTION";
    case EnterpriseKind::kStartup:
      return "STARTUP";
  }
  return "UNKNOWN";
}

absl::string_view SizeName(SizeClass size) {
  switch (size) {
    case SizeClass::kMicro:
      return "MICRO";
    case SizeClass::kSmall:
      return "SMALL";
    case SizeClass::kMedium:
      return "MEDIUM";
    case SizeClass::kLarge:
      return "LARGE";
  }
  return "UNKNOWN";
}

// Enum values arrive from proto conversions as casts; anything outside the declared range is a
// client error, not something to act on.
bool Known(ProgramCategory v) {
  return v >= ProgramCategory::kAiRental && v <= ProgramCategory::kGeneral;
}
bool Known(EnterpriseKind v) { return v >= EnterpriseKind::kSme && v <= EnterpriseKind::kStartup; }
bool Known(SizeClass v) { return v >= SizeClass::kMicro && v <= SizeClass::kLarge; }
bool Known(DatacenterScope v) {
  return v >= DatacenterScope::kLocal && v <= DatacenterScope::kList;
}
bool Known(AcceleratorClass v) {
  return v >= AcceleratorClass::kFp8Capable && v <= AcceleratorClass::kDomestic;
}

// Adds at most one violation each for "empty" (when required), "unknown value" and "duplicate":
// three distinct problems a client fixes separately.
template <typename Enum>
void CheckEnumList(const std::vector<Enum>& values, bool required, const std::string& field,
                   ViolationCollector& out) {
  if (values.empty()) {
    if (required) out.Add(field, "must not be empty");
    return;
  }
  bool unknown = false;
  bool duplicate = false;
  std::set<int> seen;
  for (Enum v : values) {
    if (!Known(v)) unknown = true;
    if (!seen.insert(static_cast<int>(v)).second) duplicate = true;
  }
  if (unknown) out.Add(field, "contains an unknown value");
  if (duplicate) out.Add(field, "must not contain duplicates");
}

// Characters, not bytes: program names are mostly Chinese, three UTF-8 bytes per character.
size_t Utf8Length(absl::string_view s) {
  return std::count_if(s.begin(), s.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

// For messages only: what is left under the cap, clamped to what an int64 prints.
int64_t Remaining(int64_t cap, int64_t awarded) {
  __int128 left = static_cast<__int128>(cap) - awarded;
  left = std::clamp<__int128>(left, 0, std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(left);
}

absl::Status NotOpen(ProgramState state) {
  return DomainError(absl::StatusCode::kFailedPrecondition, "PROGRAM_NOT_OPEN",
                     absl::StrCat("program is ", StateName(state), ", not OPEN"));
}

// The amount limits shared by submission and approval. `what` names the amount in messages
// ("requested", "amount").
absl::Status CheckMaxAndCap(const ProgramRules& rules, const EnterpriseStanding& standing,
                            int64_t amount_fen, absl::string_view what) {
  if (rules.max_award_fen > 0 && amount_fen > rules.max_award_fen) {
    return DomainError(absl::StatusCode::kFailedPrecondition, "AWARD_MAX_EXCEEDED",
                       absl::StrCat(what, " ", amount_fen, " fen exceeds the per-award maximum of ",
                                    rules.max_award_fen, " fen"));
  }
  // 128-bit: awarded and amount can each be near INT64_MAX.
  if (static_cast<__int128>(standing.awarded_fen) + amount_fen > rules.per_enterprise_cap_fen) {
    return DomainError(
        absl::StatusCode::kFailedPrecondition, "CAP_EXCEEDED",
        absl::StrCat(what, " ", amount_fen, " fen exceeds the remaining cap of ",
                     Remaining(rules.per_enterprise_cap_fen, standing.awarded_fen), " fen"));
  }
  return absl::OkStatus();
}

}  // namespace

char UsccCheckCharacter(absl::string_view first17) {
  int sum = 0;
  for (size_t i = 0; i < kUsccLength - 1 && i < first17.size(); ++i) {
    // Outside the precondition: count the character as 0 rather than read out of bounds.
    sum += std::max(UsccIndex(first17[i]), 0) * kUsccWeights[i];
  }
  return kUsccAlphabet[(kUsccModulus - sum % kUsccModulus) % kUsccModulus];
}

absl::Status ValidateUscc(absl::string_view uscc, absl::string_view field) {
  auto invalid = [&](std::string description) {
    ViolationCollector violations;
    violations.Add(std::string(field), std::move(description));
    return violations.Finish("USCC_INVALID");
  };
  // Bytes: every character of a valid code is ASCII, so any multi-byte character fails here.
  if (uscc.size() != kUsccLength) {
    return invalid(absl::StrCat("must be 18 characters, got ", uscc.size()));
  }
  for (size_t i = 0; i < uscc.size(); ++i) {
    if (UsccIndex(uscc[i]) < 0) {
      return invalid(absl::StrCat("character ", i + 1, " ('", uscc.substr(i, 1),
                                  "') is not a digit or an upper-case letter other than I, O, "
                                  "Z, S, V"));
    }
  }
  char check = UsccCheckCharacter(uscc.substr(0, kUsccLength - 1));
  if (uscc.back() != check) {
    return invalid(absl::StrCat("check character should be ", absl::string_view(&check, 1)));
  }
  return absl::OkStatus();
}

absl::Status ValidateRegionForLevel(absl::string_view region_code, IssuerLevel level,
                                    absl::string_view field) {
  auto invalid = [&](std::string description) {
    ViolationCollector violations;
    violations.Add(std::string(field), std::move(description));
    return violations.Finish("REGION_INVALID");
  };
  if (region_code.size() != 6 || !IsDigits(region_code)) {
    return invalid(absl::StrCat("must be 6 digits, got '", region_code, "'"));
  }
  switch (level) {
    case IssuerLevel::kNational:
      if (region_code != "000000") return invalid("a national issuer's region must be 000000");
      return absl::OkStatus();
    case IssuerLevel::kProvince:
    case IssuerLevel::kCity:
      break;
    default:
      return invalid("issuer level is unknown");
  }
  if (!IsProvincePrefix(region_code.substr(0, 2))) {
    return invalid(absl::StrCat("'", region_code.substr(0, 2), "' is not a province-level code"));
  }
  bool province_code = region_code.substr(2) == "0000";
  bool city_code = !province_code && region_code.substr(4) == "00";
  if (level == IssuerLevel::kProvince && !province_code) {
    return invalid(absl::StrCat("a province's code ends in 0000, got ", region_code));
  }
  if (level == IssuerLevel::kCity && !city_code) {
    return invalid(absl::StrCat("a city's code ends in 00 but not 0000, got ", region_code));
  }
  return absl::OkStatus();
}

bool RegionWithin(absl::string_view enterprise_region, absl::string_view issuer_region,
                  IssuerLevel issuer_level) {
  size_t digits = 0;
  switch (issuer_level) {
    case IssuerLevel::kNational:
      return true;
    case IssuerLevel::kProvince:
      digits = 2;
      break;
    case IssuerLevel::kCity:
      digits = 4;
      break;
    default:
      return false;
  }
  // A code too short to carry the prefix is within nothing (never a match on "" == "").
  if (enterprise_region.size() < digits || issuer_region.size() < digits) return false;
  return enterprise_region.substr(0, digits) == issuer_region.substr(0, digits);
}

absl::Status ValidateProgramRules(const ProgramRules& rules, absl::string_view prefix) {
  ViolationCollector out;
  auto path = [&](absl::string_view name) { return absl::StrCat(prefix, ".", name); };

  if (rules.name.empty()) {
    out.Add(path("name"), "must not be empty");
  } else if (size_t n = Utf8Length(rules.name); n > kMaxNameCharacters) {
    out.Add(path("name"), absl::StrCat("must be at most 200 characters, got ", n));
  }
  if (!Known(rules.category)) out.Add(path("category"), "must be a known category");
  if (rules.planned_budget_fen <= 0) {
    out.Add(path("planned_budget_fen"),
            absl::StrCat("must be positive, got ", rules.planned_budget_fen));
  }
  bool ratio_valid = rules.subsidy_ratio_bps >= 1 && rules.subsidy_ratio_bps <= kMaxBps;
  if (!ratio_valid) {
    out.Add(path("subsidy_ratio_bps"),
            absl::StrCat("must be within 1..10000, got ", rules.subsidy_ratio_bps));
  }
  // Comparisons against another field are made only when that field is itself valid, so one
  // mistake yields one violation.
  if (rules.per_enterprise_cap_fen <= 0) {
    out.Add(path("per_enterprise_cap_fen"),
            absl::StrCat("must be positive, got ", rules.per_enterprise_cap_fen));
  } else if (rules.planned_budget_fen > 0 &&
             rules.per_enterprise_cap_fen > rules.planned_budget_fen) {
    out.Add(path("per_enterprise_cap_fen"),
            absl::StrCat("must not exceed the planned budget of ", rules.planned_budget_fen,
                         " fen, got ", rules.per_enterprise_cap_fen));
  }
  if (rules.max_award_fen < 0) {
    out.Add(path("max_award_fen"), absl::StrCat("must not be negative, got ", rules.max_award_fen));
  } else if (rules.max_award_fen > 0 && rules.per_enterprise_cap_fen > 0 &&
             rules.max_award_fen > rules.per_enterprise_cap_fen) {
    out.Add(path("max_award_fen"),
            absl::StrCat("must not exceed the per-enterprise cap of ", rules.per_enterprise_cap_fen,
                         " fen, got ", rules.max_award_fen));
  }
  if (rules.monthly_spend_limit_fen < 0) {
    out.Add(path("monthly_spend_limit_fen"),
            absl::StrCat("must not be negative, got ", rules.monthly_spend_limit_fen));
  }
  CheckEnumList(rules.eligible_kinds, /*required=*/true, path("eligible_kinds"), out);
  CheckEnumList(rules.eligible_sizes, /*required=*/true, path("eligible_sizes"), out);

  if (rules.application_start >= rules.application_end) {
    out.Add(path("application_window"),
            absl::StrCat("must start before it ends: ", Rfc3339(rules.application_start),
                         " is not before ", Rfc3339(rules.application_end)));
  }
  if (rules.redemption_start >= rules.redemption_end) {
    out.Add(path("redemption_window"),
            absl::StrCat("must start before it ends: ", Rfc3339(rules.redemption_start),
                         " is not before ", Rfc3339(rules.redemption_end)));
  }
  // Vouchers are redeemable only after they can have been awarded, and stay redeemable at least
  // as long as awards can still be made.
  if (rules.redemption_start < rules.application_start) {
    out.Add(path("redemption_window"),
            absl::StrCat("must not start (", Rfc3339(rules.redemption_start),
                         ") before the application window starts (",
                         Rfc3339(rules.application_start), ")"));
  }
  if (rules.redemption_end < rules.application_end) {
    out.Add(path("redemption_window"), absl::StrCat("must not end (", Rfc3339(rules.redemption_end),
                                                    ") before the application window ends (",
                                                    Rfc3339(rules.application_end), ")"));
  }

  if (!Known(rules.datacenter_scope)) {
    out.Add(path("datacenter_scope"), "must be a known scope");
  } else if (rules.datacenter_scope != DatacenterScope::kList) {
    if (!rules.datacenter_ids.empty()) {
      out.Add(path("datacenter_ids"), "must be empty unless the scope is a list");
    }
  } else if (rules.datacenter_ids.empty()) {
    out.Add(path("datacenter_ids"), "must name at least one datacenter when the scope is a list");
  } else {
    if (std::any_of(rules.datacenter_ids.begin(), rules.datacenter_ids.end(),
                    [](const std::string& id) { return id.empty(); })) {
      out.Add(path("datacenter_ids"), "must not contain an empty id");
    }
    std::set<std::string> unique(rules.datacenter_ids.begin(), rules.datacenter_ids.end());
    if (unique.size() != rules.datacenter_ids.size()) {
      out.Add(path("datacenter_ids"), "must not contain duplicates");
    }
  }
  CheckEnumList(rules.allowed_accelerators, /*required=*/false, path("allowed_accelerators"), out);

  // A separate domestic ratio exists to favour domestic accelerators, so it may only raise the
  // subsidy.
  if (rules.domestic_ratio_bps < 0 || rules.domestic_ratio_bps > kMaxBps) {
    out.Add(path("domestic_ratio_bps"),
            absl::StrCat("must be 0 or within the subsidy ratio..10000, got ",
                         rules.domestic_ratio_bps));
  } else if (rules.domestic_ratio_bps != 0 && ratio_valid &&
             rules.domestic_ratio_bps < rules.subsidy_ratio_bps) {
    out.Add(path("domestic_ratio_bps"),
            absl::StrCat("must be 0 or at least the subsidy ratio of ", rules.subsidy_ratio_bps,
                         ", got ", rules.domestic_ratio_bps));
  }
  if (rules.price_ceiling_fen_per_gpu_hour <= 0) {
    out.Add(path("price_ceiling_fen_per_gpu_hour"),
            absl::StrCat("must be positive, got ", rules.price_ceiling_fen_per_gpu_hour));
  }
  return out.Finish("PROGRAM_RULES_INVALID");
}

absl::Status CheckProgramTransition(ProgramState from, ProgramState to) {
  bool allowed = (from == ProgramState::kDraft && to == ProgramState::kOpen) ||
                 (from == ProgramState::kOpen && to == ProgramState::kClosed) ||
                 (from == ProgramState::kClosed && to == ProgramState::kArchived) ||
                 (from == ProgramState::kDraft && to == ProgramState::kArchived);
  if (allowed) return absl::OkStatus();
  return DomainError(
      absl::StatusCode::kFailedPrecondition, "PROGRAM_STATE_INVALID",
      absl::StrCat("a program cannot move from ", StateName(from), " to ", StateName(to)));
}

absl::Status CheckEligibility(const ProgramFacts& program, const EnterpriseFacts& enterprise,
                              const EnterpriseStanding& standing, int64_t requested_fen,
                              absl::Time now) {
  const ProgramRules& rules = program.rules;
  if (program.state != ProgramState::kOpen) return NotOpen(program.state);
  // Half-open [start, end): an application at the stroke of the end is late.
  if (now < rules.application_start || now >= rules.application_end) {
    return DomainError(
        absl::StatusCode::kFailedPrecondition, "WINDOW_CLOSED",
        absl::StrCat("applications are accepted from ", Rfc3339(rules.application_start), " until ",
                     Rfc3339(rules.application_end), ", now is ", Rfc3339(now)));
  }
  if (std::find(rules.eligible_kinds.begin(), rules.eligible_kinds.end(), enterprise.kind) ==
      rules.eligible_kinds.end()) {
    return DomainError(absl::StatusCode::kFailedPrecondition, "NOT_ELIGIBLE_KIND",
                       absl::StrCat("enterprise kind ", KindName(enterprise.kind),
                                    " is not eligible for this program"));
  }
  if (std::find(rules.eligible_sizes.begin(), rules.eligible_sizes.end(), enterprise.size) ==
      rules.eligible_sizes.end()) {
    return DomainError(absl::StatusCode::kFailedPrecondition, "NOT_ELIGIBLE_SIZE",
                       absl::StrCat("enterprise size ", SizeName(enterprise.size),
                                    " is not eligible for this program"));
  }
  if (rules.local_enterprises_only &&
      !RegionWithin(enterprise.region_code, program.issuer_region_code, program.issuer_level)) {
    return DomainError(absl::StatusCode::kFailedPrecondition, "NOT_ELIGIBLE_REGION",
                       absl::StrCat("enterprise region '", enterprise.region_code,
                                    "' is outside the ", LevelName(program.issuer_level),
                                    " issuer's region ", program.issuer_region_code));
  }
  if (requested_fen <= 0) {
    return DomainError(
        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID",
        absl::StrCat("requested amount must be positive, got ", requested_fen, " fen"));
  }
  return CheckMaxAndCap(rules, standing, requested_fen, "requested");
}

absl::Status CheckAward(const ProgramFacts& program, const EnterpriseStanding& standing,
                        int64_t requested_fen, int64_t amount_fen) {
  if (program.state != ProgramState::kOpen) return NotOpen(program.state);
  if (amount_fen <= 0) {
    return DomainError(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID",
                       absl::StrCat("award amount must be positive, got ", amount_fen, " fen"));
  }
  if (amount_fen > requested_fen) {
    return DomainError(
        absl::StatusCode::kFailedPrecondition, "AMOUNT_EXCEEDS_REQUEST",
        absl::StrCat("amount ", amount_fen, " fen exceeds the requested ", requested_fen, " fen"));
  }
  if (absl::Status status = CheckMaxAndCap(program.rules, standing, amount_fen, "amount");
      !status.ok()) {
    return status;
  }
  if (amount_fen > program.budget_available_fen) {
    return DomainError(absl::StatusCode::kFailedPrecondition, "BUDGET_EXHAUSTED",
                       absl::StrCat("amount ", amount_fen, " fen exceeds the available budget of ",
                                    program.budget_available_fen, " fen"));
  }
  return absl::OkStatus();
}

}  // namespace vch::policy
