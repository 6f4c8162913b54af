#include "server/auth.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/errors.h"

namespace vch::server {
namespace {

absl::Status Unauthenticated(absl::string_view message) {
  return DomainError(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED", message);
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    absl::string_view auth_mode) {
  if (auth_mode != "dev") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported auth mode '", auth_mode, "'"));
  }
  // Local TCP credentials accept only peers on loopback addresses: the plain principal header
  // is trusted only from this machine.
  return grpc::experimental::LocalServerCredentials(LOCAL_TCP);
}

absl::StatusOr<policy::Principal> PrincipalFromContext(const grpc::ServerContextBase& context) {
  // Read per call from the call's own metadata. (gRPC's AuthContext is shared by every call on
  // a connection, so per-call identities must not be stored there.)
  const auto& metadata = context.client_metadata();
  auto [first, last] = metadata.equal_range(kDevPrincipalHeader);
  if (first == last) {
    return Unauthenticated(
        absl::StrCat("no principal: send the ", kDevPrincipalHeader, " header (ROLE[:tenant])"));
  }
  if (std::next(first) != last) {
    return DomainError(absl::StatusCode::kUnauthenticated, "PRINCIPAL_INVALID",
                       absl::StrCat("more than one ", kDevPrincipalHeader, " header"));
  }
  return policy::ParseDevPrincipal(absl::string_view(first->second.data(), first->second.size()));
}

}  // namespace vch::server
