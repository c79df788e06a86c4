# HA chaos (docs/ha.md): a seeded loop of faults on a lab cluster, with an invariant checker
# sampling throughout. A 4-host lab (KEEL_CHAOS_HOSTS) forms a cluster with HA on; six kguest
# VMs (KEEL_CHAOS_VMS) on the shared datastore, spread over the hosts, each writing a disk
# sequence. Then KEEL_CHAOS_STEPS steps (default 24) chosen by the seed (KEEL_SEED, default
# random; printed first as "seed N (KEEL_SEED=N replays)"): while every host is up, host-kill
# or host-isolate of a random host (leader or follower); an isolated host may also be killed;
# while one is down, after a random wait (short: healed before HA acts; long: after HA acted;
# or "ha": the moment HA has moved one of its VMs), host-start and/or host-heal of it. At most
# one host is down at a time, so the cluster keeps its quorum. On default settings the loop
# stops starting faults after KEEL_CHAOS_BUDGET_S (65 s) so the test stays within 120 s.
#
# Invariants (ha_chaos.py's header says how each stays robust against sampling):
#   - never two vmx processes of one VM running guest code at once (asked over their control
#     sockets when two exist: a fenced vmx answers "stopped"), and the guest-visible marker:
#     each disk sequence, checked live every 0.5 s and whole at the end (diskseq_check.py),
#     never interleaves (run numbers never go down, a record once written never changes);
#   - each lock file always has a valid slot, its epoch never goes down, and a VM that a
#     host's vmkernel reports poweredOn has that host as the lock's holder; no VM is
#     reported poweredOn by two hosts (these two only fail when they persist 1.5 s);
#   - after each fault heals, once every host is connected, within 15 s every VM runs on
#     exactly one host: the registry's owner, holding the lock at the registry's epoch, one
#     vmx fenced at that epoch, running.
# At the end the VMs are powered off and each disk is checked whole.
# Knobs: KEEL_CHAOS_HEAL_S (15), KEEL_CHAOS_PERSIST_MS (1500), KEEL_CHAOS_LOGS=DIR keeps
# every host's daemon logs there when the test fails.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
command -v protoc >/dev/null || { echo "SKIP: protoc missing"; exit 77; }
/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null || { echo "SKIP: no python3-protobuf"; exit 77; }
need_kvm

NH=${KEEL_CHAOS_HOSTS:-4}
NVM=${KEEL_CHAOS_VMS:-6}
SEED=${KEEL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
if [ -n "${KEEL_CHAOS_STEPS:-}" ]; then
	STEPS=$KEEL_CHAOS_STEPS
	export KEEL_CHAOS_BUDGET_S=${KEEL_CHAOS_BUDGET_S:-0}
else
	STEPS=24
	export KEEL_CHAOS_BUDGET_S=${KEEL_CHAOS_BUDGET_S:-65}
fi

echo "seed $SEED (KEEL_SEED=$SEED replays)"

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	if [ "${ok:-0}" != 1 ] && [ -d "$LAB/hosts" ]; then
		for ((h = 1; h <= NH; h++)); do
			[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
				{ echo "--- clusterd host$h"; grep -E "HA|reconcile|isolat|fenc" "$LAB/hosts/host$h/clusterd.out" | tail -25; }
			[ -f "$LAB/hosts/host$h/vmkernel.out" ] &&
				{ echo "--- vmkernel host$h"; grep -E "power|lock|fenc|isolat" "$LAB/hosts/host$h/vmkernel.out" | tail -15; }
		done
		[ -f "$LAB/lab.log" ] && { echo "--- lab.log"; tail -20 "$LAB/lab.log"; }
		# KEEL_CHAOS_LOGS=DIR keeps every host's daemon logs and the lab's log
		if [ -n "${KEEL_CHAOS_LOGS:-}" ]; then
			mkdir -p "$KEEL_CHAOS_LOGS"
			cp "$LAB/lab.log" "$KEEL_CHAOS_LOGS/" 2>/dev/null
			for ((h = 1; h <= NH; h++)); do
				for f in "$LAB/hosts/host$h"/*.out "$LAB/hosts/host$h"/*.log; do
					[ -f "$f" ] && cp "$f" "$KEEL_CHAOS_LOGS/host$h-$(basename "$f")"
				done
			done
			echo "logs kept in $KEEL_CHAOS_LOGS"
		fi
	fi
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py "d['leader_id'] != 0 and len(d['hosts']) == $NH and all(h['state'] == 'connected' for h in d['hosts'])" "$s")" = True ]
}
all_healthy() { local h; for ((h = 1; h <= NH; h++)); do healthy $h || return 1; done; }

mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" proto/cluster.proto proto/vmk.proto || fail "protoc"

t_start=$(now_ms)
out=$("$KEEL_BIN" lab up "$NH" --dir "$LAB" --json) || fail "lab up: $out"
for ((h = 1; h <= NH; h++)); do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create chaos >/dev/null || fail "create"
for ((h = 2; h <= NH; h++)); do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 30 all_healthy || fail "cluster not healthy: $(st 1)"
[ "$(py 'd["ha_enabled"]' "$(st 1)")" = True ] || fail "HA not on: $(st 1)"
vms=()
for ((n = 1; n <= NVM; n++)); do
	h=$(((n - 1) % NH + 1))
	kv $h vm create ch$n --memory 64 --vcpus 1 --datastore shared1 --disk 4 \
		--cmdline "counter_ms=200 disk_seq=1 disk_ms=20 hb_ms=100" >/dev/null || fail "create ch$n"
	kv $h vm power-on ch$n >/dev/null || fail "power-on ch$n on host$h"
	vms+=(ch$n)
done
for n in "${vms[@]}"; do wait_for "$LAB/shared/$n/console.log" "disk seq 10\b" 20; done
echo "lab of $NH hosts with $NVM VMs ready in $(($(now_ms) - t_start)) ms"

/usr/bin/python3 "$(dirname "$0")/ha_chaos.py" "$T/stubs" "$KEEL_BIN" "$LAB" "$NH" "$SEED" \
	"$STEPS" "${vms[@]}" || fail "chaos (seed $SEED: KEEL_SEED=$SEED replays)"
ok=1
echo "ok: seed $SEED, $(($(now_ms) - t_start)) ms"
