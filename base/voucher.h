// Signed vouchers (DESIGN §6): the terms of a placement in a canonical text encoding, signed
// with Ed25519 (keys read with OpenSSL, signatures made with libsodium) so that an operator
// can verify them offline with the public key.
//
// Canonical payload, exactly these lines in this order, each "key=value\n", no other bytes:
//   vch-voucher=1
//   redemption=<decimal id>
//   enterprise=<USCC>
//   pool=datacenters/<dc>/pools/<pool>
//   gpus=<decimal>
//   hours=<decimal>
//   held_fen=<decimal>
//   expires=<RFC 3339 UTC with microseconds, e.g. 2026-11-24T10:00:00.000000Z>
//   key_id=<key id>
// Decimals have no sign (all are >= 0), no leading zeros, no spaces. enterprise, pool and
// key_id are non-empty printable ASCII without spaces.
// A voucher document (the file `vch voucher verify` reads) is the payload followed by
// "signature=<128 lower-case hex digits>\n" and nothing else.
#ifndef VCH_BASE_VOUCHER_H_
#define VCH_BASE_VOUCHER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vch {

struct VoucherTerms {
  int64_t redemption_id = 0;
  std::string enterprise;
  std::string pool;
  int32_t gpus = 0;
  int32_t hours = 0;
  int64_t held_fen = 0;
  absl::Time expires_at;  // kept to the microsecond
  std::string key_id;

  friend bool operator==(const VoucherTerms&, const VoucherTerms&) = default;
};

// The canonical payload of `terms` (see above).
std::string CanonicalVoucherPayload(const VoucherTerms& terms);

// Parses a canonical payload strictly: any byte that CanonicalVoucherPayload would not have
// produced is INVALID_ARGUMENT (reason VOUCHER_MALFORMED).
absl::StatusOr<VoucherTerms> ParseVoucherPayload(absl::string_view payload);

// An Ed25519 private key with its id. Thread-safe after construction.
class VoucherSigner {
 public:
  // Reads a PEM (PKCS#8) Ed25519 private key, as `openssl genpkey -algorithm ed25519` writes.
  // `key_id` "" = DefaultKeyId of its public key. FAILED_PRECONDITION (VOUCHER_KEY_INVALID) for
  // a missing, unreadable, encrypted or non-Ed25519 key; INVALID_ARGUMENT (VOUCHER_KEY_INVALID)
  // for a `key_id` that is not printable ASCII without spaces.
  static absl::StatusOr<std::unique_ptr<VoucherSigner>> FromPemFile(const std::string& path,
                                                                    const std::string& key_id);
  // A fresh random key (development servers without a key file, tests). `key_id` as above.
  static absl::StatusOr<std::unique_ptr<VoucherSigner>> Generate(const std::string& key_id);
  ~VoucherSigner();
  VoucherSigner(const VoucherSigner&) = delete;
  VoucherSigner& operator=(const VoucherSigner&) = delete;

  const std::string& key_id() const { return key_id_; }
  // SubjectPublicKeyInfo PEM of the public key.
  const std::string& public_key_pem() const { return public_key_pem_; }
  // The 64-byte Ed25519 signature of `payload`; "" only if libsodium itself fails, which
  // callers treat as INTERNAL.
  std::string Sign(absl::string_view payload) const;

 private:
  VoucherSigner() = default;
  unsigned char secret_key_[64] = {};  // libsodium's Ed25519 secret key (seed + public key)
  std::string key_id_;
  std::string public_key_pem_;
};

// "ed25519-" + the first 16 hex digits of SHA-256 over the raw 32-byte public key.
absl::StatusOr<std::string> DefaultKeyId(absl::string_view public_key_pem);

// payload + "signature=" + lower-case hex(signature) + "\n".
std::string VoucherDocument(absl::string_view payload, absl::string_view signature);

// Verifies a signature over a payload with a PEM public key: OK, or FAILED_PRECONDITION
// (VOUCHER_SIGNATURE_INVALID) for a bad signature, INVALID_ARGUMENT (VOUCHER_KEY_INVALID) for a
// key that is not an Ed25519 public key PEM.
absl::Status VerifyVoucherSignature(absl::string_view payload, absl::string_view signature,
                                    absl::string_view public_key_pem);

// Verifies a whole voucher document strictly (any changed, added or removed byte fails) and
// returns its terms. Errors as above, plus VOUCHER_MALFORMED.
absl::StatusOr<VoucherTerms> VerifyVoucherDocument(absl::string_view document,
                                                   absl::string_view public_key_pem);

}  // namespace vch

#endif  // VCH_BASE_VOUCHER_H_
