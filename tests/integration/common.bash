# Shared helpers for the integration tests (sourced). Every test runs in its own temp
# directory, kills what it started on exit, and prints SKIP (exit 77) when /dev/kvm is
# missing.
set -euo pipefail
: "${BUILD:=build}"
VMX=$PWD/$BUILD/bin/vmx
VMXCTL=$PWD/$BUILD/bin/vmxctl
KGUEST=$PWD/$BUILD/guest/kguest.elf
T=$(mktemp -d /tmp/keel-it-XXXXXX)
PIDS=()

cleanup() {
	set +e
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT

need_kvm() {
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		echo "SKIP: /dev/kvm cannot be opened"
		exit 77
	fi
}

fail() {
	echo "FAIL: $*"
	for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
	keep_failed
	exit 1
}

# keep_failed: with KEEL_TEST_KEEP=DIR, copies the test's logs and other small files
# (a lab's hosts included, while they still run) to DIR/<test>-<pid> for a later look.
keep_failed() {
	[ -n "${KEEL_TEST_KEEP:-}" ] || return 0
	local d
	d=$KEEL_TEST_KEEP/$(basename "$0" .sh)-$$
	mkdir -p "$d"
	(cd "$T" && find . -type f -size -4M -print0 2>/dev/null | xargs -0r cp --parents -t "$d" 2>/dev/null) || true
	echo "kept: $d"
}

# wait_for FILE REGEX [SECONDS]: waits until a line of FILE matches REGEX.
wait_for() {
	local f=$1 re=$2 n=$((${3:-10} * 20))
	for ((i = 0; i < n; i++)); do
		grep -Eq "$re" "$f" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "timed out waiting for /$re/ in $f"
}

# start_vmx NAME ARGS...: starts vmx with a control socket $T/NAME.sock and console log
# $T/NAME.log; sets VMX_PID.
start_vmx() {
	local name=$1
	shift
	"$VMX" --name "$name" --ctl "$T/$name.sock" --console-log "$T/$name.log" "$@" \
		2>"$T/$name.vmx.log" &
	VMX_PID=$!
	PIDS+=("$VMX_PID")
	for ((i = 0; i < 100; i++)); do
		"$VMXCTL" "$T/$name.sock" status >/dev/null 2>&1 && return 0
		kill -0 "$VMX_PID" 2>/dev/null || fail "vmx $name exited: $(cat "$T/$name.vmx.log")"
		sleep 0.02
	done
	fail "vmx $name did not open its control socket"
}

# agent NAME LINE: sends LINE to the guest and prints its answers after a short wait.
agent_ask() {
	local name=$1 line=$2 want=$3
	"$VMXCTL" "$T/$name.sock" agent-recv >/dev/null
	"$VMXCTL" "$T/$name.sock" agent-send "$line" >/dev/null
	for ((i = 0; i < 100; i++)); do
		out=$("$VMXCTL" "$T/$name.sock" agent-recv | grep -E "$want" || true)
		[ -n "$out" ] && { echo "$out" | tail -1; return 0; }
		sleep 0.05
	done
	fail "no agent answer /$want/ to '$line' from $name"
}

# wait_exit PID SECONDS: sets RC to the process's exit status (fails after SECONDS).
wait_exit() {
	local pid=$1 n=$((${2:-10} * 20))
	for ((i = 0; i < n; i++)); do
		if ! kill -0 "$pid" 2>/dev/null ||
			[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
			RC=0
			wait "$pid" || RC=$?
			return 0
		fi
		sleep 0.05
	done
	fail "process $pid did not exit"
}

# last_counter NAME: the last console counter of NAME.
last_counter() {
	wait_for "$T/$1.log" "counter [0-9]+" 5
	grep -Eo 'counter [0-9]+' "$T/$1.log" | tail -1 | awk '{print $2}'
}

# ---- vmkernel + keel -------------------------------------------------------------------
VMKERNEL=$PWD/$BUILD/bin/vmkernel
KEEL_BIN=$PWD/$BUILD/bin/keel
NS=
VMK_PID=

# start_vmkernel: a vmkernel with state in $T/state inside a fresh network namespace $NS
# (its bridges and taps live there); keel is then `keel ARGS`.
start_vmkernel() {
	if [ -z "$NS" ]; then
		NS=keel-it-$$-$RANDOM
		ip netns add "$NS" || fail "cannot create a network namespace"
		ip -n "$NS" link set lo up
		trap 'vmk_cleanup' EXIT
	fi
	nsenter --net="/run/netns/$NS" "$VMKERNEL" --state-dir "$T/state" --log-level debug \
		2>>"$T/vmkernel.stderr.log" &
	VMK_PID=$!
	for ((i = 0; i < 200; i++)); do
		keel host info >/dev/null 2>&1 && return 0
		kill -0 "$VMK_PID" 2>/dev/null || fail "vmkernel exited: $(tail -5 "$T/vmkernel.stderr.log")"
		sleep 0.05
	done
	fail "vmkernel did not answer"
}

keel() { "$KEEL_BIN" --socket "$T/state/vmkernel.sock" "$@"; }

# json_field JSON KEY: the first value of "KEY" in a JSON text (numbers and strings).
json_field() {
	python3 -c 'import json,sys
def walk(o,k):
    if isinstance(o,dict):
        if k in o: return o[k]
        for v in o.values():
            r=walk(v,k)
            if r is not None: return r
    if isinstance(o,list):
        for v in o:
            r=walk(v,k)
            if r is not None: return r
print(walk(json.loads(sys.argv[1]),sys.argv[2]))' "$1" "$2"
}

vmk_cleanup() {
	set +e
	if [ -n "$VMK_PID" ]; then kill "$VMK_PID" 2>/dev/null; wait "$VMK_PID" 2>/dev/null; fi
	# the VMs' vmx processes run in their own sessions: end them too
	pkill -9 -f -- "--ctl $T/state/run/" 2>/dev/null || true
	[ -d "$T/state" ] && cp "$T/state/vmkernel.log" "$T/vmkernel.log" 2>/dev/null
	if [ -n "$NS" ]; then ip netns del "$NS" 2>/dev/null || true; fi
	for d in /sys/fs/cgroup/*/keel/vms/*/ /sys/fs/cgroup/*/keel/host-*/vms/*/; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	cleanup
}
