# User worlds (docs/worlds.md): a vmkernel started with --worlds runs vmsyslogd, keel-snmpd
# and hostd, each in its own cgroup, with its capabilities dropped (CapEff, CapBnd),
# no_new_privs and a seccomp filter (Seccomp: 2) and, for those that ask, a private /tmp;
# `keel host worlds` lists them. A world killed with SIGKILL comes back with a restart
# count and an event; a test world that makes a system call outside its list is killed by
# SIGSYS and restarted with back-off; `restart NAME` restarts one; bad definitions stop
# vmkernel before it starts anything; vmkernel's exit stops every world in reverse order,
# one that ignores SIGTERM (and its child) with SIGKILL after its grace time.
# A world with restart = always that exits 0 comes back, its bound paths visible under its
# private /tmp; a vmkernel killed with SIGKILL takes its worlds with it.
source "$(dirname "$0")/common.bash"

# a world that starts, then calls ptrace (outside @basic): the filter must kill it
mkdir -p "$T/bin"
cat >"$T/bin/badworld.c" <<'EOF'
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void)
{
	printf("badworld up\n");
	fflush(stdout);
	usleep(300000);
	syscall(SYS_ptrace, 0, 0, 0, 0);
	printf("badworld survived ptrace\n");
	return 3;
}
EOF
cc -O1 -o "$T/bin/badworld" "$T/bin/badworld.c" || fail "cannot build the test world"
# a world that ignores SIGTERM (and so does its child): stopped with SIGKILL, child and all
printf '#!/bin/sh\ntrap "" TERM\nwhile :; do sleep 0.2; done\n' >"$T/bin/stubborn.sh"

port=$((20000 + RANDOM % 20000))
cat >"$T/worlds.conf" <<EOF
# worlds of the host_worlds test
[vmsyslogd]
exec = {bin}/vmsyslogd --state-dir {dir} --poll-ms 500
cpu_limit_mhz = 500
mem_limit_mib = 128
syscalls = @basic @file @net
private_tmp = yes
read_only = /usr /etc

[keel-snmpd]
exec = {bin}/keel-snmpd --state-dir {dir} --agentx-socket {dir}/no-agentx
mem_limit_mib = 128
syscalls = @basic @file @net
private_tmp = yes

[hostd]
exec = {bin}/hostd --state-dir {dir} --listen 127.0.0.1:$port
mem_limit_mib = 512
caps = net_bind_service
syscalls = @basic @file @net

[badworld]
exec = $T/bin/badworld
mem_limit_mib = 32
syscalls = @basic

[stubborn]
exec = /bin/sh $T/bin/stubborn.sh
syscalls = @basic @file @proc
stop_grace_ms = 500
EOF

# refusals first: a bad definition stops vmkernel before it starts anything, naming the line
printf '[a]\nexec = /bin/true\nsyscalls = @basic nosuchcall\n' >"$T/bad.conf"
if "$VMKERNEL" --state-dir "$T/badstate" --worlds "$T/bad.conf" 2>"$T/bad.err"; then
	fail "vmkernel accepted a bad worlds file"
fi
grep -q 'line 3: unknown system call "nosuchcall"' "$T/bad.err" || fail "bad message: $(cat "$T/bad.err")"
"$VMKERNEL" --state-dir "$T/badstate" --worlds "$T/none.conf" 2>"$T/bad.err" && fail "missing file accepted"
grep -q "none.conf" "$T/bad.err" || fail "missing file not named: $(cat "$T/bad.err")"
[ ! -e "$T/badstate" ] || fail "a refused vmkernel made its state dir"
printf '[a]\nexec = /bin/true\nsyscalls = @basic\nbind = /tmp/x\n' >"$T/bad.conf"
"$VMKERNEL" --state-dir "$T/badstate" --worlds "$T/bad.conf" 2>"$T/bad.err" && fail "bind without private_tmp accepted"
grep -q "world a: bind needs private_tmp = yes" "$T/bad.err" || fail "bind message: $(cat "$T/bad.err")"
printf '[a]\nexec = /bin/true\nsyscalls = @basic\nrestart = sometimes\n' >"$T/bad.conf"
"$VMKERNEL" --state-dir "$T/badstate" --worlds "$T/bad.conf" 2>"$T/bad.err" && fail "restart = sometimes accepted"
grep -q 'line 4: restart is on-failure or always, not "sometimes"' "$T/bad.err" || fail "restart message: $(cat "$T/bad.err")"

# start_vmkernel runs $VMKERNEL: a wrapper adds the option
printf '#!/bin/sh\nexec %s "$@" --worlds %s\n' "$VMKERNEL" "$T/worlds.conf" >"$T/bin/vmkernel"
chmod +x "$T/bin/vmkernel"
REAL_VMKERNEL=$VMKERNEL
VMKERNEL=$T/bin/vmkernel
start_vmkernel

cgroups=()
world_cleanup() {
	set +e
	vmk_cleanup_keep=1
	if [ -n "${VMK_PID:-}" ]; then kill "$VMK_PID" 2>/dev/null; wait "$VMK_PID" 2>/dev/null; fi
	pkill -9 -f -- "--state-dir $T/state" 2>/dev/null
	# the worlds' groups and their parent keel/host-<id>/worlds, in every hierarchy
	if [ -n "${cgroups[0]:-}" ]; then
		full=$(dirname "${cgroups[0]#/sys/fs/cgroup/}")
		rel=${full#*/} # v1: without the hierarchy's own directory
		for c in /sys/fs/cgroup/"$full" /sys/fs/cgroup/*/"$rel"; do
			[ -d "$c" ] || continue
			for g in "$c"/*/; do rmdir "$g" 2>/dev/null; done
			rmdir "$c" 2>/dev/null
		done
	fi
	vmk_cleanup
}
trap world_cleanup EXIT

# field WORLD KEY: one field of one world from `keel --json host worlds`
field() {
	keel --json host worlds | python3 -c 'import json,sys
w=[x for x in json.load(sys.stdin)["worlds"] if x["name"]==sys.argv[1]]
print(w[0][sys.argv[2]] if w else "")' "$1" "$2"
}

wait_state() { # WORLD STATE SECONDS
	for ((i = 0; i < $3 * 20; i++)); do
		[ "$(field "$1" state)" = "$2" ] && return 0
		sleep 0.05
	done
	fail "world $1 not $2: $(keel host worlds --long)"
}

for w in vmsyslogd keel-snmpd hostd; do wait_state $w running 10; done
wait_for "$T/state/vmsyslogd.log" "vmsyslogd ready" 10
wait_for "$T/state/hostd.log" "hostd ready" 20
out=$(keel host worlds)
echo "$out"
for w in vmsyslogd keel-snmpd hostd badworld stubborn; do
	grep -q "^$w " <<<"$out" || fail "$w not listed: $out"
done
keel host worlds --long | grep -q "seccomp: *kill, [0-9]* system calls allowed" || fail "--long"

for w in vmsyslogd keel-snmpd hostd; do
	pid=$(field $w pid)
	[ "$pid" -gt 0 ] || fail "$w has no pid"
	st=/proc/$pid/status
	grep -q "^Seccomp:[[:space:]]*2" $st || fail "$w: no seccomp filter: $(grep Seccomp $st)"
	grep -q "^NoNewPrivs:[[:space:]]*1" $st || fail "$w: no no_new_privs"
	cg=$(field $w cgroup)
	[ -n "$cg" ] && [ -d "$cg" ] || fail "$w: no cgroup ($cg)"
	cgroups+=("$cg")
	grep -qx "$pid" "$cg/cgroup.procs" || fail "$w (pid $pid) is not in $cg"
	[ "$(field $w mem_bytes)" -gt 0 ] || fail "$w: no memory figure"
	if [ $w = hostd ]; then
		# keeps CAP_NET_BIND_SERVICE (bit 10) only
		grep -q "^CapEff:[[:space:]]*0000000000000400" $st || fail "hostd CapEff: $(grep CapEff $st)"
		grep -q "^CapBnd:[[:space:]]*0000000000000400" $st || fail "hostd CapBnd: $(grep CapBnd $st)"
	else
		grep -q "^CapEff:[[:space:]]*0000000000000000" $st || fail "$w CapEff: $(grep CapEff $st)"
		grep -q "^CapBnd:[[:space:]]*0000000000000000" $st || fail "$w CapBnd: $(grep CapBnd $st)"
	fi
done
# the memory limit of worlds.conf is in vmsyslogd's group
cg=$(field vmsyslogd cgroup)
lim=$(cat "$cg/memory.limit_in_bytes" 2>/dev/null || cat "$cg/memory.max")
[ "$lim" -ge $((128 << 20)) ] && [ "$lim" -le $((160 << 20)) ] || fail "vmsyslogd memory limit $lim"
# a private /tmp: vmsyslogd sees none of the host's /tmp but its state dir
vpid=$(field vmsyslogd pid)
[ "$(readlink /proc/$vpid/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] || fail "no mount namespace"
[ -e "/proc/$vpid/root$T/bin/badworld" ] && fail "vmsyslogd sees the host's /tmp"
[ -e "/proc/$vpid/root$T/state/vmkernel.sock" ] || fail "vmsyslogd lost its state dir"
# hostd works under its filter: it answers TLS on its port
if command -v openssl >/dev/null; then
	echo | ip netns exec "$NS" timeout 5 openssl s_client -connect 127.0.0.1:$port \
		-alpn h2 2>/dev/null | grep -q "BEGIN CERTIFICATE\|Server certificate" ||
		fail "hostd does not answer TLS under its filter"
fi

# kill -9: restarted after its back-off, with a restart count and an event
old=$(field vmsyslogd pid)
kill -9 "$old"
for ((i = 0; i < 100; i++)); do
	p=$(field vmsyslogd pid)
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$old" ] && break
	sleep 0.05
done
[ "$(field vmsyslogd state)" = running ] || fail "vmsyslogd not restarted: $(keel host worlds --long)"
[ "$(field vmsyslogd restarts)" -ge 1 ] || fail "no restart counted"
[[ $(field vmsyslogd last_exit) == *"signal 9"* ]] || fail "last exit: $(field vmsyslogd last_exit)"
[[ $(field vmsyslogd last_event) == *"restarted after a crash"* ]] || fail "event: $(field vmsyslogd last_event)"
keel host log --lines 200 | grep -q "world vmsyslogd: crashed: signal 9" || fail "no crash line in the log"

# the forbidden system call: SIGSYS, never "survived", restarted with back-off
for ((i = 0; i < 200; i++)); do
	[ "$(field badworld restarts)" -ge 1 ] && break
	sleep 0.05
done
[ "$(field badworld restarts)" -ge 1 ] || fail "badworld not restarted: $(keel host worlds --long)"
[[ $(field badworld last_exit) == *"signal 31"* ]] || fail "badworld exit: $(field badworld last_exit)"
grep -q "badworld up" "$T/state/badworld.log" || fail "badworld never ran"
grep -q "survived" "$T/state/badworld.log" && fail "badworld's forbidden call went through"
keel host log --lines 200 | grep -q "world badworld: crashed: signal 31.*seccomp" || fail "no SIGSYS line"

# restart on request: a new pid at once, counted; an unknown name is refused
old=$(field keel-snmpd pid)
keel host worlds restart keel-snmpd >/dev/null || fail "restart refused"
for ((i = 0; i < 100; i++)); do
	p=$(field keel-snmpd pid)
	[ "$(field keel-snmpd state)" = running ] && [ "$p" != "$old" ] && break
	sleep 0.05
done
[ "$(field keel-snmpd pid)" != "$old" ] || fail "keel-snmpd not restarted"
[ "$(field keel-snmpd restarts)" = 1 ] || fail "keel-snmpd restarts $(field keel-snmpd restarts)"
[[ $(field keel-snmpd last_event) == *"restarted on request"* ]] || fail "restart event"
rc=0
keel host worlds restart nosuch 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q 'no world named "nosuch"' "$T/err" || fail "unknown world: rc $rc $(cat "$T/err")"
rc=0
keel host worlds frob 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "bad action: rc $rc"

# vmkernel's exit stops every world
spid=$(field stubborn pid)
[ "$spid" -gt 0 ] && pgrep -s "$spid" >/dev/null || fail "stubborn is not running"
pids=$(keel --json host worlds | python3 -c 'import json,sys
print(" ".join(str(w["pid"]) for w in json.load(sys.stdin)["worlds"] if w["pid"]))')
kill "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
VMK_PID=
for p in $pids; do
	kill -0 "$p" 2>/dev/null && fail "world pid $p outlived vmkernel"
done
# (a zombie is dead: only its parent, gone too, could have reaped it)
live=$(ps -e -o sid=,pid=,stat=,args= | awk -v s="$spid" '$1 == s && $3 !~ /^Z/')
[ -z "$live" ] || fail "stubborn's session outlived vmkernel: $live"
grep -q "world stubborn: no exit 500 ms after SIGTERM: SIGKILL" "$T/state/vmkernel.log" ||
	fail "stubborn was not killed after its grace time"
grep -q "worlds: all 5 stopped" "$T/state/vmkernel.log" || fail "no stop line"
# in reverse order of worlds.conf
order=$(grep -o "world [a-z-]*: stopped on request" "$T/state/vmkernel.log" | grep -v badworld | awk '{print $2}' | tr -d ':' | tr '\n' ' ')
[ "$order" = "stubborn hostd keel-snmpd vmsyslogd " ] || fail "stop order: $order"

# restart = always: a world that exits 0 comes back; bind: paths under /tmp stay visible
# under its private /tmp; a vmkernel killed with SIGKILL takes its worlds with it
mkdir -p "$T/out"
printf '#!/bin/sh\necho run >>%s/out/runs\nexit 0\n' "$T" >"$T/bin/once.sh"
cat >"$T/worlds2.conf" <<EOF
[once]
exec = /bin/sh $T/bin/once.sh
syscalls = @basic @file
private_tmp = yes
bind = $T/bin $T/out
restart = always

[sleeper]
exec = /bin/sleep 1000
syscalls = @basic
EOF
printf '#!/bin/sh\nexec %s "$@" --worlds %s\n' "$REAL_VMKERNEL" "$T/worlds2.conf" >"$T/bin/vmkernel"
start_vmkernel
for ((i = 0; i < 100; i++)); do
	[ "$(field once restarts)" -ge 1 ] 2>/dev/null && break
	sleep 0.05
done
[ "$(field once restarts)" -ge 1 ] || fail "once was not restarted: $(keel host worlds --long)"
[ "$(grep -c run "$T/out/runs")" -ge 2 ] || fail "once did not run twice through its bound paths"
[ "$(field once state)" != exited ] || fail "once stayed down with restart = always"
keel host log --lines 200 | grep -q "world once: exited 0 after .*(restart = always)" || fail "no restart = always line"
wait_state sleeper running 10
spid=$(field sleeper pid)
kill -9 "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
VMK_PID=
for ((i = 0; i < 40; i++)); do
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$spid" 2>/dev/null && fail "world sleeper (pid $spid) outlived a vmkernel killed with SIGKILL"
VMKERNEL=$REAL_VMKERNEL
echo "PASS"
