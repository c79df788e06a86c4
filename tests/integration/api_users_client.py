"""api_users.sh's client: users, roles, permissions and the cluster calls of keel.vim.Vim
from Debian's grpcio, with stubs made from proto/vim.proto alone.

Usage: /usr/bin/python3 api_users_client.py STUBDIR PORT CERT ROOTPW PHASE
PHASE "change": root adds user ops, role operator and the permission ops -> ReadOnly on
root; the refusals; a password change ends ops' session; the cluster calls without
clusterd. PHASE "persisted" (after a restart): all of it is still there.
Prints one "ok <what>" line per check; the first failing check raises (exit 1).
"""
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2 as pb  # noqa: E402
import vim_pb2_grpc  # noqa: E402

PORT = int(sys.argv[2])
CERT = open(sys.argv[3], "rb").read()
ROOTPW = sys.argv[4]
PHASE = sys.argv[5]
OPS_PW1, OPS_PW2 = "ops-password-1", "ops-password-2"

ch = grpc.secure_channel("127.0.0.1:%d" % PORT,
                         grpc.ssl_channel_credentials(root_certificates=CERT),
                         options=[("grpc.ssl_target_name_override", "localhost")])
stub = vim_pb2_grpc.VimStub(ch)
SC = grpc.StatusCode


def call(fn, req, md):
    try:
        return SC.OK, "", fn(req, metadata=md, timeout=10)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


def expect(what, got, code, text=None):
    if got[0] != code or (text is not None and text not in got[1]):
        raise SystemExit("FAIL: %s: want %s %r, got %s %r" % (what, code, text, got[0], got[1]))
    print("ok", what, "->", code.name, got[1])
    return got[2]


def login(user, pw):
    s = stub.Login(pb.LoginRequest(user=user, password=pw), timeout=10)
    return [("x-keel-session", s.token)]


def login_refused(user, pw, what):
    try:
        login(user, pw)
    except grpc.RpcError as e:
        if e.code() != SC.UNAUTHENTICATED:
            raise
        print("ok", what, "refused")
        return
    raise SystemExit("FAIL: %s: accepted" % what)


def perm(principal, role, entity, propagate=True, group=False):
    return pb.PermissionChange(permission=pb.Permission(
        principal=principal, role=role, entity=entity, propagate=propagate, group=group))


root = login("root", ROOTPW)

if PHASE == "change":
    expect("add user ops", call(stub.ChangeUser, pb.UserChange(
        name="ops", password=OPS_PW1, description="Operations", groups=["staff"]), root), SC.OK)
    expect("update ops' description", call(stub.ChangeUser, pb.UserChange(
        name="ops", description="Ops team"), root), SC.OK)
    expect("new user without password", call(stub.ChangeUser, pb.UserChange(name="nopw"), root),
           SC.INVALID_ARGUMENT, "needs a password")
    expect("short password", call(stub.ChangeUser, pb.UserChange(name="shorty", password="abc"),
                                  root), SC.INVALID_ARGUMENT, "bytes")
    expect("bad user name", call(stub.ChangeUser, pb.UserChange(name="Bad Name",
                                                                 password=OPS_PW1), root),
           SC.INVALID_ARGUMENT, "invalid user name")
    expect("role operator", call(stub.ChangeRole, pb.RoleChange(role=pb.Role(
        name="operator", privileges=["VirtualMachine.Interact.PowerOn"])), root), SC.OK)
    expect("unknown privilege", call(stub.ChangeRole, pb.RoleChange(role=pb.Role(
        name="broken", privileges=["VirtualMachine.Fly"])), root), SC.INVALID_ARGUMENT,
        "VirtualMachine.Fly")
    expect("change a system role", call(stub.ChangeRole, pb.RoleChange(role=pb.Role(
        name="Admin", privileges=["System.Read"])), root), SC.FAILED_PRECONDITION, "system role")
    expect("permission ops ReadOnly on root", call(stub.ChangePermission,
                                                    perm("ops", "ReadOnly", "root"), root), SC.OK)
    expect("group staff operator on a VM", call(stub.ChangePermission, perm(
        "staff", "operator", "vm-1234", propagate=False, group=True), root), SC.OK)
    expect("remove a role in use", call(stub.ChangeRole, pb.RoleChange(
        role=pb.Role(name="operator"), remove=True), root), SC.FAILED_PRECONDITION, "used by")
    expect("permission of an unknown user", call(stub.ChangePermission,
                                                  perm("nobody", "ReadOnly", "root"), root),
           SC.NOT_FOUND, "nobody")
    expect("permission with an unknown role", call(stub.ChangePermission,
                                                    perm("ops", "Wizard", "root"), root),
           SC.NOT_FOUND, "Wizard")
    expect("change root's Admin", call(stub.ChangePermission, perm("root", "ReadOnly", "root"),
                                       root), SC.FAILED_PRECONDITION, "root")
    expect("remove root", call(stub.ChangeUser, pb.UserChange(name="root", remove=True), root),
           SC.FAILED_PRECONDITION, "root cannot be removed")
    expect("remove an unknown user", call(stub.ChangeUser, pb.UserChange(name="ghost",
                                                                          remove=True), root),
           SC.NOT_FOUND, "ghost")

    ops = login("ops", OPS_PW1)
    users = expect("ops lists users", call(stub.ListUsers, pb.Empty(), ops), SC.OK)
    u = {x.name: x for x in users.users}
    if (set(u) != {"root", "ops"} or u["ops"].description != "Ops team"
            or list(u["ops"].groups) != ["staff"]):
        raise SystemExit("FAIL: users %r" % users)
    roles = expect("ops lists roles", call(stub.ListRoles, pb.Empty(), ops), SC.OK)
    r = {x.name: x for x in roles.roles}
    if not (r["Admin"].system and not r["operator"].system
            and "VirtualMachine.Interact.PowerOn" in r["operator"].privileges
            and "System.Read" in r["operator"].privileges):
        raise SystemExit("FAIL: roles %r" % roles)
    expect("ops lists permissions", call(stub.ListPermissions, pb.Empty(), ops), SC.OK)
    expect("ops adds a user", call(stub.ChangeUser, pb.UserChange(name="eve", password=OPS_PW1),
                                   ops), SC.PERMISSION_DENIED, "Authorization.ModifyUsers")
    expect("ops changes a role", call(stub.ChangeRole, pb.RoleChange(role=pb.Role(name="r2")),
                                      ops), SC.PERMISSION_DENIED, "Authorization.ModifyRoles")
    expect("ops sets a permission", call(stub.ChangePermission, perm("ops", "Admin", "root"), ops),
           SC.PERMISSION_DENIED, "Authorization.ModifyPermissions")
    expect("ops creates a cluster", call(stub.ClusterCreate, pb.ClusterCreateRequest(name="c"),
                                         ops), SC.PERMISSION_DENIED,
           "Host.Inventory.ManageCluster")

    # A password change ends the user's sessions; the new password works.
    expect("change ops' password", call(stub.ChangeUser, pb.UserChange(
        name="ops", password=OPS_PW2), root), SC.OK)
    expect("ops' old session", call(stub.ListUsers, pb.Empty(), ops), SC.UNAUTHENTICATED)
    login_refused("ops", OPS_PW1, "ops' old password")
    ops = login("ops", OPS_PW2)
    expect("ops with the new password", call(stub.ListUsers, pb.Empty(), ops), SC.OK)

    # A removed user's sessions end and its user permissions go.
    expect("add tmp", call(stub.ChangeUser, pb.UserChange(name="tmp", password=OPS_PW1), root),
           SC.OK)
    expect("tmp ReadOnly", call(stub.ChangePermission, perm("tmp", "ReadOnly", "root"), root),
           SC.OK)
    tmp = login("tmp", OPS_PW1)
    expect("remove tmp", call(stub.ChangeUser, pb.UserChange(name="tmp", remove=True), root),
           SC.OK)
    expect("tmp's session", call(stub.ListUsers, pb.Empty(), tmp), SC.UNAUTHENTICATED)

    # No clusterd on this host.
    expect("ClusterGetStatus without clusterd", call(stub.ClusterGetStatus,
                                                      pb.ClusterStatusRequest(), root),
           SC.UNAVAILABLE, "clusterd")
    expect("ClusterEvents without clusterd", call(stub.ClusterEvents, pb.EventsRequest(), ops),
           SC.UNAVAILABLE, "clusterd")
    expect("ClusterJoinToken without clusterd", call(stub.ClusterJoinToken,
                                                      pb.JoinTokenRequest(), root),
           SC.UNAVAILABLE, "clusterd")
    t = expect("ClusterCreate answers a task", call(stub.ClusterCreate,
                                                     pb.ClusterCreateRequest(name="c1"), root),
               SC.OK)
    if not t.id.startswith("task-") or t.kind != "ClusterCreate" or t.user != "root":
        raise SystemExit("FAIL: task %r" % t)
    got = call(stub.WaitForTask, pb.WaitForTaskRequest(task=t.id, timeout_ms=5000), root)
    if got[0] == SC.UNIMPLEMENTED:
        print("ok (WaitForTask is not implemented yet: the task's end is not checked)")
    else:
        w = expect("WaitForTask on ClusterCreate", got, SC.OK)
        if w.state != "error" or "clusterd" not in w.error:
            raise SystemExit("FAIL: ClusterCreate's task %r" % w)
elif PHASE == "persisted":
    login_refused("ops", OPS_PW1, "ops' old password after the restart")
    ops = login("ops", OPS_PW2)
    users = expect("users after the restart", call(stub.ListUsers, pb.Empty(), ops), SC.OK)
    if sorted(x.name for x in users.users) != ["ops", "root"]:
        raise SystemExit("FAIL: users %r" % users)
    roles = expect("roles after the restart", call(stub.ListRoles, pb.Empty(), ops), SC.OK)
    if "operator" not in [x.name for x in roles.roles]:
        raise SystemExit("FAIL: roles %r" % roles)
    perms = expect("permissions after the restart", call(stub.ListPermissions, pb.Empty(), ops),
                   SC.OK)
    have = {(p.principal, p.group, p.role, p.entity, p.propagate) for p in perms.permissions}
    want = {("root", False, "Admin", "root", True), ("ops", False, "ReadOnly", "root", True),
            ("staff", True, "operator", "vm-1234", False)}
    if have != want:
        raise SystemExit("FAIL: permissions %r" % have)
    expect("ops still may not add users", call(stub.ChangeUser, pb.UserChange(
        name="eve", password=OPS_PW1), ops), SC.PERMISSION_DENIED)
else:
    raise SystemExit("FAIL: unknown phase %s" % PHASE)
print("ok", PHASE)
