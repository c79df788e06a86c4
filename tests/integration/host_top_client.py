"""QueryPerf (docs/top.md) from a third party's side: Debian's grpcio with stubs made from
proto/vim.proto alone. Run inside a lab host's network namespace:

    host_top_client.py STUBS ROOTPW HOST PORT VM

VM is a powered-on kguest VM of that host doing port I/O. As root: the first call answers
with the host's figures and the VM's row (CPU used, exits per second with port I/O, its
vCPU, guest memory), the second (after 1 s) with rates over the time in between; with vm
set only that VM's row. Refused: a window of 50 ms (INVALID_ARGUMENT), an unknown VM
(NOT_FOUND), no session (UNAUTHENTICATED), a user with no permission (PERMISSION_DENIED).
Prints "ok" at the end.
"""
import sys
import ssl
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

ROOTPW = open(sys.argv[2]).read().strip()
HOST, PORT, VM = sys.argv[3], int(sys.argv[4]), sys.argv[5]
SC = grpc.StatusCode


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return SC.OK, ""


cert = ssl.get_server_certificate((HOST, PORT)).encode()
ch = grpc.secure_channel("%s:%d" % (HOST, PORT),
                         grpc.ssl_channel_credentials(root_certificates=cert),
                         options=[("grpc.ssl_target_name_override", "localhost")])
stub = vim_pb2_grpc.VimStub(ch)
s = stub.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
md = [("x-keel-session", s.token)]

r = stub.QueryPerf(vim_pb2.PerfRequest(window_ms=500), metadata=md, timeout=30)
if r.cpus < 1 or r.mem_bytes == 0 or not r.hostname:
    fail("host figures: %s" % r)
names = [w.name for w in r.worlds]
if VM not in names or "vmkernel" not in names:
    fail("worlds: %s" % names)
if [w.cpu_used_pct for w in r.worlds] != sorted([w.cpu_used_pct for w in r.worlds], reverse=True):
    fail("not sorted by CPU: %s" % [(w.name, w.cpu_used_pct) for w in r.worlds])
time.sleep(1)
r = stub.QueryPerf(vim_pb2.PerfRequest(vm=VM), metadata=md, timeout=30)
if [w.name for w in r.worlds] != [VM]:
    fail("vm=%s: %s" % (VM, [w.name for w in r.worlds]))
w = r.worlds[0]
if r.interval_ms < 900:
    fail("interval %d ms after sleeping 1 s" % r.interval_ms)
if w.kind != "vm" or w.pid == 0 or w.cpu_used_pct <= 0 or w.exits_s <= 0 or w.exits_io_s <= 0:
    fail("VM row: %s" % w)
if len(w.vcpus) != 1 or w.mem_size != 64 << 20 or w.rss_bytes == 0:
    fail("VM row: %s" % w)
print("QueryPerf: %s used %.1f%% ready %.1f%% exits %.0f/s over %d ms"
      % (w.name, w.cpu_used_pct, w.cpu_ready_pct, w.exits_s, r.interval_ms))

c, d = code_of(stub.QueryPerf, vim_pb2.PerfRequest(window_ms=50), metadata=md, timeout=20)
if c != SC.INVALID_ARGUMENT:
    fail("window 50: %s %s" % (c, d))
c, d = code_of(stub.QueryPerf, vim_pb2.PerfRequest(vm="nosuchvm"), metadata=md, timeout=20)
if c != SC.NOT_FOUND or "nosuchvm" not in d:
    fail("unknown VM: %s %s" % (c, d))
c, d = code_of(stub.QueryPerf, vim_pb2.PerfRequest(), timeout=20)
if c != SC.UNAUTHENTICATED:
    fail("no session: %s %s" % (c, d))
stub.ChangeUser(vim_pb2.UserChange(name="perfnobody", password="perf-pw-12345"),
                metadata=md, timeout=20)
ns = stub.Login(vim_pb2.LoginRequest(user="perfnobody", password="perf-pw-12345"), timeout=20)
c, d = code_of(stub.QueryPerf, vim_pb2.PerfRequest(),
               metadata=[("x-keel-session", ns.token)], timeout=20)
if c != SC.PERMISSION_DENIED:
    fail("user without permission: %s %s" % (c, d))
print("ok")
