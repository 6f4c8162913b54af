#include "policy/settlement.h"

#include <algorithm>

#include "base/errors.h"
#include "base/status_macros.h"
#include "policy/money.h"

namespace vch::policy {
namespace {

absl::Status AmountInvalid(absl::string_view message) {
  return DomainError(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID", message);
}

absl::Status CheckRatio(int32_t ratio_bps) {
  if (ratio_bps < 1 || ratio_bps > kBasisPointsPerUnit) {
    return DomainError(absl::StatusCode::kInvalidArgument, "RATIO_INVALID",
                       "ratio_bps must be within 1..10000");
  }
  return absl::OkStatus();
}

}  // namespace

int32_t EffectiveRatioBps(int32_t subsidy_ratio_bps, int32_t domestic_ratio_bps,
                          bool domestic_pool) {
  return domestic_pool && domestic_ratio_bps > 0 ? domestic_ratio_bps : subsidy_ratio_bps;
}

absl::StatusOr<Estimate> EstimateHold(int64_t gpus, int64_t hours, int64_t price_fen_per_gpu_hour,
                                      int32_t ratio_bps) {
  if (gpus < 1 || hours < 1 || price_fen_per_gpu_hour < 1) {
    return AmountInvalid("gpus, hours and price must be at least 1");
  }
  VCH_RETURN_IF_ERROR(CheckRatio(ratio_bps));
  int64_t gpu_hours = 0;
  Estimate out;
  if (__builtin_mul_overflow(gpus, hours, &gpu_hours) ||
      __builtin_mul_overflow(gpu_hours, price_fen_per_gpu_hour, &out.bill_fen)) {
    return DomainError(absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW",
                       "estimated bill does not fit a signed 64-bit number of fen");
  }
  VCH_ASSIGN_OR_RETURN(out.hold_fen, SubsidyFen(out.bill_fen, ratio_bps));
  return out;
}

const char* SubsidyCapName(SubsidyCap cap) {
  switch (cap) {
    case SubsidyCap::kNone:
      return "";
    case SubsidyCap::kHold:
      return "HOLD";
    case SubsidyCap::kMonthlyLimit:
      return "MONTHLY_LIMIT";
  }
  return "";
}

absl::StatusOr<UsageSettlement> SettleUsage(const UsageInput& in) {
  if (in.gpu_seconds < 0) return AmountInvalid("gpu_seconds must not be negative");
  if (in.price_fen_per_gpu_hour < 1) return AmountInvalid("price must be at least 1 fen");
  if (in.remaining_hold_fen < 0) return AmountInvalid("remaining hold must not be negative");
  if (in.monthly_room_fen < -1) return AmountInvalid("monthly room must be >= 0 or -1");
  VCH_RETURN_IF_ERROR(CheckRatio(in.ratio_bps));
  UsageSettlement out;
  VCH_ASSIGN_OR_RETURN(out.bill_fen, BillFen(in.gpu_seconds, in.price_fen_per_gpu_hour));
  VCH_ASSIGN_OR_RETURN(const int64_t full, SubsidyFen(out.bill_fen, in.ratio_bps));
  out.subsidy_fen = full;
  if (out.subsidy_fen > in.remaining_hold_fen) {
    out.subsidy_fen = in.remaining_hold_fen;
    out.capped_by = SubsidyCap::kHold;
  }
  if (in.monthly_room_fen >= 0 && out.subsidy_fen > in.monthly_room_fen) {
    out.subsidy_fen = in.monthly_room_fen;
    out.capped_by = SubsidyCap::kMonthlyLimit;
  }
  out.copay_fen = out.bill_fen - out.subsidy_fen;  // 0 <= subsidy <= bill: no overflow
  const int64_t left = in.remaining_hold_fen - out.subsidy_fen;
  out.released_fen = in.final ? left : 0;
  out.remaining_after_fen = left - out.released_fen;
  return out;
}

}  // namespace vch::policy
