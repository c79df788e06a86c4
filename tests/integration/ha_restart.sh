# HA (docs/ha.md) on a three-host lab with the shared datastore: three kguest VMs writing
# disk sequences run on a follower; `keel lab host-kill` of that host → each VM runs again
# on a survivor at epoch 2 within seconds (the time is printed), an HA event names each,
# and each disk's sequence is continuous with runs that never interleave (one writer at a
# time); the killed host comes back and runs none of them. A power-on refused on the host HA
# chose is retried on another (the refusal is an event). Then isolation: a VM on an
# isolated follower is powered off there, its lock released, and only then restarted on
# the majority side; healed, the host does not run it; with "leave powered on" the VM keeps
# running on the isolated host and is never restarted elsewhere. Admission control: a power-on that
# would leave no room for one host failure, or less than a percentage free, is refused with
# the figures; HA off: a killed host's VM stays where it is.
source "$(dirname "$0")/common.bash"
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
			{ echo "--- clusterd host$h"; grep -E "HA|reconcile|admission" "$LAB/hosts/host$h/clusterd.out" | tail -15; }
		[ -f "$LAB/hosts/host$h/vmkernel.log" ] &&
			{ echo "--- vmkernel host$h"; grep -Ei "fenc|ended|exited|killed|lock" "$LAB/hosts/host$h/vmkernel.log" | tail -15; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected"), ("host3", "connected")]' "$s")" = True ]
}
all_healthy() { healthy 1 && healthy 2 && healthy 3; }
# owner NAME: the registry's "owner epoch desired" for VM NAME (as host L sees it)
owner() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st "$L")" || true; }
power_on() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || true; }

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create ha3 >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy || fail "cluster not healthy: $(st 1)"
[ "$(py 'd["ha_enabled"]' "$(st 1)")" = True ] || fail "HA not on by default: $(st 1)"
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
echo "leader host$L, victim host$V"

# ---- three VMs on the victim, killed with it -----------------------------------------------
for n in 1 2 3; do
	kv $V vm create ha$n --memory 64 --vcpus 1 --datastore shared1 --disk 4 \
		--cmdline "counter_ms=100 disk_seq=1 disk_ms=20" >/dev/null || fail "create ha$n"
	kv $V vm power-on ha$n >/dev/null || fail "power-on ha$n"
done
for n in 1 2 3; do
	reg_ok() { [ "$(owner ha$n)" = "host$V 1 on" ]; }
	until_ok 5 reg_ok || fail "ha$n registry: $(owner ha$n) / $(st "$L")"
	wait_for "$LAB/shared/ha$n/console.log" "disk seq 20\b"
done
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V"
t0=$(now_ms)
moved() { local o; o=$(owner "$1"); [[ $o != "host$V "* ]] && [[ $o == *" 2 on" ]]; }
running_elsewhere() {
	local n o h
	for n in 1 2 3; do
		moved ha$n || return 1
		o=$(owner ha$n)
		h=${o%% *}
		[ "$(power_on "${h#host}" ha$n)" = poweredOn ] || return 1
	done
}
until_ok 20 running_elsewhere || fail "VMs not running elsewhere 20 s after host-kill: $(for n in 1 2 3; do owner ha$n; done)"
echo "all three VMs running on survivors $(($(now_ms) - t0)) ms after host-kill of host$V"
ev=$(kc "$L" events --json --limit 200) || fail "events"
for n in 1 2 3; do
	[ "$(py "any(e['kind'] == 'ha' and 'restarting VM ha$n on' in e['message'] and 'host$V failed' in e['message'] for e in d['events'])" "$ev")" = True ] ||
		fail "no HA event for ha$n: $ev"
	o=$(owner ha$n)
	h=${o%% *}
	pid=$(py 'd["vms"][0]["pid"]' "$(kv "${h#host}" --json vm info ha$n)")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--fence-epoch 2" ||
		fail "ha$n on $h not fenced at epoch 2: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	wait_for "$LAB/shared/ha$n/console.log" "disk seq header last=[0-9]+ runs=1"
done

# the killed host comes back and runs none of them
lab host-start $V --dir "$LAB" >/dev/null || fail "host-start $V"
until_ok 30 all_healthy || fail "host$V not back: $(st "$L")"
sleep 2
for n in 1 2 3; do
	p=$(power_on $V ha$n)
	[ "$p" != poweredOn ] || fail "ha$n runs on host$V again"
done

# each disk: the sequence continues across the crash, runs never interleave
for n in 1 2 3; do
	o=$(owner ha$n)
	h=${o%% *}
	wait_for "$LAB/shared/ha$n/console.log" "disk seq [0-9]*0\b"
	kv "${h#host}" vm power-off ha$n >/dev/null || fail "power-off ha$n"
	r=$(python3 "$(dirname "$0")/diskseq_check.py" "$LAB/shared/ha$n/ha$n.img" 2>&1) ||
		fail "ha$n disk: $r"
	[[ $r == *"runs=2"* ]] || fail "ha$n disk: $r (want 2 runs)"
	echo "ha$n: $r"
	kv "${h#host}" vm destroy ha$n >/dev/null || fail "destroy ha$n"
done

# ---- a power-on that fails on the chosen host is retried on another -----------------------------
# Portgroup pgHA exists on the victim V and on X only; a 4 GiB VM running on X makes Y, with
# more free memory, HA's first choice; Y's vmkernel refuses (no such portgroup), so the
# leader excludes Y and places the VM on X.
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
X=$L
Y=1; { [ "$Y" = "$V" ] || [ "$Y" = "$X" ]; } && Y=2; { [ "$Y" = "$V" ] || [ "$Y" = "$X" ]; } && Y=3
for h in $V $X; do
	kv $h network portgroup add pgHA --vswitch vSwitch0 >/dev/null || fail "portgroup pgHA on host$h"
done
kv $X vm create ballast --memory 4096 --vcpus 1 --datastore shared1 --cmdline "counter_ms=1000" >/dev/null ||
	fail "create ballast"
kv $X vm power-on ballast >/dev/null || fail "power-on ballast"
kv $V vm create pg1 --memory 64 --vcpus 1 --datastore shared1 --nic pgHA --cmdline "counter_ms=100" >/dev/null ||
	fail "create pg1"
kv $V vm power-on pg1 >/dev/null || fail "power-on pg1"
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V (retry)"
on_x() { [ "$(owner pg1)" = "host$X 3 on" ] && [ "$(power_on $X pg1)" = poweredOn ]; }
until_ok 40 on_x || fail "pg1 not running on host$X at epoch 3: $(owner pg1); events: $(kc "$L" events --limit 20)"
ev=$(kc "$L" events --json --limit 200) || fail "events"
[ "$(py "any(e['kind'] == 'ha' and 'could not power on on host host$Y' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "no event for pg1's failed power-on on host$Y: $ev"
echo "pg1: refused on host$Y (no portgroup), running on host$X at epoch 3"
kv $X vm power-off pg1 >/dev/null
kv $X vm destroy pg1 >/dev/null || fail "destroy pg1"
kv $X vm power-off ballast >/dev/null
kv $X vm destroy ballast >/dev/null || fail "destroy ballast"
lab host-start $V --dir "$LAB" >/dev/null || fail "host-start $V (retry)"
until_ok 30 all_healthy || fail "host$V not back (retry)"

# ---- isolation: powered off and released there first, then restarted on the majority ----------
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
kv $V vm create iso1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "create iso1"
kv $V vm power-on iso1 >/dev/null || fail "power-on iso1"
lab host-isolate $V --dir "$LAB" >/dev/null || fail "host-isolate $V"
t0=$(now_ms)
off_there() { [ "$(power_on $V iso1)" = poweredOff ]; }
until_ok 5 off_there || fail "iso1 still on on isolated host$V"
t_off=$(now_ms)
until_ok 15 moved iso1 || fail "iso1 not moved after host$V isolated: $(owner iso1)"
t_moved=$(now_ms)
[ "$t_moved" -ge "$t_off" ] || fail "iso1 moved before host$V powered it off"
o=$(owner iso1)
h=${o%% *}
on_new() { [ "$(power_on "${h#host}" iso1)" = poweredOn ]; }
until_ok 10 on_new || fail "iso1 not running on $h"
echo "iso1: off on host$V after $((t_off - t0)) ms, running on $h after $(($(now_ms) - t0)) ms"
lab host-heal $V --dir "$LAB" >/dev/null || fail "host-heal $V"
until_ok 20 all_healthy || fail "host$V not back after heal"
sleep 2
[ "$(power_on $V iso1)" != poweredOn ] || fail "iso1 runs on healed host$V too"
[ "$(power_on "${h#host}" iso1)" = poweredOn ] || fail "iso1 stopped on $h"
kv "${h#host}" vm power-off iso1 >/dev/null
kv "${h#host}" vm destroy iso1 >/dev/null || fail "destroy iso1"

# ---- isolation with "leave powered on": the lock stays held, the majority never restarts it ------
kc 1 config --isolation-response leave-powered-on >/dev/null || fail "config leave-powered-on"
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
kv $V vm create lpo1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "create lpo1"
kv $V vm power-on lpo1 >/dev/null || fail "power-on lpo1"
lpid=$(py 'd["vms"][0]["pid"]' "$(kv $V --json vm info lpo1)")
lab host-isolate $V --dir "$LAB" >/dev/null || fail "host-isolate $V (leave powered on)"
partitioned() { [ "$(py "[h['state'] for h in d['hosts'] if h['name'] == 'host$V'][0]" "$(st "$L")")" = partitioned ]; }
until_ok 10 partitioned || fail "host$V not partitioned"
sleep 3
[ "$(owner lpo1)" = "host$V 1 on" ] || fail "leave powered on, yet lpo1 moved: $(owner lpo1)"
[ "$(py 'd["vms"][0]["pid"]' "$(kv $V --json vm info lpo1)")" = "$lpid" ] || fail "lpo1's vmx changed"
for h in 1 2 3; do
	[ "$h" = "$V" ] && continue
	[ "$(power_on $h lpo1)" != poweredOn ] || fail "lpo1 runs on host$h too"
done
lab host-heal $V --dir "$LAB" >/dev/null || fail "host-heal $V (leave powered on)"
until_ok 20 all_healthy || fail "host$V not back after heal (leave powered on)"
kc 1 config --isolation-response power-off >/dev/null || fail "config power-off"
kv $V vm power-off lpo1 >/dev/null
kv $V vm destroy lpo1 >/dev/null || fail "destroy lpo1"
echo "leave powered on: lpo1 kept running on host$V, never restarted elsewhere"

# ---- admission control ---------------------------------------------------------------------------
mem_mib=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))
big=$(((mem_mib * 2 + 1024) / 2 * 2)) # more than two hosts' worth: no room after one failure
kc 1 config --admission-failures 1 >/dev/null || fail "config --admission-failures"
until_ok 5 bash -c "[ \"\$(\"$KEEL_BIN\" --socket $LAB/hosts/host1/vmkernel.sock cluster status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"admission_failures\"])')\" = 1 ]" ||
	fail "admission setting not seen"
kv 1 vm create big1 --memory "$big" --vcpus 1 --datastore shared1 >/dev/null || fail "create big1"
out=$(kv 1 vm power-on big1 2>&1) && fail "power-on of a ${big} MiB VM admitted: $out"
[[ $out == *"admission control"*"host failure"* ]] || fail "refusal text: $out"
echo "refused: $out"
kc 1 config --admission-percent 50 >/dev/null || fail "config --admission-percent"
out=$(kv 1 vm power-on big1 2>&1) && fail "power-on admitted with 50%: $out"
[[ $out == *"50% of the cluster"* ]] || fail "percent refusal text: $out"
kc 1 config --admission-off >/dev/null || fail "config --admission-off"
kv 1 vm destroy big1 >/dev/null || fail "destroy big1"
kv 1 vm create small1 --memory 64 --vcpus 1 --datastore shared1 >/dev/null || fail "create small1"
kc 1 config --admission-failures 1 >/dev/null || fail "config --admission-failures again"
kv 1 vm power-on small1 >/dev/null || fail "a small VM refused by admission control"
kv 1 vm power-off small1 >/dev/null
kv 1 vm destroy small1 >/dev/null
kc 1 config --admission-off >/dev/null

# ---- HA off: a killed host's VM stays where it is -------------------------------------------------
kc 1 config --ha off >/dev/null || fail "config --ha off"
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
kv $V vm create off1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "create off1"
kv $V vm power-on off1 >/dev/null || fail "power-on off1"
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V (HA off)"
sleep 4
[ "$(owner off1)" = "host$V 1 on" ] || fail "HA off, yet off1 moved: $(owner off1)"
kc "$L" config --ha on >/dev/null || fail "config --ha on"
until_ok 10 moved off1 || fail "off1 not moved after HA was turned on: $(owner off1)"
echo "ok"
