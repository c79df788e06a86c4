# FT through the cluster (docs/ft.md, "The cluster's part") on a three-host lab with the shared
# datastore. A kguest VM on host2 answers the UDP sequencer (port 9) and writes its disk
# sequence; `keel vm ft enable` protects it, the cluster choosing host3 for the secondary (a
# must anti-affinity rule keeps it off host1, which runs the rule's other VM). Then:
#   - refusals: a second enable, a migration of the protected VM;
#   - host2 killed while a client on host1's network asks the sequencer: the secondary on
#     host3 takes over by itself (owner host3 at epoch 2, an FT failover event); the client
#     sees no reply whose effect the VM then forgot (violations=0) and the longest silence is
#     the failover's; the VM is protected again on the third host, host1;
#   - host2 back, a test failover (`keel vm ft failover`) moves the VM to its secondary's
#     host with the client's check again, and it is protected again;
#   - `keel vm ft disable`: not protected, the secondary gone from its host;
#   - after power-off, the disk the VM ran on last holds one unbroken sequence (one run, no
#     gap, no rewind) past everything the first primary wrote.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -E "FT|fail" "$LAB/hosts/host$h/clusterd.out" | tail -15; }
		[ -f "$LAB/hosts/host$h/vmkernel.log" ] &&
			{ echo "--- vmkernel host$h"; grep -E "FT|f1" "$LAB/hosts/host$h/vmkernel.log" | tail -10; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected"), ("host3", "connected")]' "$s")" = True ]
}
# ft_of: "state secondary owner epoch failovers" of f1 as host1 sees it
ft_of() {
	py "' '.join('%s %s %s %d %d' % ((v['ft'] or {}).get('state', 'off').replace(' ', '-'), (v['ft'] or {}).get('secondary_name') or '-', v['owner_name'], v['epoch'], (v['ft'] or {}).get('failovers', 0)) for v in d['vms'] if v['name'] == 'f1')" "$(st 1)" || true
}
power_of() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info f1 2>/dev/null)" || echo absent; }
expect_fail() { # CMD...: the command fails; $msg is its output
	msg=$("$@" 2>&1) && fail "$* succeeded: $msg"
	return 0
}
CON=$LAB/shared/f1/console.log
lastseq() { grep -o "disk seq [0-9]*" "$CON" | tail -1 | grep -o "[0-9]*$"; }
# client SECONDS: the sequencer's client on host1's network, in the background
client() {
	ip netns exec "$prefix-lab-host1" python3 "$KEEL_TOP/tests/integration/udp_seq_client.py" \
		198.18.10.1 "$1" >"$T/client.out" 2>"$T/client.err" &
	CLIENT=$!
}
client_ok() { # WHAT: the client saw no forgotten reply
	wait "$CLIENT" || fail "$1: the output-commit check: $(cat "$T/client.out" "$T/client.err")"
	out=$(cat "$T/client.out")
	[[ $out == *"violations=0"* ]] || fail "$1: $out"
	echo "$1: client $out"
}

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create ftlab >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 30 healthy 1 || fail "cluster not healthy: $(st 1)"

kv 2 vm create f1 --memory 64 --datastore shared1 --disk 8 --nic "VM Network" \
	--cmdline "ip=198.18.10.1 counter_ms=100 idle_ms=5 disk_seq=1 disk_ms=20" >/dev/null ||
	fail "create f1"
kv 2 vm power-on f1 >/dev/null || fail "power-on f1"
wait_for "$CON" "disk seq 20\b"

# ---- protection -----------------------------------------------------------------------------
# the cluster chooses the secondary's host: not the owner, and not host1, which runs g1, a VM
# that a must anti-affinity rule keeps apart from f1
kv 1 vm create g1 --memory 32 --datastore shared1 --cmdline "counter_ms=500" >/dev/null ||
	fail "create g1"
kv 1 vm power-on g1 >/dev/null || fail "power-on g1"
kc 1 rule add fapart --kind anti-affinity --must --vm f1 --vm g1 >/dev/null || fail "rule fapart"
out=$(kv 1 vm ft enable f1 2>&1) || fail "ft enable: $out"
echo "enable: $out"
prot() { [[ $(ft_of) == "protected host3 host2 1 0" ]]; }
until_ok 30 prot || fail "f1 not protected with its secondary on host3: $(ft_of)"
[ "$(power_of 3)" = ft-secondary ] || fail "host3 does not hold the secondary: $(power_of 3)"
[ "$(power_of 2)" = poweredOn ] || fail "f1 does not run on host2"
kv 1 --json vm ft status f1 >"$T/status.json" || fail "ft status: $(cat "$T/status.json")"
grep -q "protected" "$T/status.json" || fail "ft status: $(cat "$T/status.json")"
expect_fail kv 1 vm ft enable f1
[[ $msg == *"already"* ]] || fail "a second enable: $msg"
expect_fail kv 1 vm migrate f1 --to host1
[[ $msg == *"FT"* ]] || fail "a migration of a protected VM: $msg"
[[ $(ft_of) == "protected host3 host2 1 0" ]] || fail "a refusal changed f1: $(ft_of)"
kc 1 rule remove fapart >/dev/null || fail "rule remove fapart"
kv 1 vm power-off g1 >/dev/null || fail "power-off g1"

# ---- the primary's host dies -----------------------------------------------------------------
client 8
sleep 2.5
seq_before=$(lastseq)
lab host-kill host2 --dir "$LAB" >/dev/null || fail "host-kill host2"
moved() { [[ $(ft_of) == *" host3 2 1" ]]; }
until_ok 15 moved || fail "f1 did not fail over to host3: $(ft_of)"
client_ok "primary's host killed"
[ "$(power_of 3)" = poweredOn ] || fail "f1 does not run on host3: $(power_of 3)"
ev=$(kc 1 events --json) || fail "events"
[ "$(py "any('FT: VM f1 fails over from host2 to host3' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "no failover event: $ev"
reprot() { [[ $(ft_of) == "protected host1 host3 2 1" ]]; }
until_ok 30 reprot || fail "f1 not protected again on host1: $(ft_of)"
n0=$(grep -c "disk seq" "$CON")
more() { [ "$(grep -c "disk seq" "$CON")" -gt "$((n0 + 5))" ]; }
until_ok 10 more || fail "the disk sequence stopped after the failover"

# ---- a test failover ----------------------------------------------------------------------------
lab host-start host2 --dir "$LAB" >/dev/null || fail "host-start host2"
until_ok 60 healthy 1 || fail "host2 did not come back: $(st 1)"
client 6
sleep 1.5
out=$(kv 2 vm ft failover f1 2>&1) || fail "ft failover: $out"
echo "failover: $out"
tested() { [[ $(ft_of) == *" host1 3 2" ]]; }
until_ok 15 tested || fail "the test failover did not move f1 to host1: $(ft_of)"
client_ok "test failover"
gone3() { [ "$(power_of 3)" != poweredOn ]; }
until_ok 15 gone3 || fail "the former primary still runs on host3: $(power_of 3)"
again() { [[ $(ft_of) == "protected "*" host1 3 2" ]]; }
until_ok 30 again || fail "f1 not protected after the test failover: $(ft_of)"
sec=$(ft_of | cut -d' ' -f2)

# ---- FT off ---------------------------------------------------------------------------------------
out=$(kv 3 vm ft disable f1 2>&1) || fail "ft disable: $out"
off() { [[ $(ft_of) == "not-protected - host1 3 2" ]]; }
until_ok 15 off || fail "f1 still protected: $(ft_of)"
secgone() { [ "$(power_of "${sec#host}")" = absent ]; }
until_ok 15 secgone || fail "the secondary still on $sec: $(power_of "${sec#host}")"
[ "$(power_of 1)" = poweredOn ] || fail "f1 stopped with FT"

# ---- the disk: one run, past what the first primary wrote ----------------------------------------
disk=$(py 'd["vms"][0]["spec"]["disks"][0]["file"]' "$(kv 1 --json vm info f1)")
[[ $disk == *"/ft-"* ]] || fail "f1 does not run on a secondary's copy: $disk"
kv 1 vm power-off f1 >/dev/null || fail "power-off f1"
chk=$(python3 "$KEEL_TOP/tests/integration/diskseq_check.py" "$disk") || fail "the disk: $chk"
last=$(echo "$chk" | sed 's/last=\([0-9]*\).*/\1/')
[[ $chk == *"runs=1"* ]] || fail "the sequence restarted: $chk"
[ "$last" -gt "$seq_before" ] || fail "the disk ($chk) is behind the first primary ($seq_before)"
echo "ok: protected, failover on host kill, re-protection, test failover, disable; disk $chk"
