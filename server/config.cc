#include "server/config.h"

#include <functional>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/json_log.h"

namespace vch::server {
namespace {

struct OptionSpec {
  absl::string_view flag;  // without "--"
  absl::string_view env;
  absl::string_view value_name;
  absl::string_view help;
  std::function<absl::Status(VchdConfig&, absl::string_view)> apply;
};

absl::Status BadValue(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value '", value, "' for --", flag, ": ", why));
}

absl::Status ParseIntIn(absl::string_view flag, absl::string_view value, int64_t lo, int64_t hi,
                        int64_t* out) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
    return BadValue(flag, value, absl::StrCat("expected an integer in ", lo, "..", hi));
  }
  *out = v;
  return absl::OkStatus();
}

const std::vector<OptionSpec>& Options() {
  static const auto* options = new std::vector<OptionSpec>{
      {"listen", "VCH_LISTEN", "HOST:PORT",
       "gRPC listen address (default 127.0.0.1:50051; port 0 picks a free port)",
       [](VchdConfig& c, absl::string_view v) {
         if (v.rfind(':') == absl::string_view::npos)
           return BadValue("listen", v, "expected HOST:PORT");
         c.listen = std::string(v);
         return absl::OkStatus();
       }},
      {"dsn", "VCH_DSN", "DSN",
       "PostgreSQL connection string (libpq key=value or postgresql:// URI); required",
       [](VchdConfig& c, absl::string_view v) {
         c.dsn = std::string(v);
         return absl::OkStatus();
       }},
      {"pool-size", "VCH_POOL_SIZE", "N",
       "database connections for the handlers (default 8; the batched ledger and redemption "
       "writers have connections of their own)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t n = 0;
         absl::Status s = ParseIntIn("pool-size", v, 1, 512, &n);
         c.pool_size = static_cast<int>(n);
         return s;
       }},
      {"max-threads", "VCH_MAX_THREADS", "N",
       "gRPC handler threads at most (default 256): calls in flight, including those waiting "
       "for a database connection; a call beyond them is refused with RESOURCE_EXHAUSTED "
       "(RequestCompute and ReportUsage hold no thread while they wait for their batch: see "
       "--max-queued-requests)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t n = 0;
         absl::Status s = ParseIntIn("max-threads", v, 4, 4096, &n);
         c.max_threads = static_cast<int>(n);
         return s;
       }},
      {"max-queued-requests", "VCH_MAX_QUEUED_REQUESTS", "N",
       "RequestCompute (and, separately, ReportUsage) calls waiting for their batch at most "
       "(default 4096); one beyond them is refused with RESOURCE_EXHAUSTED QUEUE_FULL",
       [](VchdConfig& c, absl::string_view v) {
         int64_t n = 0;
         absl::Status s = ParseIntIn("max-queued-requests", v, 1, 1 << 20, &n);
         c.max_queued_requests = static_cast<int>(n);
         return s;
       }},
      {"metrics-listen", "VCH_METRICS_LISTEN", "HOST:PORT",
       "Prometheus /metrics address (default: off)",
       [](VchdConfig& c, absl::string_view v) {
         c.metrics_listen = std::string(v);
         return absl::OkStatus();
       }},
      {"max-message-bytes", "VCH_MAX_MESSAGE_BYTES", "N",
       "largest gRPC message accepted or sent (default 4194304)",
       [](VchdConfig& c, absl::string_view v) {
         return ParseIntIn("max-message-bytes", v, 1024, 64 << 20, &c.max_message_bytes);
       }},
      {"health-interval-ms", "VCH_HEALTH_INTERVAL_MS", "MS",
       "how often the database is probed for health checking (default 1000)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t ms = 0;
         absl::Status s = ParseIntIn("health-interval-ms", v, 10, 600000, &ms);
         c.health_interval = absl::Milliseconds(ms);
         return s;
       }},
      {"shutdown-grace-ms", "VCH_SHUTDOWN_GRACE_MS", "MS",
       "on SIGTERM/SIGINT, how long in-flight RPCs may finish (default 10000)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t ms = 0;
         absl::Status s = ParseIntIn("shutdown-grace-ms", v, 0, 600000, &ms);
         c.shutdown_grace = absl::Milliseconds(ms);
         return s;
       }},
      {"award-expiry-interval-ms", "VCH_AWARD_EXPIRY_INTERVAL_MS", "MS",
       "how often awards of programs whose redemption window ended are expired (default 10000; "
       "0 = never)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t ms = 0;
         absl::Status s = ParseIntIn("award-expiry-interval-ms", v, 0, 86400000, &ms);
         c.award_expiry_interval = absl::Milliseconds(ms);
         return s;
       }},
      {"placement-weights", "VCH_PLACEMENT_WEIGHTS", "U,P,R",
       "placement score weights: utilization, price, region preference (default 1000,1,50)",
       [](VchdConfig& c, absl::string_view v) {
         std::vector<absl::string_view> parts = absl::StrSplit(v, ',');
         double w[3];
         if (parts.size() != 3 || !absl::SimpleAtod(parts[0], &w[0]) ||
             !absl::SimpleAtod(parts[1], &w[1]) || !absl::SimpleAtod(parts[2], &w[2]) || w[0] < 0 ||
             w[1] < 0 || w[2] < 0) {
           return BadValue("placement-weights", v, "expected three non-negative numbers U,P,R");
         }
         c.placement_weight_utilization = w[0];
         c.placement_weight_price = w[1];
         c.placement_weight_region = w[2];
         return absl::OkStatus();
       }},
      {"max-report-age-ms", "VCH_MAX_REPORT_AGE_MS", "MS",
       "capacity reports older than this make a pool ineligible for placement (default 900000)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t ms = 0;
         absl::Status s = ParseIntIn("max-report-age-ms", v, 1000, 86400000, &ms);
         c.placement_max_report_age = absl::Milliseconds(ms);
         return s;
       }},
      {"capacity-hold-ttl-ms", "VCH_CAPACITY_HOLD_TTL_MS", "MS",
       "how long a placement (its capacity hold, and a redemption's credit hold) waits for the "
       "operator's confirmation before it expires (default 1800000)",
       [](VchdConfig& c, absl::string_view v) {
         int64_t ms = 0;
         absl::Status s = ParseIntIn("capacity-hold-ttl-ms", v, 1000, 86400000, &ms);
         c.capacity_hold_ttl = absl::Milliseconds(ms);
         return s;
       }},
      {"voucher-key-file", "VCH_VOUCHER_KEY_FILE", "PATH",
       "Ed25519 private key (PEM, e.g. from `openssl genpkey -algorithm ed25519`) that signs "
       "vouchers; unset = a fresh key each start (development only: vouchers signed before a "
       "restart no longer verify against GetVoucherKey)",
       [](VchdConfig& c, absl::string_view v) {
         c.voucher_key_file = std::string(v);
         return absl::OkStatus();
       }},
      {"voucher-key-id", "VCH_VOUCHER_KEY_ID", "ID",
       "the key id vouchers carry (default: ed25519- and 16 hex digits of the public key's "
       "SHA-256)",
       [](VchdConfig& c, absl::string_view v) {
         c.voucher_key_id = std::string(v);
         return absl::OkStatus();
       }},
      {"auth", "VCH_AUTH", "MODE",
       "authentication mode; 'dev' (the only one so far): callers name their principal in the "
       "x-vch-principal header, accepted on loopback listeners only",
       [](VchdConfig& c, absl::string_view v) {
         if (v != "dev") return BadValue("auth", v, "the only supported mode is 'dev'");
         c.auth = std::string(v);
         return absl::OkStatus();
       }},
      {"port-file", "VCH_PORT_FILE", "PATH", "write the bound gRPC port to PATH once serving",
       [](VchdConfig& c, absl::string_view v) {
         c.port_file = std::string(v);
         return absl::OkStatus();
       }},
      {"log-level", "VCH_LOG_LEVEL", "LEVEL", "debug, info, warning or error (default info)",
       [](VchdConfig& c, absl::string_view v) {
         LogLevel level;
         if (!ParseLogLevel(v, &level))
           return BadValue("log-level", v, "expected debug|info|warning|error");
         c.log_level = std::string(v);
         return absl::OkStatus();
       }},
  };
  return *options;
}

const OptionSpec* FindOption(absl::string_view flag) {
  for (const OptionSpec& o : Options()) {
    if (o.flag == flag) return &o;
  }
  return nullptr;
}

}  // namespace

bool IsLoopbackAddress(absl::string_view address) {
  size_t colon = address.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? address : address.substr(0, colon);
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

absl::StatusOr<VchdConfig> ParseVchdArgs(const std::vector<std::string>& args,
                                         const std::function<const char*(const char*)>& getenv) {
  VchdConfig config;
  // Environment first, so flags override it.
  for (const OptionSpec& o : Options()) {
    const char* value = getenv(std::string(o.env).c_str());
    if (value == nullptr || *value == '\0') continue;
    absl::Status s = o.apply(config, value);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(o.env, ": ", s.message()));
  }
  bool command_seen = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--help" || arg == "-h" || arg == "help") {
      config.command = VchdCommand::kHelp;
      return config;
    }
    if (arg == "--version" || arg == "version") {
      config.command = VchdCommand::kVersion;
      return config;
    }
    if (!absl::StartsWith(arg, "--")) {
      if (command_seen)
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      command_seen = true;
      if (arg == "serve") {
        config.command = VchdCommand::kServe;
      } else if (arg == "migrate") {
        config.command = VchdCommand::kMigrate;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown command '", arg, "' (expected serve or migrate)"));
      }
      continue;
    }
    absl::string_view body = arg.substr(2);
    absl::string_view name = body;
    std::optional<absl::string_view> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
    }
    const OptionSpec* option = FindOption(name);
    if (option == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    }
    absl::Status s = option->apply(config, *value);
    if (!s.ok()) return s;
  }
  if (config.dsn.empty()) {
    return absl::InvalidArgumentError("no database given: pass --dsn or set VCH_DSN");
  }
  if (config.command == VchdCommand::kServe && config.auth == "dev" &&
      !IsLoopbackAddress(config.listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth=dev accepts plain principal headers, so --listen must be a loopback address, not ",
        config.listen));
  }
  return config;
}

std::string VchdHelpText() {
  std::string text =
      "vchd - the vch compute-voucher clearinghouse server\n"
      "\n"
      "Usage:\n"
      "  vchd [serve] [options]   serve gRPC (health, reflection, vch.v1 services)\n"
      "  vchd migrate [options]   apply the migrations built into this binary and exit\n"
      "  vchd --help | --version\n"
      "\n"
      "Options (each also read from its environment variable; a flag wins):\n";
  for (const OptionSpec& o : Options()) {
    std::string left = absl::StrCat("  --", o.flag, "=", o.value_name);
    absl::StrAppend(&text, left, std::string(left.size() < 32 ? 32 - left.size() : 1, ' '), o.env,
                    "\n      ", o.help, "\n");
  }
  absl::StrAppend(&text,
                  "\n"
                  "vchd serve refuses to start when the database is unreachable or its schema is\n"
                  "older than this binary expects (run vchd migrate). While serving, the standard\n"
                  "grpc.health.v1 check reports SERVING only while the database answers at the\n"
                  "expected schema version. SIGTERM or SIGINT drain in-flight RPCs and exit 0.\n"
                  "\n"
                  "Exit codes: 0 ok, 1 runtime failure (database, listen address), 2 bad usage.\n");
  return text;
}

}  // namespace vch::server
