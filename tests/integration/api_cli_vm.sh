# keel's everyday commands through hostd's API (--server) on a 1-host lab (no cluster: the
# self-signed certificate pinned by thumbprint), keel run inside the host's namespace with
# its own config dir: vm create (a 64 MiB kguest), power-on, vm list showing it poweredOn
# (text and JSON), power-off; power-on --no-wait then task wait; power-off --json printing
# the final Task; task list showing the tasks; task cancel of an ended task refused; a
# power-on of a VM that does not exist exit 1 with the task's error (text and JSON); vm
# destroy; cluster status through the API on a host with no cluster; --no-wait refused
# without --server, and an API-only option (--kernel) refused with --server.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
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

out=$("$KEEL_BIN" lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
NETNS=/run/netns/$prefix-lab-host1
# keel as an operator on the host would run it: in its namespace, with a private config dir.
k() { nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" "$@"; }
ks() { k --server "$SRV" --timeout 30 "$@"; }
# expect RC CMD...: runs CMD, which must exit RC; its stdout and stderr in $msg.
expect() {
	local want=$1 rc
	shift
	set +e
	msg=$("$@" 2>&1); rc=$?
	set -e
	[ "$rc" = "$want" ] || fail "$*: exit $rc, not $want: $msg"
}

for _ in $(seq 50); do # hostd listening
	nsenter --net="$NETNS" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done
tp=$("$HOSTD" --thumbprint --state-dir "$LAB/hosts/host1" | grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') ||
	fail "hostd --thumbprint"
k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null ||
	fail "login"

# Options the API cannot carry, and --no-wait without the API, are usage errors.
expect 2 ks vm create bad1 --memory 64 --kernel /boot/vmlinuz
echo "$msg" | grep -q "not available through hostd's API" || fail "--kernel: $msg"
expect 2 k vm power-on x --no-wait --socket "$LAB/hosts/host1/vmkernel.sock"
echo "$msg" | grep -q "works through hostd's API only" || fail "local --no-wait: $msg"

# Create, power on, list.
msg=$(ks vm create apivm1 --kind kguest --memory 64) || fail "vm create: $msg"
echo "$msg"
echo "$msg" | grep -Eq "^Created VM apivm1 \(uuid [0-9a-f-]+\) on datastore [^ ]+\.$" ||
	fail "vm create output: $msg"
echo "$msg" | grep -Eq "^Config file: +/.*apivm1\.vmx$" || fail "vm create config file: $msg"
msg=$(ks vm power-on apivm1) || fail "vm power-on: $msg"
[ "$msg" = "Powered on VM apivm1." ] || fail "vm power-on output: $msg"
lj=$(ks vm list --json) || fail "vm list --json: $lj"
[ "$(py '[v["power_state"] for v in d["vms"] if v["name"] == "apivm1"]' "$lj")" = "['poweredOn']" ] ||
	fail "vm list: not poweredOn: $lj"
[ "$(py 'd["vms"][0]["memory_mib"]' "$lj")" = 64 ] || fail "vm list memory: $lj"
txt=$(ks vm list) || fail "vm list: $txt"
echo "$txt"
echo "$txt" | grep -Eq "^apivm1 +powered on +64 MiB " || fail "vm list text: $txt"

# Power off and wait; power on without waiting, then task wait.
msg=$(ks vm power-off apivm1) || fail "vm power-off: $msg"
[ "$msg" = "Powered off VM apivm1." ] || fail "vm power-off output: $msg"
tid=$(ks vm power-on apivm1 --no-wait) || fail "power-on --no-wait: $tid"
echo "$tid" | grep -Eq "^task-[0-9]+$" || fail "--no-wait printed: $tid"
msg=$(ks task wait "$tid") || fail "task wait: $msg"
echo "$msg"
[ "$msg" = "$tid PowerOnVm: success, poweredOn" ] || fail "task wait output: $msg"
tj=$(ks vm power-off apivm1 --json) || fail "power-off --json: $tj"
[ "$(py '(d["ok"], d["kind"], d["state"], d["progress"], d["result"])' "$tj")" = \
	"(True, 'PowerOffVm', 'success', 100, 'poweredOff')" ] || fail "power-off --json: $tj"

# The tasks so far.
txt=$(ks task list) || fail "task list: $txt"
echo "$txt"
for kind in CreateVm PowerOnVm PowerOffVm; do
	echo "$txt" | grep -Eq "^task-[0-9]+ +$kind +[^ ]+ +success +100% +root " ||
		fail "task list: no $kind: $txt"
done
lj=$(ks task list --json --recent) || fail "task list --json: $lj"
[ "$(py 'any(t["id"] == "'"$tid"'" and t["state"] == "success" for t in d["tasks"])' "$lj")" = True ] ||
	fail "task list --json: $lj"
expect 1 ks task cancel "$tid"
echo "$msg" | grep -q "cannot be cancelled\|is not queued\|has ended" || fail "cancel of an ended task: $msg"
expect 1 ks task wait task-999999
echo "$msg" | grep -q "no task task-999999" || fail "wait of an unknown task: $msg"

# A VM that does not exist: the task ends in error, exit 1 with its error.
expect 1 ks vm power-on ghost-vm
echo "$msg"
echo "$msg" | grep -Eq "^keel: VM ghost-vm is not found on this host \(task-[0-9]+, PowerOnVm\)$" ||
	fail "power-on of a missing VM: $msg"
set +e
ej=$(ks vm power-on ghost-vm --json 2>/dev/null); rc=$?
set -e
[ "$rc" = 1 ] || fail "power-on ghost --json: exit $rc"
[ "$(py '(d["ok"], d["state"], d["exit_code"], "not found" in d["error"])' "$ej")" = \
	"(False, 'error', 1, True)" ] || fail "power-on ghost --json: $ej"

# Destroy.
msg=$(ks vm destroy apivm1) || fail "vm destroy: $msg"
[ "$msg" = "Destroyed VM apivm1." ] || fail "vm destroy output: $msg"
lj=$(ks vm list --json) || fail "vm list after destroy: $lj"
[ "$(py '[v["name"] for v in d["vms"] if v["name"] == "apivm1"]' "$lj")" = "[]" ] ||
	fail "apivm1 still listed: $lj"

# The cluster through the API, on a host that is in none.
msg=$(ks cluster status) || fail "cluster status: $msg"
echo "$msg"
echo "$msg" | grep -Eq "^Cluster: +\(none\)$" || fail "cluster status: $msg"
cj=$(ks cluster status --json) || fail "cluster status --json: $cj"
[ "$(py '(d["ok"], d["cluster"], d["hosts"], d["isolated"])' "$cj")" = "(True, None, [], False)" ] ||
	fail "cluster status --json: $cj"
expect 2 ks cluster status --cluster-socket /nonexistent
echo "$msg" | grep -q "does not apply through hostd's API" || fail "--cluster-socket: $msg"

k --server "$SRV" logout >/dev/null || fail "logout"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
