// The money-path commands of vch: redemptions (requesting compute, confirming and rejecting
// placements), usage reports, payouts and their CSV statements, and signed vouchers (fetching
// the public key, verifying a voucher file offline).
#ifndef VCH_CLIENTS_CLI_REDEMPTION_COMMANDS_H_
#define VCH_CLIENTS_CLI_REDEMPTION_COMMANDS_H_

#include <optional>
#include <set>
#include <string>

#include "clients/cli/cli_common.h"

namespace vch::cli {

// Exit code of `vch redemption request` when the call worked but no pool could take the request
// (nothing was held): distinct from 1, a failed call, so that scripts can wait and retry.
inline constexpr int kExitNotPlaced = 3;

// Runs `vch COMMAND ...` for COMMAND redemption, usage, payout or voucher (each with a
// subcommand first in `in.args`). Returns the exit code, or nullopt when `command` is none of
// those. `vch voucher verify` makes no call and needs neither --server nor --principal.
std::optional<int> RunRedemptionCommand(const std::string& command, const Invocation& in);

// Flags of these commands that take a value, besides those of the workflow and capacity
// commands.
const std::set<std::string>& RedemptionValueFlags();

// Flags of these commands that take no value (--final), besides the capacity ones.
const std::set<std::string>& RedemptionSwitchFlags();

}  // namespace vch::cli

#endif  // VCH_CLIENTS_CLI_REDEMPTION_COMMANDS_H_
