#!/usr/bin/env python3
"""Kernel benchmarks (make bench-kernel): vmx power-on time to kguest's first console
line for 256 MiB and 1 GiB guests, QEMU's power-on to a comparable payload's first
console line, the monitor's memory overhead, and suspend/resume of a 1 GiB guest with all
memory touched. Prints "RESULT <name> <value> <unit>" lines; medians of several runs."""
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
VMX = os.path.abspath(f"{BUILD}/bin/vmx")
VMXCTL = os.path.abspath(f"{BUILD}/bin/vmxctl")
KGUEST = os.path.abspath(f"{BUILD}/guest/kguest.elf")
RUNS = int(os.environ.get("KEEL_BENCH_RUNS", "7"))


def result(name, value, unit):
    print(f"RESULT {name} {value:.2f} {unit}", flush=True)


def first_line_ms(argv, marker=b"kguest: up", timeout=30.0):
    """Starts argv with its console on stdout; returns ms until a line with marker."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buf = b""
    try:
        while time.monotonic() - t0 < timeout:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if not r:
                continue
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if marker in buf:
                return (time.monotonic() - t0) * 1000.0
        raise RuntimeError(f"no '{marker.decode()}' from {argv[0]}: {buf[-200:]!r}")
    finally:
        p.kill()
        p.wait()


def ctl(sock, *args):
    out = subprocess.run([VMXCTL, "--json", sock, *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def wait_console(path, marker, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with open(path, "rb") as f:
                if marker in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {marker!r} in {path}")


def start_vmx(tmp, name, *args):
    sock = os.path.join(tmp, name + ".sock")
    log = os.path.join(tmp, name + ".log")
    p = subprocess.Popen([VMX, "--name", name, "--ctl", sock, "--console-log", log, *args],
                         stderr=subprocess.DEVNULL)
    for _ in range(500):
        if subprocess.run([VMXCTL, sock, "status"], capture_output=True).returncode == 0:
            return p, sock, log
        time.sleep(0.01)
    raise RuntimeError("vmx did not come up")


def bench_poweron():
    for mem, name in (("256M", "poweron_ms_256m"), ("1G", "poweron_ms_1g")):
        runs = [first_line_ms([VMX, "--kernel", KGUEST, "--mem", mem]) for _ in range(RUNS)]
        result(name, statistics.median(runs), "ms")


def qemu_payload(tmp):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qemu_payload.S")
    obj, elf = os.path.join(tmp, "q.o"), os.path.join(tmp, "q.elf")
    subprocess.run(["gcc", "-m32", "-c", src, "-o", obj], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0x100000", "-o", elf, obj], check=True)
    return elf


def bench_qemu(tmp):
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        print("SKIP qemu_poweron_ms_256m: qemu-system-x86_64 not installed", flush=True)
        return
    elf = qemu_payload(tmp)
    argv = [qemu, "-accel", "kvm", "-nodefaults", "-m", "256", "-display", "none",
            "-serial", "stdio", "-kernel", elf]
    runs = [first_line_ms(argv, marker=b"kguest: up", timeout=60) for _ in range(max(3, RUNS // 2))]
    result("qemu_poweron_ms_256m", statistics.median(runs), "ms")


def bench_overhead(tmp):
    p, sock, log = start_vmx(tmp, "ovh", "--kernel", KGUEST, "--mem", "256M",
                             "--cmdline", "hb_ms=100 fill_mib=64")
    try:
        wait_console(log, b"fill done")
        time.sleep(0.2)
        s = ctl(sock, "stats")
        over = max(0, s["vmm_rss"] - s["mem_touched"]) / (1 << 20)
        result("vmm_overhead_mib", over, "MiB")
    finally:
        p.kill()
        p.wait()


def bench_suspend_resume(tmp):
    susp, resm = [], []
    state = os.path.join(tmp, "s1g.vmss")
    for i in range(3):
        p, sock, log = start_vmx(tmp, f"s{i}", "--kernel", KGUEST, "--mem", "1G",
                                 "--cmdline", "hb_ms=100 fill_mib=1000")
        try:
            wait_console(log, b"fill done", timeout=120)
            ctl(sock, "pause")
            susp.append(ctl(sock, "save", state)["elapsed_ns"] / 1e6)
        finally:
            p.kill()
            p.wait()
        p, sock, log = start_vmx(tmp, f"r{i}", "--kernel", KGUEST, "--mem", "1G", "--paused")
        try:
            resm.append(ctl(sock, "restore", state)["elapsed_ns"] / 1e6)
            ctl(sock, "resume")
        finally:
            p.kill()
            p.wait()
        size = os.path.getsize(state)
        os.unlink(state)
    result("suspend_ms_1g", statistics.median(susp), "ms")
    result("resume_ms_1g", statistics.median(resm), "ms")
    print(f"# state file for a filled 1 GiB guest: {size / (1 << 20):.0f} MiB", flush=True)


def main():
    for path in (VMX, VMXCTL, KGUEST):
        if not os.path.exists(path):
            sys.exit(f"bench-kernel: {path} missing; run make first")
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        bench_poweron()
        bench_qemu(tmp)
        bench_overhead(tmp)
        bench_suspend_resume(tmp)


if __name__ == "__main__":
    main()
