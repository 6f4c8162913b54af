// Authentication: turns a call's credentials into a policy::Principal before any handler runs.
// Development mode: a loopback-only listener (gRPC local credentials) and a plain
// `x-vch-principal: ROLE[:tenant][/subject]` header. A later version adds signed tokens and TLS
// behind the same two functions.
#ifndef VCH_SERVER_AUTH_H_
#define VCH_SERVER_AUTH_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "policy/principal.h"

namespace vch::server {

inline constexpr char kDevPrincipalHeader[] = "x-vch-principal";

// Listener credentials for `auth_mode` ("dev": local TCP credentials, which accept loopback
// peers only).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    absl::string_view auth_mode);

// The principal of this call (dev mode: parsed from its x-vch-principal header);
// UNAUTHENTICATED (reason UNAUTHENTICATED or PRINCIPAL_INVALID) if absent or malformed.
// HandleRpc calls it before every handler body.
absl::StatusOr<policy::Principal> PrincipalFromContext(const grpc::ServerContextBase& context);

}  // namespace vch::server

#endif  // VCH_SERVER_AUTH_H_
