# hostd under bad input and heavy load (docs/hostd-tests.md), driven by Debian's grpcio and
# hand-made HTTP/2 frames (api_negative_client.py):
# 1. a lone hostd on 127.0.0.1: bad --session-idle-timeout values are refused; made-up and
#    logged-out sessions, the 4 MiB boundary and a bare 4 GiB prefix, malformed bodies,
#    truncated frames then close, frames with bad lengths (GOAWAY; other connections live
#    on), 1,000 concurrent calls on one channel and over 8, one connection opening 1,000
#    streams at once (answered or REFUSED_STREAM); hostd's memory stays bounded;
# 2. the same hostd restarted with --session-idle-timeout 2: sessions used every second
#    live, idle ones are refused UNAUTHENTICATED;
# 3. with root and /dev/kvm: a 1-host lab started with KEEL_LAB_SESSION_IDLE_S=2 (the lab
#    passes it to hostd), 1,000 concurrent RetrieveInventory calls, then expiry.
source "$(dirname "$0")/common.bash"
case "$BUILD" in *asan*) export KEEL_ASAN=1 ;; esac
KEEL_TOP=${KEEL_TOP:-$PWD}
HOSTD=$PWD/$BUILD/bin/hostd
CLIENT=$KEEL_TOP/tests/integration/api_negative_client.py

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

# Bad option values: a clear message and exit 2, before anything starts.
for bad in 0 -5 abc 12x 604801 99999999999999999999; do
	if "$HOSTD" --state-dir "$T/state" --session-idle-timeout "$bad" >"$T/opt.out" 2>&1; then
		fail "--session-idle-timeout $bad accepted"
	fi
	grep -q "bad --session-idle-timeout '$bad': seconds, 1..604800" "$T/opt.out" ||
		fail "--session-idle-timeout $bad: $(cat "$T/opt.out")"
done
"$HOSTD" --help | grep -q -- '--session-idle-timeout SECONDS' || fail "--help lacks the option"
echo "ok bad --session-idle-timeout values refused"

start_hostd() {
	"$HOSTD" --state-dir "$T/state" --listen "127.0.0.1:$PORT" --log-level debug "$@" \
		>"$T/hostd.out" 2>>"$T/hostd.log" &
	HOSTD_PID=$!
	PIDS+=("$HOSTD_PID")
	wait_for "$T/hostd.log" 'hostd ready' 10
}

stop_hostd() {
	kill -TERM "$HOSTD_PID"
	wait "$HOSTD_PID" || fail "hostd exited with $?"
	grep -q 'handles open' "$T/hostd.log" && fail "handles left open at stop"
	return 0
}

client() {
	timeout "$1" /usr/bin/python3 "$CLIENT" "$T/stubs" 127.0.0.1 "$PORT" "$T/state/hostd.crt" \
		"$T/state/root-password" "$HOSTD_PID" "$2" >"$T/client-$2.out" 2>&1 ||
		{ cat "$T/client-$2.out"; fail "client $2"; }
	cat "$T/client-$2.out"
	grep -q '^ok all$' "$T/client-$2.out" || fail "client $2 did not finish"
}

start_hostd
client 240 limits
grep -q 'HTTP/2 error\|closing' "$T/hostd.log" || fail "no connection error logged"
stop_hostd
mv "$T/hostd.log" "$T/hostd-limits.log"

start_hostd --session-idle-timeout 2
grep -q 'sessions expire after 2 s idle' "$T/hostd.log" || fail "the idle timeout not logged"
client 60 expiry
stop_hostd

# The lab's pass-through of KEEL_LAB_SESSION_IDLE_S.
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! [ -w /dev/kvm ]; then
	echo "SKIP (lab part): needs root, iproute2 and /dev/kvm"
	echo PASS
	exit 0
fi
LAB=$T/lab
lab_cleanup() {
	set +e
	for d in vmkernel hostd; do
		[ -f "$LAB/hosts/host1/$d.out" ] && { echo "--- $d host1"; tail -15 "$LAB/hosts/host1/$d.out"; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }
out=$(KEEL_LAB_SESSION_IDLE_S=2 "$KEEL_BIN" lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
st=$("$KEEL_BIN" lab status --dir "$LAB" --json) || fail "lab status"
hostd_pid=$(py '[x["pid"] for x in d["hosts"][0]["daemons"] if x["name"] == "hostd"][0]' "$st")
[ "$hostd_pid" -gt 0 ] 2>/dev/null || fail "no hostd pid in $st"
tr '\0' ' ' <"/proc/$hostd_pid/cmdline" | grep -q -- '--session-idle-timeout 2' ||
	fail "the lab did not pass --session-idle-timeout: $(tr '\0' ' ' <"/proc/$hostd_pid/cmdline")"
for _ in $(seq 50); do # hostd listening
	nsenter --net="/run/netns/$prefix-lab-host1" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' \
		2>/dev/null && break
	sleep 0.1
done
nsenter --net="/run/netns/$prefix-lab-host1" timeout 120 /usr/bin/python3 "$CLIENT" \
	"$T/stubs" 198.18.0.1 8443 - "$pwfile" "$hostd_pid" lab >"$T/client-lab.out" 2>&1 ||
	{ cat "$T/client-lab.out"; fail "client lab"; }
cat "$T/client-lab.out"
grep -q '^ok all$' "$T/client-lab.out" || fail "client lab did not finish"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
