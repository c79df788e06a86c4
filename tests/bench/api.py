#!/usr/bin/env python3
"""API benchmarks (make bench-api), on a 1-host lab (`keel lab up 1`, needs root):

- calls/s of a small call (CurrentSession: an empty request, a ~700-byte answer) over TLS
  with 1 and with 64 concurrent streams on one connection, and its p99 latency with 64;
- calls/s of RetrieveInventory with 100 VMs registered on the host, 64 streams;
- hostd's CPU time per small call (64 streams) as a ratio to nghttpd's per request for a
  static file of the same size as the call's DATA, over TLS, same load, same namespace;
- the change feed's fan-out on a 16-host lab (`keel lab up 16`, no cluster formed): one
  grpcio client in host1's namespace logs into all 16 hostds (198.18.0.K:8443) and follows
  one WaitForUpdates stream per host, then makes changes on the hosts in turn and times
  each change to its Update: a VM power-on/off made on the host through its local keel
  socket, not the API (feed_latency_ms_*: timed from keel's return; hostd sees vmkernel's
  pid records and inventory file change and polls at once), and a PowerOnVm call of a VM
  that does not exist (feed_task_latency_ms_*: a task added and failed on the loop, pushed
  at once; timed from the call's start). FEED_ROUNDS rounds over the 16 hosts.

The load is h2load (nghttp2-client) run inside the host's network namespace against
https://127.0.0.1:8443 (hostd's self-signed certificate; h2load does not verify), with the
session token from a grpcio Login (Debian's /usr/bin/python3 with grpcio, stubs made from
proto/vim.proto). Every run must end with all requests answered 2xx; gRPC errors come as
HTTP 200 with grpc-status in the trailers, so each method is also called once with grpcio
and once with curl (grpc-status: 0 in the trailers) with the same token.

Prints "RESULT <name> <value> <unit>" lines, comments ("# ...") with detail, progress on
stderr. KEEL_BENCH_QUICK=1 makes a smoke run with fewer requests (same result names).
`api.py feed` runs the change-feed benchmark alone, `api.py calls` the others alone."""
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
FEED_HOSTS = 16
FEED_ROUNDS = 2 if QUICK else 13         # samples per kind: FEED_ROUNDS * FEED_HOSTS
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
    """A `keel lab` of n hosts in dir; commands can run inside host1's network namespace."""

    def __init__(self, dir, n=1):
        self.dir = dir
        self.n = n
        self.info = None

    def lab(self, *args):
        return json.loads(run([KEEL, "lab", *args, "--dir", self.dir, "--json"]))

    def up(self):
        self.info = self.lab("up", str(self.n))

    def down(self):
        """keel lab down; retried for a while when keel cannot be run at the moment (a
        rebuild relinking it). True once the lab is gone."""
        deadline = time.monotonic() + 120
        while True:
            try:
                r = subprocess.run([KEEL, "lab", "down", "--dir", self.dir],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=300)
                if r.returncode == 0:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                progress(f"the lab at {self.dir} is still up: keel lab down --dir {self.dir}")
                return False
            time.sleep(1)

    def host_dir(self, k=1):
        return os.path.join(self.dir, "hosts", f"host{k}")

    def ns(self, *argv):
        """argv run inside host1's network namespace (nsenter execs it: same pid)."""
        return ["nsenter", f"--net=/run/netns/{self.info['hosts'][0]['netns']}", *argv]

    def pid(self, daemon):
        st = self.lab("status")
        return next(d["pid"] for d in st["hosts"][0]["daemons"]
                    if d["name"] == daemon and d["running"])

    def keel(self, *args, host=1):
        return run([KEEL, "--socket", os.path.join(self.host_dir(host), "vmkernel.sock"),
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


# grpcio client run in host1's namespace: argv STUBS LABDIR PASSWORD_FILE KEEL HOSTS ROUNDS.
# Logs into every host's hostd (198.18.0.K:8443, its self-signed certificate from the lab
# directory), follows one WaitForUpdates stream per host on a thread each (arrival times
# by object), then per round and host: a PowerOnVm call of a VM that does not exist (a
# task that fails at once; its first Update) and a
# power change of VM feedK through the local keel socket (the VM's Update with the new
# power state). Prints one JSON object: {"task": [ms...], "poll": [ms...], "call": [ms...]}.
FEED_CLIENT = r"""
import json, os, queue, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
import grpc, vim_pb2, vim_pb2_grpc
labdir, pw, keel = sys.argv[2], open(sys.argv[3]).read().strip(), sys.argv[4]
hosts, rounds = int(sys.argv[5]), int(sys.argv[6])

class Host:
    def __init__(self, k):
        self.k = k
        hdir = os.path.join(labdir, "hosts", "host%d" % k)
        self.sock = os.path.join(hdir, "vmkernel.sock")
        cert = open(os.path.join(hdir, "hostd.crt"), "rb").read()
        self.ch = grpc.secure_channel("198.18.0.%d:8443" % k,
                                      grpc.ssl_channel_credentials(root_certificates=cert),
                                      options=[("grpc.ssl_target_name_override", "localhost"),
                                               ("grpc.use_local_subchannel_pool", 1)])
        self.stub = vim_pb2_grpc.VimStub(self.ch)
        end = time.monotonic() + 60
        while True:
            try:
                tok = self.stub.Login(vim_pb2.LoginRequest(user="root", password=pw),
                                      timeout=20).token
                break
            except grpc.RpcError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)
        self.md = [("x-keel-session", tok)]
        self.cv = threading.Condition()
        self.tasks = {}      # task id -> first arrival
        self.power = {}      # (vm name, power state) -> last arrival
        self.error = None
        self.call = self.stub.WaitForUpdates(vim_pb2.WaitForUpdatesRequest(since_version=0),
                                             metadata=self.md)
        threading.Thread(target=self.follow, daemon=True).start()

    def follow(self):
        try:
            for u in self.call:
                now = time.monotonic()
                kind = u.WhichOneof("object")
                with self.cv:
                    if kind == "task":
                        self.tasks.setdefault(u.task.id, now)
                    elif kind == "vm" and not u.removed:
                        self.power[(u.vm.name, u.vm.power_state)] = now
                    self.cv.notify_all()
        except grpc.RpcError as e:
            with self.cv:
                self.error = "%s %s" % (e.code(), e.details())
                self.cv.notify_all()

    def wait(self, pred, what, timeout=10):
        with self.cv:
            if not self.cv.wait_for(lambda: pred() is not None or self.error, timeout):
                raise SystemExit("host%d: no update for %s" % (self.k, what))
            if self.error:
                raise SystemExit("host%d: stream ended: %s" % (self.k, self.error))
            return pred()

def keel_vm(h, *args):
    r = subprocess.run([keel, "--socket", h.sock, "--timeout", "30", "vm", *args],
                       capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise SystemExit("host%d: keel vm %s: %s" % (h.k, " ".join(args), r.stderr))

hs = [Host(k) for k in range(1, hosts + 1)]
for h in hs:  # every stream has sent the current state (the host object) first
    h.wait(lambda: h.power.get(("feed%d" % h.k, "poweredOff")), "feed%d's first state" % h.k)
out = {"task": [], "poll": [], "call": []}
for r in range(rounds):
    for h in hs:
        t0 = time.monotonic()
        t = h.stub.PowerOnVm(vim_pb2.VmRef(vm="no-such-vm"), metadata=h.md, timeout=20)
        out["call"].append((time.monotonic() - t0) * 1000)
        arrived = h.wait(lambda: h.tasks.get(t.id), t.id)
        out["task"].append((arrived - t0) * 1000)
for r in range(rounds):
    state, op = ("poweredOn", "power-on") if r % 2 == 0 else ("poweredOff", "power-off")
    for h in hs:
        name = "feed%d" % h.k
        with h.cv:
            h.power.pop((name, state), None)
        keel_vm(h, op, name)
        returned = time.monotonic()
        arrived = h.wait(lambda: h.power.get((name, state)), "%s %s" % (name, state))
        out["poll"].append((arrived - returned) * 1000)
for h in hs:
    h.call.cancel()
print(json.dumps(out))
"""


def median(values):
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def bench_feed(tmp, stubs):
    """The change feed's fan-out over a 16-host lab (module docstring). The lab is torn
    down whatever happens."""
    # The lab's directory is removed only once the lab is down (never a live lab's record).
    labdir = tempfile.mkdtemp(prefix="kbf-")
    lab = Lab(os.path.join(labdir, "lab16"), FEED_HOSTS)
    try:
        progress(f"{FEED_HOSTS}-host lab for the change feed")
        lab.up()
        for k in range(1, FEED_HOSTS + 1):
            lab.keel("vm", "create", f"feed{k}", "--memory", "64", host=k)
        n = FEED_ROUNDS * FEED_HOSTS
        # The client's keel (a plain socket client) is a copy: a rebuild relinking
        # build/bin/keel meanwhile does not make a power change fail.
        keel = os.path.join(tmp, "keel")
        shutil.copy2(KEEL, keel)
        progress(f"change feed: {n} PowerOnVm tasks and {n} power changes over "
                 f"{FEED_HOSTS} streams")
        out = json.loads(run(lab.ns(GRPC_PYTHON, "-c", FEED_CLIENT, stubs, lab.dir,
                                    lab.info["root_password_file"], keel, str(FEED_HOSTS),
                                    str(FEED_ROUNDS)), timeout=1200))
    finally:
        if lab.down():
            shutil.rmtree(labdir, ignore_errors=True)
    task, poll, call = out["task"], out["poll"], out["call"]
    note(f"change feed over {FEED_HOSTS} hosts, one WaitForUpdates stream each, one client "
         f"in host1's namespace; kind measured for feed_latency_ms_*: a VM power-on/off "
         f"made on the host (keel through vmkernel's socket, not the API), from keel's "
         f"return to the VM's Update with the new power state; {len(poll)} samples")
    result("feed_latency_ms_median", median(poll), "ms")
    result("feed_latency_ms_p99", p99(poll), "ms")
    note(f"power changes: min {min(poll):.2f} ms, max {max(poll):.2f} ms")
    result("feed_task_latency_ms_median", median(task), "ms")
    result("feed_task_latency_ms_p99", p99(task), "ms")
    note(f"task kind (a PowerOnVm task through the API, from the call's start to the "
         f"task's first Update): {len(task)} samples, min {min(task):.2f} ms, max "
         f"{max(task):.2f} ms; the call itself: median {median(call):.2f} ms, p99 "
         f"{p99(call):.2f} ms")


def main():
    want = sys.argv[1] if len(sys.argv) > 1 else "all"
    if want not in ("all", "feed", "calls"):
        sys.exit(f"bench-api: unknown part '{want}' (all, feed, calls)")
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

        if want == "feed":
            bench_feed(tmp, stubs)
            return
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
        finally:
            lab.down()
        if want == "all":
            bench_feed(tmp, stubs)


if __name__ == "__main__":
    main()
