# Runs every fuzz target over real seeds (a saved VM state, control frames, guest ELFs)
# for a bounded number of seeded mutations; any crash or sanitizer report fails.
# Replay one with: $BUILD/fuzz/fuzz_NAME -s SEED -n N SEEDS...
source "$(dirname "$0")/common.bash"
need_kvm
F=$PWD/$BUILD/fuzz
ITER=${KEEL_FUZZ_ITERATIONS:-400}
SEED=${KEEL_FUZZ_SEED:-$(date +%s)}

# a real state: the counter payload, saved while running
start_vmx s --kernel "$PWD/$BUILD/guest/payload_counter.elf" --mem 64M --test-port
sleep 0.05
"$VMXCTL" "$T/s.sock" save "$T/seed.vmss" >/dev/null || fail "save"
"$VMXCTL" "$T/s.sock" power-off >/dev/null || true

# control frames: status, save with a path, agent-send, and two frames back to back
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def frame(b): return struct.pack(">I", len(b)) + b
status = bytes([0x4a, 0x00])
save = bytes([0x32, 0x07, 0x0a, 0x05]) + b"/tmp/x"[:5]
agent = bytes([0x52, 0x06, 0x0a, 0x04]) + b"csum"
open(f"{t}/f1", "wb").write(frame(status))
open(f"{t}/f2", "wb").write(frame(save) + frame(agent))
open(f"{t}/f3", "wb").write(frame(agent) * 3)
PY

run() {
	local name=$1
	shift
	"$F/$name" -n "$ITER" -s "$SEED" "$@" >"$T/$name.log" 2>&1 || fail "$name crashed (seed $SEED): $(tail -5 "$T/$name.log")"
	grep -q "fuzz: done" "$T/$name.log" || fail "$name did not finish (seed $SEED)"
}
run fuzz_state "$T/seed.vmss"
run fuzz_ctl "$T/f1" "$T/f2" "$T/f3"
run fuzz_elf "$PWD/$BUILD/guest/payload_report.elf" "$PWD/$BUILD/guest/payload_smp.elf"
echo "ok: $ITER mutations per target, seed $SEED"
