// The program-office and SME workflow commands of vch: issuers, programs, enterprises,
// applications and awards.
#ifndef VCH_CLIENTS_CLI_WORKFLOW_COMMANDS_H_
#define VCH_CLIENTS_CLI_WORKFLOW_COMMANDS_H_

#include <optional>
#include <string>

#include "clients/cli/cli_common.h"

namespace vch::cli {

// Runs `vch GROUP ...` for GROUP issuer, program, enterprise, application or award, with
// `in.args` the arguments after the group (the subcommand first). Returns the exit code, or
// nullopt when `group` is none of those.
std::optional<int> RunWorkflowCommand(const std::string& group, const Invocation& in);

}  // namespace vch::cli

#endif  // VCH_CLIENTS_CLI_WORKFLOW_COMMANDS_H_
