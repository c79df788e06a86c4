"""api_negative.sh's client: what hostd does with bad input and heavy load, from a third
party's side (Debian's grpcio with stubs made from proto/vim.proto alone, plus HTTP/2
frames made by hand over ssl sockets for what grpcio cannot send).

Usage: /usr/bin/python3 api_negative_client.py STUBS HOST PORT CERT PWFILE HOSTD_PID MODE

CERT is hostd's certificate (trusted under the name "localhost"), or "-" to take the one
the server presents. MODE:
  limits  a lone hostd with the default idle timeout: an expired-token-like session, the
          message size boundary (4 MiB accepted, 4 MiB + 1 refused, the prefix alone
          refused before the body), malformed bodies grpcio can send, truncated HTTP/2
          frames then close, frames with a bad length (GOAWAY), 1,000 concurrent calls on
          one channel and over 8 channels, one raw connection opening 1,000 streams;
  expiry  hostd started with --session-idle-timeout 2: a session used every second lives,
          one idle 3 s is refused UNAUTHENTICATED;
  lab     a lab host's hostd (KEEL_LAB_SESSION_IDLE_S=2): the idle timeout reached hostd,
          1,000 concurrent RetrieveInventory calls answer the host's inventory, then expiry.

After every check a good call (CurrentSession of a live session) must still answer; hostd's
VmRSS is checked after the bulk checks unless KEEL_ASAN=1. Prints "ok <what>" per check and
"ok all" at the end; the first failing check exits 1.
"""
import concurrent.futures
import os
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import vim_pb2  # noqa: E402
import vim_pb2_grpc  # noqa: E402

HOST, PORT = sys.argv[2], int(sys.argv[3])
CERTFILE, PWFILE, HOSTD_PID, MODE = sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
TARGET = "%s:%d" % (HOST, PORT)
ROOTPW = open(PWFILE).read().strip()
ASAN = os.environ.get("KEEL_ASAN") == "1"
SC = grpc.StatusCode
MSG_MAX = 4 << 20  # HD_WIRE_MSG_MAX

if CERTFILE == "-":
    CERT = ssl.get_server_certificate((HOST, PORT)).encode()
else:
    CERT = open(CERTFILE, "rb").read()


def fail(msg):
    raise SystemExit("FAIL: %s" % msg)


def channel(local=False):
    opts = [("grpc.ssl_target_name_override", "localhost"),
            ("grpc.max_send_message_length", 16 << 20)]
    if local:  # a connection of its own, not the process-wide shared subchannel
        opts.append(("grpc.use_local_subchannel_pool", 1))
    return grpc.secure_channel(TARGET, grpc.ssl_channel_credentials(root_certificates=CERT),
                               options=opts)


def code_of(fn, *args, **kw):
    kw.setdefault("timeout", 20)
    try:
        r = fn(*args, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details(), None
    return SC.OK, "", r


def expect(what, got, code, text=None):
    if got[0] != code or (text is not None and text not in (got[1] or "")):
        fail("%s: want %s %r, got %s %r" % (what, code, text, got[0], got[1]))
    return got[2]


def rss_kib():
    for line in open("/proc/%d/status" % HOSTD_PID):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    fail("hostd (pid %d) has no VmRSS: gone?" % HOSTD_PID)


def rss_bound(what, before, max_mib):
    after = rss_kib()
    print("   hostd VmRSS %d KiB before %s, %d KiB after (%+d KiB)"
          % (before, what, after, after - before))
    if not ASAN and after - before > max_mib * 1024:
        fail("%s: hostd grew by %d KiB (bound %d MiB)" % (what, after - before, max_mib))


CH = channel()
STUB = vim_pb2_grpc.VimStub(CH)


def login(stub=None):
    s = (stub or STUB).Login(vim_pb2.LoginRequest(user="root", password=ROOTPW), timeout=30)
    if len(s.token) != 64:
        fail("Login: %r" % s)
    return s, [("x-keel-session", s.token)]


SESSION, MD = None, None


def good_call(what):
    """hostd is alive and answers a correct call correctly (on the shared channel)."""
    if os.path.exists("/proc/%d" % HOSTD_PID) is False:
        fail("hostd died after %s" % what)
    cur = expect("CurrentSession after " + what,
                 code_of(STUB.CurrentSession, vim_pb2.CurrentSessionRequest(), metadata=MD),
                 SC.OK)
    if cur.user != "root":
        fail("CurrentSession after %s: %r" % (what, cur))
    print("   still serving after", what)


# ---- raw HTTP/2 ---------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
NO_ERROR, PROTOCOL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM = 0, 1, 6, 7


def frame(ftype, flags, sid, payload, length=None):
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def lit(name, value):
    """An HPACK literal header field without indexing, new name, no Huffman coding."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_headers(method, token=None):
    h = [(":method", "POST"), (":scheme", "https"), (":path", "/keel.vim.Vim/" + method),
         (":authority", "localhost"), ("content-type", "application/grpc"),
         ("te", "trailers")]
    if token:
        h.append(("x-keel-session", token))
    return b"".join(lit(k, v) for k, v in h)


def raw_connect():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection((HOST, PORT), timeout=10),
                        server_hostname="localhost")
    if s.selected_alpn_protocol() != "h2":
        fail("ALPN: %r" % s.selected_alpn_protocol())
    return s


def raw_start(s):
    """The preface, empty SETTINGS and a large connection window (responses not held)."""
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") +
              frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 30))))


class Reader:
    """Frames from a raw connection: parse what arrives until a condition or the close."""

    def __init__(self, s):
        self.s, self.buf, self.frames, self.closed = s, b"", [], False

    def pump(self, timeout):
        self.s.settimeout(timeout)
        try:
            b = self.s.recv(1 << 16)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            b = b""
        if not b:
            self.closed = True
            return False
        self.buf += b
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            self.frames.append((ftype, flags, sid, self.buf[9:9 + n]))
            self.buf = self.buf[9 + n:]
        return True

    def until(self, pred, deadline):
        end = time.monotonic() + deadline
        while not pred(self) and not self.closed:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 1.0))
        return pred(self)

    def goaway(self):
        for ftype, _, _, p in self.frames:
            if ftype == GOAWAY and len(p) >= 8:
                return (int.from_bytes(p[:4], "big") & 0x7FFFFFFF,
                        int.from_bytes(p[4:8], "big"))
        return None


def ended_streams(r):
    return {sid for ftype, flags, sid, _ in r.frames
            if sid and ((ftype in (HEADERS, DATA) and flags & END_STREAM) or ftype == RST_STREAM)}


# ---- checks ------------------------------------------------------------------------------

def check_bad_sessions():
    # A token of the right shape that hostd never issued (or one from a previous hostd):
    # refused like an expired one, with the same message.
    fake = "0" * 64
    expect("a made-up 64-digit token",
           code_of(STUB.CurrentSession, vim_pb2.CurrentSessionRequest(),
                   metadata=[("x-keel-session", fake)]),
           SC.UNAUTHENTICATED, "the session has expired or does not exist")
    # A logged-out session on a second channel: the same refusal; ours lives on.
    s2, md2 = login()
    STUB.Logout(vim_pb2.LogoutRequest(), metadata=md2, timeout=10)
    expect("a logged-out session", code_of(STUB.RetrieveInventory,
                                           vim_pb2.RetrieveInventoryRequest(), metadata=md2),
           SC.UNAUTHENTICATED, "the session has expired or does not exist")
    good_call("the refused sessions")
    print("ok a made-up and a logged-out session: UNAUTHENTICATED, others unaffected")


def unknown_field_msg(total):
    """A CurrentSessionRequest of exactly total bytes: one unknown length-delimited field
    (number 100) that protobuf keeps aside; the request decodes."""
    def varint(v):
        out = b""
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])
    key = varint((100 << 3) | 2)
    n = total - len(key) - 1
    while len(key) + len(varint(n)) + n > total:
        n -= 1
    msg = key + varint(n) + b"z" * n
    assert len(msg) == total
    return msg


def check_sizes():
    before = rss_kib()
    call = CH.unary_unary("/keel.vim.Vim/CurrentSession", request_serializer=lambda b: b,
                          response_deserializer=vim_pb2.Session.FromString)
    got = code_of(call, unknown_field_msg(MSG_MAX), metadata=MD, timeout=60)
    cur = expect("a message of exactly 4 MiB", got, SC.OK)
    if cur.user != "root":
        fail("4 MiB CurrentSession: %r" % cur)
    expect("a message of 4 MiB + 1", code_of(call, unknown_field_msg(MSG_MAX + 1),
                                              metadata=MD, timeout=60),
           SC.RESOURCE_EXHAUSTED, "larger than")
    print("ok exactly 4 MiB answered, 4 MiB + 1 RESOURCE_EXHAUSTED")

    # The prefix alone: a length of 4 GiB - 1 and no body at all. The answer (and the end
    # of the stream) must come without waiting for the body: the limit is checked on the
    # prefix, before anything is buffered.
    s = raw_connect()
    raw_start(s)
    s.sendall(frame(HEADERS, END_HEADERS, 1, request_headers("CurrentSession", SESSION.token)) +
              frame(DATA, 0, 1, b"\x00\xff\xff\xff\xff"))
    r = Reader(s)
    if not r.until(lambda r: 1 in ended_streams(r), 5):
        fail("a 4 GiB prefix without its body: the stream was not ended")
    if any(ft == DATA and sid == 1 for ft, _, sid, _ in r.frames):
        fail("a 4 GiB prefix got a message back")
    s.close()
    print("ok a 4 GiB length prefix alone: the stream ended at once, no message")

    # 20 oversized messages in a row (each 5 MiB sent in full): memory comes back.
    big = b"\x0a" * (5 << 20)
    for _ in range(20):
        expect("5 MiB", code_of(call, big, metadata=MD, timeout=60), SC.RESOURCE_EXHAUSTED)
    rss_bound("20 messages of 5 MiB", before, 24)
    good_call("the oversized messages")


def check_malformed():
    # Shapes of body grpcio can send (the rest are raw below and in hostd_grpc_client.py).
    call = CH.unary_unary("/keel.vim.Vim/CurrentSession", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    for what, body in [("a truncated varint", b"\x08\xff"),
                       ("a length past the end", b"\x0a\x10abc"),
                       ("wire type 7", b"\x0f"),
                       ("field number 0", b"\x02\x00")]:
        expect(what, code_of(call, body, metadata=MD), SC.INVALID_ARGUMENT, "does not decode")
    # Two request messages on a unary method, and none.
    two = CH.stream_unary("/keel.vim.Vim/CurrentSession", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    expect("two messages", code_of(two, iter([b"", b""]), metadata=MD), SC.INVALID_ARGUMENT)
    expect("no message", code_of(two, iter([]), metadata=MD), SC.INVALID_ARGUMENT)
    # A compressed message: not supported, said so (4 KiB of one byte, so that grpcio
    # does compress it rather than send it plain).
    expect("a gzip-compressed message",
           code_of(call, unknown_field_msg(4096), metadata=MD,
                   compression=grpc.Compression.Gzip), SC.UNIMPLEMENTED)
    good_call("malformed bodies")
    print("ok malformed bodies: INVALID_ARGUMENT (truncated varint, short length, wire type "
          "7, field 0, two messages, none), gzip UNIMPLEMENTED")


def check_truncated():
    before = rss_kib()
    hdrs = request_headers("CurrentSession", SESSION.token)
    for i in range(60):
        s = raw_connect()
        raw_start(s)
        kind = i % 3
        if kind == 0:    # a HEADERS frame cut in its middle
            s.sendall(frame(HEADERS, END_HEADERS, 1, hdrs[:20], length=len(hdrs)))
        elif kind == 1:  # a call under way: DATA announcing 4 KiB, 10 bytes sent
            s.sendall(frame(HEADERS, END_HEADERS, 1, hdrs) +
                      frame(DATA, 0, 1, b"\x00\x00\x00\x0f\xf0" + b"x" * 5, length=4096))
        else:            # nine bytes of a frame header, then nothing
            s.sendall(frame(HEADERS, END_HEADERS, 1, hdrs)[:5])
        if i % 2:
            s.close()    # close_notify, then FIN
        else:            # TCP reset, no TLS close
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    time.sleep(0.5)
    rss_bound("60 connections closed in a truncated frame", before, 8)
    good_call("truncated frames")
    print("ok 60 truncated frames then close (TLS close and TCP reset): hostd serves on")


def check_bad_lengths():
    other = vim_pb2_grpc.VimStub(channel(local=True))  # a second connection, open throughout
    expect("the other connection", code_of(other.CurrentSession,
                                           vim_pb2.CurrentSessionRequest(), metadata=MD), SC.OK)
    cases = [
        ("SETTINGS of 5 bytes", frame(SETTINGS, 0, 0, b"\x00" * 5)),
        ("PING of 7 bytes", frame(PING, 0, 0, b"\x00" * 7)),
        ("WINDOW_UPDATE of 3 bytes", frame(WINDOW_UPDATE, 0, 0, b"\x00" * 3)),
        ("DATA past SETTINGS_MAX_FRAME_SIZE",
         frame(HEADERS, END_HEADERS, 1, request_headers("CurrentSession", SESSION.token)) +
         frame(DATA, 0, 1, b"\x00" * 20000)),
        ("a 16 MiB frame length", frame(HEADERS, END_HEADERS, 1, b"\x00" * 64,
                                        length=0xFFFFFF)),
    ]
    for what, bad in cases:
        s = raw_connect()
        raw_start(s)
        try:
            s.sendall(bad)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        r = Reader(s)
        r.until(lambda r: r.closed, 5)
        s.close()
        g = r.goaway()
        if not r.closed:
            fail("%s: the connection stayed open" % what)
        if g is None or g[1] not in (FRAME_SIZE_ERROR, PROTOCOL_ERROR):
            fail("%s: want GOAWAY(FRAME_SIZE_ERROR or PROTOCOL_ERROR), got %r" % (what, g))
        expect("the other connection after " + what,
               code_of(other.CurrentSession, vim_pb2.CurrentSessionRequest(), metadata=MD),
               SC.OK)
        print("ok %s: GOAWAY(%s) and close; another connection still answers"
              % (what, {FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR", PROTOCOL_ERROR: "PROTOCOL_ERROR"}
                 [g[1]]))
    good_call("bad frame lengths")


def check_answers(futs, kinds, what):
    """Each future's answer against what its method should answer here."""
    bad = {}
    for f, k in zip(futs, kinds):
        e = f.exception()
        if k == "session":
            ok = e is None and f.result().user == "root"
        elif k == "inventory-lab":
            ok = e is None and len(f.result().hosts) >= 1 and f.result().hosts[0].id
        else:  # inventory on a lone hostd: vmkernel is missing, said after authorizing
            ok = e is not None and e.code() == SC.UNAVAILABLE and "vmkernel" in e.details()
        if not ok:
            key = "%s: %s" % (k, (e.code(), e.details()) if e else "wrong answer")
            bad[key] = bad.get(key, 0) + 1
    if bad:
        fail("%s: %r" % (what, bad))


def check_concurrent(inventory_kind):
    before = rss_kib()
    n = 1000
    kinds = ["session" if i % 2 else inventory_kind for i in range(n)]

    def issue(stub, k):
        if k == "session":
            return stub.CurrentSession.future(vim_pb2.CurrentSessionRequest(), metadata=MD,
                                              timeout=120)
        return stub.RetrieveInventory.future(vim_pb2.RetrieveInventoryRequest(), metadata=MD,
                                             timeout=120)

    t = time.monotonic()
    futs = [issue(STUB, k) for k in kinds]
    check_answers(futs, kinds, "1000 calls on one channel")
    print("ok 1000 concurrent calls on one channel (128 streams at once, the rest queued by "
          "grpcio): all answered correctly in %.1f s" % (time.monotonic() - t))

    chans = [channel(local=True) for _ in range(8)]
    stubs = [vim_pb2_grpc.VimStub(c) for c in chans]
    t = time.monotonic()
    futs = [issue(stubs[i % 8], k) for i, k in enumerate(kinds)]
    check_answers(futs, kinds, "1000 calls over 8 channels")
    print("ok 1000 concurrent calls over 8 connections: all answered correctly in %.1f s"
          % (time.monotonic() - t))
    for c in chans:
        c.close()
    rss_bound("2000 concurrent calls", before, 24)
    good_call("2000 concurrent calls")


def check_raw_streams():
    """One connection opens 1000 streams without waiting for anything: every stream is
    either answered (a Session for root) or refused (RST_STREAM(REFUSED_STREAM)), or the
    connection ends with GOAWAY (RFC 9113 allows both); meanwhile another connection is
    served."""
    before = rss_kib()
    n = 1000
    s = raw_connect()
    hdrs = request_headers("CurrentSession", SESSION.token)
    out = [PREFACE, frame(SETTINGS, 0, 0, b""),
           frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30))]
    for i in range(n):
        sid = 1 + 2 * i
        out.append(frame(HEADERS, END_HEADERS, sid, hdrs))
        out.append(frame(DATA, END_STREAM, sid, b"\x00\x00\x00\x00\x00"))
    served = []

    def other():  # a second client while the flood is in flight
        try:
            served.append(STUB.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=MD,
                                              timeout=20).user)
        except grpc.RpcError as e:
            served.append(e.code())

    th = threading.Thread(target=other)
    try:
        s.sendall(b"".join(out))
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    th.start()
    r = Reader(s)
    all_ids = {1 + 2 * i for i in range(n)}
    r.until(lambda r: all_ids <= ended_streams(r) or r.goaway(), 30)
    if not r.goaway():  # let the last frames in
        r.until(lambda r: False, 0.3)
    th.join()
    s.close()
    answered, refused, other_codes = set(), set(), {}
    bodies = {}
    for ftype, flags, sid, p in r.frames:
        if ftype == DATA and sid:
            bodies[sid] = bodies.get(sid, b"") + p
        elif ftype == RST_STREAM and sid:
            code = int.from_bytes(p[:4], "big")
            if code == REFUSED_STREAM:
                refused.add(sid)
            elif code != NO_ERROR:
                other_codes[code] = other_codes.get(code, 0) + 1
    for sid, b in bodies.items():
        if len(b) < 5 or int.from_bytes(b[1:5], "big") != len(b) - 5:
            fail("stream %d: a bad message frame %r" % (sid, b[:16]))
        sess = vim_pb2.Session.FromString(b[5:])
        if sess.user != "root":
            fail("stream %d: %r" % (sid, sess))
        answered.add(sid)
    g = r.goaway()
    if other_codes:
        fail("1000 raw streams: RST_STREAM codes %r" % other_codes)
    if answered & refused:
        fail("streams both answered and refused: %r" % sorted(answered & refused)[:5])
    if g is None:
        missing = all_ids - answered - refused
        if missing:
            fail("1000 raw streams: %d neither answered nor refused (e.g. %r)"
                 % (len(missing), sorted(missing)[:5]))
        if not refused:
            fail("1000 raw streams: none refused, past a limit of 128")
    else:
        # Streams up to last-stream-id were processed: each answered or refused.
        missing = {x for x in all_ids if x <= g[0]} - answered - refused
        if missing:
            fail("1000 raw streams, GOAWAY(%d, last %d): %d streams it took lost"
                 % (g[1], g[0], len(missing)))
    if len(answered) < 100:
        fail("1000 raw streams: only %d answered" % len(answered))
    if served != ["root"]:
        fail("another client during the flood: %r" % served)
    print("ok one connection opening 1000 streams at once: %d answered (root's Session), "
          "%d refused REFUSED_STREAM%s; another client served meanwhile"
          % (len(answered), len(refused),
             ", then GOAWAY(code %d, last stream %d)" % (g[1], g[0]) if g else ""))
    rss_bound("1000 raw streams", before, 16)
    good_call("1000 raw streams")


def check_expiry(idle_s):
    s, md = login()
    cur = STUB.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=md, timeout=10)
    if cur.idle_timeout_s != idle_s or s.idle_timeout_s != idle_s:
        fail("idle timeout: Login says %d, CurrentSession %d, want %d"
             % (s.idle_timeout_s, cur.idle_timeout_s, idle_s))
    # Used every second for 2.5 idle timeouts: each call refreshes it.
    end = time.monotonic() + idle_s * 2.5
    calls = 0
    while time.monotonic() < end:
        time.sleep(idle_s / 2)
        expect("a session used every %.1f s" % (idle_s / 2),
               code_of(STUB.CurrentSession, vim_pb2.CurrentSessionRequest(), metadata=md),
               SC.OK)
        calls += 1
    print("ok CurrentSession shows idle_timeout_s %d; the session used %d times over %.0f s "
          "stays valid" % (idle_s, calls, idle_s * 2.5))
    time.sleep(idle_s + 1)
    for what, fn, req in [("CurrentSession", STUB.CurrentSession,
                           vim_pb2.CurrentSessionRequest()),
                          ("RetrieveInventory", STUB.RetrieveInventory,
                           vim_pb2.RetrieveInventoryRequest())]:
        expect("%s after %d s idle" % (what, idle_s + 1), code_of(fn, req, metadata=md),
               SC.UNAUTHENTICATED, "the session has expired or does not exist")
    # A new login works at once; an expired session does not come back.
    s2, md2 = login()
    expect("the new session", code_of(STUB.CurrentSession, vim_pb2.CurrentSessionRequest(),
                                      metadata=md2), SC.OK)
    expect("the expired session again", code_of(STUB.CurrentSession,
                                                vim_pb2.CurrentSessionRequest(), metadata=md),
           SC.UNAUTHENTICATED, "expired")
    print("ok idle %d s: UNAUTHENTICATED \"the session has expired or does not exist\"; "
          "a new login works" % (idle_s + 1))


def main():
    global SESSION, MD
    deadline = time.monotonic() + 20
    while True:  # hostd may still be starting
        try:
            SESSION, MD = login()
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if MODE == "limits":
        check_bad_sessions()
        check_sizes()
        check_malformed()
        check_truncated()
        check_bad_lengths()
        check_concurrent("inventory-lone")
        check_raw_streams()
    elif MODE == "expiry":
        check_expiry(2)
    elif MODE == "lab":
        cur = STUB.CurrentSession(vim_pb2.CurrentSessionRequest(), metadata=MD, timeout=10)
        if cur.idle_timeout_s != 2:
            fail("KEEL_LAB_SESSION_IDLE_S=2 did not reach hostd: idle_timeout_s %d"
                 % cur.idle_timeout_s)
        check_concurrent("inventory-lab")
        check_expiry(2)
    else:
        fail("unknown mode %r" % MODE)
    CH.close()
    print("ok all")


main()
