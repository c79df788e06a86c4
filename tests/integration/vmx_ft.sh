# FT between two vmx processes (docs/ft.md), on a bridge in a private network namespace:
# a kguest primary (UDP sequencer on 198.18.0.2, disk sequence, counter) protected by a
# secondary on another tap with the same MAC and its own sparse disk copy.
#   - refusals: a takeover before any checkpoint, ft-in on a vmx that is no secondary, a
#     primary with the wrong key (the secondary refuses the hello and exits 5);
#   - protection: both sides reach "protected", checkpoints flow;
#   - output commit: a client asks the sequencer throughout; the primary is killed with
#     SIGKILL, the secondary takes over from its last checkpoint; every reply's counter is
#     above every earlier one (no reply the VM then forgot), and replies come back;
#   - the disk copy: the sequence on the secondary's disk is intact and went on past the
#     primary's last records without a restart;
#   - the secondary lost: the primary holds its output (the sequencer goes silent) until
#     ft-stop, then runs on unprotected and answers again.
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }

NS=keel-it-ft-$$
ip netns add "$NS" || fail "cannot create a network namespace"
trap 'cleanup; ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
for t in ktap0 ktap1 ktap2; do
	ip -n "$NS" tuntap add dev "$t" mode tap vnet_hdr
	ip -n "$NS" link set "$t" master br0
	ip -n "$NS" link set "$t" up
done
ip -n "$NS" addr add 198.18.0.1/24 dev br0
ip -n "$NS" link set br0 up

MAC=02:4b:45:00:00:02
CMD="ip=198.18.0.2 counter_ms=100 disk_seq=1 disk_ms=20 fill_mib=32"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/badkey"
ID=4b45454c465400000000000000000001
nsx() { ip netns exec "$NS" "$@"; }
vx() { nsx "$VMXCTL" "$@"; }
ftjson() { vx --json ft-status "$T/$1.sock"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
phase_is() { [ "$(field "$(ftjson "$1")" phase)" = "$2" ]; }
until_ok() { # SECONDS CMD...
	local n=$(($1 * 10))
	shift
	for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
	return 1
}
start_ns_vmx() { # NAME ARGS...
	local name=$1
	shift
	# ip netns exec execs vmx: $! is the vmx
	ip netns exec "$NS" "$VMX" --name "$name" --ctl "$T/$name.sock" --console-log "$T/$name.log" \
		--kernel "$KGUEST" --mem 128M "$@" 2>"$T/$name.vmx.log" &
	VMX_PID=$!
	PIDS+=("$VMX_PID")
	until_ok 5 vx "$T/$name.sock" status >/dev/null 2>&1 || fail "vmx $name did not start"
}

truncate -s 16M "$T/p.img" "$T/s.img" "$T/s2.img"

# ---- refusals --------------------------------------------------------------------------------
start_ns_vmx p --net ktap0,mac=$MAC --disk "$T/p.img" --cmdline "$CMD"
P_PID=$VMX_PID
wait_for "$T/p.log" "kguest: fill done" 20
vx ft-in "$T/p.sock" --key-file "$T/key" --id $ID >"$T/out" 2>&1 && fail "ft-in on a primary"
grep -q "not started with --ft-secondary" "$T/out" || fail "ft-in refusal: $(cat "$T/out")"
start_ns_vmx s --net ktap1,mac=$MAC --disk "$T/s.img" --cmdline "$CMD" \
	--ft-secondary 127.0.0.1:29701
S_PID=$VMX_PID
vx ft-takeover "$T/s.sock" --epoch 2 >"$T/out" 2>&1 && fail "a takeover before any checkpoint"
grep -q "nothing to take over" "$T/out" || fail "early takeover refusal: $(cat "$T/out")"
# the wrong key: the secondary refuses the hello, FT fails on both sides, the secondary exits 5
vx ft-in "$T/s.sock" --key-file "$T/key" --id $ID >/dev/null || fail "ft-in"
vx ft-start "$T/p.sock" --to 127.0.0.1:29701 --key-file "$T/badkey" --id $ID >/dev/null ||
	fail "ft-start (bad key) refused at once"
until_ok 10 phase_is p failed || fail "the primary did not fail with the wrong key: $(ftjson p)"
rc=0
wait "$S_PID" || rc=$?
[ "$rc" = 5 ] || fail "the secondary exited with $rc, not 5"
grep -q "MAC" "$T/s.vmx.log" || fail "the secondary's log does not say why: $(tail -3 "$T/s.vmx.log")"
echo "refusals ok: $(field "$(ftjson p)" ft_error)"

# ---- protection --------------------------------------------------------------------------------
start_ns_vmx s --net ktap1,mac=$MAC --disk "$T/s.img" --cmdline "$CMD" \
	--ft-secondary 127.0.0.1:29702
S_PID=$VMX_PID
vx ft-in "$T/s.sock" --key-file "$T/key" --id $ID >/dev/null || fail "ft-in"
vx ft-start "$T/p.sock" --to 127.0.0.1:29702 --key-file "$T/key" --id $ID --epoch-ms 20 \
	>/dev/null || fail "ft-start"
until_ok 20 phase_is p protected || fail "the primary is not protected: $(ftjson p)"
until_ok 5 phase_is s protected || fail "the secondary is not protected: $(ftjson s)"
c1=$(field "$(ftjson p)" checkpoint)
sleep 1
j=$(ftjson p)
c2=$(field "$j" checkpoint)
[ "$c2" -gt "$((c1 + 10))" ] || fail "checkpoints do not flow: $c1 then $c2"
# a protected VM does not migrate (both use the dirty log); FT does not start twice
vx migrate "$T/p.sock" --to 127.0.0.1:29799 --key-file "$T/key" --id $ID >"$T/out" 2>&1 &&
	fail "a migration of a protected VM"
grep -q "FT-protected" "$T/out" || fail "migration refusal: $(cat "$T/out")"
vx ft-start "$T/p.sock" --to 127.0.0.1:29702 --key-file "$T/key" --id $ID >"$T/out" 2>&1 &&
	fail "FT started twice"
grep -q "already on" "$T/out" || fail "second ft-start: $(cat "$T/out")"
echo "protected: checkpoint $c2, pause $(field "$j" last_pause_us) us (max $(field "$j" max_pause_us)), lag $(field "$j" lag_us) us"

# ---- the primary dies; the secondary takes over -----------------------------------------------
nsx python3 "$(dirname "$0")/udp_seq_client.py" 198.18.0.2 8 >"$T/client.out" 2>"$T/client.err" &
CLIENT=$!
sleep 2.5
kill -9 "$P_PID"
seq_before=$(grep "disk seq" "$T/p.log" | tail -1 | sed 's/.*disk seq \([0-9]*\).*/\1/')
wait "$P_PID" 2>/dev/null || true
until_ok 10 phase_is s lost || fail "the secondary did not notice: $(ftjson s)"
vx ft-takeover "$T/s.sock" --epoch 2 >"$T/out" 2>&1 || fail "takeover: $(cat "$T/out")"
wait "$CLIENT" || fail "the output-commit check: $(cat "$T/client.out" "$T/client.err")"
out=$(cat "$T/client.out")
echo "client: $out"
[[ $out == *"violations=0"* ]] || fail "violations: $out"
# the new primary answers, and remembers every reply the first one gave: its counters go on
# above the last one the client saw (how long the failover took is for make bench-ft)
last1=$(echo "$out" | sed 's/.*last=\([0-9]*\).*/\1/')
out2=$(nsx python3 "$(dirname "$0")/udp_seq_client.py" 198.18.0.2 1) || fail "after the takeover: $out2"
last2=$(echo "$out2" | sed 's/.*last=\([0-9]*\).*/\1/')
[ "$last2" -gt "$last1" ] || fail "the secondary's counter ($out2) is not above the primary's ($out)"
grep -q "FT takeover: the guest runs here from checkpoint" "$T/s.vmx.log" || fail "no takeover line"
until_ok 5 grep -q "counter" "$T/s.log" || fail "the guest does not run on the secondary"

# the disk copy went on from the checkpoint: intact, one run, past the primary's records
n0=$(grep -c "disk seq" "$T/s.log" || true)
more() { [ "$(grep -c "disk seq" "$T/s.log")" -gt "$((n0 + 2))" ]; }
until_ok 10 more || fail "the disk sequence does not go on on the secondary"
vx "$T/s.sock" power-off >/dev/null
wait "$S_PID" 2>/dev/null || true
chk=$(python3 "$(dirname "$0")/diskseq_check.py" "$T/s.img") || fail "the secondary's disk: $chk"
last=$(echo "$chk" | sed 's/last=\([0-9]*\).*/\1/')
[[ $chk == *"runs=1"* ]] || fail "the sequence restarted on the secondary: $chk"
[ "$last" -gt "$seq_before" ] || fail "the secondary's disk ($chk) is behind the primary's ($seq_before)"
echo "failover: client $out; disk sequence $seq_before -> $chk"

# ---- the secondary dies: the primary holds its output until ft-stop ---------------------------
truncate -s 16M "$T/p2.img"
start_ns_vmx p2 --net ktap0,mac=$MAC --disk "$T/p2.img" --cmdline "$CMD"
P_PID=$VMX_PID
wait_for "$T/p2.log" "kguest: fill done" 20
start_ns_vmx s2 --net ktap2,mac=$MAC --disk "$T/s2.img" --cmdline "$CMD" \
	--ft-secondary 127.0.0.1:29703
S_PID=$VMX_PID
vx ft-in "$T/s2.sock" --key-file "$T/key" --id $ID >/dev/null || fail "ft-in s2"
vx ft-start "$T/p2.sock" --to 127.0.0.1:29703 --key-file "$T/key" --id $ID >/dev/null ||
	fail "ft-start p2"
until_ok 20 phase_is p2 protected || fail "p2 is not protected: $(ftjson p2)"
kill -9 "$S_PID"
wait "$S_PID" 2>/dev/null || true
until_ok 10 phase_is p2 lost || fail "p2 did not notice its secondary's end: $(ftjson p2)"
out=$(nsx python3 "$(dirname "$0")/udp_seq_client.py" 198.18.0.2 1.5)
[[ $out == *"replies=0"* ]] || fail "p2 released output with no secondary and no decision: $out"
vx ft-stop "$T/p2.sock" >/dev/null || fail "ft-stop p2"
out=$(nsx python3 "$(dirname "$0")/udp_seq_client.py" 198.18.0.2 1.5)
[[ $out == *"violations=0"* && $out != *"replies=0 "* ]] || fail "p2 after ft-stop: $out"
phase_is p2 off || fail "p2 after ft-stop: $(ftjson p2)"
vx "$T/p2.sock" power-off >/dev/null
echo "ok"
