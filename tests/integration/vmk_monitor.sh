# VM monitoring (kernel/vm/monitor.c) through keel on one vmkernel: a kguest VM whose
# heartbeats stop (the agent line "set hb_ms=0", as a hung guest) is reset after the
# timeout and beats again; the hourly limit is kept (the VM is left running, the state says
# so); a VM without monitoring is never reset; settings live in the .vmx; bad values refused.
source "$(dirname "$0")/common.bash"
need_kvm
start_vmkernel

mon() { json_field "$(keel --json vm info "$1")" "$2"; }
mstate() { keel --json vm info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vms"][0]["monitor"]["'"$2"'"])'; }
ups() { grep -c "kguest: up" "$T/state/datastore1/$1/console.log" 2>/dev/null || echo 0; }
wait_state() { # VM STATE SECONDS
	for _ in $(seq $(($3 * 10))); do
		[ "$(mstate "$1" state)" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$1: monitor state '$(mstate "$1" state)', expected '$2'"
}

for vm in mon1 plain1; do
	keel vm create $vm --memory 64 --vcpus 1 --cmdline "counter_ms=200 hb_ms=100" >/dev/null ||
		fail "create $vm"
done
keel vm monitor mon1 --on --heartbeat-timeout 0 >/dev/null 2>&1 && fail "--heartbeat-timeout 0 accepted"
keel vm monitor mon1 --on --max-resets 101 >/dev/null 2>&1 && fail "--max-resets 101 accepted"
keel vm monitor mon1 --on --heartbeat-timeout 2 --max-resets 2 >/dev/null || fail "monitor --on"
grep -qi '^vmMonitoring.enabled = "TRUE"' "$T/state/datastore1/mon1/mon1.vmx" ||
	fail "the setting is not in the .vmx: $(cat "$T/state/datastore1/mon1/mon1.vmx")"
grep -q '^vmMonitoring.timeout = "2"' "$T/state/datastore1/mon1/mon1.vmx" || fail "timeout not in .vmx"
[ "$(mstate plain1 enabled)" = False ] || fail "plain1 monitored by default"

keel vm power-on mon1 >/dev/null || fail "power-on mon1"
keel vm power-on plain1 >/dev/null || fail "power-on plain1"
wait_state mon1 watching 10
uuid1=$(mon mon1 uuid)
uuid2=$(mon plain1 uuid)
CTL1=$T/state/run/$uuid1.ctl
CTL2=$T/state/run/$uuid2.ctl

hang() { "$VMXCTL" "$1" agent-send "set hb_ms=0" >/dev/null || fail "agent-send to $1"; }

# 1: the guest hangs → reset after ~2 s, boots, beats again
u0=$(ups mon1)
t0=$(date +%s%N)
hang "$CTL1"
hang "$CTL2"
for _ in $(seq 100); do [ "$(ups mon1)" -gt "$u0" ] && break; sleep 0.1; done
[ "$(ups mon1)" -gt "$u0" ] || fail "mon1 was not reset: $(keel vm monitor mon1)"
dt=$((($(date +%s%N) - t0) / 1000000))
[ "$dt" -ge 1500 ] || fail "reset after only $dt ms (timeout 2 s)"
[ "$(mstate mon1 resets_last_hour)" = 1 ] || fail "resets_last_hour $(mstate mon1 resets_last_hour)"
[[ "$(mon mon1 last_event)" == *"reset by VM monitoring"* ]] || fail "last event: $(mon mon1 last_event)"
grep -q "VM monitoring: guest heartbeat silent" "$T/state/vmkernel.log" || fail "no log line"
wait_state mon1 watching 10

# 2: a second hang → the second (last allowed) reset
u1=$(ups mon1)
hang "$CTL1"
for _ in $(seq 100); do [ "$(ups mon1)" -gt "$u1" ] && break; sleep 0.1; done
[ "$(ups mon1)" -gt "$u1" ] || fail "mon1 was not reset the second time"
wait_state mon1 "reset limit reached" 10

# 3: a third hang → left running, not reset
u2=$(ups mon1)
sleep 1.5
hang "$CTL1"
sleep 5
[ "$(ups mon1)" = "$u2" ] || fail "reset past the hourly limit"
[ "$(mon mon1 power_state)" = poweredOn ] || fail "mon1 not running after the limit"
[[ "$(mon mon1 last_event)" == *"not reset"* ]] || fail "limit not in last event: $(mon mon1 last_event)"

# the unmonitored VM has been silent all along and was never reset
[ "$(ups plain1)" = 1 ] || fail "plain1 was reset ($(ups plain1) boots)"
[ "$(mstate plain1 state)" = off ] || fail "plain1 state $(mstate plain1 state)"

# text output and turning it off
keel vm monitor mon1 | grep -q "monitoring on" || fail "text output"
keel vm monitor mon1 --off >/dev/null || fail "monitor --off"
[ "$(mstate mon1 enabled)" = False ] || fail "still enabled"
[ "$(mstate mon1 timeout_s)" = 2 ] || fail "--off lost the timeout"
keel vm power-off mon1 >/dev/null
keel vm power-off plain1 >/dev/null
echo "ok: first reset after $dt ms; limit of 2 resets an hour kept"
