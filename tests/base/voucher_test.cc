#include "base/voucher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/testing/test_db.h"

namespace vch {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::vch::testing::IsOk;
using ::vch::testing::StatusIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kPrecondition = absl::StatusCode::kFailedPrecondition;

VoucherTerms FixedTerms() {
  VoucherTerms terms;
  terms.redemption_id = 42;
  terms.enterprise = "91110000600037341L";
  terms.pool = "datacenters/dc-wuhan/pools/h100-a";
  terms.gpus = 8;
  terms.hours = 72;
  terms.held_fen = 1234500;
  terms.expires_at = absl::FromUnixMicros(1795514400000000 + 5);  // 2026-11-24T10:00:00.000005Z
  terms.key_id = "ed25519-0123456789abcdef";
  return terms;
}

constexpr char kFixedPayload[] =
    "vch-voucher=1\n"
    "redemption=42\n"
    "enterprise=91110000600037341L\n"
    "pool=datacenters/dc-wuhan/pools/h100-a\n"
    "gpus=8\n"
    "hours=72\n"
    "held_fen=1234500\n"
    "expires=2026-11-24T10:00:00.000005Z\n"
    "key_id=ed25519-0123456789abcdef\n";

// A directory of its own under TMPDIR, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vch-voucher-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Runs the openssl CLI; the test fails if it does.
void RunOpenSsl(const std::string& arguments) {
  std::string command = absl::StrCat("/usr/bin/openssl ", arguments, " 2>/dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(VoucherPayloadTest, CanonicalFormIsExact) {
  EXPECT_EQ(CanonicalVoucherPayload(FixedTerms()), kFixedPayload);
}

TEST(VoucherPayloadTest, ParsesItsCanonicalForm) {
  absl::StatusOr<VoucherTerms> parsed = ParseVoucherPayload(kFixedPayload);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(*parsed, FixedTerms());
}

TEST(VoucherPayloadTest, ZeroIsWrittenAsOneDigit) {
  VoucherTerms terms = FixedTerms();
  terms.held_fen = 0;
  terms.expires_at = absl::FromUnixSeconds(1795514400);
  std::string payload = CanonicalVoucherPayload(terms);
  EXPECT_THAT(payload, HasSubstr("\nheld_fen=0\n"));
  EXPECT_THAT(payload, HasSubstr("\nexpires=2026-11-24T10:00:00.000000Z\n"));
  absl::StatusOr<VoucherTerms> parsed = ParseVoucherPayload(payload);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(*parsed, terms);
}

struct NonCanonicalCase {
  std::string name;
  std::string payload;
};

// Each case is kFixedPayload with one deviation from its canonical form.
std::vector<NonCanonicalCase> NonCanonicalCases() {
  const std::string p = kFixedPayload;
  auto replace = [&p](absl::string_view from, absl::string_view to) {
    return absl::StrReplaceAll(p, {{from, to}});
  };
  return {
      {"LeadingZeroGpus", replace("gpus=8\n", "gpus=08\n")},
      {"LeadingZeroRedemption", replace("redemption=42\n", "redemption=042\n")},
      {"PlusSign", replace("hours=72\n", "hours=+72\n")},
      {"MinusSign", replace("held_fen=1234500\n", "held_fen=-1234500\n")},
      {"SpaceInDecimal", replace("hours=72\n", "hours= 72\n")},
      {"TrailingSpace", replace("hours=72\n", "hours=72 \n")},
      {"EmptyDecimal", replace("gpus=8\n", "gpus=\n")},
      {"Int32Overflow", replace("gpus=8\n", "gpus=2147483648\n")},
      {"Int64Overflow", replace("held_fen=1234500\n", "held_fen=9223372036854775808\n")},
      {"MissingLine", replace("hours=72\n", "")},
      {"ExtraLine", replace("hours=72\n", "hours=72\nnote=x\n")},
      {"DuplicatedLine", replace("hours=72\n", "hours=72\nhours=72\n")},
      {"Reordered", replace("gpus=8\nhours=72\n", "hours=72\ngpus=8\n")},
      {"TrailingBytes", p + "x"},
      {"TrailingNewline", p + "\n"},
      {"MissingFinalNewline", p.substr(0, p.size() - 1)},
      {"Crlf", absl::StrReplaceAll(p, {{"\n", "\r\n"}})},
      {"CrlfOneLine", replace("gpus=8\n", "gpus=8\r\n")},
      {"LeadingSpaceKey", replace("\ngpus=", "\n gpus=")},
      {"UpperCaseKey", replace("gpus=", "GPUS=")},
      {"OtherVersion", replace("vch-voucher=1\n", "vch-voucher=2\n")},
      {"ExpiresWithoutMicros",
       replace("expires=2026-11-24T10:00:00.000005Z", "expires=2026-11-24T10:00:00Z")},
      {"ExpiresWithNanos",
       replace("expires=2026-11-24T10:00:00.000005Z", "expires=2026-11-24T10:00:00.000005000Z")},
      {"ExpiresWithOffset",
       replace("expires=2026-11-24T10:00:00.000005Z", "expires=2026-11-24T18:00:00.000005+08:00")},
      {"ExpiresLowerCaseT",
       replace("expires=2026-11-24T10:00:00.000005Z", "expires=2026-11-24t10:00:00.000005Z")},
      {"EmptyEnterprise", replace("enterprise=91110000600037341L\n", "enterprise=\n")},
      {"SpaceInEnterprise", replace("enterprise=91110000600037341L\n", "enterprise=9111 0000\n")},
      {"PoolNotAPoolName", replace("pool=datacenters/dc-wuhan/pools/h100-a\n", "pool=h100-a\n")},
      {"EmptyKeyId", replace("key_id=ed25519-0123456789abcdef\n", "key_id=\n")},
      {"Empty", ""},
  };
}

class NonCanonicalPayloadTest : public ::testing::TestWithParam<NonCanonicalCase> {};

TEST_P(NonCanonicalPayloadTest, IsMalformed) {
  EXPECT_THAT(ParseVoucherPayload(GetParam().payload), StatusIs(kInvalid, "VOUCHER_MALFORMED"));
}

INSTANTIATE_TEST_SUITE_P(Variants, NonCanonicalPayloadTest,
                         ::testing::ValuesIn(NonCanonicalCases()),
                         [](const ::testing::TestParamInfo<NonCanonicalCase>& info) {
                           return info.param.name;
                         });

class SignedVoucherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<VoucherSigner>> signer = VoucherSigner::Generate("");
    ASSERT_THAT(signer, IsOk());
    signer_ = *std::move(signer);
    VoucherTerms terms = FixedTerms();
    terms.key_id = signer_->key_id();
    payload_ = CanonicalVoucherPayload(terms);
    signature_ = signer_->Sign(payload_);
    ASSERT_EQ(signature_.size(), 64u);
    document_ = VoucherDocument(payload_, signature_);
  }

  std::unique_ptr<VoucherSigner> signer_;
  std::string payload_;
  std::string signature_;
  std::string document_;
};

TEST_F(SignedVoucherTest, RoundTrips) {
  EXPECT_THAT(VerifyVoucherSignature(payload_, signature_, signer_->public_key_pem()), IsOk());
  absl::StatusOr<VoucherTerms> terms = VerifyVoucherDocument(document_, signer_->public_key_pem());
  ASSERT_THAT(terms, IsOk());
  VoucherTerms expected = FixedTerms();
  expected.key_id = signer_->key_id();
  EXPECT_EQ(*terms, expected);
}

TEST_F(SignedVoucherTest, DocumentIsPayloadPlusLowerHexSignatureLine) {
  ASSERT_EQ(document_.size(), payload_.size() + 139);
  EXPECT_EQ(document_.substr(0, payload_.size()), payload_);
  EXPECT_THAT(document_.substr(payload_.size()), MatchesRegex("signature=[0-9a-f]{128}\n"));
}

TEST_F(SignedVoucherTest, SigningIsDeterministic) {
  // Ed25519 (RFC 8032) signatures depend only on key and message.
  EXPECT_EQ(signer_->Sign(payload_), signature_);
}

TEST_F(SignedVoucherTest, AnotherKeyDoesNotVerify) {
  absl::StatusOr<std::unique_ptr<VoucherSigner>> other = VoucherSigner::Generate("");
  ASSERT_THAT(other, IsOk());
  EXPECT_NE((*other)->key_id(), signer_->key_id());
  EXPECT_THAT(VerifyVoucherDocument(document_, (*other)->public_key_pem()),
              StatusIs(kPrecondition, "VOUCHER_SIGNATURE_INVALID"));
  EXPECT_THAT(VerifyVoucherSignature(payload_, signature_, (*other)->public_key_pem()),
              StatusIs(kPrecondition, "VOUCHER_SIGNATURE_INVALID"));
}

TEST_F(SignedVoucherTest, ShortSignatureDoesNotVerify) {
  EXPECT_THAT(VerifyVoucherSignature(payload_, signature_.substr(0, 63), signer_->public_key_pem()),
              StatusIs(kPrecondition, "VOUCHER_SIGNATURE_INVALID"));
}

TEST_F(SignedVoucherTest, NotAPublicKeyIsRefused) {
  EXPECT_THAT(VerifyVoucherDocument(document_, "not a key"),
              StatusIs(kInvalid, "VOUCHER_KEY_INVALID"));
  EXPECT_THAT(VerifyVoucherSignature(payload_, signature_, ""),
              StatusIs(kInvalid, "VOUCHER_KEY_INVALID"));
}

TEST_F(SignedVoucherTest, UpperCaseHexIsMalformed) {
  std::string document = document_;
  size_t hex_start = payload_.size() + 10;
  bool changed = false;
  for (size_t i = hex_start; i < document.size() - 1; ++i) {
    if (document[i] >= 'a' && document[i] <= 'f') {
      document[i] = static_cast<char>(document[i] - 'a' + 'A');
      changed = true;
    }
  }
  ASSERT_TRUE(changed);
  EXPECT_THAT(VerifyVoucherDocument(document, signer_->public_key_pem()),
              StatusIs(kInvalid, "VOUCHER_MALFORMED"));
}

// The property vouchers exist for: no single changed, added or removed byte goes unnoticed.
TEST_F(SignedVoucherTest, EveryChangedByteFails) {
  const std::string& pem = signer_->public_key_pem();
  const char kReplacements[] = {'0', '1', 'a', 'f', 'A', '=', '\n', ' ', '\0', '\xff'};
  int checked = 0;
  for (size_t i = 0; i < document_.size(); ++i) {
    std::string flipped = document_;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    EXPECT_FALSE(VerifyVoucherDocument(flipped, pem).ok()) << "XOR 0x01 at byte " << i;
    ++checked;
    for (char replacement : kReplacements) {
      if (document_[i] == replacement) continue;
      std::string replaced = document_;
      replaced[i] = replacement;
      EXPECT_FALSE(VerifyVoucherDocument(replaced, pem).ok())
          << "byte " << i << " replaced with " << static_cast<int>(replacement);
      ++checked;
    }
  }
  EXPECT_GT(checked, static_cast<int>(document_.size() * 10));
}

TEST_F(SignedVoucherTest, EveryTruncationFails) {
  for (size_t length = 0; length < document_.size(); ++length) {
    EXPECT_FALSE(VerifyVoucherDocument(document_.substr(0, length), signer_->public_key_pem()).ok())
        << "truncated to " << length << " bytes";
  }
}

TEST_F(SignedVoucherTest, AppendedOrPrependedBytesFail) {
  for (char c : {'\n', 'x', '0', 'a', ' ', '\0'}) {
    EXPECT_FALSE(VerifyVoucherDocument(document_ + c, signer_->public_key_pem()).ok())
        << "appended " << static_cast<int>(c);
    EXPECT_FALSE(
        VerifyVoucherDocument(std::string(1, c) + document_, signer_->public_key_pem()).ok())
        << "prepended " << static_cast<int>(c);
  }
  EXPECT_THAT(VerifyVoucherDocument(document_ + document_.substr(payload_.size()),
                                    signer_->public_key_pem()),
              StatusIs(kPrecondition, "VOUCHER_SIGNATURE_INVALID"));
}

TEST(VoucherKeyTest, ReadsAKeyFromTheOpenSslCli) {
  TempDir dir;
  const std::string key_file = dir.File("voucher.pem");
  const std::string public_file = dir.File("voucher.pub.pem");
  RunOpenSsl(absl::StrCat("genpkey -algorithm ed25519 -out ", key_file));
  RunOpenSsl(absl::StrCat("pkey -in ", key_file, " -pubout -out ", public_file));

  absl::StatusOr<std::unique_ptr<VoucherSigner>> signer = VoucherSigner::FromPemFile(key_file, "");
  ASSERT_THAT(signer, IsOk());
  const std::string cli_public_pem = ReadFile(public_file);
  EXPECT_EQ((*signer)->public_key_pem(), cli_public_pem);
  absl::StatusOr<std::string> default_id = DefaultKeyId(cli_public_pem);
  ASSERT_THAT(default_id, IsOk());
  EXPECT_EQ((*signer)->key_id(), *default_id);

  // A voucher it signs verifies with the public key as the CLI extracted it.
  VoucherTerms terms = FixedTerms();
  terms.key_id = (*signer)->key_id();
  std::string payload = CanonicalVoucherPayload(terms);
  absl::StatusOr<VoucherTerms> verified =
      VerifyVoucherDocument(VoucherDocument(payload, (*signer)->Sign(payload)), cli_public_pem);
  ASSERT_THAT(verified, IsOk());
  EXPECT_EQ(*verified, terms);

  absl::StatusOr<std::unique_ptr<VoucherSigner>> named =
      VoucherSigner::FromPemFile(key_file, "prod-2026");
  ASSERT_THAT(named, IsOk());
  EXPECT_EQ((*named)->key_id(), "prod-2026");
}

TEST(VoucherKeyTest, RefusesAnRsaKey) {
  TempDir dir;
  const std::string key_file = dir.File("rsa.pem");
  RunOpenSsl(absl::StrCat("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out ", key_file));
  EXPECT_THAT(VoucherSigner::FromPemFile(key_file, ""),
              StatusIs(kPrecondition, "VOUCHER_KEY_INVALID"));

  // Nor does an RSA public key verify anything.
  const std::string public_file = dir.File("rsa.pub.pem");
  RunOpenSsl(absl::StrCat("pkey -in ", key_file, " -pubout -out ", public_file));
  EXPECT_THAT(DefaultKeyId(ReadFile(public_file)), StatusIs(kInvalid, "VOUCHER_KEY_INVALID"));
}

TEST(VoucherKeyTest, RefusesMissingGarbageAndEncryptedKeys) {
  TempDir dir;
  EXPECT_THAT(VoucherSigner::FromPemFile(dir.File("absent.pem"), ""),
              StatusIs(kPrecondition, "VOUCHER_KEY_INVALID"));
  const std::string garbage = dir.File("garbage.pem");
  std::ofstream(garbage) << "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n";
  EXPECT_THAT(VoucherSigner::FromPemFile(garbage, ""),
              StatusIs(kPrecondition, "VOUCHER_KEY_INVALID"));
  // Encrypted: refused without prompting on a terminal for the passphrase.
  const std::string encrypted = dir.File("encrypted.pem");
  RunOpenSsl(
      absl::StrCat("genpkey -algorithm ed25519 -aes-128-cbc -pass pass:secret -out ", encrypted));
  EXPECT_THAT(VoucherSigner::FromPemFile(encrypted, ""),
              StatusIs(kPrecondition, "VOUCHER_KEY_INVALID"));
}

TEST(VoucherKeyTest, RefusesKeyIdsThatCannotBeWritten) {
  EXPECT_THAT(VoucherSigner::Generate("two words"), StatusIs(kInvalid, "VOUCHER_KEY_INVALID"));
  EXPECT_THAT(VoucherSigner::Generate("line\nbreak"), StatusIs(kInvalid, "VOUCHER_KEY_INVALID"));
}

TEST(VoucherKeyTest, DefaultKeyIdFormat) {
  absl::StatusOr<std::unique_ptr<VoucherSigner>> signer = VoucherSigner::Generate("");
  ASSERT_THAT(signer, IsOk());
  EXPECT_THAT((*signer)->key_id(), MatchesRegex("ed25519-[0-9a-f]{16}"));
  absl::StatusOr<std::string> id = DefaultKeyId((*signer)->public_key_pem());
  ASSERT_THAT(id, IsOk());
  EXPECT_EQ(*id, (*signer)->key_id());
}

TEST(VoucherKeyTest, DefaultKeyIdOfAKnownKey) {
  // RFC 8032 §7.1 TEST 1 public key d75a9801…511a, as SubjectPublicKeyInfo PEM.
  constexpr char kPem[] =
      "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
      "-----END PUBLIC KEY-----\n";
  absl::StatusOr<std::string> id = DefaultKeyId(kPem);
  ASSERT_THAT(id, IsOk());
  EXPECT_EQ(*id, "ed25519-21fe31dfa154a261");  // sha256sum of the 32 raw bytes, first 16
}

TEST(VoucherKeyTest, SignsTheRfc8032TestVector) {
  // RFC 8032 §7.1 TEST 2: the key as PKCS#8 PEM (the fixed 16-byte prefix, then the seed), the
  // one-byte message 0x72 and the signature the RFC gives for it.
  const std::string der = absl::HexStringToBytes(
      "302e020100300506032b657004220420"
      "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
  TempDir dir;
  const std::string key_file = dir.File("rfc8032.pem");
  std::ofstream(key_file) << "-----BEGIN PRIVATE KEY-----\n"
                          << absl::Base64Escape(der) << "\n-----END PRIVATE KEY-----\n";
  absl::StatusOr<std::unique_ptr<VoucherSigner>> signer = VoucherSigner::FromPemFile(key_file, "");
  ASSERT_THAT(signer, IsOk());
  EXPECT_EQ(absl::BytesToHexString((*signer)->Sign("\x72")),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
            "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
}

}  // namespace
}  // namespace vch
