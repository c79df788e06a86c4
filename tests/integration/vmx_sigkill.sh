# A vmx killed with SIGKILL leaves nothing behind: its guest memory is returned to the
# host, no thread or child survives, and a new vmx starts on the same socket paths.
source "$(dirname "$0")/common.bash"
need_kvm

shmem() { awk '/^Shmem:/ {print $2}' /proc/meminfo; }
base=$(shmem)
start_vmx k --kernel "$KGUEST" --mem 512M --console-sock "$T/k.console" \
	--cmdline "fill_mib=256 counter_ms=100"
wait_for "$T/k.log" "fill done" 20
full=$(shmem)
[ $((full - base)) -gt $((200 * 1024)) ] || fail "guest memory not touched? shmem $base -> $full KiB"
kill -9 "$VMX_PID"
wait "$VMX_PID" 2>/dev/null || true
for ((i = 0; i < 50; i++)); do
	[ $(($(shmem) - base)) -lt $((32 * 1024)) ] && break
	sleep 0.1
done
after=$(shmem)
[ $((after - base)) -lt $((32 * 1024)) ] || fail "guest memory not returned: shmem $base -> $full -> $after KiB"
kill -0 "$VMX_PID" 2>/dev/null && fail "vmx still alive"
[ -z "$(pgrep -f "$T/k.sock" || true)" ] || fail "a process of the killed vmx survives"
# same paths again: stale sockets are taken over
start_vmx k --kernel "$KGUEST" --mem 64M --console-sock "$T/k.console" --cmdline "counter_ms=50"
wait_for "$T/k.log" "counter 1"
"$VMXCTL" "$T/k.sock" status | grep -q running || fail "second vmx not running"
"$VMXCTL" "$T/k.sock" power-off >/dev/null
echo "ok: shmem $base -> $full -> $after KiB"
