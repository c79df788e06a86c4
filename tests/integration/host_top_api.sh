# `keel host top` and QueryPerf through hostd's API on a 1-host lab (docs/top.md): with a
# kguest VM powered on, keel --server host top --batch gives CSV rows of the VM with CPU and
# VM exits above zero, --json the same; a third-party gRPC client
# (tests/integration/host_top_client.py) checks QueryPerf's figures and its refusals.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "SKIP: no python3-grpcio"; exit 77; }
[ -w /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }

LAB=$T/lab
HOSTD=$PWD/$BUILD/bin/hostd
SRV=https://198.18.0.1:8443
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

out=$("$KEEL_BIN" lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
NETNS=/run/netns/$prefix-lab-host1
k() { nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" "$@"; }
ks() { k --server "$SRV" --timeout 30 "$@"; }
kl() { k --socket "$LAB/hosts/host1/vmkernel.sock" "$@"; }

for _ in $(seq 50); do # hostd listening
	nsenter --net="$NETNS" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done
tp=$("$HOSTD" --thumbprint --state-dir "$LAB/hosts/host1" | grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') ||
	fail "hostd --thumbprint"
k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null ||
	fail "login"

kl vm create topapi1 --memory 64 --vcpus 1 --cmdline "counter_ms=50 hb_ms=50" >/dev/null ||
	fail "create topapi1"
kl vm power-on topapi1 >/dev/null || fail "power-on topapi1"

ks host top --batch --iterations 2 --interval 1 >"$T/top.csv" || fail "host top --server --batch"
python3 - "$T/top.csv" <<'PY' || fail "CSV through the API: $(cat "$T/top.csv")"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["world"] == "topapi1"]
assert len(rows) == 2, rows
for r in rows:
    assert float(r["cpu_used_pct"]) > 0 and float(r["exits_s"]) > 0, r
PY
js=$(ks --json host top --vm topapi1) || fail "host top --server --json: $js"
[ "$(py '[w["name"] for w in d["perf"]["worlds"]]' "$js")" = "['topapi1']" ] || fail "--json: $js"
[ "$(py 'd["perf"]["worlds"][0]["exits_s"] > 0' "$js")" = True ] || fail "--json exits: $js"
set +e
msg=$(ks host top --vm nosuchvm --batch --iterations 1 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "unknown VM through the API: exit $rc: $msg"
echo "$msg" | grep -q "no VM named nosuchvm" || fail "unknown VM through the API: $msg"

nsenter --net="$NETNS" timeout 80 /usr/bin/python3 "$KEEL_TOP/tests/integration/host_top_client.py" \
	"$T/stubs" "$pwfile" 198.18.0.1 8443 topapi1 || fail "host_top_client.py"
kl vm power-off topapi1 >/dev/null || fail "power-off"
echo "ok: host top through the API"
