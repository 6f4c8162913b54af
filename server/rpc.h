// The wrapper every vch.v1 handler runs in: authenticate, derive the deadline, run the body,
// convert its Status once, record metrics. HandleRpc for handlers on gRPC's synchronous API,
// HandleRpcAsync for the batched ones on its callback API (no thread waits for the batch).
#ifndef VCH_SERVER_RPC_H_
#define VCH_SERVER_RPC_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <functional>
#include <string_view>
#include <utility>

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

// Ends an asynchronous call: its Status, converted once. Call exactly once, from any thread,
// after the response message is filled in.
using FinishRpc = std::function<void(const absl::Status&)>;

// HandleRpc for a method on the callback API: `start(call, finish)` validates the request and
// hands the work on (or calls `finish` itself); it must not block. `method` must outlive the
// call (a string literal).
template <typename Start>
grpc::ServerUnaryReactor* HandleRpcAsync(grpc::CallbackServerContext* context,
                                         absl::string_view method, Start&& start) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start_time = absl::Now();
  absl::StatusOr<policy::Principal> principal = PrincipalFromContext(*context);
  if (!principal.ok()) {
    grpc::Status result = ToGrpcStatus(principal.status(), method, nullptr);
    RecordRpc(method, result.error_code(), absl::Now() - start_time);
    reactor->Finish(result);
    return reactor;
  }
  const absl::Time deadline =
      std::min(absl::FromChrono(context->deadline()), start_time + kMaxCallDuration);
  ScopedDeadline scoped_deadline(deadline);
  FinishRpc finish = [reactor, method, caller = *principal, start_time](const absl::Status& s) {
    grpc::Status result = ToGrpcStatus(s, method, &caller);
    RecordRpc(method, result.error_code(), absl::Now() - start_time);
    reactor->Finish(result);
  };
  start(CallContext{*principal, deadline}, std::move(finish));
  return reactor;
}

}  // namespace vch::server

#endif  // VCH_SERVER_RPC_H_
