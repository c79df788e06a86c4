# The host's time service (docs/ntp.md): `keel host ntp set|show|sync-status` and vmntpd
# with private chronyd instances (`chronyd -x`: the clock is never touched).
# One host on loopback (a test network namespace): a serving chronyd (`local stratum 8`,
# `allow 127.0.0.1`, a free port); vmntpd's private chronyd follows it through
# `keel host ntp set 127.0.0.1:PORT --private` and selects it (stratum 9); a server that
# does not answer (127.0.0.2, nothing listening) is reported unreachable in show,
# sync-status and an event, and the configuration stays; bad servers are refused and
# change nothing; a vmntpd killed with SIGKILL leaves no second chronyd behind it.
# Then a three-host lab: the serving chronyd on host1's vmk0, every host's vmntpd
# following it; `keel cluster status --json` shows every host's clock offset and flags
# host3, whose vmntpd adds a test offset of 900 ms (--test-offset-ms), past the 500 ms
# threshold. Everything stays on loopback and the lab's namespaces.
source "$(dirname "$0")/common.bash"
VMNTPD=$PWD/$BUILD/bin/vmntpd
command -v chronyd >/dev/null || { echo "SKIP: chrony is not installed (make deps)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (chronyd drops to _chrony)"; exit 77; }
id _chrony >/dev/null 2>&1 || { echo "SKIP: no _chrony user"; exit 77; }
# chronyd runs as _chrony: the directories above its own must be searchable
chmod 755 "$T"
start_vmkernel
# the state dir open to _chrony, so the private chronyd drops to it (the lab's state dirs
# below stay closed: there it keeps root's ids)
chmod 755 "$T/state"
NTPD_PIDS=()
LAB=
ntp_cleanup() {
	set +e
	for p in "${NTPD_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
	sleep 0.5
	for f in "$T"/srv/chronyd.pid "$T"/state/ntp/chronyd.pid "$T"/lab/hosts/host?/ntp/chronyd.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	[ -n "$LAB" ] && "$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	for f in "$T"/*.log "$T"/state/ntp/chronyd.log; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done
	vmk_cleanup
}
trap ntp_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$2" 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
until_ok() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.2
	done
}

for c in set show sync-status; do
	keel host ntp "$c" --help >/dev/null || fail "keel host ntp $c --help"
done
"$VMNTPD" --help >/dev/null || fail "vmntpd --help"
rc=0; "$VMNTPD" --state-dir "$T/state" --poll-ms 5 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "vmntpd --poll-ms 5: exit $rc"

# ---- the serving chronyd ----------------------------------------------------------------
# serve DIR ADDR PORT ALLOW: a chronyd -x serving its local clock at stratum 8
serve() {
	local dir=$1
	mkdir -p "$dir"
	chown _chrony:_chrony "$dir"
	chmod 750 "$dir"
	cat >"$dir/chronyd.conf" <<EOC
local stratum 8
allow $4
bindaddress $2
port $3
cmdport 0
bindcmdaddress $dir/chronyd.sock
pidfile $dir/chronyd.pid
EOC
}
read -r PORT < <(/usr/bin/python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
print(u.getsockname()[1])')
serve "$T/srv" 127.0.0.1 "$PORT" 127.0.0.1
nsenter --net="/run/netns/$NS" chronyd -x -d -f "$T/srv/chronyd.conf" >>"$T/srv-chronyd.log" 2>&1 &
PIDS+=($!)
until_ok 10 test -S "$T/srv/chronyd.sock" || fail "the serving chronyd did not start"

# ---- bad input changes nothing ----------------------------------------------------------
for bad in "127.0.0.1:0" "127.0.0.1:70000" "a,,b" "" "bad host" "[::1" "x:12a" \
	"1.1.1.1,1.1.1.1"; do
	rc=0; out=$(keel host ntp set "$bad" --private 2>&1) || rc=$?
	[ "$rc" = 2 ] || fail "set '$bad': exit $rc: $out"
done
rc=0; keel host ntp set 127.0.0.1 --poll 11 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--poll 11: exit $rc"
rc=0; keel host ntp set 127.0.0.1 --clear >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "servers with --clear: exit $rc"
out=$(keel host ntp show --json) || fail "show: $out"
[ "$(py 'd["config"]' "$out")" = None ] || fail "a refused set wrote something: $out"

# ---- follow the server ------------------------------------------------------------------
out=$(keel host ntp set "127.0.0.1:$PORT" --private --poll 0 --json) || fail "set: $out"
[ "$(py 'd["servers"] == ["127.0.0.1:'"$PORT"'"] and d["mode"] == "private"' "$out")" = True ] ||
	fail "set --json: $out"
gen=$(py 'd["generation"]' "$out")
nsenter --net="/run/netns/$NS" "$VMNTPD" --state-dir "$T/state" --private --poll-ms 200 2>>"$T/vmntpd.log" &
NTPD=$!
NTPD_PIDS+=($NTPD)
synced() {
	local s
	s=$(keel host ntp sync-status --json 2>/dev/null) || return 1
	[ "$(py 'd["synced"] and d["reference"] == "127.0.0.1" and d["stratum"] == 9 and
		[x["state"] for x in d["sources"]] == ["synced"]' "$s")" = True ]
}
until_ok 30 synced || fail "not synced to 127.0.0.1 at stratum 9: $(keel host ntp sync-status 2>&1)"
keel host ntp sync-status
shown_synced() { [ "$(py 'd["daemon"]["state"]' "$(keel host ntp show --json)")" = synced ]; }
until_ok 10 shown_synced || fail "show does not say synced: $(keel host ntp show)"
out=$(keel host ntp show --json)
[ "$(py 'd["daemon"]["mode"] == "private" and d["daemon"]["reference"] == "127.0.0.1" and
	any("synchronised to 127.0.0.1" in e for e in d["daemon"]["events"])' "$out")" = True ] ||
	fail "show --json after sync: $out"
keel host ntp show
st=$(stat -c '%U %a' "$T/state/ntp")
[ "$st" = "_chrony 750" ] || fail "the private chronyd's directory is '$st'"
ps -o args= -p "$(cat "$T/state/ntp/chronyd.pid")" | grep -q -- "-x" ||
	fail "the private chronyd does not run with -x"

# ---- a server that does not answer ------------------------------------------------------
out=$(keel host ntp set "127.0.0.2:$PORT" --private --poll 0 --json) || fail "set 127.0.0.2: $out"
unreach() {
	local s
	s=$(keel host ntp show --json 2>/dev/null) || return 1
	[ "$(py 'd["daemon"]["state"] == "unreachable" and
		any("no NTP server can be reached" in e for e in d["daemon"]["events"])' "$s")" = True ]
}
until_ok 30 unreach || fail "the unreachable server is not reported: $(keel host ntp show)"
out=$(keel host ntp sync-status --json) || fail "sync-status: $out"
[ "$(py 'not d["synced"] and not d["reachable"] and
	[(x["name"], x["state"]) for x in d["sources"]] == [("127.0.0.2", "unreachable")]' "$out")" = True ] ||
	fail "sync-status with an unreachable server: $out"
keel host ntp sync-status | grep -q "no reachable source" || fail "sync-status text: $(keel host ntp sync-status)"
grep -q "no NTP server can be reached" "$T/vmntpd.log" || fail "no log line for the unreachable server"
out=$(keel host ntp show --json)
[ "$(py 'd["config"]["servers"]' "$out")" = "['127.0.0.2:$PORT']" ] || fail "the configuration changed: $out"

# ---- back to the server; vmntpd killed and started again --------------------------------
keel host ntp set "127.0.0.1:$PORT" --private --poll 0 >/dev/null || fail "set back"
until_ok 30 synced || fail "not synced again: $(keel host ntp sync-status 2>&1)"
old=$(cat "$T/state/ntp/chronyd.pid")
kill -9 "$NTPD"
wait "$NTPD" 2>/dev/null || true
nsenter --net="/run/netns/$NS" "$VMNTPD" --state-dir "$T/state" --private --poll-ms 200 2>>"$T/vmntpd.log" &
NTPD=$!
NTPD_PIDS+=($NTPD)
until_ok 30 synced || fail "not synced after vmntpd's restart: $(keel host ntp sync-status 2>&1)"
# (gone, or a zombie where no init reaps the orphans)
case "$(ps -o stat= -p "$old" 2>/dev/null)" in "" | Z*) ;; *) fail "the chronyd of the killed vmntpd still runs" ;; esac
n=$(pgrep -f -- "-f $T/state/ntp/chronyd.conf" | wc -l)
[ "$n" = 1 ] || fail "$n private chronyds run"
kill "$NTPD"
wait "$NTPD" 2>/dev/null || true
[ "$(py 'd["daemon"]["state"]' "$(keel host ntp show --json)")" = stopped ] || fail "state after stop"
[ "$(pgrep -f -- "-f $T/state/ntp/chronyd.conf" | wc -l)" = 0 ] || fail "chronyd outlived vmntpd"
keel host ntp set --clear >/dev/null || fail "clear"
[ "$(py 'd["config"]' "$(keel host ntp show --json)")" = None ] || fail "clear left the file"

# ---- clock offsets in cluster health: a three-host lab ----------------------------------
command -v ip >/dev/null && [ -x "$PWD/$BUILD/bin/clusterd" ] && [ -r /dev/kvm ] || {
	echo "the lab part needs clusterd and /dev/kvm: not run"
	echo PASS
	exit 0
}
LAB=$T/lab
kc() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 15 "$@"; }
out=$("$KEEL_BIN" lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
unbootstrapped() { [ "$(py 'd["node_state"]' "$(kc "$1" cluster status --json 2>/dev/null)")" = "not bootstrapped" ]; }
for h in 1 2 3; do until_ok 20 unbootstrapped $h || fail "host$h clusterd"; done
kc 1 cluster create ntplab >/dev/null || fail "cluster create"
for h in 2 3; do
	tok=$(kc 1 cluster join-token) || fail "join-token"
	kc $h cluster join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
serve "$T/labsrv" 198.18.0.1 "$PORT" 198.18.0.0/16
nsenter --net="/run/netns/$prefix-lab-host1" chronyd -x -d -f "$T/labsrv/chronyd.conf" \
	>>"$T/labsrv-chronyd.log" 2>&1 &
PIDS+=($!)
for h in 1 2 3; do
	kc $h host ntp set "198.18.0.1:$PORT" --private --poll 0 >/dev/null || fail "host$h ntp set"
	extra=()
	[ $h = 3 ] && extra=(--test-offset-ms 900)
	nsenter --net="/run/netns/$prefix-lab-host$h" "$VMNTPD" --state-dir "$LAB/hosts/host$h" \
		--private --poll-ms 200 "${extra[@]}" 2>>"$T/vmntpd-host$h.log" &
	NTPD_PIDS+=($!)
done
clocks() {
	local s
	s=$(kc "$1" cluster status --json 2>/dev/null) || return 1
	[ "$(py 'd["clock_offset_warn_ms"] == 500 and
		sorted((h["name"], h["clock_warn"], h["clock_offset_ms"] is not None and
			abs(h["clock_offset_ms"] - (900 if h["name"] == "host3" else 0)) < 100)
		       for h in d["hosts"]) ==
		[("host1", False, True), ("host2", False, True), ("host3", True, True)]' "$s")" = True ]
}
for h in 1 2 3; do
	until_ok 40 clocks $h || fail "host$h's cluster status: $(kc $h cluster status --json)"
done
kc 2 cluster status
kc 2 cluster status | grep -q "WARNING: the clock of host3 is off by +9" ||
	fail "no warning line for host3: $(kc 2 cluster status)"
kc 2 cluster status | grep -q "clock of host[12]" && fail "host1 or host2 flagged"
echo PASS
