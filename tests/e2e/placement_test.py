"""vch.v1.PlacementService through Debian's python3-grpcio against a real vchd: compute requests
go to the idle, cheap western pool with the score that says why; the capacity hold shows in
ListPools as exactly the gang's GPUs; replays hold nothing more; requests no pool can take say
why, with exact counts per reason (stale reports, suspended sites, scope, accelerator, price
ceiling, capacity); Explain reserves nothing; PlaceBatch never over-commits a pool; holds are
released once and by their owner only, and expire by themselves; who may place; field
violations; programs that are not open; eight concurrent requests racing for one pool's last
16 GPUs; and the vch CLI against the same server.

Every test runs on a database of its own (copied from the fixture's template) and its own
vchd, so the pools each test sees, and therefore every exclusion count, are exactly the ones it
made. The base world: a Shanghai issuer with an OPEN NATIONAL-scope AI-rental program (price
ceiling 3,500 fen per GPU-hour), a busy, expensive site in the Yangtze River Delta hub
(sh-lingang: 12 of 64 H800 free at 3,200 fen) and an idle, cheap one in the Guizhou hub
(gz-guian: 96 of 128 Ascend 910B free at 1,500 fen), both just reported."""

import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(n, region="310115"):
    """The n-th valid unified social credit code of an enterprise registered in `region`."""
    digits = ""
    for _ in range(7):
        digits = USCC_ALPHABET[n % 31] + digits
        n //= 31
    first17 = "91" + region + "MA" + digits
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS))
    return first17 + USCC_ALPHABET[(31 - total % 31) % 31]


ENTERPRISE = "ENTERPRISE:" + uscc(1)
OTHER_ENTERPRISE = "ENTERPRISE:" + uscc(2)
PROGRAM = "sh-ai"  # OPEN, NATIONAL scope, ceiling 3,500 fen
EAST, EAST_POOL = "sh-lingang", "h800"
WEST, WEST_POOL = "gz-guian", "ascend"
EAST_NAME = "datacenters/%s/pools/%s" % (EAST, EAST_POOL)
WEST_NAME = "datacenters/%s/pools/%s" % (WEST, WEST_POOL)


def ts(days):
    from google.protobuf import timestamp_pb2

    t = timestamp_pb2.Timestamp()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    t.FromDatetime((now + datetime.timedelta(days=days)).replace(tzinfo=None))
    return t


def vchd_args(*args):
    """Runs the decorated test against a vchd started with these extra arguments."""
    def wrap(test):
        test.vchd_args = args
        return test
    return wrap


class PlacementTest(unittest.TestCase):
    db_counter = 0

    def setUp(self):
        base = os.environ["VCH_TEST_DSN"]
        PlacementTest.db_counter += 1
        db = "e2e_placement_%d_%d" % (os.getpid(), PlacementTest.db_counter)
        vchtest.psql(base + " dbname=postgres", "CREATE DATABASE %s TEMPLATE vch_template" % db)
        self.dsn = base + " dbname=" + db
        extra = getattr(getattr(self, self._testMethodName), "vchd_args", ())
        self.vchd = vchtest.Vchd(self.dsn, name="vchd-%d" % PlacementTest.db_counter,
                                 extra=extra)
        self.channel = grpc.insecure_channel(self.vchd.address)
        self.next_request = 0
        self.build_base_world()

    def tearDown(self):
        self.channel.close()
        code = self.vchd.stop()
        self.assertEqual(code, 0, "vchd exited with %d: %s" % (code, self.vchd.logs()))

    # --- calls ---

    def call(self, method, request, principal, service="PlacementService"):
        from vch.v1 import capacity_pb2_grpc, placement_pb2_grpc, program_pb2_grpc

        modules = {"PlacementService": placement_pb2_grpc,
                   "CapacityService": capacity_pb2_grpc,
                   "IssuerService": program_pb2_grpc, "ProgramService": program_pb2_grpc}
        stub = getattr(modules[service], service + "Stub")(self.channel)
        return getattr(stub, method)(request, metadata=[("x-vch-principal", principal)],
                                     timeout=20)

    def capacity(self, method, request, principal):
        return self.call(method, request, principal, service="CapacityService")

    def request_id(self):
        self.next_request += 1
        return "req-%d" % self.next_request

    def assert_fails(self, code, reason, method, request, principal, **kwargs):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(method, request, principal, **kwargs)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        got_reason, violations = vchtest.error_details(caught.exception)
        self.assertEqual(got_reason, reason, caught.exception.details())
        return violations

    def assert_invalid(self, fields, method, request, principal=ENTERPRISE):
        violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                       method, request, principal)
        self.assertEqual(sorted(f for f, _ in violations), sorted(fields), violations)
        for field, description in violations:
            self.assertTrue(description, field)

    def sql(self, query):
        out = subprocess.run(["psql", self.dsn, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", query],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def vch(self, principal, *args):
        return subprocess.run([vchtest.ARGS.vch, "--server", self.vchd.address, "--principal",
                               principal, *args], capture_output=True, text=True, timeout=30)

    # --- the world ---

    def open_program(self, program_id, **overrides):
        from google.protobuf import message
        from vch.v1 import program_pb2

        rules = program_pb2.ProgramRules(
            display_name="上海市人工智能算力券（测试）",
            category=program_pb2.PROGRAM_CATEGORY_AI_RENTAL,
            planned_budget_fen=1_000_000_000, subsidy_ratio_bps=8000,
            per_enterprise_cap_fen=50_000_000,
            eligible_kinds=[program_pb2.ENTERPRISE_KIND_SME],
            eligible_sizes=[program_pb2.SIZE_CLASS_SMALL],
            application_start_time=ts(-1), application_end_time=ts(180),
            redemption_start_time=ts(-1), redemption_end_time=ts(360),
            datacenter_scope=program_pb2.DATACENTER_SCOPE_NATIONAL,
            price_ceiling_fen_per_gpu_hour=3500)
        state = overrides.pop("state", "open")
        for name, value in overrides.items():
            if isinstance(value, list):
                rules.ClearField(name)
                getattr(rules, name).extend(value)
            elif isinstance(value, message.Message):
                getattr(rules, name).CopyFrom(value)
            else:
                setattr(rules, name, value)
        admin = "ISSUER_ADMIN:shanghai"
        self.call("CreateProgram", program_pb2.CreateProgramRequest(
            request_id=self.request_id(), id=program_id, rules=rules), admin,
            service="ProgramService")
        self.call("FundProgram", program_pb2.FundProgramRequest(
            request_id=self.request_id(), id=program_id, amount_fen=100_000_000), admin,
            service="ProgramService")
        if state in ("open", "closed"):
            self.call("OpenProgram", program_pb2.OpenProgramRequest(
                request_id=self.request_id(), id=program_id), admin, service="ProgramService")
        if state == "closed":
            self.call("CloseProgram", program_pb2.CloseProgramRequest(
                request_id=self.request_id(), id=program_id), admin, service="ProgramService")

    def add_site(self, site, region, hub, pools, national=True):
        """Registers a site and its pools as its operator and reports them; `pools` is a list of
        (pool id, model, fp8, domestic, memory GiB, GPUs, fen per GPU-hour, free or None for no
        report)."""
        from vch.v1 import capacity_pb2

        operator = "OPERATOR:" + site
        self.capacity("RegisterDatacenter", capacity_pb2.RegisterDatacenterRequest(
            request_id="reg-" + site, datacenter=capacity_pb2.Datacenter(
                id=site, display_name=site, operator_name=site + " Ltd", region_code=region,
                hub=hub, national_network=national)), operator)
        reports = []
        for pool_id, model, fp8, domestic, memory, gpus, price, free in pools:
            self.capacity("RegisterPool", capacity_pb2.RegisterPoolRequest(
                request_id="reg-%s-%s" % (site, pool_id), pool=capacity_pb2.Pool(
                    datacenter=site, id=pool_id, accelerator_model=model, fp8=fp8,
                    domestic=domestic, memory_gib=memory, gpus_total=gpus,
                    price_fen_per_gpu_hour=price)), operator)
            if free is not None:
                reports.append(capacity_pb2.PoolReport(pool=pool_id, gpus_free=free))
        if reports:
            self.report(site, reports)

    def report(self, site, reports):
        from vch.v1 import capacity_pb2

        self.capacity("ReportCapacity", capacity_pb2.ReportCapacityRequest(
            request_id=self.request_id(), datacenter=site, reports=reports), "OPERATOR:" + site)

    def build_base_world(self):
        from vch.v1 import capacity_pb2, program_pb2

        self.call("RegisterIssuer", program_pb2.RegisterIssuerRequest(
            request_id="issuer", id="shanghai", display_name="上海市经信委", region_code="310000",
            level=program_pb2.ISSUER_LEVEL_PROVINCE), "PLATFORM_ADMIN", service="IssuerService")
        self.open_program(PROGRAM)
        self.add_site(EAST, "310115", capacity_pb2.NATIONAL_HUB_YANGTZE_RIVER_DELTA,
                      [(EAST_POOL, "H800", True, False, 80, 64, 3200, 12)])
        self.add_site(WEST, "520100", capacity_pb2.NATIONAL_HUB_GUIZHOU,
                      [(WEST_POOL, "Ascend 910B", False, True, 64, 128, 1500, 96)])

    def build_wide_world(self):
        """Six more pools, one (or two) per exclusion reason, besides the base world's two:
        bj-yizhuang/a800 (site suspended), nx-zhongwei/h800 (reported 20 minutes ago) and
        nx-zhongwei/a800 (never reported), cq-liangjiang/ascend (not in the national network),
        sz-qianhai/h800 (4,000 fen, above the program's ceiling), nm-ulanqab/hygon (a domestic
        Hygon DCU at 1,200 fen, 60 of 96 free)."""
        from vch.v1 import capacity_pb2

        self.add_site("bj-yizhuang", "110115", capacity_pb2.NATIONAL_HUB_BEIJING_TIANJIN_HEBEI,
                      [("a800", "A800", False, False, 80, 128, 3000, 20)])
        self.suspend("bj-yizhuang")
        self.add_site("nx-zhongwei", "640500", capacity_pb2.NATIONAL_HUB_NINGXIA,
                      [("h800", "H800", True, False, 80, 64, 1800, 48),
                       ("a800", "A800", False, False, 80, 64, 1600, None)])
        self.sql("UPDATE gpu_pools SET reported_at = now() - interval '20 minutes' "
                 "WHERE datacenter_id = 'nx-zhongwei' AND id = 'h800'")
        self.add_site("cq-liangjiang", "500112", capacity_pb2.NATIONAL_HUB_CHENGDU_CHONGQING,
                      [("ascend", "Ascend 910B", False, True, 64, 128, 1400, 100)],
                      national=False)
        self.add_site("sz-qianhai", "440305", capacity_pb2.NATIONAL_HUB_GUANGDONG_HONG_KONG_MACAO,
                      [("h800", "H800", True, False, 80, 64, 4000, 30)])
        self.add_site("nm-ulanqab", "150900", capacity_pb2.NATIONAL_HUB_INNER_MONGOLIA,
                      [("hygon", "Hygon DCU K100", False, True, 64, 96, 1200, 60)])

    def suspend(self, site, suspended=True):
        from vch.v1 import capacity_pb2

        self.capacity("SetDatacenterState", capacity_pb2.SetDatacenterStateRequest(
            request_id=self.request_id(), id=site,
            state=(capacity_pb2.DATACENTER_STATE_SUSPENDED if suspended
                   else capacity_pb2.DATACENTER_STATE_ACTIVE),
            reason="audit: capacity not verifiable" if suspended else ""), "AUDITOR")

    # --- helpers ---

    @staticmethod
    def requirement(program=PROGRAM, gpus=8, **fields):
        from vch.v1 import placement_pb2

        return placement_pb2.ComputeRequirement(program=program, gpus=gpus, **fields)

    def place(self, principal=ENTERPRISE, request_id=None, **fields):
        from vch.v1 import placement_pb2

        return self.call("Place", placement_pb2.PlaceRequest(
            request_id=request_id or self.request_id(), requirement=self.requirement(**fields)),
            principal)

    def explain(self, principal=ENTERPRISE, top=0, **fields):
        from vch.v1 import placement_pb2

        return self.call("Explain", placement_pb2.ExplainRequest(
            requirement=self.requirement(**fields), top=top), principal)

    def release(self, hold_id, principal=ENTERPRISE):
        from vch.v1 import placement_pb2

        return self.call("ReleasePlacement", placement_pb2.ReleasePlacementRequest(
            request_id=self.request_id(), hold_id=hold_id), principal)

    def pool(self, site, pool_id):
        from vch.v1 import capacity_pb2

        pools = self.capacity("ListPools", capacity_pb2.ListPoolsRequest(datacenter=site),
                              "AUDITOR").pools
        return next(p for p in pools if p.id == pool_id)

    def held(self):
        """gpus_held of the base world's pools: (east, west)."""
        return (self.pool(EAST, EAST_POOL).gpus_held, self.pool(WEST, WEST_POOL).gpus_held)

    def open_holds(self):
        """(datacenter, pool, gpus, owner) of every HELD capacity hold, in id order."""
        rows = self.sql("SELECT datacenter_id || '|' || pool_id || '|' || gpus || '|' || owner "
                        "FROM capacity_holds WHERE state = 1 ORDER BY id")
        return [tuple(int(x) if x.isdigit() else x for x in r.split("|"))
                for r in rows.splitlines()]

    @staticmethod
    def exclusions(response):
        return {e.reason: e.pools for e in response.exclusions}

    def assert_hold_expiry(self, placement, ttl_seconds):
        expected = time.time() + ttl_seconds
        self.assertAlmostEqual(placement.expire_time.seconds, expected, delta=30)

    # --- Place ---

    def test_place_picks_the_idle_cheap_western_pool_and_holds_the_gang(self):
        before = time.time()
        response = self.place(request_id="place-1", gpus=8)
        self.assertTrue(response.placed)
        self.assertEqual(len(response.exclusions), 0)
        p = response.placement
        self.assertEqual((p.pool, p.datacenter, p.gpus, p.price_fen_per_gpu_hour),
                         (WEST_NAME, WEST, 8, 1500))
        # Utilization term 1000 * (1 - (128 - 96 + 8) / 128) = 687.5; price -1500 / 100.
        self.assertEqual((p.score.utilization, p.score.price, p.score.region, p.score.total),
                         (687.5, -15.0, 0.0, 672.5))
        self.assertGreater(p.hold_id, 0)
        self.assertGreaterEqual(p.expire_time.seconds, int(before) + 1800 - 1)
        self.assert_hold_expiry(p, 1800)
        # The busy eastern site would have scored 1000 * (1 - (64 - 12 + 8) / 64) = 62.5.
        ranking = self.explain(gpus=8).ranking
        self.assertEqual([r.pool for r in ranking], [WEST_NAME, EAST_NAME])
        self.assertEqual(ranking[1].score.utilization, 62.5)
        self.assertGreater(p.score.utilization, ranking[1].score.utilization)
        # ListPools: exactly the gang is held; the reported free count is the operator's.
        west = self.pool(WEST, WEST_POOL)
        self.assertEqual((west.gpus_free, west.gpus_held), (96, 8))
        self.assertEqual(self.pool(EAST, EAST_POOL).gpus_held, 0)
        self.assertEqual(self.open_holds(), [(WEST, WEST_POOL, 8, uscc(1))])
        self.assertEqual(self.sql("SELECT id || '|' || purpose FROM capacity_holds"),
                         "%d|place-1" % p.hold_id)

        # The same request_id replays the same placement and holds nothing more.
        replayed = self.place(request_id="place-1", gpus=8)
        self.assertTrue(replayed.placed)
        self.assertEqual(replayed.placement.hold_id, p.hold_id)
        self.assertEqual(replayed.placement.pool, p.pool)
        self.assertEqual(replayed.placement.expire_time, p.expire_time)
        self.assertEqual(replayed.placement.price_fen_per_gpu_hour, 1500)
        self.assertEqual(self.held(), (0, 8))
        self.assertEqual(len(self.open_holds()), 1)
        # The same request_id with another request is refused.
        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED", "Place",
                          self.place_request("place-1", gpus=4), ENTERPRISE)
        self.assertEqual(self.held(), (0, 8))

        # A second request sees the first one's hold: 88 placeable left.
        second = self.place(gpus=8).placement
        self.assertEqual(second.pool, WEST_NAME)
        self.assertNotEqual(second.hold_id, p.hold_id)
        self.assertEqual(second.score.utilization, 1000 * (1 - (128 - 88 + 8) / 128))
        self.assertEqual(self.held(), (0, 16))

    def place_request(self, request_id, **fields):
        from vch.v1 import placement_pb2

        return placement_pb2.PlaceRequest(request_id=request_id,
                                          requirement=self.requirement(**fields))

    def test_a_request_too_big_for_every_pool_is_not_placed_and_says_why(self):
        response = self.place(gpus=97)
        self.assertFalse(response.placed)
        self.assertFalse(response.HasField("placement"))
        self.assertEqual(self.exclusions(response), {"INSUFFICIENT_GPUS": 2})
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.open_holds(), [])
        # 96 fit the western pool exactly; the eastern one is then the only one with room.
        self.assertEqual(self.place(gpus=96).placement.pool, WEST_NAME)
        self.assertEqual(self.exclusions(self.place(gpus=13)), {"INSUFFICIENT_GPUS": 2})
        self.assertEqual(self.place(gpus=12).placement.pool, EAST_NAME)
        self.assertEqual(self.exclusions(self.place(gpus=1)), {"INSUFFICIENT_GPUS": 2})
        self.assertEqual(self.held(), (12, 96))

    def test_exclusions_are_counted_per_reason(self):
        self.build_wide_world()
        # FP8, 16 GPUs: the suspended site, the two stale pools, the site outside the national
        # network, the two domestic pools without FP8, the H800 above the ceiling, and the
        # eastern H800 with only 12 free: every pool once, under its first reason.
        want = {"SITE_SUSPENDED": 1, "STALE_REPORT": 2, "OUT_OF_SCOPE": 1,
                "NO_MATCHING_ACCELERATOR": 2, "PRICE_CEILING": 1, "INSUFFICIENT_GPUS": 1}
        response = self.place(gpus=16, fp8_required=True)
        self.assertFalse(response.placed)
        self.assertEqual(self.exclusions(response), want)
        # Reported in ExclusionReason order.
        self.assertEqual([e.reason for e in response.exclusions], list(want))
        explained = self.explain(gpus=16, fp8_required=True)
        self.assertEqual(list(explained.ranking), [])
        self.assertEqual(self.exclusions(explained), want)

        # Domestic, at most 1,400 fen: the Ascend at 1,500 is over the request's ceiling, the
        # H800s are not domestic; the Hygon DCU is the one candidate.
        explained = self.explain(gpus=8, domestic_required=True, max_price_fen_per_gpu_hour=1400)
        self.assertEqual([r.pool for r in explained.ranking],
                         ["datacenters/nm-ulanqab/pools/hygon"])
        self.assertEqual(self.exclusions(explained),
                         {"SITE_SUSPENDED": 1, "STALE_REPORT": 2, "OUT_OF_SCOPE": 1,
                          "NO_MATCHING_ACCELERATOR": 2, "PRICE_CEILING": 1})
        # A model by name, too many GPUs: the one in-scope Ascend has 96 free.
        response = self.place(gpus=100, accelerator_model="Ascend 910B")
        self.assertEqual(self.exclusions(response),
                         {"SITE_SUSPENDED": 1, "STALE_REPORT": 2, "OUT_OF_SCOPE": 1,
                          "NO_MATCHING_ACCELERATOR": 3, "INSUFFICIENT_GPUS": 1})
        # 80 GiB of memory rules out the 64 GiB Ascend and Hygon pools.
        response = self.place(gpus=20, min_memory_gib=80)
        self.assertEqual(self.exclusions(response),
                         {"SITE_SUSPENDED": 1, "STALE_REPORT": 2, "OUT_OF_SCOPE": 1,
                          "NO_MATCHING_ACCELERATOR": 2, "PRICE_CEILING": 1,
                          "INSUFFICIENT_GPUS": 1})
        self.assertEqual(self.open_holds(), [])

        # A LIST-scope program that names gz-guian, bj-yizhuang and nx-zhongwei: the other
        # four sites' pools are out of its scope, the suspended and stale ones as before.
        from vch.v1 import program_pb2

        self.open_program("sh-list", datacenter_scope=program_pb2.DATACENTER_SCOPE_LIST,
                          datacenter_ids=[WEST, "bj-yizhuang", "nx-zhongwei"])
        response = self.place(program="sh-list", gpus=100)
        self.assertEqual(self.exclusions(response),
                         {"SITE_SUSPENDED": 1, "STALE_REPORT": 2, "OUT_OF_SCOPE": 4,
                          "INSUFFICIENT_GPUS": 1})
        placed = self.place(program="sh-list", gpus=8)
        self.assertEqual(placed.placement.pool, WEST_NAME)
        # The stale pool comes back with a fresh report.
        self.report("nx-zhongwei", [self.pool_report("h800", 48)])
        explained = self.explain(program="sh-list", gpus=8, fp8_required=True)
        self.assertEqual([r.pool for r in explained.ranking],
                         ["datacenters/nx-zhongwei/pools/h800"])
        self.assertEqual(self.exclusions(explained),
                         {"SITE_SUSPENDED": 1, "STALE_REPORT": 1, "OUT_OF_SCOPE": 4,
                          "NO_MATCHING_ACCELERATOR": 1})

    @staticmethod
    def pool_report(pool_id, free):
        from vch.v1 import capacity_pb2

        return capacity_pb2.PoolReport(pool=pool_id, gpus_free=free)

    def test_a_suspended_site_receives_nothing(self):
        self.build_wide_world()
        # bj-yizhuang has the only fresh, in-scope A800.
        response = self.place(gpus=8, accelerator_model="A800")
        self.assertFalse(response.placed)
        self.assertEqual(self.exclusions(response)["SITE_SUSPENDED"], 1)
        self.assertNotIn("datacenters/bj-yizhuang/pools/a800",
                         [r.pool for r in self.explain(gpus=1, top=100).ranking])
        self.assertEqual(self.pool("bj-yizhuang", "a800").gpus_held, 0)
        # Suspending the western Ascend site sends domestic requests to the Hygon pool.
        self.suspend(WEST)
        explained = self.explain(gpus=8, top=100)
        self.assertNotIn(WEST_NAME, [r.pool for r in explained.ranking])
        self.assertEqual(self.exclusions(explained)["SITE_SUSPENDED"], 2)
        response = self.place(gpus=8, domestic_required=True)
        self.assertEqual(response.placement.pool, "datacenters/nm-ulanqab/pools/hygon")
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.exclusions(self.place(gpus=53, domestic_required=True)),
                         {"SITE_SUSPENDED": 2, "STALE_REPORT": 2, "OUT_OF_SCOPE": 1,
                          "NO_MATCHING_ACCELERATOR": 2, "INSUFFICIENT_GPUS": 1})
        self.assertEqual(self.held(), (0, 0))
        # Resumed, the A800 site takes A800 requests again.
        self.suspend("bj-yizhuang", suspended=False)
        response = self.place(gpus=8, accelerator_model="A800")
        self.assertEqual(response.placement.pool, "datacenters/bj-yizhuang/pools/a800")

    def test_region_preference_and_price_terms(self):
        from vch.v1 import capacity_pb2

        # Two western pools that differ only in region: the preferred prefix adds 50.
        self.add_site("gs-qingyang", "621000", capacity_pb2.NATIONAL_HUB_GANSU,
                      [("ascend", "Ascend 910B", False, True, 64, 128, 1500, 96)])
        ranking = self.explain(gpus=8, preferred_region_prefix="62").ranking
        self.assertEqual([r.pool for r in ranking],
                         ["datacenters/gs-qingyang/pools/ascend", WEST_NAME, EAST_NAME])
        self.assertEqual((ranking[0].score.region, ranking[0].score.total), (50.0, 722.5))
        self.assertEqual((ranking[1].score.region, ranking[1].score.total), (0.0, 672.5))
        # Without a preference the two tie, and the lower pool name wins.
        ranking = self.explain(gpus=8).ranking
        self.assertEqual([r.pool for r in ranking[:2]],
                         ["datacenters/gs-qingyang/pools/ascend", WEST_NAME])
        self.assertEqual(ranking[0].score.total, ranking[1].score.total)
        self.assertEqual(self.place(gpus=8).placement.datacenter, "gs-qingyang")
        placed = self.place(gpus=8, preferred_region_prefix="5201").placement
        self.assertEqual(placed.datacenter, WEST)
        self.assertEqual((placed.score.region, placed.score.total), (50.0, 722.5))

    # --- Explain ---

    def test_explain_ranks_the_pools_and_reserves_nothing(self):
        for principal in (ENTERPRISE, "AUDITOR", "OPERATOR:" + WEST, "ISSUER_ADMIN:shanghai",
                          "PLATFORM_ADMIN"):
            explained = self.explain(principal=principal, gpus=8)
            self.assertEqual([(r.pool, r.gpus_placeable, r.price_fen_per_gpu_hour)
                              for r in explained.ranking],
                             [(WEST_NAME, 96, 1500), (EAST_NAME, 12, 3200)])
            west, east = explained.ranking
            self.assertEqual((west.score.utilization, west.score.price, west.score.total),
                             (687.5, -15.0, 672.5))
            self.assertEqual((east.score.utilization, east.score.price, east.score.total),
                             (62.5, -32.0, 30.5))
            self.assertEqual(list(explained.exclusions), [])
        self.assertEqual([r.pool for r in self.explain(gpus=8, top=1).ranking], [WEST_NAME])
        self.assertEqual(self.exclusions(self.explain(gpus=13)), {"INSUFFICIENT_GPUS": 1})
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.sql("SELECT count(*) FROM capacity_holds"), "0")
        self.assert_invalid(["top"], "Explain", self.explain_request(top=101))
        self.assert_invalid(["top"], "Explain", self.explain_request(top=-1))

    def explain_request(self, top=0, **fields):
        from vch.v1 import placement_pb2

        return placement_pb2.ExplainRequest(requirement=self.requirement(**fields), top=top)

    # --- PlaceBatch ---

    def test_place_batch_respects_capacity_with_distinct_holds(self):
        from vch.v1 import placement_pb2

        sizes = [24, 24, 24, 24, 8, 4, 30]
        request = placement_pb2.PlaceBatchRequest(
            request_id="batch-1", requirements=[self.requirement(gpus=g) for g in sizes])
        results = self.call("PlaceBatch", request, ENTERPRISE).results
        self.assertEqual(len(results), len(sizes))
        placed = [r.placement for r in results if r.placed]
        # 96 + 12 placeable: every request but the 30 fits (24 x 4 west, 8 + 4 east).
        self.assertEqual([r.placed for r in results], [True] * 6 + [False])
        self.assertEqual(self.exclusions(results[6]), {"INSUFFICIENT_GPUS": 2})
        self.assertEqual(len({p.hold_id for p in placed}), len(placed))
        self.assertTrue(all(p.hold_id > 0 for p in placed))
        per_pool = {}
        for size, result in zip(sizes, results):
            if result.placed:
                self.assertEqual(result.placement.gpus, size)
                per_pool[result.placement.pool] = per_pool.get(result.placement.pool, 0) + size
        self.assertLessEqual(per_pool.get(WEST_NAME, 0), 96)
        self.assertLessEqual(per_pool.get(EAST_NAME, 0), 12)
        self.assertEqual(per_pool, {WEST_NAME: 96, EAST_NAME: 12})
        self.assertEqual(self.held(), (12, 96))
        self.assertEqual(sorted(h[2] for h in self.open_holds()), sorted(sizes[:6]))
        # Nothing is left for anyone.
        self.assertEqual(self.exclusions(self.place(gpus=1)), {"INSUFFICIENT_GPUS": 2})

    def test_place_batch_never_over_commits_a_pool(self):
        from vch.v1 import placement_pb2

        # 20 requests of 1..10 GPUs (110 in all) for 108 placeable GPUs.
        sizes = [1 + i % 10 for i in range(20)]
        results = self.call("PlaceBatch", placement_pb2.PlaceBatchRequest(
            request_id="batch-2", requirements=[self.requirement(gpus=g) for g in sizes]),
            ENTERPRISE).results
        per_pool = {}
        for size, result in zip(sizes, results):
            if result.placed:
                per_pool[result.placement.pool] = per_pool.get(result.placement.pool, 0) + size
            else:
                self.assertIn("INSUFFICIENT_GPUS", self.exclusions(result))
        self.assertLessEqual(per_pool.get(WEST_NAME, 0), 96)
        self.assertLessEqual(per_pool.get(EAST_NAME, 0), 12)
        self.assertEqual(self.held(), (per_pool.get(EAST_NAME, 0), per_pool.get(WEST_NAME, 0)))
        holds = [r.placement.hold_id for r in results if r.placed]
        self.assertEqual(len(set(holds)), len(holds))
        # All but 2 GPUs' worth can be placed; a batch places at least 18 of the 20.
        self.assertGreaterEqual(len(holds), 18)

    # --- ReleasePlacement ---

    def test_release_once_by_the_owner_only(self):
        hold = self.place(gpus=8).placement.hold_id
        self.assertEqual(self.held(), (0, 8))
        # Another enterprise cannot see the hold.
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "CAPACITY_HOLD_NOT_FOUND", "ReleasePlacement",
                          self.release_request(hold), OTHER_ENTERPRISE)
        for principal in ("OPERATOR:" + WEST, "AUDITOR", "ISSUER_ADMIN:shanghai"):
            self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                              "ReleasePlacement", self.release_request(hold), principal)
        self.assertEqual(self.held(), (0, 8))
        first = self.release(hold)
        self.assertEqual((first.hold_id, first.released), (hold, True))
        self.assertEqual(self.held(), (0, 0))
        second = self.release(hold)
        self.assertEqual((second.hold_id, second.released), (hold, False))
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.sql("SELECT state FROM capacity_holds WHERE id = %d" % hold), "2")
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "CAPACITY_HOLD_NOT_FOUND", "ReleasePlacement",
                          self.release_request(hold + 1000), ENTERPRISE)
        self.assert_invalid(["hold_id"], "ReleasePlacement", self.release_request(0))
        # A platform admin releases anyone's hold.
        other = self.place(principal=OTHER_ENTERPRISE, gpus=4).placement.hold_id
        self.assertEqual(self.held(), (0, 4))
        self.assertTrue(self.release(other, principal="PLATFORM_ADMIN").released)
        self.assertEqual(self.held(), (0, 0))
        # The released GPUs are placeable again.
        self.assertEqual(self.place(gpus=96).placement.pool, WEST_NAME)

    def release_request(self, hold_id):
        from vch.v1 import placement_pb2

        return placement_pb2.ReleasePlacementRequest(request_id=self.request_id(),
                                                     hold_id=hold_id)

    @vchd_args("--capacity-hold-ttl-ms", "1000")
    def test_holds_expire_by_themselves(self):
        placement = self.place(gpus=8).placement
        self.assert_hold_expiry(placement, 1)
        self.assertEqual(self.held(), (0, 8))
        deadline = time.time() + 20  # the expiry job runs every 5 s
        while self.held() != (0, 0) and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.held(), (0, 0))
        self.assertEqual(self.sql("SELECT state FROM capacity_holds WHERE id = %d"
                                  % placement.hold_id), "2")
        self.assertFalse(self.release(placement.hold_id).released)

    # --- who, what ---

    def test_only_enterprises_and_platform_admins_place(self):
        from vch.v1 import placement_pb2

        for principal in ("OPERATOR:" + WEST, "AUDITOR", "ISSUER_ADMIN:shanghai",
                          "REVIEWER:shanghai"):
            self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "Place",
                              self.place_request("denied", gpus=8), principal)
            self.assert_fails(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                              "PlaceBatch", placement_pb2.PlaceBatchRequest(
                                  request_id="denied", requirements=[self.requirement()]),
                              principal)
        self.assertEqual(self.held(), (0, 0))
        stub_request = self.place_request("anonymous", gpus=8)
        from vch.v1 import placement_pb2_grpc

        with self.assertRaises(grpc.RpcError) as caught:
            placement_pb2_grpc.PlacementServiceStub(self.channel).Place(stub_request, timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        # A platform admin places (for an enterprise, say).
        self.assertTrue(self.place(principal="PLATFORM_ADMIN", gpus=8).placed)
        self.assertEqual(self.held(), (0, 8))

    def test_invalid_requirements_name_their_fields(self):
        from vch.v1 import placement_pb2

        self.assert_invalid(["requirement.gpus"], "Place", self.place_request("x", gpus=0))
        self.assert_invalid(["requirement.gpus"], "Place", self.place_request("x", gpus=-4))
        self.assert_invalid(["requirement.gpus"], "Place", self.place_request("x", gpus=4097))
        self.assert_invalid(["requirement.program"], "Place",
                            self.place_request("x", program="Not A Slug!"))
        self.assert_invalid(["requirement.max_price_fen_per_gpu_hour"], "Place",
                            self.place_request("x", max_price_fen_per_gpu_hour=-1))
        self.assert_invalid(["requirement.min_memory_gib"], "Place",
                            self.place_request("x", min_memory_gib=-1))
        for prefix in ("5a", "52-1", "5201001", "５２"):
            self.assert_invalid(["requirement.preferred_region_prefix"], "Place",
                                self.place_request("x", preferred_region_prefix=prefix))
        self.assert_invalid(["request_id"], "Place", self.place_request(""))
        self.assert_invalid(
            ["requirement.gpus", "requirement.program", "requirement.max_price_fen_per_gpu_hour",
             "requirement.preferred_region_prefix"], "Place",
            self.place_request("x", program="", gpus=0, max_price_fen_per_gpu_hour=-100,
                               preferred_region_prefix="abc"))
        self.assert_invalid(["requirement.gpus", "requirement.preferred_region_prefix"],
                            "Explain", self.explain_request(gpus=0, preferred_region_prefix="x"))
        self.assert_invalid(["requirements[1].gpus", "requirements[2].program"], "PlaceBatch",
                            placement_pb2.PlaceBatchRequest(
                                request_id="b", requirements=[
                                    self.requirement(), self.requirement(gpus=0),
                                    self.requirement(program="BAD")]))
        self.assert_invalid(["requirements"], "PlaceBatch",
                            placement_pb2.PlaceBatchRequest(request_id="b"))
        self.assertEqual(self.held(), (0, 0))
        # The refused request_id is still free to use.
        self.assertTrue(self.place(request_id="x", gpus=8).placed)

    def test_programs_that_are_not_open_place_nothing(self):
        self.open_program("sh-draft", state="draft")
        self.open_program("sh-closed", state="closed")
        for program in ("sh-draft", "sh-closed"):
            self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "PROGRAM_NOT_OPEN", "Place",
                              self.place_request(self.request_id(), program=program),
                              ENTERPRISE)
            self.assert_fails(grpc.StatusCode.FAILED_PRECONDITION, "PROGRAM_NOT_OPEN", "Explain",
                              self.explain_request(program=program), ENTERPRISE)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND", "Place",
                          self.place_request(self.request_id(), program="no-such-program"),
                          ENTERPRISE)
        self.assertEqual(self.held(), (0, 0))

    # --- concurrency ---

    def test_eight_racing_requests_for_sixteen_gpus_place_exactly_four(self):
        from vch.v1 import capacity_pb2

        # The only Hygon pool: 16 of 32 GPUs free.
        self.add_site("gs-qingyang", "621000", capacity_pb2.NATIONAL_HUB_GANSU,
                      [("hygon", "Hygon DCU K100", False, True, 64, 32, 1200, 16)])
        barrier = threading.Barrier(8)

        def one(i):
            barrier.wait(timeout=20)
            return self.place(principal="ENTERPRISE:" + uscc(100 + i), request_id="race-%d" % i,
                              gpus=4, accelerator_model="Hygon DCU K100")

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(8)))
        placed = [r.placement for r in results if r.placed]
        self.assertEqual(len(placed), 4, results)
        self.assertEqual({p.pool for p in placed}, {"datacenters/gs-qingyang/pools/hygon"})
        self.assertEqual(len({p.hold_id for p in placed}), 4)
        for r in results:
            if not r.placed:
                self.assertIn("INSUFFICIENT_GPUS", self.exclusions(r))
        hygon = self.pool("gs-qingyang", "hygon")
        self.assertEqual((hygon.gpus_free, hygon.gpus_held), (16, 16))
        self.assertEqual(self.sql("SELECT count(*) || '|' || sum(gpus) FROM capacity_holds "
                                  "WHERE pool_id = 'hygon' AND state = 1"), "4|16")

    # --- the CLI against the same server ---

    def test_vch_cli_explain_place_pool_list_and_release(self):
        out = self.vch(ENTERPRISE, "explain", "--program", PROGRAM, "--gpus", "8")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertRegex(lines[0], r"^RANK\s+POOL\s+PLACEABLE")
        self.assertRegex(lines[1], r"^1\s+%s\s+96\s+15\.00\s+687\.50\s+-15\.00\s+0\.00\s+672\.50$"
                         % WEST_NAME)
        self.assertRegex(lines[2], r"^2\s+%s\s+12\s+32\.00" % EAST_NAME)
        self.assertRegex(out.stdout, r"excluded_pools\s+none")

        place = ["--json", "place", "--program", PROGRAM, "--gpus", "8", "--domestic",
                 "--prefer-region", "52", "--request-id", "cli-place-1"]
        out = self.vch(ENTERPRISE, *place)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        self.assertEqual(got["request_id"], "cli-place-1")
        self.assertTrue(got["placed"])
        self.assertEqual(got["placement"]["pool"], WEST_NAME)
        self.assertEqual(got["placement"]["price_fen_per_gpu_hour"], "1500")
        self.assertEqual(got["placement"]["score"],
                         {"utilization": 687.5, "price": -15.0, "region": 50.0, "total": 722.5})
        hold = got["placement"]["hold_id"]
        self.assertEqual(self.sql("SELECT purpose FROM capacity_holds WHERE id = %s" % hold),
                         "cli-place-1")
        # Retried with the same request id: the same hold.
        again = json.loads(self.vch(ENTERPRISE, *place).stdout)
        self.assertEqual(again["placement"]["hold_id"], hold)
        self.assertEqual(self.held(), (0, 8))

        out = self.vch("AUDITOR", "pool", "list", WEST)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout.splitlines()[0], r"^POOL\s+MODEL\s+VENDOR\s+DOM\s+FP8")
        self.assertRegex(out.stdout, r"\nascend\s+Ascend 910B\s+-\s+yes\s+no\s+64\s+128\s+96\s+8"
                                     r"\s+25\.00 %\s+15\.00\s+\d{4}-")
        out = self.vch("AUDITOR", "--json", "pool", "list", WEST)
        self.assertEqual(json.loads(out.stdout)["pools"][0]["gpus_held"], 8)

        # Human-readable placement, then one that does not fit (exit 1, with the reasons).
        out = self.vch(ENTERPRISE, "place", "--program", PROGRAM, "--gpus", "4", "--fp8")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"pool\s+%s\n" % EAST_NAME)
        # 1000 * (1 - (64 - 12 + 4) / 64) = 125.
        self.assertRegex(out.stdout, r"score\s+93\.00 = utilization 125\.00 \+ price -32\.00 \+ "
                                     r"region 0\.00\n")
        self.assertRegex(out.stdout, r"hold_id\s+\d+\n")
        self.assertRegex(out.stdout, r"expires\s+\d{4}-\d\d-\d\dT")
        self.assertRegex(out.stdout, r"request_id\s+[0-9a-f-]{36}\n")
        out = self.vch(ENTERPRISE, "place", "--program", PROGRAM, "--gpus", "500")
        self.assertEqual(out.returncode, 1)
        self.assertRegex(out.stdout, r"placed\s+no")
        self.assertRegex(out.stdout, r"excluded_pools\s+INSUFFICIENT_GPUS 2")

        # Errors: field violations (exit 1), usage (exit 2).
        out = self.vch(ENTERPRISE, "--json", "place", "--program", PROGRAM, "--gpus", "0",
                       "--prefer-region", "x1")
        self.assertEqual(out.returncode, 1)
        error = json.loads(out.stdout)["error"]
        self.assertEqual(error["reason"], "INVALID_ARGUMENT")
        self.assertEqual(sorted(v["field"] for v in error["field_violations"]),
                         ["requirement.gpus", "requirement.preferred_region_prefix"])
        self.assertEqual(self.vch(ENTERPRISE, "place", "--program", PROGRAM).returncode, 2)
        self.assertEqual(self.vch(ENTERPRISE, "place", "--program", PROGRAM, "--gpus",
                                  "eight").returncode, 2)
        self.assertEqual(self.vch(ENTERPRISE, "explain", "--program", PROGRAM, "--gpus", "1",
                                  "--fp8=maybe").returncode, 2)

        out = self.vch(ENTERPRISE, "placement", "release", hold)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"released\s+yes")
        out = self.vch(ENTERPRISE, "--json", "placement", "release", hold)
        self.assertEqual(json.loads(out.stdout)["released"], False)
        self.assertEqual(self.held(), (4, 0))

    def test_vch_cli_datacenter_pool_and_capacity_commands(self):
        site = "nm-ulanqab"
        operator = "OPERATOR:" + site
        out = self.vch(operator, "datacenter", "register", "--id", site, "--name", "乌兰察布智算中心",
                       "--region", "150900", "--hub", "inner-mongolia", "--operator",
                       "乌兰察布云计算有限公司", "--national-network", "--request-id", "cli-dc")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"hub\s+inner-mongolia\n")
        self.assertRegex(out.stdout, r"national_network\s+yes\n")
        self.assertRegex(out.stdout, r"request_id\s+cli-dc\n")
        out = self.vch(operator, "--json", "pool", "register", "--datacenter", site, "--id",
                       "a800", "--model", "A800", "--vendor", "NVIDIA", "--memory-gib", "80",
                       "--fp16-tflops", "312", "--gpus", "192", "--price-fen", "1500")
        self.assertEqual(out.returncode, 0, out.stderr)
        pool = json.loads(out.stdout)["pool"]
        self.assertEqual((pool["name"], pool["gpus_total"], pool["fp8"], pool["domestic"]),
                         ("datacenters/nm-ulanqab/pools/a800", 192, False, False))
        out = self.vch(operator, "capacity", "report", site, "a800=150")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"\na800\s+A800\s+NVIDIA\s+no\s+no\s+80\s+192\s+150\s+0\s+"
                                     r"21\.87 %\s+15\.00")
        # Another operator may not report for the site.
        out = self.vch("OPERATOR:" + WEST, "capacity", "report", site, "a800=0")
        self.assertEqual(out.returncode, 1)
        self.assertEqual(self.vch(operator, "capacity", "report", site, "a800").returncode, 2)

        out = self.vch("AUDITOR", "datacenter", "list", "--hub", "inner-mongolia")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual([line.split()[0] for line in out.stdout.splitlines()[1:]], [site])
        out = self.vch("AUDITOR", "datacenter", "suspend", site, "--reason", "audit")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"state\s+SUSPENDED\n")
        out = self.vch("AUDITOR", "--json", "datacenter", "get", site)
        self.assertEqual(json.loads(out.stdout)["datacenter"]["state"],
                         "DATACENTER_STATE_SUSPENDED")
        self.assertEqual(self.vch("AUDITOR", "datacenter", "suspend", site).returncode, 2)
        out = self.vch("PLATFORM_ADMIN", "datacenter", "resume", site)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"state\s+ACTIVE\n")

        now = datetime.datetime.now(datetime.timezone.utc)
        start = (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = self.vch("AUDITOR", "--json", "utilization", "--pool", site + "/a800", "--from",
                       start, "--to", end, "--bucket-s", "7200")
        self.assertEqual(out.returncode, 0, out.stderr)
        points = json.loads(out.stdout)["points"]
        self.assertEqual([(p["gpus_total"], p["gpus_busy"], p["utilization_bps"])
                          for p in points], [(192, 42, 2187)])
        out = self.vch("AUDITOR", "utilization", "--hub", "inner-mongolia", "--from", start,
                       "--to", end, "--bucket-s", "7200")
        self.assertRegex(out.stdout, r"\n\S+Z\s+192\s+42\s+21\.87 %\n")
        self.assertEqual(self.vch("AUDITOR", "utilization", "--from", start, "--to",
                                  end).returncode, 2)
        self.assertEqual(self.vch("AUDITOR", "utilization", "--hub", "tibet", "--from", start,
                                  "--to", end).returncode, 2)

    # --- replays answer what the first call answered ---

    def test_replay_after_the_last_gpus_were_held_returns_the_same_hold(self):
        """Once the first call's hold took the last placeable GPUs, a fresh decision would find
        no pool; the replay must still return the stored placement."""
        first = self.place(request_id="all-of-it", gpus=96)
        self.assertTrue(first.placed)
        replayed = self.place(request_id="all-of-it", gpus=96)
        self.assertTrue(replayed.placed, replayed)
        self.assertEqual(replayed.placement.hold_id, first.placement.hold_id)

    def test_replay_reports_the_price_and_score_of_the_pool_it_holds(self):
        """A replay reports the pool, price and score that were reserved, even when a fresh
        decision would now pick another pool."""
        from vch.v1 import capacity_pb2

        # gs-qingyang/ascend at 1,400 fen beats gz-guian/ascend at 1,500 (673.5 to 672.5);
        # once it holds 8 GPUs it scores 611 and the fresh decision would be gz-guian.
        self.add_site("gs-qingyang", "621000", capacity_pb2.NATIONAL_HUB_GANSU,
                      [("ascend", "Ascend 910B", False, True, 64, 128, 1400, 96)])
        first = self.place(request_id="twice", gpus=8).placement
        self.assertEqual((first.datacenter, first.price_fen_per_gpu_hour, first.score.total),
                         ("gs-qingyang", 1400, 673.5))
        replayed = self.place(request_id="twice", gpus=8).placement
        self.assertEqual(replayed.hold_id, first.hold_id)
        self.assertEqual(replayed.datacenter, "gs-qingyang")
        self.assertEqual(replayed, first)

    def test_program_accelerator_classes_limit_placement(self):
        """ProgramRules.allowed_accelerators (e.g. FP8-capable only) limits placement: a program
        for FP8-capable accelerators never gets a domestic Ascend 910B without FP8."""
        from vch.v1 import program_pb2

        self.open_program("sh-fp8-only",
                          allowed_accelerators=[program_pb2.ACCELERATOR_CLASS_FP8_CAPABLE])
        response = self.place(program="sh-fp8-only", gpus=8)
        self.assertEqual(response.placement.pool, EAST_NAME)


if __name__ == "__main__":
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
