"""HA settings through the Vim API from a third party's side (Debian's grpcio, stubs made
from proto/vim.proto alone), run inside a lab host's namespace by ha_settings.sh:

    ha_settings.py STUBS CA ROOTPW HOST PORT NAME VM_A VM_B VM_ELSEWHERE

As root: GetHaConfig lists both VMs with their priorities; SetVmHa sets VM_B's priority and
makes it restart after VM_A (the answer carries VM_A's id), refuses a bad priority word
(INVALID_ARGUMENT), an unknown VM (NOT_FOUND), the VM after itself (FAILED_PRECONDITION),
and a list without set_restart_after (INVALID_ARGUMENT); SetHaConfig refuses a bad switch
and both admission policies (INVALID_ARGUMENT) and sets and clears a percentage. A user with
the ReadOnly role reads GetHaConfig but is denied SetHaConfig and SetVmHa
(PERMISSION_DENIED), and nothing changes. Last, VM_B's settings are put back (medium, no
dependencies). VM monitoring: GetHaConfig carries it for this host's VMs (VM_A, VM_B) and
not for VM_ELSEWHERE (another host's); SetVmHa turns it on with a timeout and a reset limit,
changes one of them alone (the rest stays), refuses a bad word (INVALID_ARGUMENT) and a VM of
another host (FAILED_PRECONDITION naming that host), and turns it off again. Prints "ok" at
the end.
"""
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

CA = open(sys.argv[2], "rb").read()
ROOTPW = open(sys.argv[3]).read().strip()
HOST, PORT, NAME, VM_A, VM_B = sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
VM_ELSEWHERE = sys.argv[9]
SC = grpc.StatusCode


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return SC.OK, ""


ch = grpc.secure_channel("%s:%d" % (HOST, PORT), grpc.ssl_channel_credentials(root_certificates=CA),
                         options=[("grpc.ssl_target_name_override", NAME)])
stub = vim_pb2_grpc.VimStub(ch)
s = stub.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
md = [("x-keel-session", s.token)]


def config(meta=None):
    return stub.GetHaConfig(vim_pb2.HaConfigRequest(), metadata=meta or md, timeout=20)


def vm_of(cfg, name):
    for v in cfg.vms:
        if v.name == name:
            return v
    fail("%s not in GetHaConfig: %s" % (name, cfg))


cfg = config()
a, b = vm_of(cfg, VM_A), vm_of(cfg, VM_B)
if not cfg.enabled or not a.vm.startswith("vm-") or not b.host.startswith("host-"):
    fail("GetHaConfig: %s" % cfg)

# VM monitoring: the settings of this host's VMs only
x = vm_of(cfg, VM_ELSEWHERE)
if not a.HasField("monitoring") or a.monitoring.enabled or x.HasField("monitoring"):
    fail("monitoring in GetHaConfig: %s / %s" % (a, x))
got = stub.SetVmHa(vim_pb2.VmHaChange(vm=VM_A, monitoring="on", heartbeat_timeout_s=45,
                                      max_resets=2), metadata=md, timeout=20)
m = got.monitoring
if not m.enabled or m.heartbeat_timeout_s != 45 or m.max_resets != 2 or not m.state:
    fail("SetVmHa monitoring on: %s" % got)
got = stub.SetVmHa(vim_pb2.VmHaChange(vm=a.vm, max_resets=4), metadata=md, timeout=20)
m = got.monitoring
if not m.enabled or m.heartbeat_timeout_s != 45 or m.max_resets != 4:
    fail("SetVmHa max_resets alone: %s" % got)
m = vm_of(config(), VM_A).monitoring
if not m.enabled or m.heartbeat_timeout_s != 45 or m.max_resets != 4:
    fail("GetHaConfig after SetVmHa monitoring: %s" % m)
for req, want, text in [
        (vim_pb2.VmHaChange(vm=VM_A, monitoring="maybe"), SC.INVALID_ARGUMENT, "monitoring"),
        (vim_pb2.VmHaChange(vm=VM_A, max_resets=1000), SC.INVALID_ARGUMENT, "max_resets"),
        (vim_pb2.VmHaChange(vm=VM_ELSEWHERE, monitoring="on"), SC.FAILED_PRECONDITION,
         x.host)]:
    c, d = code_of(stub.SetVmHa, req, metadata=md, timeout=20)
    if c != want or text not in d:
        fail("SetVmHa %s: %s %s (want %s, %r)" % (req, c, d, want, text))
    print("SetVmHa refused: %s %s" % (c, d))
got = stub.SetVmHa(vim_pb2.VmHaChange(vm=VM_A, monitoring="off"), metadata=md, timeout=20)
if got.monitoring.enabled or got.monitoring.heartbeat_timeout_s != 45:
    fail("SetVmHa monitoring off: %s" % got)
print("SetVmHa: monitoring of %s on (45 s, 2 then 4 an hour) and off" % VM_A)

got = stub.SetVmHa(vim_pb2.VmHaChange(vm=VM_B, priority="highest", restart_after=[VM_A],
                                      set_restart_after=True), metadata=md, timeout=20)
if got.priority != "highest" or list(got.restart_after) != [a.vm] or got.vm != b.vm:
    fail("SetVmHa answer: %s" % got)
b2 = vm_of(config(), VM_B)
if b2.priority != "highest" or list(b2.restart_after) != [a.vm]:
    fail("GetHaConfig after SetVmHa: %s" % b2)
print("SetVmHa: %s highest after %s" % (VM_B, VM_A))

for req, want, text in [
        (vim_pb2.VmHaChange(vm=VM_B, priority="urgent"), SC.INVALID_ARGUMENT, "priority"),
        (vim_pb2.VmHaChange(vm="nosuch-vm", priority="low"), SC.NOT_FOUND, "nosuch-vm"),
        (vim_pb2.VmHaChange(vm=b.vm, restart_after=[VM_B], set_restart_after=True),
         SC.FAILED_PRECONDITION, "itself"),
        (vim_pb2.VmHaChange(vm=VM_B, restart_after=[VM_A]), SC.INVALID_ARGUMENT,
         "set_restart_after"),
        (vim_pb2.VmHaChange(vm=VM_B), SC.INVALID_ARGUMENT, "nothing to change")]:
    c, d = code_of(stub.SetVmHa, req, metadata=md, timeout=20)
    if c != want or text not in d:
        fail("SetVmHa %s: %s %s (want %s, %r)" % (req, c, d, want, text))
    print("SetVmHa refused: %s %s" % (c, d))

for req in [vim_pb2.HaConfigChange(ha="maybe"),
            vim_pb2.HaConfigChange(admission_set=True, admission_failures=1, admission_percent=5),
            vim_pb2.HaConfigChange()]:
    c, d = code_of(stub.SetHaConfig, req, metadata=md, timeout=20)
    if c != SC.INVALID_ARGUMENT:
        fail("SetHaConfig %s: %s %s" % (req, c, d))
got = stub.SetHaConfig(vim_pb2.HaConfigChange(admission_set=True, admission_percent=20),
                       metadata=md, timeout=20)
if got.admission_percent != 20 or got.admission_failures != 0 or not got.enabled:
    fail("SetHaConfig answer: %s" % got)
got = stub.SetHaConfig(vim_pb2.HaConfigChange(admission_set=True), metadata=md, timeout=20)
if got.admission_percent != 0:
    fail("SetHaConfig off: %s" % got)

# A ReadOnly user reads but does not change.
stub.ChangeUser(vim_pb2.UserChange(name="haviewer", password="viewer-pw-123"), metadata=md,
                timeout=20)
stub.ChangePermission(vim_pb2.PermissionChange(permission=vim_pb2.Permission(
    principal="haviewer", role="ReadOnly", entity="root", propagate=True)), metadata=md,
    timeout=20)
vs = None
for _ in range(50):
    try:
        vs = stub.Login(vim_pb2.LoginRequest(user="haviewer", password="viewer-pw-123"),
                        timeout=20)
        break
    except grpc.RpcError:
        time.sleep(0.2)
if vs is None:
    fail("the ReadOnly user cannot log in")
vmd = [("x-keel-session", vs.token)]
config(vmd)
c, d = code_of(stub.SetHaConfig, vim_pb2.HaConfigChange(ha="off"), metadata=vmd, timeout=20)
if c != SC.PERMISSION_DENIED:
    fail("ReadOnly SetHaConfig: %s %s" % (c, d))
c, d = code_of(stub.SetVmHa, vim_pb2.VmHaChange(vm=VM_B, priority="disabled"), metadata=vmd,
               timeout=20)
if c != SC.PERMISSION_DENIED:
    fail("ReadOnly SetVmHa: %s %s" % (c, d))
cfg = config()
if not cfg.enabled or vm_of(cfg, VM_B).priority != "highest":
    fail("the ReadOnly user changed something: %s" % cfg)
print("ReadOnly: GetHaConfig ok, SetHaConfig and SetVmHa denied")

stub.SetVmHa(vim_pb2.VmHaChange(vm=VM_B, priority="medium", set_restart_after=True),
             metadata=md, timeout=20)
print("ok")
