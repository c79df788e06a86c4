#!/usr/bin/env python3
"""Sends N numbered UDP datagrams to HOST:PORT one at a time and counts the echoes that
come back intact within the timeout. Prints "sent=N replies=M lost=K rtt_ms=median".
Usage: udp_echo_client.py HOST PORT N [timeout_s]"""
import socket
import statistics
import sys
import time

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
replies, rtts = 0, []
for i in range(n):
    msg = f"keel-echo {i} {'x' * (i % 200)}".encode()
    t0 = time.monotonic()
    s.sendto(msg, (host, port))
    try:
        while True:
            data, _ = s.recvfrom(2048)
            if data == msg:
                replies += 1
                rtts.append((time.monotonic() - t0) * 1000)
                break
    except socket.timeout:
        pass
rtt = statistics.median(rtts) if rtts else 0.0
print(f"sent={n} replies={replies} lost={n - replies} rtt_ms={rtt:.3f}")
