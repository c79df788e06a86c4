# The Vim API on a 2-host lab cluster, called by a third-party gRPC client (Debian's grpcio,
# stubs from proto/vim.proto alone) from inside host1's namespace: hostd on each host, its
# certificate switched to the cluster CA's after the join, Login (a wrong password
# refused), and RetrieveInventory answering for the whole cluster from either host — the
# hosts, the cluster, a VM on host2 with its owner, epoch and power state (known in full on
# its host, its desired power elsewhere), the shared datastore and the networks. Then keel
# through the API: remove-host and leave refused (a VM, a connected host), host2 leaving and
# joining again through its API (its certificate self-signed in between).
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "SKIP: no python3-grpcio"; exit 77; }
[ -w /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }

LAB=$T/lab
lab() { "$KEEL_BIN" lab "$@"; }
kv() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 30 "$@"; }
lab_cleanup() {
	set +e
	for h in 1 2; do [ -f "$LAB/hosts/host$h/hostd.out" ] && { echo "--- hostd host$h"; tail -15 "$LAB/hosts/host$h/hostd.out"; }; done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto

out=$(lab up 2 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
[ "$(stat -c %a "$pwfile")" = 600 ] || fail "root-password mode"
for _ in $(seq 100); do
	[ "$(py 'd["node_state"]' "$(kv 1 cluster status --json 2>/dev/null || echo '{"node_state":""}')")" = "not bootstrapped" ] && break
	sleep 0.1
done
kv 1 cluster create api >/dev/null || fail "create"
tok=$(kv 1 cluster join-token) || fail "join-token"
kv 2 cluster join 198.18.0.1 --token "$tok" >/dev/null || fail "join"
kv 2 vm create api1 --memory 64 --datastore shared1 --cmdline "counter_ms=500" >/dev/null || fail "vm create"
kv 2 vm power-on api1 >/dev/null || fail "vm power-on"
host2=$(py '[h["id"] for h in d["hosts"] if h["name"] == "host2"][0]' "$(kv 1 cluster status --json)")

# hostd notices the cluster's certificate (host.crt, written by the join) within seconds and
# serves it to new connections.
for h in 1 2; do
	for _ in $(seq 150); do
		grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$h/hostd.out" && break
		sleep 0.1
	done
	grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$h/hostd.out" ||
		fail "hostd on host$h did not take the cluster certificate"
done

client() { # HOST NAME EXPECT
	nsenter --net="/run/netns/$prefix-lab-host1" timeout 60 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/api_lab_client.py" "$T/stubs" "$LAB/hosts/host1/ca.crt" \
		"$pwfile" "$1:8443" "$2" "$3"
}
ok=
for _ in $(seq 20); do
	client 198.18.0.2 host2 "{\"hosts\": [\"host1\", \"host2\"], \"cluster\": \"api\", \"vm\": \"api1\", \"vm_host\": \"host-$host2\", \"vm_power\": \"poweredOn\", \"vm_desired\": \"poweredOn\"}" >"$T/c2.out" 2>&1 && { ok=1; break; }
	sleep 0.5
done
cat "$T/c2.out"
[ -n "$ok" ] || fail "the API on host2"
client 198.18.0.1 host1 "{\"hosts\": [\"host1\", \"host2\"], \"cluster\": \"api\", \"vm\": \"api1\", \"vm_host\": \"host-$host2\", \"vm_power\": \"\", \"vm_desired\": \"poweredOn\"}" ||
	fail "the API on host1"
grep -q "user root logged in" "$LAB/hosts/host2/hostd.out" || fail "login not logged"
grep -q "login of root from .* failed: wrong password" "$LAB/hosts/host2/hostd.out" ||
	fail "failed login not logged"
kv 2 vm power-off api1 >/dev/null

# keel through the API from host1's namespace (its own config dir), trusting the cluster CA:
# remove-host by the API's id refused while host2 owns a VM and while it is connected (the
# tasks' errors), leave refused for the VM too; the VM destroyed, host2 leaves through its
# API, its hostd goes back to the self-signed certificate (pinned by thumbprint), and host2
# joins again through its API with a token from host1's (an empty token a usage error).
NS1=/run/netns/$prefix-lab-host1
S1=https://198.18.0.1:8443
S2=https://198.18.0.2:8443
k() { nsenter --net="$NS1" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" --timeout 30 "$@"; }
expect() { # RC CMD...: CMD must exit RC; its output in $msg
	local want=$1 rc
	shift
	set +e
	msg=$("$@" 2>&1); rc=$?
	set -e
	echo "$msg"
	[ "$rc" = "$want" ] || fail "$*: exit $rc, not $want: $msg"
}
for s in "$S1" "$S2"; do
	k login --server "$s" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" \
		>/dev/null || fail "keel login $s with the cluster CA"
done
cid=$(py 'd["cluster_id"]' "$(kv 1 cluster status --json)")
expect 1 k --server "$S1" cluster remove-host "host-$host2"
echo "$msg" | grep -Eq "^keel: clusterd: host host2 owns 1 VM.* \(task-[0-9]+, ClusterRemoveHost\)$" ||
	fail "remove-host of a host with a VM: $msg"
expect 1 k --server "$S2" cluster leave
echo "$msg" | grep -Eq "^keel: clusterd: host host2 owns 1 VM.* \(task-[0-9]+, ClusterLeave\)$" ||
	fail "leave of a host with a VM: $msg"
expect 0 k --server "$S2" vm destroy api1
expect 1 k --server "$S1" cluster remove-host "host-$host2"
echo "$msg" | grep -q "host host2 is connected: run .keel cluster leave. on it instead" ||
	fail "remove-host of a connected host: $msg"
expect 0 k --server "$S2" cluster leave --json
[ "$(py '(d["ok"], d["kind"], d["state"])' "$msg")" = "(True, 'ClusterLeave', 'success')" ] ||
	fail "leave --json: $msg"
[ "$(py '[h["name"] for h in d["hosts"]]' "$(k --server "$S1" cluster status --json)")" = "['host1']" ] ||
	fail "host2 still listed after leaving"
ok=
for _ in $(seq 100); do # hostd takes the self-signed certificate again
	tp2=$("$PWD/$BUILD/bin/hostd" --thumbprint --state-dir "$LAB/hosts/host2" |
		grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}')
	k login --server "$S2" --user root --password-file "$pwfile" --thumbprint "$tp2" \
		>/dev/null 2>&1 && { ok=1; break; }
	sleep 0.1
done
[ -n "$ok" ] || fail "host2's hostd did not go back to its self-signed certificate"
tok=$(k --server "$S1" cluster join-token) || fail "join-token through the API"
expect 2 k --server "$S2" cluster join 198.18.0.1 --token ""
echo "$msg" | grep -q -- "--token is required" || fail "empty token: $msg"
expect 0 k --server "$S2" cluster join 198.18.0.1 --token "$tok"
[ "$msg" = "Joined cluster api (cluster-$cid) through 198.18.0.1." ] || fail "join output: $msg"
for _ in $(seq 50); do
	st=$(k --server "$S1" cluster status --json)
	[ "$(py 'sorted((h["name"], h["state"]) for h in d["hosts"])' "$st")" = \
		"[('host1', 'connected'), ('host2', 'connected')]" ] && break
	sleep 0.2
done
[ "$(py 'sorted((h["name"], h["state"]) for h in d["hosts"])' "$st")" = \
	"[('host1', 'connected'), ('host2', 'connected')]" ] || fail "host2 not back: $st"
tj=$(k --server "$S2" task list --json) || fail "task list"
[ "$(py '[(t["kind"], t["state"]) for t in d["tasks"] if t["kind"].startswith("Cluster")]' "$tj")" = \
	"[('ClusterLeave', 'error'), ('ClusterLeave', 'success'), ('ClusterJoin', 'success')]" ] ||
	fail "host2's cluster tasks: $tj"

lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
