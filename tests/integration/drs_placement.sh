# Initial placement at power-on (docs/drs.md, "Initial placement") on a three-host lab with the
# shared datastore. Four VMs run on the leader's host F (the loaded host), the other two are
# empty. With DRS fully automated, a new VM created on F and powered on there through the CLI
# runs on another host, exactly once (one vmx in the whole lab, fenced at the new epoch, the
# lock moved with it, F no longer registers it), with its "placed on ... by DRS" event; a must
# host-affinity rule pins the next one to the host it names; a must anti-affinity rule that
# no host can keep is refused with the rule's name and the VM stays off and where it was;
# --host places a VM explicitly, from a follower too (with the leader's own words), and is
# refused when it breaks a must rule. vmkernel's own power-on (the path of hostd's PowerOnVm, taken here by keel without
# clusterd's socket) is placed the same way and succeeds (exit 0) saying where, as text and
# as --json; hostd's PowerOnVm from a third party's gRPC client (drs_placement_api.py) on
# the loaded host is a Task that succeeds naming the other host, and `keel --server ... vm
# power-on` prints the task's words; each of these VMs runs exactly once, on that host.
# With DRS manual, a VM powers on where it is registered and the CLI prints DRS's
# recommendation; a must rule against its own host refuses it.
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
			{ echo "--- clusterd host$h"; grep -Ei "placed|DRS|reconcile" "$LAB/hosts/host$h/clusterd.out" | tail -15; }
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
# reg NAME: the registry's "owner epoch desired" for VM NAME (as the leader sees it)
reg() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st "$L")" || true; }
power_state() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || true; }
events() { kc "$L" events --json --limit 400; }
mkvm() { # HOST NAME
	kv "$1" vm create "$2" --memory 256 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
		fail "create $2"
}
# vmx processes of VM NAME in the whole lab (fenced: its uuid follows --fence-vm)
uuid_of() { py "[v['uuid'] for v in d['vms'] if v['name'] == '$1'][0]" "$(st "$L")"; }
vmx_count() { pgrep -f -- "--fence-vm $(uuid_of "$1")" | wc -l; }
# runs_once NAME HOSTNUM EPOCH: powered on there and nowhere else, one vmx, fenced at EPOCH,
# its console advancing
runs_once() {
	local n=$1 h=$2 e=$3 pid o
	[ "$(power_state "$h" "$n")" = poweredOn ] || return 1
	for o in 1 2 3; do
		[ "$o" = "$h" ] && continue
		[ "$(power_state "$o" "$n")" != poweredOn ] || return 1
	done
	[ "$(vmx_count "$n")" = 1 ] || return 1
	pid=$(py 'd["vms"][0]["pid"]' "$(kv "$h" --json vm info "$n")")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--fence-epoch $e\b" || return 1
}

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create place >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy || fail "cluster not healthy: $(st 1)"
L=$(leader_of "$(st 1)")
F=$L
FOL=1; [ "$FOL" = "$F" ] && FOL=2
echo "leader and loaded host host$F, a follower host$FOL"
# The leader's periodic pass stays out of the way: one pass an hour.
kc "$L" drs set --interval 3600 >/dev/null || fail "drs set --interval"

# ---- manual (the default): four VMs power on where they are registered ------------------------
for n in l1 l2 l3 l4; do
	mkvm $F $n
	kv $F vm power-on $n >/dev/null || fail "power-on $n"
done
for n in l1 l2 l3 l4; do [ "$(reg $n)" = "host$F 1 on" ] || fail "$n: $(reg $n)"; done

# ---- fully automated: a VM created on the loaded host runs on another -------------------------
kc "$L" drs set --automation fully >/dev/null || fail "drs set fully"
full() { [ "$(py 'd["automation"]' "$(kc $F --json drs status)")" = fully ]; }
until_ok 5 full || fail "not fully automated: $(kc $F drs status)"
mkvm $F n1
[ "$(reg n1)" = "host$F 1 off" ] || fail "n1 registry: $(reg n1)"
t0=$(now_ms)
j=$(kv $F --json vm power-on n1) || fail "power-on n1: $j"
t_cli=$(($(now_ms) - t0))
A=$(py 'd["host"]' "$j")
[ "$(py "(d['vm'], d['placed'], d['host'] in ('host1', 'host2', 'host3'), d['host'] != 'host$F')" "$j")" = \
  "('n1', True, True, True)" ] || fail "power-on n1 --json: $j"
[[ $(py 'd["placement"]' "$j") == "VM n1 placed on $A by DRS (fully automated; registered on host$F)" ]] ||
	fail "n1 placement: $j"
[ "$(reg n1)" = "$A 2 on" ] || fail "n1 registry after placement: $(reg n1)"
until_ok 20 runs_once n1 "${A#host}" 2 || fail "n1 not running once on $A: $(reg n1); vmx $(vmx_count n1)"
t_run=$(($(now_ms) - t0))
gone_f() { ! kv $F vm info n1 >/dev/null 2>&1; }
until_ok 10 gone_f || fail "host$F still registers n1"
wait_for "$LAB/shared/n1/console.log" "counter 5\b"
sleep 1
[ "$(vmx_count n1)" = 1 ] || fail "n1: $(vmx_count n1) vmx processes"
[ "$(py "[e['message'] for e in d['events'] if e['message'].startswith('VM n1 placed')]" "$(events)")" = \
  "['VM n1 placed on $A by DRS (fully automated; registered on host$F)']" ] || fail "n1 event: $(events)"
echo "n1: created on host$F, placed on and running once on $A (keel returned after $t_cli ms; running, checked on every host, after $t_run ms)"

# ---- a must VM-host rule pins the next one ----------------------------------------------------
P=1; { [ "$P" = "$F" ] || [ "host$P" = "$A" ]; } && P=2; { [ "$P" = "$F" ] || [ "host$P" = "$A" ]; } && P=3
mkvm $F n2
kc "$L" rule add pin2 --kind host-affinity --must --vm n2 --host host$P >/dev/null || fail "rule add pin2"
out=$(kv $F vm power-on n2) || fail "power-on n2: $out"
[[ $out == *"Placed VM n2 on host$P"* && $out == *"VM n2 placed on host$P by DRS"* ]] || fail "power-on n2: $out"
[ "$(reg n2)" = "host$P 2 on" ] || fail "n2 registry: $(reg n2)"
until_ok 20 runs_once n2 $P 2 || fail "n2 not running once on host$P: $(reg n2)"
echo "n2: pinned by rule pin2, running on host$P"

# ---- vmkernel's own power-on (hostd's PowerOnVm takes this path): placed the same way -------------
# keel without clusterd's socket asks vmkernel alone; vmkernel's OP_POWER_ON to the cluster
# places the VM, and the asking host does not start it.
mkvm $F n4
out4=$(kv $F vm power-on n4 --cluster-socket "$T/none.sock" 2>&1) ||
	fail "power-on n4 through vmkernel did not succeed: $out4"
o4=$(reg n4)
[[ $o4 == *" 2 on" && $o4 != "host$F "* ]] || fail "n4 not placed off host$F: $o4"
B=${o4%% *}
until_ok 20 runs_once n4 "${B#host}" 2 || fail "n4 not running once on $B: $(reg n4)"
[ -n "$(py "[e['message'] for e in d['events'] if e['message'] == 'VM n4 placed on $B by DRS (fully automated; registered on host$F)'][0]" "$(events)")" ] ||
	fail "no n4 event: $(events)"
[[ $out4 == *"VM n4 placed on $B by DRS (fully automated; registered on host$F): $B powers it on"* ]] ||
	fail "n4 power-on through vmkernel: $out4"
[ "$out4" = "VM n4 placed on $B by DRS (fully automated; registered on host$F): $B powers it on." ] ||
	fail "n4 power-on through vmkernel, not one line of the placement: $out4"
gone_f4() { ! kv $F vm info n4 >/dev/null 2>&1; }
until_ok 10 gone_f4 || fail "host$F still registers n4"
echo "n4: vmkernel's power-on on host$F ($out4), placed on and running once on $B"
# the same with --json: vm, placed, host and its id, the placement's words
mkvm $F n7
j=$(kv $F --json vm power-on n7 --cluster-socket "$T/none.sock") ||
	fail "power-on n7 --json through vmkernel: $j"
C7=$(py 'd["host"]' "$j")
[ "$(py "(d['vm'], d['placed'], d['host'] in ('host1', 'host2', 'host3'), d['host'] != 'host$F', d['pid'])" "$j")" = \
  "('n7', True, True, True, 0)" ] || fail "power-on n7 --json through vmkernel: $j"
[ "$(py 'd["placement"]' "$j")" = "VM n7 placed on $C7 by DRS (fully automated; registered on host$F)" ] ||
	fail "n7 placement --json: $j"
[ "$(py 'd["host_id"]' "$j")" = "$(py "[h['id'] for h in d['hosts'] if h['name'] == '$C7'][0]" "$(st "$L")")" ] ||
	fail "n7 host_id --json: $j"
reg_is() { [ "$(reg "$1")" = "$2" ]; } # NAME WANT (a status read may fail on a loaded machine)
until_ok 5 reg_is n7 "$C7 2 on" || fail "n7 registry: $(reg n7)"
until_ok 20 runs_once n7 "${C7#host}" 2 || fail "n7 not running once on $C7: $(reg n7)"
echo "n7: vmkernel's power-on --json on host$F placed it on $C7"

# ---- hostd's PowerOnVm on the loaded host: a Task that succeeds, naming the other host ---------
if /usr/bin/python3 -c 'import grpc' 2>/dev/null && command -v protoc >/dev/null &&
	[ -x /usr/bin/grpc_python_plugin ]; then
	mkdir -p "$T/stubs"
	protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
		--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto || fail "protoc"
	cluster_cert() { grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$F/hostd.out" 2>/dev/null; }
	until_ok 15 cluster_cert || fail "hostd on host$F does not serve the cluster's certificate"
	mkvm $F n5
	t0=$(now_ms)
	got=$(nsenter --net="/run/netns/$prefix-lab-host$F" timeout 120 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/drs_placement_api.py" "$T/stubs" "$LAB/hosts/host1/ca.crt" \
		"$pwfile" 198.18.0.$F 8443 "host$F" n5 2>&1) || fail "drs_placement_api.py: $got"
	echo "$got"
	[ "$(echo "$got" | tail -1)" = ok ] || fail "drs_placement_api.py did not finish: $got"
	C5=$(echo "$got" | sed -n 's/^placed on //p')
	[ -n "$C5" ] && [ "$C5" != "host$F" ] || fail "PowerOnVm placed n5 on '$C5'"
	until_ok 5 reg_is n5 "$C5 2 on" || fail "n5 registry: $(reg n5)"
	until_ok 20 runs_once n5 "${C5#host}" 2 || fail "n5 not running once on $C5: $(reg n5)"
	t_run=$(($(now_ms) - t0))
	[ -n "$(py "[e['message'] for e in d['events'] if e['message'] == 'VM n5 placed on $C5 by DRS (fully automated; registered on host$F)'][0]" "$(events)")" ] ||
		fail "no n5 event: $(events)"
	grep -q "PowerOnVm (vm-$(uuid_of n5)) by root: success" "$LAB/hosts/host$F/hostd.out" ||
		fail "hostd's log has no successful PowerOnVm of n5"
	echo "n5: hostd's PowerOnVm on host$F succeeded, placed on and running once on $C5 (client start to running, checked on every host: $t_run ms)"
	# keel through hostd's API prints the task's words, exit 0
	SRV=https://198.18.0.$F:8443
	k() { nsenter --net="/run/netns/$prefix-lab-host$F" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" "$@"; }
	k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null ||
		fail "keel login to host$F's API"
	mkvm $F n6
	out6=$(k --server "$SRV" vm power-on n6 2>&1) || fail "keel --server vm power-on n6: $out6"
	C6=
	reg6() { C6=$(reg n6) && C6=${C6%% *} && [ -n "$C6" ]; }
	until_ok 5 reg6 || fail "n6 registry: $(reg n6)"
	[ "$C6" != "host$F" ] || fail "n6 not placed off host$F: $(reg n6)"
	[ "$(echo "$out6" | tail -1)" = "VM n6 placed on $C6 by DRS (fully automated; registered on host$F): $C6 powers it on." ] ||
		fail "keel --server vm power-on n6: $out6"
	until_ok 5 reg_is n6 "$C6 2 on" || fail "n6 registry: $(reg n6)"
	until_ok 20 runs_once n6 "${C6#host}" 2 || fail "n6 not running once on $C6: $(reg n6)"
	echo "n6: keel --server power-on on host$F: $(echo "$out6" | tail -1)"
	for n in n5 n6; do
		o=$(reg $n)
		o=${o%% *}
		kv "${o#host}" vm power-off $n >/dev/null 2>&1 || true
	done
else
	echo "SKIP (part): hostd's PowerOnVm needs /usr/bin/python3 with grpc, protoc and grpc_python_plugin"
fi
kv "${C7#host}" vm power-off n7 >/dev/null 2>&1 || true

# ---- a must rule no host can keep: refused, nothing changes -------------------------------------
mkvm $F n3
kc "$L" rule add apart3 --kind anti-affinity --must --vm n3 --vm l1 --vm n1 --vm n2 >/dev/null ||
	fail "rule add apart3"
seq0=$(py 'max([e["seq"] for e in d["events"]] + [0])' "$(events)")
expect_fail 1 kv $F vm power-on n3
[[ $msg == *"no host fits VM n3"* && $msg == *"rule apart3 (must run apart) rules out 3 hosts"* ]] ||
	fail "impossible rule refusal: $msg"
sleep 1
[ "$(reg n3)" = "host$F 1 off" ] || fail "n3 changed: $(reg n3)"
[ "$(power_state $F n3)" = poweredOff ] || fail "n3 not off on host$F"
[ "$(vmx_count n3)" = 0 ] || fail "n3 has a vmx"
[ "$(py "[e['message'] for e in d['events'] if e['seq'] > $seq0 and 'n3' in e['message']]" "$(events)")" = "[]" ] ||
	fail "events after the refusal: $(events)"
echo "n3: refused ($msg)"

# ---- --host: explicit, from a follower; refused against a must rule ---------------------------------
expect_fail 1 kv $F vm power-on n3 --host host$P
[[ $msg == *"VM n3 cannot power on on host$P"* && $msg == *"rule apart3 (must run apart)"* ]] ||
	fail "--host against apart3: $msg"
expect_fail 1 kv $F vm power-on n3 --host host9
[[ $msg == *"no host host9 in the cluster"* ]] || fail "--host host9: $msg"
expect_fail 2 kv $F vm power-on n3 --host
[ "$(reg n3)" = "host$F 1 off" ] || fail "n3 changed by refusals: $(reg n3)"
kc "$L" rule remove apart3 >/dev/null || fail "rule remove apart3"
j=$(kv $FOL --json vm power-on n3 --host host$F) || fail "power-on n3 --host host$F on host$FOL: $j"
[ "$(py "(d['vm'], d['host'], d['placed'])" "$j")" = "('n3', 'host$F', True)" ] || fail "power-on n3 --host: $j"
# the follower forwards the leader's answer whole: the placement's own words, not a guess
[ "$(py 'd["placement"]' "$j")" = "VM n3 placed on host$F by the operator (DRS fully automated)" ] ||
	fail "power-on n3 --host from host$FOL: not the placement's words: $j"
[ "$(reg n3)" = "host$F 2 on" ] || fail "n3 registry: $(reg n3)"
until_ok 20 runs_once n3 $F 2 || fail "n3 not running once on host$F: $(reg n3)"
[ -n "$(py "[e['message'] for e in d['events'] if e['message'] == 'VM n3 placed on host$F by the operator (DRS fully automated)'][0]" "$(events)")" ] ||
	fail "no n3 event: $(events)"
echo "n3: --host host$F from host$FOL"

# ---- manual: powered on where it is registered, with DRS's recommendation -----------------------
kc "$L" drs set --automation manual >/dev/null || fail "drs set manual"
man() { [ "$(py 'd["automation"]' "$(kc $F --json drs status)")" = manual ]; }
until_ok 5 man || fail "not manual: $(kc $F drs status)"
mkvm $F m1
out=$(kv $F vm power-on m1) || fail "power-on m1: $out"
[[ $out == *"Powered on VM m1 on host$F (vmx pid "* ]] || fail "power-on m1: $out"
[[ $out == *"DRS recommends host"*" for VM m1 (manual automation: it powers on on host$F, where it is registered)"* ]] ||
	fail "no recommendation: $out"
[[ $out == *"DRS recommends host$F "* ]] && fail "recommends the loaded host: $out"
[ "$(reg m1)" = "host$F 1 on" ] || fail "m1 registry: $(reg m1)"
until_ok 10 runs_once m1 $F 1 || fail "m1 not running once on host$F"
echo "manual: $out"
# a must rule against its own host refuses it, with the rule's name
mkvm $F m2
kc "$L" rule add away --kind host-anti-affinity --must --vm m2 --host host$F >/dev/null || fail "rule add away"
expect_fail 1 kv $F vm power-on m2
[[ $msg == *"VM m2 cannot power on on host$F"* && $msg == *"rule away (must not run on the host group)"* ]] ||
	fail "manual against rule away: $msg"
[ "$(reg m2)" = "host$F 1 off" ] || fail "m2 changed: $(reg m2)"
j=$(kv $F --json vm power-on m2 --host host$P) || fail "power-on m2 --host host$P: $j"
[ "$(py "(d['host'], d['placed'])" "$j")" = "('host$P', True)" ] || fail "power-on m2 --host: $j"
until_ok 20 runs_once m2 $P 2 || fail "m2 not running once on host$P: $(reg m2)"
echo "PASS"
