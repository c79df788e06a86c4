#!/usr/bin/env bash
# make demo: a 3-host Keel cluster on this machine, driven through hostd's API with keel the
# way an operator would. The lab (keel lab, docs/lab.md) makes three nested hosts, each a
# network namespace with its own vmkernel, clusterd and hostd on the lab bridges
# (198.18.0.0/15 only). Those addresses exist only inside the lab, so keel runs in host1's
# network namespace, on the management network, with a session cache of its own; every
# command names its host's API (--server https://<vmk0>:8443).
#
# Shows: logging in to each host, its self-signed certificate pinned by the thumbprint its
# console shows (hostd --thumbprint); a cluster created on host1 through the API, whose CA
# then signs every member's certificate (so the operator logs in again trusting that CA);
# host2 and host3 joined through their APIs with single-use tokens (host3 first tries
# host2's spent one); two kguest VMs on the shared datastore, db1 on host1 and web1 on
# host2, created and powered on as tasks; the inventory, the cluster and the tasks (and the
# users, where keel has `user` commands); db1 moved to host3 and back by vMotion while it
# runs (with the downtime the source reported); then
# host2 cut off its management network: seen from its own console it declares itself
# isolated and powers its VM off (the isolation response, releasing its lock), the others
# see it partitioned (its datastore heartbeat goes on) and HA restarts web1 on the majority
# side, one epoch up; healed, host2 rejoins and runs no copy of it. Then host3 is killed
# with two VMs: declared failed within about a second, its VMs run again on host1 and host2
# (the timings are printed). Then FT: ft1 on host2 protected by a live secondary on host3
# (keel vm ft enable); host2 killed, host3 continues ft1 from its last checkpoint (no reboot:
# its counter goes on) and the cluster protects it again on host1, with the timings; host2
# comes back. The events tell the story. At the end: each host's API address and
# thumbprint, and how to log in. The lab is torn down at the end; KEEL_DEMO_KEEP=1 leaves
# it up (and the login hint usable).
#
# Any step that fails or does not happen in time ends the demo with "demo: ..." and exit 1.
# (make demo-host shows one host in detail: console, network, suspend and resume.)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
LAB=${KEEL_DEMO_DIR:-/tmp/keel-demo-lab}
KEEP=${KEEL_DEMO_KEEP:-0}
CFG=
PREFIX=
DONE=0
CUR= # the keel command running in a host's namespace, for the failure message

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
	printf '\ndemo: %s\n' "$*" >&2
	exit 1
}
on_err() {
	local rc=$1 what=$2
	[[ $what == nsenter* ]] && what=$CUR
	printf '\ndemo: failed (exit %s): %s\n' "$rc" "$what" >&2
}
trap 'on_err "$?" "$BASH_COMMAND"' ERR

srv() { printf 'https://198.18.0.%s:8443' "$1"; }
# The arguments as an operator would type them (those with spaces quoted).
args() {
	local a
	for a; do
		if [[ $a == *[[:space:]]* ]]; then printf ' "%s"' "$a"; else printf ' %s' "$a"; fi
	done
}
# keel in host N's network namespace with the demo's session cache (quiet: for polling).
at() {
	local h=$1
	shift
	CUR="keel$(args "$@") (in host$h's network namespace)"
	nsenter --net="/run/netns/$PREFIX-lab-host$h" env -u KEEL_SERVER KEEL_CONFIG_DIR="$CFG" \
		"$BIN/keel" --timeout 60 "$@"
}
# keel from the operator's seat against host N's API, echoing the command as typed.
on() {
	local h=$1
	shift
	printf '$ keel --server $H%s%s\n' "$h" "$(args "$@")"
	at 1 --server "$(srv "$h")" "$@"
}
q() { local h=$1; shift; at 1 --server "$(srv "$h")" "$@"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# until SECONDS WHAT CMD...: runs CMD (quietly) every 0.2 s until it succeeds.
until_ok() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "$what did not happen within $secs s"
}
thumbprint() {
	"$BIN/hostd" --thumbprint --state-dir "$LAB/hosts/host$1" |
		grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}'
}
# login N TRUST...: logs in to host N's API as root, echoing the command.
login() {
	local h=$1
	shift
	printf '$ keel login --server $H%s --user root --password-file %s%s\n' "$h" \
		"$LAB/root-password" "$(args "$@")"
	at 1 login --server "$(srv "$h")" --user root --password-file "$LAB/root-password" "$@"
}
# relogin N: once host N's hostd serves the certificate the cluster CA signed (it looks
# for a new one every few seconds), logs in to it again trusting that CA.
relogin() {
	local h=$1 out=
	printf '$ keel login --server $H%s --user root --password-file %s --ca-file %s\n' "$h" \
		"$LAB/root-password" "$LAB/hosts/host1/ca.crt"
	for _ in $(seq 75); do
		out=$(at 1 login --server "$(srv "$h")" --user root \
			--password-file "$LAB/root-password" --ca-file "$LAB/hosts/host1/ca.crt" 2>&1) &&
			{ printf '%s\n' "$out"; return 0; }
		sleep 0.2
	done
	die "host$h's hostd does not serve a certificate of the cluster CA: $out"
}
host_state() { # N: host N's state as host1's API reports it
	q 1 cluster status --json | jget "[h['state'] for h in d['hosts'] if h['name'] == 'host$1'][0]"
}
web1_state() { # N: web1's power state as host2's API reports it, from host N's namespace
	at "$1" --server "$(srv 2)" vm list --json |
		jget "[v['power_state'] for v in d['vms'] if v['name'] == 'web1'][0]"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Where a VM runs: the host (1..3, skipping SKIP) whose API lists it powered on, or nothing.
runs_on() { # VM SKIP
	local h
	for h in 1 2 3; do
		[ "$h" = "$2" ] && continue
		[ "$(q "$h" vm list --json 2>/dev/null |
			jget "[v['power_state'] for v in d['vms'] if v['name'] == '$1'] == ['poweredOn']" 2>/dev/null)" = True ] &&
			{ echo "$h"; return 0; }
	done
	return 0
}
web1_elsewhere() { [ -n "$(runs_on web1 2)" ] && echo yes; }
apps_back() { [ -n "$(runs_on app1 3)" ] && [ -n "$(runs_on app2 3)" ] && echo yes; }
is() { [ "$("${@:2}")" = "$1" ]; } # is VALUE CMD...: CMD prints VALUE

cleanup() {
	local rc=$?
	set +e
	trap - ERR
	if [ "$KEEP" = 1 ] && [ -n "$PREFIX" ]; then # the lab stays up: end the demo's sessions
		for h in 1 2 3; do q "$h" logout >/dev/null 2>&1; done
	fi
	[ -n "$CFG" ] && rm -rf "$CFG"
	if [ "$KEEP" = 1 ]; then
		printf '\nThe lab is still up (%s). Tear it down with:\n' "$LAB"
		printf '  %s lab down --dir %s\n' "$BIN/keel" "$LAB"
	else
		bold "Tearing the lab down"
		"$BIN/keel" lab down --dir "$LAB"
		[ "$DONE" = 1 ] && printf '(KEEL_DEMO_KEEP=1 make demo leaves it up, to use the API.)\n'
	fi
	exit "$rc"
}

for b in vmkernel vmx keel clusterd hostd; do
	[ -x "$BIN/$b" ] || die "$BIN/$b missing (run make)"
done
[ -w /dev/kvm ] || die "/dev/kvm is not available"
[ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces)"
command -v nsenter >/dev/null || die "nsenter (util-linux) is missing"

"$BIN/keel" lab down --dir "$LAB" >/dev/null 2>&1 || true
CFG=$(mktemp -d /tmp/keel-demo-cfg-XXXXXX)
trap cleanup EXIT

bold "A lab of three hosts (state in $LAB)"
printf '$ keel lab up 3\n'
"$BIN/keel" lab up 3 --dir "$LAB"
PREFIX=$("$BIN/keel" lab status --dir "$LAB" --json | jget 'd["prefix"]')
for h in 1 2 3; do
	until_ok 20 "hostd on host$h listening" nsenter --net="/run/netns/$PREFIX-lab-host1" \
		bash -c "exec 3<>/dev/tcp/198.18.0.$h/8443"
done
# The lab's readiness, not an operation: clusterd on host1 has found vmk0.
until_ok 20 "clusterd on host1 ready" bash -c "'$BIN/keel' --socket '$LAB/hosts/host1/vmkernel.sock' \
	cluster status --json | grep -q '\"node_state\":\"not bootstrapped\"'"

bold "Logging in to each host's API (keel runs in host1's namespace, on the management network)"
printf 'H1=%s H2=%s H3=%s\n' "$(srv 1)" "$(srv 2)" "$(srv 3)"
printf 'Each hostd has a self-signed certificate; its console shows the thumbprint to pin:\n'
for h in 1 2 3; do
	tp=$(thumbprint "$h") || die "no thumbprint for host$h"
	printf '[host%s]# hostd --thumbprint --state-dir %s\n%s\n' "$h" "$LAB/hosts/host$h" "$tp"
	login "$h" --thumbprint "$tp"
done

bold "A cluster, created on host1 through its API"
on 1 cluster create demo
printf 'The cluster CA now signs host1'"'"'s certificate: log in again, trusting that CA:\n'
relogin 1

bold "host2 and host3 join through their APIs with single-use tokens"
token=$(q 1 cluster join-token)
printf '$ keel --server $H1 cluster join-token\n%s\n' "$token"
on 2 cluster join 198.18.0.1 --token "$token"
printf 'host3 tries the token host2 just used:\n'
if on 3 cluster join 198.18.0.1 --token "$token"; then
	die "a spent join token was accepted"
fi
token=$(q 1 cluster join-token)
printf '$ keel --server $H1 cluster join-token\n%s\n' "$token"
on 3 cluster join 198.18.0.1 --token "$token"
relogin 2
relogin 3
voters() {
	q 1 cluster status --json |
		jget 'sum(1 for h in d["hosts"] if h["raft_role"] == "voter" and h["state"] == "connected")'
}
until_ok 30 "three connected voters" is 3 voters
on 1 cluster status

bold "Two kguest VMs on the shared datastore, made as tasks: db1 on host1, web1 on host2"
on 1 vm create db1 --memory 128 --datastore shared1 --cmdline "counter_ms=500 hb_ms=100"
on 1 vm power-on db1
on 2 vm create web1 --memory 128 --datastore shared1 --cmdline "counter_ms=500 hb_ms=100"
on 2 vm power-on web1
on 1 inventory
printf '\nEvery operation was a task on the host that ran it:\n'
on 2 task list
on 3 task list
if "$BIN/keel" user list --help >/dev/null 2>&1; then # where keel has user commands
	printf '\nThe users who may log in:\n'
	on 1 user list
fi

bold "vMotion: db1 moves to host3 while it runs, and back"
on 1 vm migrate db1 --to host3
printf 'The cluster now names host3 its owner, one epoch up; host1 has let it go:\n'
until_ok 10 "db1 running on host3 only" is 3 runs_on db1 0
on 3 vm list
printf 'The figures, as host1 reported them to the cluster:\n'
q 1 cluster events --json | jget "[e['message'] for e in d['events'] if 'VM db1 migrated to host3' in e['message']][-1]"
on 3 vm migrate db1 --to host1
until_ok 10 "db1 running on host1 again" is 1 runs_on db1 0

bold "host2 loses its management network (keel lab host-isolate 2)"
printf '$ keel lab host-isolate 2\n'
"$BIN/keel" lab host-isolate 2 --dir "$LAB"
iso2() { at 2 --server "$(srv 2)" cluster status --json | jget 'd["isolated"]'; }
until_ok 30 "host2 isolated" is True iso2
T_ISO=$(now_ms)
until_ok 30 "web1 powered off on the isolated host2" is poweredOff web1_state 2
T_OFF=$(($(now_ms) - T_ISO))
printf 'At host2'"'"'s console (its own API still answers there), it sees itself isolated:\n'
printf '[host2]$ keel --server $H2 cluster status | grep -E "^(Leader|Isolation)"\n'
at 2 --server "$(srv 2)" cluster status | grep -E "^(Leader|Isolation)"
printf 'and has applied the isolation response (power off) to its VM:\n'
printf '[host2]$ keel --server $H2 vm list\n'
at 2 --server "$(srv 2)" vm list
until_ok 30 "host1 seeing host2 partitioned" is partitioned host_state 2
printf 'The majority sees host2 partitioned: no network heartbeat, but its datastore heartbeat goes on:\n'
on 1 cluster status

bold "HA restarts web1 on the majority side, now that host2 has released it"
until_ok 30 "web1 running on another host" is yes web1_elsewhere
W=$(runs_on web1 2)
printf 'web1 is running on host%s: isolated at 0 ms, off on host2 at +%d ms, on host%s at +%d ms\n' \
	"$W" "$T_OFF" "$W" "$(($(now_ms) - T_ISO))"
on "$W" vm list

bold "host2 gets its network back (keel lab host-heal 2)"
printf '$ keel lab host-heal 2\n'
"$BIN/keel" lab host-heal 2 --dir "$LAB"
until_ok 30 "host2 connected again" is connected host_state 2
on 1 cluster status
printf 'web1 stays where HA put it; host2 runs no copy of it (one owner at a time):\n'
on 2 vm list

bold "host3 fails (keel lab host-kill 3): HA brings its VMs back on the others"
on 3 vm create app1 --memory 64 --datastore shared1 --cmdline "counter_ms=500 hb_ms=100"
on 3 vm power-on app1
on 3 vm create app2 --memory 64 --datastore shared1 --cmdline "counter_ms=500 hb_ms=100"
on 3 vm power-on app2
printf '$ keel lab host-kill 3\n'
T_KILL=$(now_ms)
"$BIN/keel" lab host-kill 3 --dir "$LAB"
until_ok 30 "host3 declared failed" is failed host_state 3
T_FAILED=$(($(now_ms) - T_KILL))
until_ok 30 "app1 and app2 running on other hosts" is yes apps_back
T_BACK=$(($(now_ms) - T_KILL))
printf 'host3 declared failed %d ms after the kill; app1 and app2 running again %d ms after it\n' \
	"$T_FAILED" "$T_BACK"
printf '(on host%s and host%s):\n' "$(runs_on app1 3)" "$(runs_on app2 3)"
on 1 vm list
printf '\nhost3 comes back (keel lab host-start 3) and runs no copy of them:\n$ keel lab host-start 3\n'
"$BIN/keel" lab host-start 3 --dir "$LAB"
until_ok 60 "host3 connected again" is connected host_state 3
printf 'Its hostd restarted, so sessions with it start again:\n'
relogin 3
on 3 vm list

bold "FT: ft1 on host2 gets a live secondary on host3 (keel vm ft enable)"
on 2 vm create ft1 --memory 64 --datastore shared1 --disk 8 \
	--cmdline "counter_ms=200 hb_ms=100 disk_seq=1 disk_ms=50"
on 2 vm power-on ft1
on 1 vm ft enable ft1 --secondary-host host3
on 1 vm ft status ft1
ft_state() { q 1 vm ft status ft1 --json | jget "d['vms'][0]['state'] + ' ' + d['vms'][0]['primary'] + ' ' + (d['vms'][0]['secondary'] or '-')"; }

bold "host2 fails (keel lab host-kill 2): the secondary continues ft1 by itself, losing nothing"
C_BEFORE=$(grep -o "counter [0-9]*" "$LAB/shared/ft1/console.log" | tail -1)
printf '$ keel lab host-kill 2\n'
T_KILL=$(now_ms)
"$BIN/keel" lab host-kill 2 --dir "$LAB"
until_ok 30 "ft1 running on host3" is 3 runs_on ft1 2
T_FT=$(($(now_ms) - T_KILL))
until_ok 60 "ft1 protected again, its secondary on host1" is "protected host3 host1" ft_state
T_PROT=$(($(now_ms) - T_KILL))
printf 'ft1 runs on host3 %d ms after the kill, from its last checkpoint: no reboot, its\n' "$T_FT"
printf 'guest counts on (%s before the kill, %s now); protected again on host1 at +%d ms:\n' \
	"$C_BEFORE" "$(grep -o "counter [0-9]*" "$LAB/shared/ft1/console.log" | tail -1)" "$T_PROT"
on 1 vm ft status ft1
printf '\nhost2 comes back (keel lab host-start 2):\n$ keel lab host-start 2\n'
"$BIN/keel" lab host-start 2 --dir "$LAB"
until_ok 60 "host2 connected again" is connected host_state 2
relogin 2

bold "What happened, from the cluster's event log (the same on every host)"
on 1 cluster events

bold "The API"
for h in 1 2 3; do
	printf 'host%s  API: %s (thumbprint %s)\n' "$h" "$(srv "$h")" "$(thumbprint "$h")"
done
printf '\nThe lab'"'"'s addresses exist only in its hosts'"'"' network namespaces, so run keel in one (as root):\n'
printf '  log in: ip netns exec %s-lab-host1 %s login --server %s --user root --password-file %s --thumbprint %s\n' \
	"$PREFIX" "$BIN/keel" "$(srv 1)" "$LAB/root-password" "$(thumbprint 1)"
printf '  (or --ca-file %s, the cluster CA, for any host)\n' "$LAB/hosts/host1/ca.crt"
printf '  then:   ip netns exec %s-lab-host1 %s --server %s inventory\n' "$PREFIX" "$BIN/keel" "$(srv 1)"
DONE=1
