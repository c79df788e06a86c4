# SNMP (docs/snmp.md): `keel host snmp enable` writes etc/keel/snmp.conf and an snmpd
# drop-in; a private Debian snmpd (its own config including the drop-in's directory, its own
# AgentX socket, 127.0.0.1 on a free UDP port) serves KEEL-MIB from keel-snmpd. snmpget and
# snmpwalk with numeric OIDs read the host scalars and the VM table, checked against
# `keel --json` output, with their SNMP types. A VM powered off sends keelVmPowerChanged,
# which snmpd forwards to a private snmptrapd. snmpd killed and started again: keel-snmpd
# notices, reconnects, counts it, the values come back, the configuration is unchanged and
# notifications flow again. disable removes the drop-in and keeps the settings, which the
# next enable restores. Bad options are refused and change nothing. Then a three-host lab:
# keel-snmpd on host1 serves the cluster (name, leader, hosts and their states, HA on, the
# cluster's VMs with their owner), and `keel lab host-kill` of a follower running a VM sends
# keelHostFailed naming it and keelHaRestart, and the VM's row names its new host. The system snmpd is
# never touched; snmpd and snmptrapd listen on 127.0.0.1 only.
source "$(dirname "$0")/common.bash"
need_kvm
for b in snmpd snmptrapd snmpget snmpwalk; do
	command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] ||
		{ echo "SKIP: $b is not installed (make deps)"; exit 77; }
done
PATH=$PATH:/usr/sbin
export MIBS= # numeric OIDs only: no MIB files are loaded
KSNMPD=$PWD/$BUILD/bin/keel-snmpd
ROOT=.1.3.6.1.4.1.99999.1
start_vmkernel

for c in enable disable show; do
	keel host snmp "$c" --help >/dev/null || fail "keel host snmp $c --help"
done
"$KSNMPD" --help >/dev/null || fail "keel-snmpd --help"
"$KSNMPD" --state-dir "$T/state" --poll-ms 5 2>/dev/null && fail "a bad --poll-ms was taken"

mkdir -p "$T/snmp.d"
read -r SP TP < <(/usr/bin/python3 -c '
import socket
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')

# ---- bad options change nothing -----------------------------------------------------------
bad() {
	local rc=0
	keel host snmp enable --dropin "$T/snmp.d/keel.conf" "$@" >/dev/null 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "enable $* was not a usage error (exit $rc)"
}
bad --community "two words"
bad --community ""
bad --trap-sink 127.0.0.1:0
bad --trap-sink 127.0.0.1:70000
bad --trap-sink "[::1]:162"
bad --trap-sink 127.0.0.1:$TP --trap-sink 127.0.0.1:$TP
bad --agentx-socket "relative path"
keel host snmp enable --dropin "$T/missing/keel.conf" >/dev/null 2>&1 && fail "a missing drop-in directory was taken"
[ "$(json_field "$(keel --json host snmp show)" stored)" = False ] || fail "a refused enable stored something"
[ -e "$T/snmp.d/keel.conf" ] && fail "a refused enable wrote the drop-in"

# ---- enable: snmp.conf and the drop-in -----------------------------------------------------
keel host snmp enable --community keelro --trap-sink 127.0.0.1:$TP \
	--agentx-socket "$T/agentx.sock" --dropin "$T/snmp.d/keel.conf" >/dev/null || fail "enable"
D=$T/snmp.d/keel.conf
for want in "^master agentx$" "^agentXSocket $T/agentx.sock$" "^rocommunity keelro default -V keelView$" \
	"^view keelView included .1.3.6.1.4.1.99999$" "^trap2sink 127.0.0.1:$TP keelro$"; do
	grep -Eq "$want" "$D" || fail "the drop-in lacks /$want/: $(cat "$D")"
done
if getent group Debian-snmp >/dev/null; then
	[ "$(stat -c '%a %G' "$D")" = "640 Debian-snmp" ] || fail "the drop-in is $(stat -c '%a %G' "$D"), not 640 Debian-snmp"
fi
conf0=$(keel --json host snmp show)
[ "$(json_field "$conf0" enabled)" = True ] || fail "enabled is not stored: $conf0"
[ "$(json_field "$conf0" community)" = keelro ] || fail "community is not stored: $conf0"

# ---- a private snmpd and snmptrapd ----------------------------------------------------------
cat >"$T/snmpd.conf" <<EOF
includeDir $T/snmp.d
EOF
cat >"$T/snmptrapd.conf" <<EOF
authCommunity log keelro
EOF
SNMPD_PID=
start_snmpd() {
	snmpd -f -Lo -C -c "$T/snmpd.conf" -p "$T/snmpd.pid" -x "$T/agentx.sock" \
		udp:127.0.0.1:$SP >>"$T/snmpd.out" 2>&1 &
	SNMPD_PID=$!
	PIDS+=("$SNMPD_PID")
	for ((i = 0; i < 100; i++)); do
		[ -S "$T/agentx.sock" ] && return 0
		kill -0 "$SNMPD_PID" 2>/dev/null || fail "snmpd exited: $(tail -5 "$T/snmpd.out")"
		sleep 0.05
	done
	fail "snmpd did not open its AgentX socket"
}
start_snmpd
snmptrapd -f -Lo -On -C -c "$T/snmptrapd.conf" udp:127.0.0.1:$TP >"$T/traps.out" 2>&1 &
PIDS+=($!)

# ---- VMs, then keel-snmpd -------------------------------------------------------------------
keel vm create web1 --memory 48 --vcpus 2 >/dev/null || fail "create web1"
keel vm create db1 --memory 32 >/dev/null || fail "create db1"
keel vm power-on web1 >/dev/null || fail "power-on web1"

"$KSNMPD" --state-dir "$T/state" --log-level debug 2>>"$T/keel-snmpd.log" &
KS_PID=$!
PIDS+=("$KS_PID")
SDIR=$T/state # the state dir of the keel-snmpd watched
status() { grep -E "^$1 = " "$SDIR/keel-snmpd.status" 2>/dev/null | sed 's/^[^=]*= //'; }
wait_status() { # KEY VALUE SECONDS
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(status "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "keel-snmpd status $1 is '$(status "$1")', not '$2'"
}
wait_status connected yes 10

get() { snmpget -v2c -c keelro -On -t 2 -r 1 127.0.0.1:$SP "$@"; }
walk() { snmpwalk -v2c -c keelro -On -t 2 -r 1 127.0.0.1:$SP "$@"; }
# value OID: the value part of an snmpget line ("STRING: x" -> x)
value() { get "$1" | sed -E 's/^[^=]*= [A-Za-z0-9]+: //; s/^"(.*)"$/\1/'; }
# a string index: length, then one sub-id per byte
sidx() { printf '%s' "$1" | od -An -tu1 -v | tr -s ' \n' '..' | sed "s/^/.${#1}/; s/\.$//"; }

host=$(keel --json host info)
for ((i = 0; i < 50; i++)); do
	get $ROOT.1.1.1.0 2>/dev/null | grep -q STRING && break
	sleep 0.1
done
[ "$(value $ROOT.1.1.1.0)" = "$(json_field "$host" hostname)" ] || fail "keelHostName: $(get $ROOT.1.1.1.0)"
get $ROOT.1.1.3.0 | grep -q "= Gauge32: $(json_field "$host" cpus)$" || fail "keelHostCpus: $(get $ROOT.1.1.3.0)"
mem_mib=$(($(json_field "$host" mem_bytes) >> 20))
get $ROOT.1.1.6.0 | grep -q "= Gauge32: $mem_mib$" || fail "keelHostMemTotalMiB: $(get $ROOT.1.1.6.0), want $mem_mib"
get $ROOT.1.1.9.0 | grep -q "= Timeticks: " || fail "keelHostUptime is not TimeTicks: $(get $ROOT.1.1.9.0)"
get $ROOT.1.1.10.0 | grep -q "= INTEGER: 1$" || fail "keelHostState is not standalone(1): $(get $ROOT.1.1.10.0)"
get $ROOT.1.1.11.0 | grep -q "= Gauge32: 2$" || fail "keelHostVmsRegistered: $(get $ROOT.1.1.11.0)"
get $ROOT.1.3.1.0 | grep -q "= INTEGER: 2$" || fail "keelClusterMember is not false(2)"
get $ROOT.1.1.99.0 | grep -q "No Such" || fail "an absent object answered: $(get $ROOT.1.1.99.0)"

for vm in web1 db1; do
	info=$(keel --json vm info $vm)
	ix=$(sidx "$(json_field "$info" uuid)")
	[ "$(value $ROOT.1.2.1.2$ix)" = $vm ] || fail "keelVmName of $vm: $(get $ROOT.1.2.1.2$ix)"
	case $(json_field "$info" power_state) in
	poweredOn) want=2 ;; poweredOff) want=1 ;; *) want=x ;;
	esac
	get $ROOT.1.2.1.3$ix | grep -q "= INTEGER: $want$" || fail "keelVmPowerState of $vm: $(get $ROOT.1.2.1.3$ix), want $want"
	get $ROOT.1.2.1.4$ix | grep -q "= Gauge32: $(json_field "$info" numvcpus)$" || fail "keelVmVcpus of $vm: $(get $ROOT.1.2.1.4$ix)"
	get $ROOT.1.2.1.5$ix | grep -q "= Gauge32: $(json_field "$info" memsize_mib)$" || fail "keelVmMemoryMiB of $vm: $(get $ROOT.1.2.1.5$ix)"
	[ "$(value $ROOT.1.2.1.6$ix)" = "$(json_field "$host" hostname)" ] || fail "keelVmHost of $vm"
done
rows=$(walk $ROOT.1.2 | grep -c "^$ROOT.1.2.1.")
[ "$rows" -eq 12 ] || fail "the VM table holds $rows instances, not 2 rows x 6 columns: $(walk $ROOT.1.2)"
walk $ROOT.1.2 | grep "^$ROOT.1.2.1.2\." | head -1 | grep -q STRING || fail "the walk is not in column order"
walk $ROOT | grep -v "No more variables" | tail -1 | grep -q "^$ROOT.1.6.4.0 = Counter32: " || fail "the walk does not end at keelAgentTrapsSent: $(walk $ROOT | tail -2)"

# ---- a notification: web1 powered off -> keelVmPowerChanged ---------------------------------
keel vm power-off web1 >/dev/null || fail "power-off web1"
wait_for "$T/traps.out" "$ROOT.2.0.5" 15
grep -A8 "$ROOT.2.0.5" "$T/traps.out" | grep -q "web1" || fail "the notification does not name web1: $(cat "$T/traps.out")"
wait_status traps_sent 1 5

# ---- snmpd restarts: keel-snmpd reconnects, the values come back -----------------------------
kill "$SNMPD_PID"
wait "$SNMPD_PID" 2>/dev/null || true
wait_status connected no 15
get $ROOT.1.1.1.0 >/dev/null 2>&1 && fail "snmpd still answers after it was stopped"
start_snmpd
t0=$(date +%s%N)
for ((i = 0; i < 200; i++)); do
	get $ROOT.1.1.1.0 2>/dev/null | grep -q STRING && break
	sleep 0.1
done
echo "keelMIB served again $((($(date +%s%N) - t0) / 1000000)) ms after snmpd started again"
wait_status connected yes 20
wait_status reconnects 1 5
[ "$(value $ROOT.1.1.1.0)" = "$(json_field "$host" hostname)" ] || fail "keelHostName after the restart: $(get $ROOT.1.1.1.0)"
for ((i = 0; i < 30; i++)); do
	get $ROOT.1.6.3.0 | grep -q "= Counter32: 1$" && break
	sleep 0.1
done
get $ROOT.1.6.3.0 | grep -q "= Counter32: 1$" || fail "keelAgentReconnects: $(get $ROOT.1.6.3.0)"
conf1=$(keel --json host snmp show)
for k in enabled community trap_sinks agentx_socket dropin; do
	[ "$(json_field "$conf0" $k)" = "$(json_field "$conf1" $k)" ] || fail "$k changed across the snmpd restart"
done
[ "$(json_field "$conf1" reconnects)" = 1 ] || fail "show does not count the reconnection: $conf1"
keel host snmp show | grep -q "reached again" || fail "show has no reconnection event: $(keel host snmp show)"
keel vm power-on web1 >/dev/null || fail "power-on web1 again"
for ((i = 0; i < 150; i++)); do
	[ "$(grep -c "$ROOT.2.0.5" "$T/traps.out")" -ge 2 ] && break
	sleep 0.1
done
[ "$(grep -c "$ROOT.2.0.5" "$T/traps.out")" -ge 2 ] || fail "no notification after the reconnection: $(cat "$T/traps.out")"

# ---- disable keeps the settings; enable restores them -----------------------------------------
keel host snmp disable >/dev/null || fail "disable"
[ -e "$D" ] && fail "disable left the drop-in"
off=$(keel --json host snmp show)
[ "$(json_field "$off" enabled)" = False ] || fail "disable did not store enabled = no"
[ "$(json_field "$off" community)" = keelro ] || fail "disable lost the community"
keel host snmp enable >/dev/null || fail "enable again"
grep -q "^trap2sink 127.0.0.1:$TP keelro$" "$D" || fail "enable again lost the trap sink: $(cat "$D")"
on=$(keel --json host snmp show)
[ "$(json_field "$on" trap_sinks)" = "$(json_field "$conf0" trap_sinks)" ] || fail "the trap sinks changed"

keel vm power-off web1 >/dev/null
kill "$KS_PID"
wait "$KS_PID" || fail "keel-snmpd did not stop cleanly on SIGTERM"
[ -e "$T/state/keel-snmpd.status" ] && fail "keel-snmpd left its status file"

# ---- a three-host lab: the cluster's view, then keelHostFailed --------------------------------
[ -x "$PWD/$BUILD/bin/clusterd" ] || fail "clusterd is not built"
LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	vmk_cleanup
}
trap lab_cleanup EXIT
out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 20 ready || fail "clusterd on host$h"
done
kc 1 create snmp3 >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
healthy() {
	local s
	s=$(st 1) || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected"), ("host3", "connected")]' "$s")" = True ]
}
until_ok 30 healthy || fail "cluster not healthy: $(st 1)"
kv 1 host snmp enable --community keelro --trap-sink 127.0.0.1:$TP --agentx-socket "$T/agentx.sock" \
	--dropin "$D" >/dev/null || fail "enable on host1"
SDIR=$LAB/hosts/host1
"$KSNMPD" --state-dir "$SDIR" 2>>"$T/keel-snmpd-lab.log" &
KS_PID=$!
PIDS+=("$KS_PID")
wait_status connected yes 10
member() { get $ROOT.1.3.1.0 2>/dev/null | grep -q "= INTEGER: 1$"; }
until_ok 10 member || fail "keelClusterMember is not true(1): $(get $ROOT.1.3.1.0)"
[ "$(value $ROOT.1.3.2.0)" = snmp3 ] || fail "keelClusterName: $(get $ROOT.1.3.2.0)"
get $ROOT.1.3.4.0 | grep -q "= Gauge32: 3$" || fail "keelClusterHosts: $(get $ROOT.1.3.4.0)"
get $ROOT.1.1.10.0 | grep -q "= INTEGER: 2$" || fail "keelHostState is not connected(2): $(get $ROOT.1.1.10.0)"
get $ROOT.1.5.1.0 | grep -q "= INTEGER: 1$" || fail "keelHaEnabled is not true(1)"
L=$(leader_of "$(st 1)")
[ "$(value $ROOT.1.3.3.0)" = "host$L" ] || fail "keelClusterLeader: $(get $ROOT.1.3.3.0), want host$L"
for h in 1 2 3; do
	get $ROOT.1.4.1.2$(sidx host$h) | grep -q "= INTEGER: 2$" || fail "keelClusterHostState of host$h: $(walk $ROOT.1.4)"
done
get $ROOT.1.4.1.4$(sidx host$L) | grep -q "= INTEGER: 1$" || fail "keelClusterHostIsLeader of host$L"

V=3; [ "$L" = 3 ] && V=2
# a VM on the victim, on the shared datastore: HA restarts it elsewhere
kv $V vm create hasnmp --memory 64 --vcpus 1 --datastore shared1 >/dev/null || fail "create hasnmp"
kv $V vm power-on hasnmp >/dev/null || fail "power-on hasnmp"
vmuuid=$(json_field "$(kv $V --json vm info hasnmp)" uuid)
on_victim() { [ "$(value $ROOT.1.2.1.6$(sidx "$vmuuid") 2>/dev/null)" = "host$V" ]; }
until_ok 10 on_victim || fail "keelVmHost of hasnmp is not host$V: $(walk $ROOT.1.2)"
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V"
wait_for "$T/traps.out" "$ROOT.2.0.1" 30
wait_for "$T/traps.out" "$ROOT.2.0.2" 30
moved() { local h; h=$(value $ROOT.1.2.1.6$(sidx "$vmuuid") 2>/dev/null) && [ -n "$h" ] && [ "$h" != "host$V" ]; }
until_ok 30 moved || fail "keelVmHost of hasnmp did not leave host$V: $(walk $ROOT.1.2)"
grep -A8 "$ROOT.2.0.1" "$T/traps.out" | grep -q "host$V failed" || fail "keelHostFailed does not name host$V: $(cat "$T/traps.out")"
get $ROOT.1.4.1.2$(sidx host$V) | grep -q "= INTEGER: 5$" || fail "keelClusterHostState of host$V is not failed(5)"
get $ROOT.1.3.5.0 | grep -q "= Gauge32: 2$" || fail "keelClusterHostsConnected: $(get $ROOT.1.3.5.0)"
kill "$KS_PID"
wait "$KS_PID" || fail "keel-snmpd (lab) did not stop cleanly"
echo "OK"
