"""A client of vmkernel's control socket for vmk_ft.sh: sends one FT request
(VmkVmFtSecondary/Start/Status/Stop/Takeover, proto/vmk.proto) and prints the reply as
JSON. Frames are a 4-byte big-endian length, then the message (lib/frame.h).

  vmk_ft_client.py STUBS SOCK secondary VMX_PATH UUID ID_HEX KEY_HEX [DATASTORE]
  vmk_ft_client.py STUBS SOCK start VM ENDPOINT ID_HEX KEY_HEX [EPOCH_MS]
  vmk_ft_client.py STUBS SOCK status VM
  vmk_ft_client.py STUBS SOCK stop VM
  vmk_ft_client.py STUBS SOCK takeover VM EPOCH
  vmk_ft_client.py STUBS SOCK raw-secondary VMX_PATH UUID ID_LEN KEY_LEN  (wrong sizes)
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
    if cmd == "secondary":
        m = rq.vm_ft_secondary
        m.vmx_path, m.uuid = args[0], args[1]
        m.id, m.key = bytes.fromhex(args[2]), bytes.fromhex(args[3])
        m.encrypt = True
        if len(args) > 4:
            m.datastore = args[4]
    elif cmd == "raw-secondary":
        m = rq.vm_ft_secondary
        m.vmx_path, m.uuid = args[0], args[1]
        m.id, m.key = b"\1" * int(args[2]), b"\2" * int(args[3])
    elif cmd == "start":
        m = rq.vm_ft_start
        m.vm, m.endpoint = args[0], args[1]
        m.id, m.key = bytes.fromhex(args[2]), bytes.fromhex(args[3])
        m.encrypt = True
        if len(args) > 4:
            m.epoch_ms = int(args[4])
    elif cmd == "status":
        rq.vm_ft_status.vm = args[0]
    elif cmd == "stop":
        rq.vm_ft_stop.vm = args[0]
    elif cmd == "takeover":
        rq.vm_ft_takeover.vm = args[0]
        rq.vm_ft_takeover.epoch = int(args[1])
    else:
        raise SystemExit("unknown command " + cmd)
    rp = call(sock, rq)
    out = MessageToDict(rp, preserving_proto_field_name=True)
    out.setdefault("code", 0)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
