#!/usr/bin/env bash
# make demo: a 3-host Keel cluster on this machine, driven with keel the way an operator
# would. The lab (keel lab, docs/lab.md) makes three nested hosts, each a network namespace
# with its own vmkernel and clusterd on the lab bridges (198.18.0.0/15 only). Shows: create
# a cluster on host1, join host2 and host3 with single-use tokens, two kguest VMs on the
# shared datastore, `keel cluster status`, then host2 cut off from the management network:
# it declares itself isolated and powers its VM off (the isolation response), the others
# see it partitioned (its datastore heartbeat goes on); healed, it rejoins and starts its VM
# again (the cluster still wants it on). The events tell the story. The lab is torn down at the end; KEEL_DEMO_KEEP=1 leaves it up.
# (make demo-host shows one host in detail: console, network, suspend and resume.)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
LAB=${KEEL_DEMO_DIR:-/tmp/keel-demo-lab}
KEEP=${KEEL_DEMO_KEEP:-0}

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# keel on host N, echoing the command as an operator would type it there
on() {
	local h=$1
	shift
	printf '[host%s]$ keel %s\n' "$h" "$*"
	"$BIN/keel" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 60 "$@"
}
q() { local h=$1; shift; "$BIN/keel" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 60 "$@"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

cleanup() {
	set +e
	if [ "$KEEP" = 1 ]; then
		printf '\nThe lab is still up (%s). Try:\n' "$LAB"
		printf '  %s --socket %s/hosts/host1/vmkernel.sock cluster status\n' "$BIN/keel" "$LAB"
		printf '  %s lab down --dir %s\n' "$BIN/keel" "$LAB"
		return
	fi
	bold "Tearing the lab down"
	"$BIN/keel" lab down --dir "$LAB"
}

for b in vmkernel vmx keel clusterd; do
	[ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing (run make)"; exit 1; }
done
[ -w /dev/kvm ] || { echo "demo: /dev/kvm is not available"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: the lab needs root (network namespaces)"; exit 1; }

"$BIN/keel" lab down --dir "$LAB" >/dev/null 2>&1 || true
trap cleanup EXIT

bold "A lab of three hosts (state in $LAB)"
printf '$ keel lab up 3\n'
"$BIN/keel" lab up 3 --dir "$LAB"

bold "A cluster: created on host1, joined by host2 and host3 with single-use tokens"
for _ in $(seq 100); do
	q 1 cluster status --json 2>/dev/null | jget 'd["node_state"]' 2>/dev/null |
		grep -q "not bootstrapped" && break
	sleep 0.1
done
on 1 cluster create demo >/dev/null
for h in 2 3; do
	token=$(q 1 cluster join-token)
	printf '[host1]$ keel cluster join-token\n%s\n' "$token"
	on "$h" cluster join 198.18.0.1 --token "$token" >/dev/null
done
printf 'host3 tries the token host3 just used again:\n'
on 3 cluster join 198.18.0.1 --token "$token" || true
for _ in $(seq 50); do
	n=$(q 1 cluster status --json | jget 'sum(1 for h in d["hosts"] if h["raft_role"] == "voter" and h["state"] == "connected")')
	[ "$n" = 3 ] && break
	sleep 0.2
done
on 1 cluster status

bold "Two kguest VMs on the shared datastore: web1 on host2, db1 on host3"
on 2 vm create web1 --memory 128 --datastore shared1 --cmdline "counter_ms=500 hb_ms=100"
on 2 vm power-on web1
on 3 vm create db1 --memory 128 --datastore shared1 --cmdline "counter_ms=500 hb_ms=100"
on 3 vm power-on db1
on 2 vm list
on 3 vm list

bold "host2 loses its management network (keel lab host-isolate 2)"
"$BIN/keel" lab host-isolate 2 --dir "$LAB"
for _ in $(seq 60); do
	st=$(q 2 vm list --json | jget '[v["power_state"] for v in d["vms"] if v["name"] == "web1"][0]')
	iso=$(q 2 cluster status --json | jget 'd["isolated"]')
	[ "$iso" = True ] && [ "$st" = poweredOff ] && break
	sleep 0.1
done
printf 'host2 sees itself:\n'
on 2 cluster status | grep -E "This node|Leader|Isolation" || true
printf 'and has applied the isolation response (power off) to its VM:\n'
on 2 vm list
for _ in $(seq 60); do
	s=$(q 1 cluster status --json | jget '[h["state"] for h in d["hosts"] if h["name"] == "host2"][0]')
	[ "$s" = partitioned ] && break
	sleep 0.1
done
printf 'The majority sees host2 partitioned: no network heartbeat, but its datastore heartbeat goes on:\n'
on 1 cluster status

bold "host2 gets its network back (keel lab host-heal 2)"
"$BIN/keel" lab host-heal 2 --dir "$LAB"
for _ in $(seq 60); do
	s=$(q 1 cluster status --json | jget '[h["state"] for h in d["hosts"] if h["name"] == "host2"][0]')
	[ "$s" = connected ] && break
	sleep 0.1
done
on 1 cluster status
printf 'The cluster still wants web1 on and names host2 its owner, so host2 starts it again:\n'
for _ in $(seq 100); do
	st=$(q 2 vm list --json | jget '[v["power_state"] for v in d["vms"] if v["name"] == "web1"][0]')
	[ "$st" = poweredOn ] && break
	sleep 0.1
done
on 2 vm list

bold "What happened, from the cluster's event log (the same on every host)"
on 3 cluster events
