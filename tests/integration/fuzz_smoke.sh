# Runs every fuzz target over real seeds (a saved VM state, control frames, guest ELFs,
# .vmx files, datastores.conf files, join tokens, heartbeat datagrams, hostd requests, config
# archives) for a bounded number of seeded mutations; any crash or sanitizer report fails.
# The seed is fixed (1) so that `make test` runs one known sequence; KEEL_FUZZ_SEED=N picks
# another, KEEL_FUZZ_SEED=random one from the clock, to explore.
# Replay one with: $BUILD/fuzz/fuzz_NAME -s SEED -n N SEEDS...
source "$(dirname "$0")/common.bash"
need_kvm
F=$PWD/$BUILD/fuzz
ITER=${KEEL_FUZZ_ITERATIONS:-400}
SEED=${KEEL_FUZZ_SEED:-1}
[ "$SEED" = random ] && SEED=$(date +%s)

# a real state: the counter payload, saved while running
start_vmx s --kernel "$PWD/$BUILD/guest/payload_counter.elf" --mem 64M --test-port
sleep 0.05
"$VMXCTL" "$T/s.sock" save "$T/seed.vmss" >/dev/null || fail "save"
"$VMXCTL" "$T/s.sock" power-off >/dev/null || true

# control frames: status, save with a path, agent-send, and two frames back to back
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def frame(b): return struct.pack(">I", len(b)) + b
status = bytes([0x4a, 0x00])
save = bytes([0x32, 0x07, 0x0a, 0x05]) + b"/tmp/x"[:5]
agent = bytes([0x52, 0x06, 0x0a, 0x04]) + b"csum"
open(f"{t}/f1", "wb").write(frame(status))
open(f"{t}/f2", "wb").write(frame(save) + frame(agent))
open(f"{t}/f3", "wb").write(frame(agent) * 3)
PY

# .vmx files: one with every kind of key (disks, NICs, resources, kept keys, escapes, CRLF,
# UTF-8, ESXi spellings), and the smallest valid one
cat >"$T/full.vmx" <<'EOF'
# A VM with everything
config.version = "1"
.encoding = "UTF-8"
displayName = "web-01"
uuid = "0F8FAD5B-D9CB-469F-A165-70867728950E"
memsize = "512"
numvcpus = "2"
guest.kind = "linux"
guest.kernel = "/var/lib/keel/images/vmlinuz"
guest.initrd = "initrd.img"
guest.cmdline = "console=ttyS0 msg=\"hi\" path=C:\\x"
	sched.cpu.shares = "HIGH"
sched.cpu.min = "500"
sched.cpu.max = "2000"
sched.mem.min = "256"
sched.mem.max = "512"
disk0.present = "TRUE"
disk0.fileName = "web-01.img"
disk0.mode = "persistent"
disk2.present = "true"
disk2.fileName = "/srv/iso/tools.img"
disk2.readOnly = "TRUE"
ethernet0.present = "TRUE"
ethernet0.networkName = "VM Network"
ethernet0.address = "02:4B:00:11:22:33"
ethernet0.virtualDev = "virtio"
ethernet1.present = "TRUE"
ethernet1.portgroup = "backup"
ethernet3.present = "FALSE"
ethernet3.portgroup = "spare"

tools.syncTime="FALSE"
x.unicode = "café"
EOF
printf 'annotation = "kept, CRLF"\r\n' >>"$T/full.vmx"
printf 'displayName = "v"\nmemsize = "64"\nnumvcpus = "1"\nguest.kind = "kguest"\n' >"$T/min.vmx"

# datastores.conf files: several datastores with comments, and the smallest valid one
cat >"$T/ds1.conf" <<'EOF'
# Keel datastores: <name> <local|shared> <path>.
version 1
datastore1 local /var/lib/keel/datastore1
nfs-a shared /mnt/nfs/a
with.space local /srv/vm store

san_2 shared /mnt/san/2
EOF
printf 'version 1\n' >"$T/ds2.conf"

run() {
	local name=$1
	shift
	"$F/$name" -n "$ITER" -s "$SEED" "$@" >"$T/$name.log" 2>&1 || fail "$name crashed (seed $SEED): $(tail -5 "$T/$name.log")"
	grep -q "fuzz: done" "$T/$name.log" || fail "$name did not finish (seed $SEED)"
}
run fuzz_state "$T/seed.vmss"
run fuzz_ctl "$T/f1" "$T/f2" "$T/f3"
run fuzz_elf "$PWD/$BUILD/guest/payload_report.elf" "$PWD/$BUILD/guest/payload_smp.elf"
run fuzz_vmx "$T/full.vmx" "$T/min.vmx"
run fuzz_datastore_conf "$T/ds1.conf" "$T/ds2.conf"
# clusterd's log entries and snapshots: the target builds valid ones itself
printf '\000\012\002\010\001' >"$T/c0"
printf '\001\000\020\377\001' >"$T/c1"
head -c 64 /dev/urandom | { printf '\003'; cat; } >"$T/c3"
run fuzz_cluster "$T/c0" "$T/c1" "$T/c3"
# join tokens: a well-formed one without and one with a CA fingerprint
printf 'K1.AAECAwQFBgcICQoLDA0ODw.ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8' >"$T/t1"
printf 'K1.AAECAwQFBgcICQoLDA0ODw.ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8.QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8' >"$T/t2"
run fuzz_token "$T/t1" "$T/t2"
# heartbeat datagrams: packed BEAT and ACK messages (the target signs each input itself),
# and a BEAT with its MAC; key 00 01 .. 1f and the cluster id of fuzz_hbwire.c
python3 - "$T" <<'PY'
import hashlib, hmac, sys
t = sys.argv[1]
def varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def f(num, v): return varint(num << 3) + varint(v)
def ld(num, b): return varint(num << 3 | 2) + varint(len(b)) + b
cid = b"7c9e6679-7425-40de-944b-e07fc1f90ae7"
beat = f(1, 1) + ld(2, cid) + f(3, 0x9abcdef012345678) + f(4, 1700000000123456789) + f(7, 1) + f(8, 17)
peers = [(7, 12, 250, 1), (8, -1, -1, 2), (9, 4000, 30, 4), (0xffffffffffffffff, 0, -1, 7)]
ack = f(1, 2) + ld(2, cid) + f(3, 42) + f(4, 1700000000987654321) + f(5, 1700000000123456789) + f(6, 7) + f(8, 3)
for h, na, da, st in peers:
    ack += ld(9, f(1, h) + f(2, na) + f(3, da) + f(4, st))
key = bytes(range(32))
open(f"{t}/hb1", "wb").write(beat)
open(f"{t}/hb2", "wb").write(ack)
open(f"{t}/hb3", "wb").write(beat + hmac.new(key, beat, hashlib.sha256).digest())
PY
run fuzz_hbwire "$T/hb1" "$T/hb2" "$T/hb3"
# hostd requests: [method index][DATA piece size - 1] then gRPC-framed bodies: a Login
# (method 0) in 8-byte pieces, two RetrieveInventory messages (method 3) in one piece
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def ld(num, b): return bytes([num << 3 | 2, len(b)]) + b
def frame(m): return b"\0" + struct.pack(">I", len(m)) + m
login = ld(1, b"root") + ld(2, b"secret-password")
open(f"{t}/h1", "wb").write(bytes([0, 7]) + frame(login))
open(f"{t}/h2", "wb").write(bytes([3, 255]) + frame(b"") + frame(b""))
PY
run fuzz_hostd_request "$T/h1" "$T/h2"
# config archives (kernel/cfg/archive.c): three entries, and an empty one; the trailer's
# checksum is left zero, as the target makes it right itself
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def kar(entries):
    b = b"KEELKAR\n" + struct.pack("<IIQQ", 1, len(entries), 9, 1700000000000000000)
    for g, (path, mode, data) in enumerate(entries, 1):
        b += struct.pack("<HHIQQ", len(path), mode, len(data), 1700000000000000000 + g, g)
        b += path + data
    return b + b"\0\0\0\0KEND"
open(f"{t}/kar1", "wb").write(kar([(b"etc/hosts", 0o644, b"127.0.0.1 localhost\n"),
    (b"etc/keel/advanced.conf", 0o600, b"Misc.LogLevel = debug\n"),
    (b"var/patch/p1/a.bin", 0o644, bytes(range(64)))]))
open(f"{t}/kar2", "wb").write(kar([]))
PY
run fuzz_cfg_archive "$T/kar1" "$T/kar2"
# vMotion records: [type][count-1 << 4 | index][u64 guest pages] then a valid payload of each
# type (and of FT's SYNC, DISK and CKPT_END); a valid hello and a valid reply to the target's
# fixed hello (key 00 01 .. 1f, id 40 41 .. 4f, 4 streams; see fuzz_vmo.c)
python3 - "$T" <<'PY'
import hashlib, hmac, struct, sys
t = sys.argv[1]
key, mid = bytes(range(32)), bytes(range(0x40, 0x50))
def rec(name, typ, count, index, payload):
    open(f"{t}/{name}", "wb").write(bytes([typ, (count - 1) << 4 | index]) + struct.pack("<Q", 4096) + payload)
rec("vmo1", 1, 4, 1, struct.pack("<QII", 266, 2, 0) + bytes(range(256)) * 32)
rec("vmo2", 2, 4, 1, struct.pack("<QII", 256, 256, 0))
rec("vmo3", 3, 1, 0, struct.pack("<IIQ", 5, 0, 1000))
rec("vmo4", 4, 4, 3, struct.pack("<Q", 123))
rec("vmo5", 5, 4, 0, b"state" * 20)
rec("vmo6", 6, 4, 0, struct.pack("<QII", 100, 0x12345678, 0))
rec("vmo7", 7, 1, 0, b"")
rec("vmo8", 8, 2, 1, struct.pack("<Q", 7))
rec("vmo9", 9, 1, 0, b"")
rec("vmo10", 10, 1, 0, struct.pack("<iI", -5, 9) + b"disk lost")
rec("vmo13", 11, 4, 2, struct.pack("<Q", 9))
rec("vmo14", 13, 1, 0, struct.pack("<IIQ", 1, 0, 1024) + b"\x77" * 512)
rec("vmo15", 15, 1, 0, struct.pack("<QQQQII", 3, 10, 512, 100, 0x1234, 0))
def mac(b): return hmac.new(key, b, hashlib.sha256).digest()
body = b"KEELVMO1" + struct.pack("<II", 1, 1) + mid + struct.pack("<II", 2, 4) + bytes(range(16))
open(f"{t}/vmo11", "wb").write(body + mac(body))
fixed = b"KEELVMO1" + struct.pack("<II", 1, 1) + mid + struct.pack("<II", 2, 4) + b"\x5a" * 16
fixed += mac(fixed)
rbody = b"KEELVMO1" + struct.pack("<Ii", 1, 0) + bytes(range(16, 32))
open(f"{t}/vmo12", "wb").write(rbody + mac(b"keel-vmotion-reply" + fixed + rbody))
PY
run fuzz_vmo "$T"/vmo*
# FT checkpoint streams: [type (bit 7 on CKPT_END: the target fills in its counts and CRC)]
# [u32 LE length][payload], repeated: a sync, then checkpoints 1 and 2 (fill-in and literal
# CKPT_END), and one whose checkpoint 3 does not follow (see fuzz_ft.c)
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def crc32c(b):
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
def rec(typ, p): return bytes([typ]) + struct.pack("<I", len(p)) + p
def pages(first, n, fill): return rec(1, struct.pack("<QII", first, n, 0) + bytes([fill]) * (4096 * n))
def zero(first, n): return rec(2, struct.pack("<QII", first, n, 0))
def disk(i, off, data): return rec(13, struct.pack("<IIQ", i, 0, off) + data)
def num(typ, n): return rec(typ, struct.pack("<Q", n))
def end(n, pg, db, st, fix):
    return rec(15 | (0x80 if fix else 0), struct.pack("<QQQQII", n, pg, db, len(st), crc32c(st), 0))
sync = pages(0, 2, 0x11) + zero(2, 2) + disk(0, 0, bytes(range(256)) * 2) + disk(1, 7680, b"\x22" * 512) + num(11, 1)
st1, st2 = bytes(range(100)), b"state" * 10
c1 = num(14, 1) + pages(5, 1, 0x33) + zero(0, 1) + disk(1, 512, b"\x44" * 1024) + rec(5, st1)
c2 = num(14, 2) + pages(7, 1, 0x55) + zero(5, 1) + rec(5, st2)
open(f"{t}/ft1", "wb").write(sync + c1 + end(1, 0, 0, st1, True) + c2 + end(2, 0, 0, st2, True))
open(f"{t}/ft2", "wb").write(sync + c1 + end(1, 2, 1024, st1, False) + c2 + end(2, 2, 0, st2, False))
open(f"{t}/ft3", "wb").write(sync + c1 + end(1, 2, 1024, st1, False) + num(14, 3) + pages(1, 1, 0x66))
PY
run fuzz_ft "$T"/ft1 "$T"/ft2 "$T"/ft3
echo "ok: $ITER mutations per target, seed $SEED"
