#!/usr/bin/env python3
"""Helpers of vmx_migrate.sh (loopback only):

  memcmp PID1 PID2            compares the guest RAM (memfd "keel-guest-ram") of two vmx
                              processes page by page; prints "same N pages" or the first
                              differing pages and exits 1
  proxy PORT TARGET MODE N    listens on 127.0.0.1:PORT, forwards one connection to
                              127.0.0.1:TARGET; MODE truncate: closes both sides after N
                              bytes from the client; MODE corrupt: flips one bit of the
                              client's byte N; prints "listening" once ready
  garbage PORT N              connects to 127.0.0.1:PORT and sends N random bytes
"""
import os
import select
import socket
import sys

PAGE = 4096


def guest_ram(pid):
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{name}").startswith("/memfd:keel-guest-ram"):
                return f"{fd_dir}/{name}"
        except OSError:
            pass
    sys.exit(f"vmx {pid} has no guest RAM memfd")


def memcmp(pid1, pid2):
    p1, p2 = guest_ram(pid1), guest_ram(pid2)
    diff = []
    pages = 0
    chunk = 256 * PAGE
    with open(p1, "rb") as a, open(p2, "rb") as b:
        while True:
            x, y = a.read(chunk), b.read(chunk)
            if not x and not y:
                break
            if len(x) != len(y):
                sys.exit(f"sizes differ at page {pages}")
            if x != y:
                for i in range(0, len(x), PAGE):
                    if x[i:i + PAGE] != y[i:i + PAGE]:
                        diff.append(pages + i // PAGE)
            pages += len(x) // PAGE
    if diff:
        print(f"{len(diff)} of {pages} pages differ, first {diff[:8]}")
        sys.exit(1)
    print(f"same {pages} pages")


def proxy(port, target, mode, n):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    print("listening", flush=True)
    c, _ = ls.accept()
    s = socket.create_connection(("127.0.0.1", target))
    seen = 0
    try:
        forward(c, s, mode, n, seen)
    except OSError:
        pass  # the destination refused what it got: that is the point
    for x in (c, s, ls):
        x.close()


def forward(c, s, mode, n, seen):
    while True:
        r, _, _ = select.select([c, s], [], [], 60)
        if not r:
            break
        if c in r:
            data = c.recv(65536)
            if not data:
                break
            if mode == "truncate" and seen + len(data) >= n:
                s.sendall(data[:n - seen])
                break
            if mode == "corrupt" and seen <= n < seen + len(data):
                b = bytearray(data)
                b[n - seen] ^= 0x01
                data = bytes(b)
            seen += len(data)
            s.sendall(data)
        if s in r:
            data = s.recv(65536)
            if not data:
                break
            c.sendall(data)


def garbage(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(os.urandom(n))
        s.settimeout(5)
        s.recv(100)
    except OSError:
        pass
    s.close()


def main():
    cmd = sys.argv[1]
    if cmd == "memcmp":
        memcmp(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "proxy":
        proxy(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    elif cmd == "garbage":
        garbage(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
