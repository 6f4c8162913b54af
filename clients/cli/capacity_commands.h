// The datacenter and placement commands of vch: datacenters, GPU pools, capacity reports,
// utilization, placing a compute request, explaining a placement, releasing a hold.
#ifndef VCH_CLIENTS_CLI_CAPACITY_COMMANDS_H_
#define VCH_CLIENTS_CLI_CAPACITY_COMMANDS_H_

#include <google/protobuf/repeated_field.h>
#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>

#include "clients/cli/cli_common.h"
#include "vch/v1/placement.pb.h"

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

// --- Shared with the other command groups (redemption_commands.cc). ---

// The flags that describe a compute request, as place and explain take them (--program, --gpus,
// --model, --fp8, --domestic, --min-memory-gib, --max-price-fen, --prefer-region), plus `more`.
std::set<std::string> RequirementFlagsAnd(std::initializer_list<std::string> more);

// Builds the requirement from those flags; --program and --gpus must be present (the server
// checks the values). Returns false with *code set on a usage error.
bool RequirementFromFlags(const Invocation& in, vch::v1::ComputeRequirement* r, int* code);

// One "excluded_pools  REASON N, REASON N" line (or "none").
void PrintExclusions(const google::protobuf::RepeatedPtrField<vch::v1::ExclusionCount>& exclusions);

// The int32 value of flag `name`, which must be present. Returns false with *code set on a usage
// error, as do the parsers below.
bool ParseInt32Flag(const Invocation& in, const std::string& name, int32_t* out, int* code);

// Sets *out from an optional int32 flag; leaves it alone when the flag is not given.
bool OptionalInt32Flag(const Invocation& in, const std::string& name, int32_t* out, int* code);

// A switch (--fp8): false unless given; "true"/"false" (also yes/no, 1/0) when given a value.
bool SwitchFlag(const Invocation& in, const std::string& name, bool* out, int* code);

// The RFC 3339 time of flag `name` (which must be present), any offset, to the nanosecond.
bool ParseTimeFlag(const Invocation& in, const std::string& name, google::protobuf::Timestamp* out,
                   int* code);

}  // namespace vch::cli

#endif  // VCH_CLIENTS_CLI_CAPACITY_COMMANDS_H_
