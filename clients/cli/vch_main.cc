// vch: command-line client of vchd. Human-readable output by default, --json for scripts.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/json_log.h"
#include "clients/cli/capacity_commands.h"
#include "clients/cli/cli_common.h"
#include "clients/cli/redemption_commands.h"
#include "clients/cli/workflow_commands.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "vch/v1/identity.grpc.pb.h"
#include "vch/v1/ledger.grpc.pb.h"

namespace {

using vch::cli::CommandFlags;
using vch::cli::FormatCny;
using vch::cli::FormatTimestamp;
using vch::cli::FormatUtc;
using vch::cli::JsonObject;
using vch::cli::OnlyFlags;
using vch::cli::Options;
using vch::cli::PrepareContext;
using vch::cli::PrintError;
using vch::cli::ShortName;
using vch::cli::Usage;

constexpr char kHelp[] =
    "vch - command-line client of the vch compute-voucher clearinghouse\n"
    "\n"
    "Usage: vch [global options] COMMAND [args]\n"
    "\n"
    "Commands:\n"
    "  health            the server's grpc.health.v1 status (exit 0 only when SERVING)\n"
    "  whoami            the principal the server authenticates you as\n"
    "  help              this text\n"
    "\n"
    "Ledger (read-only):\n"
    "  account get ID    one ledger account and its balance\n"
    "  transfers list [--account ID] [--kind KIND] [--page-size N] [--page-token T]\n"
    "                    an account's transfers in id order (its statement); --account may be\n"
    "                    left out only by PLATFORM_ADMIN and AUDITOR; KIND is FUND, AWARD, HOLD,\n"
    "                    POST, VOID, EXPIRE, PAYOUT, CLAWBACK or REVERSAL; a page holds N\n"
    "                    transfers (default 100, at most 1000), the next page is asked for with\n"
    "                    the --page-token printed under the table\n"
    "  balance --account ID [--at TIME]\n"
    "                    the account's balance as of TIME (RFC 3339, e.g.\n"
    "                    2024-05-01T08:00:00+08:00; default now)\n"
    "  verify            check the ledger's invariants (PLATFORM_ADMIN, AUDITOR); exit 0 when\n"
    "                    it verifies, 1 with each violation printed when it does not\n"
    "\n"
    "Issuers (program offices):\n"
    "  issuer register --id ID --name NAME --region CODE --level city|province|national\n"
    "                    register a program office (PLATFORM_ADMIN); CODE is its GB/T 2260\n"
    "                    division, e.g. 310000 Shanghai, 510100 Chengdu, 370000 Shandong\n"
    "  issuer get ID     one issuer\n"
    "  issuer list       every issuer, in id order\n"
    "\n"
    "Programs (ISSUER_ADMIN:<issuer> changes its own issuer's programs; anyone reads them):\n"
    "  program create --id ID --file RULES.json\n"
    "                    a DRAFT program with the rules in RULES.json (\"-\" for standard input):\n"
    "                    a vch.v1.ProgramRules in protobuf JSON, enums by name (e.g.\n"
    "                    \"PROGRAM_CATEGORY_AI_RENTAL\"), times in RFC 3339, int64 fen\n"
    "  program update --id ID --file RULES.json\n"
    "                    replace the rules of a DRAFT program\n"
    "  program get ID    one program: rules, funding and available budget\n"
    "  program list [--issuer ISSUER] [--state draft|open|closed|archived]\n"
    "  program open ID | program close ID | program archive ID\n"
    "                    DRAFT -> OPEN -> CLOSED -> ARCHIVED (or DRAFT -> ARCHIVED)\n"
    "  program fund ID --amount-fen N [--note TEXT]\n"
    "                    add a budget tranche of N fen (a FUND transfer treasury -> budget)\n"
    "\n"
    "Enterprises (ENTERPRISE:<uscc> for itself, or PLATFORM_ADMIN):\n"
    "  enterprise register --uscc CODE --name NAME --region CODE --kind sme|research|startup\n"
    "                      --size micro|small|medium|large\n"
    "                    CODE is the 18-character unified social credit code\n"
    "  enterprise get USCC\n"
    "  enterprise list   (platform admins, auditors, issuer staff)\n"
    "\n"
    "Applications and awards:\n"
    "  application submit --program P --enterprise USCC --requested-fen N [--purpose TEXT]\n"
    "                    apply for N fen of vouchers (ENTERPRISE:<USCC>); eligibility is checked\n"
    "                    at once\n"
    "  application get ID\n"
    "  application list [--program P] [--state submitted|approved|rejected|withdrawn]\n"
    "                   [--enterprise USCC]\n"
    "                    in id order, scoped to what the caller may see\n"
    "  application withdraw ID\n"
    "                    withdraw a SUBMITTED application (its enterprise)\n"
    "  application approve ID --amount-fen N [--note TEXT]\n"
    "                    award N fen (<= requested) from the budget to the enterprise's wallet\n"
    "                    (REVIEWER or ISSUER_ADMIN of the program's issuer)\n"
    "  application reject ID --reason TEXT\n"
    "  award get --program P --enterprise USCC\n"
    "                    the enterprise's award in the program: awarded, clawed back, wallet\n"
    "  award clawback --program P --enterprise USCC --amount-fen N --reason TEXT\n"
    "                    take back unspent credit (ISSUER_ADMIN): a CLAWBACK transfer\n"
    "\n"
    "Datacenters and capacity (OPERATOR:<datacenter> for its own site; anyone reads):\n"
    "  datacenter register --id ID --name NAME --region CODE --hub HUB [--operator COMPANY]\n"
    "                      [--national-network]\n"
    "                    register a site (its OPERATOR, or PLATFORM_ADMIN); HUB is one of\n"
    "                    beijing-tianjin-hebei, yangtze-river-delta, guangdong-hong-kong-macao,\n"
    "                    chengdu-chongqing, inner-mongolia, guizhou, gansu, ningxia;\n"
    "                    --national-network: reachable by NATIONAL-scope programs\n"
    "  datacenter get ID\n"
    "  datacenter list [--hub HUB]\n"
    "  datacenter suspend ID --reason TEXT | datacenter resume ID\n"
    "                    a suspended site receives no placements (PLATFORM_ADMIN, AUDITOR)\n"
    "  pool register --datacenter DC --id ID --model MODEL [--vendor V] [--domestic] [--fp8]\n"
    "                --memory-gib N [--fp16-tflops N] [--fp8-tflops N] --gpus N --price-fen N\n"
    "                    a GPU pool of N GPUs at N fen per GPU-hour (the site's OPERATOR)\n"
    "  pool list DC      the site's pools: free GPUs as last reported, GPUs held by vch\n"
    "  capacity report DC POOL=FREE [POOL=FREE ...]\n"
    "                    report free GPUs per pool (the site's OPERATOR); placement ignores\n"
    "                    pools whose last report is older than 15 minutes\n"
    "  utilization (--pool DC/POOL | --datacenter DC | --hub HUB) --from TIME --to TIME\n"
    "              [--bucket-s N]\n"
    "                    busy GPUs over time from the report history, per bucket of N seconds\n"
    "                    (default 3600); TIME in RFC 3339\n"
    "\n"
    "Placement:\n"
    "  place --program P --gpus N [--model M] [--fp8] [--domestic] [--min-memory-gib N]\n"
    "        [--max-price-fen N] [--prefer-region PREFIX]\n"
    "                    choose a pool for N GPUs (all in one pool) under program P and hold\n"
    "                    them (ENTERPRISE, PLATFORM_ADMIN): prints the pool, its score\n"
    "                    (utilization + price + region terms), the hold id and its expiry, or,\n"
    "                    when no pool fits, how many pools were excluded for each reason (exit\n"
    "                    1); PREFIX is the start of a GB/T 2260 code, e.g. 52 (Guizhou)\n"
    "  explain --program P --gpus N [same flags as place] [--top N]\n"
    "                    the N best pools (default 5) with their scores, and the exclusions;\n"
    "                    reserves nothing\n"
    "  placement release HOLD_ID\n"
    "                    give a placement's GPUs back (the enterprise that placed it)\n"
    "\n"
    "Redemptions (ENTERPRISE:<uscc> requests and cancels its own; OPERATOR:<datacenter> confirms\n"
    "and rejects placements at its site):\n"
    "  redemption request --program P --gpus N --hours H [--model M] [--fp8] [--domestic]\n"
    "                     [--min-memory-gib N] [--max-price-fen N] [--prefer-region PREFIX]\n"
    "                     [--voucher-out FILE]\n"
    "                    spend the award in program P on N GPUs for H hours (1..2160): places\n"
    "                    the request like place does and, in one step, holds the GPUs and the\n"
    "                    voucher share of the estimated bill; prints the redemption (pool, price,\n"
    "                    ratio, estimated bill, amount held, expiry) or, when no pool fits, how\n"
    "                    many pools were excluded for each reason (exit 3, nothing held);\n"
    "                    --voucher-out writes the signed voucher to FILE\n"
    "  redemption get ID [--voucher-out FILE]\n"
    "                    one redemption; --voucher-out writes its signed voucher to FILE\n"
    "  redemption list [--program P] [--enterprise USCC] [--datacenter DC]\n"
    "                  [--state placed|confirmed|active|settled|cancelled|expired|rejected]\n"
    "                    newest first, scoped to what the caller may see\n"
    "  redemption cancel ID [--reason TEXT]\n"
    "                    cancel a PLACED or CONFIRMED redemption without usage, releasing the\n"
    "                    GPUs and the credit held (its enterprise)\n"
    "  redemption pending\n"
    "                    PLACED redemptions at the operator's site, oldest first\n"
    "  redemption confirm ID\n"
    "                    accept a placement: the GPUs are the site's to schedule (OPERATOR)\n"
    "  redemption reject ID --reason TEXT\n"
    "                    refuse a placement (OPERATOR): its holds are released and the request\n"
    "                    is placed once more elsewhere; prints the rejected redemption and the\n"
    "                    replacement, or why no pool could take it\n"
    "  usage report REDEMPTION_ID --usage-id U --gpu-seconds S --start TIME --end TIME [--final]\n"
    "                    one metered usage record (OPERATOR), settled at once: prints the bill,\n"
    "                    the subsidy and the copay; U (1 to 128 characters) makes it take effect\n"
    "                    once (the same record sent again returns the first answer), so it takes\n"
    "                    no --request-id; --final releases what remains held and settles the\n"
    "                    redemption\n"
    "\n"
    "Payouts (ISSUER_ADMIN of the program's issuer creates them; issuer staff, auditors and the\n"
    "payee read them):\n"
    "  payout create --program P (--datacenter DC | --enterprise USCC) --start TIME --end TIME\n"
    "                    pay the payee's claims in P settled in [start, end) in one PAYOUT\n"
    "                    transfer: a datacenter for DIRECT programs, an enterprise for REIMBURSE\n"
    "  payout get ID\n"
    "  payout list [--program P] [--datacenter DC] [--enterprise USCC]\n"
    "  payout export ID [--out FILE]\n"
    "                    the payout's statement as CSV (RFC 4180: header row, CRLF line ends)\n"
    "                    to standard output or FILE, one row per usage record paid, columns\n"
    "                    payout_id, program, payee, usage_name, redemption_id, usage_id,\n"
    "                    enterprise, pool, start_time, end_time, gpu_seconds,\n"
    "                    price_fen_per_gpu_hour, ratio_bps, bill_fen, subsidy_fen, copay_fen,\n"
    "                    final, settle_time, post_transfer_id; amounts in integer fen, times RFC\n"
    "                    3339 UTC; nothing is written (exit 1) unless the rows add up to the\n"
    "                    payout's line count and amount\n"
    "\n"
    "Vouchers (a placed redemption's terms, signed by vchd with Ed25519):\n"
    "  voucher key [--out FILE]\n"
    "                    the key id and public key (PEM) vouchers are signed with; --out writes\n"
    "                    the PEM to FILE (anyone)\n"
    "  voucher verify FILE --public-key KEYFILE\n"
    "                    check a voucher file offline (no server, no principal needed) against\n"
    "                    the PEM public key in KEYFILE: prints \"voucher OK\" and its terms\n"
    "                    (exit 0), or why it is not valid (exit 1); any changed, added or\n"
    "                    removed byte fails\n"
    "\n"
    "Every list takes [--page-size N] [--page-token T]. Every command that changes something\n"
    "takes [--request-id ID] (1 to 128 characters; default a new random UUID) and prints the\n"
    "request id with its result or its error: run it again with the same --request-id to retry\n"
    "safely (the server returns the first call's result instead of acting twice).\n"
    "\n"
    "Global options (each also read from its environment variable):\n"
    "  --server=HOST:PORT    VCH_SERVER     vchd address (default 127.0.0.1:50051)\n"
    "  --principal=P         VCH_PRINCIPAL  development-mode principal ROLE[:tenant][/subject],\n"
    "                                       e.g. PLATFORM_ADMIN or ENTERPRISE:91310000MA1FL4XY2K\n"
    "  --timeout-ms=MS                      per-call deadline (default 10000)\n"
    "  --json                               print JSON instead of text\n"
    "\n"
    "Amounts are shown in CNY with two decimals; --json gives exact integer fen (*_fen fields).\n"
    "The workflow, capacity, placement, redemption, usage, payout and voucher key commands print\n"
    "the response message in protobuf JSON (proto field names; int64 values such as *_fen and\n"
    "hold_id as decimal strings), plus \"request_id\" for changes. payout export writes CSV\n"
    "either way.\n"
    "\n"
    "Exit codes: 0 ok, 1 the call failed (the error and its reason are printed), the ledger\n"
    "did not verify, place found no pool, a voucher is not valid or a file could not be\n"
    "written, 2 bad usage, 3 redemption request found no pool (nothing was held).\n";

int Health(const std::shared_ptr<grpc::Channel>& channel, const Options& options) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return PrintError(status, options.json);
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  if (options.json) {
    std::printf("{\"status\":\"%s\"}\n", name.c_str());
  } else {
    std::printf("%s\n", name.c_str());
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

int WhoAmI(const std::shared_ptr<grpc::Channel>& channel, const Options& options) {
  auto stub = vch::v1::IdentityService::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  vch::v1::WhoAmIResponse response;
  grpc::Status status = stub->WhoAmI(&context, vch::v1::WhoAmIRequest(), &response);
  if (!status.ok()) return PrintError(status, options.json);
  std::string role = vch::v1::Role_Name(response.principal().role());
  if (absl::StartsWith(role, "ROLE_")) role = role.substr(5);
  if (options.json) {
    std::string out = "{\"role\":";
    vch::AppendJsonString(&out, role);
    out += ",\"tenant\":";
    vch::AppendJsonString(&out, response.principal().tenant());
    out += ",\"subject\":";
    vch::AppendJsonString(&out, response.principal().subject());
    absl::StrAppend(&out, ",\"schema_version\":", response.schema_version(),
                    ",\"server_version\":");
    vch::AppendJsonString(&out, response.server_version());
    out += "}\n";
    std::fputs(out.c_str(), stdout);
  } else {
    std::printf(
        "role            %s\ntenant          %s\nsubject         %s\n"
        "schema_version  %lld\nserver_version  %s\n",
        role.c_str(), response.principal().tenant().c_str(), response.principal().subject().c_str(),
        static_cast<long long>(response.schema_version()), response.server_version().c_str());
  }
  return 0;
}

// --- Formatting shared by the ledger commands. ---

std::string AccountKindName(vch::v1::AccountKind kind) {
  return ShortName(vch::v1::AccountKind_Name(kind), "ACCOUNT_KIND_");
}

std::string TransferKindName(vch::v1::TransferKind kind) {
  return ShortName(vch::v1::TransferKind_Name(kind), "TRANSFER_KIND_");
}

std::string BalanceJson(const vch::v1::Balance& b) {
  return JsonObject()
      .Int("debits_pending_fen", b.debits_pending_fen())
      .Int("debits_posted_fen", b.debits_posted_fen())
      .Int("credits_pending_fen", b.credits_pending_fen())
      .Int("credits_posted_fen", b.credits_posted_fen())
      .Int("available_fen", b.available_fen())
      .Finish();
}

std::string AccountJson(const vch::v1::Account& a) {
  return JsonObject()
      .Int("id", a.id())
      .String("name", a.name())
      .String("program", a.program())
      .String("issuer", a.issuer())
      .String("kind", AccountKindName(a.kind()))
      .String("owner", a.owner())
      .Bool("no_overdraft", a.no_overdraft())
      .Raw("balance", BalanceJson(a.balance()))
      .String("create_time", FormatTimestamp(a.has_create_time(), a.create_time()))
      .Finish();
}

std::string TransferJson(const vch::v1::Transfer& t) {
  JsonObject json;
  json.Int("id", t.id())
      .String("program", t.program())
      .String("kind", TransferKindName(t.kind()))
      .Int("debit_account_id", t.debit_account_id())
      .Int("credit_account_id", t.credit_account_id())
      .Int("amount_fen", t.amount_fen())
      .Int("released_fen", t.released_fen())
      .Int("pending_id", t.pending_id());
  if (t.has_expire_time()) json.String("expire_time", FormatTimestamp(true, t.expire_time()));
  return json.String("create_time", FormatTimestamp(t.has_create_time(), t.create_time()))
      .String("request_id", t.request_id())
      .Raw("metadata", t.metadata_json().empty() ? "{}" : t.metadata_json())
      .Raw("debit_balance_after", BalanceJson(t.debit_balance_after()))
      .Raw("credit_balance_after", BalanceJson(t.credit_balance_after()))
      .Finish();
}

void PrintBalanceText(const vch::v1::Balance& b) {
  std::printf(
      "debits_pending   %s CNY\ndebits_posted    %s CNY\ncredits_pending  %s CNY\n"
      "credits_posted   %s CNY\navailable        %s CNY\n",
      FormatCny(b.debits_pending_fen()).c_str(), FormatCny(b.debits_posted_fen()).c_str(),
      FormatCny(b.credits_pending_fen()).c_str(), FormatCny(b.credits_posted_fen()).c_str(),
      FormatCny(b.available_fen()).c_str());
}

bool ParseAccountId(absl::string_view text, int64_t* id) {
  return absl::SimpleAtoi(text, id) && *id > 0;
}

// --- Ledger commands. ---

int AccountGet(const std::shared_ptr<grpc::Channel>& channel, const Options& options,
               const std::vector<std::string>& args, const CommandFlags& flags) {
  int code = 0;
  if (!OnlyFlags(flags, {}, "account get", &code)) return code;
  if (args.size() != 1) return Usage("usage: vch account get ID");
  vch::v1::GetAccountRequest request;
  int64_t id = 0;
  if (!ParseAccountId(args[0], &id)) return Usage("account ID must be a positive integer");
  request.set_account_id(id);
  auto stub = vch::v1::LedgerService::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  vch::v1::GetAccountResponse response;
  grpc::Status status = stub->GetAccount(&context, request, &response);
  if (!status.ok()) return PrintError(status, options.json);
  const vch::v1::Account& a = response.account();
  if (options.json) {
    std::printf("%s\n", AccountJson(a).c_str());
    return 0;
  }
  std::printf(
      "id               %lld\nname             %s\nprogram          %s\nissuer           %s\n"
      "kind             %s\nowner            %s\nno_overdraft     %s\ncreated          %s\n",
      static_cast<long long>(a.id()), a.name().c_str(), a.program().c_str(), a.issuer().c_str(),
      AccountKindName(a.kind()).c_str(), a.owner().empty() ? "-" : a.owner().c_str(),
      a.no_overdraft() ? "yes" : "no",
      FormatTimestamp(a.has_create_time(), a.create_time()).c_str());
  PrintBalanceText(a.balance());
  return 0;
}

int TransfersList(const std::shared_ptr<grpc::Channel>& channel, const Options& options,
                  const std::vector<std::string>& args, const CommandFlags& flags) {
  int code = 0;
  if (!OnlyFlags(flags, {"account", "kind", "page-size", "page-token"}, "transfers list", &code)) {
    return code;
  }
  if (!args.empty()) return Usage("transfers list takes no positional arguments");
  vch::v1::ListTransfersRequest request;
  if (auto it = flags.find("account"); it != flags.end()) {
    int64_t id = 0;
    if (!ParseAccountId(it->second, &id)) return Usage("--account needs a positive account id");
    request.set_account_id(id);
  }
  if (auto it = flags.find("kind"); it != flags.end()) {
    vch::v1::TransferKind kind;
    if (!vch::v1::TransferKind_Parse(
            absl::StrCat("TRANSFER_KIND_", absl::AsciiStrToUpper(it->second)), &kind) ||
        kind == vch::v1::TRANSFER_KIND_UNSPECIFIED) {
      return Usage(absl::StrCat("unknown transfer kind '", it->second, "'"));
    }
    request.set_kind(kind);
  }
  if (auto it = flags.find("page-size"); it != flags.end()) {
    int32_t page_size = 0;
    if (!absl::SimpleAtoi(it->second, &page_size) || page_size < 0) {
      return Usage("--page-size needs a number >= 0");
    }
    request.set_page_size(page_size);
  }
  if (auto it = flags.find("page-token"); it != flags.end()) request.set_page_token(it->second);

  auto stub = vch::v1::LedgerService::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  vch::v1::ListTransfersResponse response;
  grpc::Status status = stub->ListTransfers(&context, request, &response);
  if (!status.ok()) return PrintError(status, options.json);
  if (options.json) {
    std::string transfers = "[";
    for (const vch::v1::Transfer& t : response.transfers()) {
      if (transfers.size() > 1) transfers += ",";
      transfers += TransferJson(t);
    }
    transfers += "]";
    std::printf("%s\n", JsonObject()
                            .Raw("transfers", transfers)
                            .String("next_page_token", response.next_page_token())
                            .Finish()
                            .c_str());
    return 0;
  }
  // With one account named, the last column is that account's available balance after each
  // transfer, which makes the table a statement.
  const int64_t account = request.account_id();
  std::printf("%-10s %-9s %10s %10s %16s %16s  %s\n", "ID", "KIND", "DEBIT", "CREDIT", "AMOUNT_CNY",
              account != 0 ? "AVAILABLE_CNY" : "", "CREATED");
  for (const vch::v1::Transfer& t : response.transfers()) {
    std::string available;
    if (account != 0) {
      const vch::v1::Balance& after =
          t.debit_account_id() == account ? t.debit_balance_after() : t.credit_balance_after();
      available = FormatCny(after.available_fen());
    }
    std::printf("%-10lld %-9s %10lld %10lld %16s %16s  %s\n", static_cast<long long>(t.id()),
                TransferKindName(t.kind()).c_str(), static_cast<long long>(t.debit_account_id()),
                static_cast<long long>(t.credit_account_id()), FormatCny(t.amount_fen()).c_str(),
                available.c_str(), FormatTimestamp(t.has_create_time(), t.create_time()).c_str());
  }
  if (!response.next_page_token().empty()) {
    std::printf("more: --page-token %s\n", response.next_page_token().c_str());
  }
  return 0;
}

int Balance(const std::shared_ptr<grpc::Channel>& channel, const Options& options,
            const std::vector<std::string>& args, const CommandFlags& flags) {
  int code = 0;
  if (!OnlyFlags(flags, {"account", "at"}, "balance", &code)) return code;
  if (!args.empty()) return Usage("balance takes no positional arguments");
  vch::v1::GetBalanceAtRequest request;
  auto account = flags.find("account");
  int64_t id = 0;
  if (account == flags.end() || !ParseAccountId(account->second, &id)) {
    return Usage("balance needs --account ID (a positive account id)");
  }
  request.set_account_id(id);
  absl::Time at = absl::Now();
  if (auto it = flags.find("at"); it != flags.end()) {
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, it->second, &at, &error)) {
      return Usage(absl::StrCat("--at needs an RFC 3339 time such as 2024-05-01T08:00:00+08:00 (",
                                error, ")"));
    }
  }
  const int64_t seconds = absl::ToUnixSeconds(at);
  request.mutable_time()->set_seconds(seconds);
  request.mutable_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(at - absl::FromUnixSeconds(seconds))));

  auto stub = vch::v1::LedgerService::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  vch::v1::GetBalanceAtResponse response;
  grpc::Status status = stub->GetBalanceAt(&context, request, &response);
  if (!status.ok()) return PrintError(status, options.json);
  const std::string at_text = FormatUtc(at);
  if (options.json) {
    std::printf("%s\n", JsonObject()
                            .Int("account_id", id)
                            .String("time", at_text)
                            .Int("last_transfer_id", response.last_transfer_id())
                            .Raw("balance", BalanceJson(response.balance()))
                            .Finish()
                            .c_str());
    return 0;
  }
  std::printf("account          %lld\nat               %s\nlast_transfer    %s\n",
              static_cast<long long>(id), at_text.c_str(),
              response.last_transfer_id() == 0 ? "- (no transfer yet)"
                                               : absl::StrCat(response.last_transfer_id()).c_str());
  PrintBalanceText(response.balance());
  return 0;
}

int Verify(const std::shared_ptr<grpc::Channel>& channel, const Options& options,
           const std::vector<std::string>& args, const CommandFlags& flags) {
  int code = 0;
  if (!OnlyFlags(flags, {}, "verify", &code)) return code;
  if (!args.empty()) return Usage("verify takes no arguments");
  auto stub = vch::v1::LedgerService::NewStub(channel);
  grpc::ClientContext context;
  PrepareContext(&context, options);
  vch::v1::VerifyLedgerResponse response;
  grpc::Status status = stub->VerifyLedger(&context, vch::v1::VerifyLedgerRequest(), &response);
  if (!status.ok()) return PrintError(status, options.json);
  if (options.json) {
    std::string violations = "[";
    for (const std::string& v : response.violations()) {
      if (violations.size() > 1) violations += ",";
      vch::AppendJsonString(&violations, v);
    }
    violations += "]";
    std::printf("%s\n", JsonObject()
                            .Bool("ok", response.ok())
                            .Int("accounts", response.accounts())
                            .Int("transfers", response.transfers())
                            .Int("holds", response.holds())
                            .Raw("violations", violations)
                            .Finish()
                            .c_str());
  } else if (response.ok()) {
    std::printf("ledger verified: %lld accounts, %lld transfers, %lld holds\n",
                static_cast<long long>(response.accounts()),
                static_cast<long long>(response.transfers()),
                static_cast<long long>(response.holds()));
  } else {
    std::printf("ledger NOT verified: %d violations (%lld accounts, %lld transfers, %lld holds)\n",
                response.violations_size(), static_cast<long long>(response.accounts()),
                static_cast<long long>(response.transfers()),
                static_cast<long long>(response.holds()));
    for (const std::string& v : response.violations()) std::printf("  %s\n", v.c_str());
  }
  return response.ok() ? 0 : 1;
}

}  // namespace

// Flags that take a value and belong to a command; OnlyFlags checks which command takes which.
const std::set<std::string>& CommandValueFlags() {
  static const std::set<std::string> kFlags = {
      "account",       "amount-fen", "at",      "enterprise", "file",   "id",
      "issuer",        "kind",       "level",   "name",       "note",   "page-size",
      "page-token",    "program",    "purpose", "reason",     "region", "request-id",
      "requested-fen", "size",       "state",   "uscc"};
  return kFlags;
}

int main(int argc, char** argv) {
  Options options;
  if (const char* v = std::getenv("VCH_SERVER"); v != nullptr && *v) options.server = v;
  if (const char* v = std::getenv("VCH_PRINCIPAL"); v != nullptr && *v) options.principal = v;
  std::vector<std::string> positional;
  CommandFlags command_flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](absl::string_view flag, std::string* out) {
      if (absl::StartsWith(arg, absl::StrCat(flag, "="))) {
        *out = arg.substr(flag.size() + 1);
        return true;
      }
      if (arg == flag && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      return false;
    };
    std::string value;
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "--help" || arg == "-h") {
      positional.insert(positional.begin(), "help");
    } else if (value_of("--server", &value)) {
      options.server = value;
    } else if (value_of("--principal", &value)) {
      options.principal = value;
    } else if (value_of("--timeout-ms", &value)) {
      options.timeout_ms = std::atoi(value.c_str());
      if (options.timeout_ms <= 0) return Usage("--timeout-ms needs a positive number");
    } else if (absl::StartsWith(arg, "--")) {
      const std::string name =
          arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
      if (vch::cli::CapacitySwitchFlags().contains(name) ||
          vch::cli::RedemptionSwitchFlags().contains(name)) {
        // A switch: "--fp8" alone means true; "--fp8=false" is also understood.
        if (command_flags.contains(name)) return Usage(absl::StrCat("--", name, " given twice"));
        command_flags[name] =
            arg.find('=') == std::string::npos ? "true" : arg.substr(name.size() + 3);
        continue;
      }
      if (!CommandValueFlags().contains(name) && !vch::cli::CapacityValueFlags().contains(name) &&
          !vch::cli::RedemptionValueFlags().contains(name)) {
        return Usage(absl::StrCat("unknown flag ", arg));
      }
      if (!value_of(absl::StrCat("--", name), &value)) {
        return Usage(absl::StrCat("--", name, " needs a value"));
      }
      if (command_flags.contains(name)) return Usage(absl::StrCat("--", name, " given twice"));
      command_flags[name] = value;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty() || positional[0] == "help") {
    std::fputs(kHelp, stdout);
    return positional.empty() ? 2 : 0;
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  const std::string& command = positional[0];
  const std::vector<std::string> rest(positional.begin() + 1, positional.end());
  // Commands without flags of their own refuse any, like the ledger commands do.
  if (command == "health" || command == "whoami") {
    int code = 0;
    if (!OnlyFlags(command_flags, {}, command, &code)) return code;
  }
  if (command == "health") return Health(channel, options);
  if (command == "whoami") return WhoAmI(channel, options);
  if (command == "account" && !rest.empty() && rest[0] == "get") {
    return AccountGet(channel, options, {rest.begin() + 1, rest.end()}, command_flags);
  }
  if (command == "transfers" && !rest.empty() && rest[0] == "list") {
    return TransfersList(channel, options, {rest.begin() + 1, rest.end()}, command_flags);
  }
  if (command == "balance") return Balance(channel, options, rest, command_flags);
  if (command == "verify") return Verify(channel, options, rest, command_flags);
  if (command == "account" || command == "transfers") {
    return Usage(absl::StrCat("usage: vch ", command,
                              command == "account" ? " get ID" : " list [--account ID] ..."));
  }
  const vch::cli::Invocation invocation{
      .channel = channel, .options = options, .args = rest, .flags = command_flags};
  if (std::optional<int> code = vch::cli::RunWorkflowCommand(command, invocation)) return *code;
  if (std::optional<int> code = vch::cli::RunCapacityCommand(command, invocation)) return *code;
  if (std::optional<int> code = vch::cli::RunRedemptionCommand(command, invocation)) return *code;
  return Usage(absl::StrCat("unknown command '", command, "'"));
}
