# vmkernel + vmx + kguest driven through keel: create, power on, the console counter, the
# guest answering over the portgroup's bridge, the disk sequence across power-off/on,
# suspend/resume keeping the counter and the memory checksum, reset, destroy.
source "$(dirname "$0")/common.bash"
need_kvm
start_vmkernel

keel vm create web1 --memory 128 --vcpus 1 --disk 16 --nic "VM Network" \
	--cmdline "counter_ms=100 hb_ms=50 ip=198.18.20.2 disk_seq=1 disk_ms=20 fill_mib=8" \
	>/dev/null || fail "create"
keel vm create web1 --memory 128 >/dev/null 2>&1 && fail "a second VM named web1 was created"
keel vm power-on web1 >/dev/null || fail "power-on"
out=$(keel --json vm info web1)
[ "$(json_field "$out" power_state)" = poweredOn ] || fail "not powered on: $out"
CON=$T/state/datastore1/web1/console.log
wait_for "$CON" "counter 3"
keel vm console web1 --no-follow | grep -q "kguest: up" || fail "console tail lacks the boot line"

# the network: the host side of the portgroup answers kguest's UDP echo
ip -n "$NS" addr add 198.18.20.1/24 dev vSwitch0
echo_out=$(ip netns exec "$NS" python3 "$(dirname "$0")/udp_echo_client.py" 198.18.20.2 7 50 1.0)
[[ $echo_out == *"replies=50 lost=0"* ]] || fail "UDP echo over the portgroup: $echo_out"

# disk sequence across a power cycle
wait_for "$CON" "disk seq 30\b"
keel vm power-off web1 >/dev/null || fail "power-off"
[ "$(json_field "$(keel --json vm info web1)" power_state)" = poweredOff ] || fail "still on"
keel vm power-on web1 >/dev/null || fail "power-on 2"
wait_for "$CON" "disk seq header last=[0-9]+ runs=1"
last=$(grep -Eo 'disk seq header last=[0-9]+' "$CON" | tail -1 | cut -d= -f2)
[ "$last" -ge 30 ] || fail "disk sequence did not persist: last=$last"

# suspend/resume: counter continues, working-set checksum unchanged
wait_for "$CON" "fill done"
uuid=$(json_field "$(keel --json vm info web1)" uuid)
CTL=$T/state/run/$uuid.ctl
"$VMXCTL" "$CTL" agent-send "set disk_seq=0" >/dev/null
csum() {
	"$VMXCTL" "$CTL" agent-recv >/dev/null
	"$VMXCTL" "$CTL" agent-send csum >/dev/null
	for _ in $(seq 100); do
		l=$("$VMXCTL" "$CTL" agent-recv | grep '^csum ' || true)
		[ -n "$l" ] && { echo "$l"; return; }
		sleep 0.05
	done
}
sum1=$(csum)
[ -n "$sum1" ] || fail "no checksum before suspend"
before=$(grep -Eo 'counter [0-9]+' "$CON" | tail -1 | awk '{print $2}')
keel vm suspend web1 >/dev/null || fail "suspend"
[ "$(json_field "$(keel --json vm info web1)" power_state)" = suspended ] || fail "not suspended"
[ -f "$T/state/datastore1/web1/web1.vmss" ] || fail "no suspend file on the datastore"
keel vm resume web1 >/dev/null || fail "resume"
wait_for "$CON" "counter $((before + 3))\b"
sum2=$(csum)
[ "$sum1" = "$sum2" ] || fail "checksum changed across suspend/resume: $sum1 / $sum2"
[ "$(grep -c "kguest: up" "$CON")" = 2 ] || fail "the guest booted again on resume"

ups=$(grep -c "kguest: up" "$CON")
keel vm reset web1 >/dev/null || fail "reset"
for _ in $(seq 100); do [ "$(grep -c "kguest: up" "$CON")" -gt "$ups" ] && break; sleep 0.05; done
[ "$(grep -c "kguest: up" "$CON")" -gt "$ups" ] || fail "reset did not reboot the guest"
keel vm destroy web1 >/dev/null 2>&1 && fail "destroyed a powered-on VM"
keel vm power-off web1 >/dev/null || fail "power-off 3"
keel vm destroy web1 >/dev/null || fail "destroy"
[ -d "$T/state/datastore1/web1" ] && fail "destroy left the VM directory"
[ -z "$(ip -n "$NS" -o link show type tun 2>/dev/null)" ] || fail "taps left behind"
echo "ok: echo $echo_out; disk last=$last; counter $before -> resumed; $sum1"
