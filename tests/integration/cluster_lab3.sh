# clusterd on a three-host lab (docs/clusterd.md, DESIGN.md §4): create on host1, join host2
# and host3 with fresh tokens (all voters, connected, one cluster id, host-added events);
# join tokens refused when reused ("used"), expired ("expired") or garbage, after host3
# leaves; SIGKILL of the leader's clusterd (a new leader within 3 s, the committed state
# intact after the supervised restart); host-kill of a follower (failed within 2 s, never
# partitioned) and host-start; with HA off, host-isolate of a follower running a kguest VM (it reports
# isolated within 3 s and powers the VM off, the others see it partitioned) and host-heal;
# random bytes to the join port, the Raft port and the heartbeat port (the cluster stays
# healthy, the refusals are logged); every host killed and started again.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -x "$PWD/$BUILD/bin/clusterd" ] || { echo "SKIP: clusterd not built"; exit 77; }
need_kvm

LAB=$T/lab
START=$(date +%s)
lab() { "$KEEL_BIN" lab "$@"; }
kc() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 15 cluster "$@"; }
kv() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 30 "$@"; }
lab_cleanup() {
	set +e
	if [ -d "$LAB" ]; then
		cp "$LAB/lab.log" "$T/" 2>/dev/null
		for h in 1 2 3; do cp "$LAB/hosts/host$h/clusterd.out" "$T/clusterd$h.out" 2>/dev/null; done
	fi
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	for f in "$T/lab.log" "$T"/clusterd?.out; do [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }; done
	cleanup
}
trap lab_cleanup EXIT
# py EXPR JSON: EXPR evaluated with d = the parsed JSON.
py() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$2" 2>/dev/null; }
st() { kc "$1" status --json 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# until_ok SECONDS CMD...: polls CMD every 100 ms until it succeeds (0) or SECONDS pass (1).
until_ok() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.1
	done
}
# the number (1..3) of the host named in a status's leader_id, or nothing
leader_of() {
	py '([h["name"][4:] for h in d["hosts"] if d["leader_id"] and h["id"] == d["leader_id"]] + [""])[0]' "$1"
}
# state_of JSON NAME: host NAME's state in a status
state_of() { py "([h['state'] for h in d['hosts'] if h['name'] == '$2'] or ['absent'])[0]" "$1"; }
# healthy H NAMES...: host H's status names a leader and exactly NAMES, all connected voters
healthy() {
	local h=$1 s
	shift
	s=$(st "$h") || return 1
	[ "$(py 'd["leader_id"] != 0 and not d["isolated"]' "$s")" = True ] || return 1
	[ "$(py 'sorted((h["name"], h["state"], h["raft_role"]) for h in d["hosts"])' "$s")" = \
		"$(python3 -c 'import sys; print(sorted((n, "connected", "voter") for n in sys.argv[1:]))' "$@")" ]
}
all_healthy() { healthy 1 host1 host2 host3 && healthy 2 host1 host2 host3 && healthy 3 host1 host2 host3; }
clusterd_pid() {
	py "[x['pid'] for h in d['hosts'] if h['name'] == 'host$1' for x in h['daemons'] if x['name'] == 'clusterd'][0]" \
		"$(lab status --dir "$LAB" --json)"
}
# join H TOKEN: host H joins through host1; sets JOIN_RC and JOIN_OUT
join() {
	JOIN_RC=0
	JOIN_OUT=$(kc "$1" join 198.18.0.1 --token "$2" 2>&1) || JOIN_RC=$?
}
token() { kc 1 join-token "$@"; }

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
unbootstrapped() { local s; s=$(st "$1") && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
for h in 1 2 3; do until_ok 15 unbootstrapped $h || fail "host$h before create: $(st $h)"; done

# ---- create and join ----------------------------------------------------------------------
out=$(kc 1 create lab3 --json) || fail "create: $out"
for h in 2 3; do
	tok=$(token) || fail "join-token: $tok"
	[[ $tok == K1.* ]] || fail "token text: $tok"
	[ "$h" = 3 ] && TOKEN3=$tok
	join $h "$tok"
	[ "$JOIN_RC" = 0 ] || fail "host$h join: exit $JOIN_RC: $JOIN_OUT"
done
until_ok 15 all_healthy || fail "three connected voters: $(st 1) / $(st 2) / $(st 3)"
# This test is about clusterd's own mechanisms (the isolation response, the reconciler
# running a host's VMs again); HA restarts on other hosts are tests/integration/ha_restart.sh.
kc 1 config --ha off >/dev/null || fail "config --ha off"
kc 1 status
s1=$(st 1)
id=$(py 'd["cluster_id"]' "$s1")
[ -n "$id" ] || fail "no cluster id: $s1"
for h in 2 3; do [ "$(py 'd["cluster_id"]' "$(st $h)")" = "$id" ] || fail "host$h cluster id: $(st $h)"; done
ev=$(kc 1 events --json) || fail "events: $ev"
for n in host1 host2 host3; do
	hid=$(py "[h['id'] for h in d['hosts'] if h['name'] == '$n'][0]" "$s1")
	[ "$(py "len([e for e in d['events'] if e['kind'] == 'host-added' and e['host'] == $hid])" "$ev")" -ge 1 ] ||
		fail "no host-added event for $n: $ev"
done

# ---- join tokens: used, expired, garbage ----------------------------------------------------
out=$(kc 3 leave 2>&1) || fail "host3 leave: $out"
# clusterd restarts without the cluster; its socket stays and the next request, sent at
# once, waits for the new image (it neither misses the socket nor meets the old member).
s3=$(st 3 || echo '{"node_state": "no answer"}')
[ "$(py 'd["node_state"] in ("not bootstrapped", "waiting for vmk0")' "$s3")" = True ] ||
	fail "the first request after leave: $s3"
gone3() { [ "$(state_of "$(st 1)" host3)" = absent ] && healthy 1 host1 host2; }
until_ok 10 gone3 || fail "host3 still in host1's status after leave: $(st 1)"
until_ok 10 unbootstrapped 3 ||
	fail "host3 is not unbootstrapped after leave: $(st 3); $(grep -E 'Assertion|left|restarts' "$LAB/hosts/host3/clusterd.out")"
join 3 "$TOKEN3"
[ "$JOIN_RC" = 1 ] || fail "reused token: exit $JOIN_RC, want 1: $JOIN_OUT"
[[ $JOIN_OUT == *used* ]] || fail "reused token: no 'used' in: $JOIN_OUT"
tj=$(token --ttl 1 --json) || fail "join-token --ttl 1: $tj"
[ "$(py 'd["expires_s"] - int(__import__("time").time()) <= 1' "$tj")" = True ] || fail "ttl 1 expiry: $tj"
sleep 2
join 3 "$(py 'd["token"]' "$tj")"
[ "$JOIN_RC" = 1 ] || fail "expired token: exit $JOIN_RC, want 1: $JOIN_OUT"
[[ $JOIN_OUT == *expired* ]] || fail "expired token: no 'expired' in: $JOIN_OUT"
for bad in garbage "K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"${TOKEN3%?}A"; do
	join 3 "$bad"
	[ "$JOIN_RC" = 1 ] || fail "bad token $bad: exit $JOIN_RC, want 1: $JOIN_OUT"
done
[ "$(py 'd["node_state"]' "$(st 3)")" = "not bootstrapped" ] || fail "a refused join changed host3: $(st 3)"
join 3 "$(token)"
[ "$JOIN_RC" = 0 ] || fail "rejoin with a fresh token: exit $JOIN_RC: $JOIN_OUT"
until_ok 15 all_healthy || fail "after the rejoin: $(st 1) / $(st 3)"
echo "tokens ok: $(($(date +%s) - START)) s"

# ---- SIGKILL of the leader's clusterd ---------------------------------------------------------
s=$(st 1)
old=$(leader_of "$s")
[ -n "$old" ] || fail "no leader: $s"
hosts_before=$(py 'sorted((h["id"], h["name"], h["vmk0"]) for h in d["hosts"])' "$s")
events_before=$(py 'len(d["events"])' "$(kc "$old" events --json --limit 1000)")
last_before=$(py 'd["events"][-1]["seq"]' "$(kc "$old" events --json --limit 1)")
pid=$(clusterd_pid "$old")
[ "$pid" -gt 0 ] || fail "no clusterd pid for host$old"
kill -9 "$pid"
t0=$(now_ms)
new_leader() {
	local h s
	for h in 1 2 3; do
		[ "$h" = "$old" ] && continue
		s=$(st $h) || continue
		[ "$(py 'd["node_state"]' "$s")" = leader ] && { NEW=$h; return 0; }
	done
	return 1
}
until_ok 3 new_leader || fail "no new leader within 3 s of killing host$old's clusterd"
echo "host$NEW leads $(($(now_ms) - t0)) ms after host$old's clusterd was killed"
restarted() { p=$(clusterd_pid "$old") && [ "$p" -gt 0 ] && [ "$p" != "$pid" ]; }
until_ok 15 restarted || fail "clusterd of host$old was not restarted"
until_ok 15 all_healthy || fail "after the restart of host$old's clusterd: $(st "$old")"
for h in 1 2 3; do
	s=$(st $h)
	[ "$(py 'd["cluster_id"]' "$s")" = "$id" ] || fail "host$h cluster id changed: $s"
	[ "$(py 'sorted((h["id"], h["name"], h["vmk0"]) for h in d["hosts"])' "$s")" = "$hosts_before" ] ||
		fail "host$h hosts changed: $s"
	e=$(kc $h events --json --limit 1000) || fail "host$h events: $e"
	[ "$(py 'len(d["events"])' "$e")" -ge "$events_before" ] || fail "host$h lost events: $e"
	[ "$(py "$last_before in [x['seq'] for x in d['events']]" "$e")" = True ] || fail "host$h lacks event $last_before"
done

# ---- host-kill of a follower, host-start --------------------------------------------------------
L=$(leader_of "$(st 1)")
[ -n "$L" ] || fail "no leader: $(st 1)"
V=1; [ "$V" = "$L" ] && V=2
seen=
failed_v() {
	local s x
	s=$(st "$L") || return 1
	x=$(state_of "$s" "host$V")
	seen="$seen $x"
	[ "$x" = failed ]
}
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V"
t0=$(now_ms)
until_ok 2 failed_v || fail "host$V not failed within 2 s of host-kill (host$L saw:$seen)"
echo "host$V failed after $(($(now_ms) - t0)) ms; seen:$(echo $seen | tr ' ' '\n' | uniq | tr '\n' ' ')"
[[ " $seen " != *" partitioned "* ]] || fail "a killed host was seen partitioned:$seen"
[[ " $seen " != *" isolated "* ]] || fail "a killed host was seen isolated:$seen"
lab host-start $V --dir "$LAB" >/dev/null || fail "host-start $V"
until_ok 20 all_healthy || fail "host$V did not come back: $(st "$L") / $(st $V)"

# ---- host-isolate of a follower running a VM, host-heal ---------------------------------------
L=$(leader_of "$(st 1)")
V=3; [ "$V" = "$L" ] && V=2
O=1; { [ "$O" = "$L" ] || [ "$O" = "$V" ]; } && O=2; { [ "$O" = "$L" ] || [ "$O" = "$V" ]; } && O=3
kv $V vm create iso1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "vm create on host$V"
kv $V vm power-on iso1 >/dev/null || fail "vm power-on on host$V"
power() { py 'd["vms"][0]["power_state"]' "$(kv $V --json vm info iso1)"; }
[ "$(power)" = poweredOn ] || fail "iso1 not on: $(kv $V --json vm info iso1)"
# The cluster's registry has it (owned by host V, epoch 1, desired on), the vmx is fenced
# with that epoch and the lock file on the shared datastore holds it.
reg() { py "[(v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == 'iso1']" "$(st "$L")"; }
[ "$(reg)" = "[('host$V', 1, 'on')]" ] || fail "registry after power-on: $(reg)"
vpid=$(py 'd["vms"][0]["pid"]' "$(kv $V --json vm info iso1)")
tr '\0' ' ' <"/proc/$vpid/cmdline" | grep -q -- "--fence-epoch 1" || fail "vmx not fenced: $(tr '\0' ' ' <"/proc/$vpid/cmdline")"
[ -s "$LAB/shared/iso1/.lock" ] || fail "no lock file for iso1"
isolated_v() { [ "$(py 'd["isolated"]' "$(st $V)")" = True ]; }
off_v() { [ "$(power)" = poweredOff ]; }
seen=
partitioned_v() {
	local x y
	x=$(state_of "$(st "$L")" "host$V")
	y=$(state_of "$(st "$O")" "host$V")
	seen="$seen $x/$y"
	[ "$x" = partitioned ] && [ "$y" = partitioned ]
}
lab host-isolate $V --dir "$LAB" >/dev/null || fail "host-isolate $V"
t0=$(now_ms)
until_ok 3 isolated_v || fail "host$V does not report isolated within 3 s: $(st $V)"
echo "host$V isolated after $(($(now_ms) - t0)) ms"
until_ok 5 off_v || fail "iso1 not powered off on isolated host$V: $(kv $V vm info iso1)"
until_ok 5 partitioned_v || fail "host$V not seen partitioned by host$L and host$O (seen:$seen)"
[[ " $seen " != *failed* ]] || fail "an isolated host writing datastore heartbeats was seen failed:$seen"
lab host-heal $V --dir "$LAB" >/dev/null || fail "host-heal $V"
t0=$(now_ms)
not_isolated_v() { [ "$(py 'd["isolated"]' "$(st $V)")" = False ]; }
until_ok 15 all_healthy || fail "host$V not connected after host-heal: $(st "$L") / $(st $V)"
until_ok 5 not_isolated_v || fail "host$V still isolated after host-heal: $(st $V)"
echo "host$V healed and connected after $(($(now_ms) - t0)) ms"
iso_event() { py "any('reports it was isolated' in e['message'] for e in d['events'])" "$(kc "$L" events --json --limit 1000)" | grep -q True; }
until_ok 5 iso_event || fail "no 'reports it was isolated' event: $(kc "$L" events)"
# The isolation response left the cluster's desired state on: healed, host V's reconciler
# starts iso1 again (same owner, same epoch).
on_v() { [ "$(power)" = poweredOn ]; }
until_ok 10 on_v || fail "iso1 not started again after heal: $(kv $V vm info iso1)"
[ "$(reg)" = "[('host$V', 1, 'on')]" ] || fail "registry after heal: $(reg)"
# (the reconciler's power-on may still be finishing: an operator gets "busy" and retries)
off_iso1() { kv $V vm power-off iso1 >/dev/null 2>&1; }
until_ok 5 off_iso1 || fail "vm power-off: $(kv $V vm power-off iso1 2>&1)"
[ "$(reg)" = "[('host$V', 1, 'off')]" ] || fail "registry after power-off: $(reg)"
kv $V vm destroy iso1 >/dev/null || fail "vm destroy"
[ "$(reg)" = "[]" ] || fail "registry after destroy: $(reg)"

# ---- isolation response "leave powered on": the VM keeps running, its lock stays held ---------
kc $V config --isolation-response leave-powered-on >/dev/null || fail "config"
setting() { py 'd["isolation_response"]' "$(st $1)"; }
for h in 1 2 3; do
	s_ok() { [ "$(setting $h)" = leave-powered-on ]; }
	until_ok 5 s_ok || fail "host$h settings: $(st $h)"
done
kv $V vm create lpo1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "vm create lpo1"
kv $V vm power-on lpo1 >/dev/null || fail "vm power-on lpo1"
lpid=$(py 'd["vms"][0]["pid"]' "$(kv $V --json vm info lpo1)")
lab host-isolate $V --dir "$LAB" >/dev/null || fail "host-isolate $V"
until_ok 3 isolated_v || fail "host$V does not report isolated: $(st $V)"
sleep 1.5
lnow=$(py 'd["vms"][0]["pid"], d["vms"][0]["power_state"]' "$(kv $V --json vm info lpo1)")
[ "$lnow" = "$lpid poweredOn" ] || fail "leave powered on: lpo1 is $lnow (pid was $lpid)"
grep -q "isolation response: leave powered on" "$LAB/hosts/host$V/clusterd.out" ||
	fail "isolation response not logged"
lab host-heal $V --dir "$LAB" >/dev/null || fail "host-heal $V"
until_ok 15 all_healthy || fail "host$V not back: $(st "$L")"
kc 1 config --isolation-response power-off --failure-timeout 1000 >/dev/null || fail "config back"
kv $V vm power-off lpo1 >/dev/null || fail "vm power-off lpo1"
kv $V vm destroy lpo1 >/dev/null || fail "vm destroy lpo1"

# ---- malformed input to the join, Raft and heartbeat ports --------------------------------------
s=$(st 1)
L=$(leader_of "$s")
lines=$(wc -l <"$LAB/hosts/host1/clusterd.out")
nsenter --net="/run/netns/$prefix-lab-host2" python3 - 198.18.0.1 <<'EOF' || fail "sending junk"
import os, random, socket, sys
h = sys.argv[1]
random.seed(7)
for port in (7001, 7000):
    for n in (1, 5, 64, 1000, 70000):
        try:
            s = socket.create_connection((h, port), timeout=2)
            s.sendall(os.urandom(n))
            s.settimeout(0.5)
            try:
                s.recv(100)
            except Exception:
                pass
            s.close()
        except OSError as e:
            print("tcp", port, n, e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in (0, 1, 8, 33, 100, 200, 1400):
    u.sendto(os.urandom(n), (h, 7000))
EOF
sleep 1
all_healthy || fail "unhealthy after junk: $(st 1) / $(st 2) / $(st 3)"
[ "$(leader_of "$(st 1)")" = "$L" ] || fail "leader changed after junk: $(st 1)"
new_log() { tail -n +"$((lines + 1))" "$LAB/hosts/host1/clusterd.out"; }
logged() { new_log | grep -q "$1"; }
until_ok 3 logged "join port" || fail "no join port refusal logged: $(new_log)"
until_ok 3 logged "heartbeat from" || fail "no dropped heartbeat logged: $(new_log)"

# ---- every host killed and started again -----------------------------------------------------
# A VM running on host2 before: the registry survives and host2's reconciler runs it again.
kv 2 vm create keep1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "vm create keep1"
kv 2 vm power-on keep1 >/dev/null || fail "vm power-on keep1"
for h in 1 2 3; do lab host-kill $h --dir "$LAB" >/dev/null || fail "host-kill $h"; done
for h in 1 2 3; do lab host-start $h --dir "$LAB" >/dev/null || fail "host-start $h"; done
until_ok 30 all_healthy || fail "cluster not back after a full restart: $(st 1) / $(st 2) / $(st 3)"
for h in 1 2 3; do [ "$(py 'd["cluster_id"]' "$(st $h)")" = "$id" ] || fail "host$h cluster id: $(st $h)"; done
kc 1 status
keep() { py "[(v['owner_name'], v['desired_power']) for v in d['vms'] if v['name'] == 'keep1']" "$(st 1)"; }
[ "$(keep)" = "[('host2', 'on')]" ] || fail "registry after the restart: $(keep)"
keep_on() { [ "$(py 'd["vms"][0]["power_state"]' "$(kv 2 --json vm info keep1)")" = poweredOn ]; }
until_ok 15 keep_on || fail "keep1 not running again on host2: $(kv 2 vm info keep1)"

for h in 1 2 3; do
	! grep -E "Assertion|Segmentation|ERROR" "$LAB/hosts/host$h/clusterd.out" ||
		fail "host$h clusterd.out reports a crash or an error"
done
lab down --dir "$LAB" >/dev/null || fail "lab down"
! ip netns list | grep -q -- "^$prefix-" || fail "namespaces of $prefix left"
[ ! -e "$LAB" ] || fail "$LAB left"
echo "PASS ($(($(date +%s) - START)) s)"
