"""vch.v1.LedgerService through Debian's python3-grpcio and the vch CLI: exact balances, object-
level authorization (an invisible account reads as NOT_FOUND), statement pagination, balances
as of a time, and ledger verification. The ledger is seeded by ledger_seed (real storage layer):
FUND 1000000 treasury->budget, AWARD 300000 budget->wallet, HOLD 50000 wallet->receivable,
POST 20000 of that hold without keep-open (the other 30000 released)."""

import argparse
import base64
import json
import os
import subprocess
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402

SEED = None  # path of the ledger_seed binary, taken off the command line before vchtest's args

ENTERPRISE = "91310000MA1FL4XY2K"
OTHER_ENTERPRISE = "91440300MA5G0P3X8Q"  # well-formed USCC of an enterprise with no accounts


class LedgerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = os.environ["VCH_TEST_DSN"]
        db = "e2e_ledger_%d" % os.getpid()
        vchtest.psql(base + " dbname=postgres", "CREATE DATABASE %s TEMPLATE vch_template" % db)
        dsn = base + " dbname=" + db
        out = subprocess.run([SEED, "--dsn", dsn], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("ledger_seed failed: " + out.stderr)
        cls.seed = json.loads(out.stdout)
        cls.accounts = cls.seed["accounts"]
        cls.transfers = cls.seed["transfers"]
        cls.vchd = vchtest.Vchd(dsn)
        cls.channel = grpc.insecure_channel(cls.vchd.address)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.vchd.stop()
        assert code == 0, "vchd exited with %d: %s" % (code, cls.vchd.logs())

    # --- helpers ---

    def stub(self):
        from vch.v1 import ledger_pb2_grpc

        return ledger_pb2_grpc.LedgerServiceStub(self.channel)

    def call(self, method, request, principal):
        return getattr(self.stub(), method)(request, metadata=[("x-vch-principal", principal)],
                                            timeout=10)

    def assert_fails(self, code, reason, method, request, principal):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(method, request, principal)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        got_reason, violations = vchtest.error_details(caught.exception)
        self.assertEqual(got_reason, reason)
        return violations

    def get_account(self, account_id, principal):
        from vch.v1 import ledger_pb2

        return self.call("GetAccount", ledger_pb2.GetAccountRequest(account_id=account_id),
                         principal).account

    def balance_tuple(self, b):
        return (b.debits_pending_fen, b.debits_posted_fen, b.credits_pending_fen,
                b.credits_posted_fen, b.available_fen)

    def vch(self, *args, principal="AUDITOR"):
        return subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "--principal",
                               principal, *args], capture_output=True, text=True, timeout=30)

    # --- GetAccount ---

    def test_wallet_shows_exact_balances_to_its_enterprise(self):
        from vch.v1 import ledger_pb2

        wallet = self.get_account(self.accounts["wallet"], "ENTERPRISE:" + ENTERPRISE)
        self.assertEqual(wallet.id, self.accounts["wallet"])
        self.assertEqual(wallet.name, "accounts/%d" % self.accounts["wallet"])
        self.assertEqual(wallet.program, "p1")
        self.assertEqual(wallet.issuer, "shanghai")
        self.assertEqual(wallet.kind, ledger_pb2.ACCOUNT_KIND_WALLET)
        self.assertEqual(wallet.owner, ENTERPRISE)
        self.assertTrue(wallet.no_overdraft)
        self.assertTrue(wallet.HasField("create_time"))
        # (debits_pending, debits_posted, credits_pending, credits_posted, available)
        self.assertEqual(self.balance_tuple(wallet.balance), (0, 20000, 0, 300000, 280000))

    def test_program_accounts_balance_to_zero(self):
        from vch.v1 import ledger_pb2

        got = {name: self.get_account(self.accounts[name], "AUDITOR")
               for name in ("treasury", "budget", "wallet", "receivable")}
        self.assertEqual(got["treasury"].kind, ledger_pb2.ACCOUNT_KIND_TREASURY)
        self.assertFalse(got["treasury"].no_overdraft)
        self.assertEqual(self.balance_tuple(got["treasury"].balance),
                         (0, 1000000, 0, 0, -1000000))
        self.assertEqual(self.balance_tuple(got["budget"].balance),
                         (0, 300000, 0, 1000000, 700000))
        self.assertEqual(self.balance_tuple(got["receivable"].balance),
                         (0, 0, 0, 20000, 20000))
        self.assertEqual(got["receivable"].owner, "dc-west-1")
        posted = sum(a.balance.credits_posted_fen - a.balance.debits_posted_fen
                     for a in got.values())
        self.assertEqual(posted, 0)

    def test_wallet_of_another_enterprise_reads_as_not_found(self):
        from vch.v1 import ledger_pb2

        request = ledger_pb2.GetAccountRequest(account_id=self.accounts["wallet"])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount", request,
                          "ENTERPRISE:" + OTHER_ENTERPRISE)
        # Indistinguishable from an account that does not exist at all.
        missing = ledger_pb2.GetAccountRequest(account_id=self.accounts["receivable"] + 1000)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount", missing,
                          "ENTERPRISE:" + OTHER_ENTERPRISE)
        # The enterprise does not see the program's own accounts either.
        budget = ledger_pb2.GetAccountRequest(account_id=self.accounts["budget"])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount", budget,
                          "ENTERPRISE:" + ENTERPRISE)

    def test_issuer_sees_its_programs_accounts_only(self):
        from vch.v1 import ledger_pb2

        wallet = self.get_account(self.accounts["wallet"], "ISSUER_ADMIN:shanghai")
        self.assertEqual(wallet.balance.available_fen, 280000)
        self.assertEqual(self.get_account(self.accounts["budget"], "REVIEWER:shanghai").id,
                         self.accounts["budget"])
        request = ledger_pb2.GetAccountRequest(account_id=self.accounts["wallet"])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount", request,
                          "ISSUER_ADMIN:chengdu")

    def test_operator_sees_its_receivable_not_the_wallet(self):
        from vch.v1 import ledger_pb2

        receivable = self.get_account(self.accounts["receivable"], "OPERATOR:dc-west-1")
        self.assertEqual(receivable.balance.credits_posted_fen, 20000)
        request = ledger_pb2.GetAccountRequest(account_id=self.accounts["wallet"])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount", request,
                          "OPERATOR:dc-west-1")
        request = ledger_pb2.GetAccountRequest(account_id=self.accounts["receivable"])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetAccount", request,
                          "OPERATOR:dc-east-9")

    def test_get_account_validates_the_id(self):
        from vch.v1 import ledger_pb2

        for bad in (0, -5):
            violations = self.assert_fails(
                grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "GetAccount",
                ledger_pb2.GetAccountRequest(account_id=bad), "AUDITOR")
            self.assertEqual([f for f, _ in violations], ["account_id"])

    def test_unauthenticated_call_is_refused(self):
        from vch.v1 import ledger_pb2

        with self.assertRaises(grpc.RpcError) as caught:
            self.stub().GetAccount(ledger_pb2.GetAccountRequest(account_id=1), timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    # --- ListTransfers ---

    def list_all(self, principal, **fields):
        """Pages through ListTransfers; returns (transfers, number of calls)."""
        from vch.v1 import ledger_pb2

        out, token, calls = [], "", 0
        while True:
            response = self.call("ListTransfers",
                                 ledger_pb2.ListTransfersRequest(page_token=token, **fields),
                                 principal)
            calls += 1
            out += list(response.transfers)
            token = response.next_page_token
            if not token:
                return out, calls
            self.assertLess(calls, 50, "pagination does not end")

    def test_wallet_statement_paginates_in_id_order(self):
        from vch.v1 import ledger_pb2

        transfers, calls = self.list_all("ENTERPRISE:" + ENTERPRISE,
                                         account_id=self.accounts["wallet"], page_size=1)
        # Exactly one call per transfer: the last page carries no token.
        self.assertEqual(calls, 3)
        self.assertEqual([t.id for t in transfers],
                         [self.transfers["award"], self.transfers["hold"],
                          self.transfers["post"]])
        self.assertEqual([t.kind for t in transfers],
                         [ledger_pb2.TRANSFER_KIND_AWARD, ledger_pb2.TRANSFER_KIND_HOLD,
                          ledger_pb2.TRANSFER_KIND_POST])
        award, hold, post = transfers
        wallet, receivable = self.accounts["wallet"], self.accounts["receivable"]
        self.assertEqual((award.debit_account_id, award.credit_account_id, award.amount_fen),
                         (self.accounts["budget"], wallet, 300000))
        self.assertEqual(self.balance_tuple(award.credit_balance_after),
                         (0, 0, 0, 300000, 300000))
        self.assertEqual((hold.debit_account_id, hold.credit_account_id, hold.amount_fen),
                         (wallet, receivable, 50000))
        self.assertEqual(self.balance_tuple(hold.debit_balance_after),
                         (50000, 0, 0, 300000, 250000))
        self.assertFalse(hold.HasField("expire_time"))
        self.assertEqual((post.debit_account_id, post.credit_account_id, post.amount_fen,
                          post.released_fen, post.pending_id),
                         (wallet, receivable, 20000, 30000, self.transfers["hold"]))
        self.assertEqual(self.balance_tuple(post.debit_balance_after),
                         (0, 20000, 0, 300000, 280000))
        self.assertEqual(self.balance_tuple(post.credit_balance_after),
                         (0, 0, 0, 20000, 20000))
        self.assertEqual(post.request_id, "post")
        self.assertEqual(json.loads(post.metadata_json), {})
        self.assertLess(award.create_time.ToDatetime(), post.create_time.ToDatetime())

    def test_default_page_holds_everything_and_no_token(self):
        response = self.call("ListTransfers", self.list_request(self.accounts["wallet"]),
                             "ISSUER_ADMIN:shanghai")
        self.assertEqual(len(response.transfers), 3)
        self.assertEqual(response.next_page_token, "")
        # An exactly full page is the last page too.
        response = self.call("ListTransfers",
                             self.list_request(self.accounts["wallet"], page_size=3),
                             "ISSUER_ADMIN:shanghai")
        self.assertEqual(len(response.transfers), 3)
        self.assertEqual(response.next_page_token, "")
        # Oversized pages are served at the maximum rather than refused.
        response = self.call("ListTransfers",
                             self.list_request(self.accounts["wallet"], page_size=5000),
                             "ISSUER_ADMIN:shanghai")
        self.assertEqual(len(response.transfers), 3)

    def list_request(self, account_id, **fields):
        from vch.v1 import ledger_pb2

        return ledger_pb2.ListTransfersRequest(account_id=account_id, **fields)

    def test_kind_filter(self):
        from vch.v1 import ledger_pb2

        response = self.call("ListTransfers",
                             self.list_request(self.accounts["wallet"],
                                               kind=ledger_pb2.TRANSFER_KIND_HOLD),
                             "ENTERPRISE:" + ENTERPRISE)
        self.assertEqual([t.id for t in response.transfers], [self.transfers["hold"]])

    def test_auditor_lists_the_whole_ledger_but_tenants_must_name_an_account(self):
        transfers, calls = self.list_all("AUDITOR", page_size=2)
        self.assertEqual([t.id for t in transfers],
                         [self.transfers[k] for k in ("fund", "award", "hold", "post")])
        self.assertEqual(calls, 2)
        violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                       "ListTransfers", self.list_request(0),
                                       "ENTERPRISE:" + ENTERPRISE)
        self.assertEqual([f for f, _ in violations], ["account_id"])

    def test_statement_of_an_invisible_account_is_not_found(self):
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "ListTransfers",
                          self.list_request(self.accounts["wallet"]),
                          "ENTERPRISE:" + OTHER_ENTERPRISE)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "ListTransfers",
                          self.list_request(self.accounts["wallet"]), "ISSUER_ADMIN:chengdu")

    def test_bad_page_token_is_invalid_argument_on_page_token(self):
        forged = base64.urlsafe_b64encode(b"v2:1:x").decode()
        for token in ("not a token!", "djE6", forged):
            violations = self.assert_fails(
                grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "ListTransfers",
                self.list_request(self.accounts["wallet"], page_token=token),
                "ENTERPRISE:" + ENTERPRISE)
            self.assertEqual([f for f, _ in violations], ["page_token"], token)

    def test_page_token_is_bound_to_its_filters(self):
        from vch.v1 import ledger_pb2

        first = self.call("ListTransfers",
                          self.list_request(self.accounts["wallet"], page_size=1), "AUDITOR")
        self.assertNotEqual(first.next_page_token, "")
        violations = self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "ListTransfers",
            self.list_request(self.accounts["budget"], page_token=first.next_page_token),
            "AUDITOR")
        self.assertEqual([f for f, _ in violations], ["page_token"])
        violations = self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "ListTransfers",
            self.list_request(self.accounts["wallet"], kind=ledger_pb2.TRANSFER_KIND_POST,
                              page_token=first.next_page_token), "AUDITOR")
        self.assertEqual([f for f, _ in violations], ["page_token"])
        # A different page size is allowed.
        second = self.call("ListTransfers",
                           self.list_request(self.accounts["wallet"], page_size=10,
                                             page_token=first.next_page_token), "AUDITOR")
        self.assertEqual([t.id for t in second.transfers],
                         [self.transfers["hold"], self.transfers["post"]])

    def test_list_validates_its_fields(self):
        from google.protobuf import timestamp_pb2
        from vch.v1 import common_pb2

        later = timestamp_pb2.Timestamp(seconds=2000000000)
        earlier = timestamp_pb2.Timestamp(seconds=1000000000)
        violations = self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "ListTransfers",
            self.list_request(-1, page_size=-1, kind=42,
                              time_range=common_pb2.TimeRange(start_time=later,
                                                              end_time=earlier)),
            "AUDITOR")
        self.assertEqual(sorted(f for f, _ in violations),
                         ["account_id", "kind", "page_size", "time_range"])

    def test_time_range_selects_transfers(self):
        from vch.v1 import common_pb2

        _, hold, post = self.list_all("AUDITOR", account_id=self.accounts["wallet"])[0]
        # [hold, post): exactly the HOLD.
        response = self.call("ListTransfers", self.list_request(
            self.accounts["wallet"], time_range=common_pb2.TimeRange(
                start_time=hold.create_time, end_time=post.create_time)), "AUDITOR")
        self.assertEqual([t.id for t in response.transfers], [hold.id])
        response = self.call("ListTransfers", self.list_request(
            self.accounts["wallet"], time_range=common_pb2.TimeRange(
                start_time=hold.create_time)), "AUDITOR")
        self.assertEqual([t.id for t in response.transfers], [hold.id, post.id])

    # --- GetBalanceAt ---

    def balance_at(self, account_id, timestamp, principal="ENTERPRISE:" + ENTERPRISE):
        from vch.v1 import ledger_pb2

        return self.call("GetBalanceAt",
                         ledger_pb2.GetBalanceAtRequest(account_id=account_id, time=timestamp),
                         principal)

    def test_balance_before_first_transfer_is_zero_and_now_is_current(self):
        from google.protobuf import timestamp_pb2

        award, hold, post = self.list_all("AUDITOR", account_id=self.accounts["wallet"])[0]
        before = timestamp_pb2.Timestamp()
        before.FromMicroseconds(award.create_time.ToMicroseconds() - 1)
        response = self.balance_at(self.accounts["wallet"], before)
        self.assertEqual(self.balance_tuple(response.balance), (0, 0, 0, 0, 0))
        self.assertEqual(response.last_transfer_id, 0)

        # At the instant of a transfer, that transfer counts.
        response = self.balance_at(self.accounts["wallet"], hold.create_time)
        self.assertEqual(self.balance_tuple(response.balance), (50000, 0, 0, 300000, 250000))
        self.assertEqual(response.last_transfer_id, hold.id)

        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        response = self.balance_at(self.accounts["wallet"], now)
        account = self.get_account(self.accounts["wallet"], "ENTERPRISE:" + ENTERPRISE)
        self.assertEqual(self.balance_tuple(response.balance),
                         self.balance_tuple(account.balance))
        self.assertEqual(response.last_transfer_id, post.id)

    def test_balance_at_is_scoped_and_validated(self):
        from google.protobuf import timestamp_pb2
        from vch.v1 import ledger_pb2

        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", "GetBalanceAt",
                          ledger_pb2.GetBalanceAtRequest(account_id=self.accounts["wallet"],
                                                         time=now),
                          "ENTERPRISE:" + OTHER_ENTERPRISE)
        violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                       "GetBalanceAt", ledger_pb2.GetBalanceAtRequest(),
                                       "AUDITOR")
        self.assertEqual(sorted(f for f, _ in violations), ["account_id", "time"])

    # --- VerifyLedger ---

    def test_auditor_verifies_the_ledger(self):
        from vch.v1 import ledger_pb2

        for principal in ("AUDITOR", "PLATFORM_ADMIN"):
            response = self.call("VerifyLedger", ledger_pb2.VerifyLedgerRequest(), principal)
            self.assertTrue(response.ok, list(response.violations))
            self.assertEqual((response.accounts, response.transfers, response.holds), (4, 4, 1))
            self.assertEqual(list(response.violations), [])

    def test_tenants_may_not_verify(self):
        from vch.v1 import ledger_pb2

        for principal in ("ENTERPRISE:" + ENTERPRISE, "ISSUER_ADMIN:shanghai",
                          "OPERATOR:dc-west-1", "REVIEWER:shanghai"):
            self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                              "VerifyLedger", ledger_pb2.VerifyLedgerRequest(), principal)

    # --- vch CLI ---

    def test_cli_verify(self):
        out = self.vch("verify")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "ledger verified: 4 accounts, 4 transfers, 1 holds")
        out = self.vch("--json", "verify")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout),
                         {"ok": True, "accounts": 4, "transfers": 4, "holds": 1,
                          "violations": []})
        out = self.vch("--json", "verify", principal="ENTERPRISE:" + ENTERPRISE)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(json.loads(out.stdout)["error"]["reason"], "PERMISSION_DENIED")

    def test_cli_account_get(self):
        wallet = str(self.accounts["wallet"])
        out = self.vch("--json", "account", "get", wallet, principal="ENTERPRISE:" + ENTERPRISE)
        self.assertEqual(out.returncode, 0, out.stderr)
        account = json.loads(out.stdout)
        self.assertEqual(account["id"], self.accounts["wallet"])
        self.assertEqual(account["kind"], "WALLET")
        self.assertEqual(account["owner"], ENTERPRISE)
        self.assertEqual(account["balance"],
                         {"debits_pending_fen": 0, "debits_posted_fen": 20000,
                          "credits_pending_fen": 0, "credits_posted_fen": 300000,
                          "available_fen": 280000})
        out = self.vch("account", "get", wallet, principal="ENTERPRISE:" + ENTERPRISE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("available        2800.00 CNY", out.stdout)
        out = self.vch("--json", "account", "get", wallet,
                       principal="ENTERPRISE:" + OTHER_ENTERPRISE)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(json.loads(out.stdout)["error"]["reason"], "ACCOUNT_NOT_FOUND")
        self.assertEqual(self.vch("account", "get", "abc").returncode, 2)
        self.assertEqual(self.vch("account", "get").returncode, 2)

    def test_cli_transfers_list_pages(self):
        wallet = str(self.accounts["wallet"])
        out = self.vch("--json", "transfers", "list", "--account", wallet, "--page-size", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        page = json.loads(out.stdout)
        self.assertEqual([t["kind"] for t in page["transfers"]], ["AWARD", "HOLD"])
        self.assertNotEqual(page["next_page_token"], "")
        out = self.vch("--json", "transfers", "list", "--account", wallet, "--page-size", "2",
                       "--page-token", page["next_page_token"])
        self.assertEqual(out.returncode, 0, out.stderr)
        page = json.loads(out.stdout)
        self.assertEqual([t["kind"] for t in page["transfers"]], ["POST"])
        self.assertEqual(page["transfers"][0]["released_fen"], 30000)
        self.assertEqual(page["next_page_token"], "")

        out = self.vch("transfers", "list", "--account", wallet, "--kind", "hold")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.strip().splitlines()
        self.assertEqual(len(lines), 2, out.stdout)  # header + the HOLD
        self.assertIn("HOLD", lines[1])
        self.assertIn("500.00", lines[1])
        self.assertIn("2500.00", lines[1])  # the wallet's available balance after the hold

        self.assertEqual(self.vch("transfers", "list", "--kind", "GIFT").returncode, 2)
        out = self.vch("--json", "transfers", "list", "--account", wallet, "--page-token", "zz!")
        self.assertEqual(out.returncode, 1)
        error = json.loads(out.stdout)["error"]
        self.assertEqual(error["reason"], "INVALID_ARGUMENT")
        self.assertEqual([v["field"] for v in error["field_violations"]], ["page_token"])

    def test_cli_balance_at(self):
        wallet = str(self.accounts["wallet"])
        out = self.vch("--json", "balance", "--account", wallet,
                       "--at", "2000-01-01T08:00:00+08:00")
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        self.assertEqual(got["last_transfer_id"], 0)
        self.assertEqual(got["balance"]["available_fen"], 0)
        self.assertEqual(got["time"], "2000-01-01T00:00:00Z")
        out = self.vch("--json", "balance", "--account", wallet)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        self.assertEqual(got["last_transfer_id"], self.transfers["post"])
        self.assertEqual(got["balance"]["available_fen"], 280000)
        self.assertEqual(self.vch("balance", "--account", wallet, "--at", "yesterday").returncode,
                         2)
        self.assertEqual(self.vch("balance", "--at", "2000-01-01T00:00:00Z").returncode, 2)


def take_own_args():
    """Removes --ledger-seed from sys.argv (vchtest parses the rest)."""
    global SEED
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--ledger-seed", required=True)
    own, rest = parser.parse_known_args()
    SEED = own.ledger_seed
    sys.argv = [sys.argv[0]] + rest


if __name__ == "__main__":
    take_own_args()
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
