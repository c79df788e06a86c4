"""hostd's PowerOnVm of a VM that DRS places on another host (docs/drs.md, "Initial
placement"), from a third party's side (Debian's grpcio, stubs made from proto/vim.proto
alone), run inside the loaded host's namespace by drs_placement.sh:

    drs_placement_api.py STUBS CA ROOTPW HOST PORT NAME VM

As root on host NAME's API: the VM is on this host and powered off (RetrieveInventory);
PowerOnVm answers a Task that ends in success, its result the placement's words naming
another host of the cluster ("VM n5 placed on host2 by DRS (...): host2 powers it on");
the inventory then has the VM owned by that host at epoch 2, desired on. Prints
"placed on HOST" and "ok"; the shell checks that the VM runs exactly once there.
"""
import re
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

CA = open(sys.argv[2], "rb").read()
ROOTPW = open(sys.argv[3]).read().strip()
HOST, PORT, NAME, VM = sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7]


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


ch = grpc.secure_channel("%s:%d" % (HOST, PORT), grpc.ssl_channel_credentials(root_certificates=CA),
                         options=[("grpc.ssl_target_name_override", NAME)])
stub = vim_pb2_grpc.VimStub(ch)
s = stub.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
md = [("x-keel-session", s.token)]


def inventory():
    inv = stub.RetrieveInventory(vim_pb2.RetrieveInventoryRequest(), metadata=md, timeout=20)
    hosts = {h.id: h.name for h in inv.hosts}
    vms = [v for v in inv.vms if v.name == VM]
    if len(vms) != 1:
        fail("the inventory has %d VMs named %s" % (len(vms), VM))
    return vms[0], hosts


def wait_task(task, seconds=60):
    end = time.time() + seconds
    t = task
    while time.time() < end:
        t = stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=task.id, timeout_ms=10000),
                             metadata=md, timeout=20)
        if t.state in ("success", "error", "cancelled"):
            return t
    fail("task %s still %s after %d s" % (task.id, t.state, seconds))


v, hosts = inventory()
if hosts.get(v.host) != NAME or v.power_state != "poweredOff" or v.epoch != 1:
    fail("before: VM %s on %s (%s), %s, epoch %d" % (VM, hosts.get(v.host), v.host,
                                                     v.power_state, v.epoch))
task = stub.PowerOnVm(vim_pb2.VmRef(vm=VM), metadata=md, timeout=20)
if not task.id.startswith("task-") or task.kind != "PowerOnVm" or task.target != v.id:
    fail("PowerOnVm answered %r" % task)
t = wait_task(task)
print("%s %s %s: %s in %d ms (%s)" % (t.id, t.kind, t.target, t.state,
                                      t.completed_ms - t.queued_ms, t.error or t.result))
if t.state != "success":
    fail("PowerOnVm of %s ended %s: %s" % (VM, t.state, t.error))
m = re.fullmatch(r"VM %s placed on (host\d+) by DRS \(fully automated; registered on %s\): "
                 r"(host\d+) powers it on" % (re.escape(VM), re.escape(NAME)), t.result)
if not m or m.group(1) != m.group(2):
    fail("PowerOnVm's result does not say where %s was placed: %r" % (VM, t.result))
to = m.group(1)
if to == NAME or to not in hosts.values():
    fail("placed on %s, not another host of the cluster (%s)" % (to, sorted(hosts.values())))
if t.completed_ms < t.started_ms or t.user != "root":
    fail("task %r" % t)
v, hosts = inventory()
if hosts.get(v.host) != to or v.epoch != 2 or v.desired_power != "poweredOn":
    fail("after: VM %s on %s, epoch %d, desired %r" % (VM, hosts.get(v.host), v.epoch,
                                                        v.desired_power))
print("placed on %s" % to)
print("ok")
