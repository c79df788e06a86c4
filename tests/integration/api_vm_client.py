"""VM operations and tasks through the Vim API, from a third party's side: Debian's grpcio
with stubs made from proto/vim.proto alone. Run inside a lab host's network namespace:

    api_vm_client.py STUBS ROOTPW HOST PORT

The host is alone (no cluster), so hostd's certificate is self-signed: it is fetched with
ssl.get_server_certificate and trusted as is, under the name "localhost". Creates a kguest
VM, powers it on and off, lists the tasks, checks a user without privileges is refused,
MigrateVm's clear error, the cancel rule, and destroys the VM. Prints "ok" at the end.
"""
import ssl
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

ROOTPW = open(sys.argv[2]).read().strip()
HOST, PORT = sys.argv[3], int(sys.argv[4])
VM = "apivm"


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


cert = ssl.get_server_certificate((HOST, PORT)).encode()
ch = grpc.secure_channel("%s:%d" % (HOST, PORT),
                         grpc.ssl_channel_credentials(root_certificates=cert),
                         options=[("grpc.ssl_target_name_override", "localhost")])
stub = vim_pb2_grpc.VimStub(ch)
s = stub.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
md = [("x-keel-session", s.token)]


def wait(task, want="success"):
    if task.state not in ("queued", "running", "success", "error"):
        fail("task %s state %r" % (task.id, task.state))
    t = stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=task.id, timeout_ms=30000),
                         metadata=md, timeout=40)
    print("%s %s %s %s: %s%s" % (t.id, t.kind, t.target, t.user, t.state,
                                 " (" + (t.error or t.result) + ")" if t.error or t.result else ""))
    if t.state != want:
        fail("%s %s ended %s (%s), want %s" % (t.id, t.kind, t.state, t.error, want))
    if t.completed_ms < t.queued_ms or t.user != "root":
        fail("task %r" % t)
    return t


def inventory_vm():
    inv = stub.RetrieveInventory(vim_pb2.RetrieveInventoryRequest(), metadata=md, timeout=20)
    vms = [v for v in inv.vms if v.name == VM]
    return vms[0] if vms else None


# a call without a session is refused before anything runs
c, _ = code_of(stub.PowerOnVm, vim_pb2.VmRef(vm=VM), timeout=10)
if c != grpc.StatusCode.UNAUTHENTICATED:
    fail("PowerOnVm without a session: %s" % c)

spec = vim_pb2.VmSpec(name=VM, memory_mib=64, guest_kind="kguest", cmdline="counter_ms=500")
t0 = stub.CreateVm(vim_pb2.CreateVmRequest(spec=spec), metadata=md, timeout=20)
if not t0.id.startswith("task-") or t0.kind != "CreateVm":
    fail("CreateVm answered %r" % t0)
created = wait(t0)
vmid = created.result
if not vmid.startswith("vm-"):
    fail("CreateVm result %r" % vmid)
v = inventory_vm()
if not v or v.id != vmid or v.power_state != "poweredOff" or v.memory_mib != 64:
    fail("inventory after CreateVm: %r" % v)

t1 = wait(stub.PowerOnVm(vim_pb2.VmRef(vm=VM), metadata=md, timeout=20))
if t1.target != vmid or t1.result != "poweredOn":
    fail("PowerOnVm task %r" % t1)
v = inventory_vm()
if v.power_state != "poweredOn":
    fail("inventory after PowerOnVm: %r" % v.power_state)
# vmkernel's refusal becomes the task's error
t = wait(stub.ReconfigureVm(vim_pb2.ReconfigureVmRequest(vm=vmid, spec=vim_pb2.VmSpec(vcpus=2)),
                            metadata=md, timeout=20), "error")
if "powered off" not in t.error:
    fail("ReconfigureVm of a running VM: %r" % t.error)

# a user without privileges
c, d = code_of(stub.ChangeUser, vim_pb2.UserChange(name="nobody", password="nobody-pw-123"),
               metadata=md, timeout=20)
if c == grpc.StatusCode.UNIMPLEMENTED:
    print("SKIP part: ChangeUser is not implemented, no unprivileged user")
elif c != grpc.StatusCode.OK:
    fail("ChangeUser: %s %s" % (c, d))
else:
    s2 = stub.Login(vim_pb2.LoginRequest(user="nobody", password="nobody-pw-123"), timeout=20)
    md2 = [("x-keel-session", s2.token)]
    for name, call, rq in (("PowerOffVm", stub.PowerOffVm, vim_pb2.VmRef(vm=VM)),
                           ("DestroyVm", stub.DestroyVm, vim_pb2.VmRef(vm=vmid)),
                           ("CreateVm", stub.CreateVm, vim_pb2.CreateVmRequest(spec=spec)),
                           ("PowerOnVm(unknown)", stub.PowerOnVm, vim_pb2.VmRef(vm="nosuch"))):
        c, d = code_of(call, rq, metadata=md2, timeout=20)
        print("nobody %s: %s %s" % (name, c, d))
        if c != grpc.StatusCode.PERMISSION_DENIED:
            fail("nobody's %s: %s %s" % (name, c, d))
    if inventory_vm().power_state != "poweredOn":
        fail("a refused PowerOffVm changed the VM")

t2 = wait(stub.PowerOffVm(vim_pb2.VmRef(vm=vmid), metadata=md, timeout=20))
if inventory_vm().power_state != "poweredOff":
    fail("inventory after PowerOffVm")

try:
    stub.MigrateVm(vim_pb2.MigrateVmRequest(vm=vmid, to_host="host-2"), metadata=md, timeout=20)
    fail("MigrateVm on a host in no cluster answered with a task")
except grpc.RpcError as e:
    if e.code() != grpc.StatusCode.FAILED_PRECONDITION or "not in a cluster" not in e.details():
        fail("MigrateVm: %s %r" % (e.code(), e.details()))
if any(x.kind == "MigrateVm" for x in stub.ListTasks(vim_pb2.ListTasksRequest(),
                                                    metadata=md, timeout=20).tasks):
    fail("MigrateVm left a task behind")
t = wait(stub.PowerOnVm(vim_pb2.VmRef(vm="nosuch"), metadata=md, timeout=20), "error")
if "not found on this host" not in t.error:
    fail("PowerOnVm of an unknown VM: %r" % t.error)

tl = stub.ListTasks(vim_pb2.ListTasksRequest(recent_only=True), metadata=md, timeout=20)
kinds = {x.id: (x.kind, x.state) for x in tl.tasks}
for t, kind in ((created, "CreateVm"), (t1, "PowerOnVm"), (t2, "PowerOffVm")):
    if kinds.get(t.id) != (kind, "success"):
        fail("ListTasks: %s is %r" % (t.id, kinds.get(t.id)))
print("tasks:", len(tl.tasks))

c, d = code_of(stub.CancelTask, vim_pb2.TaskRef(task=t2.id), metadata=md, timeout=10)
if c != grpc.StatusCode.FAILED_PRECONDITION or "cannot be cancelled" not in d:
    fail("CancelTask of a finished task: %s %s" % (c, d))
c, d = code_of(stub.WaitForTask, vim_pb2.WaitForTaskRequest(task="task-999999"), metadata=md,
               timeout=10)
if c != grpc.StatusCode.NOT_FOUND:
    fail("WaitForTask of an unknown task: %s %s" % (c, d))
# a short WaitForTask on a running task answers with its state at the timeout: power on
# again and wait 1 ms
t = stub.PowerOnVm(vim_pb2.VmRef(vm=vmid), metadata=md, timeout=20)
w = stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=t.id, timeout_ms=1), metadata=md,
                     timeout=10)
if w.id != t.id:
    fail("WaitForTask answered %r" % w)
wait(t)
wait(stub.PowerOffVm(vim_pb2.VmRef(vm=vmid), metadata=md, timeout=20))

wait(stub.DestroyVm(vim_pb2.VmRef(vm=vmid), metadata=md, timeout=20))
if inventory_vm() is not None:
    fail("the VM is still in the inventory after DestroyVm")
stub.Logout(vim_pb2.LogoutRequest(), metadata=md, timeout=10)
print("ok")
