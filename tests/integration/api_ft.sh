# FT through hostd's API (docs/ft.md, "The API") on a two-host lab, driven by a third-party
# gRPC client (api_ft_client.py, Debian's grpcio) from inside a host's namespace:
#   - host2 before it is in a cluster: GetVmFt and EnableVmFt are FAILED_PRECONDITION "this
#     host is not in a cluster";
#   - in a one-host cluster (host1) with a VM running on the shared datastore: GetVmFt says "not
#     protected"; unknown VMs and hosts are NOT_FOUND; a ReadOnly user is denied the changes;
#     FailoverVmFt and RestartVmFtSecondary of the unprotected VM fail with clusterd's
#     reason; EnableVmFt leaves the VM "needs secondary" (no other host) with its task
#     running; DisableVmFt makes it "not protected" and its task succeeds; CancelTask of an
#     EnableVmFt turns FT off again; the cluster's events hold the changes (on twice, off
#     twice);
#   - host2 joins: EnableVmFt with host2 as the secondary's host succeeds once the VM is
#     protected (its task describing "needs secondary" / "starting: secondary on host2" on
#     the way), GetVmFt on the owner shows the primary's figures and the inventory the
#     state and the secondary's host; FailoverVmFt succeeds once the VM runs on host2;
#     DisableVmFt turns FT off.
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
	[ -f "$LAB/hosts/host1/clusterd.out" ] &&
		{ echo "--- clusterd host1"; grep -Ei "FT" "$LAB/hosts/host1/clusterd.out" | tail -15; }
	[ -f "$LAB/hosts/host2/clusterd.out" ] &&
		{ echo "--- clusterd host2"; grep -Ei "FT" "$LAB/hosts/host2/clusterd.out" | tail -10; }
	[ -f "$LAB/hosts/host1/hostd.out" ] &&
		{ echo "--- hostd host1"; grep -Ei "FT|task" "$LAB/hosts/host1/hostd.out" | tail -25; }
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT

mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto || fail "protoc"
out=$(lab up 2 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
client() { # HOST CA NAME STEP [SECOND]
	nsenter --net="/run/netns/$prefix-lab-host$1" timeout 250 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/api_ft_client.py" "$T/stubs" "$2" "$pwfile" \
		198.18.0.$1 8443 "$3" "$4" ft1 "${5:-}" 2>&1
}
for h in 1 2; do
	listening() { nsenter --net="/run/netns/$prefix-lab-host$h" bash -c "exec 3<>/dev/tcp/198.18.0.$h/8443" 2>/dev/null; }
	until_ok 15 listening || fail "hostd on host$h does not listen"
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done

# ---- alone ------------------------------------------------------------------------------------
got=$(client 2 - localhost alone) || fail "api_ft_client.py alone: $got"
echo "$got"
[ "$(echo "$got" | tail -1)" = ok ] || fail "api_ft_client.py alone did not finish: $got"

# ---- a one-host cluster ---------------------------------------------------------------------------
kc 1 create ftapi >/dev/null || fail "create"
has_leader() { [ "$(py 'd["leader_id"] != 0' "$(st 1)")" = True ]; }
until_ok 20 has_leader || fail "no leader: $(st 1)"
kv 1 vm create ft1 --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "create ft1"
kv 1 vm power-on ft1 >/dev/null || fail "power-on ft1"
for _ in $(seq 150); do
	grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host1/hostd.out" 2>/dev/null && break
	sleep 0.1
done
got=$(client 1 "$LAB/hosts/host1/ca.crt" host1 cluster) || fail "api_ft_client.py cluster: $got"
echo "$got"
[ "$(echo "$got" | tail -1)" = ok ] || fail "api_ft_client.py cluster did not finish: $got"

# the cluster's events hold each change the API asked for
ev=$(kc 1 events --json --limit 400) || fail "events"
n_on=$(py "len([e for e in d['events'] if e['message'].startswith('FT: turned on for VM ft1')])" "$ev")
n_off=$(py "len([e for e in d['events'] if e['message'].startswith('FT: turned off for VM ft1')])" "$ev")
[ "$n_on" = 2 ] && [ "$n_off" = 2 ] || fail "FT events: $n_on on, $n_off off: $ev"
grep -Eq "task-[0-9]+: EnableVmFt of VM ft1 asked of the cluster" "$LAB/hosts/host1/hostd.out" ||
	fail "hostd did not log the EnableVmFt"

# ---- two hosts: protected, a test failover, off ------------------------------------------------------
tok=$(kc 1 join-token) || fail "join-token"
kc 2 join 198.18.0.1 --token "$tok" >/dev/null || fail "host2 join"
healthy() {
	local s
	s=$(st 1) || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected")]' "$s")" = True ]
}
until_ok 20 healthy || fail "cluster not healthy: $(st 1)"
t0=$(now_ms)
got=$(client 1 "$LAB/hosts/host1/ca.crt" host1 pair host2) || fail "api_ft_client.py pair: $got"
echo "$got"
[ "$(echo "$got" | tail -1)" = ok ] || fail "api_ft_client.py pair did not finish: $got"
echo "protected, failed over and off in $(($(now_ms) - t0)) ms"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo ok
