# A running kguest is saved, its vmx ends, a new vmx restores it: the console counter and
# the checksum of its working set continue, and the guest did not boot again.
source "$(dirname "$0")/common.bash"
need_kvm

start_vmx src --kernel "$KGUEST" --mem 256M \
	--cmdline "counter_ms=50 hb_ms=20 dirty_mib_s=64 dirty_ws_mib=32 fill_mib=32"
wait_for "$T/src.log" "counter 5"
agent_ask src "set dirty_mib_s=0" "ok|set" >/dev/null
sleep 0.2
before=$(agent_ask src csum "^csum ")
"$VMXCTL" "$T/src.sock" pause >/dev/null
"$VMXCTL" "$T/src.sock" save "$T/vm.vmss" || fail "save failed"
last=$(grep -Eo 'counter [0-9]+' "$T/src.log" | tail -1 | awk '{print $2}')
"$VMXCTL" "$T/src.sock" power-off >/dev/null
wait "$VMX_PID" || true

start_vmx dst --kernel "$KGUEST" --mem 256M --paused
"$VMXCTL" "$T/dst.sock" restore "$T/vm.vmss" || fail "restore failed"
"$VMXCTL" "$T/dst.sock" resume >/dev/null
wait_for "$T/dst.log" "counter $((last + 2))"
after=$(agent_ask dst csum "^csum ")
[ "$before" = "$after" ] || fail "working set checksum changed: $before -> $after"
grep -q "kguest: up" "$T/dst.log" && fail "the restored guest booted again"
first=$(grep -Eo 'counter [0-9]+' "$T/dst.log" | head -1 | awk '{print $2}')
[ "$first" -gt "$last" ] || fail "counter went back: $last then $first"
hb=$("$VMXCTL" --json "$T/dst.sock" stats | grep -Eo '"heartbeat_seq":[0-9]+' | cut -d: -f2)
[ "$hb" -gt 0 ] || fail "no heartbeat after restore"
"$VMXCTL" "$T/dst.sock" power-off >/dev/null
wait "$VMX_PID" || fail "vmx did not exit cleanly after power-off"
echo "ok: counter $last -> $first, checksum $before"
