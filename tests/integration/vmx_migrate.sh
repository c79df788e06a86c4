# Live migration between two vmx processes over loopback (docs/vmotion.md): a kguest that
# writes its disk sequence and dirties memory moves with encryption and continues on the
# destination (same memory page for page at the switchover, same checksum, the disk
# sequence and the counter go on); a fast dirtier converges; --no-commit and a cancel leave
# the guest on the source; a destination killed mid-precopy fails the migration cleanly;
# a truncated or corrupted stream, a wrong key and random bytes make an incoming vmx exit
# with a clear error without ever running the guest.
source "$(dirname "$0")/common.bash"
need_kvm
trap 'echo "FAIL: command failed at line $LINENO"' ERR
HELP="python3 $(dirname "$0")/vmx_migrate.py"
DISKSEQ="python3 $(dirname "$0")/diskseq_check.py"
ID=4b45454c564d4f54494f4e0000000001
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/badkey"
PORT=$((20000 + RANDOM % 20000))
truncate -s 16M "$T/disk.img"
GUEST=(--kernel "$KGUEST" --mem 256M --disk "$T/disk.img")
CL="counter_ms=100 hb_ms=50 disk_seq=1 disk_ms=20 fill_mib=16 dirty_ws_mib=64 dirty_mib_s=64"

# incoming NAME PORT: an incoming vmx for the guest; sets IN_PID.
incoming() {
	start_vmx "$1" "${GUEST[@]}" --cmdline "$CL" --incoming "127.0.0.1:$2"
	IN_PID=$VMX_PID
}

# never_ran NAME WHY: NAME exited with status 5, says WHY in its log, ran no guest code.
never_ran() {
	wait_exit "$2" 15
	[ "$RC" = 5 ] || fail "$1 exited with $RC, not 5"
	grep -Eq "incoming migration failed: .*$3" "$T/$1.vmx.log" ||
		fail "$1: no '$3' in its log: $(grep -i migration "$T/$1.vmx.log" | tail -3)"
	! grep -q "kguest:" "$T/$1.log" 2>/dev/null || fail "$1 ran the guest"
}

# ---- 1. 64 MiB/s dirtier with disk I/O, encrypted, 2 streams: memory identical at READY
start_vmx a "${GUEST[@]}" --cmdline "$CL"
A=$VMX_PID
wait_for "$T/a.log" "kguest: fill done"
wait_for "$T/a.log" "disk seq 20\b"
incoming b $PORT
B=$IN_PID
"$VMXCTL" migrate-in "$T/b.sock" --key-file "$T/key" --id $ID --streams 2 >"$T/b.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" --json migrate "$T/a.sock" --to 127.0.0.1:$PORT --streams 2 --key-file "$T/key" \
	--id $ID >"$T/a.out" || fail "migrate a -> b: $(cat "$T/a.out")"
grep -q '"phase":"ready"' "$T/a.out" || fail "not ready: $(cat "$T/a.out")"
# the source is paused and the destination has not run: their RAM must be identical
$HELP memcmp "$A" "$B" || fail "guest memory differs between source and destination"
c_before=$(last_counter a)
"$VMXCTL" migrate-commit "$T/a.sock" --epoch 2 >"$T/a.commit" || fail "commit: $(cat "$T/a.commit")"
wait_exit "$A" 10
[ "$RC" = 4 ] || fail "the source exited with $RC, not 4 (migrated)"
wait "$IN_CTL" || fail "migrate-in: $(cat "$T/b.in")"
grep -q "phase: resumed" "$T/b.in" || fail "destination: $(cat "$T/b.in")"
grep -q "stop reason: migrated\|migrated" "$T/a.vmx.log" || fail "no migrated stop in the source log"
wait_for "$T/b.log" "counter $((c_before + 5))\b" 10
disk_last=$(grep -Eo 'disk seq [0-9]+' "$T/a.log" | tail -1 | awk '{print $3}')
wait_for "$T/b.log" "disk seq $(((disk_last / 10 + 3) * 10))\b" 10
hb=$("$VMXCTL" --json "$T/b.sock" stats)
[ "$(json_field "$hb" heartbeat_seq)" -gt 0 ] || fail "no heartbeat on the destination"

# ---- 2. checksum with the dirtier stopped, b -> c (a migrated-in vmx migrates out again)
agent_ask b "set dirty_mib_s=0" "^ok" >/dev/null
sum_b=$(agent_ask b "csum" "^csum ")
incoming c $((PORT + 1))
C=$IN_PID
"$VMXCTL" migrate-in "$T/c.sock" --key-file "$T/key" --id $ID --streams 1 >"$T/c.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" migrate "$T/b.sock" --to 127.0.0.1:$((PORT + 1)) --key-file "$T/key" --id $ID \
	--commit 3 >"$T/b.out" 2>&1 || fail "migrate b -> c: $(cat "$T/b.out")"
wait_exit "$B" 10
[ "$RC" = 4 ] || fail "b did not exit as migrated"
wait "$IN_CTL" || fail "migrate-in c: $(cat "$T/c.in")"
sum_c=$(agent_ask c "csum" "^csum ")
[ "$sum_b" = "$sum_c" ] || fail "checksum $sum_b before, $sum_c after"
agent_ask c "set dirty_mib_s=64" "^ok" >/dev/null

# ---- 3. --no-commit: the guest stays on c, the destination exits
incoming d $((PORT + 2))
D=$IN_PID
"$VMXCTL" migrate-in "$T/d.sock" --key-file "$T/key" --id $ID --streams 1 >"$T/d.in" 2>&1 &
"$VMXCTL" migrate "$T/c.sock" --to 127.0.0.1:$((PORT + 2)) --key-file "$T/key" --id $ID \
	--no-commit >"$T/c.out" 2>&1 || fail "migrate --no-commit: $(cat "$T/c.out")"
grep -q "phase: aborted" "$T/c.out" || fail "no-commit: $(cat "$T/c.out")"
never_ran d "$D" "not committed"
n=$(last_counter c)
wait_for "$T/c.log" "counter $((n + 3))\b" 5
"$VMXCTL" "$T/c.sock" status | grep -q "state: running" || fail "c is not running"

# ---- 4. the destination killed mid-precopy: the migration fails, c keeps running
agent_ask c "set dirty_mib_s=256" "^ok" >/dev/null
incoming e $((PORT + 3))
E=$IN_PID
"$VMXCTL" migrate-in "$T/e.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
"$VMXCTL" migrate "$T/c.sock" --to 127.0.0.1:$((PORT + 3)) --key-file "$T/key" --id $ID \
	--downtime-ms 1 --max-rounds 1000 >"$T/c.out" 2>&1 &
MIG=$!
for ((i = 0; i < 200; i++)); do
	"$VMXCTL" migrate-status "$T/c.sock" 2>/dev/null | grep -q "phase: precopy" && break
	sleep 0.02
done
kill -9 "$E" 2>/dev/null || fail "the destination was gone before the kill: $(tail -3 "$T/e.vmx.log")"
if wait "$MIG"; then fail "migrate succeeded without its destination"; fi
echo "destination killed: $(grep -m1 '^vmxctl:' "$T/c.out")"
grep -Eq "phase: failed" "$T/c.out" || fail "after kill -9: $(cat "$T/c.out")"
grep -Eq "stream 0|Connection reset|Broken pipe|closed|truncated" "$T/c.out" ||
	fail "unclear error: $(cat "$T/c.out")"
n=$(last_counter c)
wait_for "$T/c.log" "counter $((n + 3))\b" 5

# ---- 5. cancel mid-precopy (the same endless migration): the guest keeps running
incoming f $((PORT + 4))
F=$IN_PID
"$VMXCTL" migrate-in "$T/f.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
"$VMXCTL" migrate "$T/c.sock" --to 127.0.0.1:$((PORT + 4)) --key-file "$T/key" --id $ID \
	--downtime-ms 1 --max-rounds 1000 >"$T/c.out" 2>&1 &
MIG=$!
for ((i = 0; i < 200; i++)); do
	"$VMXCTL" migrate-status "$T/c.sock" 2>/dev/null | grep -q "phase: precopy" && break
	sleep 0.02
done
"$VMXCTL" migrate-cancel "$T/c.sock" >/dev/null || fail "cancel refused"
if wait "$MIG"; then fail "a cancelled migration succeeded"; fi
grep -q "phase: aborted" "$T/c.out" || fail "after cancel: $(cat "$T/c.out")"
never_ran f "$F" "aborted|cancelled"
"$VMXCTL" "$T/c.sock" status | grep -q "state: running" || fail "c stopped after a cancel"
n=$(last_counter c)
wait_for "$T/c.log" "counter $((n + 3))\b" 5

# ---- 6. 256 MiB/s dirtier converges (throttling if it must) c -> g
incoming g $((PORT + 5))
G=$IN_PID
"$VMXCTL" migrate-in "$T/g.sock" --key-file "$T/key" --id $ID --streams 2 >"$T/g.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" --json migrate "$T/c.sock" --to 127.0.0.1:$((PORT + 5)) --streams 2 \
	--key-file "$T/key" --id $ID --commit 4 >"$T/c.out" 2>&1 || fail "dirty256: $(cat "$T/c.out")"
grep -q '"phase":"committed"' "$T/c.out" || fail "dirty256: $(cat "$T/c.out")"
wait_exit "$C" 10
[ "$RC" = 4 ] || fail "c did not exit as migrated"
wait "$IN_CTL" || fail "migrate-in g: $(cat "$T/g.in")"
n=$(last_counter g)
wait_for "$T/g.log" "counter $((n + 3))\b" 5
throttle=$(json_field "$(cat "$T/c.out")" throttle_pct)
rounds=$(json_field "$(cat "$T/c.out")" round)
down_us=$(json_field "$(cat "$T/c.out")" downtime_us)
cp "$T/c.out" "$T/dirty256.json"

# ---- 7. malformed input to an incoming vmx: each exits 5 without running the guest
# a truncated stream (cut after the hello and some pages), source g keeps running
incoming h $((PORT + 6))
H=$IN_PID
"$VMXCTL" migrate-in "$T/h.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
$HELP proxy $((PORT + 7)) $((PORT + 6)) truncate 300000 >"$T/proxy.out" &
PIDS+=($!)
wait_for "$T/proxy.out" listening
if "$VMXCTL" migrate "$T/g.sock" --to 127.0.0.1:$((PORT + 7)) --key-file "$T/key" --id $ID \
	--commit 5 >"$T/g.out" 2>&1; then fail "migration over a cut stream succeeded"; fi
never_ran h "$H" "ended|truncated|closed"
"$VMXCTL" "$T/g.sock" status | grep -q "state: running" || fail "g stopped after a failed migration"

# a corrupted byte (inside the first page record)
incoming i $((PORT + 8))
I=$IN_PID
"$VMXCTL" migrate-in "$T/i.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
$HELP proxy $((PORT + 9)) $((PORT + 8)) corrupt 2000 >"$T/proxy2.out" &
PIDS+=($!)
wait_for "$T/proxy2.out" listening
if "$VMXCTL" migrate "$T/g.sock" --to 127.0.0.1:$((PORT + 9)) --key-file "$T/key" --id $ID \
	--commit 5 >"$T/g.out" 2>&1; then fail "migration over a corrupted stream succeeded"; fi
never_ran i "$I" "checksum|authentic|tag"

# a wrong key: the hello does not prove it
incoming j $((PORT + 10))
J=$IN_PID
"$VMXCTL" migrate-in "$T/j.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
if "$VMXCTL" migrate "$T/g.sock" --to 127.0.0.1:$((PORT + 10)) --key-file "$T/badkey" \
	--id $ID --commit 5 >"$T/g.out" 2>&1; then fail "a wrong key was accepted"; fi
never_ran j "$J" "refused a stream"

# random bytes
incoming k $((PORT + 11))
K=$IN_PID
"$VMXCTL" migrate-in "$T/k.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
sleep 0.2
$HELP garbage $((PORT + 11)) 4096
never_ran k "$K" "refused a stream"

# g still runs the guest; the disk sequence of all three runs is one intact run
n=$(last_counter g)
wait_for "$T/g.log" "counter $((n + 2))\b" 5
"$VMXCTL" "$T/g.sock" power-off >/dev/null
wait_exit "$G" 10
read -r last runs < <($DISKSEQ "$T/disk.img" | tr '=' ' ' | awk '{print $2, $4}')
[ "$runs" = 1 ] || fail "the disk sequence has $runs runs (expected 1: one guest throughout)"
[ "$last" -gt "$disk_last" ] || fail "the disk sequence stopped at $last"
# ---- 8. the source's streams leave from a network namespace (--netns): the destination
# listens only inside it
NSN=keel-vmo-$$-$RANDOM
ip netns add "$NSN" || fail "cannot create a network namespace"
trap 'ip netns del "$NSN" 2>/dev/null; cleanup' EXIT
ip -n "$NSN" link set lo up
start_vmx m --kernel "$KGUEST" --mem 128M --cmdline "counter_ms=100"
M=$VMX_PID
ip netns exec "$NSN" "$VMX" --name n --ctl "$T/n.sock" --console-log "$T/n.log" \
	--kernel "$KGUEST" --mem 128M --cmdline "counter_ms=100" \
	--incoming 127.0.0.1:$((PORT + 12)) 2>"$T/n.vmx.log" &
N=$!
PIDS+=("$N")
for ((i = 0; i < 100; i++)); do "$VMXCTL" "$T/n.sock" status >/dev/null 2>&1 && break; sleep 0.02; done
"$VMXCTL" migrate-in "$T/n.sock" --key-file "$T/key" --id $ID --streams 1 >/dev/null 2>&1 &
"$VMXCTL" migrate "$T/m.sock" --to 127.0.0.1:$((PORT + 12)) --key-file "$T/key" --id $ID \
	--netns "/run/netns/$NSN" --commit 6 >"$T/m.out" 2>&1 || fail "netns: $(cat "$T/m.out")"
wait_exit "$M" 10
[ "$RC" = 4 ] || fail "m exited with $RC after migrating from a namespace"
wait_for "$T/n.log" "counter [0-9]+" 5

# ---- 9. the source dies after READY: the destination waits, and VmxMigrateCommit on its
# own control socket (what vmkernel sends once the cluster committed it) acts as GO
start_vmx p --kernel "$KGUEST" --mem 128M --cmdline "counter_ms=100"
P=$VMX_PID
wait_for "$T/p.log" "counter 2\b" 5
incoming2() { start_vmx "$1" --kernel "$KGUEST" --mem 128M --cmdline "counter_ms=100" \
	--incoming "127.0.0.1:$2"; IN_PID=$VMX_PID; }
incoming2 q $((PORT + 13))
Q=$IN_PID
"$VMXCTL" migrate-in "$T/q.sock" --key-file "$T/key" --id $ID --streams 2 >"$T/q.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" migrate "$T/p.sock" --to 127.0.0.1:$((PORT + 13)) --streams 2 --key-file "$T/key" \
	--id $ID >"$T/p.out" 2>&1 || fail "p -> q: $(cat "$T/p.out")"
kill -9 "$P"
sleep 0.3
"$VMXCTL" "$T/q.sock" status | grep -q "state: paused" || fail "q is not waiting paused"
! grep -q "kguest:" "$T/q.log" 2>/dev/null || fail "q ran before its commit"
"$VMXCTL" migrate-commit "$T/q.sock" --epoch 9 >"$T/q.commit" 2>&1 ||
	fail "commit on the destination: $(cat "$T/q.commit")"
wait "$IN_CTL" || fail "migrate-in q: $(cat "$T/q.in")"
grep -q "phase: resumed" "$T/q.in" || fail "q: $(cat "$T/q.in")"
wait_for "$T/q.log" "counter [0-9]+" 5

echo "ok: migrated a->b (memory identical), b->c ($sum_c both sides), c->g at 256 MiB/s" \
	"(throttle ${throttle}%, $rounds rounds, downtime ${down_us} us); no-commit, cancel, kill -9, four bad" \
	"streams, a namespace and a commit" \
	"through the destination after the source died handled; disk sequence intact to $last"
