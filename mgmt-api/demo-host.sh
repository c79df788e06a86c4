#!/usr/bin/env bash
# make demo: one Keel host on this machine, driven with keel the way an operator would.
# vmkernel runs in a network namespace of its own (keel-demo-PID), so its vSwitch and the
# VM's tap never touch this machine's interfaces; its state lives in a temp dir. Shows:
# create a kguest VM, power it on, its console, its network answering over the portgroup,
# suspend and resume with the counter continuing, power off, destroy; then cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
STATE=$(mktemp -d /tmp/keel-demo-XXXXXX)
NS=keel-demo-$$
KEEL=("$BIN/keel" --socket "$STATE/vmkernel.sock")
VMK_PID=

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ keel %s\n' "${*:4}"; "$@"; }

cleanup() {
	set +e
	if [ -S "$STATE/vmkernel.sock" ]; then
		"${KEEL[@]}" vm power-off demo1 >/dev/null 2>&1
	fi
	[ -n "$VMK_PID" ] && kill "$VMK_PID" 2>/dev/null && wait "$VMK_PID" 2>/dev/null
	pkill -f "$STATE/run/" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$STATE"
}
trap cleanup EXIT

for b in vmkernel vmx keel; do
	[ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing (run make)"; exit 1; }
done
[ -w /dev/kvm ] || { echo "demo: /dev/kvm is not available"; exit 1; }

bold "Starting vmkernel (state in $STATE, network namespace $NS)"
ip netns add "$NS"
ip -n "$NS" link set lo up
nsenter --net="/run/netns/$NS" "$BIN/vmkernel" --state-dir "$STATE" &
VMK_PID=$!
for _ in $(seq 100); do [ -S "$STATE/vmkernel.sock" ] && break; sleep 0.05; done
run "${KEEL[@]}" host info
run "${KEEL[@]}" datastore list
run "${KEEL[@]}" network portgroup list

bold "Creating a kguest VM with a 64 MiB disk and a NIC on \"VM Network\""
run "${KEEL[@]}" vm create demo1 --memory 256 --vcpus 1 --disk 64 --nic "VM Network" \
	--cmdline "counter_ms=500 hb_ms=100 ip=198.18.10.2 disk_seq=1 disk_ms=200"
run "${KEEL[@]}" vm power-on demo1
run "${KEEL[@]}" vm list

bold "Its console"
sleep 2
run "${KEEL[@]}" vm console demo1 --follow-for 2

bold "Its network: UDP echo to the guest over the portgroup's bridge"
ip -n "$NS" addr add 198.18.10.1/24 dev vSwitch0
ip netns exec "$NS" python3 tests/integration/udp_echo_client.py 198.18.10.2 7 20 1.0

bold "Suspend to the datastore, then resume: the counter continues"
before=$(grep -Eo 'counter [0-9]+' "$STATE/datastore1/demo1/console.log" | tail -1)
run "${KEEL[@]}" vm suspend demo1
run "${KEEL[@]}" vm list
ls -la "$STATE/datastore1/demo1/"
run "${KEEL[@]}" vm resume demo1
sleep 1.5
after=$(grep -Eo 'counter [0-9]+' "$STATE/datastore1/demo1/console.log" | tail -1)
echo "last counter before suspend: ${before#counter }, after resume: ${after#counter }"

bold "Power off and destroy"
run "${KEEL[@]}" vm power-off demo1
run "${KEEL[@]}" vm destroy demo1
run "${KEEL[@]}" vm list
run "${KEEL[@]}" host log --lines 12
bold "Done: cleaning up"
