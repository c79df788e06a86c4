# HA settings (docs/ha-settings.md) on a three-host lab with the shared datastore.
# Per-VM settings through `keel cluster ha vm` (from a follower, forwarded to the leader,
# and through hostd's API): refusals for an unknown VM and a VM after itself, the event
# "VM X: restart priority P, restart after A", `keel cluster ha status` showing them. Then
# a host with four VMs is killed: the VM with priority disabled stays on it (status says
# so), the others run on survivors, and b (priority high, restart after a, priority low)
# is placed and powered on only after a (HA event order, the owners' power-on log lines).
# Admission control set with `keel cluster ha set` refuses a power-on. Maintenance mode
# through the API on a host with two VMs: they are powered off there and run on the
# others; a third host is killed and its VMs do not go to the maintenance host; after
# `host maintenance exit` the host takes placements again (the next killed host's VM lands
# on it). A third-party gRPC client (ha_settings.py) checks GetHaConfig, SetHaConfig and
# SetVmHa, their refusals, and a ReadOnly user denied the setters.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -E "HA|reconcile|admission|maintenance" "$LAB/hosts/host$h/clusterd.out" | tail -30; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
expect_fail() { # WANT_EXIT CMD...: the command fails with that exit code; $msg is its output
	local want=$1 rc
	shift
	msg=$("$@" 2>&1) && fail "$* succeeded: $msg"
	rc=$?
	[ "$rc" = "$want" ] || fail "$*: exit $rc, not $want: $msg"
	return 0
}
healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected"), ("host3", "connected")]' "$s")" = True ]
}
all_healthy() { healthy 1 && healthy 2 && healthy 3; }
# owner NAME: "owner epoch desired" of VM NAME as host L sees it
owner() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st "$L")" || true; }
owner_host() { local o; o=$(owner "$1"); echo "${o%% *}"; }
power_on() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || true; }
runs_on() { [ "$(power_on "$1" "$2")" = poweredOn ]; }
# moved NAME FROM: owned by another host than hostFROM, desired on, and running there
moved() {
	local h
	h=$(owner_host "$1")
	[ -n "$h" ] && [ "$h" != "host$2" ] && [[ $(owner "$1") == *" on" ]] && runs_on "${h#host}" "$1"
}
mkvm() { # HOST NAME
	kv "$1" vm create "$2" --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
		fail "create $2"
	kv "$1" vm power-on "$2" >/dev/null || fail "power-on $2"
}
events() { kc "$L" events --json --limit 400; }
# seq_of TEXT: the sequence number of the first event whose message holds TEXT (or "")
seq_of() { py "([e['seq'] for e in d['events'] if '$1' in e['message']] + [''])[0]" "$(events)"; }

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create has >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy || fail "cluster not healthy: $(st 1)"
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
echo "leader host$L, victim host$V"

# ---- per-VM settings -------------------------------------------------------------------------
for n in dis1 a1 b1 c1; do mkvm $V $n; done
# from the victim (a follower: forwarded to the leader over the join port)
msg=$(kc $V ha vm dis1 --priority disabled) || fail "ha vm dis1: $msg"
[[ $msg == "VM dis1: restart priority disabled, restart after none, monitoring "* ]] ||
	fail "ha vm dis1 output: $msg"
kc $V ha vm a1 --priority low >/dev/null || fail "ha vm a1"
j=$(kc "$L" --json ha vm b1 --priority high --restart-after a1) || fail "ha vm b1: $j"
[ "$(py '(d["vms"][0]["priority"], d["vms"][0]["restart_after"])' "$j")" = "('high', ['a1'])" ] ||
	fail "ha vm b1 --json: $j"
# refusals: an unknown VM, after itself, an unknown dependency, a bad priority, 17 deps
expect_fail 1 kc $V ha vm nosuch --priority high
[[ $msg == *"no such VM in the cluster: nosuch"* ]] || fail "unknown VM refusal: $msg"
expect_fail 1 kc $V ha vm b1 --restart-after b1
[[ $msg == *"cannot restart after itself"* ]] || fail "self refusal: $msg"
expect_fail 1 kc "$L" ha vm b1 --restart-after nosuch
[[ $msg == *"no such VM in the cluster: nosuch"* ]] || fail "unknown dependency refusal: $msg"
expect_fail 2 kc 1 ha vm b1 --priority urgent
many=(); for _ in $(seq 17); do many+=(--restart-after a1); done
expect_fail 2 kc 1 ha vm b1 "${many[@]}"
# nothing changed by the refusals; every host sees the settings
for h in 1 2 3; do
	s=$(kc $h --json ha status) || fail "ha status on host$h"
	got=$(py "sorted((v['name'], v['priority'], v['restart_after']) for v in d['vms'])" "$s")
	[ "$got" = "[('a1', 'low', []), ('b1', 'high', ['a1']), ('c1', 'medium', []), ('dis1', 'disabled', [])]" ] ||
		fail "ha status on host$h: $got"
done
# monitoring: the victim's own VMs show vmkernel's setting, another host's view shows none
s=$(kc $V --json ha status)
[ "$(py "[v['monitoring']['enabled'] for v in d['vms'] if v['name'] == 'c1'][0]" "$s")" = False ] ||
	fail "monitoring on the owner: $s"
[ "$(py "[v['monitoring'] for v in d['vms'] if v['name'] == 'c1'][0]" "$(kc "$L" --json ha status)")" = None ] ||
	fail "monitoring on another host"
# set on the owner; refused elsewhere, naming the owner; it lives in the .vmx and moves with it
j=$(kc $V --json ha vm c1 --monitoring on --heartbeat-timeout 40 --max-resets 2) || fail "ha vm c1 --monitoring: $j"
[ "$(py "(d['vms'][0]['monitoring']['enabled'], d['vms'][0]['monitoring']['timeout_s'], d['vms'][0]['monitoring']['max_resets'])" "$j")" = "(True, 40, 2)" ] ||
	fail "ha vm c1 --monitoring on: $j"
j=$(kc $V --json ha vm c1 --max-resets 3) || fail "ha vm c1 --max-resets: $j"
[ "$(py "(d['vms'][0]['monitoring']['enabled'], d['vms'][0]['monitoring']['timeout_s'], d['vms'][0]['monitoring']['max_resets'])" "$j")" = "(True, 40, 3)" ] ||
	fail "ha vm c1 --max-resets alone: $j"
expect_fail 1 kc "$L" ha vm c1 --monitoring off
[[ $msg == *"runs on host$V"* ]] || fail "monitoring refusal on another host: $msg"
expect_fail 2 kc $V ha vm c1 --monitoring sometimes
expect_fail 2 kc $V ha vm c1 --heartbeat-timeout 0
txt=$(kc "$L" ha status) || fail "ha status text"
echo "$txt"
echo "$txt" | grep -Eq "^b1 +host$V +high +a1 +- *$" || fail "ha status row of b1: $txt"
[ -n "$(seq_of "VM b1: restart priority high, restart after a1")" ] || fail "no settings event: $(events)"

# ---- a host fails: disabled stays, b after a --------------------------------------------------
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V"
t0=$(now_ms)
all_moved() { moved a1 $V && moved b1 $V && moved c1 $V; }
until_ok 25 all_moved || fail "VMs not running elsewhere: $(for n in a1 b1 c1 dis1; do echo "$n: $(owner $n)"; done)"
echo "a1, b1, c1 running on survivors $(($(now_ms) - t0)) ms after host-kill of host$V"
sleep 2
[ "$(owner dis1)" = "host$V 1 on" ] || fail "dis1 (priority disabled) moved: $(owner dis1)"
[ "$(py "[(v['host'], v['priority']) for v in d['vms'] if v['name'] == 'dis1'][0]" "$(kc "$L" --json ha status)")" = "('host$V', 'disabled')" ] ||
	fail "ha status of dis1"
hc=$(owner_host c1)
j=$(kc "${hc#host}" --json ha status) || fail "ha status on $hc"
[ "$(py "[(v['monitoring']['enabled'], v['monitoring']['timeout_s'], v['monitoring']['max_resets']) for v in d['vms'] if v['name'] == 'c1'][0]" "$j")" = "(True, 40, 3)" ] ||
	fail "c1's monitoring did not move with it to $hc: $j"
sa=$(seq_of "restarting VM a1 on")
sb=$(seq_of "restarting VM b1 on")
[ -n "$sa" ] && [ -n "$sb" ] && [ "$sa" -lt "$sb" ] || fail "HA events: a1 at '$sa', b1 at '$sb': $(events)"
ha=$(owner_host a1); hb=$(owner_host b1)
# the first power-on each new owner's reconciler finished (its log's clock is this machine's)
first_on() { # HOST VM
	grep -m1 -E "reconcile: powered on \(desired on\) VM $2\$" "$LAB/hosts/host$1/clusterd.out" | cut -c1-24
}
ta=$(first_on "${ha#host}" a1)
tb=$(first_on "${hb#host}" b1)
echo "restart order: a1 event $sa, powered on $ta on $ha; b1 event $sb, powered on $tb on $hb"
[ -n "$ta" ] && [ -n "$tb" ] && [[ $ta < $tb ]] ||
	fail "b1 (restart after a1) powered on at '$tb', a1 at '$ta'"
lab host-start $V --dir "$LAB" >/dev/null || fail "host-start $V"
until_ok 30 all_healthy || fail "host$V not back: $(st "$L")"
for n in a1 b1 c1; do
	h=$(owner_host $n)
	kv "${h#host}" vm power-off $n >/dev/null
	kv "${h#host}" vm destroy $n >/dev/null || fail "destroy $n"
done
L=$(leader_of "$(st 1)")

# ---- admission control and HA off/on through `keel cluster ha set` ---------------------------------
mem_mib=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))
big=$(((mem_mib * 2 + 1024) / 2 * 2))
j=$(kc 1 --json ha set --admission-failures 1) || fail "ha set --admission-failures: $j"
[ "$(py '(d["admission_failures"], d["admission_percent"])' "$j")" = "(1, 0)" ] || fail "ha set output: $j"
kv 1 vm create big1 --memory "$big" --vcpus 1 --datastore shared1 >/dev/null || fail "create big1"
out=$(kv 1 vm power-on big1 2>&1) && fail "power-on of a ${big} MiB VM admitted: $out"
[[ $out == *"admission control"*"host failure"* ]] || fail "refusal text: $out"
echo "refused: $out"
expect_fail 2 kc 1 ha set --admission-failures 1 --admission-off
expect_fail 2 kc 1 ha set
kc 2 ha set --admission-off >/dev/null || fail "ha set --admission-off"
kv 1 vm destroy big1 >/dev/null || fail "destroy big1"
txt=$(kc 3 ha set --disable) || fail "ha set --disable"
echo "$txt" | grep -Eq "^HA: +off" || fail "ha set --disable output: $txt"
[ "$(py 'd["ha_enabled"]' "$(st 1)")" = False ] || fail "HA still on"
kc 1 ha set --enable >/dev/null || fail "ha set --enable"
[ "$(py 'd["ha_enabled"]' "$(st 1)")" = True ] || fail "HA still off"

# ---- maintenance mode through the API -------------------------------------------------------------
L=$(leader_of "$(st 1)")
others=(); for h in 1 2 3; do [ "$h" != "$L" ] && others+=("$h"); done
M=${others[0]} K=${others[1]}
echo "leader host$L, maintenance host$M, then killed host$K"
SRV=https://198.18.0.$M:8443
k() { nsenter --net="/run/netns/$prefix-lab-host$M" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" "$@"; }
ks() { k --server "$SRV" --timeout 30 "$@"; }
for _ in $(seq 150); do
	grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$M/hostd.out" 2>/dev/null && break
	sleep 0.1
done
logged_in() { k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null 2>&1; }
until_ok 20 logged_in || fail "login to host$M's API"
# HA settings through the API
j=$(ks --json cluster ha vm dis1 --priority lowest) || fail "ha vm through the API: $j"
[ "$(py 'd["vms"][0]["priority"]' "$j")" = lowest ] || fail "API ha vm: $j"
[ "$(py "[v['priority'] for v in d['vms'] if v['name'] == 'dis1'][0]" "$(kc 1 --json ha status)")" = lowest ] ||
	fail "the API's change not seen by clusterd"
expect_fail 1 ks cluster ha vm nosuch --priority high
j=$(ks --json cluster ha status) || fail "ha status through the API: $j"
[ "$(py 'd["ha_enabled"]' "$j")" = True ] || fail "API ha status: $j"
j=$(ks --json cluster ha set --admission-percent 10) || fail "ha set through the API: $j"
[ "$(py 'd["admission_percent"]' "$j")" = 10 ] || fail "API ha set: $j"
ks cluster ha set --admission-off >/dev/null || fail "API ha set --admission-off"
h=$(owner_host dis1)
kv "${h#host}" vm power-off dis1 >/dev/null
kv "${h#host}" vm destroy dis1 >/dev/null || fail "destroy dis1"

mkvm $M m1; mkvm $M m2
mkvm $K x1; mkvm $K x2
# a third-party gRPC client: SetVmHa, SetHaConfig, refusals, a ReadOnly user denied
if /usr/bin/python3 -c 'import grpc' 2>/dev/null && command -v protoc >/dev/null; then
	mkdir -p "$T/stubs"
	protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
		--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto ||
		fail "protoc"
	nsenter --net="/run/netns/$prefix-lab-host$M" timeout 120 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/ha_settings.py" "$T/stubs" "$LAB/hosts/host1/ca.crt" \
		"$pwfile" 198.18.0.$M 8443 "host$M" m1 m2 x1 || fail "ha_settings.py"
else
	echo "no python3-grpcio or protoc: the third-party client part is left out"
fi
msg=$(ks host maintenance enter) || fail "maintenance enter through the API: $msg"
echo "$msg"
in_maint() { [ "$(py "[h['maintenance'] for h in d['hosts'] if h['name'] == 'host$M'][0]" "$(st "$L")")" = True ]; }
until_ok 5 in_maint || fail "host$M not in maintenance: $(st "$L")"
m_moved() { moved m1 $M && moved m2 $M; }
t0=$(now_ms)
last_event() { py 'd["vms"][0]["last_event"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || true; }
until_ok 30 m_moved || fail "m1/m2 not running elsewhere: $(owner m1) ($(power_on $M m1) on host$M: $(last_event $M m1)); $(owner m2) ($(power_on $M m2) on host$M: $(last_event $M m2))"
echo "m1, m2 running on other hosts $(($(now_ms) - t0)) ms after maintenance enter"
for n in m1 m2; do
	[ "$(power_on $M $n)" != poweredOn ] || fail "$n still runs on maintenance host$M"
done
echo "m1 on $(owner_host m1), m2 on $(owner_host m2)"
lab host-kill $K --dir "$LAB" >/dev/null || fail "host-kill $K"
x_moved() { moved x1 $K && moved x2 $K; }
until_ok 25 x_moved || fail "x1/x2 not running elsewhere: $(owner x1); $(owner x2)"
for n in m1 m2 x1 x2; do
	[ "$(owner_host $n)" = "host$L" ] || fail "$n placed on $(owner_host $n), not host$L (host$M in maintenance, host$K dead)"
done
msg=$(ks host maintenance exit) || fail "maintenance exit through the API: $msg"
not_maint() { ! in_maint; }
until_ok 5 not_maint || fail "host$M still in maintenance"
lab host-start $K --dir "$LAB" >/dev/null || fail "host-start $K"
until_ok 30 all_healthy || fail "host$K not back: $(st "$L")"
mkvm $K y1
lab host-kill $K --dir "$LAB" >/dev/null || fail "host-kill $K again"
until_ok 25 moved y1 $K || fail "y1 not running elsewhere: $(owner y1)"
# host$L runs four VMs, host$M none: the planner puts y1 on the emptier host$M
[ "$(owner_host y1)" = "host$M" ] || fail "y1 on $(owner_host y1), not on host$M after maintenance exit"
echo "y1 restarted on host$M after it left maintenance mode"
lab host-start $K --dir "$LAB" >/dev/null || fail "host-start $K (end)"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo ok
