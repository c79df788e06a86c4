# Users, roles and permissions replicated through the cluster (docs/hostd-auth.md,
# "Replication"), and maintenance mode in the cluster's state (docs/clusterd.md): a 3-host
# lab cluster, hostd on each host, driven by Debian's grpcio from host1's namespace and by
# clusterd's control socket (api_users_cluster.py). A user added on host1 logs in on host2
# and host3 within seconds with its ReadOnly rights; Admin given on host3 works on host1;
# removed on host2, it is refused everywhere. Concurrent changes on two hosts either
# succeed or are ABORTED, and the hosts converge on exactly the successful ones. A stale
# ClusterAuthSet is refused -ESTALE; ClusterMaintenance shows on every host with an event.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "SKIP: no python3-grpcio"; exit 77; }
if ! command -v protoc >/dev/null || ! [ -x /usr/bin/grpc_python_plugin ]; then
	echo "SKIP: protoc or /usr/bin/grpc_python_plugin missing"
	exit 77
fi
need_kvm

LAB=$T/lab
lab() { "$KEEL_BIN" lab "$@"; }
kv() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 30 "$@"; }
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/hostd.out" ] && { echo "--- hostd host$h"; grep -E 'users|auth|ABORT|replaced' "$LAB/hosts/host$h/hostd.out" | tail -15; }
		[ -f "$LAB/hosts/host$h/clusterd.out" ] && { echo "--- clusterd host$h"; tail -8 "$LAB/hosts/host$h/clusterd.out"; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto proto/cluster.proto

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for _ in $(seq 100); do
	[ "$(py 'd["node_state"]' "$(kv 1 cluster status --json 2>/dev/null || echo '{"node_state":""}')")" = "not bootstrapped" ] && break
	sleep 0.1
done
kv 1 cluster create users >/dev/null || fail "create"
# the first host to offer its users wins (docs/hostd-auth.md): let host1's hostd do so
# before the others join, whatever the phase of the hostds' 1 s ticks
for _ in $(seq 50); do
	grep -q "version 1 set by host host1" "$LAB/hosts/host1/clusterd.out" && break
	sleep 0.1
done
for h in 2 3; do
	tok=$(kv 1 cluster join-token) || fail "join-token"
	kv $h cluster join 198.18.0.1 --token "$tok" >/dev/null || fail "join host$h"
done
for h in 1 2 3; do
	for _ in $(seq 150); do
		grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$h/hostd.out" && break
		sleep 0.1
	done
	grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host$h/hostd.out" ||
		fail "hostd on host$h did not take the cluster certificate"
done
# host1 offered its users to the cluster; host2 and host3 took them when they joined.
for h in 2 3; do
	for _ in $(seq 100); do
		grep -q "users were replaced by the cluster's" "$LAB/hosts/host$h/hostd.out" && break
		sleep 0.1
	done
	grep -q "users were replaced by the cluster's" "$LAB/hosts/host$h/hostd.out" ||
		fail "host$h did not take the cluster's users"
done
grep -q "the cluster has no users yet: offering this host's" "$LAB/hosts/host1/hostd.out" ||
	fail "host1 did not offer its users"

client() {
	nsenter --net="/run/netns/$prefix-lab-host1" timeout 120 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/api_users_cluster.py" "$T/stubs" \
		"$LAB/hosts/host1/ca.crt" "$pwfile" "$LAB" "$1" || fail "client phase $1"
}
client replicate
for h in 1 2 3; do
	cmp -s "$LAB/hosts/host1/auth.db" "$LAB/hosts/host$h/auth.db" ||
		fail "auth.db of host$h differs from host1's"
	grep -q 'auditor-password' "$LAB/hosts/host$h/auth.db" "$LAB/hosts/host$h/hostd.out" &&
		fail "a password was written out on host$h"
	[ "$(stat -c %a "$LAB/hosts/host$h/auth.version")" = 600 ] || fail "auth.version mode on host$h"
done
client concurrent
client stale
client maintenance

st=$(kv 1 cluster status --json) || fail "status"
[ "$(py '[h.get("maintenance", False) for h in d["hosts"]]' "$st")" = "[False, False, False]" ] ||
	fail "maintenance in status: $st"
ev=$(kv 1 cluster events --json) || fail "events"
grep -q 'host host2 entered maintenance mode' <<<"$ev" || fail "no maintenance event: $ev"
grep -q 'host host2 left maintenance mode' <<<"$ev" || fail "no maintenance exit event"
grep -q 'users and permissions changed by host host1' <<<"$ev" || fail "no users event: $ev"
grep -q 'auditor' <<<"$ev" && fail "an event names a user: $ev"

lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
