// The wrapper every vch.v1 handler runs in: authenticate, derive the deadline, run the body,
// convert its Status once, record metrics.
#ifndef VCH_SERVER_RPC_H_
#define VCH_SERVER_RPC_H_

#include <grpcpp/server_context.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/deadline.h"
#include "policy/principal.h"
#include "server/auth.h"
#include "server/grpc_status.h"
#include "server/metrics.h"

namespace vch::server {

// What a handler body gets besides its request: who calls, and by when it must finish
// (the client's deadline, capped, passed on to Postgres as statement_timeout).
struct CallContext {
  const policy::Principal& principal;
  absl::Time deadline;
};

// Server-side cap on any call's deadline, so no request holds resources unboundedly.
inline constexpr absl::Duration kMaxCallDuration = absl::Seconds(30);

template <typename Body>
grpc::Status HandleRpc(grpc::ServerContext* context, absl::string_view method, Body&& body) {
  const absl::Time start = absl::Now();
  absl::StatusOr<policy::Principal> principal = PrincipalFromContext(*context);
  grpc::Status result;
  if (!principal.ok()) {
    result = ToGrpcStatus(principal.status(), method, nullptr);
  } else {
    absl::Time deadline = std::min(absl::FromChrono(context->deadline()), start + kMaxCallDuration);
    // Storage reads the deadline from the thread and passes it to Postgres.
    ScopedDeadline scoped_deadline(deadline);
    absl::Status status = body(CallContext{*principal, deadline});
    result = ToGrpcStatus(status, method, &*principal);
  }
  RecordRpc(method, result.error_code(), absl::Now() - start);
  return result;
}

}  // namespace vch::server

#endif  // VCH_SERVER_RPC_H_
