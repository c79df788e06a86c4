"""A client of vmkernel's control socket for vmk_migrate.sh: sends one vMotion request
(VmkVmMigrateIn/Out/Status/Cancel/Commit, proto/vmk.proto) and prints the reply as JSON.
Frames are a 4-byte big-endian length, then the message (lib/frame.h).

  vmk_migrate_client.py STUBS SOCK in VMX_PATH UUID ID_HEX KEY_HEX [EPOCH]
  vmk_migrate_client.py STUBS SOCK out VM ID_HEX KEY_HEX ENDPOINT...
  vmk_migrate_client.py STUBS SOCK status VM
  vmk_migrate_client.py STUBS SOCK cancel VM REASON
  vmk_migrate_client.py STUBS SOCK commit VM EPOCH
  vmk_migrate_client.py STUBS SOCK raw-in VMX_PATH UUID ID_LEN KEY_LEN  (wrong sizes)
"""
import json
import socket
import struct
import sys

sys.path.insert(0, sys.argv[1])
import vmk_pb2  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402


def call(sock_path, rq, timeout=120):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    data = rq.SerializeToString()
    s.sendall(struct.pack(">I", len(data)) + data)
    buf = b""
    while len(buf) < 4:
        chunk = s.recv(4 - len(buf))
        if not chunk:
            raise SystemExit("vmkernel closed the connection")
        buf += chunk
    (n,) = struct.unpack(">I", buf)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise SystemExit("vmkernel closed the connection inside a reply")
        body += chunk
    s.close()
    rp = vmk_pb2.VmkReply()
    rp.ParseFromString(body)
    return rp


def main():
    sock, cmd, args = sys.argv[2], sys.argv[3], sys.argv[4:]
    rq = vmk_pb2.VmkRequest()
    if cmd == "in":
        m = rq.vm_migrate_in
        m.vmx_path, m.uuid = args[0], args[1]
        m.id, m.key = bytes.fromhex(args[2]), bytes.fromhex(args[3])
        m.streams_per_endpoint = 1
        m.encrypt = True
        if len(args) > 4:
            m.epoch = int(args[4])
    elif cmd == "raw-in":
        m = rq.vm_migrate_in
        m.vmx_path, m.uuid = args[0], args[1]
        m.id, m.key = b"\1" * int(args[2]), b"\2" * int(args[3])
    elif cmd == "out":
        m = rq.vm_migrate_out
        m.vm = args[0]
        m.id, m.key = bytes.fromhex(args[1]), bytes.fromhex(args[2])
        m.endpoints.extend(args[3:])
        m.streams_per_endpoint = 1
        m.encrypt = True
    elif cmd == "status":
        rq.vm_migrate_status.vm = args[0]
    elif cmd == "cancel":
        rq.vm_migrate_cancel.vm = args[0]
        rq.vm_migrate_cancel.reason = args[1]
    elif cmd == "commit":
        rq.vm_migrate_commit.vm = args[0]
        rq.vm_migrate_commit.epoch = int(args[1])
    else:
        raise SystemExit("unknown command " + cmd)
    rp = call(sock, rq)
    out = MessageToDict(rp, preserving_proto_field_name=True)
    out.setdefault("code", 0)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
