#include "base/errors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/test_db.h"

namespace vch {
namespace {

using ::testing::ElementsAre;
using ::vch::testing::StatusIs;

TEST(DomainErrorTest, CarriesCodeReasonAndMessage) {
  absl::Status s =
      DomainError(absl::StatusCode::kFailedPrecondition, "BUDGET_EXHAUSTED", "no money");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition, "BUDGET_EXHAUSTED"));
  EXPECT_EQ(s.message(), "no money");
  EXPECT_TRUE(FieldViolationsOf(s).empty());
}

TEST(DomainErrorTest, PlainStatusHasNoReason) {
  EXPECT_EQ(ReasonOf(absl::InternalError("x")), "");
  EXPECT_EQ(ReasonOf(absl::OkStatus()), "");
}

TEST(InvalidArgumentTest, RoundTripsViolationsInOrder) {
  absl::Status s = InvalidArgument({{"program.ratio_bps", "must be within 1..10000"},
                                    {"program.name", "must not be empty; really"}});
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, "INVALID_ARGUMENT"));
  EXPECT_THAT(FieldViolationsOf(s),
              ElementsAre(FieldViolation{"program.ratio_bps", "must be within 1..10000"},
                          FieldViolation{"program.name", "must not be empty; really"}));
  EXPECT_EQ(s.message(),
            "program.ratio_bps: must be within 1..10000; program.name: must not be empty; really");
}

TEST(ViolationCollectorTest, OkWhenEmptyAndCustomReasonOtherwise) {
  ViolationCollector none;
  EXPECT_TRUE(none.Finish().ok());
  ViolationCollector some;
  some.Add("uscc", "check character is wrong");
  EXPECT_THAT(some.Finish("USCC_INVALID"),
              StatusIs(absl::StatusCode::kInvalidArgument, "USCC_INVALID"));
  EXPECT_THAT(FieldViolationsOf(some.Finish()),
              ElementsAre(FieldViolation{"uscc", "check character is wrong"}));
}

}  // namespace
}  // namespace vch
