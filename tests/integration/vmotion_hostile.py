#!/usr/bin/env python3
"""Hostile peers of an incoming vmx's vMotion endpoint (vmotion_faults.sh; the stream is in
docs/vmotion.md, "The stream"):

  vmotion_hostile.py random IP:PORT
      connects and sends 4 KiB of random bytes (no valid hello), then closes;
  vmotion_hostile.py truncated IP:PORT ID_HEX KEY_HEX
      sends a valid hello for stream 0 of 1 (encrypted flag set) proven with the key,
      checks the server's reply (status 0, its MAC), then the first 100 bytes of a record
      whose header announces 4096, and closes.

Prints one line saying what the server did ("reply status S", "closed", "no reply")."""
import hashlib
import hmac
import os
import socket
import struct
import sys

mode, endpoint = sys.argv[1], sys.argv[2]
host, port = endpoint.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (socket.timeout, ConnectionResetError):
            return buf
        if not chunk:
            return buf
        buf += chunk
    return buf


if mode == "random":
    try:
        s.sendall(os.urandom(4096))
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(2)
    r = read_exact(64)
    print("random: %s" % ("closed without an answer" if not r else "%d bytes answered" % len(r)))
elif mode == "truncated":
    mid, key = bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
    body = b"KEELVMO1" + struct.pack("<II", 1, 1) + mid + struct.pack("<II", 0, 1) + os.urandom(16)
    hello = body + hmac.new(key, body, hashlib.sha256).digest()
    assert len(hello) == 88
    s.sendall(hello)
    r = read_exact(64)
    if len(r) != 64:
        print("truncated: no reply to a valid hello (%d bytes)" % len(r))
        sys.exit(1)
    (status,) = struct.unpack("<i", r[12:16])
    mac = hmac.new(key, b"keel-vmotion-reply" + hello + r[:32], hashlib.sha256).digest()
    if r[:8] != b"KEELVMO1" or status != 0 or not hmac.compare_digest(mac, r[32:]):
        print("truncated: hello refused: reply status %d, MAC %s" %
              (status, "valid" if hmac.compare_digest(mac, r[32:]) else "invalid"))
        sys.exit(1)
    # a PAGES record of 4096 bytes announced; 100 sent
    try:
        s.sendall(struct.pack("<BBHI", 1, 0, 0, 4096) + os.urandom(100))
    except (BrokenPipeError, ConnectionResetError) as e:
        print("truncated: the partial record was not taken: %s" % e)
        sys.exit(1)
    print("truncated: hello accepted (reply status 0), record cut after 100 of 4096 bytes")
else:
    raise SystemExit("unknown mode " + mode)
s.close()
