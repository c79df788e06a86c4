#!/usr/bin/env python3
"""HA benchmarks (make bench-ha) on a 4-host lab (`keel lab up 4`, needs root and /dev/kvm):
a cluster of all four hosts (HA on, the default failure timeout of 1000 ms), kguest VMs on
the shared datastore shared1, and rounds of `keel lab host-kill` of a host that is not the
Raft leader (the victims take turns). Each round is timed from just before host-kill starts
(time.monotonic()) to what the benchmark sees by polling every POLL_S:

- ha_declare_ms: the leader's state (ClusterStatus from its clusterd.sock) says the victim
  is failed;
- ha_first_poweron_ms: the first of the victim's VMs is owned by another host at a higher
  epoch in the leader's registry and that host's vmkernel (vmkernel.sock, VmkVmList)
  reports it poweredOn;
- ha_heartbeat_back_ms: that VM's guest heartbeat is back: the new vmx (its control socket
  <host state dir>/run/<uuid>.ctl, VmxStats) reports heartbeat_seq > 0 with
  heartbeat_age_ms <= HB_FRESH_MS;
- ha_all64_ms: in the rounds with 64 VMs on the victim, all 64 are poweredOn elsewhere.

ROUNDS rounds (KEEL_BENCH_HA_ROUNDS, default 20) have one VM on the victim and give the
first three; ROUNDS64 rounds (KEEL_BENCH_HA64_ROUNDS, default 5) have 64 and give the last
(their declare and first-power-on times are printed as comments). The VMs are kguest with
VM_MIB MiB and the cmdline "counter_ms=1000 hb_ms=100". After each kill the victim is
started again (`keel lab host-start`); the next round begins once the cluster is whole again
(every host connected, 3 voters, every node applied up to the leader's commit index) and
the returned host has let the moved VMs go; the round's VMs are powered off and destroyed
on their new owners in between, so the hosts do not fill up.

Everything is polled through the daemons' control sockets directly (frames of lib/frame.h:
a 4-byte big-endian length, then the protobuf message; stubs made with protoc from
proto/cluster.proto and proto/vmk.proto), never by running keel per poll. A figure is the
time the reply showing the change arrived, so it may be late by up to one poll interval
plus the call.

Prints "RESULT <name> <value> <unit>" lines, comments ("# ...") with detail, progress on
stderr. KEEL_BENCH_QUICK=1 makes a smoke run: 3 one-VM rounds and one 64-VM round (the
result names stay the same). Targets: declared <= 1 s, first VM on <= 3 s, all 64 <= 10 s."""
import concurrent.futures
import json
import math
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-protobuf lives there
try:
    import google.protobuf  # noqa: F401
except ImportError:
    if (os.path.exists(SYSTEM_PYTHON)
            and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)):
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, *sys.argv])
    sys.exit("bench-ha: needs the python3 protobuf module (python3-protobuf)")

BUILD = os.environ.get("BUILD", "build")
KEEL = os.path.abspath(f"{BUILD}/bin/keel")
TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
QUICK = os.environ.get("KEEL_BENCH_QUICK") == "1"

HOSTS = 4
VOTERS = 3                       # clusterd keeps 3 voters below 7 hosts
ROUNDS = int(os.environ.get("KEEL_BENCH_HA_ROUNDS", 3 if QUICK else 20))
ROUNDS64 = int(os.environ.get("KEEL_BENCH_HA64_ROUNDS", 1 if QUICK else 5))
MANY = 64                        # VMs on the victim in the big rounds
VM_MIB = 32
CMDLINE = "counter_ms=1000 hb_ms=100"
POLL_S = 0.01                    # poll interval
HB_FRESH_MS = 300                # a heartbeat this recent counts as back (hb_ms=100)
ROUND_TIMEOUT_S = 90             # a round that is not over by then fails the benchmark
FAILURE_TIMEOUT_MS = 1000        # the cluster's default, checked

# Targets (the comment line names them).
TARGET_DECLARE_MS = 1000
TARGET_FIRST_MS = 3000
TARGET_ALL64_MS = 10000

cpb = vpb = None  # cluster_pb2, vmk_pb2: imported once the stubs are made


def result(name, value, unit):
    print(f"RESULT {name} {value:.2f} {unit}", flush=True)


def note(text):
    """A comment line in the results (detail that is not a RESULT)."""
    print(f"# {text}", flush=True)


def progress(text):
    print(f"bench-ha: {text}", file=sys.stderr, flush=True)


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


def make_stubs(tmp):
    global cpb, vpb
    out = os.path.join(tmp, "stubs")
    os.makedirs(out, exist_ok=True)
    r = subprocess.run(["protoc", f"-I{TOP}/proto", f"--python_out={out}",
                        f"{TOP}/proto/cluster.proto", f"{TOP}/proto/vmk.proto"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"protoc: {r.stderr.strip()}")
    sys.path.insert(0, out)
    import cluster_pb2
    import vmk_pb2
    cpb, vpb = cluster_pb2, vmk_pb2


# -- the control sockets -----------------------------------------------------------------------

def rpc(path, request, reply_type, timeout=10.0):
    """One request frame to the Unix socket at path, one reply frame back (lib/frame.h).
    Raises OSError when the daemon is not there or closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sk:
        sk.settimeout(timeout)
        sk.connect(path)
        b = request.SerializeToString()
        sk.sendall(struct.pack(">I", len(b)) + b)

        def read(n):
            buf = bytearray()
            while len(buf) < n:
                c = sk.recv(n - len(buf))
                if not c:
                    raise ConnectionError(f"{path}: closed before the reply")
                buf += c
            return bytes(buf)

        n = struct.unpack(">I", read(4))[0]
        rp = reply_type()
        rp.ParseFromString(read(n))
        return rp


class Lab:
    """A `keel lab` of n hosts in dir, with host k's control sockets."""

    def __init__(self, dir, n):
        self.dir = dir
        self.n = n
        self.ids = {}  # host number -> cluster host id

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
        """keel lab down; retried for a while when keel cannot be run at the moment (a
        rebuild relinking it). True once the lab is gone."""
        deadline = time.monotonic() + 120
        while True:
            try:
                r = subprocess.run([KEEL, "lab", "down", "--dir", self.dir],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=300)
                if r.returncode == 0:
                    return True
            except (OSError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                progress(f"the lab at {self.dir} is still up: keel lab down --dir {self.dir}")
                return False
            time.sleep(1)

    def host_dir(self, k):
        return os.path.join(self.dir, "hosts", f"host{k}")

    def keel_cluster(self, k, *args):
        """`keel cluster ...` on host k (setup only); the parsed --json reply."""
        sock = os.path.join(self.host_dir(k), "vmkernel.sock")
        out = subprocess.run([KEEL, "--socket", sock, "--timeout", "15", "--json",
                              "cluster", *args], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"host{k}: keel cluster {' '.join(args)}: "
                               f"{out.stderr.strip() or out.stdout.strip()}")
        return json.loads(out.stdout)

    # -- clusterd ----------------------------------------------------------------------------

    def status(self, k, timeout=5.0):
        """Host k's ClusterStatus, or None while its clusterd does not answer."""
        try:
            rp = rpc(os.path.join(self.host_dir(k), "clusterd.sock"),
                     cpb.ClusterRequest(status=cpb.ClusterStatusRequest()),
                     cpb.ClusterReply, timeout)
        except OSError:
            return None
        return rp.status if rp.code == 0 else None

    def leader(self):
        """(host number, its status) of the leader as the first answering host sees it,
        once that host answers as leader itself; else (None, None)."""
        for k in range(1, self.n + 1):
            st = self.status(k)
            if st is None or not st.leader_id:
                continue
            name = next((h.name for h in st.hosts if h.id == st.leader_id), None)
            if name is None:
                continue
            lead = int(name[len("host"):])
            lst = self.status(lead)
            if lst is not None and lst.node_state == "leader":
                return lead, lst
        return None, None

    def whole(self):
        """The leader's number once every host is connected, VOTERS hosts are voters and
        every node has applied the leader's commit index; else None."""
        lead, st = self.leader()
        if st is None or len(st.hosts) != self.n:
            return None
        if any(h.state != cpb.HOST_CONNECTED for h in st.hosts):
            return None
        if sum(h.raft_role == cpb.RAFT_ROLE_VOTER for h in st.hosts) != VOTERS:
            return None
        for k in range(1, self.n + 1):
            s = self.status(k)
            if s is None or not s.leader_id or s.applied_index < st.commit_index:
                return None
        return lead

    def form(self):
        """create on host1, then every other host joins with a token from host1."""
        for k in range(1, self.n + 1):
            wait_for(f"host{k}'s clusterd on vmk0",
                     lambda k=k: (self.status(k) or cpb.ClusterStatus()).node_address, 60)
        self.keel_cluster(1, "create", "benchha")
        for k in range(2, self.n + 1):
            token = self.keel_cluster(1, "join-token")["token"]
            self.keel_cluster(k, "join", "198.18.0.1", "--token", token)
        lead = wait_for(f"{self.n} connected hosts, {VOTERS} voters", self.whole, 120, 0.1)
        st = self.status(lead)
        self.ids = {int(h.name[len("host"):]): h.id for h in st.hosts}
        return st

    # -- vmkernel ------------------------------------------------------------------------------

    def vmk(self, k, timeout=60.0, **req):
        """One VmkRequest to host k's vmkernel; the reply. Raises on an error reply."""
        rp = rpc(os.path.join(self.host_dir(k), "vmkernel.sock"), vpb.VmkRequest(**req),
                 vpb.VmkReply, timeout)
        if rp.code != 0:
            raise RuntimeError(f"host{k}: vmkernel {next(iter(req))}: {rp.code} {rp.error}")
        return rp

    def vm_list(self, k, timeout=5.0):
        """{uuid: VmInfo} of host k's VMs, or None while its vmkernel does not answer."""
        try:
            rp = self.vmk(k, timeout, vm_list=vpb.VmkVmList())
        except (OSError, RuntimeError):
            return None
        return {v.uuid: v for v in rp.vms}

    def vm_create_on(self, k, name, tries=5):
        """A kguest VM created and powered on on host k; its uuid. A refusal (clusterd
        too slow to answer on a loaded machine) is retried, the create under a new name."""
        for attempt in range(tries):
            spec = vpb.VmSpec(name=name if attempt == 0 else f"{name}-r{attempt}",
                              memsize_mib=VM_MIB, numvcpus=1, guest_kind="kguest",
                              cmdline=CMDLINE, datastore="shared1")
            try:
                uuid = self.vmk(k, vm_create=vpb.VmkVmCreate(spec=spec)).vms[0].uuid
                break
            except (RuntimeError, OSError) as e:
                if attempt == tries - 1:
                    raise
                progress(f"host{k}: create {spec.name}: {e}; again")
                time.sleep(1)
        for attempt in range(tries):
            try:
                self.vmk(k, vm_power_on=vpb.VmkVmPowerOn(vm=uuid))
                return uuid
            except (RuntimeError, OSError) as e:
                if attempt == tries - 1:
                    raise
                progress(f"host{k}: power-on {name}: {e}; again")
                time.sleep(1)

    def vmx_heartbeat(self, k, uuid):
        """(heartbeat_seq, heartbeat_age_ms) of the VM's vmx on host k, or None."""
        path = os.path.join(self.host_dir(k), "run", f"{uuid}.ctl")
        try:
            rp = rpc(path, vpb.VmxRequest(stats=vpb.VmxStats()), vpb.VmxReply, 2.0)
        except OSError:
            return None
        if rp.code != 0:
            return None
        return rp.stats.heartbeat_seq, rp.stats.heartbeat_age_ms


# -- the rounds --------------------------------------------------------------------------------

def place_vms(lab, victim, count, tag):
    """count VMs made and powered on on the victim, registered there (epoch, desired on) in
    the leader's registry: {uuid: epoch}."""
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        uuids = list(ex.map(lambda i: lab.vm_create_on(victim, f"{tag}-{i}"), range(count)))
    want = set(uuids)

    def registered():
        lead, st = lab.leader()
        if st is None:
            return None
        mine = {v.uuid: v.epoch for v in st.vms if v.uuid in want
                and v.owner == lab.ids[victim] and v.desired_power == cpb.POWER_ON}
        return mine if len(mine) == len(want) else None

    epochs = wait_for(f"{count} VMs registered on host{victim}", registered, 60, 0.1)
    wait_for(f"{count} VMs powered on on host{victim}",
             lambda: want <= {u for u, v in (lab.vm_list(victim) or {}).items()
                              if v.power_state == "poweredOn"}, 60, 0.1)
    return epochs


def kill_round(lab, lead, victim, epochs, heartbeat):
    """host-kill the victim and poll until it is declared failed and all its VMs (epochs:
    {uuid: epoch before}) run elsewhere, and with heartbeat the first restarted VM's guest
    heartbeats again. Times in ms from the kill: {"declare", "first", "all", "hb"}, plus
    "first_uuid", "first_host" and "polls"."""
    victim_id = lab.ids[victim]
    names = {hid: k for k, hid in lab.ids.items()}
    moved = {}   # uuid -> the host number that owns it now
    on = {}      # uuid -> ms when seen poweredOn there
    t = {"declare": None, "first": None, "all": None, "hb": None if heartbeat else 0.0}
    polls = 0

    t0 = time.monotonic()
    kill = subprocess.Popen([KEEL, "lab", "host-kill", str(victim), "--dir", lab.dir,
                             "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while True:
        tick = time.monotonic()
        polls += 1
        st = lab.status(lead, 2.0)
        at = (time.monotonic() - t0) * 1000.0
        if st is not None:
            if t["declare"] is None and any(h.id == victim_id and h.state == cpb.HOST_FAILED
                                            for h in st.hosts):
                t["declare"] = at
            for v in st.vms:
                if (v.uuid in epochs and v.uuid not in moved and v.owner != victim_id
                        and v.epoch > epochs[v.uuid] and v.owner in names):
                    moved[v.uuid] = names[v.owner]
        for k in sorted({moved[u] for u in moved if u not in on}):
            vms = lab.vm_list(k, 2.0)
            at = (time.monotonic() - t0) * 1000.0
            for u, info in (vms or {}).items():
                if moved.get(u) == k and u not in on and info.power_state == "poweredOn":
                    on[u] = at
                    if t["first"] is None:
                        t["first"], t["first_uuid"], t["first_host"] = at, u, k
        if len(on) == len(epochs) and t["all"] is None:
            t["all"] = max(on.values())
        if t["hb"] is None and t["first"] is not None:
            hb = lab.vmx_heartbeat(t["first_host"], t["first_uuid"])
            if hb and hb[0] > 0 and hb[1] <= HB_FRESH_MS:
                t["hb"] = (time.monotonic() - t0) * 1000.0
        if None not in (t["declare"], t["all"], t["hb"]) and kill.poll() is not None:
            break
        if time.monotonic() - t0 > ROUND_TIMEOUT_S:
            kill.kill()
            raise RuntimeError(f"round not over after {ROUND_TIMEOUT_S} s: declared "
                               f"{t['declare']}, {len(moved)} of {len(epochs)} VMs moved, "
                               f"{len(on)} on, heartbeat {t['hb']}")
        time.sleep(max(0.0, POLL_S - (time.monotonic() - tick)))
    _, err = kill.communicate()
    if kill.returncode != 0:
        raise RuntimeError(f"keel lab host-kill {victim}: {err.strip()}")
    t["polls"] = polls
    t["hosts"] = sorted(set(moved.values()))
    return t


def restore(lab, victim, uuids):
    """host-start the victim, wait until the cluster is whole and the victim has let the
    VMs go (uuids: {uuid: epoch before the kill}), then power off and destroy them on
    their owners. (The leader's number, the
    seconds from host-start until the victim's vmkernel answered.)"""
    t0 = time.monotonic()
    r = subprocess.run([KEEL, "lab", "host-start", str(victim), "--dir", lab.dir, "--json"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        # host-start marks the host up first and gives its vmkernel 20 s to answer; one
        # that takes longer (re-adopting many dead VMs) is waited for here.
        if "did not answer" not in r.stderr:
            raise RuntimeError(f"keel lab host-start {victim}: {r.stderr.strip()}")
        progress(f"host{victim}: {r.stderr.strip()}; waiting longer")
        wait_for(f"host{victim}'s vmkernel after host-start",
                 lambda: lab.vm_list(victim) is not None, 300, 0.2)
    back = time.monotonic() - t0
    lead = wait_for(f"the cluster whole again after host{victim}'s return", lab.whole, 120, 0.1)
    want = set(uuids)

    def let_go():
        """The victim has none of the VMs, but those the cluster has given it again (an
        HA restart elsewhere that failed, and the victim chosen next)."""
        vms = lab.vm_list(victim)
        _, st = lab.leader()
        if vms is None or st is None:
            return False
        own = {v.uuid: v.owner for v in st.vms}
        return all(own.get(u) == lab.ids[victim] for u in want & set(vms))

    try:
        wait_for(f"host{victim} letting the moved VMs go", let_go, 60, 0.1)
    except RuntimeError as e:
        vms = lab.vm_list(victim)
        left = ("no answer" if vms is None else
                ", ".join(f"{v.name} {v.power_state} ({v.last_event})"
                          for u, v in vms.items() if u in want))
        raise RuntimeError(f"{e}: host{victim} still has {left}") from None
    _, st = lab.leader()
    names = {hid: k for k, hid in lab.ids.items()}
    owners = {v.uuid: names[v.owner] for v in st.vms if v.uuid in want}
    names_of = {v.uuid: v.name for v in st.vms if v.uuid in want}
    again = {v.uuid: v.epoch for v in st.vms if v.uuid in want and v.epoch > uuids[v.uuid] + 1}

    seen = {}    # uuid -> (host, power state, last event) when the cleanup found it
    retried = {}  # uuid -> the error that made the cleanup try again

    def drop(u):
        """Power off (unless off) and destroy on the owner. An error (an operation in
        progress there: the reconciler powering it on again after its vmx stopped) is
        retried for a while."""
        k = owners[u]
        deadline = time.monotonic() + 120
        while True:
            try:
                info = lab.vmk(k, vm_get=vpb.VmkVmGet(vm=u)).vms[0]
                seen.setdefault(u, (k, info.power_state, info.last_event))
                if info.power_state != "poweredOff":
                    lab.vmk(k, vm_power_off=vpb.VmkVmPowerOff(vm=u))
                lab.vmk(k, vm_destroy=vpb.VmkVmDestroy(vm=u))
                return
            except (RuntimeError, OSError) as e:
                if time.monotonic() > deadline:
                    raise
                retried.setdefault(u, str(e))
                time.sleep(0.2)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(drop, owners))
    # VMs that did not stay on after HA restarted them (seen off, or retried: a power
    # operation was in progress on them).
    odd = [f"{names_of.get(u, u)} on host{k}: {ps} ({ev})"
           + (f"; retried after: {retried[u]}" if u in retried else "")
           + (f"; epoch {again[u]} (restarted more than once)" if u in again else "")
           for u, (k, ps, ev) in seen.items()
           if ps != "poweredOn" or u in retried or u in again]
    for line in odd:
        progress(f"cleanup: {line}")
    time.sleep(0.5)  # let the restarted host settle into its heartbeat rhythm
    return wait_for("the cluster whole", lab.whole, 60, 0.1), back, odd


def bench(tmp):
    lab = Lab(os.path.join(tmp, "ha"), HOSTS)
    try:
        progress(f"{HOSTS}-host lab, cluster")
        lab.up()
        st = lab.form()
        if not st.ha_enabled:
            raise RuntimeError("HA is not on by default")
        if st.failure_timeout_ms != FAILURE_TIMEOUT_MS:
            raise RuntimeError(f"failure timeout {st.failure_timeout_ms} ms, want the default "
                               f"{FAILURE_TIMEOUT_MS}")
        lead = lab.whole()
        note(f"{HOSTS} hosts, {VOTERS} voters, HA on, failure timeout "
             f"{st.failure_timeout_ms} ms; VMs kguest {VM_MIB} MiB, \"{CMDLINE}\"; "
             f"polled every {POLL_S * 1000:.0f} ms; {os.cpu_count()} CPUs")

        one, many = [], []
        try:
            rounds(lab, lead, one, many)
        except BaseException:
            if one:
                note("the run stopped early (below); the figures are of the rounds done")
                report(one, many)
            raise
        report(one, many)
    finally:
        lab.down()


def rounds(lab, lead, one, many):
    """The one-VM rounds, then the 64-VM rounds; their times appended to one and many."""
    turn = 0
    for i in range(ROUNDS):
        others = [k for k in range(1, HOSTS + 1) if k != lead]
        victim = others[turn % len(others)]
        turn += 1
        epochs = place_vms(lab, victim, 1, f"one{i}")
        t = kill_round(lab, lead, victim, epochs, heartbeat=True)
        one.append(t)
        progress(f"1 VM {i + 1}/{ROUNDS}: host{victim} killed (leader host{lead}): "
                 f"failed {t['declare']:.0f} ms, VM on host{t['first_host']} "
                 f"{t['first']:.0f} ms, heartbeat {t['hb']:.0f} ms ({t['polls']} polls)")
        lead, t["back_s"], t["odd"] = restore(lab, victim, epochs)

    for i in range(ROUNDS64):
        others = [k for k in range(1, HOSTS + 1) if k != lead]
        victim = others[turn % len(others)]
        turn += 1
        progress(f"64 VMs {i + 1}/{ROUNDS64}: creating {MANY} VMs on host{victim}")
        epochs = place_vms(lab, victim, MANY, f"many{i}")
        t = kill_round(lab, lead, victim, epochs, heartbeat=False)
        many.append(t)
        where = ", ".join(f"host{k}" for k in t["hosts"])
        progress(f"64 VMs {i + 1}/{ROUNDS64}: host{victim} killed (leader host{lead}): "
                 f"failed {t['declare']:.0f} ms, first on {t['first']:.0f} ms, all "
                 f"{MANY} on {t['all']:.0f} ms (on {where})")
        lead, t["back_s"], t["odd"] = restore(lab, victim, epochs)


def report(one, many):
    declare = [t["declare"] for t in one]
    first = [t["first"] for t in one]
    hb = [t["hb"] for t in one]
    result("ha_declare_ms_median", statistics.median(declare), "ms")
    result("ha_declare_ms_p99", p99(declare), "ms")
    result("ha_first_poweron_ms_median", statistics.median(first), "ms")
    result("ha_first_poweron_ms_p99", p99(first), "ms")
    result("ha_heartbeat_back_ms_median", statistics.median(hb), "ms")
    if many:
        all64 = [t["all"] for t in many]
        result("ha_all64_ms_median", statistics.median(all64), "ms")
        result("ha_all64_ms_p99", p99(all64), "ms")

    def span(xs):
        return f"min {min(xs):.0f} max {max(xs):.0f} ms"

    note(f"{len(one)} one-VM rounds: declared {span(declare)}; first VM on {span(first)}; "
         f"heartbeat back {span(hb)}")
    note(f"declare samples (ms): {' '.join(f'{x:.0f}' for x in declare)}")
    note(f"first power-on samples (ms): {' '.join(f'{x:.0f}' for x in first)}")
    note(f"heartbeat back samples (ms): {' '.join(f'{x:.0f}' for x in hb)}")
    if many:
        note(f"{len(many)} rounds of {MANY} VMs: all on {span(all64)}; declared "
             f"{span([t['declare'] for t in many])}; first on "
             f"{span([t['first'] for t in many])}")
        note(f"all-{MANY} samples (ms): {' '.join(f'{x:.0f}' for x in all64)}")
        back1 = [t["back_s"] for t in one if "back_s" in t]
        back64 = [t["back_s"] for t in many if "back_s" in t]
        if back1 and back64:
            note(f"host-start until the victim's vmkernel answered: median "
                 f"{statistics.median(back1):.1f} s with 1 dead VM, "
                 f"{statistics.median(back64):.1f} s with {MANY} (max {max(back64):.1f} s)")
    odd = [x for t in one + many for x in t.get("odd", [])]
    note(f"VMs found not running, busy or moved again when the round was cleaned up: "
         f"{len(odd)} of {len(one) + MANY * len(many)}" + (f"; e.g. {odd[0]}" if odd else ""))
    met = [f"declared <= {TARGET_DECLARE_MS} ms: "
           f"{'met' if p99(declare) <= TARGET_DECLARE_MS else 'MISSED'} (p99)",
           f"first VM <= {TARGET_FIRST_MS} ms: "
           f"{'met' if p99(first) <= TARGET_FIRST_MS else 'MISSED'} (p99)"]
    if many:
        met.append(f"all {MANY} <= {TARGET_ALL64_MS} ms: "
                   f"{'met' if p99(all64) <= TARGET_ALL64_MS else 'MISSED'} (p99)")
    note("targets: " + "; ".join(met))
    load = os.getloadavg()
    note(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
         f"{os.cpu_count()} CPUs (other labs on the machine make the figures noisy)")


def main():
    if os.geteuid() != 0:
        sys.exit("bench-ha: needs root (keel lab)")
    if not os.path.exists(KEEL):
        sys.exit(f"bench-ha: {KEEL} missing; run make first")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        sys.exit("bench-ha: needs /dev/kvm (kguest VMs)")
    if ROUNDS < 1 or ROUNDS64 < 0:
        sys.exit("bench-ha: KEEL_BENCH_HA_ROUNDS must be >= 1, KEEL_BENCH_HA64_ROUNDS >= 0")
    with tempfile.TemporaryDirectory(prefix="kbh-") as tmp:
        make_stubs(tmp)
        bench(tmp)


if __name__ == "__main__":
    main()
