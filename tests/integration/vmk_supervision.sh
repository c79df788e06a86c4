# Worlds: a vmx killed with SIGKILL is reported (its VM powered off with the reason) while
# vmkernel and the other VM carry on; vmkernel killed with SIGKILL and started again
# re-adopts the VM that kept running, and can power it off.
source "$(dirname "$0")/common.bash"
need_kvm
start_vmkernel

for vm in a b; do
	keel vm create $vm --memory 64 --cmdline "counter_ms=100" >/dev/null || fail "create $vm"
	keel vm power-on $vm >/dev/null || fail "power-on $vm"
done
pid_a=$(json_field "$(keel --json vm info a)" pid)
pid_b=$(json_field "$(keel --json vm info b)" pid)
[ "$pid_a" -gt 0 ] && [ "$pid_b" -gt 0 ] || fail "no vmx pids: $pid_a $pid_b"

kill -9 "$pid_a"
for _ in $(seq 100); do
	[ "$(json_field "$(keel --json vm info a)" power_state)" = poweredOff ] && break
	sleep 0.05
done
info=$(keel --json vm info a)
[ "$(json_field "$info" power_state)" = poweredOff ] || fail "killed VM not reported: $info"
[[ $(json_field "$info" last_event) == *"signal 9"* ]] || fail "no reason: $info"
keel host log --lines 50 | grep -q "signal 9" || fail "the kill is not in the vmkernel log"
[ "$(json_field "$(keel --json vm info b)" power_state)" = poweredOn ] || fail "b disturbed"
kill -0 "$pid_b" || fail "b's vmx died"

# vmkernel dies; b keeps running; a new vmkernel re-adopts it
kill -9 "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
sleep 0.3
kill -0 "$pid_b" || fail "b's vmx died with vmkernel"
CON=$T/state/datastore1/b/console.log
n=$(grep -c counter "$CON")
sleep 0.5
[ "$(grep -c counter "$CON")" -gt "$n" ] || fail "b stopped running while vmkernel was down"
start_vmkernel
info=$(keel --json vm info b)
[ "$(json_field "$info" power_state)" = poweredOn ] || fail "b not re-adopted: $info"
[ "$(json_field "$info" pid)" = "$pid_b" ] || fail "b re-adopted with another pid: $info"
[[ $(json_field "$info" last_event) == *"re-adopted"* ]] || fail "no re-adoption event: $info"
[ "$(json_field "$(keel --json vm info a)" power_state)" = poweredOff ] || fail "a came back"
# the re-adopted VM is supervised: a kill is noticed, and it can be powered on again
kill -9 "$pid_b"
for _ in $(seq 100); do
	[ "$(json_field "$(keel --json vm info b)" power_state)" = poweredOff ] && break
	sleep 0.05
done
[ "$(json_field "$(keel --json vm info b)" power_state)" = poweredOff ] || fail "re-adopted b's death unnoticed"
keel vm power-on b >/dev/null || fail "power-on b again"
keel vm power-off b >/dev/null || fail "power-off b"
echo "ok: killed vmx reported, vmkernel restart re-adopted pid $pid_b"
