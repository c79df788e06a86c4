#!/usr/bin/env python3
"""UDP request/response through a migration (vmotion_workloads.sh): sends a numbered
datagram to HOST:PORT every INTERVAL_MS for SECONDS while a receiver thread takes the
echoes, then waits a second for late ones and prints one JSON object:

  {"sent", "replies", "lost", "lost_ids", "lost_runs", "lost_first_ms", "lost_last_ms",
   "max_gap_ms", "max_gap_at_ms", "rtt_ms_median", "bad", "t0_epoch_ms"}

Times are milliseconds since the first send, which was at "t0_epoch_ms" (Unix time). "lost_runs" counts the runs of consecutive
lost requests; "max_gap_ms" is the longest time between two consecutive replies, and
"max_gap_at_ms" when that gap began. "bad" counts replies that did not match any request.
When STARTED_FILE is given it is created once the first reply came back.

Usage: vmotion_udp.py HOST PORT INTERVAL_MS SECONDS [STARTED_FILE]"""
import json
import socket
import statistics
import sys
import threading
import time

host, port = sys.argv[1], int(sys.argv[2])
interval, seconds = float(sys.argv[3]) / 1000.0, float(sys.argv[4])
started_file = sys.argv[5] if len(sys.argv) > 5 else None
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.settimeout(0.2)
sent_at, got_at, bad = {}, {}, [0]
stop = threading.Event()
t0 = time.monotonic()
t0_wall = time.time()


def payload(i):
    return b"keel-vmotion %08d %s" % (i, b"y" * (i % 64))


def receiver():
    announced = False
    while not stop.is_set():
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        now = time.monotonic()
        try:
            i = int(data.split(b" ")[1])
        except (IndexError, ValueError):
            bad[0] += 1
            continue
        if data != payload(i) or i not in sent_at:
            bad[0] += 1
            continue
        got_at.setdefault(i, now)
        if started_file and not announced:
            open(started_file, "w").close()
            announced = True


th = threading.Thread(target=receiver, daemon=True)
th.start()
n = 0
next_at = t0
while time.monotonic() - t0 < seconds:
    sent_at[n] = time.monotonic()
    s.sendto(payload(n), (host, port))
    n += 1
    next_at += interval
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
time.sleep(1.0)
stop.set()
th.join()

ms = lambda t: round((t - t0) * 1000.0, 1)  # noqa: E731
lost = [i for i in range(n) if i not in got_at]
runs = sum(1 for k, i in enumerate(lost) if k == 0 or lost[k - 1] != i - 1)
times = sorted(got_at.values())
gap, gap_at = 0.0, 0.0
for a, b in zip(times, times[1:]):
    if b - a > gap:
        gap, gap_at = b - a, a
rtts = [(got_at[i] - sent_at[i]) * 1000.0 for i in got_at]
print(json.dumps({
    "sent": n,
    "replies": len(got_at),
    "lost": len(lost),
    "lost_ids": lost[:200],
    "lost_runs": runs,
    "lost_first_ms": ms(sent_at[lost[0]]) if lost else None,
    "lost_last_ms": ms(sent_at[lost[-1]]) if lost else None,
    "max_gap_ms": round(gap * 1000.0, 1),
    "max_gap_at_ms": ms(gap_at) if times else None,
    "rtt_ms_median": round(statistics.median(rtts), 3) if rtts else None,
    "bad": bad[0],
    "t0_epoch_ms": int(t0_wall * 1000),
}))
