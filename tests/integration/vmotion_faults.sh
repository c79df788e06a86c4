# vMotion under faults (docs/vmotion.md) on a three-host lab with the shared datastore and
# HA on. A 768 MiB kguest VM with 512 MiB filled, dirtying 256 MiB/s, is migrated over a
# vMotion network shaped to 1 Gbit/s (tbf on the root ends of the hosts' vmnic1), so its
# pre-copy lasts seconds; each fault strikes once the source's vmkernel reports the phase
# "precopy" (VmkVmMigrateStatus through vmk_migrate_client.py) or, for "after the commit",
# once the cluster names the destination as owner. Each ends with the VM running on exactly
# one host (the cluster's owner, `keel vm info` on every host, the guest's console counter)
# and the error the operator sees printed and checked, in this order:
#   - the destination host killed mid-pre-copy: `keel vm migrate` fails saying the VM was
#     not migrated and runs on the source; the VM runs on the source in the same vmx, the
#     migration's end is an event, and the next migration of the VM can begin;
#   - cancel: CancelTask of the running MigrateVm task through hostd's API (mid-pre-copy,
#     before the switchover) succeeds: the task ends `cancelled` ("cancelled by root"), the
#     VM runs once, on the source, in the same vmx, the destination's incoming vmx is gone;
#   - the source host killed mid-pre-copy: HA restarts the VM on a survivor at epoch 2,
#     `keel vm migrate` says it was not migrated, the destination's incoming vmx is gone,
#     the returning host runs nothing;
#   - the source host killed right after the commit (the guest no longer dirtying, so the
#     migration converges): the VM runs on the destination at epoch 3 and HA does not
#     restart it anywhere else;
#   - hostile streams to an incoming vmx's endpoint (MigrateIn through
#     vmk_migrate_client.py, vmotion_hostile.py): random bytes, then a valid hello followed
#     by a truncated record: each time the incoming vmx exits, the log says why and the VM
#     never runs there;
#   - the vMotion network cut mid-stream (the destination's vmnic1 root end set down):
#     `keel vm migrate` must fail within 20 s (the source's send timeout is 10 s) and the VM
#     keep running on the source in the same vmx, the destination's incoming vmx gone.
# A failed expectation that leaves the lab usable is reported and the remaining cases run;
# the test then fails listing them all.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v tc >/dev/null || { echo "SKIP: tc missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm
PY=/usr/bin/python3
$PY -c 'import google.protobuf' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no protobuf module"; exit 77; }
command -v protoc >/dev/null || { echo "SKIP: protoc missing"; exit 77; }
"$VMX" --help 2>&1 | grep -q -- '--incoming-fd' || { echo "SKIP: this vmx cannot receive a migration"; exit 77; }

KEEL_TOP=${KEEL_TOP:-$PWD}
CLIENT=$KEEL_TOP/tests/integration/vmk_migrate_client.py
HOSTILE=$KEEL_TOP/tests/integration/vmotion_hostile.py
mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" proto/vmk.proto || fail "protoc"
LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -Ei "migrat|HA" "$LAB/hosts/host$h/clusterd.out" | tail -12; }
		[ -f "$LAB/hosts/host$h/vmkernel.log" ] &&
			{ echo "--- vmkernel host$h"; grep -Ei "migrat|incoming|exited|lock" "$LAB/hosts/host$h/vmkernel.log" | tail -12; }
	done
	if [ -n "${VMOTION_KEEP_LOGS:-}" ] && [ -d "$LAB" ]; then
		mkdir -p "$VMOTION_KEEP_LOGS"
		for h in 1 2 3; do
			for f in vmkernel.log clusterd.out hostd.out; do
				cp "$LAB/hosts/host$h/$f" "$VMOTION_KEEP_LOGS/host$h-$f" 2>/dev/null
			done
		done
	fi
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
mig() { local h=$1; shift; $PY "$CLIENT" "$T/stubs" "$LAB/hosts/host$h/vmkernel.sock" "$@"; }
connected_set() { # STATUS: the sorted names of the connected hosts
	py 'sorted(h["name"] for h in d["hosts"] if h["state"] == "connected") if d["leader_id"] else []' "$1"
}
all_healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(connected_set "$s")" = "['host1', 'host2', 'host3']" ]
}
# owner NAME: "host epoch desired" for VM NAME as host $L sees it
L=3
owner() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st "$L")" || true; }
power_of() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || echo absent; }
pid_of() { py 'd["vms"][0]["pid"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || echo 0; }
counter() { grep -c "counter" "$LAB/shared/$1/console.log" 2>/dev/null || echo 0; }
# vmx_of H UUID: pids of vmx processes with that VM's control socket on host H
vmx_of() { pgrep -f -- "--ctl $LAB/hosts/host$1/run/$2.ctl" || true; }
# runs_once NAME HOST [EPOCH]: the cluster names HOST (at EPOCH) as owner, only HOST's
# vmkernel has the VM powered on (a killed host counts as not running it), and its guest's
# console counter goes on
runs_once() {
	local name=$1 want=$2 epoch=${3:-} o h n p
	o=$(owner "$name")
	[[ $o == "host$want "*" on" ]] || { echo "$name: the cluster's owner is '$o', not host$want"; return 1; }
	[ -z "$epoch" ] || [ "$o" = "host$want $epoch on" ] || { echo "$name: owner '$o', not at epoch $epoch"; return 1; }
	for h in 1 2 3; do
		p=$(power_of $h "$name")
		if [ "$h" = "$want" ]; then
			[ "$p" = poweredOn ] || { echo "$name: $p on host$h"; return 1; }
		else
			[ "$p" != poweredOn ] || { echo "$name: also powered on at host$h"; return 1; }
		fi
	done
	n=$(counter "$name")
	sleep 0.4
	[ "$(counter "$name")" -gt "$n" ] || { echo "$name: its console counter stopped at $n"; return 1; }
}
until_once() { # SECONDS NAME HOST [EPOCH]
	local end=$(($(now_ms) + $1 * 1000)) why
	shift
	while :; do
		why=$(runs_once "$@") && return 0
		[ "$(now_ms)" -ge "$end" ] && fail "$why"
		sleep 0.1
	done
}
# wait_phase H NAME PHASE: host H's vmkernel reports NAME's migration in PHASE (20 s; the
# background migrate command must not have ended)
wait_phase() {
	local p= r
	for _ in $(seq 200); do
		r=$(mig "$1" status "$2" 2>/dev/null) || r='{}'
		p=$(py 'd.get("migrate", {}).get("phase", "")' "$r")
		[ "$p" = "$3" ] && return 0
		# (before the new migration starts, the status is the last one's end)
		[ -e "$T/mig.rc" ] && break
		sleep 0.05
	done
	fail "$2's migration on host$1 never reached $3 (last phase '$p')"
}
# migrate_bg FROM_HOST NAME TO: keel vm migrate in the background (output in $T/mig.out,
# exit status in $T/mig.rc)
migrate_bg() {
	rm -f "$T/mig.rc"
	(
		rc=0
		"$KEEL_BIN" --socket "$LAB/hosts/host$1/vmkernel.sock" --timeout 90 vm migrate "$2" --to "$3" \
			>"$T/mig.out" 2>&1 || rc=$?
		echo $rc >"$T/mig.rc"
	) &
	MIG_PID=$!
}
# migrate_end SECONDS: waits for the background migrate; $mig_rc and $mig_msg
migrate_end() {
	for _ in $(seq $(($1 * 10))); do [ -e "$T/mig.rc" ] && break; sleep 0.1; done
	[ -e "$T/mig.rc" ] || fail "keel vm migrate still runs $1 s after the fault: $(cat "$T/mig.out")"
	wait "$MIG_PID" 2>/dev/null || true
	mig_rc=$(cat "$T/mig.rc")
	mig_msg=$(cat "$T/mig.out")
}
ended_event() { # NAME TO: the migration's end event, as host $L sees the events
	py "([''] + [e['message'] for e in d['events'] if e['message'].startswith('migration of VM $1 to $2 ended')])[-1]" \
		"$(kc "$L" events --json --limit 100)"
}
# bug MSG...: a failed expectation that does not stop the remaining cases; the test fails
# at the end
BUGS=()
bug() { echo "FAILED: $*"; BUGS+=("$*"); }
incoming_gone() { [ -z "$(vmx_of "$1" "$UUID" | xargs -r -I{} grep -l -- --incoming /proc/{}/cmdline 2>/dev/null)" ]; }

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create vmof >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy 3 || fail "cluster not healthy: $(st 3)"
[ "$(py 'd["ha_enabled"]' "$(st 3)")" = True ] || fail "HA not on: $(st 3)"
# the vMotion network at 1 Gbit/s into every host
for h in 1 2 3; do
	tc qdisc add dev "$prefix-h${h}n1" root tbf rate 1gbit burst 512kb latency 100ms ||
		fail "tc on $prefix-h${h}n1"
done

kv 1 vm create big --memory 768 --vcpus 1 --datastore shared1 \
	--cmdline "counter_ms=100 idle_ms=1 fill_mib=512 dirty_mib_s=256 dirty_ws_mib=512" \
	>/dev/null || fail "create big"
kv 1 vm power-on big >/dev/null || fail "power-on big"
UUID=$(py 'd["vms"][0]["uuid"]' "$(kv 1 --json vm info big)")
wait_for "$LAB/shared/big/console.log" "fill done 512 MiB" 30
until_once 5 big 1 1
SRC_PID=$(pid_of 1 big)

# ---- the destination killed mid-pre-copy --------------------------------------------------
migrate_bg 3 big host2
wait_phase 1 big precopy
lab host-kill 2 --dir "$LAB" >/dev/null || fail "host-kill 2"
migrate_end 40
echo "destination killed: exit $mig_rc: $mig_msg"
[ "$mig_rc" = 1 ] || fail "migrate with its destination killed: exit $mig_rc: $mig_msg"
[[ $mig_msg == *"VM big was not migrated: "*"; it runs on host1 (epoch "* ]] || fail "unclear error: $mig_msg"
until_once 10 big 1 1
p=$(pid_of 1 big); [ "$p" = "$SRC_PID" ] || fail "big's vmx on host1 changed: pid $p, not $SRC_PID: $(kv 1 --json vm info big 2>&1)"
has_end() { e=$(ended_event big host2) && [ -n "$e" ]; }
until_ok 10 has_end || fail "no event for the end of the migration to host2: $(kc "$L" events --limit 20 2>&1)"
echo "event: $e"
lab host-start 2 --dir "$LAB" >/dev/null &
START_PID=$!

wait "$START_PID" || fail "host-start 2"
until_ok 30 all_healthy 3 || fail "host2 not back: $(st 3)"

# ---- cancel: CancelTask of the running migration through the API ---------------------------
SRV=https://198.18.0.1:8443
k() { nsenter --net="/run/netns/$prefix-lab-host3" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 120 "$KEEL_BIN" "$@"; }
logged_in() { k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null 2>&1; }
until_ok 20 logged_in || fail "login to host1's API"
rm -f "$T/mig.rc"
task=$(k --server "$SRV" vm migrate big --to host3 --no-wait) || fail "MigrateVm task: $task"
task=$(echo "$task" | grep -Eo 'task-[0-9]+' | head -1)
[ -n "$task" ] || fail "no task id from --no-wait"
wait_phase 1 big precopy
rc=0; msg=$(k --server "$SRV" task cancel "$task" 2>&1) || rc=$?
echo "CancelTask of the running migration: exit $rc: $msg"
[ "$rc" = 0 ] || fail "CancelTask of the running migration (mid-pre-copy): exit $rc: $msg"
[[ $msg == *"Cancelled $task (MigrateVm)."* ]] || fail "CancelTask's answer: $msg"
rc=0; msg=$(k --server "$SRV" --timeout 60 task wait "$task" 2>&1) || rc=$?
echo "the cancelled migration's task: exit $rc: $msg"
[ "$rc" = 1 ] || fail "the cancelled migration's task: exit $rc: $msg"
[[ $msg == *"cancelled by root"* ]] || fail "the task's error does not say who cancelled it: $msg"
rc=0; j=$(k --server "$SRV" --json --timeout 60 task wait "$task" 2>/dev/null) || rc=$?
[ "$(py 'd.get("state", "")' "$j")" = cancelled ] || fail "the migration's task did not end cancelled: $j"
until_once 10 big 1 1
p=$(pid_of 1 big); [ "$p" = "$SRC_PID" ] || fail "big's vmx on host1 changed: pid $p, not $SRC_PID: $(kv 1 --json vm info big 2>&1)"
until_ok 15 incoming_gone 3 || fail "the incoming vmx on host3 outlived the cancel: $(vmx_of 3 "$UUID")"

# ---- the source killed mid-pre-copy: HA restarts the VM once ----------------------------------
migrate_bg 3 big host2
wait_phase 1 big precopy
lab host-kill 1 --dir "$LAB" >/dev/null || fail "host-kill 1"
t0=$(now_ms)
migrate_end 60
echo "source killed before the commit: exit $mig_rc: $mig_msg"
# (the operator must not be told the VM migrated: its guest was restarted by HA)
[ "$mig_rc" = 1 ] && [[ $mig_msg == *"VM big was not migrated: "* ]] ||
	bug "source killed before the commit: keel vm migrate exit $mig_rc, '$mig_msg'; HA restarted the VM," \
		"it was not migrated"
restarted() { local o; o=$(owner big); [[ $o == "host2 2 on" || $o == "host3 2 on" ]]; }
until_ok 40 restarted || fail "big not restarted by HA: $(owner big)"
X=$(owner big); X=${X%% *}; X=${X#host}
until_once 15 big "$X" 2
echo "big restarted by HA on host$X at epoch 2, $(($(now_ms) - t0)) ms after host-kill 1"
tr '\0' ' ' <"/proc/$(pid_of "$X" big)/cmdline" | grep -q -- "--incoming" && fail "big on host$X runs in an incoming vmx"
until_ok 15 incoming_gone 2 || fail "the incoming vmx on host2 outlived its source: $(vmx_of 2 "$UUID")"
lab host-start 1 --dir "$LAB" >/dev/null || fail "host-start 1"
until_ok 30 all_healthy 3 || fail "host1 not back: $(st 3)"
runs_once big "$X" 2 >/dev/null || fail "$(runs_once big "$X" 2)"

# ---- the source killed right after the commit ---------------------------------------------------
# (the restarted guest filled its memory again; it stops dirtying, so that this migration
# and the next converge in a few seconds over the shaped link)
refilled() { [ "$(grep -c "fill done 512 MiB" "$LAB/shared/big/console.log")" -ge 2 ]; }
until_ok 30 refilled || fail "big did not fill its memory again after the restart"
"$VMXCTL" "$LAB/hosts/host$X/run/$UUID.ctl" agent-send "set dirty_mib_s=0" >/dev/null || fail "agent-send to big"
Y=$((X == 2 ? 3 : 2))
L=1
migrate_bg 1 big "host$Y"
committed() { [[ $(owner big) == "host$Y "* ]]; }
until_ok 60 committed || fail "big's migration to host$Y did not commit: $(owner big); $(cat "$T/mig.out")"
lab host-kill "$X" --dir "$LAB" >/dev/null || fail "host-kill $X"
migrate_end 30
echo "source killed after the commit: exit $mig_rc: $mig_msg"
until_once 15 big "$Y" 3
failed_x() { [[ $(connected_set "$(st 1)") != *"host$X"* ]]; }
until_ok 30 failed_x || fail "host$X not seen gone: $(st 1)"
sleep 3
runs_once big "$Y" 3 >/dev/null || fail "after host$X failed: $(runs_once big "$Y" 3)"
lab host-start "$X" --dir "$LAB" >/dev/null || fail "host-start $X"
until_ok 30 all_healthy 1 || fail "host$X not back: $(st 1)"
until_once 10 big "$Y" 3

# ---- hostile streams to an incoming vmx ------------------------------------------------------------
kv 2 vm create hs --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "create hs"
hinfo=$(kv 2 --json vm info hs)
HS_UUID=$(py 'd["vms"][0]["uuid"]' "$hinfo")
HS_PATH=$(py 'd["vms"][0]["vmx_path"]' "$hinfo")
D=1
for mode in random truncated; do
	ID=$($PY -c 'import os; print(os.urandom(16).hex())')
	KEY=$($PY -c 'import os; print(os.urandom(32).hex())')
	r=$(mig $D in "$HS_PATH" "$HS_UUID" "$ID" "$KEY")
	[ "$(py 'd.get("code", 0)' "$r")" = 0 ] || fail "MigrateIn of hs on host$D: $r"
	ep=$(py 'd["migrate"]["endpoints"][0]' "$r")
	[ "$(power_of $D hs)" = incoming ] || fail "hs not incoming on host$D"
	in_pid=$(pgrep -f -- "--ctl $LAB/hosts/host$D/run/$HS_UUID.ctl" | head -1)
	[ -n "$in_pid" ] || fail "no incoming vmx for hs on host$D"
	lines0=$(wc -l <"$LAB/hosts/host$D/vmkernel.log")
	said=$(nsenter --net="$LAB/hosts/host2/netns/vmotion" $PY "$HOSTILE" "$mode" "$ep" "$ID" "$KEY" 2>&1) ||
		fail "$mode stream: $said"
	echo "$mode stream to $ep: $said"
	for _ in $(seq 200); do kill -0 "$in_pid" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$in_pid" 2>/dev/null && fail "the incoming vmx survived a $mode stream"
	for _ in $(seq 100); do [ "$(power_of $D hs)" = absent ] && break; sleep 0.05; done
	[ "$(power_of $D hs)" = absent ] || fail "hs left on host$D after a $mode stream: $(power_of $D hs)"
	logged=$(tail -n +$((lines0 + 1)) "$LAB/hosts/host$D/vmkernel.log" | grep "VM hs: " || true)
	[[ $logged == *"VM hs: incoming migration failed"* ]] ||
		fail "host$D's log does not say the incoming migration failed: $logged"
	[[ $logged != *"VM hs: migrated in"* ]] || fail "hs ran on host$D: $logged"
	echo "host$D: $(echo "$logged" | grep "incoming migration failed" | tail -1 | cut -d' ' -f4-)"
done
[ "$(power_of 2 hs)" = poweredOff ] || fail "hs changed on host2: $(power_of 2 hs)"
# ---- the vMotion network cut mid-stream ------------------------------------------------------
S=$Y Z=1
SRC_PID=$(pid_of $S big)
migrate_bg $S big host$Z
wait_phase $S big precopy
ip link set "$prefix-h${Z}n1" down
t0=$(now_ms)
for _ in $(seq 200); do [ -e "$T/mig.rc" ] && break; sleep 0.1; done
if ! [ -e "$T/mig.rc" ]; then
	# the source's send timeout (10 s) should have ended it: record that, then cancel it
	# through the source's vmkernel and heal the link so that the other cases still run
	r=$(mig $S status big 2>&1 || true)
	bug "vMotion network cut mid-stream: keel vm migrate still runs 20 s after the cut" \
		"(source phase $(py 'd.get("migrate", {}).get("phase", "?")' "$r")): the source never gave up"
	r=$(mig $S cancel big "the vMotion network is down")
	echo "cancel through the source's vmkernel: code $(py 'd.get("code", 0)' "$r")," \
		"phase $(py 'd.get("migrate", {}).get("phase", "?")' "$r") after $(py 'int(d.get("elapsed_ns", 0)) // 1000000' "$r") ms"
	sleep 5
	[ -e "$T/mig.rc" ] || bug "cancel of a migration whose stream is stalled: keel vm migrate still runs 5 s after it"
	ip link set "$prefix-h${Z}n1" up
fi
migrate_end 90
echo "vMotion network cut: exit $mig_rc after $(($(now_ms) - t0)) ms: $mig_msg"
ip link set "$prefix-h${Z}n1" up
[ "$mig_rc" = 1 ] || fail "migrate over a cut network: exit $mig_rc: $mig_msg"
[[ $mig_msg == *"VM big was not migrated: "*"; it runs on host$S (epoch "* ]] || fail "unclear error: $mig_msg"
until_once 10 big $S 3
p=$(pid_of $S big); [ "$p" = "$SRC_PID" ] || fail "big's vmx on host$S changed: pid $p, not $SRC_PID: $(kv $S --json vm info big 2>&1)"
until_ok 15 incoming_gone $Z || fail "the incoming vmx on host$Z outlived the failed migration: $(vmx_of $Z "$UUID")"
[ "$(power_of $Z big)" != poweredOn ] || fail "big powered on at host$Z"
[ "${#BUGS[@]}" = 0 ] || fail "$(printf '%s\n' "${BUGS[@]}")"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo ok
