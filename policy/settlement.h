// Settlement arithmetic of the money path (DESIGN §3): the estimate a redemption holds, and
// what each metered usage record settles. Integer fen and basis points; every rounding goes
// against the subsidy; 128-bit intermediates; results checked to fit int64.
#ifndef VCH_POLICY_SETTLEMENT_H_
#define VCH_POLICY_SETTLEMENT_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace vch::policy {

// The voucher's share of a bill at a pool: the program's domestic ratio on a domestic
// accelerator when the program sets one (> 0), its subsidy ratio otherwise.
int32_t EffectiveRatioBps(int32_t subsidy_ratio_bps, int32_t domestic_ratio_bps,
                          bool domestic_pool);

struct Estimate {
  int64_t bill_fen = 0;  // gpus * hours * price
  int64_t hold_fen = 0;  // floor(bill * ratio / 10000)
};

// What RequestCompute holds: gpus >= 1, hours >= 1, price >= 1, ratio 1..10000. INVALID_ARGUMENT
// (AMOUNT_INVALID / RATIO_INVALID) for inputs outside those ranges, OUT_OF_RANGE
// (AMOUNT_OVERFLOW) when the bill does not fit int64.
absl::StatusOr<Estimate> EstimateHold(int64_t gpus, int64_t hours, int64_t price_fen_per_gpu_hour,
                                      int32_t ratio_bps);

enum class SubsidyCap {
  kNone = 0,          // the subsidy is floor(bill * ratio / 10000)
  kHold = 1,          // less: the rest of the hold was smaller
  kMonthlyLimit = 2,  // less: the program's monthly spend limit left less room
};
// "", "HOLD", "MONTHLY_LIMIT".
const char* SubsidyCapName(SubsidyCap cap);

struct UsageInput {
  int64_t gpu_seconds = 0;             // >= 0
  int64_t price_fen_per_gpu_hour = 0;  // >= 1
  int32_t ratio_bps = 0;               // 1..10000
  int64_t remaining_hold_fen = 0;      // >= 0: what is still held for the redemption
  int64_t monthly_room_fen = -1;       // >= 0, or -1 = the program has no monthly limit
  bool final = false;
};

struct UsageSettlement {
  int64_t bill_fen = 0;     // floor(gpu_seconds * price / 3600)
  int64_t subsidy_fen = 0;  // min(floor(bill * ratio / 10000), remaining hold, monthly room)
  int64_t copay_fen = 0;    // bill - subsidy: the enterprise's share
  SubsidyCap capped_by = SubsidyCap::kNone;
  // Released from the hold by this record: the final record releases everything not posted
  // (remaining - subsidy); 0 otherwise.
  int64_t released_fen = 0;
  // remaining - subsidy - released.
  int64_t remaining_after_fen = 0;
};

// Settles one usage record. Always subsidy * 10000 <= bill * ratio, subsidy <= remaining hold,
// subsidy <= monthly room, bill = subsidy + copay. INVALID_ARGUMENT (AMOUNT_INVALID /
// RATIO_INVALID) for inputs outside their ranges; OUT_OF_RANGE (AMOUNT_OVERFLOW) when the bill
// does not fit int64.
absl::StatusOr<UsageSettlement> SettleUsage(const UsageInput& input);

}  // namespace vch::policy

#endif  // VCH_POLICY_SETTLEMENT_H_
