#!/usr/bin/env python3
"""FT benchmarks (make bench-ft), between two vmx processes on one machine: a kguest primary
(UDP sequencer on 198.18.0.2, kernel/guest/ip.c) on a tap of a bridge in a private network
namespace, protected by a secondary vmx on another tap with the same MAC, over loopback
(encrypted, 20 ms epochs). Root and /dev/kvm.

  failover   KEEL_BENCH_FT_KILLS (20) times: the primary vmx is killed with SIGKILL while a
             client asks the sequencer; a watcher polls the secondary's FT phase every 10 ms
             and sends ft-takeover as soon as it says "lost". Failover time: the kill to the
             first reply served by the secondary. RESULT ft_vmx_failover_ms_median / _p99
             (the issue's ft_failover_ms_* is the host kill through the cluster: ft_lab.py).
  overhead   request/response with one request in flight for 3 s with FT off and on:
             RESULT ft_throughput_ratio (on/off) and ft_added_latency_ms_p50.
  bandwidth  the checkpoint stream's rate while the guest dirties 16 and 64 MiB/s of a 64 MiB
             working set: RESULT ft_ckpt_mib_s_dirty16 / _dirty64.

These are vmx-level figures; tests/bench/ft_lab.py then measures the failover through the
cluster (the primary's host killed in a lab, the takeover decided by the cluster)."""
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
VMX = os.path.abspath(f"{BUILD}/bin/vmx")
VMXCTL = os.path.abspath(f"{BUILD}/bin/vmxctl")
KGUEST = os.path.abspath(f"{BUILD}/guest/kguest.elf")
KILLS = int(os.environ.get("KEEL_BENCH_FT_KILLS", "20"))
NS = f"keel-bench-ft-{os.getpid()}"
MAC = "02:4b:45:00:00:02"
ADDR = "198.18.0.2"
FT_ID = "4b45454c465442454e43480000000001"


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def nsx(*args):
    return ["ip", "netns", "exec", NS, *args]


def result(name, value, unit):
    print(f"RESULT {name} {value:.2f} {unit}", flush=True)


def setup_ns():
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    sh("ip", "-n", NS, "link", "add", "br0", "type", "bridge")
    for t in ("ktap0", "ktap1"):
        sh("ip", "-n", NS, "tuntap", "add", "dev", t, "mode", "tap", "vnet_hdr")
        sh("ip", "-n", NS, "link", "set", t, "master", "br0")
        sh("ip", "-n", NS, "link", "set", t, "up")
    sh("ip", "-n", NS, "addr", "add", "198.18.0.1/24", "dev", "br0")
    sh("ip", "-n", NS, "link", "set", "br0", "up")


def ctl(sock, *args):
    r = subprocess.run(nsx(VMXCTL, "--json", *args[:1], sock, *args[1:]), capture_output=True,
                       text=True)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"code": -1, "error": r.stdout + r.stderr}


def start_vmx(d, name, tap, cmdline, *extra):
    for f in (f"{d}/{name}.log",):
        if os.path.exists(f):
            os.unlink(f)
    p = subprocess.Popen(nsx(VMX, "--name", name, "--ctl", f"{d}/{name}.sock", "--console-log",
                             f"{d}/{name}.log", "--kernel", KGUEST, "--mem", "256M", "--net",
                             f"{tap},mac={MAC}", "--disk", f"{d}/{name}.img", "--cmdline",
                             cmdline, *extra), stdout=subprocess.DEVNULL,
                         stderr=open(f"{d}/{name}.vmx.log", "w"))
    for _ in range(200):
        if ctl(f"{d}/{name}.sock", "ft-status").get("code") == 0:
            return p
        if p.poll() is not None:
            raise RuntimeError(f"vmx {name} exited: {open(f'{d}/{name}.vmx.log').read()}")
        time.sleep(0.02)
    raise RuntimeError(f"vmx {name} did not start")


def wait_console(path, marker, timeout=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if os.path.exists(path) and marker in open(path, "rb").read():
            return
        time.sleep(0.02)
    raise RuntimeError(f"no {marker!r} in {path}")


def wait_phase(sock, want, timeout=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j = ctl(sock, "ft-status")
        if j.get("phase") == want:
            return j
        time.sleep(0.01)
    raise RuntimeError(f"{sock}: phase {ctl(sock, 'ft-status')} instead of {want}")


def stop(p):
    if p is not None and p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()


def pair(d, port, cmdline):
    """A protected primary/secondary pair; returns (primary, secondary) Popen objects."""
    for n in ("p", "s"):
        with open(f"{d}/{n}.img", "wb") as f:
            f.truncate(16 << 20)
    p = start_vmx(d, "p", "ktap0", cmdline)
    wait_console(f"{d}/p.log", b"kguest: ready")
    s = start_vmx(d, "s", "ktap1", cmdline, "--ft-secondary", f"127.0.0.1:{port}")
    ctl(f"{d}/s.sock", "ft-in", "--key-file", f"{d}/key", "--id", FT_ID)
    r = ctl(f"{d}/p.sock", "ft-start", "--to", f"127.0.0.1:{port}", "--key-file", f"{d}/key",
            "--id", FT_ID, "--epoch-ms", "20")
    if r.get("code") != 0:
        raise RuntimeError(f"ft-start: {r}")
    wait_phase(f"{d}/p.sock", "protected")
    wait_phase(f"{d}/s.sock", "protected")
    return p, s


# ---- the client (runs inside the namespace: ft.py --client SECONDS MODE) -----------------------

def client(seconds, mode):
    """mode rtt: one request in flight, prints the RTTs; mode first: prints the time
    (CLOCK_MONOTONIC) of the first reply received after the time written into the file
    KEEL_FT_MARK (the kill: the primary released nothing after it, so that reply is the
    secondary's)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.02)
    t0 = time.monotonic()
    rtts, rid = [], 0
    mark = os.environ.get("KEEL_FT_MARK")
    while time.monotonic() - t0 < seconds:
        rid += 1
        sent = time.monotonic()
        s.sendto(struct.pack(">QQ", rid, 0), (ADDR, 9))
        try:
            while True:
                data, _ = s.recvfrom(2048)
                if len(data) >= 16 and struct.unpack(">Q", data[:8])[0] == rid:
                    break
        except socket.timeout:
            continue
        now = time.monotonic()
        rtts.append(now - sent)
        if mode == "first" and mark and os.path.exists(mark):
            with open(mark) as f:
                text = f.read().strip()
            t_kill = float(text) if text else None
            got = time.clock_gettime(time.CLOCK_MONOTONIC)
            if t_kill is not None and got > t_kill + 0.001:
                print(json.dumps({"first_reply": got}))
                return
    print(json.dumps({"rtts": rtts}))


def run_client(seconds, mode, env=None):
    return subprocess.Popen(nsx(sys.executable, os.path.abspath(__file__), "--client",
                                str(seconds), mode), stdout=subprocess.PIPE, text=True,
                            env=env)


# ---- the benchmarks ----------------------------------------------------------------------------

def failover_once(d, port):
    p, s = pair(d, port, "ip=198.18.0.2 counter_ms=100 disk_seq=1 disk_ms=20")
    mark = f"{d}/killed"
    if os.path.exists(mark):
        os.unlink(mark)
    env = dict(os.environ, KEEL_FT_MARK=mark)
    c = run_client(20, "first", env)
    time.sleep(0.5)
    t_kill = time.clock_gettime(time.CLOCK_MONOTONIC)
    p.send_signal(signal.SIGKILL)
    with open(mark + ".tmp", "w") as f:
        f.write(f"{t_kill}\n")
    os.rename(mark + ".tmp", mark)
    wait_phase(f"{d}/s.sock", "lost", timeout=10)
    r = ctl(f"{d}/s.sock", "ft-takeover", "--epoch", "2")
    if r.get("code") != 0:
        raise RuntimeError(f"takeover: {r}")
    out, _ = c.communicate(timeout=30)
    p.wait()
    stop(s)
    first = json.loads(out)["first_reply"]
    return (first - t_kill) * 1000.0


def rtt_run(d, port, ft):
    cmd = "ip=198.18.0.2 counter_ms=1000"
    if ft:
        p, s = pair(d, port, cmd)
    else:
        with open(f"{d}/p.img", "wb") as f:
            f.truncate(16 << 20)
        p, s = start_vmx(d, "p", "ktap0", cmd), None
        wait_console(f"{d}/p.log", b"kguest: ready")
    c = run_client(3, "rtt")
    out, _ = c.communicate(timeout=60)
    stop(p)
    stop(s)
    return json.loads(out)["rtts"]


def bandwidth(d, port, rate):
    p, s = pair(d, port, f"ip=198.18.0.2 counter_ms=1000 fill_mib=64 dirty_ws_mib=64 "
                         f"dirty_mib_s={rate}")
    j0 = ctl(f"{d}/p.sock", "ft-status")
    t0 = time.monotonic()
    time.sleep(3)
    j1 = ctl(f"{d}/p.sock", "ft-status")
    t1 = time.monotonic()
    stop(p)
    stop(s)
    return (j1["bytes"] - j0["bytes"]) / (t1 - t0) / 1048576.0, j1


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(float(sys.argv[2]), sys.argv[3])
        return
    for f in (VMX, VMXCTL, KGUEST):
        if not os.path.exists(f):
            sys.exit(f"ft bench: {f} missing (make first)")
    d = tempfile.mkdtemp(prefix="keel-bench-ft-")
    with open(f"{d}/key", "w") as f:
        f.write(os.urandom(32).hex())
    setup_ns()
    try:
        port = 29800
        times = []
        for i in range(KILLS):
            port += 1
            times.append(failover_once(d, port))
        print(f"# failover samples (ms): {', '.join(f'{t:.0f}' for t in times)}", flush=True)
        result("ft_vmx_failover_ms_median", statistics.median(times), "ms")
        result("ft_vmx_failover_ms_p99", pct(times, 0.99), "ms")

        off = rtt_run(d, port + 1, False)
        on = rtt_run(d, port + 2, True)
        print(f"# request/response: off {len(off)} in 3 s (p50 {statistics.median(off) * 1000:.2f}"
              f" ms), on {len(on)} in 3 s (p50 {statistics.median(on) * 1000:.2f} ms)", flush=True)
        result("ft_throughput_ratio", len(on) / max(1, len(off)), "x")
        result("ft_added_latency_ms_p50",
               (statistics.median(on) - statistics.median(off)) * 1000.0, "ms")

        for i, rate in enumerate((16, 64)):
            bw, j = bandwidth(d, port + 3 + i, rate)
            print(f"# dirty {rate} MiB/s: pause {j['last_pause_us']} us (max "
                  f"{j['max_pause_us']} us), last checkpoint {j['last_ckpt_bytes'] >> 10} KiB, "
                  f"lag {j['lag_us']} us", flush=True)
            result(f"ft_ckpt_mib_s_dirty{rate}", bw, "MiB/s")
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        subprocess.run(["rm", "-rf", d])
    # then the same failover through the cluster, the primary's host killed in a lab
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ft_lab  # noqa: E402

    ft_lab.main()


if __name__ == "__main__":
    main()
