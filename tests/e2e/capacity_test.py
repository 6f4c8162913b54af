"""vch.v1.CapacityService through Debian's python3-grpcio against a real vchd: an operator
registers its site in the Guizhou hub and an Ascend 910B pool, reports free GPUs, and the
history answers utilization per pool, site and hub; who may register, report and suspend;
field violations for malformed requests; and replays of a request_id.

The Guizhou hub holds exactly one site with reports (gui-an-1, 96 of 128 GPUs free), so its
utilization is known exactly; other tests use sites in other hubs."""

import os
import subprocess
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vchtest  # noqa: E402

SITE = "gui-an-1"  # the Guizhou site, region 520100 (Guiyang)
POOL = "ascend-910b"
OPERATOR = "OPERATOR:" + SITE
OTHER_SITE = "lanzhou-1"  # a Gansu site of another operator, with a pool named h800-x
OTHER_OPERATOR = "OPERATOR:" + OTHER_SITE
ENTERPRISE = "ENTERPRISE:91310000MA1FL4XY2K"


class CapacityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from vch.v1 import capacity_pb2

        base = os.environ["VCH_TEST_DSN"]
        db = "e2e_capacity_%d" % os.getpid()
        vchtest.psql(base + " dbname=postgres", "CREATE DATABASE %s TEMPLATE vch_template" % db)
        cls.dsn = base + " dbname=" + db
        cls.vchd = vchtest.Vchd(cls.dsn)
        cls.channel = grpc.insecure_channel(cls.vchd.address)
        call = cls.call_as
        cls.registered_site = call(
            "RegisterDatacenter",
            capacity_pb2.RegisterDatacenterRequest(request_id="reg-site-1",
                                                   datacenter=cls.registered_site_request()),
            OPERATOR).datacenter
        cls.registered_pool = call(
            "RegisterPool",
            capacity_pb2.RegisterPoolRequest(request_id="reg-pool-1", pool=cls.ascend(SITE, POOL)),
            OPERATOR).pool
        # A platform admin registers the other operator's site (admins may act for any site).
        call("RegisterDatacenter",
             capacity_pb2.RegisterDatacenterRequest(
                 request_id="reg-other",
                 datacenter=capacity_pb2.Datacenter(
                     id=OTHER_SITE, display_name="Lanzhou New Area DC", region_code="620100",
                     hub=capacity_pb2.NATIONAL_HUB_GANSU)),
             "PLATFORM_ADMIN")
        call("RegisterPool",
             capacity_pb2.RegisterPoolRequest(
                 request_id="reg-other-pool",
                 pool=capacity_pb2.Pool(
                     datacenter=OTHER_SITE, id="h800-x", accelerator_model="H800",
                     vendor="NVIDIA", fp8=True, memory_gib=80, fp16_tflops=989,
                     fp8_tflops=1979, gpus_total=64, price_fen_per_gpu_hour=2800)),
             OTHER_OPERATOR)
        # Whole seconds before the report, so the utilization window starts before it.
        cls.before_report = int(time.time()) - 1
        cls.reported = call(
            "ReportCapacity",
            capacity_pb2.ReportCapacityRequest(
                request_id="report-1", datacenter=SITE,
                reports=[capacity_pb2.PoolReport(pool=POOL, gpus_free=96)]),
            OPERATOR)
        cls.after_report = time.time() + 1

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.vchd.stop()
        assert code == 0, "vchd exited with %d: %s" % (code, cls.vchd.logs())

    # --- helpers ---

    @classmethod
    def call_as(cls, method, request, principal):
        from vch.v1 import capacity_pb2_grpc

        stub = capacity_pb2_grpc.CapacityServiceStub(cls.channel)
        return getattr(stub, method)(request, metadata=[("x-vch-principal", principal)],
                                     timeout=10)

    def call(self, method, request, principal):
        return self.call_as(method, request, principal)

    @staticmethod
    def registered_site_request():
        """The Guizhou site as its operator registers it."""
        from vch.v1 import capacity_pb2

        return capacity_pb2.Datacenter(
            id=SITE, display_name="Gui'an Compute Center", operator_name="Gui'an Cloud",
            region_code="520100", hub=capacity_pb2.NATIONAL_HUB_GUIZHOU, national_network=True)

    @staticmethod
    def ascend(site, pool_id, **overrides):
        """The Ascend 910B pool: domestic, no FP8, 64 GiB, 128 GPUs, 1,500 fen per GPU-hour."""
        from vch.v1 import capacity_pb2

        fields = dict(datacenter=site, id=pool_id, accelerator_model="Ascend 910B",
                      vendor="Huawei", domestic=True, fp8=False, memory_gib=64, fp16_tflops=320,
                      gpus_total=128, price_fen_per_gpu_hour=1500)
        fields.update(overrides)
        return capacity_pb2.Pool(**fields)

    def assert_fails(self, code, reason, method, request, principal):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(method, request, principal)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        got_reason, violations = vchtest.error_details(caught.exception)
        self.assertEqual(got_reason, reason, caught.exception.details())
        return violations

    def assert_invalid(self, fields, method, request, principal):
        """INVALID_ARGUMENT whose field violations name exactly `fields` (in any order)."""
        violations = self.assert_fails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                       method, request, principal)
        self.assertEqual(sorted(f for f, _ in violations), sorted(fields), violations)
        for field, description in violations:
            self.assertTrue(description, field)

    def sql(self, query):
        out = subprocess.run(["psql", self.dsn, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", query],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def history_count(self):
        return int(self.sql("SELECT count(*) FROM capacity_reports"))

    def pools_of(self, site, principal=ENTERPRISE):
        from vch.v1 import capacity_pb2

        return list(self.call("ListPools", capacity_pb2.ListPoolsRequest(datacenter=site),
                              principal).pools)

    def register_site(self, site, hub, region="640500", request_id=None, principal=None):
        from vch.v1 import capacity_pb2

        return self.call("RegisterDatacenter",
                         capacity_pb2.RegisterDatacenterRequest(
                             request_id=request_id or "reg-" + site,
                             datacenter=capacity_pb2.Datacenter(
                                 id=site, display_name=site, region_code=region, hub=hub)),
                         principal or "OPERATOR:" + site)

    def utilization(self, principal=ENTERPRISE, start=None, end=None, bucket=3600, **selector):
        from google.protobuf import timestamp_pb2
        from vch.v1 import capacity_pb2

        start = self.before_report if start is None else start
        end = start + 3600 if end is None else end
        return list(self.call("GetUtilization",
                              capacity_pb2.GetUtilizationRequest(
                                  start_time=timestamp_pb2.Timestamp(seconds=start),
                                  end_time=timestamp_pb2.Timestamp(seconds=end),
                                  bucket_seconds=bucket, **selector),
                              principal).points)

    # --- registration ---

    def test_operator_registered_its_guizhou_site(self):
        from vch.v1 import capacity_pb2

        for principal in (ENTERPRISE, "AUDITOR", OTHER_OPERATOR, "ISSUER_ADMIN:shanghai"):
            site = self.call("GetDatacenter", capacity_pb2.GetDatacenterRequest(id=SITE),
                             principal).datacenter
            self.assertEqual(site.name, "datacenters/" + SITE)
            self.assertEqual(site.id, SITE)
            self.assertEqual(site.display_name, "Gui'an Compute Center")
            self.assertEqual(site.operator_name, "Gui'an Cloud")
            self.assertEqual(site.region_code, "520100")
            self.assertEqual(site.hub, capacity_pb2.NATIONAL_HUB_GUIZHOU)
            self.assertTrue(site.national_network)
            self.assertEqual(site.state, capacity_pb2.DATACENTER_STATE_ACTIVE)
            self.assertGreater(site.create_time.seconds, 0)
            self.assertEqual(site, self.registered_site)
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "DATACENTER_NOT_FOUND", "GetDatacenter",
                          capacity_pb2.GetDatacenterRequest(id="no-such-site"), ENTERPRISE)

    def test_registered_pool_and_its_report_are_listed(self):
        from vch.v1 import capacity_pb2

        pool = self.registered_pool
        self.assertEqual(pool.name, "datacenters/%s/pools/%s" % (SITE, POOL))
        self.assertEqual((pool.gpus_total, pool.gpus_free, pool.gpus_held), (128, 0, 0))
        self.assertFalse(pool.HasField("report_time"))
        self.assertEqual(len(self.reported.pools), 1)
        self.assertEqual(self.reported.pools[0].gpus_free, 96)
        for principal in (ENTERPRISE, OPERATOR, "AUDITOR"):
            pools = self.pools_of(SITE, principal)
            self.assertEqual(len(pools), 1)
            listed = pools[0]
            self.assertEqual(listed.name, "datacenters/%s/pools/%s" % (SITE, POOL))
            self.assertEqual(listed.id, POOL)
            self.assertEqual(listed.datacenter, SITE)
            self.assertEqual(listed.accelerator_model, "Ascend 910B")
            self.assertEqual(listed.vendor, "Huawei")
            self.assertTrue(listed.domestic)
            self.assertFalse(listed.fp8)
            self.assertEqual(listed.memory_gib, 64)
            self.assertEqual(listed.fp16_tflops, 320)
            self.assertEqual(listed.fp8_tflops, 0)
            self.assertEqual(listed.gpus_total, 128)
            self.assertEqual(listed.gpus_free, 96)
            self.assertEqual(listed.gpus_held, 0)
            self.assertEqual(listed.price_fen_per_gpu_hour, 1500)
            self.assertTrue(listed.HasField("report_time"))
            self.assertGreaterEqual(listed.report_time.seconds, self.before_report)
            self.assertLessEqual(listed.report_time.seconds, self.after_report)
            self.assertEqual(listed, self.reported.pools[0])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "DATACENTER_NOT_FOUND", "ListPools",
                          capacity_pb2.ListPoolsRequest(datacenter="no-such-site"), ENTERPRISE)

    def test_list_datacenters_filters_by_hub(self):
        from vch.v1 import capacity_pb2

        response = self.call("ListDatacenters", capacity_pb2.ListDatacentersRequest(
            hub=capacity_pb2.NATIONAL_HUB_GUIZHOU), ENTERPRISE)
        self.assertEqual([d.id for d in response.datacenters], [SITE])
        response = self.call("ListDatacenters", capacity_pb2.ListDatacentersRequest(
            hub=capacity_pb2.NATIONAL_HUB_GANSU), ENTERPRISE)
        self.assertEqual([d.id for d in response.datacenters], [OTHER_SITE])
        ids, token = [], ""
        for _ in range(20):
            page = self.call("ListDatacenters",
                             capacity_pb2.ListDatacentersRequest(page_size=1, page_token=token),
                             "AUDITOR")
            ids += [d.id for d in page.datacenters]
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(ids, sorted(ids))
        self.assertIn(SITE, ids)
        self.assertIn(OTHER_SITE, ids)

    def test_only_the_sites_operator_or_an_admin_registers(self):
        from vch.v1 import capacity_pb2

        for principal in (OTHER_OPERATOR, ENTERPRISE, "AUDITOR", "ISSUER_ADMIN:guizhou"):
            self.assert_fails(
                grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "RegisterDatacenter",
                capacity_pb2.RegisterDatacenterRequest(
                    request_id="steal-" + principal,
                    datacenter=capacity_pb2.Datacenter(
                        id="gui-an-2", display_name="x", region_code="520100",
                        hub=capacity_pb2.NATIONAL_HUB_GUIZHOU)),
                principal)
            self.assert_fails(
                grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "RegisterPool",
                capacity_pb2.RegisterPoolRequest(request_id="steal-pool-" + principal,
                                                 pool=self.ascend(SITE, "intruder")),
                principal)
        self.assertEqual([p.id for p in self.pools_of(SITE)], [POOL])
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "DATACENTER_NOT_FOUND", "GetDatacenter",
                          capacity_pb2.GetDatacenterRequest(id="gui-an-2"), ENTERPRISE)

    def test_duplicates_are_refused(self):
        from vch.v1 import capacity_pb2

        self.assert_fails(
            grpc.StatusCode.ALREADY_EXISTS, "DATACENTER_EXISTS", "RegisterDatacenter",
            capacity_pb2.RegisterDatacenterRequest(
                request_id="reg-site-again",
                datacenter=capacity_pb2.Datacenter(
                    id=SITE, display_name="Again", region_code="520100",
                    hub=capacity_pb2.NATIONAL_HUB_GUIZHOU)),
            OPERATOR)
        self.assert_fails(
            grpc.StatusCode.ALREADY_EXISTS, "POOL_EXISTS", "RegisterPool",
            capacity_pb2.RegisterPoolRequest(request_id="reg-pool-again",
                                             pool=self.ascend(SITE, POOL, gpus_total=8)),
            OPERATOR)
        self.assertEqual(self.pools_of(SITE)[0].gpus_total, 128)
        self.assert_fails(
            grpc.StatusCode.NOT_FOUND, "DATACENTER_NOT_FOUND", "RegisterPool",
            capacity_pb2.RegisterPoolRequest(request_id="reg-pool-nowhere",
                                             pool=self.ascend("nowhere-1", POOL)),
            "PLATFORM_ADMIN")

    def test_malformed_registrations_name_their_fields(self):
        from vch.v1 import capacity_pb2

        def site(**overrides):
            fields = dict(id="guiyang-9", display_name="Guiyang 9", region_code="520100",
                          hub=capacity_pb2.NATIONAL_HUB_GUIZHOU)
            fields.update(overrides)
            return capacity_pb2.RegisterDatacenterRequest(
                request_id="bad-site", datacenter=capacity_pb2.Datacenter(**fields))

        principal = "OPERATOR:guiyang-9"
        self.assert_invalid(["datacenter.hub"], "RegisterDatacenter",
                            site(hub=capacity_pb2.NATIONAL_HUB_UNSPECIFIED), principal)
        self.assert_invalid(["datacenter.hub"], "RegisterDatacenter", site(hub=9), principal)
        for region in ("52010", "5201000", "52O100", "", "５２０１００"):
            self.assert_invalid(["datacenter.region_code"], "RegisterDatacenter",
                                site(region_code=region), principal)
        self.assert_invalid(["datacenter.display_name"], "RegisterDatacenter",
                            site(display_name=""), principal)
        self.assert_invalid(["datacenter.id", "datacenter.region_code", "datacenter.hub"],
                            "RegisterDatacenter",
                            site(id="Guiyang_9", region_code="GY", hub=0), "PLATFORM_ADMIN")
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "DATACENTER_NOT_FOUND", "GetDatacenter",
                          capacity_pb2.GetDatacenterRequest(id="guiyang-9"), ENTERPRISE)

        def pool(**overrides):
            return capacity_pb2.RegisterPoolRequest(request_id="bad-pool",
                                                    pool=self.ascend(SITE, "new-pool",
                                                                     **overrides))

        self.assert_invalid(["pool.gpus_total"], "RegisterPool", pool(gpus_total=0), OPERATOR)
        self.assert_invalid(["pool.gpus_total"], "RegisterPool", pool(gpus_total=-8), OPERATOR)
        self.assert_invalid(["pool.fp8_tflops"], "RegisterPool",
                            pool(fp8=False, fp8_tflops=1000), OPERATOR)
        self.assert_invalid(["pool.memory_gib"], "RegisterPool", pool(memory_gib=0), OPERATOR)
        self.assert_invalid(["pool.price_fen_per_gpu_hour"], "RegisterPool",
                            pool(price_fen_per_gpu_hour=0), OPERATOR)
        self.assert_invalid(["pool.accelerator_model"], "RegisterPool",
                            pool(accelerator_model=""), OPERATOR)
        self.assert_invalid(["pool.gpus_total", "pool.fp8_tflops"], "RegisterPool",
                            pool(gpus_total=0, fp8_tflops=5), OPERATOR)
        self.assertEqual([p.id for p in self.pools_of(SITE)], [POOL])
        # FP8 TFLOPS with FP8 are fine.
        fp8 = self.call("RegisterPool", capacity_pb2.RegisterPoolRequest(
            request_id="fp8-pool",
            pool=capacity_pb2.Pool(datacenter=OTHER_SITE, id="h20", accelerator_model="H20",
                                   fp8=True, memory_gib=96, fp8_tflops=296, gpus_total=8,
                                   price_fen_per_gpu_hour=900)), OTHER_OPERATOR).pool
        self.assertEqual((fp8.fp8, fp8.fp8_tflops), (True, 296))

    # --- ReportCapacity ---

    def test_another_operator_may_not_report_for_the_site(self):
        from vch.v1 import capacity_pb2

        history = self.history_count()
        for principal in (OTHER_OPERATOR, "PLATFORM_ADMIN", "AUDITOR", ENTERPRISE):
            self.assert_fails(
                grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "ReportCapacity",
                capacity_pb2.ReportCapacityRequest(
                    request_id="foreign-report", datacenter=SITE,
                    reports=[capacity_pb2.PoolReport(pool=POOL, gpus_free=0)]),
                principal)
        self.assertEqual(self.pools_of(SITE)[0].gpus_free, 96)
        self.assertEqual(self.history_count(), history)

    def test_report_naming_a_pool_the_site_does_not_have_is_not_found(self):
        from vch.v1 import capacity_pb2

        history = self.history_count()
        # h800-x is the other site's pool; no-such-pool is nobody's. The valid report of the
        # site's own pool in the same request is not applied either.
        for pools in (["h800-x"], ["no-such-pool"], [POOL, "h800-x"],
                      ["datacenters/%s/pools/h800-x" % OTHER_SITE]):
            self.assert_fails(
                grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND", "ReportCapacity",
                capacity_pb2.ReportCapacityRequest(
                    request_id="not-mine", datacenter=SITE,
                    reports=[capacity_pb2.PoolReport(pool=p, gpus_free=1) for p in pools]),
                OPERATOR)
        self.assertEqual(self.pools_of(SITE)[0].gpus_free, 96)
        self.assertEqual(self.pools_of(OTHER_SITE, OTHER_OPERATOR)[0].gpus_free, 0)
        self.assertEqual(self.history_count(), history)

    def test_malformed_reports_name_their_fields(self):
        from vch.v1 import capacity_pb2

        history = self.history_count()
        self.assert_invalid(["reports"], "ReportCapacity",
                            capacity_pb2.ReportCapacityRequest(request_id="empty",
                                                               datacenter=SITE), OPERATOR)
        # A negative count, and the same pool twice in one report (which would leave the
        # history disagreeing with the pool), each named.
        self.assert_invalid(
            ["reports[1].gpus_free", "reports[1].pool"], "ReportCapacity",
            capacity_pb2.ReportCapacityRequest(
                request_id="negative", datacenter=SITE,
                reports=[capacity_pb2.PoolReport(pool=POOL, gpus_free=1),
                         capacity_pb2.PoolReport(pool=POOL, gpus_free=-1)]),
            OPERATOR)
        self.assert_invalid(
            ["reports[1].pool"], "ReportCapacity",
            capacity_pb2.ReportCapacityRequest(
                request_id="twice", datacenter=SITE,
                reports=[capacity_pb2.PoolReport(pool=POOL, gpus_free=70),
                         capacity_pb2.PoolReport(pool=POOL, gpus_free=20)]),
            OPERATOR)
        self.assert_invalid(
            ["request_id"], "ReportCapacity",
            capacity_pb2.ReportCapacityRequest(
                datacenter=SITE, reports=[capacity_pb2.PoolReport(pool=POOL, gpus_free=1)]),
            OPERATOR)
        # More free GPUs than the pool has is refused and changes nothing.
        with self.assertRaises(grpc.RpcError) as caught:
            self.call("ReportCapacity", capacity_pb2.ReportCapacityRequest(
                request_id="too-many", datacenter=SITE,
                reports=[capacity_pb2.PoolReport(pool=POOL, gpus_free=129)]), OPERATOR)
        self.assertIn(caught.exception.code(), (grpc.StatusCode.INVALID_ARGUMENT,
                                                grpc.StatusCode.FAILED_PRECONDITION),
                      caught.exception.details())
        self.assertEqual(self.pools_of(SITE)[0].gpus_free, 96)
        self.assertEqual(self.history_count(), history)

    # --- SetDatacenterState ---

    def test_only_platform_admins_and_auditors_suspend(self):
        from vch.v1 import capacity_pb2

        self.register_site("zhongwei-2", capacity_pb2.NATIONAL_HUB_NINGXIA)
        for principal in (ENTERPRISE, "OPERATOR:zhongwei-2", OTHER_OPERATOR,
                          "ISSUER_ADMIN:ningxia", "REVIEWER:ningxia"):
            self.assert_fails(
                grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "SetDatacenterState",
                capacity_pb2.SetDatacenterStateRequest(
                    request_id="suspend-" + principal, id="zhongwei-2",
                    state=capacity_pb2.DATACENTER_STATE_SUSPENDED, reason="I say so"),
                principal)
        site = self.call("GetDatacenter", capacity_pb2.GetDatacenterRequest(id="zhongwei-2"),
                         ENTERPRISE).datacenter
        self.assertEqual(site.state, capacity_pb2.DATACENTER_STATE_ACTIVE)
        self.assertEqual(self.sql("SELECT state FROM datacenters WHERE id = 'zhongwei-2'"), "1")

    def test_auditor_suspends_with_a_reason_and_admin_resumes(self):
        from vch.v1 import capacity_pb2

        self.register_site("zhongwei-1", capacity_pb2.NATIONAL_HUB_NINGXIA)
        no_reason = capacity_pb2.SetDatacenterStateRequest(
            request_id="suspend-1", id="zhongwei-1",
            state=capacity_pb2.DATACENTER_STATE_SUSPENDED)
        self.assert_invalid(["reason"], "SetDatacenterState", no_reason, "AUDITOR")
        self.assert_invalid(["state"], "SetDatacenterState",
                            capacity_pb2.SetDatacenterStateRequest(request_id="s0",
                                                                   id="zhongwei-1"), "AUDITOR")
        self.assert_fails(grpc.StatusCode.NOT_FOUND, "DATACENTER_NOT_FOUND", "SetDatacenterState",
                          capacity_pb2.SetDatacenterStateRequest(
                              request_id="s-missing", id="no-such-site",
                              state=capacity_pb2.DATACENTER_STATE_SUSPENDED, reason="audit"),
                          "AUDITOR")
        # The refused request consumed nothing: the same request_id now suspends.
        suspend = capacity_pb2.SetDatacenterStateRequest(
            request_id="suspend-1", id="zhongwei-1",
            state=capacity_pb2.DATACENTER_STATE_SUSPENDED,
            reason="audit 2024-07: reported capacity not verifiable")
        response = self.call("SetDatacenterState", suspend, "AUDITOR")
        self.assertEqual(response.datacenter.id, "zhongwei-1")
        self.assertEqual(response.datacenter.state, capacity_pb2.DATACENTER_STATE_SUSPENDED)
        site = self.call("GetDatacenter", capacity_pb2.GetDatacenterRequest(id="zhongwei-1"),
                         ENTERPRISE).datacenter
        self.assertEqual(site.state, capacity_pb2.DATACENTER_STATE_SUSPENDED)
        self.assertEqual(self.sql("SELECT state || '|' || state_reason FROM datacenters "
                                  "WHERE id = 'zhongwei-1'"),
                         "2|audit 2024-07: reported capacity not verifiable")
        listed = self.call("ListDatacenters", capacity_pb2.ListDatacentersRequest(
            hub=capacity_pb2.NATIONAL_HUB_NINGXIA), ENTERPRISE).datacenters
        self.assertEqual({d.id: d.state for d in listed}["zhongwei-1"],
                         capacity_pb2.DATACENTER_STATE_SUSPENDED)
        # The auditor's replay returns the same response.
        self.assertEqual(self.call("SetDatacenterState", suspend, "AUDITOR"), response)
        resumed = self.call("SetDatacenterState", capacity_pb2.SetDatacenterStateRequest(
            request_id="resume-1", id="zhongwei-1", state=capacity_pb2.DATACENTER_STATE_ACTIVE),
            "PLATFORM_ADMIN")
        self.assertEqual(resumed.datacenter.state, capacity_pb2.DATACENTER_STATE_ACTIVE)
        self.assertEqual(self.sql("SELECT state FROM datacenters WHERE id = 'zhongwei-1'"), "1")

    # --- GetUtilization ---

    def assert_one_point(self, points, total, busy, bps):
        self.assertEqual(len(points), 1, points)
        self.assertEqual(points[0].time.seconds, self.before_report)
        self.assertEqual((points[0].gpus_total, points[0].gpus_busy, points[0].utilization_bps),
                         (total, busy, bps))

    def test_utilization_of_the_pool_the_site_and_the_hub(self):
        from vch.v1 import capacity_pb2

        # 96 of 128 free: 32 busy = 2500 bps.
        for name in ("datacenters/%s/pools/%s" % (SITE, POOL), "%s/%s" % (SITE, POOL)):
            self.assert_one_point(self.utilization(pool=name), 128, 32, 2500)
        self.assert_one_point(self.utilization(datacenter=SITE, principal=OPERATOR), 128, 32,
                              2500)
        self.assert_one_point(self.utilization(hub=capacity_pb2.NATIONAL_HUB_GUIZHOU,
                                               principal="AUDITOR"), 128, 32, 2500)
        # Nothing before the report, nothing in a hub without reports.
        self.assertEqual(self.utilization(pool="%s/%s" % (SITE, POOL),
                                          start=self.before_report - 7200,
                                          end=self.before_report), [])
        self.assertEqual(self.utilization(hub=capacity_pb2.NATIONAL_HUB_INNER_MONGOLIA), [])

    def test_utilization_requests_are_validated(self):
        from google.protobuf import timestamp_pb2
        from vch.v1 import capacity_pb2

        def request(**fields):
            start = timestamp_pb2.Timestamp(seconds=self.before_report)
            end = timestamp_pb2.Timestamp(seconds=self.before_report + 3600)
            base = dict(start_time=start, end_time=end, bucket_seconds=3600)
            base.update(fields)
            return capacity_pb2.GetUtilizationRequest(**base)

        self.assert_invalid(["pool"], "GetUtilization", request(), ENTERPRISE)
        self.assert_invalid(["pool"], "GetUtilization",
                            request(datacenter=SITE, hub=capacity_pb2.NATIONAL_HUB_GUIZHOU),
                            ENTERPRISE)
        self.assert_invalid(["pool"], "GetUtilization", request(pool="just-a-pool"), ENTERPRISE)
        self.assert_invalid(["bucket_seconds"], "GetUtilization",
                            request(datacenter=SITE, bucket_seconds=59), ENTERPRISE)
        self.assert_invalid(["end_time"], "GetUtilization",
                            request(datacenter=SITE, end_time=timestamp_pb2.Timestamp(
                                seconds=self.before_report)), ENTERPRISE)
        self.assert_invalid(["start_time", "end_time"], "GetUtilization",
                            capacity_pb2.GetUtilizationRequest(datacenter=SITE,
                                                               bucket_seconds=3600), ENTERPRISE)

    def test_utilization_pool_names_need_a_site_and_a_pool(self):
        from google.protobuf import timestamp_pb2
        from vch.v1 import capacity_pb2

        # "/{pool}" would otherwise add up every site's pool of that id, "{site}/" the whole site.
        for name in ("/" + POOL, "datacenters//pools/" + POOL, SITE + "/",
                     "datacenters/%s/pools/" % SITE, "%s/%s/x" % (SITE, POOL)):
            with self.subTest(pool=name):
                self.assert_invalid(["pool"], "GetUtilization", capacity_pb2.GetUtilizationRequest(
                    pool=name, start_time=timestamp_pb2.Timestamp(seconds=self.before_report),
                    end_time=timestamp_pb2.Timestamp(seconds=self.before_report + 3600),
                    bucket_seconds=3600), ENTERPRISE)

    def test_unauthenticated_calls_are_refused(self):
        from vch.v1 import capacity_pb2, capacity_pb2_grpc

        stub = capacity_pb2_grpc.CapacityServiceStub(self.channel)
        with self.assertRaises(grpc.RpcError) as caught:
            stub.GetDatacenter(capacity_pb2.GetDatacenterRequest(id=SITE), timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    # --- idempotency ---

    def test_same_request_id_returns_the_same_response(self):
        from vch.v1 import capacity_pb2

        site_request = capacity_pb2.RegisterDatacenterRequest(
            request_id="reg-yinchuan", datacenter=capacity_pb2.Datacenter(
                id="yinchuan-1", display_name="Yinchuan", region_code="640100",
                hub=capacity_pb2.NATIONAL_HUB_NINGXIA, national_network=True))
        operator = "OPERATOR:yinchuan-1"
        site = self.call("RegisterDatacenter", site_request, operator)
        self.assertEqual(self.call("RegisterDatacenter", site_request, operator), site)
        # The setUpClass registration too, by its original request_id.
        self.assertEqual(self.call("RegisterDatacenter", capacity_pb2.RegisterDatacenterRequest(
            request_id="reg-site-1", datacenter=self.registered_site_request()), OPERATOR
        ).datacenter, self.registered_site)
        pool_request = capacity_pb2.RegisterPoolRequest(
            request_id="reg-yinchuan-pool", pool=self.ascend("yinchuan-1", "a910"))
        pool = self.call("RegisterPool", pool_request, operator)
        self.assertEqual(self.call("RegisterPool", pool_request, operator), pool)

        def report(request_id, free):
            return capacity_pb2.ReportCapacityRequest(
                request_id=request_id, datacenter="yinchuan-1",
                reports=[capacity_pb2.PoolReport(pool="a910", gpus_free=free)])

        first = self.call("ReportCapacity", report("y-report-1", 100), operator)
        time.sleep(0.05)
        second = self.call("ReportCapacity", report("y-report-2", 28), operator)
        history = self.history_count()
        time.sleep(0.05)
        replayed = self.call("ReportCapacity", report("y-report-1", 100), operator)
        self.assertEqual(replayed, first)
        self.assertEqual(replayed.pools[0].report_time, first.pools[0].report_time)
        # The replay wrote nothing: the pool still shows the later report.
        self.assertEqual(self.history_count(), history)
        listed = self.pools_of("yinchuan-1")[0]
        self.assertEqual(listed.gpus_free, 28)
        self.assertEqual(listed.report_time, second.pools[0].report_time)
        self.assert_one_point(self.utilization(pool="yinchuan-1/a910"), 128, 100, 7812)
        # The same request_id with another request is refused.
        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                          "ReportCapacity", report("y-report-1", 99), operator)
        self.assertEqual(self.pools_of("yinchuan-1")[0].gpus_free, 28)


if __name__ == "__main__":
    unittest.main(argv=vchtest.parse_args(), verbosity=2)
