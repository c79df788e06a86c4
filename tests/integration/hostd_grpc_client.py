"""hostd_grpc.sh's client: drives hostd with Debian's grpcio (a third-party gRPC client) and
with raw sockets for what grpcio cannot send (garbage, rapid reset, connection floods).

Usage: /usr/bin/python3 hostd_grpc_client.py STUBDIR PORT CERT
Prints one "ok <what>" line per check; the first failing check raises (exit 1).
"""
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

PORT = int(sys.argv[2])
ROOT = open(sys.argv[3], "rb").read()
TARGET = "127.0.0.1:%d" % PORT


def channel():
    creds = grpc.ssl_channel_credentials(root_certificates=ROOT)
    return grpc.secure_channel(TARGET, creds, options=[
        ("grpc.ssl_target_name_override", "localhost"),
        ("grpc.max_send_message_length", 16 << 20)])


def code_of(fn, *args, **kw):
    try:
        fn(*args, timeout=10, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def expect(got, code, text=None):
    if got[0] != code or (text is not None and text not in (got[1] or "")):
        raise SystemExit("FAIL: want %s %r, got %s %r" % (code, text, got[0], got[1]))


def raw(method, serializer):
    return CH.unary_unary("/keel.vim.Vim/" + method, request_serializer=serializer,
                          response_deserializer=lambda b: b)


def wait_closed(sock, what, deadline=5.0):
    """Reads until the server closes; returns the bytes it sent."""
    sock.settimeout(deadline)
    got = b""
    end = time.time() + deadline
    while time.time() < end:
        try:
            b = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return got
        except socket.timeout:
            break
        if not b:
            return got
        got += b
    raise SystemExit("FAIL: %s: the server kept the connection open" % what)


def still_serving(what):
    expect(code_of(STUB.RetrieveInventory, vim_pb2.RetrieveInventoryRequest()),
           grpc.StatusCode.UNAUTHENTICATED)
    print("ok still serving after", what)


CH = channel()
STUB = vim_pb2_grpc.VimStub(CH)

# Without a session: UNAUTHENTICATED; a made-up session too.
expect(code_of(STUB.RetrieveInventory, vim_pb2.RetrieveInventoryRequest()),
       grpc.StatusCode.UNAUTHENTICATED, "log in first")
expect(code_of(STUB.RetrieveInventory, vim_pb2.RetrieveInventoryRequest(),
               metadata=[("x-keel-session", "abc")]),
       grpc.StatusCode.UNAUTHENTICATED, "expired or does not exist")
print("ok no session, bad session: UNAUTHENTICATED")

# Login: hostd made root's password at first start (DIR/root-password, 0600).
STATE = os.path.dirname(sys.argv[3])
st = os.stat(os.path.join(STATE, "root-password"))
if st.st_mode & 0o077:
    raise SystemExit("FAIL: root-password is mode %o" % (st.st_mode & 0o777))
ROOTPW = open(os.path.join(STATE, "root-password")).read().strip()
expect(code_of(STUB.Login, vim_pb2.LoginRequest(user="root", password="wrong-password")),
       grpc.StatusCode.UNAUTHENTICATED, "incorrect user name or password")
expect(code_of(STUB.Login, vim_pb2.LoginRequest(user="nobody", password=ROOTPW)),
       grpc.StatusCode.UNAUTHENTICATED, "incorrect user name or password")
sess = STUB.Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=20)
if sess.user != "root" or len(sess.token) != 64:
    raise SystemExit("FAIL: Login: %r" % sess)
MD = [("x-keel-session", sess.token)]
cur = STUB.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=MD, timeout=10)
if cur.user != "root" or cur.token or "VirtualMachine.Interact.PowerOn" not in cur.privileges_root:
    raise SystemExit("FAIL: CurrentSession: %r" % cur)
# No vmkernel beside this hostd: the inventory says so (UNAVAILABLE), after authorizing.
expect(code_of(STUB.RetrieveInventory, vim_pb2.RetrieveInventoryRequest(), metadata=MD),
       grpc.StatusCode.UNAVAILABLE, "vmkernel")
print("ok Login (wrong password, unknown user, root), CurrentSession, RetrieveInventory")

# A server-streaming method answers with a status too.
try:
    for _ in STUB.Console(vim_pb2.ConsoleRequest(), timeout=10):
        raise SystemExit("FAIL: Console sent a message")
    raise SystemExit("FAIL: Console ended OK")
except grpc.RpcError as e:
    expect((e.code(), e.details()), grpc.StatusCode.UNAUTHENTICATED, "log in first")
print("ok Console UNAUTHENTICATED")

# A body that does not decode as the input type: INVALID_ARGUMENT before UNIMPLEMENTED.
expect(code_of(raw("RetrieveInventory", lambda _: b"\xff\xff\xff\xff"), None),
       grpc.StatusCode.INVALID_ARGUMENT, "does not decode")
print("ok malformed body INVALID_ARGUMENT")

# 5 MiB: over the 4 MiB limit.
expect(code_of(raw("Login", lambda _: b"\x0a" * (5 << 20)), None),
       grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than")
print("ok 5 MiB request RESOURCE_EXHAUSTED")
still_serving("the oversized request")

# Unknown method; '%' in grpc-message survives percent-encoding.
expect(code_of(raw("No%Such", lambda _: b""), None), grpc.StatusCode.UNIMPLEMENTED,
       "unknown method: /keel.vim.Vim/No%Such")
print("ok unknown method UNIMPLEMENTED, grpc-message percent-encoded")

# 200 concurrent calls on one channel (past the 128-stream limit: the client queues).
futs = [STUB.RetrieveInventory.future(vim_pb2.RetrieveInventoryRequest(), timeout=20)
        for _ in range(200)]
codes = [f.exception().code() if f.exception() else grpc.StatusCode.OK for f in futs]
if codes.count(grpc.StatusCode.UNAUTHENTICATED) != 200:
    raise SystemExit("FAIL: 200 concurrent calls: %r" % {c: codes.count(c) for c in set(codes)})
print("ok 200 concurrent calls answered")

# Garbage over TLS instead of the HTTP/2 preface: the connection closes.
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT)))
if s.selected_alpn_protocol() != "h2":
    raise SystemExit("FAIL: ALPN selected %r" % s.selected_alpn_protocol())
s.sendall(b"GET / HTTP/1.1\r\nthis is not HTTP/2\r\n\r\n" + bytes(range(256)) * 4)
wait_closed(s, "garbage over TLS")
s.close()
print("ok garbage over TLS: connection closed")
still_serving("garbage over TLS")

# Plain TCP junk: the handshake fails and the connection closes.
s = socket.create_connection(("127.0.0.1", PORT))
s.sendall(b"\x00\x01junk that is not a TLS ClientHello" * 20)
wait_closed(s, "plain TCP junk")
s.close()
print("ok plain TCP junk: connection closed")
still_serving("plain TCP junk")


# Rapid reset: HEADERS then RST_STREAM, over and over, on one connection.
def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


path = b"/keel.vim.Vim/RetrieveInventory"
ct = b"application/grpc"
hpack = b"\x83\x87" + b"\x44" + bytes([len(path)]) + path + b"\x5f" + bytes([len(ct)]) + ct
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT)))
out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
for i in range(700):
    sid = 1 + 2 * i
    out += frame(1, 0x4, sid, hpack) + frame(3, 0, sid, struct.pack(">I", 8))
try:
    s.sendall(out)
except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
    pass
got = wait_closed(s, "rapid reset")
s.close()
goaway = False
off = 0
while off + 9 <= len(got):
    n = int.from_bytes(got[off:off + 3], "big")
    if got[off + 3] == 7 and off + 9 + 8 <= len(got):
        goaway = int.from_bytes(got[off + 13:off + 17], "big") == 0xB  # ENHANCE_YOUR_CALM
    off += 9 + n
if not goaway:
    raise SystemExit("FAIL: rapid reset: no GOAWAY(ENHANCE_YOUR_CALM)")
print("ok rapid reset: GOAWAY(ENHANCE_YOUR_CALM) and close")
still_serving("rapid reset")

# More than 32 connections from one address: the extra ones are closed at once.
socks = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(40)]
time.sleep(0.5)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except ConnectionResetError:
        closed += 1
for s in socks:
    s.close()
# The grpc channel holds one connection of its own.
if closed < 8 or closed > 9:
    raise SystemExit("FAIL: 40 connections from one address: %d closed, want 8 or 9" % closed)
print("ok per-address connection limit (%d of 40 refused)" % closed)
time.sleep(0.2)
still_serving("the connection flood")

# Logout ends the session.
STUB.Logout(vim_pb2.LogoutRequest(), metadata=MD, timeout=10)
expect(code_of(STUB.CurrentSession, vim_pb2.CurrentSessionRequest(), metadata=MD),
       grpc.StatusCode.UNAUTHENTICATED, "expired or does not exist")
print("ok Logout")

# Failed logins are rate-limited per address: after 5 failures in a minute even the right
# password is refused, with when to try again (last: it locks 127.0.0.1 out).
for _ in range(5):
    code_of(STUB.Login, vim_pb2.LoginRequest(user="root", password="wrong-password"))
expect(code_of(STUB.Login, vim_pb2.LoginRequest(user="root", password=ROOTPW)),
       grpc.StatusCode.UNAUTHENTICATED, "too many failed logins")
print("ok failed logins rate-limited")
CH.close()
print("ok all")
