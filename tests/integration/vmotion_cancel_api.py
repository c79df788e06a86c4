"""A third party's gRPC client (Debian's grpcio, stubs made from proto/vim.proto alone) for
vmotion_cancel_api.sh, run inside a lab host's namespace. One step per run, its outcome
printed as one JSON object:

    vmotion_cancel_api.py STUBS CA ROOTPW HOST PORT NAME migrate VM TO
        MigrateVm as root: {"task": ID, "state": ...}
    vmotion_cancel_api.py STUBS CA ROOTPW HOST PORT NAME cancel TASK [USER PASSWORD]
        CancelTask as root (or USER): {"code": "OK", "task": {...}} or {"code": NAME,
        "details": TEXT}; at most 60 s
    vmotion_cancel_api.py STUBS CA ROOTPW HOST PORT NAME wait TASK SECONDS
        WaitForTask until the task ended: {"task": {...}}
    vmotion_cancel_api.py STUBS CA ROOTPW HOST PORT NAME get TASK
        the task as ListTasks has it: {"task": {...}}
    vmotion_cancel_api.py STUBS CA ROOTPW HOST PORT NAME viewer USER PASSWORD
        makes USER with the ReadOnly role on the root and waits until it can log in
"""
import json
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402

CA = open(sys.argv[2], "rb").read()
ROOTPW = open(sys.argv[3]).read().strip()
HOST, PORT, NAME, CMD, ARGS = sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8:]

ch = grpc.secure_channel("%s:%d" % (HOST, PORT), grpc.ssl_channel_credentials(root_certificates=CA),
                         options=[("grpc.ssl_target_name_override", NAME)])
stub = vim_pb2_grpc.VimStub(ch)


def login(user, password):
    s = stub.Login(vim_pb2.LoginRequest(user=user, password=password), timeout=20)
    return [("x-keel-session", s.token)]


def task_dict(t):
    return MessageToDict(t, preserving_proto_field_name=True, including_default_value_fields=True)


def out(obj):
    print(json.dumps(obj))


md = login("root", ROOTPW)
if CMD == "migrate":
    t = stub.MigrateVm(vim_pb2.MigrateVmRequest(vm=ARGS[0], to_host=ARGS[1]), metadata=md,
                       timeout=30)
    out({"task": t.id, "state": t.state, "kind": t.kind})
elif CMD == "cancel":
    meta = login(ARGS[1], ARGS[2]) if len(ARGS) > 2 else md
    try:
        t = stub.CancelTask(vim_pb2.TaskRef(task=ARGS[0]), metadata=meta, timeout=60)
        out({"code": "OK", "task": task_dict(t)})
    except grpc.RpcError as e:
        out({"code": e.code().name, "details": e.details()})
elif CMD == "wait":
    end = time.time() + float(ARGS[1])
    while True:
        t = stub.WaitForTask(vim_pb2.WaitForTaskRequest(task=ARGS[0], timeout_ms=5000),
                             metadata=md, timeout=20)
        if t.state in ("success", "error", "cancelled") or time.time() > end:
            break
    out({"task": task_dict(t)})
elif CMD == "get":
    for t in stub.ListTasks(vim_pb2.ListTasksRequest(), metadata=md, timeout=20).tasks:
        if t.id == ARGS[0]:
            out({"task": task_dict(t)})
            break
    else:
        raise SystemExit("FAIL: no task %s in ListTasks" % ARGS[0])
elif CMD == "viewer":
    stub.ChangeUser(vim_pb2.UserChange(name=ARGS[0], password=ARGS[1]), metadata=md, timeout=20)
    stub.ChangePermission(vim_pb2.PermissionChange(permission=vim_pb2.Permission(
        principal=ARGS[0], role="ReadOnly", entity="root", propagate=True)), metadata=md,
        timeout=20)
    for _ in range(50):
        try:
            login(ARGS[0], ARGS[1])
            break
        except grpc.RpcError:
            time.sleep(0.2)
    else:
        raise SystemExit("FAIL: the ReadOnly user cannot log in")
    out({"user": ARGS[0]})
else:
    raise SystemExit("FAIL: unknown step %s" % CMD)
