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
	exit 1
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
