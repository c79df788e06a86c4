#!/usr/bin/env python3
"""QEMU's own live migration on the vMotion workloads: the anchor that make bench-vmotion
sets Keel's vMotion figures against (tests/bench/vmotion.py calls run_case()).

Each case boots qemu_migrate_payload.S (built here into a temp dir) in two
qemu-system-x86_64 processes on KVM, the second with -incoming on 127.0.0.1, waits for
the payload's "ready" on COM1 (the fill is done, or the dirtier has started), migrates
unthrottled (max-bandwidth very high, QEMU's default 300 ms downtime limit) and reads
total-time, downtime and ram.transferred from query-migrate. See docs/vmotion.md
("QEMU anchor") for the cases and how the dirty rate is checked.

    python3 tests/bench/vmotion_qemu.py [--runs N] [--json] [--rate-check S] [CASE...]

prints "RESULT qemu_<case>_total_ms V ms", "RESULT qemu_<case>_downtime_ms V ms" and
"RESULT qemu_<case>_mib_sent V MiB" (medians), or "SKIP ..." when QEMU or /dev/kvm is
missing. Progress goes to stderr. Traffic stays on 127.0.0.1."""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOAD_SRC = os.path.join(HERE, "qemu_migrate_payload.S")

# The workloads, in the terms of kguest's command line (docs/kguest.md) so that Keel's side
# can run the same: guest RAM, fill_mib, dirty_mib_s over dirty_ws_mib. A fill runs to its
# end before "ready"; dirtying starts after it.
CASES = {
    "filled1g": {"mem_mib": 1024, "fill_mib": 1024, "dirty_mib_s": 0, "dirty_ws_mib": 0},
    "dirty64": {"mem_mib": 1024, "fill_mib": 512, "dirty_mib_s": 64, "dirty_ws_mib": 512},
    "dirty256": {"mem_mib": 1024, "fill_mib": 512, "dirty_mib_s": 256, "dirty_ws_mib": 512},
    "untouched1g": {"mem_mib": 1024, "fill_mib": 0, "dirty_mib_s": 0, "dirty_ws_mib": 0},
}

MAX_BANDWIDTH = 1 << 40  # bytes/s: far above what loopback carries, i.e. unthrottled
REPORT_MS = 100          # the dirtier's console report period
BOOT_TIMEOUT = 40.0      # qemu start to "payload: ready" (boot and fill)
MIGRATE_TIMEOUT = 40.0   # "migrate" to completed

_tsc_khz = None

TSC_CALIBRATE_C = r"""
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(void)
{
	double best = 0;
	for (int i = 0; i < 3; i++) {
		double a = now_ns();
		unsigned long long t0 = __rdtsc();
		struct timespec d = {0, 100000000};
		nanosleep(&d, NULL);
		double b = now_ns();
		unsigned long long t1 = __rdtsc();
		double khz = (t1 - t0) / ((b - a) / 1e6);
		if (i == 0 || khz < best)
			best = khz;
	}
	printf("%.0f\n", best);
	return 0;
}
"""


def log(msg):
    print(f"vmotion_qemu: {msg}", file=sys.stderr, flush=True)


def missing():
    """Why QEMU migration cannot run here, or None."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (make deps)"
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm missing"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm cannot be opened"
    return None


def build_payload(d):
    """Builds the payload into d. QEMU's multiboot loader takes only ELF32 images: the
    64-bit object is linked at 1 MiB and converted with objcopy."""
    obj, elf64, elf = (os.path.join(d, n) for n in ("p.o", "p64.elf", "payload.elf"))
    for argv in (["gcc", "-c", PAYLOAD_SRC, "-o", obj],
                 ["ld", "-m", "elf_x86_64", "-N", "--no-warn-rwx-segments",
                  "-Ttext=0x100000", "-o", elf64, obj],
                 ["objcopy", "-O", "elf32-i386", elf64, elf]):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"building the QEMU payload: {' '.join(argv[:1])} failed: "
                               f"{r.stderr.strip()[-300:]}")
    return elf


def tsc_khz(d):
    """The TSC frequency in kHz: rdtsc against CLOCK_MONOTONIC over 100 ms, lowest of 3
    (PVM has no TSC scaling, so the guest's TSC ticks at the host's rate)."""
    global _tsc_khz
    if _tsc_khz is None:
        src, exe = os.path.join(d, "tsc.c"), os.path.join(d, "tsc")
        with open(src, "w") as f:
            f.write(TSC_CALIBRATE_C)
        r = subprocess.run(["gcc", "-O2", "-o", exe, src], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"building the TSC calibration: {r.stderr.strip()[-300:]}")
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
        _tsc_khz = int(out.strip())
        if _tsc_khz < 100000:
            raise RuntimeError(f"TSC calibration gave {_tsc_khz} kHz")
        log(f"TSC {_tsc_khz} kHz (rdtsc against CLOCK_MONOTONIC)")
    return _tsc_khz


def payload_cmdline(spec, khz):
    words = [f"tsc_khz={khz}", f"report_ms={REPORT_MS}"]
    if spec["fill_mib"]:
        words.append(f"fill={spec['fill_mib']}")
    if spec["dirty_mib_s"]:
        words.append(f"dirty={spec['dirty_mib_s']},ws={spec['dirty_ws_mib']}")
    if len(words) == 2:
        words.append("idle")
    return " ".join(words)


class Console:
    """Reads a QEMU's serial output (its stdout) in a thread; keeps (monotonic time, line)."""

    def __init__(self, proc):
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.t = threading.Thread(target=self._run, args=(proc.stdout,), daemon=True)
        self.t.start()

    def _run(self, f):
        for raw in f:
            with self.cond:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, prefix, timeout, what):
        """Waits for a line starting with prefix; raises on a payload error or exception."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, line in self.lines:
                    if line.startswith(("payload: error", "payload: exception")):
                        raise RuntimeError(f"{what}: {line}")
                    if line.startswith(prefix):
                        return t
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    tail = " | ".join(l for _, l in self.lines[-3:])
                    raise RuntimeError(f"{what}: no '{prefix}' on the console within "
                                       f"{timeout:.0f} s{' (QEMU exited)' if self.eof else ''}"
                                       f"; last lines: {tail or '(none)'}")
                self.cond.wait(min(left, 0.5))

    def dirtied(self, since=0.0, until=None):
        """(time, pages) of the dirtier's reports in [since, until]."""
        with self.cond:
            return [(t, int(l.split()[2])) for t, l in self.lines
                    if l.startswith("payload: dirtied ") and t >= since
                    and (until is None or t <= until)]


class Qmp:
    """A QMP client on a unix socket: one command at a time, events skipped."""

    def __init__(self, path, proc, errlog, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if proc.poll() is not None:
                    raise RuntimeError(f"QEMU exited with status {proc.returncode}: "
                                       f"{_tail(errlog)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QMP socket {path} did not appear in {timeout:.0f} s")
                time.sleep(0.02)
        s.settimeout(timeout)
        self.sock = s
        self.proc, self.errlog = proc, errlog
        self.f = s.makefile("rwb")
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError(f"unexpected QMP greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def _gone(self, why):
        time.sleep(0.2)  # let QEMU finish its message
        state = "exited" if self.proc.poll() is not None else "is running"
        return RuntimeError(f"QMP: {why}; QEMU {state}: {_tail(self.errlog)}")

    def _read(self):
        try:
            line = self.f.readline()
        except OSError as e:
            raise self._gone(str(e)) from None
        if not line:
            raise self._gone("connection closed")
        try:
            return json.loads(line)
        except ValueError:
            raise RuntimeError(f"QMP: not JSON: {line[:200]!r}") from None

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        try:
            self.f.write(json.dumps(msg).encode() + b"\n")
            self.f.flush()
        except OSError as e:
            raise self._gone(str(e)) from None
        while True:
            r = self._read()
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error'].get('desc', r['error'])}")
            return r.get("return")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


def _tail(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip() and "host doesn't support" not in l]
        return " | ".join(lines[-3:]) or "(no message)"
    except OSError:
        return "(no message)"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_qemu(d, name, elf, spec, cmdline, extra):
    qmp = os.path.join(d, name + ".qmp")
    errlog = os.path.join(d, name + ".err")
    argv = ["qemu-system-x86_64", "-accel", "kvm", "-nodefaults", "-display", "none",
            "-name", f"vmotion-qemu-{name}", "-m", str(spec["mem_mib"]),
            "-serial", "stdio", "-qmp", f"unix:{qmp},server=on,wait=off",
            "-kernel", elf, "-append", cmdline, *extra]
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
    return proc, qmp, errlog


def _stop(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait()


def _rate_mib_s(samples):
    """MiB/s between the first and the last (time, pages) sample, or None."""
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < 0.2:
        return None
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    return (n1 - n0) / 256.0 / (t1 - t0)


def _run(case, tmpdir, rate_check_s=0.0, hugepages=False):
    """One migration of case (or, with rate_check_s, no migration: the dirtier's rate
    over that many seconds); with hugepages, guest RAM from the host's pool of 2 MiB pages
    on both sides. Returns the figures and checks."""
    if case not in CASES:
        raise ValueError(f"unknown case '{case}' (cases: {', '.join(CASES)})")
    why = missing()
    if why:
        raise RuntimeError(why)
    spec = CASES[case]
    mem = ["-object", f"memory-backend-memfd,id=ram0,size={spec['mem_mib']}M,hugetlb=on,"
           "hugetlbsize=2M", "-machine", "memory-backend=ram0"] if hugepages else []
    d = os.path.abspath(tempfile.mkdtemp(prefix="vmotion-qemu-", dir=tmpdir))
    if any(c.isspace() for c in d):
        shutil.rmtree(d, ignore_errors=True)
        raise RuntimeError(f"temp dir '{d}' has white space: QEMU passes the payload's "
                           "path on its command line")
    src = dst = None
    qsrc = qdst = None
    try:
        elf = build_payload(d)
        cmdline = payload_cmdline(spec, tsc_khz(d))
        port = _free_port()
        t_start = time.monotonic()
        log(f"{case}: starting source and destination (-m {spec['mem_mib']}, '{cmdline}')")
        src, src_qmp, src_err = _start_qemu(d, "src", elf, spec, cmdline, mem)
        con_src = Console(src)
        for attempt in range(3 if not rate_check_s else 0):
            dst, dst_qmp, dst_err = _start_qemu(d, f"dst{attempt}", elf, spec, cmdline,
                                                mem + ["-incoming", f"tcp:127.0.0.1:{port}"])
            con_dst = Console(dst)
            try:
                qdst = Qmp(dst_qmp, dst, dst_err)
                break
            except RuntimeError as e:
                # The port was free a moment ago; another process may have taken it.
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                _stop(dst)
                dst = None
                port = _free_port()
        qsrc = Qmp(src_qmp, src, src_err)
        t_ready = con_src.wait_for("payload: ready", BOOT_TIMEOUT, f"{case}: source guest")
        log(f"{case}: payload ready {t_ready - t_start:.1f} s after start")

        if rate_check_s:
            time.sleep(rate_check_s)
            rate = _rate_mib_s(con_src.dirtied(t_ready))
            if rate is None:
                raise RuntimeError(f"{case}: the payload reported no dirtying")
            return {"dirty_mib_s": rate}

        qsrc.cmd("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
        qsrc.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        t_mig = time.monotonic()
        log(f"{case}: migrating to 127.0.0.1:{port}")
        while True:
            info = qsrc.cmd("query-migrate")
            status = info.get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled"):
                raise RuntimeError(f"{case}: migration {status}: "
                                   f"{info.get('error-desc', 'no reason given')}; "
                                   f"destination: {_tail(dst_err)}")
            if time.monotonic() - t_mig > MIGRATE_TIMEOUT:
                raise RuntimeError(f"{case}: migration not completed after "
                                   f"{MIGRATE_TIMEOUT:.0f} s (status {status})")
            time.sleep(0.02)
        t_done = time.monotonic()
        ram = info.get("ram", {})
        out = {"total_ms": float(info.get("total-time", 0)),
               "downtime_ms": float(info.get("downtime", 0)),
               "mib_sent": ram.get("transferred", 0) / float(1 << 20)}
        if out["total_ms"] <= 0 or (out["downtime_ms"] <= 0 and out["mib_sent"] > 64):
            # seen under load: a completed migration whose query-migrate carries no times
            raise RuntimeError(f"{case}: QEMU reported no times for a completed migration "
                               f"({out['mib_sent']:.0f} MiB sent in {t_done - t_mig:.2f} s); "
                               f"sample left out")

        # The guest must run on the destination now, and only there.
        deadline = time.monotonic() + 10.0
        while qdst.cmd("query-status").get("status") != "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{case}: destination not running after the migration")
            time.sleep(0.02)
        sstat = qsrc.cmd("query-status").get("status")
        if sstat != "postmigrate":
            raise RuntimeError(f"{case}: source is '{sstat}' after the migration")
        if spec["dirty_mib_s"]:
            before = con_src.dirtied(t_ready)
            out["src_rate_mib_s"] = _rate_mib_s(before)
            last = before[-1][1] if before else 0
            # The dirtier carries on where it was: its count goes on rising past the
            # source's last report on the destination's console.
            deadline = time.monotonic() + 5.0
            while True:
                after = con_dst.dirtied()
                if len(after) >= 2 and after[0][1] > last:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{case}: the dirtier does not run on the destination "
                                       f"(source last reported {last} pages, destination "
                                       f"{[n for _, n in after]})")
                time.sleep(0.05)
        log(f"{case}: completed in {t_done - t_mig:.2f} s: total {out['total_ms']:.0f} ms, "
            f"downtime {out['downtime_ms']:.0f} ms, {out['mib_sent']:.0f} MiB sent, "
            f"{ram.get('dirty-sync-count', '?')} dirty syncs, {ram.get('mbps', 0):.0f} Mbit/s"
            + (f", guest dirtied {out['src_rate_mib_s']:.1f} MiB/s on the source"
               if out.get("src_rate_mib_s") else ""))
        return out
    finally:
        for q in (qsrc, qdst):
            if q is not None:
                q.close()
        _stop(src)
        _stop(dst)
        shutil.rmtree(d, ignore_errors=True)


def run_case(case, tmpdir, hugepages=False):
    """Migrates case once with QEMU; returns {"total_ms", "downtime_ms", "mib_sent"}.
    With hugepages, guest RAM comes from the host's pool of 2 MiB pages on both sides.
    Raises RuntimeError with a message on any failure; cleans up whatever happens."""
    out = _run(case, tmpdir, hugepages=hugepages)
    return {k: out[k] for k in ("total_ms", "downtime_ms", "mib_sent")}


def dirty_rate(case, tmpdir, seconds=3.0):
    """Boots case without migrating and returns the rate (MiB/s of pages, host time) that
    the payload's dirtier reaches over the given seconds."""
    if not CASES.get(case, {}).get("dirty_mib_s"):
        raise ValueError(f"case '{case}' does not dirty memory")
    return _run(case, tmpdir, rate_check_s=seconds)["dirty_mib_s"]


def main():
    ap = argparse.ArgumentParser(
        description="QEMU live migration of the vMotion workloads (the anchor for "
                    "make bench-vmotion). Prints RESULT lines of medians.")
    ap.add_argument("cases", nargs="*", metavar="CASE",
                    help=f"cases to run (default all: {' '.join(CASES)})")
    ap.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object {case: {figure: median}} instead")
    ap.add_argument("--rate-check", type=float, metavar="S", default=0.0,
                    help="do not migrate: measure the dirtier's rate over S seconds for "
                         "the dirty cases")
    a = ap.parse_args()
    cases = a.cases or list(CASES)
    bad = [c for c in cases if c not in CASES]
    if bad:
        ap.error(f"unknown case {', '.join(bad)} (cases: {', '.join(CASES)})")
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    if a.rate_check < 0 or a.rate_check > 60:
        ap.error("--rate-check must be between 0 and 60 seconds")
    why = missing()
    if why:
        print(f"SKIP qemu_vmotion: {why}", flush=True)
        return 0
    try:
        results = _main_runs(a, cases)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"vmotion_qemu: error: {e}", file=sys.stderr, flush=True)
        return 1
    if a.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def _main_runs(a, cases):
    results = {}
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        for case in cases:
            if a.rate_check:
                if not CASES[case]["dirty_mib_s"]:
                    continue
                runs = [dirty_rate(case, tmp, a.rate_check) for _ in range(a.runs)]
                results[case] = {"dirty_mib_s": statistics.median(runs)}
                if not a.json:
                    print(f"RESULT qemu_{case}_dirty_mib_s {results[case]['dirty_mib_s']:.2f}"
                          f" MiB/s", flush=True)
                continue
            runs = [_run(case, tmp) for _ in range(a.runs)]
            med = {k: statistics.median(r[k] for r in runs)
                   for k in ("total_ms", "downtime_ms", "mib_sent")}
            rates = [r["src_rate_mib_s"] for r in runs if r.get("src_rate_mib_s")]
            if rates:
                med["dirty_mib_s"] = statistics.median(rates)
            results[case] = med
            if a.json:
                continue
            print(f"RESULT qemu_{case}_total_ms {med['total_ms']:.2f} ms", flush=True)
            print(f"RESULT qemu_{case}_downtime_ms {med['downtime_ms']:.2f} ms", flush=True)
            print(f"RESULT qemu_{case}_mib_sent {med['mib_sent']:.2f} MiB", flush=True)
            if rates:
                print(f"# qemu_{case}: the guest dirtied {med['dirty_mib_s']:.1f} MiB/s "
                      f"(asked {CASES[case]['dirty_mib_s']}) while migrating", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
