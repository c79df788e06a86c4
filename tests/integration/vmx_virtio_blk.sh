# kguest writes a numbered sequence to its virtio disk; a second run of the VM continues
# the sequence where the first stopped, and the host reads every record back intact.
source "$(dirname "$0")/common.bash"
need_kvm

truncate -s 16M "$T/disk.img"
args=(--kernel "$KGUEST" --mem 128M --disk "$T/disk.img")
start_vmx a "${args[@]}" --cmdline "disk_seq=1 disk_ms=10 counter_ms=1000"
wait_for "$T/a.log" "disk seq 30\b"
"$VMXCTL" "$T/a.sock" power-off >/dev/null
wait "$VMX_PID" || true
read -r last1 runs1 < <(python3 "$(dirname "$0")/diskseq_check.py" "$T/disk.img" | tr '=' ' ' | awk '{print $2, $4}')
[ "$runs1" = 1 ] || fail "first run count $runs1"
[ "$last1" -ge 30 ] || fail "only $last1 records after the first run"

start_vmx b "${args[@]}" --cmdline "disk_seq=1 disk_ms=10 counter_ms=1000"
wait_for "$T/b.log" "disk seq header last=$last1 runs=1"
wait_for "$T/b.log" "disk seq $((last1 + 1))\b"
target=$(((last1 + 20) / 10 * 10 + 10)) # kguest prints every tenth record
wait_for "$T/b.log" "disk seq $target\b"
"$VMXCTL" "$T/b.sock" power-off >/dev/null
wait "$VMX_PID" || true
read -r last2 runs2 < <(python3 "$(dirname "$0")/diskseq_check.py" "$T/disk.img" | tr '=' ' ' | awk '{print $2, $4}')
[ "$runs2" = 2 ] || fail "second run count $runs2"
[ "$last2" -ge $((last1 + 20)) ] || fail "sequence did not continue: $last1 then $last2"

# read-only disk: the guest's writes are refused, the image is unchanged
sum=$(md5sum < "$T/disk.img")
start_vmx c --kernel "$KGUEST" --mem 128M --disk "$T/disk.img,ro" --cmdline "disk_seq=1 disk_ms=10"
sleep 0.5
"$VMXCTL" "$T/c.sock" power-off >/dev/null
wait "$VMX_PID" || true
[ "$(md5sum < "$T/disk.img")" = "$sum" ] || fail "a read-only disk was written"
echo "ok: run 1 wrote $last1 records, run 2 continued to $last2"
