// SHA-256 as lower-case hex (OpenSSL EVP): migration checksums, request hashes for idempotency.
#ifndef VCH_BASE_SHA256_H_
#define VCH_BASE_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace vch {

std::string Sha256Hex(absl::string_view data);

}  // namespace vch

#endif  // VCH_BASE_SHA256_H_
