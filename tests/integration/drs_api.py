"""Placement rules and DRS through the Vim API from a third party's side (Debian's grpcio,
stubs made from proto/vim.proto alone), run inside a lab host's namespace by drs_api.sh:

    drs_api.py STUBS CA ROOTPW HOST PORT NAME STEP VM_A VM_B VM_C HOST_ID

STEP "rules": as root, ListClusterRules has no rules; AddClusterRule adds "apart" (VM_A and
VM_B must run on different hosts) and answers the list holding it with both VMs as
"vm-<uuid>" and by name, 1 VM out of place; a host rule "pin" (VM_C should run on
"host-HOST_ID") is added with the host given by id; refusals change nothing: an unknown VM
(NOT_FOUND), a bad kind, a bad name, one VM in a VM-VM rule, a VM-VM rule with hosts
(INVALID_ARGUMENT), "apart" again without replace (ALREADY_EXISTS), removing an unknown
rule (NOT_FOUND); "pin" is replaced (replace) as a must rule, then removed. Prints the
rules it left ("apart") for the shell to compare with `keel cluster rule list --json`.

STEP "drs": GetDrsStatus has the default settings (manual, 3, 60 s, 300 s, 32), the rule
"apart" with one mandatory rule violated, and as the first recommendation the move of
VM_A or VM_B fixing it; SetDrsConfig sets threshold 5 and hold 0 and answers them (the rest
kept), refuses a bad automation word, a threshold of 6, an interval of 5 s and an empty
change (INVALID_ARGUMENT); ApplyDrsRecommendations of an unknown VM ends its task in error,
and of the recommended VM moves it (the task succeeds, "1 VMs moved"), after which no
mandatory rule is violated. A user with the ReadOnly role reads the rules and the status
but is denied AddClusterRule, RemoveClusterRule, SetDrsConfig and ApplyDrsRecommendations
(PERMISSION_DENIED), and nothing changed. Last, the settings are put back (threshold 3,
hold 300). Prints "moved NAME" and "ok".
"""
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

CA = open(sys.argv[2], "rb").read()
ROOTPW = open(sys.argv[3]).read().strip()
HOST, PORT, NAME, STEP = sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7]
VM_A, VM_B, VM_C, HOST_ID = sys.argv[8], sys.argv[9], sys.argv[10], sys.argv[11]
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


def rules(meta=None):
    return stub.ListClusterRules(vim_pb2.ClusterRulesRequest(), metadata=meta or md, timeout=20)


def rule_of(lst, name):
    for r in lst.rules:
        if r.name == name:
            return r
    return None


def add(name, kind, vms, hosts=(), mandatory=True, replace=False, meta=None):
    return stub.AddClusterRule(vim_pb2.AddClusterRuleRequest(
        rule=vim_pb2.ClusterRule(name=name, kind=kind, mandatory=mandatory, vms=list(vms),
                                 hosts=list(hosts)), replace=replace),
        metadata=meta or md, timeout=30)


def expect(code, fn, *a, **kw):
    c, d = code_of(fn, *a, **kw)
    if c != code:
        fail("%s: %s %s, not %s" % (getattr(fn, "_method", fn), c, d, code))
    return d


def status(meta=None):
    return stub.GetDrsStatus(vim_pb2.DrsStatusRequest(), metadata=meta or md, timeout=30)


def wait_task(task, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        t = stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=task.id, timeout_ms=10000),
                             metadata=md, timeout=20)
        if t.state in ("success", "error", "cancelled"):
            return t
    fail("task %s still %s after %d s" % (task.id, t.state, seconds))


def readonly_session():
    stub.ChangeUser(vim_pb2.UserChange(name="drsviewer", password="viewer-pw-123"), metadata=md,
                    timeout=20)
    stub.ChangePermission(vim_pb2.PermissionChange(permission=vim_pb2.Permission(
        principal="drsviewer", role="ReadOnly", entity="root", propagate=True)), metadata=md,
        timeout=20)
    for _ in range(50):
        try:
            vs = stub.Login(vim_pb2.LoginRequest(user="drsviewer", password="viewer-pw-123"),
                            timeout=20)
            return [("x-keel-session", vs.token)]
        except grpc.RpcError:
            time.sleep(0.2)
    fail("the ReadOnly user cannot log in")


def step_rules():
    if rules().rules:
        fail("rules before any was added: %s" % rules())
    got = add("apart", "anti-affinity", [VM_A, VM_B])
    r = rule_of(got, "apart")
    if (r is None or r.kind != "anti-affinity" or not r.mandatory or list(r.vm_names) != [VM_A, VM_B]
            or not all(v.startswith("vm-") and len(v) == 39 for v in r.vms) or r.violation != 1):
        fail("AddClusterRule apart answered: %s" % got)
    a_id = r.vms[0]
    # the host by its API id; VM_C by its name
    got = add("pin", "host-affinity", [VM_C], hosts=["host-%s" % HOST_ID], mandatory=False)
    p = rule_of(got, "pin")
    if p is None or p.mandatory or list(p.vm_names) != [VM_C] or len(p.hosts) != 1:
        fail("AddClusterRule pin answered: %s" % got)
    before = rules()
    d = expect(SC.NOT_FOUND, add, "ghost", "anti-affinity", [VM_A, "nosuchvm"])
    if "nosuchvm" not in d:
        fail("the unknown VM's refusal does not name it: %s" % d)
    print("unknown VM refused: %s" % d)
    expect(SC.NOT_FOUND, add, "ghost", "host-affinity", [VM_A], hosts=["host-999999"])
    expect(SC.INVALID_ARGUMENT, add, "ghost", "together", [VM_A, VM_B])
    expect(SC.INVALID_ARGUMENT, add, "bad name!", "affinity", [VM_A, VM_B])
    expect(SC.INVALID_ARGUMENT, add, "ghost", "affinity", [VM_A])
    expect(SC.INVALID_ARGUMENT, add, "ghost", "affinity", [VM_A, VM_B], hosts=[HOST_ID])
    expect(SC.INVALID_ARGUMENT, stub.AddClusterRule, vim_pb2.AddClusterRuleRequest(),
           metadata=md, timeout=20)
    d = expect(SC.ALREADY_EXISTS, add, "apart", "affinity", [a_id, VM_C])
    print("a name in use refused: %s" % d)
    expect(SC.NOT_FOUND, stub.RemoveClusterRule, vim_pb2.RemoveClusterRuleRequest(name="ghost"),
           metadata=md, timeout=20)
    if rules() != before:
        fail("a refused change changed the rules: %s" % rules())
    got = add("pin", "host-affinity", [VM_C], hosts=[HOST_ID], mandatory=True, replace=True)
    if not rule_of(got, "pin").mandatory:
        fail("the replaced rule: %s" % got)
    got = stub.RemoveClusterRule(vim_pb2.RemoveClusterRuleRequest(name="pin"), metadata=md,
                                 timeout=20)
    if rule_of(got, "pin") is not None or rule_of(got, "apart") is None:
        fail("RemoveClusterRule pin answered: %s" % got)
    print("rules: %s" % ",".join(sorted(r.name for r in rules().rules)))


def step_drs():
    st = status()
    c = st.config
    if (c.automation, c.threshold, c.interval_s, c.hold_s, c.max_moves) != ("manual", 3, 60, 300, 32):
        fail("GetDrsStatus settings: %s" % c)
    if rule_of(st, "apart") is None or st.mandatory_violated != 1 or st.hosts != 3:
        fail("GetDrsStatus: %s" % st)
    if not st.recommendations:
        fail("no recommendation with a must rule violated: %s" % st)
    first = st.recommendations[0]
    if (first.reason != "fix mandatory rule" or first.rule != "apart" or first.vm_name not in (VM_A, VM_B)
            or not first.vm.startswith("vm-") or not first.to_host.startswith("host-")):
        fail("the first recommendation: %s" % first)
    print("recommended: %s %s -> %s (%s)" % (first.vm_name, first.from_name, first.to_name, first.reason))

    got = stub.SetDrsConfig(vim_pb2.DrsConfigChange(threshold=5, hold_set=True, hold_s=0),
                            metadata=md, timeout=30)
    c = got.config
    if (c.automation, c.threshold, c.interval_s, c.hold_s, c.max_moves) != ("manual", 5, 60, 0, 32):
        fail("SetDrsConfig answered: %s" % c)
    if abs(got.target - 0.02) > 1e-9:
        fail("the target at threshold 5: %s" % got.target)
    for req in [vim_pb2.DrsConfigChange(automation="sometimes"),
                vim_pb2.DrsConfigChange(threshold=6),
                vim_pb2.DrsConfigChange(interval_s=5),
                vim_pb2.DrsConfigChange()]:
        expect(SC.INVALID_ARGUMENT, stub.SetDrsConfig, req, metadata=md, timeout=20)
    if status().config != c:
        fail("a refused SetDrsConfig changed the settings: %s" % status().config)

    vmd = readonly_session()
    rules(vmd)
    status(vmd)
    expect(SC.PERMISSION_DENIED, add, "ro", "anti-affinity", [VM_A, VM_C], meta=vmd)
    expect(SC.PERMISSION_DENIED, stub.RemoveClusterRule,
           vim_pb2.RemoveClusterRuleRequest(name="apart"), metadata=vmd, timeout=20)
    expect(SC.PERMISSION_DENIED, stub.SetDrsConfig, vim_pb2.DrsConfigChange(threshold=1),
           metadata=vmd, timeout=20)
    expect(SC.PERMISSION_DENIED, stub.ApplyDrsRecommendations, vim_pb2.ApplyDrsRequest(),
           metadata=vmd, timeout=20)
    st = status()
    if st.config.threshold != 5 or [r.name for r in st.rules] != ["apart"] or st.mandatory_violated != 1:
        fail("the ReadOnly user changed something: %s" % st)
    print("ReadOnly: ListClusterRules and GetDrsStatus ok; changes and apply denied")

    t = stub.ApplyDrsRecommendations(vim_pb2.ApplyDrsRequest(vms=["nosuchvm"]), metadata=md,
                                     timeout=20)
    t = wait_task(t)
    if t.state != "error" or "nosuchvm" not in t.error:
        fail("ApplyDrsRecommendations of an unknown VM: %s" % t)
    t = stub.ApplyDrsRecommendations(vim_pb2.ApplyDrsRequest(vms=[first.vm]), metadata=md,
                                     timeout=20)
    if t.kind != "ApplyDrsRecommendations" or t.state not in ("queued", "running"):
        fail("ApplyDrsRecommendations answered: %s" % t)
    t = wait_task(t, 180)
    if t.state != "success" or t.result != "1 VMs moved" or t.progress != 100:
        fail("ApplyDrsRecommendations task: %s" % t)
    for _ in range(60):
        st = status()
        if st.mandatory_violated == 0:
            break
        time.sleep(0.25)
    if st.mandatory_violated != 0 or rule_of(st, "apart").violation != 0:
        fail("rule apart still violated after the apply: %s" % st)
    got = stub.SetDrsConfig(vim_pb2.DrsConfigChange(threshold=3, hold_set=True, hold_s=300),
                            metadata=md, timeout=30)
    if (got.config.threshold, got.config.hold_s) != (3, 300):
        fail("SetDrsConfig back: %s" % got.config)
    print("moved %s" % first.vm_name)


if STEP == "rules":
    step_rules()
elif STEP == "drs":
    step_drs()
else:
    fail("unknown step %s" % STEP)
print("ok")
