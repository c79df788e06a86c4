#!/usr/bin/env python3
"""Client of kguest's UDP sequencer (port 9, kernel/guest/ip.c) for FT's output-commit
check: sends numbered requests one at a time (retrying after RETRY_S), each answered with
the guest's request counter after it counted that request. A guest that forgot a reply it
had released would answer later with a counter at or below one already seen, so every
reply's counter must exceed every earlier reply's. Runs for SECONDS (or until the file
STOP_FILE appears) and prints one line:
  requests=N replies=N violations=N max_gap_ms=G gap_at=T last=C
where max_gap_ms is the longest time without a reply (a failover shows as that gap) and
gap_at its end, seconds from the start. Exit status 1 when there was a violation.
Usage: udp_seq_client.py ADDR SECONDS [STOP_FILE]"""
import os
import socket
import struct
import sys
import time

RETRY_S = 0.1


def main():
    addr, seconds = sys.argv[1], float(sys.argv[2])
    stop_file = sys.argv[3] if len(sys.argv) > 3 else None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(RETRY_S)
    t0 = time.monotonic()
    last_reply = t0
    max_gap, gap_at = 0.0, 0.0
    highest = 0
    requests = replies = violations = 0
    rid = 0
    while time.monotonic() - t0 < seconds:
        if stop_file and os.path.exists(stop_file):
            break
        rid += 1
        msg = struct.pack(">QQ", rid, 0) + b"keel-ft-seq"
        got = False
        while not got and time.monotonic() - t0 < seconds:
            s.sendto(msg, (addr, 9))
            requests += 1
            deadline = time.monotonic() + RETRY_S
            while time.monotonic() < deadline:
                try:
                    data, _ = s.recvfrom(2048)
                except socket.timeout:
                    break
                if len(data) < 16:
                    continue
                r, count = struct.unpack(">QQ", data[:16])
                now = time.monotonic()
                replies += 1
                if count <= highest:
                    violations += 1
                    print(f"violation: request {r} answered with {count} after {highest}",
                          file=sys.stderr)
                highest = max(highest, count)
                if now - last_reply > max_gap:
                    max_gap, gap_at = now - last_reply, now - t0
                last_reply = now
                if r == rid:
                    got = True
                    break
    print(f"requests={requests} replies={replies} violations={violations} "
          f"max_gap_ms={max_gap * 1000:.1f} gap_at={gap_at:.2f} last={highest}", flush=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
