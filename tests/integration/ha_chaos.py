"""ha_chaos.sh's driver and invariant checker (see ha_chaos.sh for the scenario).

    ha_chaos.py STUBS KEEL LABDIR NHOSTS SEED STEPS VM...

STUBS holds cluster_pb2/vmk_pb2 (protoc of proto/cluster.proto and proto/vmk.proto); the
control sockets are spoken to directly, frames of lib/frame.h (a 4-byte big-endian length,
then the message). The VMs already run (desired on) when it starts.

The main thread runs the seeded steps; a checker thread samples every CHECK_MS. What is a
failure, and why each check is robust against the sampling not being one atomic snapshot:

  - two instances running guest code (decisive): when two or more vmx processes of this
    lab name one VM (/proc scan: --name and --ctl under LABDIR/hosts/), each is asked for
    its state over its control socket; two that answer "running", with the first asked
    again afterwards and still "running", ran guest code at the same time. A vmx that
    fenced itself stops its vCPUs and answers "stopped" (reason fenced) while it lingers,
    so a lingering fenced vmx is not an overlap.
  - the disk sequence (decisive, guest-visible): every LIVE_DISK_MS each disk's header and
    the records up to its `last` (a trailing window of WINDOW records, re-read each time)
    are checked: intact, numbered, run numbers never going down, and a record once seen
    never changing its run. Records up to `last` are final for a single writer, so any
    change means a second writer (the end-of-run diskseq_check.py checks the whole disk).
  - the lock file (ha/lock.h): a valid slot always readable (never corrupt), its epoch and
    seq never going down.
  - vmkernel's view: a VM reported poweredOn by two hosts, or poweredOn on a host whose id
    the lock does not name as holder, is a failure only when it persists for PERSIST_MS
    (the hosts and the lock are read one after the other, and a host's report of a vmx
    that just stopped lags by a poll): a real double run or wrong holder persists.
  - after each fault heals (all hosts connected), within HEAL_S every VM with desired
    power on runs on exactly one host: vmkernel poweredOn only on the registry's owner, the
    lock held by that host at the registry's epoch, exactly one vmx process of the lab for
    it, fenced at that epoch and answering "running".
Prints each step with its time since the start (ha_chaos.sh printed the seed), and a summary; exit 1 on the
first failure (with what was seen), 0 otherwise.
"""
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import cluster_pb2 as cpb  # noqa: E402
import vmk_pb2 as vpb  # noqa: E402

KEEL = sys.argv[2]
LAB = sys.argv[3]
NHOSTS = int(sys.argv[4])
SEED = int(sys.argv[5])
STEPS = int(sys.argv[6])
VMS = sys.argv[7:]
HOSTS = list(range(1, NHOSTS + 1))
CHECK_MS = 50
LIVE_DISK_MS = 500
WINDOW = 60
PERSIST_MS = int(os.environ.get("KEEL_CHAOS_PERSIST_MS", "1500"))
HEAL_S = float(os.environ.get("KEEL_CHAOS_HEAL_S", "15"))
BUDGET_S = float(os.environ.get("KEEL_CHAOS_BUDGET_S", "0"))  # 0: no time limit on steps
T0 = time.time()
rng = random.Random(SEED)
MASK = (1 << 64) - 1


def ts():
    return "%7.2fs" % (time.time() - T0)


def log(*a):
    print(ts(), *a, flush=True)


class Failure(Exception):
    pass


FAILED = []  # (time, message) from the checker thread


def violation(msg):
    if not FAILED:
        FAILED.append((ts(), msg))
        log("VIOLATION:", msg)


# ---- control sockets -------------------------------------------------------------------

def rpc(path, req, reply_cls, timeout=2.0):
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.settimeout(timeout)
    try:
        sk.connect(path)
        b = req.SerializeToString()
        sk.sendall(struct.pack(">I", len(b)) + b)

        def read(n):
            out = b""
            while len(out) < n:
                c = sk.recv(n - len(out))
                if not c:
                    raise OSError("closed")
                out += c
            return out
        n = struct.unpack(">I", read(4))[0]
        rp = reply_cls()
        rp.ParseFromString(read(n))
        return rp
    finally:
        sk.close()


def hostdir(h):
    return "%s/hosts/host%d" % (LAB, h)


def vmk(h, req, timeout=2.0):
    return rpc(hostdir(h) + "/vmkernel.sock", req, vpb.VmkReply, timeout)


def cd_status(h, timeout=3.0):
    rp = rpc(hostdir(h) + "/clusterd.sock", cpb.ClusterRequest(status=cpb.ClusterStatusRequest()),
             cpb.ClusterReply, timeout)
    if rp.code:
        raise OSError("clusterd status: %d %s" % (rp.code, rp.error))
    return rp.status


def vm_list(h):
    """{name: (power_state, pid)} as host h's vmkernel reports it, or None if unreachable."""
    try:
        rp = vmk(h, vpb.VmkRequest(vm_list=vpb.VmkVmList()), 1.0)
    except OSError:
        return None
    if rp.code:
        return None
    return {v.name: (v.power_state, v.pid) for v in rp.vms}


def vmx_state(ctl):
    try:
        rp = rpc(ctl, vpb.VmxRequest(status=vpb.VmxStatus()), vpb.VmxReply, 1.0)
    except OSError as e:
        return "unreachable (%s)" % e
    if rp.code:
        return "error %d" % rp.code
    s = rp.status.state
    if s == "stopped" and rp.status.stop_reason:
        s += " (%s)" % rp.status.stop_reason
    return s


def vmx_procs():
    """{vm name: [(pid, ctl, fence host, fence epoch)]} for this lab's vmx processes."""
    out = {}
    pre = LAB + "/hosts/"
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                a = f.read().split(b"\0")
        except OSError:
            continue
        if not a or not a[0].endswith(b"vmx"):
            continue
        a = [x.decode(errors="replace") for x in a]
        kv = {a[i]: a[i + 1] for i in range(len(a) - 1) if a[i].startswith("--")}
        ctl = kv.get("--ctl", "")
        if not ctl.startswith(pre):
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        out.setdefault(kv.get("--name", "?"), []).append(
            (int(p), ctl, int(kv.get("--fence-host", "0")), int(kv.get("--fence-epoch", "0"))))
    return out


# ---- lock files (ha/lock.h) ------------------------------------------------------------

def crc32c(b):
    crc = 0xFFFFFFFF
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


CRC_CACHE = {}


def lock_read(vm):
    """(seq, host, epoch, state) of the valid slot with the higher seq; None: no lock yet;
    "corrupt" when no slot is valid and one is damaged."""
    try:
        with open("%s/shared/%s/.lock" % (LAB, vm), "rb") as f:
            d = f.read(1024)
    except FileNotFoundError:
        return None
    best = None
    damaged = False
    for i in (0, 1):
        s = d[512 * i:512 * (i + 1)]
        if len(s) < 512 or not any(s):
            continue
        magic, ver, size, seq, host, epoch, state = struct.unpack_from("<IHHQQQB", s, 0)
        crc = CRC_CACHE.get(s[:508])
        if crc is None:
            crc = crc32c(s[:508])
            CRC_CACHE.clear() if len(CRC_CACHE) > 4096 else None
            CRC_CACHE[s[:508]] = crc
        if magic != 0x314B4C4B or ver != 1 or size != 512 or \
                crc != struct.unpack_from("<I", s, 508)[0] or seq == 0:
            damaged = True
            continue
        uuid = s[40:104].rstrip(b"\0").decode(errors="replace")
        if best is None or seq > best[0]:
            best = (seq, host, epoch, state, uuid)
    if best is None:
        return "corrupt" if damaged else None
    return best


# ---- disk sequences (docs/kguest.md) ---------------------------------------------------

def fnv(words):
    h = 0xcbf29ce484222325
    for w in words:
        h ^= w
        h = (h * 0x100000001b3) & MASK
    return h


class Disk:
    def __init__(self, vm):
        self.vm = vm
        self.path = "%s/shared/%s/%s.img" % (LAB, vm, vm)
        self.seen = {}  # n -> run, for the recent window
        self.last = 0
        self.runs = 0
        self.records = 0

    def check(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            hd = os.pread(fd, 512, 0)
            if len(hd) < 512:
                return
            w = struct.unpack("<64Q", hd)
            if w[0] != 0x314851455344474b or fnv(w[:63]) != w[63]:
                return  # not started yet, or read while being rewritten: next time
            last, slots, runs = w[2], w[3], w[4]
            if runs < self.runs:
                violation("%s: disk header runs went down %d -> %d" % (self.vm, self.runs, runs))
            self.runs = runs
            if last < self.last:
                violation("%s: disk header last went down %d -> %d" % (self.vm, self.last, last))
            first = max(1, self.last - WINDOW, last - slots + 1)
            prev = None
            for n in range(first, last + 1):
                r = os.pread(fd, 512, 512 * (1 + (n - 1) % slots))
                rw = struct.unpack("<64Q", r)
                if rw[0] != 0x315251455344474b or rw[1] != n or fnv(rw[:63]) != rw[63]:
                    violation("%s: disk record %d (header last=%d) not intact: magic %#x number %d"
                              % (self.vm, n, last, rw[0], rw[1]))
                    return
                run = rw[2]
                if run > runs:
                    violation("%s: record %d has run %d above the header's %d" % (self.vm, n, run, runs))
                if prev is not None and run < prev:
                    violation("%s: record %d has run %d after run %d: two writers interleaved"
                              % (self.vm, n, run, prev))
                old = self.seen.get(n)
                if old is not None and old != run:
                    violation("%s: record %d rewritten: run %d, earlier seen as run %d"
                              % (self.vm, n, run, old))
                self.seen[n] = run
                prev = run
            self.records += max(0, last - self.last)
            self.last = last
            for n in [k for k in self.seen if k < last - 4 * WINDOW]:
                del self.seen[n]
        finally:
            os.close(fd)


# ---- the checker thread ----------------------------------------------------------------

class Checker(threading.Thread):
    def __init__(self, ids):
        super().__init__(daemon=True)
        self.ids = ids  # host number -> host id
        self.stop = threading.Event()
        self.samples = 0
        self.locks = {}  # vm -> (seq, epoch) last seen
        self.since = {}  # persisting soft conditions: key -> first time seen
        self.multi_vmx = 0  # samples with 2+ vmx processes for one VM
        self.multi_vmx_max_ms = {}
        self.multi_since = {}
        self.double_on = 0  # samples with poweredOn on 2 hosts (transient)
        self.holder_mismatch = 0
        self.disks = {vm: Disk(vm) for vm in VMS}
        self.lock = threading.Lock()

    def persist(self, key, cond, now, what):
        if not cond:
            self.since.pop(key, None)
            return
        t = self.since.setdefault(key, now)
        if now - t >= PERSIST_MS / 1000.0:
            violation("%s for %d ms" % (what, (now - t) * 1000))

    def sample(self):
        now = time.time()
        lists = {h: vm_list(h) for h in HOSTS}
        procs = vmx_procs()
        for vm in VMS:
            on = [h for h in HOSTS if lists[h] and lists[h].get(vm, ("",))[0] == "poweredOn"]
            lk = lock_read(vm)
            if lk == "corrupt":
                violation("%s: lock file corrupt (no valid slot)" % vm)
                continue
            if lk is not None:
                seq, host, epoch, state, uuid = lk
                prev = self.locks.get(vm)
                if prev and (seq < prev[0] or epoch < prev[1]):
                    violation("%s: lock went back: seq %d epoch %d after seq %d epoch %d"
                              % (vm, seq, epoch, prev[0], prev[1]))
                self.locks[vm] = (seq, epoch)
            if len(on) > 1:
                self.double_on += 1
            self.persist((vm, "double"), len(on) > 1, now,
                         "%s: poweredOn on hosts %s" % (vm, on))
            bad = [h for h in on if lk is None or lk[3] != 1 or lk[1] != self.ids[h]]
            if bad:
                self.holder_mismatch += 1
            self.persist((vm, "holder"), bool(bad), now,
                         "%s: poweredOn on host%s but the lock is %s" % (vm, bad[:1], lk))
            ps = procs.get(vm, [])
            if len(ps) > 1:
                self.multi_vmx += 1
                t = self.multi_since.setdefault(vm, now)
                self.multi_vmx_max_ms[vm] = max(self.multi_vmx_max_ms.get(vm, 0), (now - t) * 1000)
                st = [vmx_state(p[1]) for p in ps]
                running = [i for i, s in enumerate(st) if s == "running"]
                if len(running) > 1 and vmx_state(ps[running[0]][1]) == "running":
                    violation("%s: %d vmx processes running guest code at once: %s" % (
                        vm, len(running), ", ".join("pid %d host %d epoch %d %s" % (p[0], p[2], p[3], s)
                                                    for p, s in zip(ps, st))))
            else:
                self.multi_since.pop(vm, None)
        self.samples += 1

    def run(self):
        next_disk = 0
        while not self.stop.is_set():
            t = time.time()
            with self.lock:
                try:
                    self.sample()
                    if t >= next_disk:
                        for d in self.disks.values():
                            d.check()
                        next_disk = t + LIVE_DISK_MS / 1000.0
                except Exception as e:  # a checker bug must not pass silently
                    violation("checker error: %r" % e)
            time.sleep(max(0, CHECK_MS / 1000.0 - (time.time() - t)))


# ---- lab and cluster -------------------------------------------------------------------

def lab(*args):
    t = time.time()
    r = subprocess.run([KEEL, "lab"] + list(args) + ["--dir", LAB], capture_output=True, text=True,
                       timeout=60)
    if r.returncode:
        raise Failure("keel lab %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return time.time() - t


def status_any(hosts):
    for h in hosts:
        try:
            s = cd_status(h)
        except OSError:
            continue
        if s.leader_id:
            return s
    return None


def all_connected():
    for h in HOSTS:
        try:
            s = cd_status(h)
        except OSError:
            return False
        if not s.leader_id or s.isolated or len(s.hosts) != NHOSTS or \
                any(x.state != cpb.HOST_CONNECTED for x in s.hosts):
            return False
    return True


def until(secs, fn):
    end = time.time() + secs
    while time.time() < end:
        r = fn()
        if r:
            return r
        time.sleep(0.1)
    return None


def converged_state():
    """None when every desired-on VM runs exactly once where the registry says; else why."""
    s = status_any(HOSTS)
    if s is None:
        return "no leader known"
    lists = {h: vm_list(h) for h in HOSTS}
    procs = vmx_procs()
    byid = {x.id: x.name for x in s.hosts}
    for v in s.vms:
        if v.name not in VMS or v.desired_power != cpb.POWER_ON:
            continue
        on = [h for h in HOSTS if lists[h] and lists[h].get(v.name, ("",))[0] == "poweredOn"]
        want = byid.get(v.owner, "?")
        if not want.startswith("host") or on != [int(want[4:])]:
            return "%s: owner %s epoch %d, poweredOn on %s" % (v.name, want, v.epoch,
                                                               ["host%d" % h for h in on])
        lk = lock_read(v.name)
        if not lk or lk == "corrupt" or lk[1] != v.owner or lk[2] != v.epoch or lk[3] != 1:
            return "%s: owner %s epoch %d, lock %s" % (v.name, want, v.epoch, lk)
        ps = procs.get(v.name, [])
        if len(ps) != 1 or ps[0][2] != v.owner or ps[0][3] != v.epoch:
            return "%s: owner %s epoch %d, vmx processes %s" % (v.name, want, v.epoch, ps)
        st = vmx_state(ps[0][1])
        if st != "running":
            return "%s: its vmx is %s" % (v.name, st)
    return None


def placement():
    """The registry's owner@epoch of each VM, as a host with a leader sees it."""
    s = status_any(HOSTS)
    if s is None:
        return "no leader known"
    byid = {x.id: x.name for x in s.hosts}
    return " ".join("%s:%s@%d" % (v.name, byid.get(v.owner, "?"), v.epoch)
                    for v in sorted(s.vms, key=lambda v: v.name) if v.name in VMS)


def views():
    """Each host's clusterd: its state and leader, and its view of every host."""
    out = []
    for h in HOSTS:
        try:
            s = cd_status(h)
        except OSError as e:
            out.append("  host%d: clusterd unreachable (%s)" % (h, e))
            continue
        out.append("  host%d: %s, cluster %r, leader %s, commit %d, isolated %s; hosts: %s" % (
            h, s.node_state, s.name, {x.id: x.name for x in s.hosts}.get(s.leader_id, s.leader_id),
            s.commit_index, s.isolated, ", ".join(
                "%s %s %s net-hb %d ms" % (x.name, cpb.HostState.Name(x.state)[5:].lower(),
                                            cpb.RaftRole.Name(x.role)[10:].lower(), x.net_hb_age_ms)
                for x in sorted(s.hosts, key=lambda x: x.name))))
    return "\n".join(out)


def dump():
    """Each VM as the registry, the lock, the vmkernels and the vmx processes see it."""
    s = status_any(HOSTS)
    byid = {x.id: x.name for x in s.hosts} if s else {}
    reg = {v.name: "%s@%d desired %s" % (byid.get(v.owner, "?"), v.epoch,
                                         cpb.PowerState.Name(v.desired_power))
           for v in (s.vms if s else [])}
    lists = {h: vm_list(h) for h in HOSTS}
    procs = vmx_procs()
    out = []
    for vm in VMS:
        lk = lock_read(vm)
        if isinstance(lk, tuple):
            lk = "seq %d %s epoch %d %s" % (lk[0], byid.get(lk[1], "%x" % lk[1]), lk[2],
                                            {1: "held", 2: "released"}.get(lk[3], lk[3]))
        out.append("  %s: registry %s; lock %s; vmkernel %s; vmx %s" % (
            vm, reg.get(vm, "-"), lk,
            ", ".join("host%d %s" % (h, lists[h].get(vm, ("-",))[0] if lists[h] is not None else "unreachable")
                      for h in HOSTS),
            ["pid %d host %s epoch %d %s" % (p[0], byid.get(p[2], p[2]), p[3], vmx_state(p[1]))
             for p in procs.get(vm, [])]))
    return "\n".join(out)


def owned_by(host_id):
    """The VMs the registry names host_id the owner of (as a host with a leader sees it)."""
    s = status_any(HOSTS)
    return {v.name for v in s.vms if v.owner == host_id and v.name in VMS} if s else set()


def wait_converged(what):
    t = time.time()
    if not until(40, all_connected):
        raise Failure("%s: the cluster is not whole again within 40 s:\n%s\n%s" % (what, views(), dump()))
    tc = time.time()
    last = [None]

    def ok():
        last[0] = converged_state()
        return last[0] is None
    if not until(HEAL_S, ok):
        raise Failure("%s: not every VM runs exactly once %.0f s after the cluster was whole: %s\n%s"
                      % (what, HEAL_S, last[0], dump()))
    return (tc - t) * 1000, (time.time() - tc) * 1000


# ---- the steps -------------------------------------------------------------------------

def main():
    s = status_any(HOSTS)
    if s is None:
        raise Failure("no leader at the start")
    ids = {int(x.name[4:]): x.id for x in s.hosts}
    wait_converged("start")
    chk = Checker(ids)
    chk.start()
    log("checker sampling every %d ms; %d VMs on %d hosts; %d steps" % (CHECK_MS, len(VMS), NHOSTS, STEPS))
    down = None  # (host, its faults: a set of "killed", "isolated")
    heals = []
    counts = {}
    step = 0
    while step < STEPS or down:
        if FAILED:
            break
        over = BUDGET_S and time.time() - T0 > BUDGET_S
        if over and not down:
            log("time budget of %.0f s reached after %d steps" % (BUDGET_S, step))
            break
        step += 1
        leader = status_any([h for h in HOSTS if not down or h != down[0]])
        lid = leader.leader_id if leader else 0
        lname = {x.id: x.name for x in leader.hosts}.get(lid, "?") if leader else "?"
        if down is None or (down[1] == {"isolated"} and rng.random() < 0.25 and step < STEPS
                             and not over):
            if down is None:
                h = rng.choice(HOSTS)
                kind = rng.choice(["kill", "kill", "isolate"])
                down = (h, set())
            else:
                h, kind = down[0], "kill"  # an isolated host that also dies
            role = "leader" if ids[h] == lid else "follower"
            d = lab("host-" + kind, str(h))
            down[1].add("killed" if kind == "kill" else "isolated")
            counts[kind] = counts.get(kind, 0) + 1
            log("step %d: host-%s host%d (%s; leader %s) [%d ms]" % (step, kind, h, role, lname, d * 1000))
            # the wait before healing: short (before the failure timeout), medium, long
            # (after HA acted), or "ha": heal the moment HA has moved one of its VMs
            wait = rng.choice([rng.uniform(0.2, 1.5), rng.uniform(2, 6), rng.uniform(4, 9), "ha"])
            if wait == "ha":
                before = owned_by(ids[h])
                t = time.time()
                until(10, lambda: not before or owned_by(ids[h]) < before)
                log("  HA moved a VM of host%d after %d ms" % (h, (time.time() - t) * 1000)
                    if before else "  host%d owned no VMs" % h)
                wait = 0
        else:
            h, how = down
            log("  before healing: %s" % placement())
            acts = (["start"] if "killed" in how else []) + (["heal"] if "isolated" in how else [])
            rng.shuffle(acts)
            for kind in acts:
                d = lab("host-" + kind, str(h))
                counts[kind] = counts.get(kind, 0) + 1
                log("step %d: host-%s host%d [%d ms]" % (step, kind, h, d * 1000))
            down = None
            whole, conv = wait_converged("after step %d (host-%s host%d)" % (step, "+".join(acts), h))
            heals.append(whole + conv)
            log("  cluster whole %d ms after, every VM running exactly once %d ms later"
                % (whole, conv))
            wait = rng.uniform(0.2, 2.0)
        t = time.time() + wait
        while time.time() < t and not FAILED:
            time.sleep(0.05)
    chk.stop.set()
    chk.join()
    if FAILED:
        raise Failure("at %s: %s" % FAILED[0])
    log("summary: seed %d, %d steps (%s), %d checker samples, %d heals (max %d ms, mean %d ms "
        "to all VMs running again)" % (
            SEED, step, ", ".join("%s %d" % kv for kv in sorted(counts.items())), chk.samples,
            len(heals), max(heals or [0]), sum(heals) / max(1, len(heals))))
    log("summary: transient observations (not failures): %d samples with a VM poweredOn on "
        "two hosts, %d with a running VM's lock naming another holder, %d with 2+ vmx of one "
        "VM (longest %d ms, none running guest code together)" % (
            chk.double_on, chk.holder_mismatch, chk.multi_vmx, max(chk.multi_vmx_max_ms.values() or [0])))
    log("summary: disk records checked live: %s" % ", ".join(
        "%s %d (runs %d)" % (vm, d.last, d.runs) for vm, d in chk.disks.items()))

    # the end: power everything off, then the whole disks
    s = status_any(HOSTS)
    byid = {x.id: x.name for x in s.hosts}
    for v in s.vms:
        if v.name not in VMS:
            continue
        h = int(byid[v.owner][4:])
        rp = vmk(h, vpb.VmkRequest(vm_power_off=vpb.VmkVmPowerOff(vm=v.name)), 30)
        if rp.code:
            raise Failure("power-off %s on host%d: %d %s" % (v.name, h, rp.code, rp.error))
    if not until(10, lambda: not vmx_procs()):
        raise Failure("vmx processes left after power-off: %s" % vmx_procs())
    for d in chk.disks.values():
        d.check()  # the last records, written just before power-off
    if FAILED:
        raise Failure("at %s: %s" % FAILED[0])
    here = os.path.dirname(os.path.abspath(__file__))
    for vm in VMS:
        r = subprocess.run([sys.executable, here + "/diskseq_check.py",
                            "%s/shared/%s/%s.img" % (LAB, vm, vm)], capture_output=True, text=True)
        if r.returncode:
            raise Failure("%s disk: %s%s" % (vm, r.stdout, r.stderr))
        m = re.search(r"last=(\d+) runs=(\d+)", r.stdout)
        if not m or int(m.group(1)) == 0:
            raise Failure("%s disk: %s" % (vm, r.stdout))
        log("%s disk: %s" % (vm, r.stdout.strip()))
    print("PASS seed %d" % SEED, flush=True)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(ts(), "FAIL:", e, "(seed %d: KEEL_SEED=%d replays)" % (SEED, SEED), flush=True)
        sys.exit(1)
