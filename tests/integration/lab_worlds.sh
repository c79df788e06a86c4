# The lab's daemons as user worlds (docs/lab.md, docs/worlds.md): `keel lab up` starts each
# host's vmkernel with the host's worlds file, and vmkernel runs clusterd, hostd and
# vmsyslogd as its worlds — in the host's network namespace, each in its cgroup, with a
# seccomp filter, no_new_privs, its capabilities dropped and a private /tmp that still shows
# the lab's state dir, shared datastore and password file. `keel host worlds --json` and
# `keel lab status --json` list them. A three-host cluster forms through them; a hostd
# world killed with SIGKILL comes back (restart count 1) while the cluster keeps its
# leader; host-kill leaves no process of the host (vmkernel, worlds); host-start brings the
# worlds back; `up --no-worlds` on this lab is refused and changes nothing; `down` leaves
# none of the hosts' cgroups. Then a small lab with --no-worlds runs clusterd and hostd as
# plain processes of the lab, as before.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -x "$PWD/$BUILD/bin/clusterd" ] || { echo "SKIP: clusterd not built"; exit 77; }
[ -x "$PWD/$BUILD/bin/hostd" ] || { echo "SKIP: hostd not built"; exit 77; }

LAB=$T/lab
LAB2=$T/lab2
lab() { "$KEEL_BIN" lab "$@"; }
kh() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 15 "$@"; }
kc() { kh "$1" cluster "${@:2}"; }
lab_cleanup() {
	set +e
	[ -d "$LAB" ] && cp "$LAB/lab.log" "$LAB/hosts/host1/vmkernel.log" "$T/" 2>/dev/null
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	"$KEEL_BIN" lab down --dir "$LAB2" >/dev/null 2>&1
	for f in "$T/lab.log" "$T/vmkernel.log"; do [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }; done
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$2" 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
until_ok() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.1
	done
}
# wfield H WORLD KEY: one field of one world of host H
wfield() {
	kh "$1" --json host worlds | python3 -c 'import json,sys
w=[x for x in json.load(sys.stdin)["worlds"] if x["name"]==sys.argv[1]]
print(w[0][sys.argv[2]] if w else "")' "$2" "$3"
}
running() { [ "$(wfield "$1" "$2" state)" = running ]; }

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
[ "$(py 'd["worlds"]' "$out")" = True ] || fail "lab up --json: no worlds: $out"
prefix=$(py 'd["prefix"]' "$out")
for h in 1 2 3; do
	for w in clusterd hostd vmsyslogd; do until_ok 20 running $h $w || fail "host$h: $w not running: $(kh $h host worlds --long)"; done
done
grep -q "^worlds=1$" "$LAB/lab.conf" || fail "the record does not say worlds"

# ---- confined, in the host's namespace ----------------------------------------------------------
hostns=$(stat -L -c %i "/run/netns/$prefix-lab-host1")
CGROUPS=()
for w in clusterd hostd vmsyslogd; do
	pid=$(wfield 1 $w pid)
	[ "$pid" -gt 0 ] || fail "$w: no pid"
	st=/proc/$pid/status
	[ "$(stat -L -c %i /proc/$pid/ns/net)" = "$hostns" ] || fail "$w is not in host1's network namespace"
	grep -q "^Seccomp:[[:space:]]*2" $st || fail "$w: no seccomp filter"
	grep -q "^NoNewPrivs:[[:space:]]*1" $st || fail "$w: no no_new_privs"
	# vmkernel's own libuv pool size is not passed on
	tr '\0' '\n' </proc/$pid/environ | grep -q "^UV_THREADPOOL_SIZE=" && fail "$w inherited UV_THREADPOOL_SIZE"
	if [ $w = hostd ]; then want=0000000000000400; else want=0000000000000000; fi
	grep -q "^CapEff:[[:space:]]*$want" $st || fail "$w CapEff: $(grep CapEff $st)"
	grep -q "^CapBnd:[[:space:]]*$want" $st || fail "$w CapBnd: $(grep CapBnd $st)"
	cg=$(wfield 1 $w cgroup)
	[ -n "$cg" ] && [ -d "$cg" ] || fail "$w: no cgroup ($cg)"
	grep -qx "$pid" "$cg/cgroup.procs" || fail "$w (pid $pid) is not in $cg"
	CGROUPS+=("$cg")
	# a private /tmp that still shows the lab's state dir and shared datastore
	[ "$(readlink /proc/$pid/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] || fail "$w: no mount namespace"
	[ -e "/proc/$pid/root$T/lab/hosts/host1/vmkernel.sock" ] || fail "$w lost its state dir"
	[ -d "/proc/$pid/root$T/lab/shared" ] || fail "$w does not see the shared datastore"
	[ -e "/proc/$pid/root$T/lab/lab.conf" ] && fail "$w sees the lab's directory beyond what it needs"
	# the lab's status names the same pid for clusterd and hostd, as worlds
	if [ $w != vmsyslogd ]; then
		s=$(lab status --dir "$LAB" --json)
		[ "$(py "[x['pid'] for x in d['hosts'][0]['daemons'] if x['name'] == '$w'][0]" "$s")" = "$pid" ] ||
			fail "lab status: $w pid: $s"
		[ "$(py "[x['world'] for x in d['hosts'][0]['daemons'] if x['name'] == '$w'][0]" "$s")" = True ] ||
			fail "lab status: $w is not a world: $s"
	fi
done
[ -e "/proc/$(wfield 1 hostd pid)/root$T/lab/root-password" ] || fail "hostd does not see the password file"
[ "$(readlink "$LAB/hosts/host1/hostd.out")" = hostd.log ] || fail "hostd.out is not the world's log"
s=$(lab status --dir "$LAB" --json)
[ "$(py "sorted(w['name'] for w in d['hosts'][1]['worlds'])" "$s")" = "['clusterd', 'hostd', 'vmsyslogd']" ] ||
	fail "lab status: host2's worlds: $s"
lab status --dir "$LAB" | grep -q "^host3 .* 3/3 running" || fail "lab status text: $(lab status --dir "$LAB")"

# ---- a cluster through the worlds ----------------------------------------------------------------
out=$(kc 1 create wlab --json) || fail "create: $out"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token: $tok"
	out=$(kc $h join 198.18.0.1 --token "$tok" 2>&1) || fail "host$h join: $out"
done
healthy() {
	local s
	s=$(kc "$1" status --json 2>/dev/null) || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["state"], h["raft_role"]) for h in d["hosts"]) == [("connected", "voter")] * 3' "$s")" = True ]
}
until_ok 20 healthy 1 || fail "no healthy cluster: $(kc 1 status 2>&1)"
leader=$(py 'd["leader_id"]' "$(kc 1 status --json)")
# hostd answers TLS on vmk0 under its filter
if command -v openssl >/dev/null; then
	echo | ip netns exec "$prefix-lab-host2" timeout 5 openssl s_client -connect 198.18.0.1:8443 \
		-alpn h2 2>/dev/null | grep -q "BEGIN CERTIFICATE\|Server certificate" ||
		fail "hostd does not answer TLS on vmk0"
fi

# ---- a killed hostd world comes back; the cluster keeps its leader -------------------------------
old=$(wfield 1 hostd pid)
kill -9 "$old"
back() { local p; p=$(wfield 1 hostd pid); running 1 hostd && [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$old" ]; }
until_ok 15 back || fail "hostd not restarted: $(kh 1 host worlds --long)"
[ "$(wfield 1 hostd restarts)" = 1 ] || fail "hostd restarts: $(wfield 1 hostd restarts)"
[[ $(wfield 1 hostd last_exit) == *"signal 9"* ]] || fail "hostd last exit: $(wfield 1 hostd last_exit)"
for h in 1 2 3; do
	s=$(kc $h status --json) || fail "host$h status after the hostd kill"
	[ "$(py 'd["leader_id"]' "$s")" = "$leader" ] || fail "host$h: the leader changed: $s"
done
kh 1 host log --lines 300 | grep -q "world hostd: crashed: signal 9" || fail "no crash line in vmkernel's log"
# an exit of its own (SIGTERM) is restarted too: the lab's rule
old=$(wfield 1 clusterd pid)
kill -TERM "$old"
cback() { local p; p=$(wfield 1 clusterd pid); running 1 clusterd && [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$old" ]; }
until_ok 15 cback || fail "clusterd not restarted after SIGTERM: $(kh 1 host worlds --long)"
until_ok 20 healthy 1 || fail "cluster not healthy after clusterd's restart: $(kc 1 status 2>&1)"

# ---- host-kill: nothing of host2 is left; host-start brings its worlds back ----------------------
s=$(lab status --dir "$LAB" --json)
pids=$(py "' '.join(str(x['pid']) for x in d['hosts'][1]['daemons'] + d['hosts'][1]['worlds'] if x['pid'])" "$s")
[ "$(wc -w <<<"$pids")" -ge 4 ] || fail "host2's pids: $pids"
lab host-kill host2 --dir "$LAB" >/dev/null || fail "host-kill"
for p in $pids; do
	case "$(ps -o stat= -p "$p" 2>/dev/null)" in "" | Z*) ;; *) fail "pid $p of host2 survived host-kill" ;; esac
done
# live_in_ns NS: the live (not zombie) processes in a namespace
live_in_ns() {
	ip netns pids "$1" 2>/dev/null | while read -r p; do
		case "$(ps -o stat= -p "$p" 2>/dev/null)" in "" | Z*) ;; *) echo "$p" ;; esac
	done
}
[ -z "$(live_in_ns "$prefix-lab-host2")" ] || fail "processes left in host2's namespace: $(live_in_ns "$prefix-lab-host2")"
sleep 1
[ -z "$(live_in_ns "$prefix-lab-host2")" ] || fail "the supervisor restarted something of a killed host"
lab host-start host2 --dir "$LAB" >/dev/null || fail "host-start"
for w in clusterd hostd vmsyslogd; do until_ok 20 running 2 $w || fail "host2: $w not back after host-start"; done
until_ok 20 healthy 2 || fail "host2 not back in the cluster: $(kc 2 status 2>&1)"

# ---- the mode is the lab's: --no-worlds on it is refused and changes nothing ---------------------
p1=$(wfield 1 hostd pid)
rc=0
lab up 3 --dir "$LAB" --no-worlds >/dev/null 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "runs its daemons as user worlds" "$T/err" || fail "up --no-worlds on a worlds lab: rc $rc $(cat "$T/err")"
grep -q "^worlds=1$" "$LAB/lab.conf" || fail "the refused --no-worlds changed the record"
[ "$(wfield 1 hostd pid)" = "$p1" ] || fail "the refused --no-worlds changed hostd"
lab up --help | grep -q -- "--no-worlds" || fail "up --help does not name --no-worlds"

# no world died of a system call outside its filter, nor failed to be confined
for h in 1 2 3; do
	! grep -E "signal 31|exit 12[0-4]" "$LAB/hosts/host$h/vmkernel.log" ||
		fail "host$h: a world was killed by its filter or could not be confined"
done

# ---- down: no process, no cgroup of the hosts ------------------------------------------------------
lab down --dir "$LAB" >/dev/null || fail "lab down"
for cg in "${CGROUPS[@]}"; do [ -d "$cg" ] && fail "cgroup $cg left by down"; done
for cg in "${CGROUPS[@]}"; do
	hostcg=$(dirname "$(dirname "$cg")")
	[ -d "$hostcg" ] && fail "the host's cgroup $hostcg left by down"
done
pgrep -f -- "$LAB/hosts" >/dev/null && fail "processes of the lab left: $(pgrep -af -- "$LAB/hosts")"

# ---- --no-worlds: the lab starts clusterd and hostd itself ------------------------------------------
out=$(lab up 1 --dir "$LAB2" --no-worlds --json) || fail "lab up --no-worlds: $out"
[ "$(py 'd["worlds"]' "$out")" = False ] || fail "--no-worlds: $out"
grep -q "^worlds=0$" "$LAB2/lab.conf" || fail "the record does not say worlds=0"
plain() {
	local s
	s=$(lab status --dir "$LAB2" --json)
	[ "$(py "sorted((x['name'], x['running'], x['world']) for x in d['hosts'][0]['daemons'])" "$s")" = \
		"[('clusterd', True, False), ('hostd', True, False), ('vmkernel', True, False)]" ]
}
until_ok 15 plain || fail "--no-worlds daemons: $(lab status --dir "$LAB2" --json)"
[ "$("$KEEL_BIN" --socket "$LAB2/hosts/host1/vmkernel.sock" --json host worlds | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["worlds"]))')" = 0 ] ||
	fail "a --no-worlds vmkernel runs worlds"
lab down --dir "$LAB2" >/dev/null || fail "lab down (--no-worlds)"
echo "PASS"
