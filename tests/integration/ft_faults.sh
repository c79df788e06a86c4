# FT under faults (docs/ft.md, "The cluster's part") on a four-host lab with the shared
# datastore: three Raft voters (host1 leads) and a standby, host4. A kguest VM on host4
# answers the UDP sequencer and writes its disk sequence; a client on host1's network checks
# that no reply's effect is ever forgotten (udp_seq_client.py), and after each fault the VM
# runs on exactly one host. In turn:
#   a. the secondary's host killed: the primary goes on (same owner, same epoch) and is
#      protected again on another host;
#   a2. the primary's vmx killed on a live host: its secondary takes over (no restart from
#      the disks, which would forget released output);
#   b. only the FT network of the secondary's host cut: the primary goes on, its held
#      output released once the cluster let it go on alone, and is protected elsewhere;
#   b2. the secondary's host isolated (management network cut): the cluster gives up that
#      secondary (it could never be given the VM) and protects the VM elsewhere; healed,
#      the host holds no secondary;
#   c. the primary's host isolated (management network cut, isolation response power off):
#      the secondary takes over, at a higher epoch;
#   d. both the primary's and the secondary's hosts killed (one voter among them): HA
#      restarts the VM from its disks on a survivor, and it is protected again.
# At the end the disk the VM ran on holds an intact sequence: two runs (the HA restart is a
# new boot), never interleaved.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
HOSTS="1 2 3 4"
lab_cleanup() {
	set +e
	for h in $HOSTS; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -E "FT|HA|isolat" "$LAB/hosts/host$h/clusterd.out" | tail -12; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
healthy() {
	local s
	s=$(st 1) || return 1
	[ "$(py 'd["leader_id"] != 0 and all(h["state"] == "connected" for h in d["hosts"]) and len(d["hosts"]) == 4' "$s")" = True ]
}
# ft_of: "state secondary owner epoch" of f1 as host1 sees it
ft_of() {
	py "' '.join('%s %s %s %d' % ((v['ft'] or {}).get('state', 'off').replace(' ', '-'), (v['ft'] or {}).get('secondary_name') or '-', v['owner_name'], v['epoch']) for v in d['vms'] if v['name'] == 'f1')" "$(st 1)" || true
}
field() { ft_of | cut -d' ' -f"$1"; }
power_of() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info f1 2>/dev/null)" 2>/dev/null || echo absent; }
# once: f1 powered on on exactly one host (hosts that are down are skipped)
once() {
	local n=0 h
	for h in $HOSTS; do [ "$(power_of $h)" = poweredOn ] && n=$((n + 1)); done
	[ "$n" = 1 ]
}
hosts_now() { py "[(h['name'], h['id'], h['state'], h['raft_role']) for h in d['hosts']] + [d['leader_id']]" "$(st 1)"; }
states() { local h; for h in $HOSTS; do printf 'host%s:%s ' "$h" "$(power_of $h)"; done; }
# secondary_on STEP HOST: the operator's restart-secondary onto HOST until the VM is protected
# there. A host that just came back may refuse its first pairing (its join port not up yet:
# an FT event says so, and the cluster protects the VM elsewhere meanwhile); the operator
# asks again, three times at most.
secondary_on() {
	local i
	for i in 1 2 3; do
		kv 1 vm ft restart-secondary f1 --secondary-host "$2" >/dev/null ||
			fail "$1: restart-secondary: $(hosts_now)"
		until_ok 20 protected_on "$2" && return 0
		echo "$1: no secondary on $2 yet: $(kc 1 events | grep ' ft ' | tail -2)"
	done
	fail "$1: f1 not protected on $2: $(ft_of)"
}
client() {
	ip netns exec "$prefix-lab-host1" python3 "$KEEL_TOP/tests/integration/udp_seq_client.py" \
		198.18.10.1 "$1" >"$T/client.out" 2>"$T/client.err" &
	CLIENT=$!
}
client_ok() {
	wait "$CLIENT" || fail "$1: the output-commit check: $(cat "$T/client.out" "$T/client.err")"
	[[ $(cat "$T/client.out") == *"violations=0"* ]] || fail "$1: $(cat "$T/client.out")"
	echo "$1: client $(cat "$T/client.out")"
}
protected_on() { # HOST: protected with its secondary there (any host but the owner when "")
	local f
	f=$(ft_of)
	[[ $f == protected* ]] || return 1
	[ -z "$1" ] || [ "$(echo "$f" | cut -d' ' -f2)" = "$1" ]
}

out=$(lab up 4 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
for h in $HOSTS; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create ftf >/dev/null || fail "create"
for h in 2 3 4; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 30 healthy || fail "cluster not healthy: $(st 1)"
voters() { py "' '.join(sorted(h['name'] for h in d['hosts'] if h['raft_role'] == 'voter'))" "$(st 1)"; }
three() { [ "$(voters)" = "host1 host2 host3" ]; }
until_ok 30 three || fail "voters are not host1..3: $(voters)"

kv 4 vm create f1 --memory 64 --datastore shared1 --disk 8 --nic "VM Network" \
	--cmdline "ip=198.18.10.1 counter_ms=100 idle_ms=5 disk_seq=1 disk_ms=20" >/dev/null ||
	fail "create f1"
kv 4 vm power-on f1 >/dev/null || fail "power-on f1"
wait_for "$LAB/shared/f1/console.log" "disk seq 20\b"
kv 1 vm ft enable f1 --secondary-host host2 >/dev/null || fail "ft enable"
until_ok 30 protected_on host2 || fail "f1 not protected on host2: $(ft_of)"

# ---- a. the secondary's host dies ---------------------------------------------------------
client 6
sleep 1.5
lab host-kill host2 --dir "$LAB" >/dev/null || fail "host-kill host2"
other() { protected_on "" && [ "$(field 2)" != host2 ]; }
until_ok 30 other || fail "a: f1 not protected again elsewhere: $(ft_of)"
[ "$(field 3) $(field 4)" = "host4 1" ] || fail "a: the primary moved: $(ft_of)"
client_ok "a. secondary's host killed"
once || fail "a: f1 does not run exactly once: $(states) $(ft_of)"
lab host-start host2 --dir "$LAB" >/dev/null || fail "host-start host2"
until_ok 60 healthy || fail "a: host2 did not come back: $(st 1)"

# ---- a2. the primary's vmx dies on a live host ------------------------------------------------
# (a crash, or a vmx that fenced itself when its host's heartbeat stalled): the VM is not
# restarted from its disks, which would forget released output; its secondary takes over
sec=$(field 2)
pid=$(py 'd["vms"][0]["pid"]' "$(kv 4 --json vm info f1)")
[ -n "$pid" ] && [ "$pid" -gt 0 ] || fail "a2: no vmx pid for f1 on host4"
client 6
sleep 1.5
kill -9 "$pid" || fail "a2: kill the vmx"
to_sec() { [ "$(field 3) $(field 4)" = "$sec 2" ] && [ "$(power_of "${sec#host}")" = poweredOn ]; }
until_ok 20 to_sec || fail "a2: f1 did not fail over to $sec: $(ft_of)"
client_ok "a2. primary's vmx killed"
until_ok 30 protected_on "" || fail "a2: f1 not protected again: $(ft_of)"
once || fail "a2: f1 does not run exactly once: $(states) $(ft_of)"
ev=$(kc 1 events --json) || fail "events"
[ "$(py "any('its primary stopped on host4' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "a2: no event for the stopped primary: $(kc 1 events | tail -5)"
# the VM goes back to host4 for what follows (a secondary there, then a test failover)
secondary_on a2 host4
kv 1 vm ft failover f1 >/dev/null || fail "a2: failover back"
back4() { [ "$(field 3)" = host4 ] && protected_on ""; }
until_ok 30 back4 || fail "a2: f1 not back on host4: $(ft_of)"
E=$(field 4)

# ---- b. only the FT network of the secondary's host is cut ---------------------------------
cut=$(field 2)
ip -n "$prefix-lab-$cut" link set vmnic2 down || fail "b: cutting $cut's FT uplink"
client 12
moved_on() { protected_on "" && [ "$(field 2)" != "$cut" ]; }
until_ok 60 moved_on || fail "b: f1 not protected away from $cut: $(ft_of)"
[ "$(field 3) $(field 4)" = "host4 $E" ] || fail "b: the primary moved: $(ft_of)"
client_ok "b. FT network of $cut cut"
ip -n "$prefix-lab-$cut" link set vmnic2 up || fail "b: restoring $cut's FT uplink"
once || fail "b: f1 does not run exactly once: $(states) $(ft_of)"

# ---- b2. the secondary's host isolated ----------------------------------------------------------
secondary_on b2 host3
client 8
sleep 1
lab host-isolate host3 --dir "$LAB" >/dev/null || fail "b2: host-isolate host3"
away3() { protected_on "" && [ "$(field 2)" != host3 ]; }
until_ok 30 away3 || fail "b2: f1 not protected away from the isolated host3: $(ft_of)"
[ "$(field 3) $(field 4)" = "host4 $E" ] || fail "b2: the primary moved: $(ft_of)"
client_ok "b2. secondary's host isolated"
lab host-heal host3 --dir "$LAB" >/dev/null || fail "b2: host-heal host3"
until_ok 60 healthy || fail "b2: host3 did not come back: $(st 1)"
nosec3() { [ "$(power_of 3)" = absent ]; }
until_ok 15 nosec3 || fail "b2: the isolated host3 still holds a secondary: $(power_of 3)"
once || fail "b2: f1 does not run exactly once: $(states) $(ft_of)"

# ---- c. the primary's host isolated ----------------------------------------------------------
secondary_on c host2
client 8
sleep 1.5
lab host-isolate host4 --dir "$LAB" >/dev/null || fail "c: host-isolate host4"
took() { [ "$(field 3) $(field 4)" = "host2 $((E + 1))" ]; }
until_ok 30 took || fail "c: the secondary did not take over: $(ft_of)"
client_ok "c. primary's host isolated"
lab host-heal host4 --dir "$LAB" >/dev/null || fail "c: host-heal host4"
until_ok 60 healthy || fail "c: host4 did not come back: $(st 1)"
off4() { [ "$(power_of 4)" != poweredOn ]; }
until_ok 15 off4 || fail "c: f1 still runs on the isolated host"
once || fail "c: f1 does not run exactly once: $(states) $(ft_of)"

# ---- d. both hosts die ----------------------------------------------------------------------------
secondary_on d host4
lab host-kill host2 --dir "$LAB" >/dev/null || fail "d: host-kill host2"
lab host-kill host4 --dir "$LAB" >/dev/null || fail "d: host-kill host4"
HOSTS="1 3"
restarted() { [[ $(field 3) == host[13] ]] && [ "$(power_of "$(field 3 | cut -c5)")" = poweredOn ]; }
until_ok 60 restarted || fail "d: HA did not restart f1 on host1 or host3: $(ft_of)"
once || fail "d: f1 does not run exactly once: $(states) $(ft_of)"
until_ok 60 protected_on "" || fail "d: f1 not protected again: $(ft_of)"
n0=$(grep -c "disk seq" "$LAB/shared/f1/console.log")
more() { [ "$(grep -c "disk seq" "$LAB/shared/f1/console.log")" -gt "$((n0 + 5))" ]; }
until_ok 15 more || fail "d: the disk sequence does not go on"
h=$(field 3 | cut -c5)
disk=$(py 'd["vms"][0]["spec"]["disks"][0]["file"]' "$(kv "$h" --json vm info f1)")
kv "$h" vm power-off f1 >/dev/null || fail "power-off f1"
chk=$(python3 "$KEEL_TOP/tests/integration/diskseq_check.py" "$disk") || fail "the disk: $chk"
[[ $chk == *"runs=2"* ]] || fail "the disk: $chk (one run per boot: the first one and the HA restart)"
echo "ok: secondary killed, FT network cut, primary isolated, both killed; disk $chk"
