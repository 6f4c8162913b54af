#include "base/voucher.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <array>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/sha256.h"
#include "base/status_macros.h"

namespace vch {
namespace {

constexpr absl::string_view kReasonMalformed = "VOUCHER_MALFORMED";
constexpr absl::string_view kReasonKeyInvalid = "VOUCHER_KEY_INVALID";
constexpr absl::string_view kReasonSignatureInvalid = "VOUCHER_SIGNATURE_INVALID";

// RFC 3339 UTC, always exactly six fractional digits, so that each instant has one spelling.
constexpr char kExpiresFormat[] = "%Y-%m-%dT%H:%M:%E6SZ";
constexpr size_t kSignatureBytes = 64;
constexpr absl::string_view kSignaturePrefix = "signature=";
// "signature=" + 128 hex digits + "\n".
constexpr size_t kSignatureLineBytes = kSignaturePrefix.size() + 2 * kSignatureBytes + 1;

// The payload keys, in their one allowed order.
constexpr std::array<absl::string_view, 9> kKeys = {
    "vch-voucher", "redemption", "enterprise", "pool",   "gpus",
    "hours",       "held_fen",   "expires",    "key_id",
};

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// Never prompts on a terminal for the passphrase of an encrypted key: such a key is refused.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

// OpenSSL queues errors per thread; a failure we turn into a Status must not linger there.
absl::Status OpenSslError(absl::StatusCode code, absl::string_view reason,
                          absl::string_view message) {
  ERR_clear_error();
  return DomainError(code, reason, message);
}

absl::Status Malformed(absl::string_view message) {
  return DomainError(absl::StatusCode::kInvalidArgument, kReasonMalformed, message);
}

bool IsEd25519(const EVP_PKEY* key) { return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519; }

// Parses an Ed25519 public key PEM; nullptr for anything else.
PkeyPtr ReadPublicKey(absl::string_view pem) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return nullptr;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return nullptr;
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr || !IsEd25519(key.get())) {
    ERR_clear_error();
    return nullptr;
  }
  return key;
}

absl::StatusOr<std::string> PublicKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "", "cannot encode the voucher public key");
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

std::string LowerHex(absl::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 0xf]);
  }
  return hex;
}

// Lower-case hex only: an upper-case digit is a changed byte and must not verify.
bool DecodeLowerHex(absl::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  bytes->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int high = nibble(hex[i]);
    int low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return false;
    bytes->push_back(static_cast<char>(high << 4 | low));
  }
  return true;
}

// A canonical non-negative decimal: digits only, no leading zero except "0" itself.
bool ParseCanonicalDecimal(absl::string_view text, int64_t max, int64_t* value) {
  if (text.empty() || text.size() > 19) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  int64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    int digit = c - '0';
    if (result > (max - digit) / 10) return false;
    result = result * 10 + digit;
  }
  *value = result;
  return true;
}

// Free-form values (USCC, key id, pool name) are printable ASCII without spaces, so that a
// value can never carry a line break or look different from what it is.
bool IsPrintableToken(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

bool IsPoolName(absl::string_view pool) {
  if (!IsPrintableToken(pool)) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(pool, '/');
  return parts.size() == 4 && parts[0] == "datacenters" && !parts[1].empty() &&
         parts[2] == "pools" && !parts[3].empty();
}

absl::Status CheckKeyId(const std::string& key_id) {
  if (IsPrintableToken(key_id)) return absl::OkStatus();
  return DomainError(absl::StatusCode::kInvalidArgument, kReasonKeyInvalid,
                     "a voucher key id is printable ASCII without spaces");
}

struct SignerIdentity {
  std::string public_key_pem;
  std::string key_id;
};

// The public half of `key` and the id it signs under (`key_id`, or the default one if "").
absl::StatusOr<SignerIdentity> IdentityOf(EVP_PKEY* key, const std::string& key_id) {
  SignerIdentity identity;
  VCH_ASSIGN_OR_RETURN(identity.public_key_pem, PublicKeyPem(key));
  if (key_id.empty()) {
    VCH_ASSIGN_OR_RETURN(identity.key_id, DefaultKeyId(identity.public_key_pem));
  } else {
    VCH_RETURN_IF_ERROR(CheckKeyId(key_id));
    identity.key_id = key_id;
  }
  return identity;
}

// libsodium's 64-byte signing key (seed and public key) for `key`, which must be Ed25519;
// checks that libsodium derives the same public key as OpenSSL.
absl::Status SodiumSecretKey(EVP_PKEY* key, unsigned char (&secret)[crypto_sign_SECRETKEYBYTES]) {
  if (sodium_init() < 0) {
    return DomainError(absl::StatusCode::kInternal, "", "libsodium failed to initialise");
  }
  unsigned char seed[crypto_sign_SEEDBYTES];
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
  unsigned char openssl_public[crypto_sign_PUBLICKEYBYTES];
  size_t seed_length = sizeof(seed);
  size_t public_length = sizeof(openssl_public);
  const bool read = EVP_PKEY_get_raw_private_key(key, seed, &seed_length) == 1 &&
                    seed_length == sizeof(seed) &&
                    EVP_PKEY_get_raw_public_key(key, openssl_public, &public_length) == 1 &&
                    public_length == sizeof(openssl_public);
  const bool derived = read && crypto_sign_seed_keypair(public_key, secret, seed) == 0 &&
                       sodium_memcmp(public_key, openssl_public, sizeof(public_key)) == 0;
  sodium_memzero(seed, sizeof(seed));
  if (!derived) {
    sodium_memzero(secret, crypto_sign_SECRETKEYBYTES);
    return OpenSslError(absl::StatusCode::kFailedPrecondition, kReasonKeyInvalid,
                        "cannot read the raw Ed25519 key");
  }
  return absl::OkStatus();
}

}  // namespace

std::string CanonicalVoucherPayload(const VoucherTerms& terms) {
  std::string payload = "vch-voucher=1\n";
  absl::StrAppend(&payload, "redemption=", terms.redemption_id, "\n");
  absl::StrAppend(&payload, "enterprise=", terms.enterprise, "\n");
  absl::StrAppend(&payload, "pool=", terms.pool, "\n");
  absl::StrAppend(&payload, "gpus=", terms.gpus, "\n");
  absl::StrAppend(&payload, "hours=", terms.hours, "\n");
  absl::StrAppend(&payload, "held_fen=", terms.held_fen, "\n");
  absl::StrAppend(&payload, "expires=",
                  absl::FormatTime(kExpiresFormat, terms.expires_at, absl::UTCTimeZone()), "\n");
  absl::StrAppend(&payload, "key_id=", terms.key_id, "\n");
  return payload;
}

absl::StatusOr<VoucherTerms> ParseVoucherPayload(absl::string_view payload) {
  std::array<absl::string_view, kKeys.size()> values;
  absl::string_view rest = payload;
  for (size_t i = 0; i < kKeys.size(); ++i) {
    const std::string prefix = absl::StrCat(kKeys[i], "=");
    if (!absl::StartsWith(rest, prefix)) {
      return Malformed(absl::StrCat("voucher line ", i + 1, " must start with \"", prefix, "\""));
    }
    rest.remove_prefix(prefix.size());
    size_t end = rest.find('\n');
    if (end == absl::string_view::npos) {
      return Malformed(absl::StrCat("voucher line \"", kKeys[i], "\" does not end with a newline"));
    }
    values[i] = rest.substr(0, end);
    rest.remove_prefix(end + 1);
  }
  if (!rest.empty()) return Malformed("voucher has bytes after its last line");

  if (values[0] != "1") return Malformed("unknown voucher version");
  VoucherTerms terms;
  int64_t number = 0;
  if (!ParseCanonicalDecimal(values[1], std::numeric_limits<int64_t>::max(), &number)) {
    return Malformed("voucher redemption is not a canonical decimal");
  }
  terms.redemption_id = number;
  if (!IsPrintableToken(values[2])) return Malformed("voucher enterprise is not printable");
  terms.enterprise = std::string(values[2]);
  if (!IsPoolName(values[3])) return Malformed("voucher pool is not datacenters/*/pools/*");
  terms.pool = std::string(values[3]);
  if (!ParseCanonicalDecimal(values[4], std::numeric_limits<int32_t>::max(), &number)) {
    return Malformed("voucher gpus is not a canonical decimal");
  }
  terms.gpus = static_cast<int32_t>(number);
  if (!ParseCanonicalDecimal(values[5], std::numeric_limits<int32_t>::max(), &number)) {
    return Malformed("voucher hours is not a canonical decimal");
  }
  terms.hours = static_cast<int32_t>(number);
  if (!ParseCanonicalDecimal(values[6], std::numeric_limits<int64_t>::max(), &number)) {
    return Malformed("voucher held_fen is not a canonical decimal");
  }
  terms.held_fen = number;
  std::string parse_error;
  if (!absl::ParseTime(absl::RFC3339_full, values[7], absl::UTCTimeZone(), &terms.expires_at,
                       &parse_error) ||
      absl::FormatTime(kExpiresFormat, terms.expires_at, absl::UTCTimeZone()) != values[7]) {
    return Malformed("voucher expires is not RFC 3339 UTC with six fractional digits");
  }
  if (!IsPrintableToken(values[8])) return Malformed("voucher key_id is not printable");
  terms.key_id = std::string(values[8]);

  // Every field was checked above; this is the last word on "one spelling per voucher".
  if (CanonicalVoucherPayload(terms) != payload) return Malformed("voucher is not canonical");
  return terms;
}

absl::StatusOr<std::unique_ptr<VoucherSigner>> VoucherSigner::FromPemFile(
    const std::string& path, const std::string& key_id) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition, kReasonKeyInvalid,
                        absl::StrCat("cannot open voucher key file ", path));
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    return OpenSslError(
        absl::StatusCode::kFailedPrecondition, kReasonKeyInvalid,
        absl::StrCat("voucher key file ", path, " holds no unencrypted PEM private key"));
  }
  if (!IsEd25519(key.get())) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition, kReasonKeyInvalid,
                        absl::StrCat("voucher key file ", path, " is not an Ed25519 key"));
  }
  VCH_ASSIGN_OR_RETURN(SignerIdentity identity, IdentityOf(key.get(), key_id));
  std::unique_ptr<VoucherSigner> signer(new VoucherSigner());
  VCH_RETURN_IF_ERROR(SodiumSecretKey(key.get(), signer->secret_key_));
  signer->public_key_pem_ = std::move(identity.public_key_pem);
  signer->key_id_ = std::move(identity.key_id);
  return signer;
}

absl::StatusOr<std::unique_ptr<VoucherSigner>> VoucherSigner::Generate(const std::string& key_id) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (key == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "", "cannot generate an Ed25519 key");
  }
  VCH_ASSIGN_OR_RETURN(SignerIdentity identity, IdentityOf(key.get(), key_id));
  std::unique_ptr<VoucherSigner> signer(new VoucherSigner());
  VCH_RETURN_IF_ERROR(SodiumSecretKey(key.get(), signer->secret_key_));
  signer->public_key_pem_ = std::move(identity.public_key_pem);
  signer->key_id_ = std::move(identity.key_id);
  return signer;
}

VoucherSigner::~VoucherSigner() { sodium_memzero(secret_key_, sizeof(secret_key_)); }

std::string VoucherSigner::Sign(absl::string_view payload) const {
  // libsodium rather than OpenSSL's EVP here: the same RFC 8032 signature (Ed25519 is
  // deterministic) in about a third of the time, and every placement is signed on the batch
  // writer's thread. The key is only read, so concurrent Sign calls are safe.
  unsigned char signature[crypto_sign_BYTES];
  unsigned long long length = 0;
  if (crypto_sign_detached(signature, &length,
                           reinterpret_cast<const unsigned char*>(payload.data()), payload.size(),
                           secret_key_) != 0 ||
      length != kSignatureBytes) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(signature), kSignatureBytes);
}

absl::StatusOr<std::string> DefaultKeyId(absl::string_view public_key_pem) {
  PkeyPtr key = ReadPublicKey(public_key_pem);
  if (key == nullptr) {
    return DomainError(absl::StatusCode::kInvalidArgument, kReasonKeyInvalid,
                       "not an Ed25519 public key PEM");
  }
  unsigned char raw[32];
  size_t length = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(key.get(), raw, &length) != 1 || length != sizeof(raw)) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, kReasonKeyInvalid,
                        "cannot read the raw Ed25519 public key");
  }
  std::string digest =
      Sha256Hex(absl::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
  return absl::StrCat("ed25519-", digest.substr(0, 16));
}

std::string VoucherDocument(absl::string_view payload, absl::string_view signature) {
  return absl::StrCat(payload, kSignaturePrefix, LowerHex(signature), "\n");
}

absl::Status VerifyVoucherSignature(absl::string_view payload, absl::string_view signature,
                                    absl::string_view public_key_pem) {
  PkeyPtr key = ReadPublicKey(public_key_pem);
  if (key == nullptr) {
    return DomainError(absl::StatusCode::kInvalidArgument, kReasonKeyInvalid,
                       "not an Ed25519 public key PEM");
  }
  if (signature.size() != kSignatureBytes) {
    return DomainError(absl::StatusCode::kFailedPrecondition, kReasonSignatureInvalid,
                       "an Ed25519 signature has 64 bytes");
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "", "cannot start signature verification");
  }
  int verified = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  if (verified != 1) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition, kReasonSignatureInvalid,
                        "voucher signature does not match its terms and this key");
  }
  return absl::OkStatus();
}

absl::StatusOr<VoucherTerms> VerifyVoucherDocument(absl::string_view document,
                                                   absl::string_view public_key_pem) {
  if (document.size() < kSignatureLineBytes) return Malformed("voucher has no signature line");
  absl::string_view payload = document.substr(0, document.size() - kSignatureLineBytes);
  absl::string_view line = document.substr(payload.size());
  if (!absl::StartsWith(line, kSignaturePrefix) || line.back() != '\n') {
    return Malformed("voucher must end with one line \"signature=<128 hex digits>\"");
  }
  if (!payload.empty() && payload.back() != '\n') {
    return Malformed("voucher signature line does not start a line");
  }
  std::string signature;
  absl::string_view hex = line.substr(kSignaturePrefix.size(), 2 * kSignatureBytes);
  if (!DecodeLowerHex(hex, &signature)) {
    return Malformed("voucher signature is not 128 lower-case hex digits");
  }
  VCH_RETURN_IF_ERROR(VerifyVoucherSignature(payload, signature, public_key_pem));
  return ParseVoucherPayload(payload);
}

}  // namespace vch
