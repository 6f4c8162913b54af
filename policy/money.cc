#include "policy/money.h"

#include <limits>

#include "base/errors.h"

namespace vch::policy {
namespace {

absl::Status Overflow() {
  return DomainError(absl::StatusCode::kOutOfRange, "AMOUNT_OVERFLOW",
                     "amount does not fit a signed 64-bit number of fen");
}

absl::StatusOr<int64_t> Narrow(__int128 value) {
  if (value > std::numeric_limits<int64_t>::max() || value < std::numeric_limits<int64_t>::min()) {
    return Overflow();
  }
  return static_cast<int64_t>(value);
}

}  // namespace

absl::StatusOr<int64_t> BillFen(int64_t gpu_seconds, int64_t price_fen_per_gpu_hour) {
  if (gpu_seconds < 0 || price_fen_per_gpu_hour < 0) {
    return DomainError(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID",
                       "gpu_seconds and price must not be negative");
  }
  // Non-negative operands: integer division is floor.
  return Narrow(static_cast<__int128>(gpu_seconds) * price_fen_per_gpu_hour / 3600);
}

absl::StatusOr<int64_t> SubsidyFen(int64_t bill_fen, int32_t ratio_bps) {
  if (bill_fen < 0) {
    return DomainError(absl::StatusCode::kInvalidArgument, "AMOUNT_INVALID",
                       "bill must not be negative");
  }
  if (ratio_bps < 0 || ratio_bps > kBasisPointsPerUnit) {
    return DomainError(absl::StatusCode::kInvalidArgument, "RATIO_INVALID",
                       "ratio_bps must be within 0..10000");
  }
  return Narrow(static_cast<__int128>(bill_fen) * ratio_bps / kBasisPointsPerUnit);
}

absl::StatusOr<int64_t> CheckedAddFen(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return Overflow();
  return sum;
}

}  // namespace vch::policy
