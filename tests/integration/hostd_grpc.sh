# hostd end to end with a third-party gRPC client (Debian's grpcio on /usr/bin/python3):
# TLS with the self-signed certificate (thumbprint as hostd prints it and as a TLS client
# sees it), UNIMPLEMENTED methods, INVALID_ARGUMENT and RESOURCE_EXHAUSTED before them, 200
# concurrent calls, garbage over TLS and over plain TCP, rapid reset, the per-address
# connection limit, HTTP 415/405 for non-gRPC requests, and a clean SIGTERM stop.
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
		>"$T/hostd.out" 2>"$T/hostd.log" &
	HOSTD_PID=$!
	PIDS+=("$HOSTD_PID")
	wait_for "$T/hostd.log" 'hostd ready' 10
}

start_hostd
[ "$(stat -c %a "$T/state/hostd.key")" = 600 ] || fail "hostd.key mode is not 0600"

# The thumbprint: printed at start, by --thumbprint, and of the certificate on the wire.
printed=$(sed -n 's/^thumbprint //p' "$T/hostd.out")
cli=$("$HOSTD" --thumbprint --state-dir "$T/state")
wire=$(openssl s_client -connect "127.0.0.1:$PORT" -alpn h2 </dev/null 2>/dev/null |
	openssl x509 -noout -fingerprint -sha256 | sed 's/^.*Fingerprint=//')
echo "thumbprint: printed $printed, --thumbprint $cli, on the wire $wire"
[ -n "$cli" ] && [ "$cli" = "$printed" ] && [ "$cli" = "$wire" ] || fail "thumbprints differ"
grep -q "thumbprint $cli" "$T/hostd.log" || fail "thumbprint not logged"

# Non-gRPC requests get HTTP statuses (gRPC spec: 415 for a wrong content-type).
if command -v curl >/dev/null; then
	url=https://127.0.0.1:$PORT/keel.vim.Vim/Login
	code=$(curl -sk --http2 -o /dev/null -w '%{http_code}' -X POST -H 'content-type: text/plain' \
		--data x "$url")
	[ "$code" = 415 ] || fail "text/plain POST: HTTP $code, want 415"
	code=$(curl -sk --http2 -o /dev/null -w '%{http_code}' "$url")
	[ "$code" = 405 ] || fail "GET: HTTP $code, want 405"
	echo "ok HTTP 415 and 405"
fi

timeout 60 /usr/bin/python3 "$KEEL_TOP/tests/integration/hostd_grpc_client.py" "$T/stubs" \
	"$PORT" "$T/state/hostd.crt" || fail "grpc client checks"

kill -0 "$HOSTD_PID" 2>/dev/null || fail "hostd died"
kill -TERM "$HOSTD_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$HOSTD_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$HOSTD_PID" 2>/dev/null && fail "hostd did not stop on SIGTERM"
wait "$HOSTD_PID" || fail "hostd exited with $?"
grep -q 'hostd stopped' "$T/hostd.log" || fail "no clean stop"
grep -q 'handles open' "$T/hostd.log" && fail "handles left open at stop"

# The self-signed certificate is made once: a restart presents the same one.
start_hostd
[ "$(sed -n 's/^thumbprint //p' "$T/hostd.out")" = "$cli" ] || fail "certificate changed on restart"
echo "PASS"
