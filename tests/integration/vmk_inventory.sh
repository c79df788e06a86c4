# Inventory operations through keel: reconfigure (only when off), unregister and register
# again, a shared datastore (VMs on it, removal refused while they are), and re-adoption's
# safety: a pid record naming a live process that is not this VM's vmx is neither
# adopted nor signalled.
source "$(dirname "$0")/common.bash"
need_kvm
start_vmkernel

mkdir -p "$T/shared"
keel datastore add shared1 "$T/shared" --shared >/dev/null || fail "datastore add"
keel datastore add shared1 "$T/shared" >/dev/null 2>&1 && fail "a duplicate datastore was added"
keel vm create db1 --memory 64 --datastore shared1 --cmdline "counter_ms=100" >/dev/null || fail "create on shared1"
[ -f "$T/shared/db1/db1.vmx" ] || fail "db1.vmx not on the shared datastore"
out=$(keel --json datastore list)
[[ $out == *'"shared1"'* ]] || fail "datastore list: $out"
keel datastore remove shared1 >/dev/null 2>&1 && fail "removed a datastore with a VM on it"

# reconfigure: refused while on, applied while off, persisted in the .vmx
keel vm power-on db1 >/dev/null || fail "power-on"
set +e; keel vm reconfigure db1 --memory 128 >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "reconfigured a powered-on VM"
keel vm power-off db1 >/dev/null
keel vm reconfigure db1 --memory 128 --vcpus 2 --cmdline "counter_ms=50" >/dev/null || fail "reconfigure"
grep -q 'memsize = "128"' "$T/shared/db1/db1.vmx" || fail "memsize not saved: $(cat "$T/shared/db1/db1.vmx")"
info=$(keel --json vm info db1)
[ "$(json_field "$info" memsize_mib)" = 128 ] && [ "$(json_field "$info" numvcpus)" = 2 ] || fail "info after reconfigure: $info"
keel vm power-on db1 >/dev/null || fail "power-on after reconfigure"
wait_for "$T/shared/db1/console.log" "mem=128M vcpus=2"
keel vm power-off db1 >/dev/null

# unregister keeps the files; register brings the VM back with the same uuid
uuid=$(json_field "$info" uuid)
keel vm unregister db1 >/dev/null || fail "unregister"
keel vm info db1 >/dev/null 2>&1 && fail "db1 still registered"
[ -f "$T/shared/db1/db1.vmx" ] || fail "unregister removed files"
keel datastore remove shared1 >/dev/null || fail "remove an empty datastore"
keel datastore add shared1 "$T/shared" --shared >/dev/null || fail "datastore add again"
keel vm register "$T/shared/db1/db1.vmx" >/dev/null || fail "register"
[ "$(json_field "$(keel --json vm info db1)" uuid)" = "$uuid" ] || fail "uuid changed"

# a pid record naming a live process that is not the VM's vmx: not adopted, not killed
sleep 300 &
decoy=$!
PIDS+=("$decoy")
start=$(awk '{print $22}' /proc/$decoy/stat)
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
printf 'pid %d\nstart %s\n' "$decoy" "$start" >"$T/state/run/$uuid.pid"
start_vmkernel
info=$(keel --json vm info db1)
[ "$(json_field "$info" power_state)" = poweredOff ] || fail "adopted a decoy: $info"
kill -0 "$decoy" || fail "vmkernel killed an unrelated process"
[ -f "$T/state/run/$uuid.pid" ] && fail "stale pid record left in place"
keel vm power-on db1 >/dev/null || fail "power-on after the stale record"
keel vm power-off db1 >/dev/null
echo "ok"
