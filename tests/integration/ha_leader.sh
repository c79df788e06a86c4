# HA (docs/ha.md) when the leader's own host fails, and two failures at once, on a five-host
# lab with the shared datastore (3 Raft voters, 2 standbys):
#   1. the leader's host killed together with two kguest VMs writing disk sequences → the
#      other voters elect a leader, whose HA restarts both VMs on survivors at epoch 2 (the
#      time from the kill is printed); each disk's sequence is continuous with two runs that
#      never interleave; the old leader's host comes back and runs neither.
#   2. the leader's host isolated with one VM → it loses leadership, reports itself isolated
#      and powers the VM off (lock released); the majority's new leader restarts it on
#      another host; healed, the old leader's host runs no copy.
#   3. failures to tolerate 2 (admission control still admits small power-ons): VMs on two
#      hosts chosen so that at most one voter dies, both killed back to back → every one of
#      their VMs runs on the three remaining hosts.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -x "$PWD/$BUILD/bin/clusterd" ] || { echo "SKIP: clusterd not built"; exit 77; }
need_kvm

START=$(date +%s)
LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
HOSTS="1 2 3 4 5"
lab_cleanup() {
	set +e
	if [ "${ok:-0}" != 1 ] && [ -d "$LAB/hosts" ]; then
		for h in $HOSTS; do
			[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
				{ echo "--- clusterd host$h"; grep -E "HA|reconcile|admission|isolat|leader|term" "$LAB/hosts/host$h/clusterd.out" | tail -20; }
			[ -f "$LAB/hosts/host$h/vmkernel.log" ] &&
				{ echo "--- vmkernel host$h"; grep -Ei "fenc|ended|exited|killed|lock" "$LAB/hosts/host$h/vmkernel.log" | tail -15; }
		done
		[ -f "$LAB/lab.log" ] && { echo "--- lab.log"; tail -20 "$LAB/lab.log"; }
		# KEEL_HA_LOGS=DIR keeps every host's daemon logs and the lab's log
		if [ -n "${KEEL_HA_LOGS:-}" ]; then
			mkdir -p "$KEEL_HA_LOGS"
			cp "$LAB/lab.log" "$KEEL_HA_LOGS/" 2>/dev/null
			for h in $HOSTS; do
				mkdir -p "$KEEL_HA_LOGS/host$h"
				cp "$LAB/hosts/host$h/"*.log "$LAB/hosts/host$h/"*.out "$KEEL_HA_LOGS/host$h/" 2>/dev/null
			done
			echo "logs kept in $KEEL_HA_LOGS"
		fi
	fi
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
# names JSON STATE RAFT_ROLE: the numbers of the hosts in that state and Raft role
names() { py "' '.join(sorted(h['name'][4:] for h in d['hosts'] if h['state'] == '$2' and h['raft_role'] == '$3'))" "$1"; }
unbootstrapped() { local s; s=$(st "$1") && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
# healthy H: host H sees a leader and all five hosts connected
healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py 'd["leader_id"] != 0 and len(d["hosts"]) == 5 and all(h["state"] == "connected" for h in d["hosts"])' "$s")" = True ]
}
all_healthy() { local h; for h in $HOSTS; do healthy $h || return 1; done; }
# formed: every host sees a leader, 3 connected voters and 2 connected standbys
formed() {
	local h s
	for h in $HOSTS; do
		s=$(st $h) || return 1
		[ "$(py 'd["leader_id"] != 0 and len(d["hosts"]) == 5' "$s")" = True ] || return 1
		[ "$(py 'sorted((h["state"], h["raft_role"]) for h in d["hosts"])' "$s")" = \
			"[('connected', 'standby'), ('connected', 'standby'), ('connected', 'voter'), ('connected', 'voter'), ('connected', 'voter')]" ] ||
			return 1
	done
}
# new_leader OLD HOST: HOST sees a leader other than OLD; sets L to it
new_leader() {
	local l
	l=$(leader_of "$(st "$2")")
	[ -n "$l" ] && [ "$l" != "$1" ] && L=$l
}
# owner NAME: the registry's "owner epoch desired" for VM NAME (as host Q sees it)
owner() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st "$Q")" || true; }
power_on() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || true; }
# moved NAME OLD EPOCH: NAME is owned by a host other than hostOLD at EPOCH, desired on
moved() { local o; o=$(owner "$1"); [[ $o != "host$2 "* ]] && [[ $o == *" $3 on" ]]; }
# running_moved OLD EPOCH NAMES...: each VM moved off hostOLD at EPOCH and poweredOn on its owner
running_moved() {
	local old=$1 ep=$2 n o h
	shift 2
	for n in "$@"; do
		moved "$n" "$old" "$ep" || return 1
		o=$(owner "$n")
		h=${o%% *}
		[ "$(power_on "${h#host}" "$n")" = poweredOn ] || return 1
	done
}
# fenced_at NAME EPOCH: NAME's vmx on its owner runs fenced at EPOCH
fenced_at() {
	local o h pid
	o=$(owner "$1")
	h=${o%% *}
	pid=$(py 'd["vms"][0]["pid"]' "$(kv "${h#host}" --json vm info "$1")")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--fence-epoch $2" ||
		fail "$1 on $h not fenced at epoch $2: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
}
# mkvm HOST NAME [disk]: creates and powers on a kguest VM on shared1 (with a disk sequence)
mkvm() {
	local args=(--cmdline "counter_ms=100")
	[ "${3:-}" = disk ] && args=(--disk 4 --cmdline "counter_ms=100 disk_seq=1 disk_ms=20")
	kv "$1" vm create "$2" --memory 64 --vcpus 1 --datastore shared1 "${args[@]}" >/dev/null || fail "create $2"
	local out
	out=$(kv "$1" vm power-on "$2" 2>&1) || fail "power-on $2 on host$1: $out"
}

out=$(lab up 5 --dir "$LAB" --json) || fail "lab up: $out"
for h in $HOSTS; do until_ok 15 unbootstrapped $h || fail "clusterd on host$h: $(st $h)"; done
kc 1 create hal5 >/dev/null || fail "create"
for h in 2 3 4 5; do
	tok=$(kc 1 join-token) || fail "join-token"
	out=$(kc $h join 198.18.0.1 --token "$tok" 2>&1) || fail "host$h join: $out"
done
until_ok 25 formed || fail "not 5 connected hosts with 3 voters and 2 standbys: $(st 1)"
s=$(st 1)
[ "$(py 'd["ha_enabled"]' "$s")" = True ] || fail "HA not on by default: $s"
L=$(leader_of "$s")
echo "formed after $(($(date +%s) - START)) s: leader host$L, voters $(names "$s" connected voter)"

# ---- 1. the leader's host killed together with two VMs ---------------------------------------------
Q=$L
for n in 1 2; do mkvm "$L" ld$n disk; done
for n in 1 2; do
	reg_ok() { [ "$(owner ld$n)" = "host$L 1 on" ]; }
	until_ok 5 reg_ok || fail "ld$n registry: $(owner ld$n) / $(st "$L")"
	wait_for "$LAB/shared/ld$n/console.log" "disk seq 20\b"
	pid[$n]=$(py 'd["vms"][0]["pid"]' "$(kv "$L" --json vm info ld$n)")
done
# both still run their first vmx: a VM fenced on its healthy host would start a second run
# before the kill and the disk check below could not tell the runs apart
for n in 1 2; do
	p=$(py 'd["vms"][0]["pid"]' "$(kv "$L" --json vm info ld$n)")
	[ "$p" = "${pid[$n]}" ] && [ "$(power_on "$L" ld$n)" = poweredOn ] ||
		fail "ld$n stopped on healthy host$L before the kill (vmx ${pid[$n]} → $p): $(grep -E "VM ld$n: (fenced|.*ended)" "$LAB/hosts/host$L/vmkernel.log")"
done
K=$L
Q=1; [ "$Q" = "$K" ] && Q=2
lab host-kill "$K" --dir "$LAB" >/dev/null || fail "host-kill $K (leader)"
t0=$(now_ms)
until_ok 10 new_leader "$K" "$Q" || fail "no new leader 10 s after the leader host$K was killed: $(st "$Q")"
t_lead=$(now_ms)
Q=$L
until_ok 20 running_moved "$K" 2 ld1 ld2 ||
	fail "VMs not running elsewhere 20 s after host-kill of leader host$K: $(owner ld1) / $(owner ld2); $(kc "$L" events --limit 20)"
echo "leader host$K killed: host$L leads after $((t_lead - t0)) ms; ld1 and ld2 running on survivors $(($(now_ms) - t0)) ms after the kill"
ev=$(kc "$L" events --json --limit 300) || fail "events"
for n in 1 2; do
	[ "$(py "any(e['kind'] == 'ha' and 'restarting VM ld$n on' in e['message'] and 'host$K failed' in e['message'] for e in d['events'])" "$ev")" = True ] ||
		fail "no HA event for ld$n: $ev"
	fenced_at ld$n 2
	wait_for "$LAB/shared/ld$n/console.log" "disk seq header last=[0-9]+ runs=1"
done
lab host-start "$K" --dir "$LAB" >/dev/null || fail "host-start $K"
until_ok 30 all_healthy || fail "host$K not back: $(st "$L")"
sleep 2
for n in 1 2; do [ "$(power_on "$K" ld$n)" != poweredOn ] || fail "ld$n runs on host$K again"; done
for n in 1 2; do
	o=$(owner ld$n)
	h=${o%% *}
	wait_for "$LAB/shared/ld$n/console.log" "disk seq [0-9]*0\b"
	kv "${h#host}" vm power-off ld$n >/dev/null || fail "power-off ld$n"
	r=$(python3 "$(dirname "$0")/diskseq_check.py" "$LAB/shared/ld$n/ld$n.img" 2>&1) || fail "ld$n disk: $r"
	[[ $r == *"runs=2"* ]] || fail "ld$n disk: $r (want 2 runs)"
	echo "ld$n: $r"
	kv "${h#host}" vm destroy ld$n >/dev/null || fail "destroy ld$n"
done

# ---- 2. the leader's host isolated with one VM ---------------------------------------------------
L=$(leader_of "$(st 1)")
[ -n "$L" ] || fail "no leader before the isolation: $(st 1)"
I=$L
Q=$L
mkvm "$I" iso1
reg_ok() { [ "$(owner iso1)" = "host$I 1 on" ]; }
until_ok 5 reg_ok || fail "iso1 registry: $(owner iso1)"
Q=1; [ "$Q" = "$I" ] && Q=2
lab host-isolate "$I" --dir "$LAB" >/dev/null || fail "host-isolate $I (leader)"
t0=$(now_ms)
isolated_there() { [ "$(py 'd["isolated"]' "$(st "$I")")" = True ]; }
until_ok 10 isolated_there || fail "leader host$I does not report isolated: $(st "$I")"
t_iso=$(now_ms)
off_there() { [ "$(power_on "$I" iso1)" = poweredOff ]; }
until_ok 5 off_there || fail "iso1 still on on isolated host$I: $(power_on "$I" iso1)"
t_off=$(now_ms)
until_ok 10 new_leader "$I" "$Q" || fail "the majority has no leader other than host$I: $(st "$Q")"
t_lead=$(now_ms)
Q=$L
[ "$(leader_of "$(st "$I")")" != "$I" ] || fail "isolated host$I still sees itself as leader: $(st "$I")"
until_ok 15 running_moved "$I" 2 iso1 || fail "iso1 not running elsewhere after host$I isolated: $(owner iso1)"
t_run=$(now_ms)
[ "$t_run" -ge "$t_off" ] || fail "iso1 running elsewhere before host$I powered it off"
fenced_at iso1 2
o=$(owner iso1)
h=${o%% *}
echo "leader host$I isolated: isolated after $((t_iso - t0)) ms, iso1 off after $((t_off - t0)) ms," \
	"host$L leads after $((t_lead - t0)) ms, iso1 running on $h after $((t_run - t0)) ms"
lab host-heal "$I" --dir "$LAB" >/dev/null || fail "host-heal $I"
until_ok 20 all_healthy || fail "host$I not back after heal: $(st "$L") / $(st "$I")"
sleep 2
[ "$(power_on "$I" iso1)" != poweredOn ] || fail "iso1 runs on healed host$I too"
[ "$(power_on "${h#host}" iso1)" = poweredOn ] || fail "iso1 stopped on $h"
[ "$(owner iso1)" = "$h 2 on" ] || fail "iso1 owner after heal: $(owner iso1)"
ev=$(kc "$L" events --json --limit 300) || fail "events"
[ "$(py "any('host$I reports it was isolated' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "no event that host$I reports it was isolated: $ev"
kv "${h#host}" vm power-off iso1 >/dev/null
kv "${h#host}" vm destroy iso1 >/dev/null || fail "destroy iso1"

# ---- 3. failures to tolerate 2: two hosts killed at once --------------------------------------------
kc "$L" config --admission-failures 2 >/dev/null || fail "config --admission-failures 2"
adm2() { [ "$(py 'd["admission_failures"]' "$(st "$1")")" = 2 ]; }
for h in $HOSTS; do until_ok 5 adm2 $h || fail "admission setting not seen on host$h: $(st $h)"; done
s=$(st "$L")
L=$(leader_of "$s")
voters=$(names "$s" connected voter)
others=$(for h in $HOSTS; do [[ " $voters " == *" $h "* ]] || echo "$h"; done | tr '\n' ' ')
# two non-voters where there are two, else one non-voter and one voter that does not lead
set -- $others
A=${1:-}
B=${2:-}
if [ -z "$B" ]; then
	for h in $voters; do [ "$h" != "$L" ] && { B=$h; break; }; done
fi
[ -n "$A" ] && [ -n "$B" ] || fail "no two hosts to kill: voters $voters, leader host$L: $s"
echo "voters $voters, leader host$L: killing host$A and host$B"
for n in 1 2; do mkvm "$A" a$n; mkvm "$B" b$n; done # each power-on admitted with room for 2 failures
Q=$L
for n in a1 a2 b1 b2; do
	h=$A; [[ $n == b* ]] && h=$B
	reg_ok() { [ "$(owner $n)" = "host$h 1 on" ] && [ "$(power_on "$h" $n)" = poweredOn ]; }
	until_ok 5 reg_ok || fail "$n registry: $(owner $n)"
done
lab host-kill "$A" --dir "$LAB" >/dev/null || fail "host-kill $A"
lab host-kill "$B" --dir "$LAB" >/dev/null || fail "host-kill $B"
t0=$(now_ms)
# on_survivors: every VM owned by a host that was not killed, desired on, and poweredOn there
on_survivors() {
	local n o h
	for n in a1 a2 b1 b2; do
		o=$(owner $n)
		h=${o%% *}
		[ -n "$h" ] && [ "$h" != "host$A" ] && [ "$h" != "host$B" ] && [[ $o == *" on" ]] || return 1
		[ "$(power_on "${h#host}" $n)" = poweredOn ] || return 1
	done
}
until_ok 30 on_survivors ||
	fail "VMs not all running on the remaining hosts: $(for n in a1 a2 b1 b2; do echo "$n: $(owner $n);"; done) $(kc "$L" events --limit 24)"
echo "host$A and host$B killed: a1 a2 b1 b2 running on the remaining hosts $(($(now_ms) - t0)) ms after the kills"
# each VM was restarted exactly once: one HA placement, epoch 2, its vmx fenced at 2
ev=$(kc "$L" events --json --limit 400) || fail "events"
for n in a1 a2 b1 b2; do
	k=$(py "len([e for e in d['events'] if e['kind'] == 'ha' and e['message'].startswith('HA: restarting VM $n on')])" "$ev")
	[ "$k" = 1 ] && [[ $(owner $n) == *" 2 on" ]] ||
		fail "$n restarted $k times (want once), now $(owner $n): $(py "'; '.join(e['message'] for e in d['events'] if e['message'].startswith(('HA: restarting VM $n ', 'VM $n: owner', 'HA: VM $n ')))" "$ev")"
	fenced_at $n 2
done
# the leader judged the two hosts failed in one HA round or in two (the second round must not
# move again the VMs the first one placed and that are still starting)
gap=$(py "(lambda t: t['host$B'] - t['host$A'] if len(t) == 2 else '?')({e['message'].split()[1].rstrip(':'): e['at_ms'] for e in d['events'] if e['kind'] == 'host-state' and e['message'].endswith('-> failed') and e['message'].split()[1].rstrip(':') in ('host$A', 'host$B')})" "$ev")
echo "host$B judged failed $gap ms after host$A; each VM restarted once, at epoch 2"
[ -n "$(leader_of "$(st "$L")")" ] || fail "no leader after two kills: $(st "$L")"

for h in $HOSTS; do
	! grep -E "Assertion|Segmentation" "$LAB/hosts/host$h/clusterd.out" ||
		fail "host$h clusterd.out reports a crash"
done
ok=1
echo "PASS ($(($(date +%s) - START)) s)"
