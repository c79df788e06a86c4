# Placement rules and DRS through hostd's API (docs/hostd.md, "Placement rules and DRS")
# on a three-host lab with the shared datastore: three small VMs on host1, then a third-party
# gRPC client (drs_api.py, Debian's grpcio) against a follower's hostd, so that every change
# is forwarded to the leader by that host's clusterd:
#   - rules: ListClusterRules, AddClusterRule (a must anti-affinity rule "apart" between two
#     VMs of host1, a host rule with its host by "host-<id>"), the refusals (unknown VM or
#     host NOT_FOUND, malformed INVALID_ARGUMENT, a name in use ALREADY_EXISTS, an unknown
#     rule NOT_FOUND) changing nothing, replace and RemoveClusterRule; what the API left is
#     what `keel cluster rule list --json` shows on every host;
#   - DRS: GetDrsStatus (defaults, the violated rule, its fix as the first recommendation),
#     SetDrsConfig round trip (and `keel cluster drs status --json` on another host shows
#     it) with its refusals; a ReadOnly user reads but every change and apply is
#     PERMISSION_DENIED; ApplyDrsRecommendations (a Task) moves the recommended VM, after
#     which the cluster names another host as its owner and the rule holds.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no grpc module"; exit 77; }
command -v protoc >/dev/null || { echo "SKIP: protoc missing"; exit 77; }
[ -x /usr/bin/grpc_python_plugin ] || { echo "SKIP: grpc_python_plugin missing"; exit 77; }
need_kvm

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -Ei "DRS|rule|migrat" "$LAB/hosts/host$h/clusterd.out" | tail -15; }
		[ -f "$LAB/hosts/host$h/hostd.out" ] &&
			{ echo "--- hostd host$h"; grep -Ei "rule|DRS|task" "$LAB/hosts/host$h/hostd.out" | tail -15; }
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
all_healthy() { healthy 1 && healthy 2 && healthy 3; }
owner_host() { py "[v['owner_name'] for v in d['vms'] if v['name'] == '$1'][0]" "$(st 1)" || true; }
mkvm() { # HOST NAME
	kv "$1" vm create "$2" --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
		fail "create $2"
	kv "$1" vm power-on "$2" >/dev/null || fail "power-on $2"
}

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create drsapi >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy || fail "cluster not healthy: $(st 1)"
L=$(leader_of "$(st 1)")
F=3; [ "$F" = "$L" ] && F=2
echo "leader host$L; the API of follower host$F"
for n in da1 da2 dc1; do mkvm 1 $n; done
HOST2_ID=$(py "[h['id'] for h in d['hosts'] if h['name'] == 'host2'][0]" "$(st 1)")

mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto || fail "protoc"
for _ in $(seq 150); do
	grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$F/hostd.out" 2>/dev/null && break
	sleep 0.1
done
client() { # STEP: drs_api.py against host F's API
	nsenter --net="/run/netns/$prefix-lab-host$F" timeout 300 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/drs_api.py" "$T/stubs" "$LAB/hosts/host1/ca.crt" "$pwfile" \
		198.18.0.$F 8443 "host$F" "$1" da1 da2 dc1 "$HOST2_ID" 2>&1
}

# ---- rules --------------------------------------------------------------------------------------
got=$(client rules) || fail "drs_api.py rules: $got"
echo "$got"
[ "$(echo "$got" | tail -1)" = ok ] || fail "drs_api.py rules did not finish: $got"
[[ $got == *"rules: apart"* ]] || fail "the API left other rules: $got"
for h in 1 2 3; do
	j=$(kc $h rule list --json) || fail "rule list on host$h: $j"
	[ "$(py "[(r['name'], r['kind'], r['mandatory'], sorted(r['vms'])) for r in d['rules']]" "$j")" = \
		"[('apart', 'anti-affinity', True, ['da1', 'da2'])]" ] ||
		fail "keel cluster rule list --json on host$h after the API's changes: $j"
done
msg=$(kc "$L" events --json --limit 200)
[ "$(py "len([e for e in d['events'] if e['message'].startswith('rule pin removed')])" "$msg")" = 1 ] ||
	fail "no event for the removal of rule pin: $msg"

# ---- DRS ------------------------------------------------------------------------------------------
got=$(client drs) || fail "drs_api.py drs: $got"
echo "$got"
[ "$(echo "$got" | tail -1)" = ok ] || fail "drs_api.py drs did not finish: $got"
moved=$(echo "$got" | sed -n 's/^moved //p')
[ "$moved" = da1 ] || [ "$moved" = da2 ] || fail "the apply moved '$moved'"
o=$(owner_host "$moved")
[ -n "$o" ] && [ "$o" != host1 ] || fail "$moved is owned by '$o' after the apply"
on_owner() { [ "$(py 'd["vms"][0]["power_state"]' "$(kv "${o#host}" --json vm info "$moved" 2>/dev/null)")" = poweredOn ]; }
until_ok 15 on_owner || fail "$moved does not run on $o"
j=$(kc 2 drs status --json) || fail "drs status on host2: $j"
[ "$(py '(d["threshold"], d["hold_s"], d["mandatory_violated"])' "$j")" = "(3, 300, 0)" ] ||
	fail "keel cluster drs status --json after the API's changes: $j"
msg=$(kc "$L" events --json --limit 200)
[ "$(py "len([e for e in d['events'] if 'threshold 5' in e['message']])" "$msg")" -ge 1 ] ||
	fail "no event for SetDrsConfig: $msg"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo ok
