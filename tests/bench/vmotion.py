#!/usr/bin/env python3
"""vMotion benchmarks (make bench-vmotion): live migration of a kguest between two vmx
processes over loopback, encrypted, the cluster's default settings (2 streams per adapter, 5
ms downtime target, 30 rounds; KEEL_VMO_STREAMS overrides the streams), committed at once.
Cases: filled1g (1 GiB guest, memory filled then idle), dirty64 / dirty256 (1 GiB guest, 512
MiB working set dirtied at 64 / 256 MiB/s), untouched1g (1 GiB never touched).

Guest memory: vmkernel gives its VMs large pages (--large-pages, Mem.AllocGuestLargePage=1)
when the host has a pool of 2 MiB pages. The bench makes sure the host has one big enough for
two 1 GiB guests (raising vm.nr_hugepages and touching the new pages once, as a host does when
it sets its pool aside; put back afterwards) and measures Keel with large pages (the RESULT
names of the issue) and with 4 KiB pages (vmotion_<case>_4k_*). KEEL_LARGE=0 leaves the pool
alone and measures only 4 KiB pages under the main names.

Prints "RESULT vmotion_<case>_total_ms|_downtime_ms|_mib_sent <value> <unit>", medians of
KEEL_BENCH_RUNS (3) runs; total is the migration's start to the end of the commit, downtime
the guest's pause on the source to RESUMED from the destination, both measured by the source
vmx. When tests/bench/vmotion_qemu.py exists, each run of QEMU's own migration of the same case
follows Keel's runs of it (so both see the same machine), with its default memory (RESULT
qemu_<case>_total_ms|_downtime_ms) and with the same 2 MiB pool (qemu_<case>_huge_*), and the
ratios as comments."""
import json
import mmap
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
USE_LARGE = os.environ.get("KEEL_LARGE", "1") != "0"
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


def start_vmx(d, name, mem, cmdline, *extra, large=False):
    sock = f"{d}/{name}.sock"
    for f in (f"{d}/{name}.log", f"{d}/{name}.vmx.log"):  # the console log appends
        if os.path.exists(f):
            os.unlink(f)
    p = subprocess.Popen([VMX, "--name", name, "--ctl", sock, "--console-log",
                          f"{d}/{name}.log", "--kernel", KGUEST, "--mem", mem, "--cmdline",
                          cmdline, *(["--large-pages"] if large else []), *extra], stdout=subprocess.DEVNULL,
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


def migrate_once(case, d, large=False):
    mem, cmdline, marker = CASES[case]
    port = random.randint(20000, 40000)
    src, ssock = start_vmx(d, "src", mem, cmdline, large=large)
    dst = None
    try:
        wait_file(f"{d}/src.log", marker)
        dst, dsock = start_vmx(d, "dst", mem, cmdline, "--incoming", f"127.0.0.1:{port}",
                               large=large)
        for sock, who in ((ssock, "source"), (dsock, "destination")):
            st = json.loads(subprocess.run([VMXCTL, "--json", sock, "stats"], capture_output=True,
                                           text=True).stdout)
            if st.get("mem_large_pages", False) != large:
                raise RuntimeError(f"{case}: the {who} vmx has "
                                   f"{'4 KiB' if large else '2 MiB'} pages")
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


POOL = "/proc/sys/vm/nr_hugepages"
POOL_PAGES = 2 * 512 + 16  # two 1 GiB guests in 2 MiB pages, and some room


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pool_setup():
    """Makes sure the host's pool has POOL_PAGES free, touching the pages it adds once (a
    host sets its pool aside at start; this machine's memory is slow to touch the first
    time). Returns the previous vm.nr_hugepages, or None when it cannot."""
    try:
        with open(POOL) as f:
            old = int(f.read())
    except OSError as e:
        print(f"# no large-page pool ({e}): 4 KiB pages only", flush=True)
        return None
    need = POOL_PAGES - (meminfo("HugePages_Free") - meminfo("HugePages_Rsvd"))
    if need > 0:
        with open(POOL, "w") as f:
            f.write(str(old + need))
    free = meminfo("HugePages_Free") - meminfo("HugePages_Rsvd")
    if free < POOL_PAGES:
        with open(POOL, "w") as f:
            f.write(str(old))
        print(f"# the host could set aside only {free} pages of 2 MiB: 4 KiB pages only",
              flush=True)
        return None
    t0 = time.monotonic()
    fd = os.memfd_create("keel-bench-pool", os.MFD_HUGETLB)
    try:
        size = free * 2 * 1048576
        os.ftruncate(fd, size)
        m = mmap.mmap(fd, size)
        for off in range(0, size, 2 * 1048576):
            m[off] = 1  # the kernel clears the whole 2 MiB page on this first touch
        m.close()
    finally:
        os.close(fd)
    print(f"# pool: {free} pages of 2 MiB free (vm.nr_hugepages {old} -> "
          f"{old + max(need, 0)}), touched once in {(time.monotonic() - t0) * 1000:.0f} ms",
          flush=True)
    return old


def pool_restore(old):
    if old is not None:
        with open(POOL, "w") as f:
            f.write(str(old))


def main():
    for f in (VMX, VMXCTL, KGUEST):
        if not os.path.exists(f):
            sys.exit(f"vmotion bench: {f} missing (make first)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import vmotion_qemu  # noqa: E402 (optional: the QEMU baseline)
    except ImportError:
        vmotion_qemu = None
        print("# tests/bench/vmotion_qemu.py is not there: no QEMU comparison", flush=True)
    d = tempfile.mkdtemp(prefix="keel-bench-vmo-")
    with open(f"{d}/key", "w") as f:
        f.write(os.urandom(32).hex())
    old_pool = pool_setup() if USE_LARGE else None
    large = old_pool is not None
    # what runs, per case and run, in this order: (label, RESULT prefix, function)
    kinds = []
    if large:
        kinds.append(("keel", "vmotion_{}", lambda c: migrate_once(c, d, large=True)))
    kinds.append(("keel-4k", "vmotion_{}_4k" if large else "vmotion_{}",
                  lambda c: migrate_once(c, d)))

    def qemu(case, huge):
        qd = tempfile.mkdtemp(prefix="keel-bench-vmoq-")
        try:
            return vmotion_qemu.run_case(case, qd, hugepages=huge)
        finally:
            shutil.rmtree(qd, ignore_errors=True)

    if vmotion_qemu is not None:
        kinds.append(("qemu", "qemu_{}", lambda c: qemu(c, False)))
        if large:
            kinds.append(("qemu-huge", "qemu_{}_huge", lambda c: qemu(c, True)))
    try:
        for case in CASES:
            runs = {k[0]: [] for k in kinds}
            for _ in range(RUNS):
                for label, _prefix, fn in kinds:
                    try:
                        runs[label].append(fn(case))
                    except Exception as e:
                        if not label.startswith("qemu"):
                            raise
                        print(f"# {label} {case}: {type(e).__name__}: {e}", flush=True)
            med = {}
            for label, prefix, _fn in kinds:
                if not runs[label]:
                    continue
                med[label] = {k: median_of(runs[label], k)
                              for k in ("total_ms", "downtime_ms", "mib_sent")}
                name = prefix.format(case)
                result(f"{name}_total_ms", med[label]["total_ms"], "ms")
                result(f"{name}_downtime_ms", med[label]["downtime_ms"], "ms")
                if label.startswith("keel") or label == "qemu":
                    result(f"{name}_mib_sent", med[label]["mib_sent"], "MiB")
                spread = ", ".join(f"{r['total_ms']:.0f}/{r['downtime_ms']:.1f}"
                                   for r in runs[label])
                extra = ""
                if label.startswith("keel"):
                    extra = (f"; rounds {[r['rounds'] for r in runs[label]]}, throttle "
                             f"{[r['throttle'] for r in runs[label]]}%")
                print(f"# {label} {case}: total/downtime ms per run: {spread}{extra}",
                      flush=True)
            for ours in ("keel", "keel-4k"):
                for theirs in ("qemu", "qemu-huge"):
                    if ours not in med or theirs not in med:
                        continue
                    for k in ("total_ms", "downtime_ms"):
                        o, q = med[ours][k], med[theirs][k]
                        ratio = o / q if q else float("inf")
                        print(f"# ratio {case} {k}: {ours} {o:.2f} / {theirs} {q:.2f} = "
                              f"{ratio:.2f}", flush=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        pool_restore(old_pool)


if __name__ == "__main__":
    main()
