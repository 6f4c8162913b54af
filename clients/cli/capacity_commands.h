// The datacenter and placement commands of vch: datacenters, GPU pools, capacity reports,
// utilization, placing a compute request, explaining a placement, releasing a hold.
#ifndef VCH_CLIENTS_CLI_CAPACITY_COMMANDS_H_
#define VCH_CLIENTS_CLI_CAPACITY_COMMANDS_H_

#include <optional>
#include <set>
#include <string>

#include "clients/cli/cli_common.h"

namespace vch::cli {

// Runs `vch COMMAND ...` for COMMAND datacenter, pool, capacity, placement (each with a
// subcommand first in `in.args`), utilization, place or explain. Returns the exit code, or
// nullopt when `command` is none of those.
std::optional<int> RunCapacityCommand(const std::string& command, const Invocation& in);

// Flags of these commands that take a value, besides those of the workflow commands.
const std::set<std::string>& CapacityValueFlags();

// Flags of these commands that take no value (--fp8, --domestic, --national-network): given
// alone they mean "true"; --fp8=false is also accepted.
const std::set<std::string>& CapacitySwitchFlags();

}  // namespace vch::cli

#endif  // VCH_CLIENTS_CLI_CAPACITY_COMMANDS_H_
