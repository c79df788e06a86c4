"""The Vim API from a third party's side: Debian's grpcio with stubs made from
proto/vim.proto alone. Run inside a lab host's network namespace:

    api_lab_client.py STUBS CA ROOTPW HOST:PORT SERVERNAME EXPECT_JSON

Logs in as root (after a wrong password is refused), reads the inventory and checks it
against EXPECT_JSON: {"hosts": [names], "cluster": name, "vm": name, "vm_host": "host-<id>",
"vm_power": "poweredOn" or "", "vm_desired": "poweredOn"}. Prints the inventory's summary.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

CA = open(sys.argv[2], "rb").read()
ROOTPW = open(sys.argv[3]).read().strip()
TARGET, NAME = sys.argv[4], sys.argv[5]
WANT = json.loads(sys.argv[6])


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


ch = grpc.secure_channel(TARGET, grpc.ssl_channel_credentials(root_certificates=CA),
                         options=[("grpc.ssl_target_name_override", NAME)])
stub = vim_pb2_grpc.VimStub(ch)
try:
    stub.Login(vim_pb2.LoginRequest(user="root", password="not-the-password"), timeout=20)
    fail("a wrong password was accepted")
except grpc.RpcError as e:
    if e.code() != grpc.StatusCode.UNAUTHENTICATED:
        fail("wrong password: %s %s" % (e.code(), e.details()))
s = stub.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
md = [("x-keel-session", s.token)]
inv = stub.RetrieveInventory(vim_pb2.RetrieveInventoryRequest(), metadata=md, timeout=20)
hosts = sorted(h.name for h in inv.hosts)
print("hosts:", [(h.id, h.name, h.state, h.raft_role) for h in inv.hosts])
print("cluster:", inv.cluster.name, inv.cluster.id, "leader", inv.cluster.leader)
print("vms:", [(v.name, v.host, v.epoch, v.power_state, v.desired_power, v.datastore)
               for v in inv.vms])
print("datastores:", [(d.name, d.shared) for d in inv.datastores])
print("networks:", [n.portgroup for n in inv.networks])
if hosts != sorted(WANT["hosts"]):
    fail("hosts %r, want %r" % (hosts, WANT["hosts"]))
if any(h.state != "connected" for h in inv.hosts):
    fail("a host is not connected")
if inv.cluster.name != WANT["cluster"]:
    fail("cluster %r" % inv.cluster.name)
vms = [v for v in inv.vms if v.name == WANT["vm"]]
if len(vms) != 1:
    fail("VM %s appears %d times" % (WANT["vm"], len(vms)))
v = vms[0]
if (v.host, v.power_state, v.desired_power, v.epoch) != (
        WANT["vm_host"], WANT["vm_power"], WANT["vm_desired"], 1):
    fail("VM %r" % v)
if not any(d.name == "shared1" and d.shared for d in inv.datastores):
    fail("no shared datastore shared1")
if not inv.networks:
    fail("no networks")
stub.Logout(vim_pb2.LogoutRequest(), metadata=md, timeout=10)
print("ok")
