"""api_users_cluster.sh's client: users replicated through the cluster, from Debian's grpcio
(stubs from proto/vim.proto alone) and clusterd's control socket (stubs from
proto/cluster.proto, frames of lib/frame.h: a 4-byte big-endian length, then the message).
Run inside host1's network namespace (the hosts are 198.18.0.1..3, hostd on port 8443):

    api_users_cluster.py STUBS CA ROOTPW LABDIR PHASE

Phases:
  replicate   root adds user auditor (ReadOnly on root) on host1; within 10 s auditor logs
              in on host2 and host3, reads the users there and is refused a change
              (PERMISSION_DENIED); root makes it Admin on host3, and within 10 s auditor may
              change roles on host1; root removes it on host2, and within 10 s its login is
              refused on every host
  concurrent  root changes users on host1 and host2 at the same time, 10 rounds: each call
              succeeds or is ABORTED with "changed on another host at the same time; retry";
              afterwards every host lists the same users
  stale       ClusterAuthSet with an old expect_version on host3's clusterd (a follower or
              the leader): refused -ESTALE with a clear error; ClusterAuthGet on each host
              answers the same version
  maintenance ClusterMaintenance of host2 through host3's clusterd: host2 shows maintenance
              true on every host, the event "host host2 entered maintenance mode"; then
              leaves it again
Prints one "ok ..." line per check; the first failing check exits 1.
"""
import errno
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import cluster_pb2 as cpb  # noqa: E402
import vim_pb2 as pb  # noqa: E402
import vim_pb2_grpc  # noqa: E402

CA = open(sys.argv[2], "rb").read()
ROOTPW = open(sys.argv[3]).read().strip()
LAB = sys.argv[4]
PHASE = sys.argv[5]
HOSTS = {1: "198.18.0.1", 2: "198.18.0.2", 3: "198.18.0.3"}
SC = grpc.StatusCode
AUD_PW = "auditor-password-1"


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def stub(h):
    ch = grpc.secure_channel("%s:8443" % HOSTS[h], grpc.ssl_channel_credentials(root_certificates=CA),
                             options=[("grpc.ssl_target_name_override", "host%d" % h)])
    return vim_pb2_grpc.VimStub(ch)


S = {h: stub(h) for h in HOSTS}


def login(h, user, pw):
    s = S[h].Login(pb.LoginRequest(user=user, password=pw), timeout=20)
    return [("x-keel-session", s.token)]


def call(fn, req, md):
    try:
        return SC.OK, "", fn(req, metadata=md, timeout=20)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


def until(what, fn, secs=10):
    end = time.time() + secs
    last = None
    while time.time() < end:
        try:
            r = fn()
            if r:
                print("ok", what)
                return r
        except grpc.RpcError as e:
            last = "%s %s" % (e.code(), e.details())
        time.sleep(0.2)
    fail("%s: not within %d s (last: %s)" % (what, secs, last))


def login_refused(h, user, pw):
    try:
        login(h, user, pw)
    except grpc.RpcError as e:
        return e.code() == SC.UNAUTHENTICATED
    return False


def perm(principal, role):
    return pb.PermissionChange(permission=pb.Permission(principal=principal, role=role,
                                                        entity="root", propagate=True))


def users(h, md):
    return sorted(u.name for u in S[h].ListUsers(pb.Empty(), metadata=md, timeout=20).users)


# ---- clusterd's control socket ---------------------------------------------------------------

def ctl(h, rq):
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.settimeout(30)
    sk.connect("%s/hosts/host%d/clusterd.sock" % (LAB, h))
    b = rq.SerializeToString()
    sk.sendall(struct.pack(">I", len(b)) + b)

    def read(n):
        out = b""
        while len(out) < n:
            c = sk.recv(n - len(out))
            if not c:
                fail("clusterd closed the control socket")
            out += c
        return out
    n = struct.unpack(">I", read(4))[0]
    rp = cpb.ClusterReply()
    rp.ParseFromString(read(n))
    sk.close()
    return rp


def status(h):
    rp = ctl(h, cpb.ClusterRequest(status=cpb.ClusterStatusRequest()))
    if rp.code:
        fail("status on host%d: %d %s" % (h, rp.code, rp.error))
    return rp.status


def maint_of(h, name):
    return [x.maintenance for x in status(h).hosts if x.name == name][0]


# ---- phases --------------------------------------------------------------------------------

if PHASE == "replicate":
    root1 = login(1, "root", ROOTPW)
    c = call(S[1].ChangeUser, pb.UserChange(name="auditor", password=AUD_PW,
                                            description="Audits"), root1)
    if c[0] != SC.OK:
        fail("add auditor on host1: %s %s" % c[:2])
    c = call(S[1].ChangePermission, perm("auditor", "ReadOnly"), root1)
    if c[0] != SC.OK:
        fail("auditor ReadOnly on host1: %s %s" % c[:2])
    print("ok auditor added on host1 with ReadOnly")
    for h in (2, 3):
        # Wait for the replica with root's session (failed logins would count against the
        # source's rate limit), then log in once.
        rooth = login(h, "root", ROOTPW)
        until("host%d has auditor" % h, lambda h=h, rooth=rooth: "auditor" in users(h, rooth))
        md = login(h, "auditor", AUD_PW)
        print("ok auditor logs in on host%d" % h)
        until("auditor reads the users on host%d" % h,
              lambda h=h, md=md: "auditor" in users(h, md))
        c = call(S[h].ChangeUser, pb.UserChange(name="intruder", password="intruder-pw-1"), md)
        if c[0] != SC.PERMISSION_DENIED:
            fail("a change by ReadOnly auditor on host%d: %s %s" % (h, c[0], c[1]))
        print("ok a change by auditor on host%d is refused:" % h, c[1])
    root3 = login(3, "root", ROOTPW)
    c = call(S[3].ChangePermission, perm("auditor", "Admin"), root3)
    if c[0] != SC.OK:
        fail("auditor Admin on host3: %s %s" % c[:2])
    md1 = login(1, "auditor", AUD_PW)

    def admin_on_host1():
        c = call(S[1].ChangeRole, pb.RoleChange(role=pb.Role(
            name="probe", privileges=["VirtualMachine.Interact.PowerOn"])), md1)
        return c[0] == SC.OK
    until("auditor's Admin (given on host3) works on host1", admin_on_host1)
    root2 = login(2, "root", ROOTPW)
    # A change on host2 before host2 has the role made on host1 would be ABORTED (the
    # concurrent phase checks that): wait for it first, as an operator retrying would.
    until("host2 has the role made on host1", lambda: "probe" in [
        r.name for r in S[2].ListRoles(pb.Empty(), metadata=root2, timeout=20).roles])
    c = call(S[2].ChangeUser, pb.UserChange(name="auditor", remove=True), root2)
    if c[0] != SC.OK:
        fail("remove auditor on host2: %s %s" % c[:2])
    for h in (1, 2, 3):
        rooth = login(h, "root", ROOTPW)
        until("host%d no longer has auditor" % h,
              lambda h=h, rooth=rooth: "auditor" not in users(h, rooth))
        if not login_refused(h, "auditor", AUD_PW):
            fail("auditor still logs in on host%d" % h)
        print("ok auditor's login refused on host%d" % h)
    # The session auditor had on host1 ended with the user.
    c = call(S[1].ListUsers, pb.Empty(), md1)
    if c[0] != SC.UNAUTHENTICATED:
        fail("auditor's old session on host1: %s %s" % c[:2])
    print("ok auditor's session on host1 ended")

elif PHASE == "concurrent":
    roots = {h: login(h, "root", ROOTPW) for h in (1, 2)}
    outcomes = {"ok": 0, "aborted": 0}
    bad = []
    for rnd in range(10):
        res = {}

        def change(h, rnd=rnd):
            res[h] = call(S[h].ChangeUser, pb.UserChange(
                name="u%d-%d" % (h, rnd), password="concurrent-pw-%d" % rnd), roots[h])
        ts = [threading.Thread(target=change, args=(h,)) for h in (1, 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for h, r in res.items():
            if r[0] == SC.OK:
                outcomes["ok"] += 1
            elif r[0] == SC.ABORTED and "changed on another host at the same time; retry" in r[1]:
                outcomes["aborted"] += 1
            else:
                bad.append((h, r[0], r[1]))
        time.sleep(0.3)
    if bad:
        fail("concurrent changes: unexpected outcomes %r" % bad)
    if outcomes["ok"] == 0:
        fail("no concurrent change succeeded")
    print("ok concurrent changes:", outcomes)
    mds = {h: login(h, "root", ROOTPW) for h in HOSTS}

    def converged():
        lists = [users(h, mds[h]) for h in HOSTS]
        return lists[0] if lists[0] == lists[1] == lists[2] else None
    final = until("every host lists the same users", converged, 15)
    made = [u for u in final if u.startswith("u")]
    if len(made) != outcomes["ok"]:
        fail("%d changes succeeded but %d users exist: %r" % (outcomes["ok"], len(made), final))
    print("ok the users that exist are exactly the changes that succeeded:", made)

elif PHASE == "stale":
    got = [ctl(h, cpb.ClusterRequest(auth_get=cpb.ClusterAuthGet())) for h in HOSTS]
    for h, rp in zip(HOSTS, got):
        if rp.code or not rp.member or not rp.HasField("auth") or rp.auth.version == 0:
            fail("auth-get on host%d: %d %s member=%s" % (h, rp.code, rp.error, rp.member))
    v = got[0].auth.version
    until("every host holds version %d" % v, lambda: all(
        ctl(h, cpb.ClusterRequest(auth_get=cpb.ClusterAuthGet())).auth.version == v
        for h in HOSTS))
    if b"auditor-password" in got[0].auth.blob:
        fail("a password in the store")
    rp = ctl(3, cpb.ClusterRequest(auth_set=cpb.ClusterAuthSet(expect_version=v - 1,
                                                               blob=got[0].auth.blob)))
    if rp.code != -errno.ESTALE or "changed meanwhile" not in rp.error:
        fail("stale auth-set: %d %r" % (rp.code, rp.error))
    print("ok a stale auth-set is refused:", rp.error)
    rp = ctl(3, cpb.ClusterRequest(auth_set=cpb.ClusterAuthSet(expect_version=v, blob=b"")))
    if rp.code != -errno.EINVAL:
        fail("empty auth-set: %d %r" % (rp.code, rp.error))
    print("ok an empty auth-set is refused:", rp.error)
    # The same store again, from the right version: applied as version v + 1, and every
    # hostd takes it (nothing changes for its users).
    rp = ctl(3, cpb.ClusterRequest(auth_set=cpb.ClusterAuthSet(expect_version=v,
                                                               blob=got[0].auth.blob)))
    if rp.code or rp.auth.version != v + 1:
        fail("auth-set from version %d: %d %r %r" % (v, rp.code, rp.error, rp.auth))
    print("ok auth-set from host3 applied as version", rp.auth.version)
    until("every host holds version %d" % (v + 1), lambda: all(
        ctl(h, cpb.ClusterRequest(auth_get=cpb.ClusterAuthGet())).auth.version == v + 1
        for h in HOSTS))

elif PHASE == "maintenance":
    for h in HOSTS:
        if any(x.maintenance for x in status(h).hosts):
            fail("a host is in maintenance mode on host%d" % h)
    rp = ctl(3, cpb.ClusterRequest(maintenance=cpb.ClusterMaintenance(host="host2", enter=True)))
    if rp.code:
        fail("maintenance enter: %d %s" % (rp.code, rp.error))
    print("ok host2 enters maintenance mode through host3")
    for h in HOSTS:
        until("host%d sees host2 in maintenance mode" % h, lambda h=h: maint_of(h, "host2"))
    if maint_of(1, "host1") or maint_of(1, "host3"):
        fail("other hosts in maintenance mode")
    rp = ctl(1, cpb.ClusterRequest(maintenance=cpb.ClusterMaintenance(host="nosuch", enter=True)))
    if rp.code == 0 or "no such host" not in rp.error:
        fail("maintenance of an unknown host: %d %r" % (rp.code, rp.error))
    print("ok maintenance of an unknown host refused:", rp.error)
    rp = ctl(2, cpb.ClusterRequest(maintenance=cpb.ClusterMaintenance(host="", enter=False)))
    if rp.code:
        fail("maintenance exit: %d %s" % (rp.code, rp.error))
    for h in HOSTS:
        until("host%d sees host2 out of maintenance mode" % h,
              lambda h=h: not maint_of(h, "host2"))
else:
    fail("unknown phase %s" % PHASE)
print("PASS", PHASE)
