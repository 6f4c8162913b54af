// Runs vchd: `vchd migrate` and `vchd serve` (the whole server lifecycle).
#ifndef VCH_SERVER_SERVER_H_
#define VCH_SERVER_SERVER_H_

#include "server/config.h"

namespace vch::server {

// Applies the embedded migrations to config.dsn. Returns the process exit code; errors are
// printed as one line on stderr.
int RunMigrate(const VchdConfig& config);

// Serves until SIGTERM/SIGINT, then drains and returns 0; returns 1 with a one-line error
// when the database is unreachable, its schema is not the expected one, or the listen
// address cannot be bound. SIGTERM/SIGINT must be blocked in the calling thread (and so in
// every thread it starts) before calling.
int RunServe(const VchdConfig& config);

}  // namespace vch::server

#endif  // VCH_SERVER_SERVER_H_
