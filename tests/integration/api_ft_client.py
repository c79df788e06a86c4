"""FT through the Vim API (docs/ft.md, "The API") from a third party's side (Debian's grpcio,
stubs made from proto/vim.proto alone), run inside a lab host's namespace by api_ft.sh:

    api_ft_client.py STUBS CA ROOTPW HOST PORT NAME STEP VM

STEP "alone" (the host is in no cluster; CA "-": hostd's self-signed certificate is
fetched and trusted as is under the name "localhost"): GetVmFt and EnableVmFt are
FAILED_PRECONDITION "this host is not in a cluster".

STEP "cluster" (a one-host cluster, VM running on it): GetVmFt of VM says "not protected"
with its owner as primary and no secondary and no figures; an unknown VM is NOT_FOUND for
every FT call, an unknown secondary host NOT_FOUND, an empty VM INVALID_ARGUMENT; a user
with the ReadOnly role reads GetVmFt but is denied the four changes (PERMISSION_DENIED) and
nothing changes. FailoverVmFt and RestartVmFtSecondary of the unprotected VM end their
tasks in error at once with clusterd's reason. EnableVmFt: the task keeps running, its
result naming the state ("needs secondary: ...", 10%), GetVmFt and RetrieveInventory's
ft_state say "needs secondary" (no second host: no secondary can be made); a second
EnableVmFt fails ("already"); RestartVmFtSecondary keeps running too, and CancelTask of it
is FAILED_PRECONDITION "cannot be cancelled". DisableVmFt: its task succeeds ("not
protected"), GetVmFt and the inventory say "not protected", and the EnableVmFt and
RestartVmFtSecondary tasks end in error ("turned off"). EnableVmFt once more, then CancelTask
of it: the task is cancelled and FT is off again. Prints "ok" at the end.
"""
import ssl
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

HOST, PORT, NAME, STEP, VM = sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
SECOND = sys.argv[9] if len(sys.argv) > 9 else ""
ROOTPW = open(sys.argv[3]).read().strip()
SC = grpc.StatusCode


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return SC.OK, ""


if sys.argv[2] == "-":
    CA, NAME = ssl.get_server_certificate((HOST, PORT)).encode(), "localhost"
else:
    CA = open(sys.argv[2], "rb").read()
ch = grpc.secure_channel("%s:%d" % (HOST, PORT), grpc.ssl_channel_credentials(root_certificates=CA),
                         options=[("grpc.ssl_target_name_override", NAME)])
stub = vim_pb2_grpc.VimStub(ch)
s = stub.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
md = [("x-keel-session", s.token)]


def name_of(fn):
    m = getattr(fn, "_method", b"?")
    return (m.decode() if isinstance(m, bytes) else str(m)).split("/")[-1]


def expect(want, text, fn, req, meta=None):
    c, d = code_of(fn, req, metadata=meta or md, timeout=20)
    if c != want or text not in d:
        fail("%s(%s): %s %r (want %s, %r)" % (name_of(fn), str(req).strip(), c, d, want, text))
    print("%s refused: %s %s" % (name_of(fn), c, d))


if STEP == "alone":
    for fn, req in [(stub.GetVmFt, vim_pb2.VmRef(vm=VM)),
                    (stub.EnableVmFt, vim_pb2.VmFtRequest(vm=VM))]:
        expect(SC.FAILED_PRECONDITION, "this host is not in a cluster", fn, req)
    print("ok")
    sys.exit(0)


def get(meta=None):
    return stub.GetVmFt(vim_pb2.VmRef(vm=VM), metadata=meta or md, timeout=20)


def inv_vm():
    inv = stub.RetrieveInventory(vim_pb2.RetrieveInventoryRequest(), metadata=md, timeout=30)
    for v in inv.vms:
        if v.name == VM:
            return v
    fail("%s not in the inventory" % VM)


def task(t):
    return stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=t.id, timeout_ms=1), metadata=md,
                            timeout=20)


def wait(t, want, text=""):
    t = stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=t.id, timeout_ms=30000), metadata=md,
                         timeout=40)
    if t.state != want or text not in (t.error if want == "error" else t.result):
        fail("task %s (%s): %s %r %r (want %s, %r)" % (t.id, t.kind, t.state, t.result, t.error,
                                                       want, text))
    print("%s %s: %s %s" % (t.id, t.kind, t.state, t.error or t.result))
    return t


def until(what, fn, seconds=20):
    end = time.time() + seconds
    while time.time() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    fail("no %s in %d s" % (what, seconds))


ft = get()
if (ft.state != "not protected" or not ft.vm.startswith("vm-") or ft.name != VM or
        not ft.primary_host.startswith("host-") or ft.secondary_host or ft.figures):
    fail("GetVmFt of a VM without FT: %s" % ft)
if STEP == "cluster" and inv_vm().ft_state != "":
    fail("ft_state of a VM whose FT was never on: %r" % inv_vm().ft_state)
print("GetVmFt: %s %s on %s" % (ft.name, ft.state, ft.primary_host))

if STEP == "pair":
    # a second host: FT protects the VM there, a test failover moves it, FT goes off
    t_en = stub.EnableVmFt(vim_pb2.VmFtRequest(vm=VM, secondary_host=SECOND), metadata=md,
                           timeout=20)
    seen, end = [], time.time() + 150
    while time.time() < end:
        t = task(t_en)
        if t.result and (not seen or seen[-1] != t.result) and t.state == "running":
            seen.append(t.result)
        if t.state != "running":
            break
        time.sleep(0.1)
    print("%s EnableVmFt went through: %s" % (t_en.id, seen))
    t = wait(t_en, "success", "protected: secondary on " + SECOND)
    if any(not (r.startswith("needs secondary") or r == "starting: secondary on " + SECOND)
           for r in seen):
        fail("EnableVmFt's task described %s" % seen)
    ft = get()
    if ft.state != "protected" or not ft.secondary_host.startswith("host-") or \
            ft.secondary_host == ft.primary_host:
        fail("GetVmFt once protected: %s" % ft)
    v = inv_vm()
    if v.ft_state != "protected" or v.ft_secondary_host != ft.secondary_host:
        fail("the inventory once protected: %s" % v)
    ft = until("the primary's figures", lambda: (lambda f: f if f.figures and f.checkpoint > 0
                                                  else None)(get()))
    if ft.phase != "protected" or not ft.epoch_ms or not ft.bytes:
        fail("the primary's figures: %s" % ft)
    print("GetVmFt: %s on %s, secondary %s, checkpoint %d, epoch %d ms, lag %d us, %d bytes" %
          (ft.state, ft.primary_host, ft.secondary_host, ft.checkpoint, ft.epoch_ms, ft.lag_us,
           ft.bytes))
    wait(stub.FailoverVmFt(vim_pb2.VmRef(vm=VM), metadata=md, timeout=20), "success",
         "runs on " + SECOND)
    after = get()
    if after.primary_host != ft.secondary_host or after.failovers != ft.failovers + 1:
        fail("GetVmFt after the failover: %s" % after)
    print("FailoverVmFt: %s runs on %s (%d failovers), FT %s" % (VM, after.primary_host,
                                                                after.failovers, after.state))
    wait(stub.DisableVmFt(vim_pb2.VmRef(vm=VM), metadata=md, timeout=20), "success",
         "not protected")
    if get().state != "not protected" or get().secondary_host:
        fail("GetVmFt after DisableVmFt: %s" % get())
    print("ok")
    sys.exit(0)

# refusals of the call itself
for fn, req in [(stub.GetVmFt, vim_pb2.VmRef(vm="nosuch-vm")),
                (stub.EnableVmFt, vim_pb2.VmFtRequest(vm="nosuch-vm")),
                (stub.DisableVmFt, vim_pb2.VmRef(vm="nosuch-vm")),
                (stub.FailoverVmFt, vim_pb2.VmRef(vm="nosuch-vm")),
                (stub.RestartVmFtSecondary, vim_pb2.VmFtRequest(vm="nosuch-vm"))]:
    expect(SC.NOT_FOUND, "nosuch-vm", fn, req)
expect(SC.NOT_FOUND, "no such host in the cluster: nohost", stub.EnableVmFt,
       vim_pb2.VmFtRequest(vm=VM, secondary_host="nohost"))
expect(SC.INVALID_ARGUMENT, "VM is required", stub.EnableVmFt, vim_pb2.VmFtRequest(vm=""))
expect(SC.INVALID_ARGUMENT, "VM is required", stub.GetVmFt, vim_pb2.VmRef())

# a ReadOnly user reads and changes nothing
stub.ChangeUser(vim_pb2.UserChange(name="ftviewer", password="viewer-pw-123"), metadata=md,
                timeout=20)
stub.ChangePermission(vim_pb2.PermissionChange(permission=vim_pb2.Permission(
    principal="ftviewer", role="ReadOnly", entity="root", propagate=True)), metadata=md,
    timeout=20)
vs = stub.Login(vim_pb2.LoginRequest(user="ftviewer", password="viewer-pw-123"), timeout=20)
vmd = [("x-keel-session", vs.token)]
if get(vmd).state != "not protected":
    fail("GetVmFt as ReadOnly: %s" % get(vmd))
for fn, req in [(stub.EnableVmFt, vim_pb2.VmFtRequest(vm=VM)),
                (stub.DisableVmFt, vim_pb2.VmRef(vm=VM)),
                (stub.FailoverVmFt, vim_pb2.VmRef(vm=ft.vm)),
                (stub.RestartVmFtSecondary, vim_pb2.VmFtRequest(vm=VM))]:
    expect(SC.PERMISSION_DENIED, "", fn, req, vmd)
time.sleep(0.5)
if get().state != "not protected" or get().generation != ft.generation:
    fail("the ReadOnly user changed FT: %s" % get())

# nothing to fail over to, no FT to restart
wait(stub.FailoverVmFt(vim_pb2.VmRef(vm=VM), metadata=md, timeout=20), "error",
     "not protected")
wait(stub.RestartVmFtSecondary(vim_pb2.VmFtRequest(vm=VM), metadata=md, timeout=20), "error",
     "FT is not on")

# EnableVmFt: no second host, so it waits for a secondary
t_en = stub.EnableVmFt(vim_pb2.VmFtRequest(vm=VM), metadata=md, timeout=20)
if t_en.kind != "EnableVmFt" or t_en.target != ft.vm:
    fail("EnableVmFt's task: %s" % t_en)
until("needs secondary in GetVmFt", lambda: get().state == "needs secondary")
until("needs secondary in the inventory", lambda: inv_vm().ft_state == "needs secondary")
if inv_vm().ft_secondary_host:
    fail("a secondary's host in the inventory: %s" % inv_vm())
got = until("the task's state in its result",
            lambda: (lambda t: t if t.result.startswith("needs secondary") else None)(task(t_en)))
if got.state != "running" or got.progress != 10:
    fail("EnableVmFt's task while no secondary can be made: %s" % got)
print("%s EnableVmFt: %s %d%% %r" % (got.id, got.state, got.progress, got.result))
wait(stub.EnableVmFt(vim_pb2.VmFtRequest(vm=VM), metadata=md, timeout=20), "error", "already")
gen = get().generation
t_rs = stub.RestartVmFtSecondary(vim_pb2.VmFtRequest(vm=VM), metadata=md, timeout=20)
until("a new generation", lambda: get().generation > gen)
expect(SC.FAILED_PRECONDITION, "cannot be cancelled", stub.CancelTask,
       vim_pb2.TaskRef(task=t_rs.id))
time.sleep(1)
for t in (t_en, t_rs):
    if task(t).state != "running":
        fail("%s ended while no secondary can be made: %s" % (t.kind, task(t)))

# DisableVmFt
wait(stub.DisableVmFt(vim_pb2.VmRef(vm=VM), metadata=md, timeout=20), "success", "not protected")
if get().state != "not protected" or inv_vm().ft_state != "not protected":
    fail("after DisableVmFt: %s / %r" % (get(), inv_vm().ft_state))
wait(t_en, "error", "turned off")
wait(t_rs, "error", "turned off")

# EnableVmFt taken back by CancelTask
t_en = stub.EnableVmFt(vim_pb2.VmFtRequest(vm=ft.vm), metadata=md, timeout=20)
until("needs secondary again", lambda: get().state == "needs secondary")
got = stub.CancelTask(vim_pb2.TaskRef(task=t_en.id), metadata=md, timeout=20)
if got.state != "cancelled" or "cancelled by root" not in got.error:
    fail("CancelTask of EnableVmFt: %s" % got)
print("%s EnableVmFt: %s %s" % (got.id, got.state, got.error))
until("not protected after the cancel", lambda: get().state == "not protected")
print("ok")
