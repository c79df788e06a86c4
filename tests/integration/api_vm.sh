# VM operations and tasks through the Vim API on a 1-host lab (no cluster: hostd's
# certificate is self-signed), called by a third-party gRPC client (Debian's grpcio, stubs
# from proto/vim.proto alone) from inside the host's namespace: CreateVm, PowerOnVm,
# PowerOffVm, ReconfigureVm refused by vmkernel, WaitForTask, ListTasks, CancelTask's rule,
# a user without privileges refused, MigrateVm's clear error, DestroyVm
# (tests/integration/api_vm_client.py).
source "$(dirname "$0")/common.bash"
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

client() {
	nsenter --net="/run/netns/$prefix-lab-host1" timeout 50 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/api_vm_client.py" "$T/stubs" "$pwfile" 198.18.0.1 8443
}
for _ in $(seq 50); do # hostd listening
	nsenter --net="/run/netns/$prefix-lab-host1" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' \
		2>/dev/null && break
	sleep 0.1
done
client >"$T/client.out" 2>&1 || { cat "$T/client.out"; fail "the VM API"; }
cat "$T/client.out"
grep -q "^ok$" "$T/client.out" || fail "client did not finish"
grep -q "task-[0-9]* PowerOnVm (vm-.*) by root: success" "$LAB/hosts/host1/hostd.out" ||
	fail "task not logged"
lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
