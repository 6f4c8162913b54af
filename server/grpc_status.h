// The one conversion from absl::Status to grpc::Status, with google.rpc details, and the only
// place that logs a failed RPC.
#ifndef VCH_SERVER_GRPC_STATUS_H_
#define VCH_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "policy/principal.h"

namespace vch::server {

inline constexpr absl::string_view kErrorDomain = "vch.dev";

// Maps code and message; attaches google.rpc.Status details in grpc-status-details-bin with an
// ErrorInfo (reason from ReasonOf, or the code's name) and, when present, a BadRequest.
// INTERNAL and UNKNOWN messages are replaced by a generic text plus an incident id that also
// appears in the server log. `principal` may be null (authentication failed).
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view method,
                          const policy::Principal* principal);

}  // namespace vch::server

#endif  // VCH_SERVER_GRPC_STATUS_H_
