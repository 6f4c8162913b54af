#include "policy/programs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "tests/testing/test_db.h"

namespace vch::policy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::vch::testing::IsOk;
using ::vch::testing::StatusIs;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kPrecondition = absl::StatusCode::kFailedPrecondition;

// China Standard Time: the windows are set in the program office's local midnight.
absl::Time Cst(int year, int month, int day) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, 0, 0, 0),
                         absl::FixedTimeZone(8 * 60 * 60));
}

// Modeled on Shanghai's municipal compute vouchers: a large annual budget, a subsidy of most of
// the rental bill, a per-enterprise cap and a higher ratio for domestic accelerators.
ProgramRules ShanghaiRules() {
  ProgramRules r;
  r.name = "上海市人工智能算力券（2024年度）";
  r.category = ProgramCategory::kAiRental;
  r.planned_budget_fen = 60'000'000'000;   // 600 million yuan
  r.subsidy_ratio_bps = 8000;              // 80%
  r.per_enterprise_cap_fen = 100'000'000;  // 1 million yuan
  r.max_award_fen = 50'000'000;            // 500 thousand yuan per award
  r.monthly_spend_limit_fen = 0;
  r.eligible_kinds = {EnterpriseKind::kSme, EnterpriseKind::kStartup};
  r.eligible_sizes = {SizeClass::kMicro, SizeClass::kSmall, SizeClass::kMedium};
  r.local_enterprises_only = true;
  r.application_start = Cst(2024, 1, 1);
  r.application_end = Cst(2024, 7, 1);
  r.redemption_start = Cst(2024, 1, 15);
  r.redemption_end = Cst(2025, 1, 1);
  r.datacenter_scope = DatacenterScope::kLocal;
  r.allowed_accelerators = {};
  r.domestic_ratio_bps = 9000;
  r.price_ceiling_fen_per_gpu_hour = 2500;  // 25 yuan
  return r;
}

std::string Repeat(absl::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, s);
  return out;
}

// --- Unified social credit code. ---

// An implementation independent of the one under test: weights computed as powers of 3 rather
// than read from a table.
char ReferenceCheck(absl::string_view first17) {
  const std::string alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  int sum = 0;
  int weight = 1;
  for (char c : first17) {
    sum += static_cast<int>(alphabet.find(c)) * weight;
    weight = weight * 3 % 31;
  }
  return alphabet[(31 - sum % 31) % 31];
}

TEST(UsccTest, KnownCodesAreValid) {
  // 91350100M000100Y4: indices 9 1 3 5 0 1 0 0 M=21 0 0 0 1 0 0 Y=30 4, weights 1 3 9 27 19 26
  // 16 17 20 29 25 13 8 24 10 30 28: 9+3+27+135+26+420+8+900+112 = 1640 = 52*31 + 28, so the
  // check is 31-28 = 3.
  EXPECT_EQ(UsccCheckCharacter("91350100M000100Y4"), '3');
  EXPECT_THAT(ValidateUscc("91350100M000100Y43"), IsOk());
  // 91440300708461136: 9+3+36+108+78+140+200+52+48+24+10+90+168 = 966 = 31*31 + 5, so the check
  // is 31-5 = 26, T.
  EXPECT_EQ(UsccCheckCharacter("91440300708461136"), 'T');
  EXPECT_THAT(ValidateUscc("91440300708461136T"), IsOk());
  // A sum divisible by 31 gives check 0, not alphabet[31].
  EXPECT_EQ(UsccCheckCharacter("00000000000000000"), '0');
  EXPECT_THAT(ValidateUscc("000000000000000000"), IsOk());
  // 1 at position 17 (weight 28): 31-28 = 3. Y at position 1 (30): 31-30 = 1.
  EXPECT_EQ(UsccCheckCharacter("00000000000000001"), '3');
  EXPECT_EQ(UsccCheckCharacter("Y0000000000000000"), '1');
  // 1 at position 1 (weight 1): 31-1 = 30, Y (the largest index).
  EXPECT_EQ(UsccCheckCharacter("10000000000000000"), 'Y');
}

TEST(UsccTest, AgreesWithTheReference) {
  for (absl::string_view first17 :
       {"91350100M000100Y4", "91440300708461136", "91310000MA1FL4XY2", "YYYYYYYYYYYYYYYYY",
        "12345678ABCDEFGHJ", "KLMNPQRTUWXY00000"}) {
    EXPECT_EQ(UsccCheckCharacter(first17), ReferenceCheck(first17)) << first17;
  }
}

TEST(UsccTest, FailsWithTheCheckCharacterItShouldHave) {
  // Passed around as an example, but its check character is D: 2498 = 80*31 + 18, 31-18 = 13.
  absl::Status status = ValidateUscc("91310000MA1FL4XY2K");
  EXPECT_THAT(status, StatusIs(kInvalid, "USCC_INVALID"));
  EXPECT_THAT(FieldViolationsOf(status),
              ElementsAre(FieldViolation{"uscc", "check character should be D"}));
  EXPECT_THAT(ValidateUscc("91310000MA1FL4XY2D"), IsOk());
}

struct LengthCase {
  std::string code;
  std::string description;
};
void PrintTo(const LengthCase& c, std::ostream* os) { *os << "'" << c.code << "'"; }

class UsccLengthTest : public ::testing::TestWithParam<LengthCase> {};

TEST_P(UsccLengthTest, NamesTheLength) {
  absl::Status status = ValidateUscc(GetParam().code);
  EXPECT_THAT(status, StatusIs(kInvalid, "USCC_INVALID"));
  EXPECT_THAT(FieldViolationsOf(status),
              ElementsAre(FieldViolation{"uscc", GetParam().description}));
}

INSTANTIATE_TEST_SUITE_P(
    Table, UsccLengthTest,
    ::testing::Values(LengthCase{"", "must be 18 characters, got 0"},
                      LengthCase{"91350100M000100Y4", "must be 18 characters, got 17"},
                      LengthCase{"91350100M000100Y433", "must be 18 characters, got 19"},
                      // Bytes, not characters: a full-width digit is three bytes.
                      LengthCase{"91350100M000100Y4３", "must be 18 characters, got 20"}));

class UsccCharacterTest : public ::testing::TestWithParam<int> {};

TEST_P(UsccCharacterTest, NamesThePositionOfEachBadCharacter) {
  const int position = GetParam();  // 0-based
  for (char bad : {'I', 'O', 'Z', 'S', 'V', 'a', 'y', '-', ' '}) {
    std::string code = "91350100M000100Y43";
    code[position] = bad;
    absl::Status status = ValidateUscc(code);
    EXPECT_THAT(status, StatusIs(kInvalid, "USCC_INVALID")) << code;
    std::vector<FieldViolation> violations = FieldViolationsOf(status);
    ASSERT_THAT(violations, SizeIs(1));
    EXPECT_EQ(violations[0].field, "uscc");
    EXPECT_THAT(violations[0].description,
                HasSubstr(absl::StrCat("character ", position + 1, " ('", std::string(1, bad))))
        << code;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryPosition, UsccCharacterTest, ::testing::Range(0, 18));

class UsccSubstitutionTest : public ::testing::TestWithParam<int> {};

// Every weight is non-zero modulo the prime 31, so changing any one of the first 17 characters
// changes the check character.
TEST_P(UsccSubstitutionTest, ChangingOneCharacterBreaksTheCheck) {
  const int position = GetParam();
  const std::string alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  const std::string valid = "91350100M000100Y43";
  for (char replacement : alphabet) {
    if (replacement == valid[position]) continue;
    std::string code = valid;
    code[position] = replacement;
    absl::Status status = ValidateUscc(code, "enterprise.uscc");
    EXPECT_THAT(status, StatusIs(kInvalid, "USCC_INVALID")) << code;
    EXPECT_THAT(
        FieldViolationsOf(status),
        ElementsAre(FieldViolation{
            "enterprise.uscc", absl::StrCat("check character should be ",
                                            std::string(1, ReferenceCheck(code.substr(0, 17))))}))
        << code;
    // ... and the recomputed character makes it valid again.
    code[17] = ReferenceCheck(code.substr(0, 17));
    EXPECT_THAT(ValidateUscc(code), IsOk()) << code;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryPosition, UsccSubstitutionTest, ::testing::Range(0, 17));

// --- Regions. ---

struct RegionCase {
  std::string code;
  IssuerLevel level;
  bool ok;
};
void PrintTo(const RegionCase& c, std::ostream* os) {
  *os << "'" << c.code << "' at level " << static_cast<int>(c.level);
}

class RegionLevelTest : public ::testing::TestWithParam<RegionCase> {};

TEST_P(RegionLevelTest, AcceptsOnlyCodesOfTheLevel) {
  absl::Status status = ValidateRegionForLevel(GetParam().code, GetParam().level);
  if (GetParam().ok) {
    EXPECT_THAT(status, IsOk());
  } else {
    EXPECT_THAT(status, StatusIs(kInvalid, "REGION_INVALID"));
    std::vector<FieldViolation> violations = FieldViolationsOf(status);
    ASSERT_THAT(violations, SizeIs(1));
    EXPECT_EQ(violations[0].field, "region_code");
  }
}

constexpr IssuerLevel kCity = IssuerLevel::kCity;
constexpr IssuerLevel kProvince = IssuerLevel::kProvince;
constexpr IssuerLevel kNational = IssuerLevel::kNational;

INSTANTIATE_TEST_SUITE_P(
    Table, RegionLevelTest,
    ::testing::Values(
        // National.
        RegionCase{"000000", kNational, true}, RegionCase{"310000", kNational, false},
        RegionCase{"310100", kNational, false}, RegionCase{"00000", kNational, false},
        // Province-level: municipalities, provinces, autonomous regions, Taiwan, HK, Macao.
        RegionCase{"110000", kProvince, true}, RegionCase{"310000", kProvince, true},
        RegionCase{"440000", kProvince, true}, RegionCase{"650000", kProvince, true},
        RegionCase{"710000", kProvince, true}, RegionCase{"810000", kProvince, true},
        RegionCase{"820000", kProvince, true}, RegionCase{"310100", kProvince, false},
        RegionCase{"310115", kProvince, false}, RegionCase{"000000", kProvince, false},
        RegionCase{"160000", kProvince, false}, RegionCase{"720000", kProvince, false},
        RegionCase{"990000", kProvince, false},
        // City.
        RegionCase{"310100", kCity, true}, RegionCase{"440300", kCity, true},
        RegionCase{"320500", kCity, true}, RegionCase{"310000", kCity, false},
        RegionCase{"310115", kCity, false}, RegionCase{"000000", kCity, false},
        RegionCase{"000100", kCity, false}, RegionCase{"550100", kCity, false},
        // Not six digits.
        RegionCase{"", kCity, false}, RegionCase{"31010", kCity, false},
        RegionCase{"3101000", kCity, false}, RegionCase{"31010A", kCity, false},
        RegionCase{"31-100", kProvince, false}, RegionCase{" 10000", kProvince, false}));

TEST(RegionTest, ExactlyTheThirtyFourProvincePrefixesAreAccepted) {
  std::vector<int> accepted;
  for (int p = 0; p < 100; ++p) {
    std::string code = absl::StrCat(p / 10, p % 10, "0000");
    if (ValidateRegionForLevel(code, kProvince).ok()) accepted.push_back(p);
  }
  EXPECT_THAT(accepted,
              ElementsAre(11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43,
                          44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82));
}

TEST(RegionTest, ViolationIsOnTheGivenField) {
  absl::Status status = ValidateRegionForLevel("310115", kCity, "issuer.region_code");
  ASSERT_THAT(FieldViolationsOf(status), SizeIs(1));
  EXPECT_EQ(FieldViolationsOf(status)[0].field, "issuer.region_code");
}

struct WithinCase {
  std::string enterprise;
  std::string issuer;
  IssuerLevel level;
  bool within;
};
void PrintTo(const WithinCase& c, std::ostream* os) {
  *os << "'" << c.enterprise << "' in '" << c.issuer << "' at level " << static_cast<int>(c.level);
}

class RegionWithinTest : public ::testing::TestWithParam<WithinCase> {};

TEST_P(RegionWithinTest, ComparesThePrefixOfTheLevel) {
  EXPECT_EQ(RegionWithin(GetParam().enterprise, GetParam().issuer, GetParam().level),
            GetParam().within);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RegionWithinTest,
    ::testing::Values(WithinCase{"310115", "000000", kNational, true},
                      WithinCase{"650102", "000000", kNational, true},
                      WithinCase{"310115", "310000", kProvince, true},
                      WithinCase{"310000", "310000", kProvince, true},
                      WithinCase{"320102", "310000", kProvince, false},
                      WithinCase{"320506", "320500", kCity, true},   // Suzhou, Gusu district
                      WithinCase{"320500", "320500", kCity, true},   // the city itself
                      WithinCase{"320102", "320500", kCity, false},  // Nanjing, same province
                      WithinCase{"310115", "320500", kCity, false},
                      WithinCase{"", "310000", kProvince, false},
                      WithinCase{"3", "310000", kProvince, false},
                      WithinCase{"321", "320500", kCity, false}, WithinCase{"", "", kCity, false}));

// --- Program rules. ---

TEST(ProgramRulesTest, ShanghaiLikeRulesAreValid) {
  EXPECT_THAT(ValidateProgramRules(ShanghaiRules()), IsOk());
}

struct RulesCase {
  std::string label;
  std::function<void(ProgramRules&)> change;
  std::string field;  // "" = still valid
};
void PrintTo(const RulesCase& c, std::ostream* os) { *os << c.label; }

std::string RulesCaseName(const ::testing::TestParamInfo<RulesCase>& info) {
  return info.param.label;
}

class ProgramRulesBoundaryTest : public ::testing::TestWithParam<RulesCase> {};

TEST_P(ProgramRulesBoundaryTest, StaysValid) {
  ProgramRules rules = ShanghaiRules();
  GetParam().change(rules);
  EXPECT_THAT(ValidateProgramRules(rules), IsOk());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ProgramRulesBoundaryTest,
    ::testing::Values(
        RulesCase{"Name200Chinese", [](ProgramRules& r) { r.name = Repeat("算", 200); }},
        RulesCase{"Name200Ascii", [](ProgramRules& r) { r.name = std::string(200, 'a'); }},
        RulesCase{"EveryCategory", [](ProgramRules& r) { r.category = ProgramCategory::kGeneral; }},
        RulesCase{"RatioOne",
                  [](ProgramRules& r) {
                    r.subsidy_ratio_bps = 1;
                    r.domestic_ratio_bps = 1;
                  }},
        RulesCase{"RatioFull",
                  [](ProgramRules& r) {
                    r.subsidy_ratio_bps = 10000;
                    r.domestic_ratio_bps = 0;
                  }},
        RulesCase{"CapEqualsBudget",
                  [](ProgramRules& r) { r.per_enterprise_cap_fen = r.planned_budget_fen; }},
        RulesCase{"MaxAwardEqualsCap",
                  [](ProgramRules& r) { r.max_award_fen = r.per_enterprise_cap_fen; }},
        RulesCase{"NoMaxAward", [](ProgramRules& r) { r.max_award_fen = 0; }},
        RulesCase{"MonthlyLimit", [](ProgramRules& r) { r.monthly_spend_limit_fen = 1; }},
        RulesCase{"AllKindsAndSizes",
                  [](ProgramRules& r) {
                    r.eligible_kinds = {EnterpriseKind::kStartup, EnterpriseKind::kSme,
                                        EnterpriseKind::kResearchInstitution};
                    r.eligible_sizes = {SizeClass::kLarge, SizeClass::kMedium, SizeClass::kSmall,
                                        SizeClass::kMicro};
                  }},
        RulesCase{"WindowsStartTogether",
                  [](ProgramRules& r) { r.redemption_start = r.application_start; }},
        RulesCase{"WindowsEndTogether",
                  [](ProgramRules& r) { r.redemption_end = r.application_end; }},
        RulesCase{"WindowsOneNanosecond",
                  [](ProgramRules& r) {
                    r.application_end = r.application_start + absl::Nanoseconds(1);
                    r.redemption_start = r.application_start;
                    r.redemption_end = r.application_end;
                  }},
        RulesCase{"NationalScope",
                  [](ProgramRules& r) { r.datacenter_scope = DatacenterScope::kNational; }},
        RulesCase{"ListScope",
                  [](ProgramRules& r) {
                    r.datacenter_scope = DatacenterScope::kList;
                    r.datacenter_ids = {"sh-lingang-1", "sh-minhang-2"};
                  }},
        RulesCase{"AllAccelerators",
                  [](ProgramRules& r) {
                    r.allowed_accelerators = {AcceleratorClass::kDomestic,
                                              AcceleratorClass::kFp8Capable,
                                              AcceleratorClass::kFp16Datacenter};
                  }},
        RulesCase{"DomesticSameAsSubsidy", [](ProgramRules& r) { r.domestic_ratio_bps = 0; }},
        RulesCase{"DomesticEqualsSubsidy",
                  [](ProgramRules& r) { r.domestic_ratio_bps = r.subsidy_ratio_bps; }},
        RulesCase{"DomesticFull", [](ProgramRules& r) { r.domestic_ratio_bps = 10000; }},
        RulesCase{"PriceCeilingOne", [](ProgramRules& r) { r.price_ceiling_fen_per_gpu_hour = 1; }},
        RulesCase{"Int64Extremes",
                  [](ProgramRules& r) {
                    r.planned_budget_fen = kMax;
                    r.per_enterprise_cap_fen = kMax;
                    r.max_award_fen = kMax;
                    r.monthly_spend_limit_fen = kMax;
                    r.price_ceiling_fen_per_gpu_hour = kMax;
                  }}),
    RulesCaseName);

class ProgramRulesSingleProblemTest : public ::testing::TestWithParam<RulesCase> {};

TEST_P(ProgramRulesSingleProblemTest, GivesExactlyOneViolationOnTheField) {
  ProgramRules rules = ShanghaiRules();
  GetParam().change(rules);
  absl::Status status = ValidateProgramRules(rules);
  EXPECT_THAT(status, StatusIs(kInvalid, "PROGRAM_RULES_INVALID"));
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  ASSERT_THAT(violations, SizeIs(1)) << status;
  EXPECT_EQ(violations[0].field, absl::StrCat("program.", GetParam().field));
  EXPECT_FALSE(violations[0].description.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ProgramRulesSingleProblemTest,
    ::testing::Values(
        RulesCase{"NameEmpty", [](ProgramRules& r) { r.name.clear(); }, "name"},
        RulesCase{"Name201Ascii", [](ProgramRules& r) { r.name = std::string(201, 'a'); }, "name"},
        RulesCase{"Name201Chinese", [](ProgramRules& r) { r.name = Repeat("算", 201); }, "name"},
        RulesCase{"CategoryUnknown",
                  [](ProgramRules& r) { r.category = static_cast<ProgramCategory>(0); },
                  "category"},
        RulesCase{"BudgetZero", [](ProgramRules& r) { r.planned_budget_fen = 0; },
                  "planned_budget_fen"},
        RulesCase{"BudgetNegative", [](ProgramRules& r) { r.planned_budget_fen = kMin; },
                  "planned_budget_fen"},
        RulesCase{"RatioZero", [](ProgramRules& r) { r.subsidy_ratio_bps = 0; },
                  "subsidy_ratio_bps"},
        RulesCase{"RatioNegative", [](ProgramRules& r) { r.subsidy_ratio_bps = -1; },
                  "subsidy_ratio_bps"},
        RulesCase{"RatioAboveFull", [](ProgramRules& r) { r.subsidy_ratio_bps = 10001; },
                  "subsidy_ratio_bps"},
        RulesCase{"CapZero", [](ProgramRules& r) { r.per_enterprise_cap_fen = 0; },
                  "per_enterprise_cap_fen"},
        RulesCase{"CapNegative", [](ProgramRules& r) { r.per_enterprise_cap_fen = -1; },
                  "per_enterprise_cap_fen"},
        RulesCase{"CapAboveBudget",
                  [](ProgramRules& r) { r.per_enterprise_cap_fen = r.planned_budget_fen + 1; },
                  "per_enterprise_cap_fen"},
        RulesCase{"MaxAwardNegative", [](ProgramRules& r) { r.max_award_fen = -1; },
                  "max_award_fen"},
        RulesCase{"MaxAwardAboveCap",
                  [](ProgramRules& r) { r.max_award_fen = r.per_enterprise_cap_fen + 1; },
                  "max_award_fen"},
        RulesCase{"MonthlyLimitNegative", [](ProgramRules& r) { r.monthly_spend_limit_fen = -1; },
                  "monthly_spend_limit_fen"},
        RulesCase{"KindsEmpty", [](ProgramRules& r) { r.eligible_kinds.clear(); },
                  "eligible_kinds"},
        RulesCase{"KindsDuplicate",
                  [](ProgramRules& r) { r.eligible_kinds.push_back(EnterpriseKind::kSme); },
                  "eligible_kinds"},
        RulesCase{
            "KindsUnknown",
            [](ProgramRules& r) { r.eligible_kinds.push_back(static_cast<EnterpriseKind>(9)); },
            "eligible_kinds"},
        RulesCase{"SizesEmpty", [](ProgramRules& r) { r.eligible_sizes.clear(); },
                  "eligible_sizes"},
        RulesCase{"SizesDuplicate",
                  [](ProgramRules& r) {
                    r.eligible_sizes = {SizeClass::kSmall, SizeClass::kMicro, SizeClass::kSmall};
                  },
                  "eligible_sizes"},
        RulesCase{"SizesUnknown",
                  [](ProgramRules& r) { r.eligible_sizes.push_back(static_cast<SizeClass>(0)); },
                  "eligible_sizes"},
        RulesCase{"ApplicationWindowEmpty",
                  [](ProgramRules& r) { r.application_end = r.application_start; },
                  "application_window"},
        RulesCase{"ApplicationWindowReversed",
                  [](ProgramRules& r) { r.application_end = Cst(2023, 12, 31); },
                  "application_window"},
        RulesCase{"RedemptionWindowEmpty",
                  [](ProgramRules& r) { r.redemption_start = r.redemption_end; },
                  "redemption_window"},
        RulesCase{"RedemptionWindowReversed",
                  [](ProgramRules& r) {
                    r.redemption_start = Cst(2025, 6, 1);
                    r.redemption_end = Cst(2025, 5, 1);
                  },
                  "redemption_window"},
        RulesCase{"RedemptionStartsBeforeApplications",
                  [](ProgramRules& r) {
                    r.redemption_start = r.application_start - absl::Nanoseconds(1);
                  },
                  "redemption_window"},
        RulesCase{
            "RedemptionEndsBeforeApplications",
            [](ProgramRules& r) { r.redemption_end = r.application_end - absl::Nanoseconds(1); },
            "redemption_window"},
        RulesCase{"ListScopeWithoutIds",
                  [](ProgramRules& r) { r.datacenter_scope = DatacenterScope::kList; },
                  "datacenter_ids"},
        RulesCase{"LocalScopeWithIds", [](ProgramRules& r) { r.datacenter_ids = {"sh-1"}; },
                  "datacenter_ids"},
        RulesCase{"NationalScopeWithIds",
                  [](ProgramRules& r) {
                    r.datacenter_scope = DatacenterScope::kNational;
                    r.datacenter_ids = {"sh-1"};
                  },
                  "datacenter_ids"},
        RulesCase{"EmptyDatacenterId",
                  [](ProgramRules& r) {
                    r.datacenter_scope = DatacenterScope::kList;
                    r.datacenter_ids = {"sh-1", ""};
                  },
                  "datacenter_ids"},
        RulesCase{"DuplicateDatacenterId",
                  [](ProgramRules& r) {
                    r.datacenter_scope = DatacenterScope::kList;
                    r.datacenter_ids = {"sh-1", "sh-2", "sh-1"};
                  },
                  "datacenter_ids"},
        RulesCase{"ScopeUnknown",
                  [](ProgramRules& r) { r.datacenter_scope = static_cast<DatacenterScope>(0); },
                  "datacenter_scope"},
        RulesCase{
            "AcceleratorsDuplicate",
            [](ProgramRules& r) {
              r.allowed_accelerators = {AcceleratorClass::kDomestic, AcceleratorClass::kDomestic};
            },
            "allowed_accelerators"},
        RulesCase{
            "AcceleratorsUnknown",
            [](ProgramRules& r) { r.allowed_accelerators = {static_cast<AcceleratorClass>(4)}; },
            "allowed_accelerators"},
        RulesCase{"DomesticNegative", [](ProgramRules& r) { r.domestic_ratio_bps = -1; },
                  "domestic_ratio_bps"},
        RulesCase{"DomesticBelowSubsidy",
                  [](ProgramRules& r) { r.domestic_ratio_bps = r.subsidy_ratio_bps - 1; },
                  "domestic_ratio_bps"},
        RulesCase{"DomesticAboveFull", [](ProgramRules& r) { r.domestic_ratio_bps = 10001; },
                  "domestic_ratio_bps"},
        RulesCase{"PriceCeilingZero", [](ProgramRules& r) { r.price_ceiling_fen_per_gpu_hour = 0; },
                  "price_ceiling_fen_per_gpu_hour"},
        RulesCase{"PriceCeilingNegative",
                  [](ProgramRules& r) { r.price_ceiling_fen_per_gpu_hour = -2500; },
                  "price_ceiling_fen_per_gpu_hour"}),
    RulesCaseName);

TEST(ProgramRulesTest, ReportsEveryProblemInFieldOrder) {
  ProgramRules rules = ShanghaiRules();
  rules.name.clear();
  rules.subsidy_ratio_bps = 0;
  rules.per_enterprise_cap_fen = rules.planned_budget_fen + 1;
  rules.eligible_kinds.clear();
  rules.eligible_sizes = {SizeClass::kSmall, SizeClass::kSmall};
  rules.application_end = rules.application_start;
  rules.redemption_start = rules.application_start - absl::Hours(1);
  rules.redemption_end = rules.application_end - absl::Minutes(1);
  rules.datacenter_scope = DatacenterScope::kList;
  rules.price_ceiling_fen_per_gpu_hour = 0;
  absl::Status status = ValidateProgramRules(rules, "rules");
  EXPECT_THAT(status, StatusIs(kInvalid, "PROGRAM_RULES_INVALID"));
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(status)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("rules.name", "rules.subsidy_ratio_bps",
                                  "rules.per_enterprise_cap_fen", "rules.eligible_kinds",
                                  "rules.eligible_sizes", "rules.application_window",
                                  // start, end: both before the application window's
                                  "rules.redemption_window", "rules.redemption_window",
                                  "rules.datacenter_ids", "rules.price_ceiling_fen_per_gpu_hour"));
}

TEST(ProgramRulesTest, DescriptionsSayTheNumbers) {
  ProgramRules rules = ShanghaiRules();
  rules.per_enterprise_cap_fen = 70'000'000'000;
  rules.subsidy_ratio_bps = 12000;
  EXPECT_THAT(
      FieldViolationsOf(ValidateProgramRules(rules)),
      ElementsAre(FieldViolation{"program.subsidy_ratio_bps", "must be within 1..10000, got 12000"},
                  FieldViolation{"program.per_enterprise_cap_fen",
                                 "must not exceed the planned budget of 60000000000 fen, got "
                                 "70000000000"}));
}

TEST(ProgramRulesTest, ADefaultRulesObjectIsInvalidEverywhereItMustBeSet) {
  absl::Status status = ValidateProgramRules(ProgramRules{});
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(status)) fields.push_back(v.field);
  EXPECT_THAT(fields,
              ElementsAre("program.name", "program.planned_budget_fen", "program.subsidy_ratio_bps",
                          "program.per_enterprise_cap_fen", "program.eligible_kinds",
                          "program.eligible_sizes", "program.application_window",
                          "program.redemption_window", "program.price_ceiling_fen_per_gpu_hour"));
}

// --- State transitions. ---

struct TransitionCase {
  ProgramState from;
  ProgramState to;
  bool allowed;
};
void PrintTo(const TransitionCase& c, std::ostream* os) {
  *os << static_cast<int>(c.from) << " -> " << static_cast<int>(c.to);
}

class TransitionTest : public ::testing::TestWithParam<TransitionCase> {};

TEST_P(TransitionTest, AllowsOnlyTheLifecycle) {
  absl::Status status = CheckProgramTransition(GetParam().from, GetParam().to);
  if (GetParam().allowed) {
    EXPECT_THAT(status, IsOk());
  } else {
    EXPECT_THAT(status, StatusIs(kPrecondition, "PROGRAM_STATE_INVALID"));
  }
}

std::vector<TransitionCase> EveryTransition() {
  constexpr ProgramState kStates[] = {ProgramState::kDraft, ProgramState::kOpen,
                                      ProgramState::kClosed, ProgramState::kArchived};
  std::vector<TransitionCase> cases;
  for (ProgramState from : kStates) {
    for (ProgramState to : kStates) {
      bool allowed = (from == ProgramState::kDraft && to == ProgramState::kOpen) ||
                     (from == ProgramState::kOpen && to == ProgramState::kClosed) ||
                     (from == ProgramState::kClosed && to == ProgramState::kArchived) ||
                     (from == ProgramState::kDraft && to == ProgramState::kArchived);
      cases.push_back({from, to, allowed});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPairs, TransitionTest, ::testing::ValuesIn(EveryTransition()));

TEST(TransitionTest, ExactlyFourPairsAreAllowed) {
  int allowed = 0;
  for (const TransitionCase& c : EveryTransition()) allowed += c.allowed;
  EXPECT_EQ(allowed, 4);
  EXPECT_EQ(CheckProgramTransition(ProgramState::kOpen, ProgramState::kDraft).message(),
            "a program cannot move from OPEN to DRAFT");
}

// --- Eligibility. ---

// An open Shanghai program and an eligible Pudong SME asking for 100 thousand yuan on 1 March.
struct Submission {
  ProgramFacts program;
  EnterpriseFacts enterprise;
  EnterpriseStanding standing;
  int64_t requested_fen = 10'000'000;
  absl::Time now = Cst(2024, 3, 1);

  Submission() {
    program.state = ProgramState::kOpen;
    program.rules = ShanghaiRules();
    program.issuer_region_code = "310000";
    program.issuer_level = IssuerLevel::kProvince;
    program.budget_available_fen = 60'000'000'000;
    enterprise.kind = EnterpriseKind::kSme;
    enterprise.size = SizeClass::kSmall;
    enterprise.region_code = "310115";
  }

  absl::Status Check() const {
    return CheckEligibility(program, enterprise, standing, requested_fen, now);
  }
};

struct EligibilityCase {
  std::string label;
  std::function<void(Submission&)> change;
  absl::StatusCode code;  // kOk = eligible
  std::string reason;
};
void PrintTo(const EligibilityCase& c, std::ostream* os) { *os << c.label; }

std::string EligibilityCaseName(const ::testing::TestParamInfo<EligibilityCase>& info) {
  return info.param.label;
}

class EligibilityTest : public ::testing::TestWithParam<EligibilityCase> {};

TEST_P(EligibilityTest, FirstFailureWins) {
  Submission s;
  GetParam().change(s);
  if (GetParam().code == absl::StatusCode::kOk) {
    EXPECT_THAT(s.Check(), IsOk());
  } else {
    EXPECT_THAT(s.Check(), StatusIs(GetParam().code, GetParam().reason));
  }
}

TEST(EligibilityTest, BaseSubmissionIsEligible) { EXPECT_THAT(Submission().Check(), IsOk()); }

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;

INSTANTIATE_TEST_SUITE_P(
    Table, EligibilityTest,
    ::testing::Values(
        // Each rule alone.
        EligibilityCase{"Draft", [](Submission& s) { s.program.state = ProgramState::kDraft; },
                        kPrecondition, "PROGRAM_NOT_OPEN"},
        EligibilityCase{"Closed", [](Submission& s) { s.program.state = ProgramState::kClosed; },
                        kPrecondition, "PROGRAM_NOT_OPEN"},
        EligibilityCase{"Archived",
                        [](Submission& s) { s.program.state = ProgramState::kArchived; },
                        kPrecondition, "PROGRAM_NOT_OPEN"},
        EligibilityCase{
            "BeforeWindow",
            [](Submission& s) { s.now = s.program.rules.application_start - absl::Nanoseconds(1); },
            kPrecondition, "WINDOW_CLOSED"},
        EligibilityCase{"AtWindowStart",
                        [](Submission& s) { s.now = s.program.rules.application_start; }, kOk, ""},
        EligibilityCase{
            "JustBeforeWindowEnd",
            [](Submission& s) { s.now = s.program.rules.application_end - absl::Nanoseconds(1); },
            kOk, ""},
        EligibilityCase{"AtWindowEnd",
                        [](Submission& s) { s.now = s.program.rules.application_end; },
                        kPrecondition, "WINDOW_CLOSED"},
        EligibilityCase{
            "ResearchInstitution",
            [](Submission& s) { s.enterprise.kind = EnterpriseKind::kResearchInstitution; },
            kPrecondition, "NOT_ELIGIBLE_KIND"},
        EligibilityCase{"Startup",
                        [](Submission& s) { s.enterprise.kind = EnterpriseKind::kStartup; }, kOk,
                        ""},
        EligibilityCase{"Large", [](Submission& s) { s.enterprise.size = SizeClass::kLarge; },
                        kPrecondition, "NOT_ELIGIBLE_SIZE"},
        EligibilityCase{"Medium", [](Submission& s) { s.enterprise.size = SizeClass::kMedium; },
                        kOk, ""},
        EligibilityCase{"Nanjing", [](Submission& s) { s.enterprise.region_code = "320102"; },
                        kPrecondition, "NOT_ELIGIBLE_REGION"},
        EligibilityCase{"NanjingWhenNotLocalOnly",
                        [](Submission& s) {
                          s.enterprise.region_code = "320102";
                          s.program.rules.local_enterprises_only = false;
                        },
                        kOk, ""},
        EligibilityCase{"CityIssuerOtherCity",
                        [](Submission& s) {
                          s.program.issuer_region_code = "320500";
                          s.program.issuer_level = IssuerLevel::kCity;
                          s.enterprise.region_code = "320102";
                        },
                        kPrecondition, "NOT_ELIGIBLE_REGION"},
        EligibilityCase{"CityIssuerSameCity",
                        [](Submission& s) {
                          s.program.issuer_region_code = "320500";
                          s.program.issuer_level = IssuerLevel::kCity;
                          s.enterprise.region_code = "320506";
                        },
                        kOk, ""},
        EligibilityCase{"NationalIssuer",
                        [](Submission& s) {
                          s.program.issuer_region_code = "000000";
                          s.program.issuer_level = IssuerLevel::kNational;
                          s.enterprise.region_code = "650102";
                        },
                        kOk, ""},
        EligibilityCase{"RequestedZero", [](Submission& s) { s.requested_fen = 0; }, kInvalid,
                        "AMOUNT_INVALID"},
        EligibilityCase{"RequestedNegative", [](Submission& s) { s.requested_fen = kMin; },
                        kInvalid, "AMOUNT_INVALID"},
        EligibilityCase{"RequestedOne", [](Submission& s) { s.requested_fen = 1; }, kOk, ""},
        EligibilityCase{"RequestedAtMax",
                        [](Submission& s) { s.requested_fen = s.program.rules.max_award_fen; }, kOk,
                        ""},
        EligibilityCase{"RequestedAboveMax",
                        [](Submission& s) { s.requested_fen = s.program.rules.max_award_fen + 1; },
                        kPrecondition, "AWARD_MAX_EXCEEDED"},
        EligibilityCase{"NoMaxUpToCap",
                        [](Submission& s) {
                          s.program.rules.max_award_fen = 0;
                          s.requested_fen = s.program.rules.per_enterprise_cap_fen;
                        },
                        kOk, ""},
        EligibilityCase{"AtCapHeadroom",
                        [](Submission& s) {
                          s.standing.awarded_fen =
                              s.program.rules.per_enterprise_cap_fen - s.requested_fen;
                        },
                        kOk, ""},
        EligibilityCase{"AboveCapHeadroom",
                        [](Submission& s) {
                          s.standing.awarded_fen =
                              s.program.rules.per_enterprise_cap_fen - s.requested_fen + 1;
                        },
                        kPrecondition, "CAP_EXCEEDED"},
        // Budget is not an eligibility rule: it is checked at award.
        EligibilityCase{"NoBudgetLeft", [](Submission& s) { s.program.budget_available_fen = 0; },
                        kOk, ""},
        // Precedence: two rules fail, the earlier one is reported.
        EligibilityCase{"ClosedAndOutsideWindow",
                        [](Submission& s) {
                          s.program.state = ProgramState::kClosed;
                          s.now = s.program.rules.application_end;
                        },
                        kPrecondition, "PROGRAM_NOT_OPEN"},
        EligibilityCase{"OutsideWindowAndWrongKind",
                        [](Submission& s) {
                          s.now = s.program.rules.application_end;
                          s.enterprise.kind = EnterpriseKind::kResearchInstitution;
                        },
                        kPrecondition, "WINDOW_CLOSED"},
        EligibilityCase{"WrongKindAndSize",
                        [](Submission& s) {
                          s.enterprise.kind = EnterpriseKind::kResearchInstitution;
                          s.enterprise.size = SizeClass::kLarge;
                        },
                        kPrecondition, "NOT_ELIGIBLE_KIND"},
        EligibilityCase{"WrongSizeAndRegion",
                        [](Submission& s) {
                          s.enterprise.size = SizeClass::kLarge;
                          s.enterprise.region_code = "320102";
                        },
                        kPrecondition, "NOT_ELIGIBLE_SIZE"},
        EligibilityCase{"WrongRegionAndAmount",
                        [](Submission& s) {
                          s.enterprise.region_code = "320102";
                          s.requested_fen = 0;
                        },
                        kPrecondition, "NOT_ELIGIBLE_REGION"},
        EligibilityCase{"AmountInvalidAndCapReached",
                        [](Submission& s) {
                          s.standing.awarded_fen = s.program.rules.per_enterprise_cap_fen;
                          s.requested_fen = -1;
                        },
                        kInvalid, "AMOUNT_INVALID"},
        EligibilityCase{"AboveMaxAndCap",
                        [](Submission& s) {
                          s.standing.awarded_fen = s.program.rules.per_enterprise_cap_fen;
                          s.requested_fen = s.program.rules.max_award_fen + 1;
                        },
                        kPrecondition, "AWARD_MAX_EXCEEDED"}),
    EligibilityCaseName);

TEST(EligibilityTest, MessagesSayTheNumbers) {
  Submission s;
  s.program.rules.per_enterprise_cap_fen = 1'000'000;
  s.program.rules.max_award_fen = 0;
  s.standing.awarded_fen = 800'000;
  s.requested_fen = 500'000;
  EXPECT_EQ(s.Check().message(), "requested 500000 fen exceeds the remaining cap of 200000 fen");

  s.program.rules.max_award_fen = 300'000;
  EXPECT_EQ(s.Check().message(),
            "requested 500000 fen exceeds the per-award maximum of 300000 fen");

  s.requested_fen = 0;
  EXPECT_THAT(s.Check().message(), HasSubstr("got 0 fen"));
}

TEST(EligibilityTest, CapArithmeticDoesNotOverflow) {
  Submission s;
  s.program.rules.planned_budget_fen = kMax;
  s.program.rules.per_enterprise_cap_fen = kMax;
  s.program.rules.max_award_fen = 0;
  s.standing.awarded_fen = kMax - 1;
  s.requested_fen = 1;
  EXPECT_THAT(s.Check(), IsOk());
  // kMax - 1 + 2 wraps to a negative number in 64 bits, which would pass a naive check.
  s.requested_fen = 2;
  EXPECT_THAT(s.Check(), StatusIs(kPrecondition, "CAP_EXCEEDED"));
  EXPECT_EQ(s.Check().message(), "requested 2 fen exceeds the remaining cap of 1 fen");
  s.standing.awarded_fen = kMax;
  s.requested_fen = kMax;
  EXPECT_THAT(s.Check(), StatusIs(kPrecondition, "CAP_EXCEEDED"));
  EXPECT_EQ(s.Check().message(),
            absl::StrCat("requested ", kMax, " fen exceeds the remaining cap of 0 fen"));
}

TEST(EligibilityTest, RemainingCapIsNeverNegative) {
  // The cap was lowered below what the enterprise already holds.
  Submission s;
  s.program.rules.per_enterprise_cap_fen = 100;
  s.program.rules.max_award_fen = 0;
  s.standing.awarded_fen = 150;
  s.requested_fen = 1;
  EXPECT_THAT(s.Check(), StatusIs(kPrecondition, "CAP_EXCEEDED"));
  EXPECT_EQ(s.Check().message(), "requested 1 fen exceeds the remaining cap of 0 fen");
}

// --- Awards. ---

// Approving the full 100 thousand yuan asked for by an enterprise with nothing yet.
struct Approval {
  ProgramFacts program = Submission().program;
  EnterpriseStanding standing;
  int64_t requested_fen = 10'000'000;
  int64_t amount_fen = 10'000'000;

  absl::Status Check() const { return CheckAward(program, standing, requested_fen, amount_fen); }
};

struct AwardCase {
  std::string label;
  std::function<void(Approval&)> change;
  absl::StatusCode code;
  std::string reason;
};
void PrintTo(const AwardCase& c, std::ostream* os) { *os << c.label; }

std::string AwardCaseName(const ::testing::TestParamInfo<AwardCase>& info) {
  return info.param.label;
}

class AwardTest : public ::testing::TestWithParam<AwardCase> {};

TEST_P(AwardTest, FirstFailureWins) {
  Approval a;
  GetParam().change(a);
  if (GetParam().code == absl::StatusCode::kOk) {
    EXPECT_THAT(a.Check(), IsOk());
  } else {
    EXPECT_THAT(a.Check(), StatusIs(GetParam().code, GetParam().reason));
  }
}

TEST(AwardTest, BaseApprovalIsAllowed) { EXPECT_THAT(Approval().Check(), IsOk()); }

INSTANTIATE_TEST_SUITE_P(
    Table, AwardTest,
    ::testing::Values(
        AwardCase{"Draft", [](Approval& a) { a.program.state = ProgramState::kDraft; },
                  kPrecondition, "PROGRAM_NOT_OPEN"},
        AwardCase{"Closed", [](Approval& a) { a.program.state = ProgramState::kClosed; },
                  kPrecondition, "PROGRAM_NOT_OPEN"},
        AwardCase{"Archived", [](Approval& a) { a.program.state = ProgramState::kArchived; },
                  kPrecondition, "PROGRAM_NOT_OPEN"},
        AwardCase{"AmountZero", [](Approval& a) { a.amount_fen = 0; }, kInvalid, "AMOUNT_INVALID"},
        AwardCase{"AmountNegative", [](Approval& a) { a.amount_fen = kMin; }, kInvalid,
                  "AMOUNT_INVALID"},
        AwardCase{"AmountOne", [](Approval& a) { a.amount_fen = 1; }, kOk, ""},
        AwardCase{"AboveRequest", [](Approval& a) { a.amount_fen = a.requested_fen + 1; },
                  kPrecondition, "AMOUNT_EXCEEDS_REQUEST"},
        AwardCase{
            "AtMax",
            [](Approval& a) { a.requested_fen = a.amount_fen = a.program.rules.max_award_fen; },
            kOk, ""},
        AwardCase{
            "AboveMax",
            [](Approval& a) { a.requested_fen = a.amount_fen = a.program.rules.max_award_fen + 1; },
            kPrecondition, "AWARD_MAX_EXCEEDED"},
        AwardCase{"AtCapHeadroom",
                  [](Approval& a) {
                    a.standing.awarded_fen = a.program.rules.per_enterprise_cap_fen - a.amount_fen;
                  },
                  kOk, ""},
        AwardCase{"AboveCapHeadroom",
                  [](Approval& a) {
                    a.standing.awarded_fen =
                        a.program.rules.per_enterprise_cap_fen - a.amount_fen + 1;
                  },
                  kPrecondition, "CAP_EXCEEDED"},
        AwardCase{"AtBudget", [](Approval& a) { a.program.budget_available_fen = a.amount_fen; },
                  kOk, ""},
        AwardCase{"AboveBudget",
                  [](Approval& a) { a.program.budget_available_fen = a.amount_fen - 1; },
                  kPrecondition, "BUDGET_EXHAUSTED"},
        AwardCase{"NoBudget", [](Approval& a) { a.program.budget_available_fen = 0; },
                  kPrecondition, "BUDGET_EXHAUSTED"},
        // Precedence.
        AwardCase{"ClosedAndAmountZero",
                  [](Approval& a) {
                    a.program.state = ProgramState::kClosed;
                    a.amount_fen = 0;
                  },
                  kPrecondition, "PROGRAM_NOT_OPEN"},
        AwardCase{"AmountZeroAndNoBudget",
                  [](Approval& a) {
                    a.amount_fen = 0;
                    a.program.budget_available_fen = 0;
                  },
                  kInvalid, "AMOUNT_INVALID"},
        AwardCase{"AboveRequestAndMax",
                  [](Approval& a) {
                    a.requested_fen = a.program.rules.max_award_fen;
                    a.amount_fen = a.program.rules.max_award_fen + 1;
                  },
                  kPrecondition, "AMOUNT_EXCEEDS_REQUEST"},
        AwardCase{"AboveMaxAndCap",
                  [](Approval& a) {
                    a.requested_fen = a.amount_fen = a.program.rules.max_award_fen + 1;
                    a.standing.awarded_fen = a.program.rules.per_enterprise_cap_fen;
                  },
                  kPrecondition, "AWARD_MAX_EXCEEDED"},
        AwardCase{"AboveCapAndBudget",
                  [](Approval& a) {
                    a.standing.awarded_fen = a.program.rules.per_enterprise_cap_fen;
                    a.program.budget_available_fen = 0;
                  },
                  kPrecondition, "CAP_EXCEEDED"}),
    AwardCaseName);

TEST(AwardTest, MessagesSayTheNumbers) {
  Approval a;
  a.program.rules.per_enterprise_cap_fen = 1'000'000;
  a.program.rules.max_award_fen = 0;
  a.standing.awarded_fen = 800'000;
  a.requested_fen = a.amount_fen = 500'000;
  EXPECT_EQ(a.Check().message(), "amount 500000 fen exceeds the remaining cap of 200000 fen");
  a.standing.awarded_fen = 0;
  a.program.budget_available_fen = 499'999;
  EXPECT_EQ(a.Check().message(), "amount 500000 fen exceeds the available budget of 499999 fen");
  a.requested_fen = 400'000;
  EXPECT_EQ(a.Check().message(), "amount 500000 fen exceeds the requested 400000 fen");
}

TEST(AwardTest, Int64Extremes) {
  Approval a;
  a.program.rules.planned_budget_fen = kMax;
  a.program.rules.per_enterprise_cap_fen = kMax;
  a.program.rules.max_award_fen = 0;
  a.program.budget_available_fen = kMax;
  a.requested_fen = a.amount_fen = kMax;
  EXPECT_THAT(a.Check(), IsOk());

  a.standing.awarded_fen = 1;  // kMax + 1 must not wrap
  EXPECT_THAT(a.Check(), StatusIs(kPrecondition, "CAP_EXCEEDED"));

  a.standing.awarded_fen = kMax - 1;
  a.requested_fen = kMax;
  a.amount_fen = 1;
  EXPECT_THAT(a.Check(), IsOk());
  a.amount_fen = 2;
  EXPECT_THAT(a.Check(), StatusIs(kPrecondition, "CAP_EXCEEDED"));

  a.standing.awarded_fen = 0;
  a.program.budget_available_fen = kMax - 1;
  a.amount_fen = kMax;
  EXPECT_THAT(a.Check(), StatusIs(kPrecondition, "BUDGET_EXHAUSTED"));

  // An amount above a negative request is over the request, whatever the amounts.
  a.requested_fen = kMin;
  a.amount_fen = 1;
  EXPECT_THAT(a.Check(), StatusIs(kPrecondition, "AMOUNT_EXCEEDS_REQUEST"));
}

}  // namespace
}  // namespace vch::policy
