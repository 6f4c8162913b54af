#include "server/grpc_status.h"

#include <gtest/gtest.h>

#include "base/errors.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace vch::server {
namespace {

google::rpc::Status Details(const grpc::Status& status) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(status.error_details()));
  return details;
}

TEST(ToGrpcStatusTest, DomainErrorCarriesErrorInfo) {
  grpc::Status s = ToGrpcStatus(
      DomainError(absl::StatusCode::kFailedPrecondition, "BUDGET_EXHAUSTED", "budget is spent"),
      "Test.Method", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "budget is spent");
  google::rpc::Status details = Details(s);
  EXPECT_EQ(details.code(), 9);
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "BUDGET_EXHAUSTED");
  EXPECT_EQ(info.domain(), "vch.dev");
}

TEST(ToGrpcStatusTest, FieldViolationsBecomeBadRequest) {
  grpc::Status s = ToGrpcStatus(InvalidArgument({{"a.b", "bad"}, {"c", "worse"}}), "M", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details = Details(s);
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(0).field(), "a.b");
  EXPECT_EQ(bad.field_violations(1).description(), "worse");
}

TEST(ToGrpcStatusTest, InternalMessagesAreScrubbed) {
  grpc::Status s = ToGrpcStatus(absl::InternalError("password=hunter2 in query"), "M", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message().find("hunter2"), std::string::npos);
  EXPECT_NE(s.error_message().find("incident"), std::string::npos);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Details(s).details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "INTERNAL");
  EXPECT_FALSE(info.metadata().at("incident").empty());
}

TEST(ToGrpcStatusTest, PlainStatusGetsTheCodeNameAsReason) {
  grpc::Status s = ToGrpcStatus(absl::NotFoundError("no such program"), "M", nullptr);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Details(s).details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "NOT_FOUND");
}

TEST(ToGrpcStatusTest, OkIsOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus(), "M", nullptr).ok()); }

}  // namespace
}  // namespace vch::server
