# Users, roles and permissions through the Vim API, and the cluster calls on a host without
# clusterd: a lone hostd on 127.0.0.1 (no vmkernel, no clusterd) driven by Debian's grpcio
# (api_users_client.py). Root adds a user, a role and permissions; the refusals come back
# as the right gRPC statuses; a password change ends the user's sessions; after a restart
# everything is read back from DIR/auth.db.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
HOSTD=$PWD/$BUILD/bin/hostd

if ! /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
	echo "SKIP: /usr/bin/python3 has no grpc module (python3-grpcio)"
	exit 77
fi
if ! command -v protoc >/dev/null || ! [ -x /usr/bin/grpc_python_plugin ]; then
	echo "SKIP: protoc or /usr/bin/grpc_python_plugin missing"
	exit 77
fi

mkdir -p "$T/state" "$T/stubs"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_hostd() {
	"$HOSTD" --state-dir "$T/state" --listen "127.0.0.1:$PORT" --log-level debug \
		>"$T/hostd.out" 2>>"$T/hostd.log" &
	HOSTD_PID=$!
	PIDS+=("$HOSTD_PID")
	wait_for "$T/hostd.log" 'hostd ready' 10
}

stop_hostd() {
	kill -TERM "$HOSTD_PID"
	wait "$HOSTD_PID" || fail "hostd exited with $?"
}

client() {
	timeout 30 /usr/bin/python3 "$KEEL_TOP/tests/integration/api_users_client.py" "$T/stubs" \
		"$PORT" "$T/state/hostd.crt" "$(head -1 "$T/state/root-password")" "$1" ||
		fail "client phase $1"
}

start_hostd
client change
[ "$(stat -c %a "$T/state/auth.db")" = 600 ] || fail "auth.db is not 0600"
grep -q '^user ops ' "$T/state/auth.db" || fail "ops not in auth.db"
grep -q '^role operator ' "$T/state/auth.db" || fail "operator not in auth.db"
grep -q '^perm user ops ReadOnly root propagate$' "$T/state/auth.db" || fail "ops' permission not in auth.db"
grep -q 'ops-password' "$T/state/auth.db" "$T/hostd.log" && fail "a password was written out"
grep -q 'user ops changed by root, password changed (1 session ended)' "$T/hostd.log" ||
	fail "the password change was not logged"
stop_hostd

start_hostd
client persisted
stop_hostd
echo "PASS"
