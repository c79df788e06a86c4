#!/usr/bin/env python3
"""API benchmarks (make bench-api), on a 1-host lab (`keel lab up 1`, needs root):

- calls/s of a small call (CurrentSession: an empty request, a ~700-byte answer) over TLS
  with 1 and with 64 concurrent streams on one connection, and its p99 latency with 64;
- calls/s of RetrieveInventory with 100 VMs registered on the host, 64 streams;
- hostd's CPU time per small call (64 streams) as a ratio to nghttpd's per request for a
  static file of the same size as the call's DATA, over TLS, same load, same namespace.

The load is h2load (nghttp2-client) run inside the host's network namespace against
https://127.0.0.1:8443 (hostd's self-signed certificate; h2load does not verify), with the
session token from a grpcio Login (Debian's /usr/bin/python3 with grpcio, stubs made from
proto/vim.proto). Every run must end with all requests answered 2xx; gRPC errors come as
HTTP 200 with grpc-status in the trailers, so each method is also called once with grpcio
and once with curl (grpc-status: 0 in the trailers) with the same token.

Prints "RESULT <name> <value> <unit>" lines, comments ("# ...") with detail, progress on
stderr. KEEL_BENCH_QUICK=1 makes a smoke run with fewer requests (same result names)."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
KEEL = os.path.abspath(f"{BUILD}/bin/keel")
TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GRPC_PYTHON = "/usr/bin/python3"   # Debian's python3-grpcio lives there
QUICK = os.environ.get("KEEL_BENCH_QUICK") == "1"

# Requests per measured h2load run (each preceded by a warm-up of WARMUP requests).
SMALL_1 = 2000 if QUICK else 20000       # small call, 1 stream
SMALL_64 = 20000 if QUICK else 500000    # small call, 64 streams (also the CPU window)
INVENTORY_64 = 1000 if QUICK else 10000  # RetrieveInventory, 64 streams
WARMUP = 1000
VMS = 100
HOSTD_PORT = 8443
NGHTTPD_PORT = 8444

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVICE = "/keel.vim.Vim/"
EMPTY_MSG = b"\0\0\0\0\0"  # a gRPC length-prefixed empty message: flag 0, length 0

# grpcio client run in the host's namespace: argv STUBS CERT PASSWORD_FILE PORT VMS.
# Logs in as root, checks that CurrentSession and RetrieveInventory answer OK with the
# token (the inventory holding the VMS VMs) and prints the token.
LOGIN_CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import grpc, vim_pb2, vim_pb2_grpc
cert, pw = open(sys.argv[2], "rb").read(), open(sys.argv[3]).read().strip()
ch = grpc.secure_channel("127.0.0.1:" + sys.argv[4],
                         grpc.ssl_channel_credentials(root_certificates=cert),
                         options=[("grpc.ssl_target_name_override", "localhost")])
stub = vim_pb2_grpc.VimStub(ch)
token = stub.Login(vim_pb2.LoginRequest(user="root", password=pw), timeout=20).token
md = [("x-keel-session", token)]
s = stub.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=md, timeout=20)
assert s.user == "root", s
inv = stub.RetrieveInventory(vim_pb2.RetrieveInventoryRequest(), metadata=md, timeout=20)
assert len(inv.vms) == int(sys.argv[5]), "inventory has %d VMs" % len(inv.vms)
print(token)
"""


def result(name, value, unit):
    print(f"RESULT {name} {value:.2f} {unit}", flush=True)


def note(text):
    """A comment line in the results (detail that is not a RESULT)."""
    print(f"# {text}", flush=True)


def progress(text):
    print(f"bench-api: {text}", file=sys.stderr, flush=True)


def p99(values):
    """Nearest-rank 99th percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def run(argv, **kw):
    """Runs argv; its stdout. Raises with its stderr on failure."""
    out = subprocess.run(argv, capture_output=True, timeout=kw.pop("timeout", 300), **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:4]))}...: exit {out.returncode}: "
                           f"{out.stderr.decode(errors='replace').strip()[-500:]}")
    return out.stdout


class Lab:
    """A 1-host `keel lab` in dir; commands can run inside its host's network namespace."""

    def __init__(self, dir):
        self.dir = dir
        self.info = None

    def lab(self, *args):
        return json.loads(run([KEEL, "lab", *args, "--dir", self.dir, "--json"]))

    def up(self):
        self.info = self.lab("up", "1")

    def down(self):
        subprocess.run([KEEL, "lab", "down", "--dir", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    def host_dir(self):
        return os.path.join(self.dir, "hosts", "host1")

    def ns(self, *argv):
        """argv run inside host1's network namespace (nsenter execs it: same pid)."""
        return ["nsenter", f"--net=/run/netns/{self.info['hosts'][0]['netns']}", *argv]

    def pid(self, daemon):
        st = self.lab("status")
        return next(d["pid"] for d in st["hosts"][0]["daemons"]
                    if d["name"] == daemon and d["running"])

    def keel(self, *args):
        return run([KEEL, "--socket", os.path.join(self.host_dir(), "vmkernel.sock"),
                    "--timeout", "30", *args])


# -- h2load ---------------------------------------------------------------------------------------

def h2load(lab, url, n, streams, headers=(), body=None, log=None):
    """One h2load run of n requests on one connection with `streams` concurrent streams.
    Checks that every request got a 2xx; returns (requests/s, [per-request µs] or None)."""
    argv = ["h2load", "-n", str(n), "-c", "1", "-m", str(streams)]
    for h in headers:
        argv += ["-H", h]
    if body:
        argv += ["-d", body]
    if log:
        argv += ["--log-file", log]
    out = run(lab.ns(*argv, url), timeout=600).decode()
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if not m or not codes or int(m[3]) != n or int(codes[1]) != n:
        raise RuntimeError(f"h2load {url}: not every request succeeded:\n{out[-800:]}")
    rate = float(re.search(r"finished in \S+, ([\d.]+) req/s", out)[1])
    times = None
    if log:
        # One line per request: start time (µs since the epoch), status, duration (µs).
        with open(log) as f:
            rows = [ln.split("\t") for ln in f if ln.strip()]
        if len(rows) != n or any(r[1] != "200" for r in rows):
            raise RuntimeError(f"h2load {url}: log has {len(rows)} lines or a non-200")
        times = [int(r[2]) for r in rows]
    return rate, times


def grpc_h2load(lab, method, token, body, n, streams, log=None):
    """h2load of a gRPC unary call with an empty request to hostd."""
    headers = ("content-type: application/grpc", "te: trailers", f"x-keel-session: {token}")
    return h2load(lab, f"https://127.0.0.1:{HOSTD_PORT}{SERVICE}{method}", n, streams,
                  headers, body, log)


def curl_call(lab, method, token, body, out):
    """One call with curl (HTTP/2, TLS unverified): checks HTTP 200 and grpc-status 0 in
    the trailers; returns the length of the DATA (the length-prefixed answer)."""
    head = run(lab.ns("curl", "-sk", "--http2", "-X", "POST", "-D", "-", "-o", out,
                      "-H", "content-type: application/grpc", "-H", "te: trailers",
                      "-H", f"x-keel-session: {token}", "--data-binary", f"@{body}",
                      f"https://127.0.0.1:{HOSTD_PORT}{SERVICE}{method}")).decode()
    if not head.startswith("HTTP/2 200") or not re.search(r"^grpc-status: 0\r?$", head, re.M):
        raise RuntimeError(f"curl {method}: not HTTP 200 with grpc-status 0:\n{head}")
    return os.path.getsize(out)


# -- the benchmarks ----------------------------------------------------------------------------

def bench_hostd(lab, tmp, token, body):
    """The small call at 1 and 64 streams (hostd's CPU over the 64-stream run), then the
    inventory at 64 streams. Returns hostd's CPU ticks per small call."""
    hostd = lab.pid("hostd")

    progress(f"CurrentSession, 1 stream, {SMALL_1} calls")
    grpc_h2load(lab, "CurrentSession", token, body, WARMUP, 1)
    rate, times = grpc_h2load(lab, "CurrentSession", token, body, SMALL_1, 1,
                              os.path.join(tmp, "small1.log"))
    result("api_small_calls_s_1", rate, "calls/s")
    note(f"small call, 1 stream: p99 {p99(times) / 1000:.3f} ms")

    progress(f"CurrentSession, 64 streams, {SMALL_64} calls")
    grpc_h2load(lab, "CurrentSession", token, body, WARMUP, 64)
    before = cpu_ticks(hostd)
    rate, times = grpc_h2load(lab, "CurrentSession", token, body, SMALL_64, 64,
                              os.path.join(tmp, "small64.log"))
    ticks = cpu_ticks(hostd) - before
    if lab.pid("hostd") != hostd:
        raise RuntimeError("hostd restarted during the run")
    result("api_small_calls_s_64", rate, "calls/s")
    result("api_small_p99_ms_64", p99(times) / 1000, "ms")
    per_call = ticks / SMALL_64
    note(f"hostd CPU over {SMALL_64} small calls (64 streams): {ticks / CLK_TCK:.2f} s, "
         f"{per_call / CLK_TCK * 1e6:.2f} µs per call")

    progress(f"RetrieveInventory ({VMS} VMs), 64 streams, {INVENTORY_64} calls")
    grpc_h2load(lab, "RetrieveInventory", token, body, min(WARMUP, INVENTORY_64 // 10), 64)
    rate, times = grpc_h2load(lab, "RetrieveInventory", token, body, INVENTORY_64, 64,
                              os.path.join(tmp, "inv64.log"))
    result("api_inventory_calls_s_64", rate, "calls/s")
    note(f"RetrieveInventory ({VMS} VMs), 64 streams: p99 {p99(times) / 1000:.3f} ms")
    return per_call


def bench_nghttpd(lab, tmp, size):
    """nghttpd in the host's namespace serving a static file of `size` bytes over TLS (a
    self-signed P-256 certificate, like hostd's), GET with the same h2load load as the
    64-stream small call. Returns its CPU ticks per request."""
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "small"), "wb") as f:
        f.write(b"\0" * size)
    key, crt = os.path.join(tmp, "ng.key"), os.path.join(tmp, "ng.crt")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=localhost"])
    log = open(os.path.join(tmp, "nghttpd.out"), "wb")
    ng = subprocess.Popen(lab.ns("nghttpd", "--address=127.0.0.1", "-d", www,
                                 str(NGHTTPD_PORT), key, crt),
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"https://127.0.0.1:{NGHTTPD_PORT}/small"
        deadline = time.monotonic() + 10
        while True:  # until it answers
            try:
                h2load(lab, url, 10, 1)
                break
            except RuntimeError:
                if ng.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        progress(f"nghttpd, {size}-byte file, 64 streams, {SMALL_64} requests")
        h2load(lab, url, WARMUP, 64)
        before = cpu_ticks(ng.pid)
        rate, _ = h2load(lab, url, SMALL_64, 64)
        ticks = cpu_ticks(ng.pid) - before
        note(f"nghttpd, {size}-byte static file, 64 streams: {rate:.0f} req/s, CPU "
             f"{ticks / CLK_TCK:.2f} s, {ticks / SMALL_64 / CLK_TCK * 1e6:.2f} µs per request")
        return ticks / SMALL_64
    finally:
        ng.send_signal(signal.SIGTERM)
        try:
            ng.wait(5)
        except subprocess.TimeoutExpired:
            ng.kill()
            ng.wait()
        log.close()


def main():
    if os.geteuid() != 0:
        sys.exit("bench-api: needs root (keel lab)")
    if not os.path.exists(KEEL):
        sys.exit(f"bench-api: {KEEL} missing; run make first")
    for tool in ("h2load", "nghttpd", "curl", "openssl", "protoc", "nsenter"):
        if shutil.which(tool) is None:
            sys.exit(f"bench-api: {tool} not installed (h2load and nghttpd: nghttp2-client, "
                     "nghttp2-server)")
    if subprocess.run([GRPC_PYTHON, "-c", "import grpc"], capture_output=True).returncode:
        sys.exit(f"bench-api: {GRPC_PYTHON} has no grpc module (python3-grpcio)")

    with tempfile.TemporaryDirectory(prefix="kba-") as tmp:
        stubs = os.path.join(tmp, "stubs")
        os.mkdir(stubs)
        run(["protoc", "-Iproto", f"--python_out={stubs}", f"--grpc_python_out={stubs}",
             "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", "proto/vim.proto"],
            cwd=TOP)
        body = os.path.join(tmp, "empty.bin")
        with open(body, "wb") as f:
            f.write(EMPTY_MSG)

        lab = Lab(os.path.join(tmp, "lab"))
        try:
            progress(f"1-host lab, {VMS} VMs")
            lab.up()
            for i in range(1, VMS + 1):
                lab.keel("vm", "create", f"vm{i:03d}", "--memory", "64")
            # Log in (hostd may still be starting: retry for a while).
            cert = os.path.join(lab.host_dir(), "hostd.crt")
            deadline = time.monotonic() + 30
            while True:
                try:
                    token = run(lab.ns(GRPC_PYTHON, "-c", LOGIN_CLIENT, stubs, cert,
                                       lab.info["root_password_file"], str(HOSTD_PORT),
                                       str(VMS)), timeout=60).decode().strip()
                    break
                except (RuntimeError, FileNotFoundError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            size = curl_call(lab, "CurrentSession", token, body,
                             os.path.join(tmp, "small.out"))
            inv = curl_call(lab, "RetrieveInventory", token, body, os.path.join(tmp, "inv.out"))
            note(f"answers (DATA, with the 5-byte prefix): CurrentSession {size} bytes, "
                 f"RetrieveInventory ({VMS} VMs) {inv} bytes")

            ours = bench_hostd(lab, tmp, token, body)
            theirs = bench_nghttpd(lab, tmp, size)
            result("api_cpu_ratio_vs_nghttpd", ours / theirs, "x")
            note("feed_latency_ms_median: WaitForUpdates not implemented yet")
        finally:
            lab.down()


if __name__ == "__main__":
    main()
