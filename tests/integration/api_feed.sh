# The change feed through the Vim API on a 1-host lab (docs/hostd.md, "Change feed"), called
# by a third-party gRPC client (Debian's grpcio, stubs from proto/vim.proto alone) from inside
# the host's namespace: WaitForUpdates(0) sends the current objects; CreateVm's VM and its
# task arrive; a power-on through the local keel socket shows up within 1 s (the latency is
# printed); a stream resumed from the last version gets only later changes; a client that
# never reads (raw HTTP/2 with a zero window) while thousands of changes happen does not
# grow hostd's memory, and other calls still answer (tests/integration/api_feed_client.py).
source "$(dirname "$0")/common.bash"
# an AddressSanitizer build: the client does not judge hostd's memory by its RSS
case "$BUILD" in *asan*) export KEEL_ASAN=1 ;; esac
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "SKIP: no python3-grpcio"; exit 77; }
[ -w /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }

LAB=$T/lab
lab() { "$KEEL_BIN" lab "$@"; }
lab_cleanup() {
	set +e
	[ -f "$LAB/hosts/host1/hostd.out" ] && { echo "--- hostd host1"; tail -25 "$LAB/hosts/host1/hostd.out"; }
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/vim.proto

out=$(lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
st=$(lab status --dir "$LAB" --json) || fail "lab status"
hostd_pid=$(py '[x["pid"] for x in d["hosts"][0]["daemons"] if x["name"] == "hostd"][0]' "$st")
[ "$hostd_pid" -gt 0 ] 2>/dev/null || fail "no hostd pid in $st"

for _ in $(seq 50); do # hostd listening
	nsenter --net="/run/netns/$prefix-lab-host1" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' \
		2>/dev/null && break
	sleep 0.1
done
nsenter --net="/run/netns/$prefix-lab-host1" timeout 55 /usr/bin/python3 \
	"$KEEL_TOP/tests/integration/api_feed_client.py" "$T/stubs" "$pwfile" 198.18.0.1 8443 \
	"$KEEL_BIN" "$LAB/hosts/host1/vmkernel.sock" "$hostd_pid" >"$T/client.out" 2>&1 ||
	{ cat "$T/client.out"; fail "the change feed"; }
cat "$T/client.out"
grep -q "^ok$" "$T/client.out" || fail "client did not finish"
grep -q "WaitForUpdates from .*: the client is not reading; paused at version" \
	"$LAB/hosts/host1/hostd.out" || fail "the slow client never filled its queue"
lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
