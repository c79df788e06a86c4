# clusterd on one lab host (docs/clusterd.md, "Daemon"): `keel lab up 1` starts clusterd
# beside vmkernel; before `create` it waits, not bootstrapped; `keel cluster create lab1`
# bootstraps a one-voter cluster and answers with the status (this host leads, is a voter
# and is the one connected host); clusterd killed with SIGKILL is restarted by the lab
# supervisor and comes back with the same cluster and a commit index no lower than
# before, and so does one stopped with SIGTERM (a clean close); a second create is refused; `lab down` leaves nothing behind.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -x "$PWD/$BUILD/bin/clusterd" ] || { echo "SKIP: clusterd not built"; exit 77; }

LAB=$T/lab
lab() { "$KEEL_BIN" lab "$@"; }
kc() { "$KEEL_BIN" --socket "$LAB/hosts/host1/vmkernel.sock" --timeout 15 cluster "$@"; }
lab_cleanup() {
	set +e
	[ -d "$LAB" ] && cp "$LAB/lab.log" "$LAB/hosts/host1/clusterd.out" "$T/" 2>/dev/null
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	for f in "$T/lab.log" "$T/clusterd.out"; do [ -f "$f" ] && { echo "--- $f"; tail -30 "$f"; }; done
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

out=$(lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")

# clusterd finds vmk0 (198.18.0.1) and waits for create.
for ((i = 0; i < 100; i++)); do
	st=$(kc status --json 2>/dev/null) && [ "$(py 'd["node_state"]' "$st")" = "not bootstrapped" ] && break
	sleep 0.1
done
[ "$(py 'd["node_state"]' "$st")" = "not bootstrapped" ] || fail "before create: $st"
[ "$(py 'd["node_address"]' "$st")" = "198.18.0.1:7000" ] || fail "node address: $st"
node=$(py 'd["node_id"]' "$st")

out=$(kc create lab1 --json) || fail "create: $out"
[ "$(py 'd["name"]' "$out")" = lab1 ] || fail "create reply: $out"
kc status

check() {
	local st=$1
	[ "$(py 'd["name"]' "$st")" = lab1 ] || fail "name: $st"
	[ "$(py 'd["leader_id"]' "$st")" = "$node" ] || fail "leader: $st"
	[ "$(py 'd["leader_address"]' "$st")" = "198.18.0.1:7000" ] || fail "leader address: $st"
	[ "$(py '(d["node_state"], d["node_role"])' "$st")" = "('leader', 'voter')" ] || fail "node: $st"
	[ "$(py '[(h["id"], h["name"], h["vmk0"], h["state"], h["role"]) for h in d["hosts"]]' "$st")" = \
		"[($node, 'host1', '198.18.0.1:7000', 'connected', 'voter')]" ] || fail "hosts: $st"
	[ "$(py 'd["applied_index"] >= d["commit_index"] >= 3' "$st")" = True ] || fail "indexes: $st"
}
st=$(kc status --json) || fail "status: $st"
check "$st"
id=$(py 'd["cluster_id"]' "$st")
commit=$(py 'd["commit_index"]' "$st")

rc=0; kc create again >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "second create: exit $rc, want 1"

# SIGKILL: the supervisor restarts clusterd, which recovers the cluster from its log.
pid=$(py '[x["pid"] for x in d["hosts"][0]["daemons"] if x["name"] == "clusterd"][0]' \
	"$(lab status --dir "$LAB" --json)")
[ "$pid" -gt 0 ] || fail "no clusterd pid"
kill -9 "$pid"
ok=
for ((i = 0; i < 150; i++)); do
	sleep 0.1
	st=$(kc status --json 2>/dev/null) || continue
	[ "$(py 'd["node_state"]' "$st")" = leader ] && [ "$(py 'd["applied_index"]' "$st")" -ge "$commit" ] &&
		{ ok=1; break; }
done
[ -n "$ok" ] || fail "clusterd did not come back as leader: $st"
check "$st"
[ "$(py 'd["cluster_id"]' "$st")" = "$id" ] || fail "cluster id changed: $st"
[ "$(py 'd["commit_index"]' "$st")" -ge "$commit" ] || fail "commit index went back: $st"
newpid=$(py '[x["pid"] for x in d["hosts"][0]["daemons"] if x["name"] == "clusterd"][0]' \
	"$(lab status --dir "$LAB" --json)")
[ "$newpid" != "$pid" ] || fail "clusterd pid did not change"

# SIGTERM: a clean close, and the restarted clusterd loads the closed segments.
commit=$(py 'd["commit_index"]' "$st")
kill -TERM "$newpid"
ok=
for ((i = 0; i < 150; i++)); do
	sleep 0.1
	st=$(kc status --json 2>/dev/null) || continue
	[ "$(py 'd["node_state"]' "$st")" = leader ] && [ "$(py 'd["applied_index"]' "$st")" -ge "$commit" ] &&
		{ ok=1; break; }
done
[ -n "$ok" ] || fail "clusterd did not come back after SIGTERM: $st"
check "$st"
[ "$(py 'd["cluster_id"]' "$st")" = "$id" ] || fail "cluster id changed after SIGTERM: $st"
grep -q "raft closed" "$LAB/hosts/host1/clusterd.out" || fail "no clean close logged"
! grep -q ERROR "$LAB/hosts/host1/clusterd.out" || fail "errors: $(grep ERROR "$LAB/hosts/host1/clusterd.out")"

lab down --dir "$LAB" >/dev/null || fail "lab down"
! ip netns list | grep -q -- "^$prefix-" || fail "namespaces of $prefix left"
! ip -o link show | grep -q -- " $prefix-" || fail "links of $prefix left"
! pgrep -f -- "$LAB/" >/dev/null || fail "processes left: $(pgrep -af -- "$LAB/")"
[ ! -e "$LAB" ] || fail "$LAB left"
echo "PASS"
