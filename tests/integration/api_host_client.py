"""Host configuration and the VM console through the Vim API, from a third party's side:
Debian's grpcio with stubs made from proto/vim.proto alone. Run inside a lab host's
network namespace:

    api_host_client.py STUBS ROOTPW HOST PORT PHASE [VM]

PHASE "config": GetHostConfig answers this host (the lab's vmk0 carries the Management
tag), refuses another host's name with FAILED_PRECONDITION naming it; ChangeDatastore with
a relative path is INVALID_ARGUMENT; a user with the ReadOnly role reads the configuration
but is denied ChangeDatastore and SetMaintenance (PERMISSION_DENIED), and changes nothing.

PHASE "console" VM LOG (VM powered on, a kguest; LOG its console log file): Console
without follow returns the log's end (non-empty, with kguest's "kguest: up" line) and ends
OK; tail_bytes past 1 MiB is INVALID_ARGUMENT; an unknown VM is NOT_FOUND; with follow a
stream started at the end of the log (tail_bytes 1) receives counter lines written after it
began; cancelling that stream leaves hostd answering, and a second follow stream cancelled
at once too. Backpressure: 4 MiB appended to the log while a follow stream's client (HTTP/2
window not grown: BDP probing off) does not read for 3 s all arrive, in order, once it reads
again — hostd's send queue (1 MiB) fills and drains on the way.
Prints "ok" at the end.
"""
import re
import ssl
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

ROOTPW = open(sys.argv[2]).read().strip()
HOST, PORT = sys.argv[3], int(sys.argv[4])
PHASE = sys.argv[5]
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


def wait(task):
    return stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=task.id, timeout_ms=30000),
                            metadata=md, timeout=40)


def phase_config():
    hc = stub.GetHostConfig(vim_pb2.HostConfigRequest(), metadata=md, timeout=20)
    print("host %s: %d vmknics, %d portgroups, %d datastores, maintenance %s" % (
        hc.host, len(hc.vmknics), len(hc.portgroups), len(hc.datastores), hc.maintenance))
    if not hc.host.startswith("host-"):
        fail("host %r" % hc.host)
    if not any(p.portgroup == "Management Network" for p in hc.portgroups):
        fail("no Management Network portgroup: %r" % hc)
    nics = {n.name: n for n in hc.vmknics}
    if "vmk0" in nics and "Management" not in nics["vmk0"].tags:
        fail("vmk0 without its Management tag: %r" % nics["vmk0"])
    if "vmk0" in nics and not re.match(r"^198\.18\.\d+\.\d+/\d+$", nics["vmk0"].ipv4):
        fail("vmk0's address %r" % nics["vmk0"].ipv4)
    same = stub.GetHostConfig(vim_pb2.HostConfigRequest(host=hc.host), metadata=md, timeout=20)
    if same.host != hc.host:
        fail("GetHostConfig(%s) answered %s" % (hc.host, same.host))
    c, d = code_of(stub.GetHostConfig, vim_pb2.HostConfigRequest(host="elsewhere7"),
                   metadata=md, timeout=20)
    if c != SC.FAILED_PRECONDITION or "elsewhere7" not in d:
        fail("another host's config: %s %s" % (c, d))
    c, d = code_of(stub.ChangeDatastore, vim_pb2.DatastoreChange(name="rel", path="rel/dir"),
                   metadata=md, timeout=20)
    if c != SC.INVALID_ARGUMENT or "absolute" not in d:
        fail("relative datastore path: %s %s" % (c, d))

    # A ReadOnly user reads but does not change.
    stub.ChangeUser(vim_pb2.UserChange(name="viewer", password="viewer-pw-123"),
                    metadata=md, timeout=20)
    stub.ChangePermission(vim_pb2.PermissionChange(permission=vim_pb2.Permission(
        principal="viewer", role="ReadOnly", entity="root", propagate=True)),
        metadata=md, timeout=20)
    vs = stub.Login(vim_pb2.LoginRequest(user="viewer", password="viewer-pw-123"), timeout=20)
    vmd = [("x-keel-session", vs.token)]
    stub.GetHostConfig(vim_pb2.HostConfigRequest(), metadata=vmd, timeout=20)
    c, d = code_of(stub.ChangeDatastore,
                   vim_pb2.DatastoreChange(name="viewerds", path="/tmp"), metadata=vmd,
                   timeout=20)
    if c != SC.PERMISSION_DENIED:
        fail("ReadOnly ChangeDatastore: %s %s" % (c, d))
    print("ReadOnly ChangeDatastore: %s %s" % (c, d))
    c, d = code_of(stub.SetMaintenance, vim_pb2.MaintenanceRequest(enter=True),
                   metadata=vmd, timeout=20)
    if c != SC.PERMISSION_DENIED:
        fail("ReadOnly SetMaintenance: %s %s" % (c, d))
    after = stub.GetHostConfig(vim_pb2.HostConfigRequest(), metadata=md, timeout=20)
    if any(x.name == "viewerds" for x in after.datastores) or after.maintenance:
        fail("a refused change happened: %r" % after)


def counters(text):
    return [int(n) for n in re.findall(rb"kguest: counter (\d+)", text)]


def phase_console(vm):
    data = b"".join(c.data for c in stub.Console(
        vim_pb2.ConsoleRequest(vm=vm, tail_bytes=65536), metadata=md, timeout=20))
    print("tail: %d bytes" % len(data))
    if b"kguest: up" not in data:
        fail("no 'kguest: up' in the console's end: %r" % data[-400:])
    c, d = code_of(lambda: list(stub.Console(vim_pb2.ConsoleRequest(vm=vm, tail_bytes=2 << 20),
                                             metadata=md, timeout=20)))
    if c != SC.INVALID_ARGUMENT:
        fail("tail_bytes 2 MiB: %s %s" % (c, d))
    c, d = code_of(lambda: list(stub.Console(vim_pb2.ConsoleRequest(vm="no-such-vm"),
                                             metadata=md, timeout=20)))
    if c != SC.NOT_FOUND or "no-such-vm" not in d:
        fail("unknown VM: %s %s" % (c, d))

    # Follow from the end: every counter line seen was written after the stream began.
    before = max(counters(data) or [-1])
    stream = stub.Console(vim_pb2.ConsoleRequest(vm=vm, tail_bytes=1, follow=True),
                          metadata=md, timeout=60)
    got, deadline = b"", time.time() + 20
    for chunk in stream:
        got += chunk.data
        if len(counters(got)) >= 2 or time.time() > deadline:
            break
    stream.cancel()
    new = counters(got)
    print("followed: %d bytes, counters %s (last before: %d)" % (len(got), new[:5], before))
    if len(new) < 2 or min(new) <= before:
        fail("follow did not bring new counter lines: %r" % got[-300:])
    # A stream cancelled at once, then hostd still answers.
    s2 = stub.Console(vim_pb2.ConsoleRequest(vm=vm, follow=True), metadata=md, timeout=60)
    s2.cancel()
    time.sleep(0.5)
    stub.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=md, timeout=10)
    hc = stub.GetHostConfig(vim_pb2.HostConfigRequest(), metadata=md, timeout=10)
    print("after cancel: host %s answers" % hc.host)


def phase_backpressure(vm, log):
    slow = grpc.secure_channel("%s:%d" % (HOST, PORT),
                               grpc.ssl_channel_credentials(root_certificates=cert),
                               options=[("grpc.ssl_target_name_override", "localhost"),
                                        ("grpc.http2.bdp_probe", 0)])
    sstub = vim_pb2_grpc.VimStub(slow)
    stream = sstub.Console(vim_pb2.ConsoleRequest(vm=vm, tail_bytes=1, follow=True),
                           metadata=md, timeout=90)
    next(stream)  # the stream is open: the last byte of the log came
    lines = 65536
    with open(log, "ab") as f:
        f.write(b"".join(b"bulk %08d %s\n" % (i, b"x" * 49) for i in range(lines)))
    time.sleep(3)  # not reading: the window closes, hostd's queue fills
    got, seen, deadline = b"", [], time.time() + 60
    for chunk in stream:
        got += chunk.data
        if got.count(b"\n") and b"bulk %08d" % (lines - 1) in got:
            break
        if time.time() > deadline:
            break
    stream.cancel()
    seen = [int(n) for n in re.findall(rb"bulk (\d{8}) x{49}\n", got)]
    print("backpressure: %d bytes, %d bulk lines" % (len(got), len(seen)))
    if seen != list(range(lines)):
        fail("bulk lines lost or out of order: %d of %d" % (len(seen), lines))
    stub.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=md, timeout=10)


if PHASE == "config":
    phase_config()
elif PHASE == "console":
    phase_console(sys.argv[6])
    phase_backpressure(sys.argv[6], sys.argv[7])
else:
    fail("unknown phase %s" % PHASE)
print("ok")
