# The lab (docs/lab.md) end to end: `keel lab up 3` in a private directory makes three
# hosts whose vmkernels answer, with their vSwitches, portgroups, VMkernel adapters and
# the shared datastore; a kguest VM runs on host2; host-kill takes host2 down for good
# (its vmx too) until host-start; a vmkernel killed behind the lab's back is restarted by
# the supervisor; host-isolate/heal flip the management uplink; `up` again changes
# nothing; `down` removes every bridge, namespace, veth, process, mount and the directory;
# and `down` after a simulated crash (supervisor and vmkernels SIGKILLed, a loop-mounted
# shared datastore, a running VM) still cleans up.
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }

LAB=$T/lab
LAB2=$T/lab2
LAB3=$T/lab3
lab() { "$KEEL_BIN" lab "$@"; }
hk() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/$h/vmkernel.sock" "$@"; }
lab_cleanup() {
	set +e
	for d in "$LAB" "$LAB2" "$LAB3"; do
		[ -d "$d" ] && cp "$d/lab.log" "$T/$(basename "$d").log" 2>/dev/null
		"$KEEL_BIN" lab down --dir "$d" >/dev/null 2>&1
	done
	cleanup
}
trap lab_cleanup EXIT

# py EXPR JSON: evaluates a Python expression over the parsed JSON text (as d).
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

# dead PID: the process is gone or a zombie waiting for its parent.
dead() {
	local s
	s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -z "$s" ] || [ "$s" = Z ]
}

# gone PREFIX DIR: nothing of the lab with that prefix and directory is left.
gone() {
	local prefix=$1 dir=$2
	! ip -o link show | grep -q -- " $prefix-" || fail "links of $prefix left: $(ip -o link show | grep -- " $prefix-")"
	! ip netns list | grep -q -- "^$prefix-" || fail "namespaces of $prefix left"
	! grep -q -- " $dir" /proc/mounts || fail "mounts under $dir left"
	left=$(python3 -c 'import os,sys
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != os.getpid():
        try: c = open("/proc/%s/cmdline" % p, "rb").read().decode(errors="replace")
        except OSError: continue
        if sys.argv[1] in c: print(p, c.replace("\0", " "))' "$dir")
	[ -z "$left" ] || fail "processes of $dir left: $left"
	[ ! -e "$dir" ] || fail "$dir left"
}

# Usage and missing-lab errors.
rc=0; lab up 0 --dir "$LAB" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "up 0: exit $rc, want 2"
rc=0; lab status --dir "$LAB" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "status without a lab: exit $rc, want 1"
out=$(lab down --dir "$LAB") || fail "down without a lab failed"
[[ $out == "No lab"* ]] || fail "down without a lab: $out"

# up 3
start=$(date +%s%N)
out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
echo "up 3: $((($(date +%s%N) - start) / 1000000)) ms"
prefix=$(py 'd["prefix"]' "$out")
[ -n "$prefix" ] || fail "no prefix: $out"
st=$(lab status --dir "$LAB" --json) || fail "status"
[ "$(py 'len(d["hosts"])' "$st")" = 3 ] || fail "not 3 hosts: $st"
[ "$(py 'all(h["vmkernel_answers"] and h["netns_present"] for h in d["hosts"])' "$st")" = True ] ||
	fail "a vmkernel does not answer: $st"
[ "$(py 'd["supervisor"]["running"]' "$st")" = True ] || fail "no supervisor: $st"
[ "$(py '[b["state"] for b in d["bridges"]]' "$st")" = "['up', 'up', 'up']" ] || fail "bridges: $st"
# the shared datastore is in memory unless asked otherwise
[ "$(py 'd["shared_datastore"]' "$st")" = memory ] || fail "shared datastore kind: $st"
grep -q " $LAB/shared tmpfs " /proc/mounts || fail "shared datastore: no tmpfs on $LAB/shared"
lab status --dir "$LAB"

for h in host1 host2 host3; do
	vs=$(hk $h --json network vswitch list) || fail "$h vswitch list"
	[ "$(py '{v["name"]: v["uplinks"] for v in d["vswitches"]}' "$vs")" = \
		"{'vSwitch0': ['vmnic0'], 'vSwitch1': ['vmnic1'], 'vSwitch2': ['vmnic2']}" ] ||
		fail "$h vSwitches: $vs"
	pg=$(hk $h --json network portgroup list) || fail "$h portgroup list"
	[ "$(py 'sorted(p["name"] for p in d["portgroups"])' "$pg")" = \
		"['FT Logging', 'Management Network', 'VM Network', 'VMotion']" ] || fail "$h portgroups: $pg"
	ds=$(hk $h --json datastore list) || fail "$h datastore list"
	[ "$(py 'sorted((x["name"], x["shared"], x["path"]) for x in d["datastores"])' "$ds")" = \
		"[('datastore1', False, '$LAB/hosts/$h/datastore1'), ('shared1', True, '$LAB/shared')]" ] ||
		fail "$h datastores: $ds"
done
# The VMkernel adapters, when this vmkernel has them.
if vn=$(hk host2 --json network vmknic list 2>/dev/null); then
	[ "$(py 'sorted((n["name"], n["ipv4"], n["netstack"]) for n in d["vmknics"])' "$vn")" = \
		"[('vmk0', '198.18.0.2', 'defaultTcpipStack'), ('vmk1', '198.19.1.2', 'vmotion'), ('vmk2', '198.19.2.2', 'defaultTcpipStack')]" ] ||
		fail "host2 vmknics: $vn"
else
	echo "note: this keel has no 'network vmknic list'; VMkernel adapters not checked"
fi

# A kguest VM on host2.
hk host2 vm create web1 --memory 64 --cmdline "counter_ms=100" --nic "VM Network" >/dev/null ||
	fail "vm create on host2"
hk host2 vm power-on web1 >/dev/null || fail "power-on on host2"
vmx_pid=$(json_field "$(hk host2 --json vm info web1)" pid)
[ "$vmx_pid" -gt 0 ] && kill -0 "$vmx_pid" || fail "web1's vmx does not run"
vmk2=$(py 'd["hosts"][1]["daemons"][0]["pid"]' "$st")

# host-kill host2: its vmkernel and vmx die and stay dead.
lab host-kill host2 --dir "$LAB" >/dev/null || fail "host-kill"
dead "$vmk2" || fail "host2's vmkernel survived host-kill"
dead "$vmx_pid" || fail "host2's vmx survived host-kill"
sleep 1.5
st=$(lab status --dir "$LAB" --json)
[ "$(py '(d["hosts"][1]["state"], d["hosts"][1]["daemons"][0]["running"])' "$st")" = "('killed', False)" ] ||
	fail "host2 came back after host-kill: $st"
[ "$(py 'd["hosts"][0]["vmkernel_answers"] and d["hosts"][2]["vmkernel_answers"]' "$st")" = True ] ||
	fail "other hosts disturbed: $st"

# host-start host2: vmkernel back; the killed VM is powered off with the reason.
lab host-start host2 --dir "$LAB" >/dev/null || fail "host-start"
info=$(hk host2 --json vm info web1) || fail "host2 does not answer after host-start"
[ "$(json_field "$info" power_state)" = poweredOff ] || fail "web1 re-adopted: $info"
[ -n "$(json_field "$info" last_event)" ] || fail "web1 has no event: $info"

# A vmkernel killed behind the lab's back is restarted by the supervisor.
st=$(lab status --dir "$LAB" --json)
vmk1=$(py 'd["hosts"][0]["daemons"][0]["pid"]' "$st")
kill -9 "$vmk1"
t0=$(date +%s%N)
for _ in $(seq 40); do
	hk host1 host info >/dev/null 2>&1 && break
	sleep 0.05
done
hk host1 host info >/dev/null 2>&1 || fail "host1's vmkernel was not restarted within 2 s"
echo "vmkernel restarted after $((($(date +%s%N) - t0) / 1000000)) ms"
grep -q "host1: vmkernel (pid $vmk1) killed by signal 9" "$LAB/lab.log" || fail "restart not logged"
new=$(py 'd["hosts"][0]["daemons"][0]["pid"]' "$(lab status --dir "$LAB" --json)")
[ "$new" != "$vmk1" ] && [ "$new" -gt 0 ] || fail "no new vmkernel pid: $new"

# operstate_is LINK STATE: waits up to 2 s (the kernel reports carrier changes late).
operstate_is() {
	for _ in $(seq 40); do
		[ "$(cat "/sys/class/net/$1/operstate")" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# host-isolate / host-heal flip the root end of the management uplink.
lab host-isolate host3 --dir "$LAB" >/dev/null || fail "host-isolate"
operstate_is "$prefix-h3n0" down || fail "uplink still up"
[ "$(py 'd["hosts"][2]["isolated"]' "$(lab status --dir "$LAB" --json)")" = True ] || fail "not isolated"
operstate_is "$prefix-h3n1" up || fail "vMotion uplink cut too"
lab host-heal host3 --dir "$LAB" >/dev/null || fail "host-heal"
operstate_is "$prefix-h3n0" up || fail "uplink not restored"

# up again: nothing changes.
before=$(lab status --dir "$LAB" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["supervisor"]["pid"], [h["daemons"][0]["pid"] for h in d["hosts"]])')
lab up 3 --dir "$LAB" >/dev/null || fail "second up"
after=$(lab status --dir "$LAB" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["supervisor"]["pid"], [h["daemons"][0]["pid"] for h in d["hosts"]])')
[ "$before" = "$after" ] || fail "second up changed pids: $before -> $after"
[ "$(hk host2 --json vm list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["vms"]))')" = 1 ] ||
	fail "second up changed host2's VMs"

# down removes everything.
cp "$LAB/lab.log" "$T/lab.log"
lab down --dir "$LAB" || fail "down"
gone "$prefix" "$LAB"

# down after a crash: supervisor and vmkernels SIGKILLed, a VM running, a loop mount.
out=$(lab up 2 --dir "$LAB2" --shared-datastore-size 64M --json) || fail "up 2: $out"
prefix2=$(py 'd["prefix"]' "$out")
grep -q " $LAB2/shared ext4 " /proc/mounts || fail "shared datastore not loop-mounted"
[ "$(py 'd["shared_datastore"]' "$(lab status --dir "$LAB2" --json)")" = image ] ||
	fail "shared datastore kind of LAB2"
out=$(lab up 1 --dir "$LAB2" --shared-datastore-on-disk 2>&1) || fail "up again, on-disk: $out"
[[ $out == *"the shared datastore exists; --shared-datastore-on-disk is ignored"* ]] ||
	fail "up again with another kind of datastore: $out"
"$KEEL_BIN" --socket "$LAB2/hosts/host1/vmkernel.sock" vm create c1 --memory 64 \
	--datastore shared1 --cmdline counter_ms=100 >/dev/null || fail "create on shared1"
"$KEEL_BIN" --socket "$LAB2/hosts/host1/vmkernel.sock" vm power-on c1 >/dev/null ||
	fail "power-on on shared1"
st=$(lab status --dir "$LAB2" --json)
kill -9 $(py '" ".join(str(p) for p in [d["supervisor"]["pid"]] + [h["daemons"][0]["pid"] for h in d["hosts"]])' "$st")
lab down --dir "$LAB2" || fail "down after a crash"
gone "$prefix2" "$LAB2"
lab down --dir "$LAB2" >/dev/null || fail "down twice"

# the shared datastore as a plain directory on DIR's filesystem; the two kinds together refused
set +e
out=$(lab up 1 --dir "$LAB3" --shared-datastore-on-disk --shared-datastore-size 64M 2>&1)
rc=$?
set -e
[ "$rc" = 2 ] && [[ $out == *"two different datastores"* ]] || fail "both kinds: exit $rc: $out"
[ ! -e "$LAB3" ] || fail "a refused up made $LAB3"
out=$(lab up 1 --dir "$LAB3" --shared-datastore-on-disk --json) || fail "up on-disk: $out"
[ "$(py 'd["shared_datastore"]' "$(lab status --dir "$LAB3" --json)")" = directory ] ||
	fail "shared datastore kind of LAB3"
! grep -q " $LAB3/shared " /proc/mounts || fail "LAB3's shared datastore is a mount"
lab down --dir "$LAB3" >/dev/null || fail "down LAB3"
echo "ok: lab up/status/host-kill/host-start/isolate/heal/down, prefix $prefix"
