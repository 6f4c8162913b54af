// Money arithmetic in integer fen and basis points. Every rounding goes against the subsidy;
// every intermediate is 128-bit and every result is checked to fit int64.
#ifndef VCH_POLICY_MONEY_H_
#define VCH_POLICY_MONEY_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace vch::policy {

inline constexpr int32_t kBasisPointsPerUnit = 10000;

// bill = floor(gpu_seconds * price_fen_per_gpu_hour / 3600). Inputs must be >= 0.
// OUT_OF_RANGE (reason AMOUNT_OVERFLOW) if the result does not fit int64,
// INVALID_ARGUMENT (reason AMOUNT_INVALID) for negative inputs.
absl::StatusOr<int64_t> BillFen(int64_t gpu_seconds, int64_t price_fen_per_gpu_hour);

// subsidy = floor(bill_fen * ratio_bps / 10000), 0 <= ratio_bps <= 10000, bill_fen >= 0.
// The result always satisfies subsidy * 10000 <= bill_fen * ratio_bps.
absl::StatusOr<int64_t> SubsidyFen(int64_t bill_fen, int32_t ratio_bps);

// a + b, or OUT_OF_RANGE (reason AMOUNT_OVERFLOW).
absl::StatusOr<int64_t> CheckedAddFen(int64_t a, int64_t b);

}  // namespace vch::policy

#endif  // VCH_POLICY_MONEY_H_
