# vmkernel's datastore heartbeat: a shared datastore added through keel gets the record
# <datastore>/.keel-hb/<host id in hex>, naming the host id of <state>/clusterd.id, whose
# counter advances at ~4 per second; a local datastore gets none. The counter stops when
# vmkernel is SIGKILLed or frozen (SIGSTOP: a hung vmkernel), resumes with SIGCONT, and
# continues (never restarts from 1) when vmkernel starts again; removing the datastore
# and stopping vmkernel stop it too. No VM runs, so /dev/kvm is not needed.
source "$(dirname "$0")/common.bash"
start_vmkernel

# hb FILE: "host counter" of a heartbeat record, checked (magic, version, size, CRC-32C);
# "bad" when it does not check.
hb() {
	python3 - "$1" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff
d = open(sys.argv[1], "rb").read()
magic, ver, size, host, counter = struct.unpack_from("<IHHQQ", d)
ok = len(d) == 512 and magic == 0x3142484b and ver == 1 and size == 512 and \
    struct.unpack_from("<I", d, 508)[0] == crc32c(d[:508])
print(f"{host} {counter}" if ok else "bad")
PY
}
# counter: the counter of $REC (the script stops when the record does not check)
counter() {
	local v
	v=$(hb "$REC") && [ "$v" != bad ] && { echo "${v#* }"; return 0; }
	echo "FAIL: record $REC: $v" >&2
	return 1
}

mkdir -p "$T/shared"
keel datastore add shared1 "$T/shared" --shared >/dev/null || fail "datastore add"
[ -f "$T/state/clusterd.id" ] || fail "vmkernel made no clusterd.id"
id=$(cat "$T/state/clusterd.id")
[[ $id =~ ^[1-9][0-9]*$ ]] || fail "clusterd.id holds '$id'"
REC=$T/shared/.keel-hb/$(printf '%016x' "$id")
for ((i = 0; i < 100; i++)); do [ -s "$REC" ] && break; sleep 0.05; done
[ -s "$REC" ] || fail "no heartbeat record $REC: $(ls -la "$T/shared" "$T/shared/.keel-hb" 2>&1)"
[ "$(hb "$REC" | cut -d' ' -f1)" = "$id" ] || fail "record names host $(hb "$REC"), clusterd.id $id"
[ -e "$T/state/datastore1/.keel-hb" ] && fail "a heartbeat record on the local datastore1"
wait_for "$T/state/vmkernel.log" "datastore shared1: heartbeat record $REC"

# ~4 beats a second (HA_HB_INTERVAL_MS 250): 12 in 3 s, give or take a beat
c0=$(counter); t0=$(date +%s%N)
sleep 3
c1=$(counter); t1=$(date +%s%N)
want=$(( (t1 - t0) / 250000000 ))
(( c1 - c0 >= want - 2 && c1 - c0 <= want + 1 )) || fail "counter $c0 -> $c1 in $(( (t1 - t0) / 1000000 )) ms, wanted ~$want beats"
echo "rate: $((c1 - c0)) beats in $(( (t1 - t0) / 1000000 )) ms"

# a frozen vmkernel (all its threads stopped, as in a hang) stops beating; it resumes
kill -STOP "$VMK_PID"
sleep 0.3; c0=$(counter); sleep 1; c1=$(counter)
[ "$c0" = "$c1" ] || fail "counter moved while vmkernel was stopped: $c0 -> $c1"
kill -CONT "$VMK_PID"
sleep 1
c2=$(counter)
(( c2 > c1 + 1 )) || fail "counter did not resume after SIGCONT: $c1 -> $c2"

# SIGKILL: the counter stops where it was
kill -9 "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
c0=$(counter); sleep 1; c1=$(counter)
[ "$c0" = "$c1" ] || fail "counter moved after SIGKILL: $c0 -> $c1"

# a new vmkernel continues from the record (same host id), never from 1
start_vmkernel
[ "$(cat "$T/state/clusterd.id")" = "$id" ] || fail "host id changed across a restart"
for ((i = 0; i < 40; i++)); do
	c=$(counter)
	(( c >= c1 )) || fail "counter went back from $c1 to $c after the restart"
	sleep 0.05
done
(( c > c1 + 2 )) || fail "counter did not advance after the restart: $c1 -> $c"

# removing the datastore stops its writer before the request returns
keel datastore remove shared1 >/dev/null || fail "datastore remove"
c0=$(counter); sleep 0.8; c1=$(counter)
[ "$c0" = "$c1" ] || fail "counter moved after the datastore was removed: $c0 -> $c1"
wait_for "$T/state/vmkernel.log" "datastore shared1: heartbeat stopped at counter $c0"

# added again it continues; SIGTERM (shutdown) stops it
keel datastore add shared1 "$T/shared" --shared >/dev/null || fail "datastore add again"
sleep 0.6
c2=$(counter)
(( c2 > c1 )) || fail "counter did not continue after the datastore was added again: $c1 -> $c2"
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
c0=$(counter); sleep 0.8; c1=$(counter)
[ "$c0" = "$c1" ] || fail "counter moved after vmkernel stopped: $c0 -> $c1"
VMK_PID=
echo "ok"
