"""Shared helpers of the Python end-to-end tests: argument parsing, generated stubs, a vchd
process started on a free port, and a private PostgreSQL cluster."""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import grpc

ARGS = None


def parse_args():
    """Parses the harness arguments; leaves the rest for unittest."""
    global ARGS
    parser = argparse.ArgumentParser()
    for name in ("--vchd", "--vch", "--pg-cluster", "--proto-root", "--test-proto-root", "--work"):
        parser.add_argument(name, required=True)
    ARGS, rest = parser.parse_known_args()
    if os.path.exists(ARGS.work):
        shutil.rmtree(ARGS.work)
    os.makedirs(ARGS.work)
    generate_stubs()
    return [sys.argv[0]] + rest


def generate_stubs():
    """Generates Python modules for vch.v1, google.rpc, grpc.health and grpc.reflection."""
    from grpc_tools import protoc
    import grpc_tools

    out = os.path.join(ARGS.work, "gen")
    os.makedirs(out)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = []
    for root in (ARGS.proto_root, ARGS.test_proto_root):
        for dirpath, _, files in os.walk(root):
            protos += [os.path.relpath(os.path.join(dirpath, f), root)
                       for f in files if f.endswith(".proto")]
    status = protoc.main(["protoc", "-I" + ARGS.proto_root, "-I" + ARGS.test_proto_root,
                          "-I" + well_known, "--python_out=" + out, "--grpc_python_out=" + out]
                         + sorted(protos))
    if status != 0:
        raise RuntimeError("protoc failed for the Python stubs")
    sys.path.insert(0, out)
    # grpc.health.v1 and grpc.reflection.v1alpha live under the installed grpc package's name.
    grpc.__path__.append(os.path.join(out, "grpc"))


def free_port_file(name):
    return os.path.join(ARGS.work, name + ".port")


class Vchd:
    """A vchd serve process on a free loopback port; stop() sends SIGTERM and waits."""

    def __init__(self, dsn, name="vchd", extra=()):
        self.port_file = free_port_file(name)
        self.log_path = os.path.join(ARGS.work, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [ARGS.vchd, "serve", "--dsn", dsn, "--listen", "127.0.0.1:0",
             "--port-file", self.port_file, "--health-interval-ms", "100", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("vchd exited with %d: %s" % (self.proc.returncode, self.logs()))
            if time.time() > deadline:
                raise RuntimeError("vchd did not start: " + self.logs())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.address = "127.0.0.1:%d" % self.port

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


class Cluster:
    """A private PostgreSQL cluster made by deploy/pg-cluster."""

    def __init__(self, name):
        self.dir = os.path.join(ARGS.work, name)
        self.dsn = None

    def start(self):
        out = subprocess.run([ARGS.pg_cluster, "start", self.dir, "--fast"], check=True,
                             capture_output=True, text=True)
        self.dsn = out.stdout.strip().splitlines()[-1]
        return self.dsn

    def stop(self):
        subprocess.run([ARGS.pg_cluster, "stop", self.dir], check=True, capture_output=True)


def psql(dsn, sql):
    subprocess.run(["psql", dsn, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   capture_output=True)


def error_details(error):
    """(reason, [(field, description)]) from a grpc.RpcError's google.rpc.Status trailer."""
    from google.rpc import error_details_pb2, status_pb2

    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            reason, violations = "", []
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                elif detail.Unpack(bad):
                    violations = [(v.field, v.description) for v in bad.field_violations]
            return reason, violations
    return "", []


def wait_for_health(stub, want, timeout=20.0):
    """Polls grpc.health.v1 Check until it reports `want`; returns the seconds it took."""
    from grpc.health.v1 import health_pb2

    start = time.time()
    last = None
    while time.time() - start < timeout:
        try:
            last = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError as e:  # the server may be briefly busy; keep polling
            last = e.code()
        if last == want:
            return time.time() - start
        time.sleep(0.05)
    raise AssertionError("health stayed %r, wanted %r" % (last, want))
