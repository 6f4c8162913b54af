#include "policy/settlement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "tests/testing/test_db.h"

namespace vch::policy {
namespace {

using ::vch::testing::StatusIs;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// Every expected number in the tables below is worked out by hand (the int64 edges with
// 128-bit reasoning, noted next to the case) and written literally.

std::string Describe(const UsageInput& in) {
  std::ostringstream os;
  os << "{gpu_seconds=" << in.gpu_seconds << " price=" << in.price_fen_per_gpu_hour
     << " ratio_bps=" << in.ratio_bps << " remaining_hold=" << in.remaining_hold_fen
     << " monthly_room=" << in.monthly_room_fen << " final=" << in.final << "}";
  return os.str();
}

struct SettleCase {
  const char* name;
  UsageInput in;
  UsageSettlement want;
};

void PrintTo(const SettleCase& c, std::ostream* os) { *os << c.name; }

class SettleUsageTest : public ::testing::TestWithParam<SettleCase> {};

TEST_P(SettleUsageTest, SettlesExactly) {
  const SettleCase& c = GetParam();
  SCOPED_TRACE(Describe(c.in));
  absl::StatusOr<UsageSettlement> got = SettleUsage(c.in);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bill_fen, c.want.bill_fen);
  EXPECT_EQ(got->subsidy_fen, c.want.subsidy_fen);
  EXPECT_EQ(got->copay_fen, c.want.copay_fen);
  EXPECT_STREQ(SubsidyCapName(got->capped_by), SubsidyCapName(c.want.capped_by));
  EXPECT_EQ(got->released_fen, c.want.released_fen);
  EXPECT_EQ(got->remaining_after_fen, c.want.remaining_after_fen);
}

std::string CaseName(const ::testing::TestParamInfo<SettleCase>& info) { return info.param.name; }

// Bill and subsidy both floor, i.e. round against the subsidy. The hold is large and there is
// no monthly limit, so neither cap binds.
INSTANTIATE_TEST_SUITE_P(
    Rounding, SettleUsageTest,
    ::testing::Values(
        // 1 * 3599 / 3600 = 0.9997 -> 0.
        SettleCase{"OneSecondBelowOneFen",
                   {.gpu_seconds = 1,
                    .price_fen_per_gpu_hour = 3599,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 1000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 0,
                    .subsidy_fen = 0,
                    .copay_fen = 0,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 1000}},
        // 1 fen per second: bill 3599; 3599 * 0.8 = 2879.2 -> 2879.
        SettleCase{"ExactBill3599Seconds",
                   {.gpu_seconds = 3599,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 10000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 3599,
                    .subsidy_fen = 2879,
                    .copay_fen = 720,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 7121}},
        // Bill 3601; 3601 * 0.5 = 1800.5 -> 1800.
        SettleCase{"ExactBill3601SecondsHalfRatio",
                   {.gpu_seconds = 3601,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 5000,
                    .remaining_hold_fen = 10000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 3601,
                    .subsidy_fen = 1800,
                    .copay_fen = 1801,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 8200}},
        // 7199 / 3600 = 1.9997 -> 1; 1 * 0.9999 -> 0.
        SettleCase{"BillJustBelowTwoFen",
                   {.gpu_seconds = 7199,
                    .price_fen_per_gpu_hour = 1,
                    .ratio_bps = 9999,
                    .remaining_hold_fen = 10,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 1,
                    .subsidy_fen = 0,
                    .copay_fen = 1,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 10}},
        // Bill 1 (one hour at 1 fen); 1 * 0.9999 -> 0: the enterprise pays the whole fen.
        SettleCase{"BillOneAt9999Bps",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 1,
                    .ratio_bps = 9999,
                    .remaining_hold_fen = 10,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 1,
                    .subsidy_fen = 0,
                    .copay_fen = 1,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 10}},
        // Bill 10001; 10001 * 0.5 = 5000.5 -> 5000.
        SettleCase{"Bill10001AtHalf",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 10001,
                    .ratio_bps = 5000,
                    .remaining_hold_fen = 6000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 10001,
                    .subsidy_fen = 5000,
                    .copay_fen = 5001,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 1000}},
        // Bill 3; 3 * 3333 = 9999 < 10000 -> 0.
        SettleCase{"BillThreeAt3333Bps",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 3,
                    .ratio_bps = 3333,
                    .remaining_hold_fen = 10,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 3,
                    .subsidy_fen = 0,
                    .copay_fen = 3,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 10}},
        // Bill 9999 at 1 bps: 0.9999 -> 0.
        SettleCase{"Bill9999AtOneBps",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 9999,
                    .ratio_bps = 1,
                    .remaining_hold_fen = 10,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 9999,
                    .subsidy_fen = 0,
                    .copay_fen = 9999,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 10}},
        // Bill 10000 at 1 bps: exactly 1.
        SettleCase{"Bill10000AtOneBps",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 10000,
                    .ratio_bps = 1,
                    .remaining_hold_fen = 10,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 10000,
                    .subsidy_fen = 1,
                    .copay_fen = 9999,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 9}},
        // 90 minutes at 1201 fen/h: 5400 * 1201 / 3600 = 1801.5 -> 1801; * 0.8 = 1440.8 -> 1440.
        SettleCase{"BothFloorsInOneRecord",
                   {.gpu_seconds = 5400,
                    .price_fen_per_gpu_hour = 1201,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 2000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 1801,
                    .subsidy_fen = 1440,
                    .copay_fen = 361,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 560}},
        // Full ratio: the voucher pays the whole bill.
        SettleCase{"FullRatioPaysEverything",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 12345,
                    .ratio_bps = 10000,
                    .remaining_hold_fen = 20000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 12345,
                    .subsidy_fen = 12345,
                    .copay_fen = 0,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 7655}}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    ZeroUsage, SettleUsageTest,
    ::testing::Values(SettleCase{"FinalReleasesWholeHold",
                                 {.gpu_seconds = 0,
                                  .price_fen_per_gpu_hour = 1200,
                                  .ratio_bps = 8000,
                                  .remaining_hold_fen = 5000,
                                  .monthly_room_fen = -1,
                                  .final = true},
                                 {.bill_fen = 0,
                                  .subsidy_fen = 0,
                                  .copay_fen = 0,
                                  .capped_by = SubsidyCap::kNone,
                                  .released_fen = 5000,
                                  .remaining_after_fen = 0}},
                      SettleCase{"NonFinalKeepsWholeHold",
                                 {.gpu_seconds = 0,
                                  .price_fen_per_gpu_hour = 1200,
                                  .ratio_bps = 8000,
                                  .remaining_hold_fen = 5000,
                                  .monthly_room_fen = -1,
                                  .final = false},
                                 {.bill_fen = 0,
                                  .subsidy_fen = 0,
                                  .copay_fen = 0,
                                  .capped_by = SubsidyCap::kNone,
                                  .released_fen = 0,
                                  .remaining_after_fen = 5000}},
                      // Nothing held, nothing billed, no room: a zero subsidy is not "capped".
                      SettleCase{"NothingAnywhereIsNotCapped",
                                 {.gpu_seconds = 0,
                                  .price_fen_per_gpu_hour = 1200,
                                  .ratio_bps = 8000,
                                  .remaining_hold_fen = 0,
                                  .monthly_room_fen = 0,
                                  .final = true},
                                 {.bill_fen = 0,
                                  .subsidy_fen = 0,
                                  .copay_fen = 0,
                                  .capped_by = SubsidyCap::kNone,
                                  .released_fen = 0,
                                  .remaining_after_fen = 0}},
                      SettleCase{"FinalReleasesMaxHold",
                                 {.gpu_seconds = 0,
                                  .price_fen_per_gpu_hour = kMax,
                                  .ratio_bps = 10000,
                                  .remaining_hold_fen = kMax,
                                  .monthly_room_fen = -1,
                                  .final = true},
                                 {.bill_fen = 0,
                                  .subsidy_fen = 0,
                                  .copay_fen = 0,
                                  .capped_by = SubsidyCap::kNone,
                                  .released_fen = kMax,
                                  .remaining_after_fen = 0}}),
    CaseName);

// Two hours at 1200 fen/h: bill 2400, uncapped subsidy 2400 * 0.8 = 1920.
INSTANTIATE_TEST_SUITE_P(BeyondEstimate, SettleUsageTest,
                         ::testing::Values(SettleCase{"HoldCapsSubsidy",
                                                      {.gpu_seconds = 7200,
                                                       .price_fen_per_gpu_hour = 1200,
                                                       .ratio_bps = 8000,
                                                       .remaining_hold_fen = 960,
                                                       .monthly_room_fen = -1,
                                                       .final = false},
                                                      {.bill_fen = 2400,
                                                       .subsidy_fen = 960,
                                                       .copay_fen = 1440,
                                                       .capped_by = SubsidyCap::kHold,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}},
                                           SettleCase{"HoldCapsSubsidyFinal",
                                                      {.gpu_seconds = 7200,
                                                       .price_fen_per_gpu_hour = 1200,
                                                       .ratio_bps = 8000,
                                                       .remaining_hold_fen = 960,
                                                       .monthly_room_fen = -1,
                                                       .final = true},
                                                      {.bill_fen = 2400,
                                                       .subsidy_fen = 960,
                                                       .copay_fen = 1440,
                                                       .capped_by = SubsidyCap::kHold,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}},
                                           SettleCase{"HoldOneFenShort",
                                                      {.gpu_seconds = 7200,
                                                       .price_fen_per_gpu_hour = 1200,
                                                       .ratio_bps = 8000,
                                                       .remaining_hold_fen = 1919,
                                                       .monthly_room_fen = -1,
                                                       .final = false},
                                                      {.bill_fen = 2400,
                                                       .subsidy_fen = 1919,
                                                       .copay_fen = 481,
                                                       .capped_by = SubsidyCap::kHold,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}},
                                           // Exactly enough held: uses it all, not capped (the cap
                                           // needs subsidy > hold).
                                           SettleCase{"HoldExactlyEnough",
                                                      {.gpu_seconds = 7200,
                                                       .price_fen_per_gpu_hour = 1200,
                                                       .ratio_bps = 8000,
                                                       .remaining_hold_fen = 1920,
                                                       .monthly_room_fen = -1,
                                                       .final = false},
                                                      {.bill_fen = 2400,
                                                       .subsidy_fen = 1920,
                                                       .copay_fen = 480,
                                                       .capped_by = SubsidyCap::kNone,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}},
                                           SettleCase{"NoHoldLeft",
                                                      {.gpu_seconds = 7200,
                                                       .price_fen_per_gpu_hour = 1200,
                                                       .ratio_bps = 8000,
                                                       .remaining_hold_fen = 0,
                                                       .monthly_room_fen = -1,
                                                       .final = false},
                                                      {.bill_fen = 2400,
                                                       .subsidy_fen = 0,
                                                       .copay_fen = 2400,
                                                       .capped_by = SubsidyCap::kHold,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}},
                                           SettleCase{"NoHoldLeftFinal",
                                                      {.gpu_seconds = 7200,
                                                       .price_fen_per_gpu_hour = 1200,
                                                       .ratio_bps = 8000,
                                                       .remaining_hold_fen = 0,
                                                       .monthly_room_fen = 500,
                                                       .final = true},
                                                      {.bill_fen = 2400,
                                                       .subsidy_fen = 0,
                                                       .copay_fen = 2400,
                                                       .capped_by = SubsidyCap::kHold,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}}),
                         CaseName);

// Bill 2400, uncapped subsidy 1920 again; the hold is 5000 unless the case is about both caps.
INSTANTIATE_TEST_SUITE_P(
    MonthlyLimit, SettleUsageTest,
    ::testing::Values(
        SettleCase{"RoomSmallerThanSubsidy",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 5000,
                    .monthly_room_fen = 1000,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1000,
                    .copay_fen = 1400,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 0,
                    .remaining_after_fen = 4000}},
        SettleCase{"RoomSmallerThanSubsidyFinal",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 5000,
                    .monthly_room_fen = 1000,
                    .final = true},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1000,
                    .copay_fen = 1400,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 4000,
                    .remaining_after_fen = 0}},
        SettleCase{"NoRoom",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 5000,
                    .monthly_room_fen = 0,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 0,
                    .copay_fen = 2400,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 0,
                    .remaining_after_fen = 5000}},
        SettleCase{"Unlimited",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 5000,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1920,
                    .copay_fen = 480,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 3080}},
        // Room exactly the subsidy: not capped (the cap needs subsidy > room).
        SettleCase{"RoomExactlyEnough",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 5000,
                    .monthly_room_fen = 1920,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1920,
                    .copay_fen = 480,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 3080}},
        SettleCase{"RoomOneFenShort",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 5000,
                    .monthly_room_fen = 1919,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1919,
                    .copay_fen = 481,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 0,
                    .remaining_after_fen = 3081}},
        // Both below 1920: room 1000 < hold 1500, the room binds.
        SettleCase{"BothCapRoomSmaller",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 1500,
                    .monthly_room_fen = 1000,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1000,
                    .copay_fen = 1400,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 0,
                    .remaining_after_fen = 500}},
        SettleCase{"BothCapRoomSmallerFinal",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 1500,
                    .monthly_room_fen = 1000,
                    .final = true},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1000,
                    .copay_fen = 1400,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 500,
                    .remaining_after_fen = 0}},
        // Hold 1000 < room 1500: the hold binds.
        SettleCase{"BothCapHoldSmaller",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 1000,
                    .monthly_room_fen = 1500,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1000,
                    .copay_fen = 1400,
                    .capped_by = SubsidyCap::kHold,
                    .released_fen = 0,
                    .remaining_after_fen = 0}},
        // Tie: the hold is applied first and the monthly cap needs subsidy > room, so HOLD.
        SettleCase{"BothCapTieNamesHold",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 1000,
                    .monthly_room_fen = 1000,
                    .final = false},
                   {.bill_fen = 2400,
                    .subsidy_fen = 1000,
                    .copay_fen = 1400,
                    .capped_by = SubsidyCap::kHold,
                    .released_fen = 0,
                    .remaining_after_fen = 0}},
        SettleCase{"BothZeroTieNamesHold",
                   {.gpu_seconds = 7200,
                    .price_fen_per_gpu_hour = 1200,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = 0,
                    .monthly_room_fen = 0,
                    .final = true},
                   {.bill_fen = 2400,
                    .subsidy_fen = 0,
                    .copay_fen = 2400,
                    .capped_by = SubsidyCap::kHold,
                    .released_fen = 0,
                    .remaining_after_fen = 0}}),
    CaseName);

// Bill 3600 (one hour at 3600 fen/h), subsidy 3600 * 0.75 = 2700, hold 10000.
INSTANTIATE_TEST_SUITE_P(FinalRecord, SettleUsageTest,
                         ::testing::Values(SettleCase{"NonFinalKeepsTheRest",
                                                      {.gpu_seconds = 3600,
                                                       .price_fen_per_gpu_hour = 3600,
                                                       .ratio_bps = 7500,
                                                       .remaining_hold_fen = 10000,
                                                       .monthly_room_fen = -1,
                                                       .final = false},
                                                      {.bill_fen = 3600,
                                                       .subsidy_fen = 2700,
                                                       .copay_fen = 900,
                                                       .capped_by = SubsidyCap::kNone,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 7300}},
                                           SettleCase{"FinalReleasesTheRest",
                                                      {.gpu_seconds = 3600,
                                                       .price_fen_per_gpu_hour = 3600,
                                                       .ratio_bps = 7500,
                                                       .remaining_hold_fen = 10000,
                                                       .monthly_room_fen = -1,
                                                       .final = true},
                                                      {.bill_fen = 3600,
                                                       .subsidy_fen = 2700,
                                                       .copay_fen = 900,
                                                       .capped_by = SubsidyCap::kNone,
                                                       .released_fen = 7300,
                                                       .remaining_after_fen = 0}},
                                           SettleCase{"FinalUsesHoldExactly",
                                                      {.gpu_seconds = 3600,
                                                       .price_fen_per_gpu_hour = 3600,
                                                       .ratio_bps = 7500,
                                                       .remaining_hold_fen = 2700,
                                                       .monthly_room_fen = -1,
                                                       .final = true},
                                                      {.bill_fen = 3600,
                                                       .subsidy_fen = 2700,
                                                       .copay_fen = 900,
                                                       .capped_by = SubsidyCap::kNone,
                                                       .released_fen = 0,
                                                       .remaining_after_fen = 0}}),
                         CaseName);

// kMax = 2^63 - 1 = 9223372036854775807.
// kMax * 9999 / 10000 = kMax - kMax / 10000 = kMax - 922337203685477.5807
//                     = 9222449699651090329.4193 -> 9222449699651090329,
// which leaves kMax - 9222449699651090329 = 922337203685478 for the enterprise.
INSTANTIATE_TEST_SUITE_P(
    Int64Limits, SettleUsageTest,
    ::testing::Values(
        // kMax * 3600 / 3600 needs the 128-bit intermediate and is exactly kMax.
        SettleCase{"MaxSecondsAt3600",
                   {.gpu_seconds = kMax,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 10000,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = kMax,
                    .subsidy_fen = kMax,
                    .copay_fen = 0,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 0}},
        SettleCase{"MaxPriceFor3600Seconds",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = kMax,
                    .ratio_bps = 10000,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = -1,
                    .final = true},
                   {.bill_fen = kMax,
                    .subsidy_fen = kMax,
                    .copay_fen = 0,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 0}},
        SettleCase{"MaxBillAt9999Bps",
                   {.gpu_seconds = kMax,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 9999,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = kMax,
                    .subsidy_fen = 9222449699651090329,
                    .copay_fen = 922337203685478,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 922337203685478}},
        SettleCase{"MaxBillAt9999BpsFinal",
                   {.gpu_seconds = kMax,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 9999,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = kMax,
                    .final = true},
                   {.bill_fen = kMax,
                    .subsidy_fen = 9222449699651090329,
                    .copay_fen = 922337203685478,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 922337203685478,
                    .remaining_after_fen = 0}},
        // kMax * 0.5 = 4611686018427387903.5 -> 4611686018427387903 (= 2^62 - 1).
        SettleCase{"MaxBillAtHalf",
                   {.gpu_seconds = kMax,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 5000,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = kMax,
                    .subsidy_fen = 4611686018427387903,
                    .copay_fen = 4611686018427387904,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 4611686018427387904}},
        // A max bill against a small hold: the copay is nearly the whole bill.
        SettleCase{"MaxBillSmallHold",
                   {.gpu_seconds = kMax,
                    .price_fen_per_gpu_hour = 3600,
                    .ratio_bps = 10000,
                    .remaining_hold_fen = 7,
                    .monthly_room_fen = -1,
                    .final = true},
                   {.bill_fen = kMax,
                    .subsidy_fen = 7,
                    .copay_fen = 9223372036854775800,
                    .capped_by = SubsidyCap::kHold,
                    .released_fen = 0,
                    .remaining_after_fen = 0}},
        SettleCase{"MaxHoldSmallBillFinal",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 100,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = -1,
                    .final = true},
                   {.bill_fen = 100,
                    .subsidy_fen = 80,
                    .copay_fen = 20,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 9223372036854775727,
                    .remaining_after_fen = 0}},
        SettleCase{"MaxHoldSmallBillNonFinal",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = 100,
                    .ratio_bps = 8000,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = -1,
                    .final = false},
                   {.bill_fen = 100,
                    .subsidy_fen = 80,
                    .copay_fen = 20,
                    .capped_by = SubsidyCap::kNone,
                    .released_fen = 0,
                    .remaining_after_fen = 9223372036854775727}},
        SettleCase{"MaxBillMaxHoldRoomOneBelow",
                   {.gpu_seconds = 3600,
                    .price_fen_per_gpu_hour = kMax,
                    .ratio_bps = 10000,
                    .remaining_hold_fen = kMax,
                    .monthly_room_fen = 9223372036854775806,
                    .final = true},
                   {.bill_fen = kMax,
                    .subsidy_fen = 9223372036854775806,
                    .copay_fen = 1,
                    .capped_by = SubsidyCap::kMonthlyLimit,
                    .released_fen = 1,
                    .remaining_after_fen = 0}}),
    CaseName);

struct SettleErrorCase {
  const char* name;
  UsageInput in;
  absl::StatusCode code;
  const char* reason;
};

void PrintTo(const SettleErrorCase& c, std::ostream* os) { *os << c.name; }

class SettleUsageErrorTest : public ::testing::TestWithParam<SettleErrorCase> {};

TEST_P(SettleUsageErrorTest, Rejects) {
  EXPECT_THAT(SettleUsage(GetParam().in), StatusIs(GetParam().code, GetParam().reason))
      << Describe(GetParam().in);
}

constexpr UsageInput kValidUsage = {.gpu_seconds = 3600,
                                    .price_fen_per_gpu_hour = 1200,
                                    .ratio_bps = 8000,
                                    .remaining_hold_fen = 5000,
                                    .monthly_room_fen = -1,
                                    .final = false};

UsageInput With(void (*change)(UsageInput&)) {
  UsageInput in = kValidUsage;
  change(in);
  return in;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SettleUsageErrorTest,
    ::testing::Values(
        SettleErrorCase{"NegativeSeconds", With([](UsageInput& in) { in.gpu_seconds = -1; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        SettleErrorCase{"MinSeconds", With([](UsageInput& in) { in.gpu_seconds = kMin; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        SettleErrorCase{"ZeroPrice", With([](UsageInput& in) { in.price_fen_per_gpu_hour = 0; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        SettleErrorCase{"NegativePrice",
                        With([](UsageInput& in) { in.price_fen_per_gpu_hour = -1200; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        SettleErrorCase{"ZeroRatio", With([](UsageInput& in) { in.ratio_bps = 0; }),
                        absl::StatusCode::kInvalidArgument, "RATIO_INVALID"},
        SettleErrorCase{"NegativeRatio", With([](UsageInput& in) { in.ratio_bps = -1; }),
                        absl::StatusCode::kInvalidArgument, "RATIO_INVALID"},
        SettleErrorCase{"RatioAboveOne", With([](UsageInput& in) { in.ratio_bps = 10001; }),
                        absl::StatusCode::kInvalidArgument, "RATIO_INVALID"},
        SettleErrorCase{"NegativeHold", With([](UsageInput& in) { in.remaining_hold_fen = -1; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        SettleErrorCase{"RoomMinusTwo", With([](UsageInput& in) { in.monthly_room_fen = -2; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        SettleErrorCase{"RoomMin", With([](UsageInput& in) { in.monthly_room_fen = kMin; }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        // Amounts are checked before the ratio.
        SettleErrorCase{"NegativeSecondsAndBadRatio", With([](UsageInput& in) {
                          in.gpu_seconds = -1;
                          in.ratio_bps = 0;
                        }),
                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
        // kMax * kMax / 3600 is about 2.4e34.
        SettleErrorCase{"MaxSecondsAtMaxPrice", With([](UsageInput& in) {
                          in.gpu_seconds = kMax;
                          in.price_fen_per_gpu_hour = kMax;
                        }),
                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
        // kMax * 3601 / 3600 = kMax + kMax / 3600 > kMax.
        SettleErrorCase{"MaxSecondsAt3601", With([](UsageInput& in) {
                          in.gpu_seconds = kMax;
                          in.price_fen_per_gpu_hour = 3601;
                        }),
                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
        SettleErrorCase{"Seconds3601AtMaxPrice", With([](UsageInput& in) {
                          in.gpu_seconds = 3601;
                          in.price_fen_per_gpu_hour = kMax;
                        }),
                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
        // Overflow is reported even when the hold is final and would release nothing.
        SettleErrorCase{"OverflowOnFinalRecord", With([](UsageInput& in) {
                          in.gpu_seconds = kMax;
                          in.price_fen_per_gpu_hour = kMax;
                          in.remaining_hold_fen = 0;
                          in.final = true;
                        }),
                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"}),
    [](const ::testing::TestParamInfo<SettleErrorCase>& info) {
      return std::string(info.param.name);
    });

struct EstimateCase {
  const char* name;
  int64_t gpus;
  int64_t hours;
  int64_t price;
  int32_t ratio_bps;
  int64_t bill;
  int64_t hold;
};

void PrintTo(const EstimateCase& c, std::ostream* os) { *os << c.name; }

class EstimateHoldTest : public ::testing::TestWithParam<EstimateCase> {};

TEST_P(EstimateHoldTest, HoldsTheFlooredShare) {
  const EstimateCase& c = GetParam();
  absl::StatusOr<Estimate> got = EstimateHold(c.gpus, c.hours, c.price, c.ratio_bps);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bill_fen, c.bill);
  EXPECT_EQ(got->hold_fen, c.hold);
}

// kMax = 7 * 73 * 18049651735527937 exactly (7 * 73 = 511, 511 * 18049651735527937 =
// 9223372036854775807), so that estimate is a bill of exactly kMax.
// kMax * 0.8 = 7378697629483820645.6 -> 7378697629483820645.
INSTANTIATE_TEST_SUITE_P(
    Table, EstimateHoldTest,
    ::testing::Values(EstimateCase{"OneFen", 1, 1, 1, 10000, 1, 1},
                      EstimateCase{"OneFenAt9999Bps", 1, 1, 1, 9999, 1, 0},
                      EstimateCase{"TwoGpusThreeHours", 2, 3, 1200, 8000, 7200, 5760},
                      // 8 * 24 * 3333 = 639936; * 0.75 = 479952.
                      EstimateCase{"EightGpusADay", 8, 24, 3333, 7500, 639936, 479952},
                      // 3 * 5 * 7 = 105; 105 * 3333 / 10000 = 34.9965 -> 34.
                      EstimateCase{"FloorsTheHold", 3, 5, 7, 3333, 105, 34},
                      EstimateCase{"MaxPrice", 1, 1, kMax, 10000, kMax, kMax},
                      EstimateCase{"MaxPriceAt9999Bps", 1, 1, kMax, 9999, kMax,
                                   9222449699651090329},
                      EstimateCase{"MaxGpus", kMax, 1, 1, 1, kMax, 922337203685477},
                      EstimateCase{"ProductExactlyMax", 7, 73, 18049651735527937, 8000, kMax,
                                   7378697629483820645},
                      // 3 * 3074457345618258602 = 9223372036854775806 = kMax - 1.
                      EstimateCase{"ProductOneBelowMax", 1, 3, 3074457345618258602, 10000,
                                   9223372036854775806, 9223372036854775806}),
    [](const ::testing::TestParamInfo<EstimateCase>& info) {
      return std::string(info.param.name);
    });

struct EstimateErrorCase {
  const char* name;
  int64_t gpus;
  int64_t hours;
  int64_t price;
  int32_t ratio_bps;
  absl::StatusCode code;
  const char* reason;
};

void PrintTo(const EstimateErrorCase& c, std::ostream* os) { *os << c.name; }

class EstimateHoldErrorTest : public ::testing::TestWithParam<EstimateErrorCase> {};

TEST_P(EstimateHoldErrorTest, Rejects) {
  const EstimateErrorCase& c = GetParam();
  absl::StatusOr<Estimate> got = EstimateHold(c.gpus, c.hours, c.price, c.ratio_bps);
  EXPECT_THAT(got, StatusIs(c.code, c.reason)) << "got bill " << (got.ok() ? got->bill_fen : -1)
                                               << " hold " << (got.ok() ? got->hold_fen : -1);
}

INSTANTIATE_TEST_SUITE_P(
    Table, EstimateHoldErrorTest,
    ::testing::Values(EstimateErrorCase{"ZeroGpus", 0, 1, 1200, 8000,
                                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
                      EstimateErrorCase{"NegativeGpus", -1, 1, 1200, 8000,
                                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
                      EstimateErrorCase{"ZeroHours", 1, 0, 1200, 8000,
                                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
                      EstimateErrorCase{"NegativeHours", 1, kMin, 1200, 8000,
                                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
                      EstimateErrorCase{"ZeroPrice", 1, 1, 0, 8000,
                                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
                      EstimateErrorCase{"NegativePrice", 1, 1, -1200, 8000,
                                        absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"},
                      EstimateErrorCase{"ZeroRatio", 1, 1, 1200, 0,
                                        absl::StatusCode::kInvalidArgument, "RATIO_INVALID"},
                      EstimateErrorCase{"RatioAboveOne", 1, 1, 1200, 10001,
                                        absl::StatusCode::kInvalidArgument, "RATIO_INVALID"},
                      // 2 * 2^62 = 2^63 = kMax + 1.
                      EstimateErrorCase{"ProductMaxPlusOne", 2, 1, 4611686018427387904, 8000,
                                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
                      // 3 * 3074457345618258603 = kMax + 2.
                      EstimateErrorCase{"ProductMaxPlusTwo", 1, 3, 3074457345618258603, 10000,
                                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
                      // 511 * 18049651735527938 = kMax + 511.
                      EstimateErrorCase{"ProductMaxPlus511", 7, 73, 18049651735527938, 8000,
                                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
                      EstimateErrorCase{"AllMax", kMax, kMax, kMax, 8000,
                                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
                      // The three-way product exceeds even 128 bits: 2^62 * 2^62 * 16 = 2^128, and
                      // kMax * kMax * 4 = 2^128 * 3 - 2^66 + 4 (about 2^129.6). Still an overflow.
                      EstimateErrorCase{"ProductIs2To128", 4611686018427387904, 4611686018427387904,
                                        16, 8000, absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"},
                      EstimateErrorCase{"ProductAbove2To129", kMax, kMax, 4, 10000,
                                        absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"}),
    [](const ::testing::TestParamInfo<EstimateErrorCase>& info) {
      return std::string(info.param.name);
    });

struct RatioCase {
  const char* name;
  int32_t subsidy_ratio_bps;
  int32_t domestic_ratio_bps;
  bool domestic_pool;
  int32_t effective;
};

void PrintTo(const RatioCase& c, std::ostream* os) { *os << c.name; }

class EffectiveRatioBpsTest : public ::testing::TestWithParam<RatioCase> {};

TEST_P(EffectiveRatioBpsTest, PicksTheApplicableRatio) {
  const RatioCase& c = GetParam();
  EXPECT_EQ(EffectiveRatioBps(c.subsidy_ratio_bps, c.domestic_ratio_bps, c.domestic_pool),
            c.effective);
}

INSTANTIATE_TEST_SUITE_P(
    Table, EffectiveRatioBpsTest,
    ::testing::Values(RatioCase{"DomesticPoolWithDomesticRatio", 8000, 9000, true, 9000},
                      // A lower domestic ratio also applies: it is the program's choice.
                      RatioCase{"DomesticPoolWithLowerDomesticRatio", 8000, 5000, true, 5000},
                      RatioCase{"DomesticPoolWithoutDomesticRatio", 8000, 0, true, 8000},
                      RatioCase{"DomesticPoolNegativeDomesticRatioIsUnset", 8000, -1, true, 8000},
                      RatioCase{"OtherPoolIgnoresDomesticRatio", 8000, 9000, false, 8000},
                      RatioCase{"OtherPoolWithoutDomesticRatio", 8000, 0, false, 8000}),
    [](const ::testing::TestParamInfo<RatioCase>& info) { return std::string(info.param.name); });

TEST(SubsidyCapNameTest, NamesAreStable) {
  EXPECT_STREQ(SubsidyCapName(SubsidyCap::kNone), "");
  EXPECT_STREQ(SubsidyCapName(SubsidyCap::kHold), "HOLD");
  EXPECT_STREQ(SubsidyCapName(SubsidyCap::kMonthlyLimit), "MONTHLY_LIMIT");
}

// Randomized invariants. Deterministic by default (seed 42); VCH_TEST_SEED overrides it to
// explore, and the seed is logged either way.
uint64_t PropertySeed() {
  const char* env = std::getenv("VCH_TEST_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 42;
}

// A value >= lo drawn across magnitudes: small, log-uniform over all 63 bits, near kMax and
// the usual edges.
int64_t DrawAmount(std::mt19937_64& rng, int64_t lo) {
  int64_t v = 0;
  switch (rng() % 4) {
    case 0:
      v = static_cast<int64_t>(rng() % 10001);
      break;
    case 1: {
      const int bits = static_cast<int>(rng() % 64);  // 0..63
      v = bits == 0 ? 0 : static_cast<int64_t>(rng() >> (64 - bits));
      break;
    }
    case 2:
      v = kMax - static_cast<int64_t>(rng() % 10001);
      break;
    default: {
      constexpr int64_t kEdges[] = {0, 1, 2, 3599, 3600, 3601, 9999, 10000, 10001, kMax - 1, kMax};
      v = kEdges[rng() % std::size(kEdges)];
      break;
    }
  }
  return std::max(v, lo);
}

// Near `target` (within +-2), clamped to [lo, kMax].
int64_t Near(std::mt19937_64& rng, __int128 target, int64_t lo) {
  const __int128 v = target + static_cast<__int128>(rng() % 5) - 2;
  return static_cast<int64_t>(std::clamp<__int128>(v, lo, kMax));
}

int32_t DrawRatio(std::mt19937_64& rng) {
  constexpr int32_t kEdges[] = {1, 2, 3333, 5000, 9999, 10000};
  return rng() % 2 == 0 ? kEdges[rng() % std::size(kEdges)]
                        : static_cast<int32_t>(1 + rng() % 10000);
}

TEST(SettleUsagePropertyTest, InvariantsHoldAndSubsidyIsTheLargestAllowed) {
  const uint64_t seed = PropertySeed();
  std::cout << "seed=" << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr int kCases = 100000;
  int settled = 0;
  int overflowed = 0;
  int by_hold = 0;
  int by_room = 0;
  int uncapped_positive = 0;
  for (int i = 0; i < kCases; ++i) {
    UsageInput in;
    in.gpu_seconds = DrawAmount(rng, 0);
    in.price_fen_per_gpu_hour = DrawAmount(rng, 1);
    if (in.gpu_seconds > 0 && rng() % 4 == 0) {
      // A price that puts the bill right at the int64 edge, on either side.
      in.price_fen_per_gpu_hour = Near(rng, static_cast<__int128>(kMax) * 3600 / in.gpu_seconds, 1);
    }
    in.ratio_bps = DrawRatio(rng);
    // Bill and uncapped subsidy computed here, in 128 bits, independently of the code.
    const __int128 bill128 =
        static_cast<__int128>(in.gpu_seconds) * in.price_fen_per_gpu_hour / 3600;
    // bill128 < 2^115, so bill128 * ratio could exceed 2^127: scale only bills that fit int64
    // (an overflowing bill is rejected anyway; it just steers the hold and room draws).
    const __int128 full128 = bill128 > kMax ? bill128 : bill128 * in.ratio_bps / 10000;
    switch (rng() % 4) {
      case 0:
        in.remaining_hold_fen = DrawAmount(rng, 0);
        break;
      case 1:
        in.remaining_hold_fen = Near(rng, full128, 0);
        break;
      case 2:
        in.remaining_hold_fen = kMax;
        break;
      default:
        in.remaining_hold_fen = 0;
        break;
    }
    switch (rng() % 5) {
      case 0:
        in.monthly_room_fen = -1;
        break;
      case 1:
        in.monthly_room_fen = DrawAmount(rng, 0);
        break;
      case 2:
        in.monthly_room_fen = Near(rng, full128, 0);
        break;
      case 3:
        in.monthly_room_fen = in.remaining_hold_fen;  // ties with the hold
        break;
      default:
        in.monthly_room_fen = 0;
        break;
    }
    in.final = rng() % 2 == 0;

    absl::StatusOr<UsageSettlement> got = SettleUsage(in);
    if (bill128 > kMax) {
      ASSERT_THAT(got, StatusIs(absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"))
          << "case " << i << " " << Describe(in);
      ++overflowed;
      continue;
    }
    ASSERT_TRUE(got.ok()) << "case " << i << " " << Describe(in) << ": " << got.status();
    ++settled;
    const UsageSettlement& s = *got;
    const __int128 subsidy = s.subsidy_fen;
    const __int128 remaining = in.remaining_hold_fen;
    __int128 want = std::min(full128, remaining);
    if (in.monthly_room_fen >= 0) want = std::min<__int128>(want, in.monthly_room_fen);

    ASSERT_EQ(s.bill_fen, static_cast<int64_t>(bill128)) << "case " << i << " " << Describe(in);
    ASSERT_GE(s.subsidy_fen, 0) << "case " << i << " " << Describe(in);
    ASSERT_LE(subsidy * 10000, static_cast<__int128>(s.bill_fen) * in.ratio_bps)
        << "case " << i << " " << Describe(in);
    ASSERT_LE(subsidy, remaining) << "case " << i << " " << Describe(in);
    if (in.monthly_room_fen >= 0) {
      ASSERT_LE(s.subsidy_fen, in.monthly_room_fen) << "case " << i << " " << Describe(in);
    }
    ASSERT_GE(s.copay_fen, 0) << "case " << i << " " << Describe(in);
    ASSERT_EQ(static_cast<__int128>(s.bill_fen), subsidy + s.copay_fen)
        << "case " << i << " " << Describe(in);
    ASSERT_GE(s.released_fen, 0) << "case " << i << " " << Describe(in);
    ASSERT_GE(s.remaining_after_fen, 0) << "case " << i << " " << Describe(in);
    ASSERT_EQ(static_cast<__int128>(s.released_fen) + s.remaining_after_fen + subsidy, remaining)
        << "case " << i << " " << Describe(in);
    if (in.final) {
      ASSERT_EQ(s.remaining_after_fen, 0) << "case " << i << " " << Describe(in);
    } else {
      ASSERT_EQ(s.released_fen, 0) << "case " << i << " " << Describe(in);
    }
    // The largest subsidy within all three caps, and capped_by names the binding one.
    ASSERT_TRUE(subsidy == want) << "case " << i << " " << Describe(in) << ": subsidy "
                                 << s.subsidy_fen << ", want " << static_cast<int64_t>(want);
    switch (s.capped_by) {
      case SubsidyCap::kNone:
        ASSERT_TRUE(subsidy == full128) << "case " << i << " " << Describe(in);
        if (subsidy > 0) ++uncapped_positive;
        break;
      case SubsidyCap::kHold:
        ASSERT_TRUE(subsidy == remaining && remaining < full128)
            << "case " << i << " " << Describe(in);
        ASSERT_TRUE(in.monthly_room_fen < 0 || in.monthly_room_fen >= in.remaining_hold_fen)
            << "case " << i << " " << Describe(in);
        ++by_hold;
        break;
      case SubsidyCap::kMonthlyLimit:
        ASSERT_GE(in.monthly_room_fen, 0) << "case " << i << " " << Describe(in);
        ASSERT_EQ(s.subsidy_fen, in.monthly_room_fen) << "case " << i << " " << Describe(in);
        ASSERT_TRUE(subsidy < full128 && in.monthly_room_fen < in.remaining_hold_fen)
            << "case " << i << " " << Describe(in);
        ++by_room;
        break;
    }
  }
  std::cout << "settled=" << settled << " overflowed=" << overflowed << " by_hold=" << by_hold
            << " by_room=" << by_room << " uncapped_positive=" << uncapped_positive << "\n";
  // The sample must actually reach every branch, or the test proves little.
  EXPECT_GT(settled, kCases / 4);
  EXPECT_GT(overflowed, kCases / 100);
  EXPECT_GT(by_hold, kCases / 100);
  EXPECT_GT(by_room, kCases / 100);
  EXPECT_GT(uncapped_positive, kCases / 100);
}

// EstimateHold against an overflow check done a different way: step by step in int64 with
// the compiler's checked multiply.
TEST(EstimateHoldPropertyTest, OverflowIffTheProductDoesNotFitInt64) {
  const uint64_t seed = PropertySeed();
  std::cout << "seed=" << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr int kCases = 20000;
  int fits = 0;
  int overflows = 0;
  int mishandled = 0;
  int accepted = 0;  // of those mishandled: returned OK
  std::string first_mishandled;
  for (int i = 0; i < kCases; ++i) {
    const int64_t gpus = DrawAmount(rng, 1);
    const int64_t hours = DrawAmount(rng, 1);
    const int64_t price = DrawAmount(rng, 1);
    const int32_t ratio = DrawRatio(rng);
    int64_t gpu_hours = 0;
    int64_t bill = 0;
    const bool overflow = __builtin_mul_overflow(gpus, hours, &gpu_hours) ||
                          __builtin_mul_overflow(gpu_hours, price, &bill);
    absl::StatusOr<Estimate> got = EstimateHold(gpus, hours, price, ratio);
    if (overflow) {
      ++overflows;
      // Counted rather than asserted at once, so a failure says how common it is.
      if (got.status().code() == absl::StatusCode::kOutOfRange &&
          ReasonOf(got.status()) == "AMOUNT_OVERFLOW") {
        continue;
      }
      if (got.ok()) ++accepted;
      if (mishandled++ == 0) {
        first_mishandled =
            absl::StrCat("case ", i, " gpus=", gpus, " hours=", hours, " price=", price, " -> ",
                         got.ok() ? absl::StrCat("bill ", got->bill_fen, " hold ", got->hold_fen)
                                  : got.status().ToString());
      }
      continue;
    }
    ASSERT_TRUE(got.ok()) << "case " << i << ": " << got.status();
    ASSERT_EQ(got->bill_fen, bill);
    const __int128 scaled = static_cast<__int128>(bill) * ratio;
    ASSERT_LE(static_cast<__int128>(got->hold_fen) * 10000, scaled);
    ASSERT_GT((static_cast<__int128>(got->hold_fen) + 1) * 10000, scaled);
    ++fits;
  }
  std::cout << "fits=" << fits << " overflows=" << overflows << "\n";
  EXPECT_EQ(mishandled, 0) << "overflowing estimates not reported as AMOUNT_OVERFLOW (" << accepted
                           << " returned OK); first: " << first_mishandled;
  EXPECT_GT(fits, kCases / 10);
  EXPECT_GT(overflows, kCases / 10);
}

}  // namespace
}  // namespace vch::policy
