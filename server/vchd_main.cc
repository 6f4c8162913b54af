// vchd: the vch server binary (see `vchd --help`).
#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "base/json_log.h"
#include "server/config.h"
#include "server/server.h"
#include "server/version.h"

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts, so RunServe's sigwait receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<vch::server::VchdConfig> config = vch::server::ParseVchdArgs(args, std::getenv);
  if (!config.ok()) {
    std::fprintf(stderr, "vchd: %s (see vchd --help)\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  switch (config->command) {
    case vch::server::VchdCommand::kHelp:
      std::fputs(vch::server::VchdHelpText().c_str(), stdout);
      return 0;
    case vch::server::VchdCommand::kVersion:
      std::printf("vchd %s\n", vch::server::kVchVersion);
      return 0;
    case vch::server::VchdCommand::kMigrate:
    case vch::server::VchdCommand::kServe:
      break;
  }
  vch::LogLevel level;
  if (vch::ParseLogLevel(config->log_level, &level)) vch::SetMinLogLevel(level);
  if (config->command == vch::server::VchdCommand::kMigrate) {
    return vch::server::RunMigrate(*config);
  }
  return vch::server::RunServe(*config);
}
