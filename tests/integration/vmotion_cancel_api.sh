# CancelTask of a running MigrateVm task through hostd's API (docs/vmotion.md, "Cancel"),
# from a third-party gRPC client (vmotion_cancel_api.py, Debian's grpcio), on a three-host
# lab with the shared datastore. A 768 MiB kguest VM on host1 with 512 MiB filled, dirtying
# 256 MiB/s, is migrated to host2 over a vMotion network shaped to 500 Mbit/s (tbf on the
# root ends of the hosts' vmnic1, as in vmotion_faults.sh), so its first pass alone lasts
# about 9 s and a loaded machine still cancels well before any switchover; each cancel
# comes once the source's vmkernel reports the phase "precopy". In order:
#   - through the source's API (host1): the task shows the pre-copy's progress; a ReadOnly
#     user's CancelTask is PERMISSION_DENIED and the migration goes on; root's CancelTask
#     answers the task "cancelled" with the error "cancelled by root" (FAILED_PRECONDITION
#     would say the switchover had begun); WaitForTask says the same; the VM runs on host1
#     alone at epoch 1 in the same vmx, its guest's counter going on; host2's incoming vmx
#     is gone; the source's vmkernel has no migration under way; the migration's end event
#     says "cancelled by root (task-N)";
#   - through host3's API (neither source nor destination: the abort goes through its
#     clusterd to the leader): the same outcome;
#   - the guest stops dirtying; a migration through host3's API ends in success, and
#     CancelTask of the finished task is FAILED_PRECONDITION ("... is success: it cannot be
#     cancelled"); the VM runs on host2 alone at epoch 2.
# Figures printed: how long each CancelTask took.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v tc >/dev/null || { echo "SKIP: tc missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm
PY=/usr/bin/python3
$PY -c 'import grpc, google.protobuf' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no grpc or protobuf module"; exit 77; }
command -v protoc >/dev/null || { echo "SKIP: protoc missing"; exit 77; }
[ -x /usr/bin/grpc_python_plugin ] || { echo "SKIP: grpc_python_plugin missing"; exit 77; }
"$VMX" --help 2>&1 | grep -q -- '--incoming-fd' || { echo "SKIP: this vmx cannot receive a migration"; exit 77; }

KEEL_TOP=${KEEL_TOP:-$PWD}
VMK_CLIENT=$KEEL_TOP/tests/integration/vmk_migrate_client.py
API_CLIENT=$KEEL_TOP/tests/integration/vmotion_cancel_api.py
mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" proto/vmk.proto || fail "protoc vmk"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto || fail "protoc vim"
LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -Ei "migrat" "$LAB/hosts/host$h/clusterd.out" | tail -10; }
		[ -f "$LAB/hosts/host$h/vmkernel.log" ] &&
			{ echo "--- vmkernel host$h"; grep -Ei "migrat|incoming|exited" "$LAB/hosts/host$h/vmkernel.log" | tail -10; }
		[ -f "$LAB/hosts/host$h/hostd.out" ] &&
			{ echo "--- hostd host$h"; grep -Ei "task|migrat|cancel" "$LAB/hosts/host$h/hostd.out" | tail -10; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
mig() { local h=$1; shift; $PY "$VMK_CLIENT" "$T/stubs" "$LAB/hosts/host$h/vmkernel.sock" "$@"; }
# api H STEP ARGS...: vmotion_cancel_api.py against host H's API, from inside host H
api() {
	local h=$1
	shift
	nsenter --net="/run/netns/$prefix-lab-host$h" timeout 150 $PY "$API_CLIENT" "$T/stubs" \
		"$LAB/hosts/host1/ca.crt" "$pwfile" "198.18.0.$h" 8443 "host$h" "$@"
}
all_healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py 'sorted(h["name"] for h in d["hosts"] if h["state"] == "connected") if d["leader_id"] else []' "$s")" = "['host1', 'host2', 'host3']" ]
}
L=3
owner() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st "$L")" || true; }
power_of() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || echo absent; }
pid_of() { py 'd["vms"][0]["pid"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || echo 0; }
counter() { grep -c "counter" "$LAB/shared/$1/console.log" 2>/dev/null || echo 0; }
vmx_of() { pgrep -f -- "--ctl $LAB/hosts/host$1/run/$2.ctl" || true; }
# runs_once NAME HOST EPOCH: the cluster names HOST at EPOCH as owner, only HOST's vmkernel
# has the VM powered on, and its guest's console counter goes on
runs_once() {
	local name=$1 want=$2 epoch=$3 o h p n
	o=$(owner "$name")
	[ "$o" = "host$want $epoch on" ] || { echo "$name: the cluster's owner is '$o', not host$want at epoch $epoch"; return 1; }
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
until_once() { # SECONDS NAME HOST EPOCH
	local end=$(($(now_ms) + $1 * 1000)) why
	shift
	while :; do
		why=$(runs_once "$@") && return 0
		[ "$(now_ms)" -ge "$end" ] && fail "$why"
		sleep 0.1
	done
}
# wait_phase H NAME PHASE: host H's vmkernel reports NAME's migration in PHASE (within 20 s)
wait_phase() {
	local p= r
	for _ in $(seq 400); do
		r=$(mig "$1" status "$2" 2>/dev/null) || r='{}'
		p=$(py 'd.get("migrate", {}).get("phase", "")' "$r")
		[ "$p" = "$3" ] && return 0
		sleep 0.05
	done
	fail "$2's migration on host$1 never reached $3 (last phase '$p')"
}
source_idle() { # H NAME: host H's vmkernel has no migration of NAME under way
	local p
	p=$(py 'd.get("migrate", {}).get("phase", "")' "$(mig "$1" status "$2" 2>/dev/null || echo '{}')")
	case "$p" in connecting | precopy | switchover | ready | starting) return 1 ;; esac
}
incoming_gone() { [ -z "$(vmx_of "$1" "$UUID" | xargs -r -I{} grep -l -- --incoming /proc/{}/cmdline 2>/dev/null)" ]; }
end_event() { # TASK: the newest migration event of big naming the task's cancel
	py "([''] + [e['message'] for e in d['events'] if 'cancelled by root ($1)' in e['message']])[-1]" \
		"$(kc "$L" events --json --limit 100)"
}

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create vmcancel >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy 3 || fail "cluster not healthy: $(st 3)"
for h in 1 2 3; do
	tc qdisc add dev "$prefix-h${h}n1" root tbf rate 500mbit burst 512kb latency 100ms ||
		fail "tc on $prefix-h${h}n1"
done
for h in 1 3; do
	for _ in $(seq 150); do
		grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$h/hostd.out" 2>/dev/null && break
		sleep 0.1
	done
done
j=$(api 1 viewer migviewer viewer-pw-123) || fail "ReadOnly user on host1: $j"

kv 1 vm create big --memory 768 --vcpus 1 --datastore shared1 \
	--cmdline "counter_ms=100 idle_ms=1 fill_mib=512 dirty_mib_s=256 dirty_ws_mib=512" \
	>/dev/null || fail "create big"
kv 1 vm power-on big >/dev/null || fail "power-on big"
UUID=$(py 'd["vms"][0]["uuid"]' "$(kv 1 --json vm info big)")
wait_for "$LAB/shared/big/console.log" "fill done 512 MiB" 30
until_once 5 big 1 1
SRC_PID=$(pid_of 1 big)

# cancel_case API_HOST: a migration of big to host2 through API_HOST's API, cancelled there
cancel_case() {
	local a=$1 j task rc t0 ms e
	j=$(api "$a" migrate big host2) || fail "MigrateVm through host$a: $j"
	task=$(py 'd["task"]' "$j")
	[ "$(py 'd["kind"]' "$j")" = MigrateVm ] && [[ $task == task-* ]] || fail "MigrateVm answered: $j"
	wait_phase 1 big precopy
	if [ "$a" = 1 ]; then
		# the source's API reports the pre-copy's progress
		progressing() { j=$(api 1 get "$task") && [ "$(py 'd["task"]["progress"]' "$j")" -gt 0 ]; }
		until_ok 15 progressing || fail "no progress of the running migration: $j"
		echo "progress before the cancel: $(py 'd["task"]["progress"]' "$j") %"
		j=$(api "$a" cancel "$task" migviewer viewer-pw-123) || fail "CancelTask as migviewer: $j"
		[ "$(py 'd["code"]' "$j")" = PERMISSION_DENIED ] || fail "a ReadOnly user's CancelTask: $j"
		[ "$(py 'd["migrate"]["phase"]' "$(mig 1 status big)")" = precopy ] ||
			fail "the migration did not go on after a refused cancel: $(mig 1 status big)"
	fi
	t0=$(now_ms)
	j=$(api "$a" cancel "$task") || fail "CancelTask through host$a: $j"
	ms=$(($(now_ms) - t0))
	echo "CancelTask of $task through host$a: $ms ms (with the client's login): $j"
	[ "$(py 'd["code"]' "$j")" = OK ] || fail "CancelTask of the running migration through host$a: $j"
	[ "$(py '(d["task"]["state"], d["task"]["error"])' "$j")" = "('cancelled', 'cancelled by root')" ] ||
		fail "the task CancelTask answered: $j"
	j=$(api "$a" wait "$task" 10) || fail "WaitForTask: $j"
	[ "$(py '(d["task"]["state"], d["task"]["error"])' "$j")" = "('cancelled', 'cancelled by root')" ] ||
		fail "the cancelled task as WaitForTask sees it: $j"
	until_once 15 big 1 1
	[ "$(pid_of 1 big)" = "$SRC_PID" ] || fail "big's vmx on host1 changed: $(kv 1 --json vm info big 2>&1)"
	until_ok 15 incoming_gone 2 || fail "the incoming vmx on host2 outlived the cancel: $(vmx_of 2 "$UUID")"
	until_ok 15 source_idle 1 big || fail "host1 still migrates big: $(mig 1 status big)"
	has_event() { e=$(end_event "$task") && [ -n "$e" ]; }
	until_ok 10 has_event || fail "no migration event naming the cancel of $task: $(kc "$L" events --limit 20 2>&1)"
	echo "event: $e"
	# nothing left over: still one instance, on host1, after a while
	sleep 2
	runs_once big 1 1 >/dev/null || fail "after the cancel: $(runs_once big 1 1)"
}

# ---- through the source's API --------------------------------------------------------------------
cancel_case 1
# ---- through a third host's API: the abort goes through its clusterd -------------------------------
cancel_case 3

# ---- the migration ends; then CancelTask is refused ------------------------------------------------
"$VMXCTL" "$LAB/hosts/host1/run/$UUID.ctl" agent-send "set dirty_mib_s=0" >/dev/null || fail "agent-send to big"
j=$(api 3 migrate big host2) || fail "MigrateVm through host3: $j"
task=$(py 'd["task"]' "$j")
j=$(api 3 wait "$task" 120) || fail "WaitForTask: $j"
[ "$(py 'd["task"]["state"]' "$j")" = success ] || fail "the migration did not succeed: $j"
j=$(api 3 cancel "$task") || fail "CancelTask after the end: $j"
echo "CancelTask after the end: $j"
[ "$(py 'd["code"]' "$j")" = FAILED_PRECONDITION ] || fail "CancelTask of a finished migration: $j"
[[ $(py 'd["details"]' "$j") == "$task is success: it cannot be cancelled" ]] || fail "unclear refusal: $j"
until_once 15 big 2 2
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo ok
