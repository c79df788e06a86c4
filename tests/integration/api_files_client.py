"""api_files.sh's helper: what curl cannot do. Run inside the lab host's network namespace.

    api_files_client.py users STUBS ROOTPW HOST PORT
        root adds the users fro (ReadOnly on root), fna (NoAccess on root) and fbr (role
        dsbrowse = Datastore.Browse, on ds-datastore1 only) through keel.vim.Vim (Debian's
        grpcio, stubs made from proto/vim.proto) and prints "TOKEN <user> <token>" for
        root and each of them.
    api_files_client.py stall HOST PORT TOKEN PATH STREAMS SECONDS
        raw HTTP/2: opens STREAMS downloads of PATH on one connection with windows of 2 GiB
        each, then never reads the socket for SECONDS and closes it.
    api_files_client.py reset HOST PORT TOKEN PATH BYTES
        raw HTTP/2: a PUT of PATH announcing 64 MiB that sends BYTES (< 64 KiB, within the
        initial window) and then resets the stream (RST_STREAM CANCEL).

hostd's certificate is self-signed (the host is alone): it is not verified here.
"""
import socket
import ssl
import struct
import sys
import time


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def users(stubs, rootpw, host, port):
    sys.path.insert(0, stubs)
    import grpc
    import vim_pb2 as pb
    import vim_pb2_grpc

    cert = ssl.get_server_certificate((host, port)).encode()
    ch = grpc.secure_channel("%s:%d" % (host, port),
                             grpc.ssl_channel_credentials(root_certificates=cert),
                             options=[("grpc.ssl_target_name_override", "localhost")])
    stub = vim_pb2_grpc.VimStub(ch)

    def login(user, pw):
        return stub.Login(pb.LoginRequest(user=user, password=pw), timeout=20).token

    root = [("x-keel-session", login("root", rootpw))]
    stub.ChangeRole(pb.RoleChange(role=pb.Role(name="dsbrowse",
                                                privileges=["Datastore.Browse"])),
                    metadata=root, timeout=10)
    for user, role, entity in (("fro", "ReadOnly", "root"), ("fna", "NoAccess", "root"),
                               ("fbr", "dsbrowse", "ds-datastore1")):
        stub.ChangeUser(pb.UserChange(name=user, password="files-pw-" + user),
                        metadata=root, timeout=10)
        stub.ChangePermission(pb.PermissionChange(permission=pb.Permission(
            principal=user, role=role, entity=entity, propagate=entity == "root")), metadata=root,
            timeout=10)
    print("TOKEN root", root[0][1])
    for user in ("fro", "fna", "fbr"):
        print("TOKEN", user, login(user, "files-pw-" + user))


def frame(typ, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload


def lit(name, value):
    """An HPACK literal without indexing (names and values under 127 bytes)."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def connect(host, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname="localhost")
    if s.selected_alpn_protocol() != "h2":
        fail("no h2")
    return s


def request(method, path, token, extra=()):
    return b"".join(lit(k, v) for k, v in [
        (":method", method), (":scheme", "https"), (":path", path), (":authority", "localhost"),
        ("x-keel-session", token)] + list(extra))


def stall(host, port, token, path, streams, seconds):
    s = connect(host, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = 2 ** 31 - 1
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, struct.pack(">HI", 4, big))
    out += frame(8, 0, 0, struct.pack(">I", big - 65535))
    for i in range(streams):
        out += frame(1, 5, 1 + 2 * i, request("GET", path, token))
    s.sendall(out)
    print("stalled %d streams" % streams, flush=True)
    time.sleep(seconds)
    s.close()


def reset(host, port, token, path, nbytes):
    s = connect(host, port)
    hdrs = request("PUT", path, token, [("content-length", str(64 << 20))])
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(1, 4, 1, hdrs))
    sent = 0
    while sent < nbytes:
        n = min(16384, nbytes - sent)
        s.sendall(frame(0, 0, 1, b"\x5a" * n))
        sent += n
    time.sleep(0.5)
    s.sendall(frame(3, 0, 1, struct.pack(">I", 8)))  # RST_STREAM CANCEL
    time.sleep(0.5)
    s.close()
    print("reset after %d bytes" % sent)


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "users":
        users(a[2], open(a[3]).read().strip(), a[4], int(a[5]))
    elif a[1] == "stall":
        stall(a[2], int(a[3]), a[4], a[5], int(a[6]), float(a[7]))
    elif a[1] == "reset":
        reset(a[2], int(a[3]), a[4], a[5], int(a[6]))
    else:
        fail("unknown mode %s" % a[1])
