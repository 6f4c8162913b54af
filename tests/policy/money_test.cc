#include "policy/money.h"

#include <gtest/gtest.h>

#include <limits>

#include "tests/testing/test_db.h"

namespace vch::policy {
namespace {

using ::vch::testing::StatusIs;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

struct BillCase {
  int64_t gpu_seconds;
  int64_t price;
  int64_t bill;
};

class BillTest : public ::testing::TestWithParam<BillCase> {};

TEST_P(BillTest, FloorsTowardsZero) {
  absl::StatusOr<int64_t> bill = BillFen(GetParam().gpu_seconds, GetParam().price);
  ASSERT_TRUE(bill.ok()) << bill.status();
  EXPECT_EQ(*bill, GetParam().bill);
}

INSTANTIATE_TEST_SUITE_P(Table, BillTest,
                         ::testing::Values(BillCase{0, 1200, 0}, BillCase{3600, 1200, 1200},
                                           BillCase{1, 1200, 0},        // 0.33 fen -> 0
                                           BillCase{3599, 3600, 3599},  // exact
                                           BillCase{7199, 1, 1},        // 1.9997 -> 1
                                           BillCase{kMax, 3600, kMax},  // 128-bit intermediate
                                           BillCase{3600, 0, 0}));

TEST(BillTest, OverflowAndNegativeAreErrors) {
  EXPECT_THAT(BillFen(kMax, 3601), StatusIs(absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"));
  EXPECT_THAT(BillFen(-1, 100), StatusIs(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"));
  EXPECT_THAT(BillFen(1, -100), StatusIs(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"));
}

TEST(SubsidyTest, RoundsAgainstTheSubsidy) {
  EXPECT_EQ(*SubsidyFen(999, 8000), 799);  // 799.2 -> 799
  EXPECT_EQ(*SubsidyFen(1000, 8000), 800);
  EXPECT_EQ(*SubsidyFen(1, 9999), 0);
  EXPECT_EQ(*SubsidyFen(kMax, 10000), kMax);
  EXPECT_EQ(*SubsidyFen(kMax, 0), 0);
  for (int64_t bill : {int64_t{0}, int64_t{1}, int64_t{12345}, kMax}) {
    for (int32_t ratio : {0, 1, 3333, 8000, 10000}) {
      int64_t s = *SubsidyFen(bill, ratio);
      EXPECT_LE(static_cast<__int128>(s) * 10000, static_cast<__int128>(bill) * ratio);
      EXPECT_GT((static_cast<__int128>(s) + 1) * 10000, static_cast<__int128>(bill) * ratio);
    }
  }
}

TEST(SubsidyTest, RejectsRatioOutsideRangeAndNegativeBill) {
  EXPECT_THAT(SubsidyFen(100, 10001),
              StatusIs(absl::StatusCode::kInvalidArgument, "RATIO_INVALID"));
  EXPECT_THAT(SubsidyFen(100, -1), StatusIs(absl::StatusCode::kInvalidArgument, "RATIO_INVALID"));
  EXPECT_THAT(SubsidyFen(-1, 10), StatusIs(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID"));
}

TEST(CheckedAddTest, DetectsOverflowBothWays) {
  EXPECT_EQ(*CheckedAddFen(kMax - 1, 1), kMax);
  EXPECT_THAT(CheckedAddFen(kMax, 1), StatusIs(absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"));
  EXPECT_THAT(CheckedAddFen(std::numeric_limits<int64_t>::min(), -1),
              StatusIs(absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW"));
}

}  // namespace
}  // namespace vch::policy
