#!/usr/bin/env python3
"""Cluster benchmarks (make bench-cluster), each on a lab of its own (`keel lab`, needs root):

- commit latency and throughput of state commands with 3 voters (3-host lab) and 5 voters
  (7-host lab: voters are 3 below 7 hosts, 5 from 7), measured by the leader itself
  (`keel cluster bench-commit`);
- failure detection: time from SIGKILLing a non-leader host (`keel lab host-kill`) to the
  leader's "-> failed" host-state event, over 20 kills; target <= 1 s;
- leader failover: time from SIGKILLing the leader's clusterd to another node logging
  "-> leader", over 20 kills; target <= 1.5 s;
- a 32-host lab (vmkernel + clusterd per host): time to form, steady-state CPU per host.

Prints "RESULT <name> <value> <unit>" lines, comments ("# ...") with detail, progress on
stderr. KEEL_BENCH_QUICK=1 makes a smoke run: 3 kills, an 8-host lab instead of 32, fewer
commits, a 10 s CPU window (the result names stay the same)."""
import calendar
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
KEEL = os.path.abspath(f"{BUILD}/bin/keel")
QUICK = os.environ.get("KEEL_BENCH_QUICK") == "1"

KILLS = 3 if QUICK else 20              # detection and failover rounds
BIG_LAB = 8 if QUICK else 32            # hosts of the "32-host" lab
CPU_WINDOW_S = 10 if QUICK else 30      # steady-state CPU sampling window
COMMITS_LATENCY = 200 if QUICK else 2000    # bench-commit --count at window 1
COMMITS_THROUGHPUT = 1000 if QUICK else 10000  # bench-commit --count at window 64
THROUGHPUT_WINDOW = 64

CLK_TCK = os.sysconf("SC_CLK_TCK")


def result(name, value, unit):
    print(f"RESULT {name} {value:.2f} {unit}", flush=True)


def note(text):
    """A comment line in the results (detail that is not a RESULT)."""
    print(f"# {text}", flush=True)


def progress(text):
    print(f"bench-cluster: {text}", file=sys.stderr, flush=True)


def now_ms():
    """Wall clock in ms: the clock the leader stamps events with (same machine)."""
    return time.time() * 1000.0


def p99(values):
    """Nearest-rank 99th percentile (the maximum for fewer than 100 samples)."""
    s = sorted(values)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def wait_for(what, pred, timeout, interval=0.05):
    """Polls pred() until it returns something true; returns it, or raises after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Lab:
    """A `keel lab` of n hosts in its own directory, with the cluster commands of each host."""

    def __init__(self, tmp, name, n):
        self.dir = os.path.join(tmp, name)   # lab up makes it; <= 60 characters
        self.n = n

    # -- the lab ---------------------------------------------------------------------------

    def lab(self, *args):
        out = subprocess.run([KEEL, "lab", *args, "--dir", self.dir, "--json"],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"keel lab {' '.join(args)}: {out.stderr.strip() or out.stdout}")
        return json.loads(out.stdout)

    def up(self):
        self.lab("up", str(self.n))

    def down(self):
        """Reports daemon crashes first (the directory goes with the lab), then removes it."""
        for line in self.crashes():
            note(f"{os.path.basename(self.dir)}: unexpected daemon death: {line}")
            progress(f"{os.path.basename(self.dir)}: unexpected daemon death: {line}")
        subprocess.run([KEEL, "lab", "down", "--dir", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    def crashes(self):
        """The supervisor's lines about daemons that died other than by the benchmark's
        SIGKILLs: an exit status, or any signal but 9."""
        try:
            with open(os.path.join(self.dir, "lab.log"), errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return [ln for ln in lines if re.search(r"\) (exited with status|killed by signal "
                                                 r"(?!9 ))", ln)]

    def pids(self, daemon=None):
        """{(host number, daemon name): pid} of the running per-host daemons."""
        st = self.lab("status")
        res = {}
        for h in st["hosts"]:
            k = int(h["name"][len("host"):])
            for d in h["daemons"]:
                if d["running"] and d.get("pid") and daemon in (None, d["name"]):
                    res[(k, d["name"])] = d["pid"]
        return res

    def clusterd_log(self, k):
        return os.path.join(self.dir, "hosts", f"host{k}", "clusterd.out")

    # -- the cluster, through host k's vmkernel socket --------------------------------------

    def keel(self, k, *args):
        """`keel cluster ...` on host k; the parsed --json reply. Raises on failure."""
        sock = os.path.join(self.dir, "hosts", f"host{k}", "vmkernel.sock")
        out = subprocess.run([KEEL, "--socket", sock, "--timeout", "15", "--json",
                              "cluster", *args], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"host{k}: keel cluster {' '.join(args)}: "
                               f"{out.stderr.strip() or out.stdout.strip()}")
        return json.loads(out.stdout)

    def status(self, k):
        """Host k's cluster status, or None while it does not answer (restarting, electing)."""
        try:
            return self.keel(k, "status")
        except (RuntimeError, ValueError, subprocess.TimeoutExpired):
            return None

    def leader(self, ask=None):
        """The leader's host number as the first answering host (ask: the hosts to ask)
        sees it, or None. Host K's vmk0 is 198.18.0.K."""
        for k in ask or range(1, self.n + 1):
            st = self.status(k)
            if st and st.get("leader_id") and st.get("leader_address"):
                return int(st["leader_address"].split(":")[0].split(".")[3])
        return None

    def settled(self, voters):
        """The leader's status once every host is connected and `voters` hosts are Raft
        voters, else None."""
        k = self.leader()
        st = k and self.status(k)
        if not st or st.get("node_state") != "leader" or len(st["hosts"]) != self.n:
            return None
        if any(h["state"] != "connected" for h in st["hosts"]):
            return None
        if sum(h["raft_role"] == "voter" for h in st["hosts"]) != voters:
            return None
        return st

    def ready(self, k):
        """Waits until host k's clusterd answers and has its vmk0 address (it refuses create
        and join before: "vmk0 (the Management adapter) is not up yet")."""
        wait_for(f"host{k}'s clusterd on vmk0",
                 lambda: (self.status(k) or {}).get("node_address"), 60, 0.05)

    def form(self):
        """create on host1, then every other host joins with a token from host1."""
        self.ready(1)
        self.keel(1, "create", "bench")
        for k in range(2, self.n + 1):
            token = self.keel(1, "join-token")["token"]
            self.ready(k)
            self.keel(k, "join", "198.18.0.1", "--token", token)


def voters_for(n):
    """Raft voters clusterd keeps with n hosts (n >= 3): 3 below 7 hosts, 5 from 7."""
    return 3 if n < 7 else 5


def formed_lab(tmp, name, n, timeout=120):
    """A lab of n hosts with a cluster formed and settled: (lab, leader status)."""
    lab = Lab(tmp, name, n)
    try:
        lab.up()
        lab.form()
        st = wait_for(f"{n} connected hosts with {voters_for(n)} voters",
                      lambda: lab.settled(voters_for(n)), timeout, 0.1)
    except BaseException:
        lab.down()
        raise
    return lab, st


# -- commit latency and throughput -------------------------------------------------------------

def bench_commit(tmp):
    """bench-commit on the leader: latency at window 1 (each command alone: the commit
    latency a caller sees), throughput with 64 in flight (pipelined). Each run is preceded
    by a short warm-up."""
    for hosts, tag in ((3, "3v"), (7, "5v")):
        progress(f"commit: {hosts}-host lab")
        lab, st = formed_lab(tmp, f"commit{hosts}", hosts)
        try:
            voters = [h["name"] for h in st["hosts"] if h["raft_role"] == "voter"]
            note(f"commit_{tag}: {hosts} hosts, voters {', '.join(sorted(voters))}")
            k = lab.leader()

            def run(count, window):
                r = lab.keel(k, "bench-commit", "--count", str(count), "--window", str(window))
                if not r.get("ok") or r.get("count") != count:
                    raise RuntimeError(f"bench-commit: {r}")
                return r

            run(100, 8)  # warm-up
            lat = run(COMMITS_LATENCY, 1)
            thr = run(COMMITS_THROUGHPUT, THROUGHPUT_WINDOW)
            result(f"commit_p50_ms_{tag}", lat["p50_ms"], "ms")
            result(f"commit_p99_ms_{tag}", lat["p99_ms"], "ms")
            result(f"commit_ops_s_{tag}", thr["ops_s"], "ops/s")
            note(f"commit_{tag} window 1, {COMMITS_LATENCY} commands: p50 {lat['p50_ms']:.2f} "
                 f"p99 {lat['p99_ms']:.2f} max {lat.get('max_ms', 0):.2f} ms, "
                 f"{lat['ops_s']:.0f} ops/s")
            note(f"commit_{tag} window {THROUGHPUT_WINDOW}, {COMMITS_THROUGHPUT} commands: "
                 f"p50 {thr['p50_ms']:.2f} p99 {thr['p99_ms']:.2f} "
                 f"max {thr.get('max_ms', 0):.2f} ms, {thr['ops_s']:.0f} ops/s")
        finally:
            lab.down()


# -- failure detection ---------------------------------------------------------------------------

def bench_detect(tmp):
    """KILLS rounds on a 3-host lab (3 voters): host-kill a non-leader host (every process
    of it, vmkernel and clusterd), detect = the leader's "-> failed" event's at_ms minus the
    wall time just before host-kill; then host-start it and wait until it is connected and
    a voter again. The victim alternates between the non-leaders."""
    progress("detect: 3-host lab")
    lab, _ = formed_lab(tmp, "detect", 3)
    try:
        samples, from_death, kill_cmd_ms = [], [], []
        for i in range(KILLS):
            lead = lab.leader()
            others = [k for k in range(1, lab.n + 1) if k != lead]
            victim = others[i % len(others)]
            st = lab.status(lead)
            host_id = next(h["id"] for h in st["hosts"] if h["name"] == f"host{victim}")
            events = lab.keel(lead, "events", "--limit", "1")["events"]
            since = events[-1]["seq"] if events else 0

            cd_pid = lab.pids("clusterd")[(victim, "clusterd")]
            t_kill = now_ms()
            t_dead = kill_and_watch(lab, victim, cd_pid)
            kill_cmd_ms.append(now_ms() - t_kill)

            def failed_event():
                try:
                    evs = lab.keel(lead, "events", "--since", str(since))["events"]
                except RuntimeError:
                    return None
                return next((e for e in evs if e["kind"] == "host-state"
                             and e["host"] == host_id and e["message"].endswith("-> failed")),
                            None)

            ev = wait_for(f"host{victim} failed", failed_event, 15, 0.05)
            samples.append(ev["at_ms"] - t_kill)
            from_death.append(ev["at_ms"] - t_dead)
            progress(f"detect {i + 1}/{KILLS}: host{victim} failed after "
                     f"{samples[-1]:.0f} ms")
            lab.lab("host-start", str(victim))
            wait_for(f"host{victim} connected again", lambda: lab.settled(3), 60, 0.1)
            time.sleep(0.5)  # let the restarted host settle into its heartbeat rhythm
        result("detect_ms_median", statistics.median(samples), "ms")
        result("detect_ms_p99", p99(samples), "ms")
        note(f"detect samples (ms): {' '.join(f'{s:.0f}' for s in samples)}")
        note(f"host-kill command itself took median {statistics.median(kill_cmd_ms):.0f} ms "
             "(detect counts from its start)")
        note(f"counted from the victim's clusterd seen dead instead: median "
             f"{statistics.median(from_death):.0f} ms, p99 {p99(from_death):.0f} ms")
    finally:
        lab.down()


def kill_and_watch(lab, k, pid):
    """Runs `keel lab host-kill k`, watching clusterd (pid) meanwhile; returns the wall
    time (ms) it was first seen dead (a zombie or gone): when its heartbeats stopped."""
    p = subprocess.Popen([KEEL, "lab", "host-kill", str(k), "--dir", lab.dir, "--json"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t_dead = None
    while t_dead is None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                dead = f.read().rsplit(")", 1)[1].split()[0] in "ZX"
        except (FileNotFoundError, ProcessLookupError):
            dead = True
        if dead:
            t_dead = now_ms()
        elif p.poll() is not None:
            break
        else:
            time.sleep(0.001)
    _, err = p.communicate()
    if p.returncode != 0 or t_dead is None:
        raise RuntimeError(f"keel lab host-kill {k}: {err.strip() or 'clusterd still alive'}")
    return t_dead


# -- leader failover -----------------------------------------------------------------------------

LEADER_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z \S+ clusterd\[(\d+)\]: "
                         r"raft \S+ -> leader")


def log_ms(date, millis):
    """An ISO UTC log timestamp (seconds part, ms part) as wall-clock ms."""
    return calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S")) * 1000.0 + int(millis)


class LeaderWatch:
    """Follows every host's clusterd.out for "raft X -> leader" lines, reading only what
    was appended since the last look."""

    def __init__(self, lab):
        self.lab = lab
        self.offsets = {k: 0 for k in range(1, lab.n + 1)}
        self.poll()  # skip what is already there

    def poll(self):
        """New leader lines: [(wall ms, host, pid)]."""
        found = []
        for k in self.offsets:
            try:
                with open(self.lab.clusterd_log(k), "rb") as f:
                    f.seek(self.offsets[k])
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1  # whole lines only
            self.offsets[k] += end
            for line in data[:end].decode(errors="replace").splitlines():
                m = LEADER_LINE.match(line)
                if m:
                    found.append((log_ms(m[1], m[2]), k, int(m[3])))
        return found


def bench_failover(tmp):
    """KILLS rounds on a 3-host lab (3 voters): SIGKILL the leader's clusterd only (pid from
    `keel lab status`; its vmkernel stays up, and the supervisor restarts clusterd about
    100 ms later); failover = the timestamp of the first "-> leader" line logged by any
    clusterd other than the killed process, minus the wall time just before the kill. That
    line comes from clusterd's 50 ms state poll, so it may be up to 50 ms late. Before the
    next round the killed clusterd must be back, every host connected and a voter, and every
    node applied up to the leader's commit index."""
    progress("failover: 3-host lab")
    lab, _ = formed_lab(tmp, "failover", 3)
    try:
        watch = LeaderWatch(lab)
        samples, rewon = [], 0
        for i in range(KILLS):
            lead = lab.leader()
            pid = lab.pids("clusterd")[(lead, "clusterd")]
            watch.poll()

            t_kill = now_ms()
            os.kill(pid, signal.SIGKILL)

            def new_leader():
                # The 5 ms allow for log timestamps being cut to whole ms.
                return next((x for x in watch.poll() if x[2] != pid and x[0] >= t_kill - 5),
                            None)

            at, k, _ = wait_for("a new leader", new_leader, 20, 0.01)
            samples.append(at - t_kill)
            rewon += k == lead
            progress(f"failover {i + 1}/{KILLS}: host{lead} killed, host{k} leads after "
                     f"{samples[-1]:.0f} ms")
            wait_for("the cluster whole again", lambda: caught_up(lab), 60, 0.1)
            time.sleep(0.5)
        result("leader_failover_ms_median", statistics.median(samples), "ms")
        result("leader_failover_ms_p99", p99(samples), "ms")
        note(f"failover samples (ms): {' '.join(f'{s:.0f}' for s in samples)}")
        note(f"the killed host's restarted clusterd won the election {rewon} of {KILLS} times")
    finally:
        lab.down()


def caught_up(lab):
    """True once all hosts are connected voters and every node has applied the leader's
    commit index."""
    st = lab.settled(3)
    if not st:
        return False
    for k in range(1, lab.n + 1):
        s = lab.status(k)
        if not s or s.get("applied_index", 0) < st["commit_index"] or not s.get("leader_id"):
            return False
    return True


# -- the big lab: forming and idle CPU -------------------------------------------------------------

def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def bench_lab32(tmp):
    """`keel lab up N` + create + N-1 joins, until the leader sees all N hosts connected
    (and its 5 voters); then, over CPU_WINDOW_S, the CPU time of every vmkernel and
    clusterd, per host, in percent of one CPU."""
    n = BIG_LAB
    progress(f"lab{n}: up, create, {n - 1} joins")
    lab = Lab(tmp, f"lab{n}", n)
    try:
        t0 = time.monotonic()
        lab.up()
        t_up = time.monotonic()
        lab.form()
        t_joined = time.monotonic()
        wait_for(f"{n} connected hosts", lambda: lab.settled(voters_for(n)), 300, 0.2)
        t_formed = time.monotonic()
        if QUICK:
            note(f"quick run: the lab32 figures are of a {n}-host lab")
        result("lab32_form_s", t_formed - t0, "s")
        note(f"lab{n}: lab up {t_up - t0:.1f} s; create + {n - 1} joins "
             f"{t_joined - t_up:.1f} s; all connected {t_formed - t_up:.1f} s after lab up")

        progress(f"lab{n}: CPU over {CPU_WINDOW_S} s")
        pids = lab.pids()
        before = {key: cpu_ticks(pid) for key, pid in pids.items()}
        w0 = time.monotonic()
        time.sleep(CPU_WINDOW_S)
        after = {key: cpu_ticks(pid) for key, pid in pids.items()}
        wall = time.monotonic() - w0
        if lab.pids() != pids or None in before.values() or None in after.values():
            raise RuntimeError(f"lab{n}: a daemon restarted during the CPU window")
        per = {}
        for (k, name), t in after.items():
            per[name] = per.get(name, 0) + t - before[(k, name)]
        total = sum(per.values())
        result("lab32_cpu_pct_per_host", 100.0 * total / CLK_TCK / wall / n, "%")
        lead = lab.leader()
        lead_cpu = after[(lead, "clusterd")] - before[(lead, "clusterd")]
        note(f"lab{n} CPU per host: vmkernel "
             f"{100.0 * per.get('vmkernel', 0) / CLK_TCK / wall / n:.2f} %, clusterd "
             f"{100.0 * per.get('clusterd', 0) / CLK_TCK / wall / n:.2f} %; the leader's "
             f"clusterd (host{lead}) {100.0 * lead_cpu / CLK_TCK / wall:.2f} %")
    finally:
        lab.down()


def main():
    if os.geteuid() != 0:
        sys.exit("bench-cluster: needs root (keel lab)")
    if not os.path.exists(KEEL):
        sys.exit(f"bench-cluster: {KEEL} missing; run make first")
    with tempfile.TemporaryDirectory(prefix="kbc-") as tmp:
        bench_commit(tmp)
        bench_detect(tmp)
        bench_failover(tmp)
        bench_lab32(tmp)


if __name__ == "__main__":
    main()
