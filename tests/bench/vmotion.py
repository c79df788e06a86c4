#!/usr/bin/env python3
"""vMotion benchmarks (make bench-vmotion): live migration of a kguest between two vmx
processes over loopback, encrypted, the cluster's default settings (2 streams per adapter, 5
ms downtime target, 30 rounds; KEEL_VMO_STREAMS overrides the streams), committed at once.
Cases: filled1g (1 GiB guest, memory filled then idle), dirty64 / dirty256 (1 GiB guest, 512
MiB working set dirtied at 64 / 256 MiB/s), untouched1g (1 GiB never touched). Prints
"RESULT vmotion_<case>_total_ms|_downtime_ms|_mib_sent <value> <unit>", medians of
KEEL_BENCH_RUNS (3) runs; total is the migration's start to the end of the commit, downtime
the guest's pause on the source to RESUMED from the destination, both measured by the source
vmx. When tests/bench/vmotion_qemu.py exists, the same cases in QEMU follow (RESULT
qemu_<case>_total_ms|_downtime_ms) with the ratios as comments."""
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
VMX = os.path.abspath(f"{BUILD}/bin/vmx")
VMXCTL = os.path.abspath(f"{BUILD}/bin/vmxctl")
KGUEST = os.path.abspath(f"{BUILD}/guest/kguest.elf")
RUNS = int(os.environ.get("KEEL_BENCH_RUNS", "3"))
STREAMS = os.environ.get("KEEL_VMO_STREAMS", "2")  # clusterd's Migrate.StreamsPerAdapter
PLAIN = ["--no-encrypt"] if os.environ.get("KEEL_VMO_PLAIN") == "1" else []  # Migrate.Encrypt=0
MIG_ID = "4b45454c42454e434800000000000001"

# case: (memory, command line, console line that means "ready to migrate")
CASES = {
    "filled1g": ("1G", "counter_ms=0 hb_ms=100 fill_mib=1000", b"kguest: fill done"),
    "dirty64": ("1G", "counter_ms=0 hb_ms=100 fill_mib=512 dirty_ws_mib=512 dirty_mib_s=64",
                b"kguest: fill done"),
    "dirty256": ("1G", "counter_ms=0 hb_ms=100 fill_mib=512 dirty_ws_mib=512 dirty_mib_s=256",
                 b"kguest: fill done"),
    "untouched1g": ("1G", "counter_ms=0 hb_ms=100", b"kguest: ready"),
}


def result(name, value, unit):
    print(f"RESULT {name} {value:.2f} {unit}", flush=True)


def wait_file(path, marker, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with open(path, "rb") as f:
                if marker in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"no '{marker.decode()}' in {path}")


def start_vmx(d, name, mem, cmdline, *extra):
    sock = f"{d}/{name}.sock"
    for f in (f"{d}/{name}.log", f"{d}/{name}.vmx.log"):  # the console log appends
        if os.path.exists(f):
            os.unlink(f)
    p = subprocess.Popen([VMX, "--name", name, "--ctl", sock, "--console-log",
                          f"{d}/{name}.log", "--kernel", KGUEST, "--mem", mem, "--cmdline",
                          cmdline, *extra], stdout=subprocess.DEVNULL,
                         stderr=open(f"{d}/{name}.vmx.log", "w"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        if subprocess.run([VMXCTL, sock, "status"], capture_output=True).returncode == 0:
            return p, sock
        if p.poll() is not None:
            raise RuntimeError(f"vmx {name} exited: {open(f'{d}/{name}.vmx.log').read()}")
        time.sleep(0.02)
    raise RuntimeError(f"vmx {name} did not open its control socket")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def migrate_once(case, d):
    mem, cmdline, marker = CASES[case]
    port = random.randint(20000, 40000)
    src, ssock = start_vmx(d, "src", mem, cmdline)
    dst = None
    try:
        wait_file(f"{d}/src.log", marker)
        dst, dsock = start_vmx(d, "dst", mem, cmdline, "--incoming", f"127.0.0.1:{port}")
        inc = subprocess.Popen([VMXCTL, "migrate-in", dsock, "--key-file", f"{d}/key", "--id",
                                MIG_ID, "--streams", STREAMS, *PLAIN], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        out = subprocess.run([VMXCTL, "--json", "migrate", ssock, "--to", f"127.0.0.1:{port}",
                              "--key-file", f"{d}/key", "--id", MIG_ID, "--streams", STREAMS,
                              *PLAIN, "--commit", "2"],
                             capture_output=True, text=True, timeout=120)
        inc.wait(10)
        r = json.loads(out.stdout)
        if r["code"] != 0 or r.get("phase") != "committed":
            raise RuntimeError(f"{case}: {out.stdout} {out.stderr}")
        if src.wait(10) != 4:
            raise RuntimeError(f"{case}: the source did not exit as migrated")
        return {"total_ms": r["total_us"] / 1000.0, "downtime_ms": r["downtime_us"] / 1000.0,
                "mib_sent": r["bytes_sent"] / 1048576.0, "rounds": r["round"],
                "throttle": r["throttle_pct"]}
    finally:
        stop(src)
        if dst is not None:
            stop(dst)


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    for f in (VMX, VMXCTL, KGUEST):
        if not os.path.exists(f):
            sys.exit(f"vmotion bench: {f} missing (make first)")
    d = tempfile.mkdtemp(prefix="keel-bench-vmo-")
    with open(f"{d}/key", "w") as f:
        f.write(os.urandom(32).hex())
    ours = {}
    try:
        for case in CASES:
            runs = [migrate_once(case, d) for _ in range(RUNS)]
            ours[case] = {k: median_of(runs, k) for k in ("total_ms", "downtime_ms", "mib_sent")}
            result(f"vmotion_{case}_total_ms", ours[case]["total_ms"], "ms")
            result(f"vmotion_{case}_downtime_ms", ours[case]["downtime_ms"], "ms")
            result(f"vmotion_{case}_mib_sent", ours[case]["mib_sent"], "MiB")
            print(f"# {case}: rounds {[r['rounds'] for r in runs]}, throttle "
                  f"{[r['throttle'] for r in runs]}%", flush=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import vmotion_qemu  # noqa: E402 (optional: the QEMU baseline)
    except ImportError:
        print("# tests/bench/vmotion_qemu.py is not there: no QEMU comparison", flush=True)
        return
    for case in CASES:
        qruns = []
        for _ in range(RUNS):
            qd = tempfile.mkdtemp(prefix="keel-bench-vmoq-")
            try:
                qruns.append(vmotion_qemu.run_case(case, qd))
            except Exception as e:  # the baseline is optional; report and go on
                print(f"# QEMU {case}: {type(e).__name__}: {e}", flush=True)
            finally:
                shutil.rmtree(qd, ignore_errors=True)
        if not qruns:
            continue
        q = {k: median_of(qruns, k) for k in ("total_ms", "downtime_ms", "mib_sent")}
        result(f"qemu_{case}_total_ms", q["total_ms"], "ms")
        result(f"qemu_{case}_downtime_ms", q["downtime_ms"], "ms")
        o = ours[case]
        for k in ("total_ms", "downtime_ms"):
            ratio = o[k] / q[k] if q[k] else float("inf")
            print(f"# ratio {case} {k}: keel {o[k]:.2f} / qemu {q[k]:.2f} = {ratio:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
