# Host configuration and the VM console through hostd's API on a 1-host lab (no cluster:
# the self-signed certificate pinned by thumbprint): keel over --server inside the host's
# namespace adds a datastore, a portgroup and a VMkernel adapter with a tag, sees them in
# GetHostConfig (host config show, the lists) and in the inventory, changes the adapter's
# address, MTU and tags (set, set-mtu, tag remove), gets vmkernel's text back in the task's
# error for an unknown portgroup and a bad address, removes them all; enters and leaves
# maintenance mode on the standalone host (DIR/maintenance). Then a third-party gRPC client
# (tests/integration/api_host_client.py) checks GetHostConfig's refusals and a ReadOnly user
# denied ChangeDatastore and SetMaintenance, and, with a kguest VM powered on, the console:
# its end, follow mode receiving new output, cancelled streams while hostd keeps answering.
# keel vm console --server prints the log's end and follows it until stopped. Last, in a
# cluster made on the host, maintenance goes to clusterd and DIR/maintenance stays as it was.
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
expect() {
	local want=$1 rc
	shift
	set +e
	msg=$("$@" 2>&1); rc=$?
	set -e
	[ "$rc" = "$want" ] || fail "$*: exit $rc, not $want: $msg"
}
client() {
	nsenter --net="$NETNS" timeout 80 /usr/bin/python3 \
		"$KEEL_TOP/tests/integration/api_host_client.py" "$T/stubs" "$pwfile" 198.18.0.1 8443 "$@"
}
config() { ks host config show --json; }

for _ in $(seq 50); do # hostd listening
	nsenter --net="$NETNS" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done
tp=$("$HOSTD" --thumbprint --state-dir "$LAB/hosts/host1" | grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') ||
	fail "hostd --thumbprint"
k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null ||
	fail "login"

# The configuration as the lab made it.
cj=$(config) || fail "host config show: $cj"
[ "$(py 'd["maintenance"]' "$cj")" = False ] || fail "maintenance at start: $cj"
[ "$(py '[p["portgroup"] for p in d["portgroups"] if p["portgroup"] == "Management Network"]' "$cj")" = "['Management Network']" ] ||
	fail "no Management Network: $cj"
txt=$(ks host config show) || fail "host config show: $txt"
echo "$txt"
echo "$txt" | grep -Eq "^Maintenance: +no$" || fail "host config show text: $txt"
echo "$txt" | grep -Eq "^Management Network +vSwitch0" || fail "host config show portgroups: $txt"
expect 2 k host config show --socket "$LAB/hosts/host1/vmkernel.sock"
echo "$msg" | grep -q "works through hostd's API only" || fail "config show without --server: $msg"

# A datastore.
mkdir -p "$T/apids"
msg=$(ks datastore add apids "$T/apids") || fail "datastore add: $msg"
[ "$msg" = "Added datastore apids at $T/apids." ] || fail "datastore add output: $msg"
expect 2 ks datastore add relds relative/dir
echo "$msg" | grep -q "must be absolute" || fail "relative path: $msg"
lj=$(ks datastore list --json) || fail "datastore list: $lj"
[ "$(py '[x["path"] for x in d["datastores"] if x["name"] == "apids"]' "$lj")" = "['$T/apids']" ] ||
	fail "datastore list: $lj"
inv=$(ks inventory --json) || fail "inventory: $inv"
echo "$inv" | grep -q '"ds-apids"' || fail "ds-apids not in the inventory: $inv"

# A portgroup, and a VMkernel adapter with a tag on it.
msg=$(ks network portgroup add APITest --vswitch vSwitch1) || fail "portgroup add: $msg"
[ "$msg" = "Added portgroup APITest on vSwitch vSwitch1." ] || fail "portgroup add output: $msg"
txt=$(ks network portgroup list) || fail "portgroup list: $txt"
echo "$txt" | grep -Eq "^APITest +vSwitch1 +- +net-APITest$" || fail "portgroup list: $txt"
inv=$(ks inventory --json) || fail "inventory: $inv"
echo "$inv" | grep -q '"net-APITest"' || fail "net-APITest not in the inventory: $inv"

if [ "$(py 'len(d["vmknics"])' "$cj")" = 0 ]; then
	echo "NOTE: this vmkernel has no VMkernel adapters: the vmknic part is skipped"
else
	msg=$(ks network vmknic add vmk5 --portgroup APITest --ip 198.18.9.11/24 --tag Provisioning) ||
		fail "vmknic add: $msg"
	[ "$msg" = "Added VMkernel adapter vmk5 (198.18.9.11/24) on portgroup APITest." ] ||
		fail "vmknic add output: $msg"
	cj=$(config) || fail "host config show: $cj"
	[ "$(py '[(n["ipv4"], n["tags"], n["portgroup"]) for n in d["vmknics"] if n["name"] == "vmk5"]' "$cj")" = \
		"[('198.18.9.11/24', ['Provisioning'], 'APITest')]" ] || fail "vmk5 in the config: $cj"
	# Address, MTU and tags at once, then one at a time.
	msg=$(ks network vmknic set vmk5 --ip 198.18.9.12 --netmask 255.255.255.0 --mtu 1400 \
		--tag Provisioning --tag VMotion) || fail "vmknic set: $msg"
	[ "$msg" = "Changed VMkernel adapter vmk5." ] || fail "vmknic set output: $msg"
	cj=$(config) || fail "host config show: $cj"
	[ "$(py '[(n["ipv4"], n["mtu"], sorted(n["tags"])) for n in d["vmknics"] if n["name"] == "vmk5"]' "$cj")" = \
		"[('198.18.9.12/24', 1400, ['Provisioning', 'VMotion'])]" ] || fail "vmk5 after set: $cj"
	msg=$(ks network vmknic tag remove vmk5 VMotion) || fail "tag remove: $msg"
	msg=$(ks network vmknic set-mtu vmk5 1500) || fail "set-mtu: $msg"
	lj=$(ks network vmknic list --json) || fail "vmknic list: $lj"
	[ "$(py '[(n["mtu"], n["tags"]) for n in d["vmknics"] if n["name"] == "vmk5"]' "$lj")" = \
		"[(1500, ['Provisioning'])]" ] || fail "vmk5 after tag remove, set-mtu: $lj"
	txt=$(ks network vmknic list) || fail "vmknic list: $txt"
	echo "$txt" | grep -Eq "^vmk5 +APITest +defaultTcpipStack +198\.18\.9\.12/24 +1500 +Provisioning$" ||
		fail "vmknic list text: $txt"
	# vmkernel's refusals come back as the task's error.
	expect 1 ks network vmknic add vmk6 --portgroup NoSuchPG --ip 198.18.9.20/24
	echo "$msg" | grep -q 'no portgroup named "NoSuchPG"' || fail "unknown portgroup: $msg"
	echo "$msg" | grep -Eq "\(task-[0-9]+, ChangeVmknic\)" || fail "unknown portgroup, task: $msg"
	expect 1 ks network vmknic set vmk5 --ip 300.1.1.1/24
	echo "$msg" | grep -q 'IPv4 address "300.1.1.1/24"' || fail "bad ip: $msg"
	set +e
	msg=$(ks --json network vmknic set vmk5 --ip 300.1.1.1/24 2>/dev/null); rc=$?
	set -e
	[ "$rc" = 1 ] || fail "bad ip --json: exit $rc: $msg"
	[ "$(py '(d["state"], d["ok"], d["kind"])' "$msg")" = "('error', False, 'ChangeVmknic')" ] ||
		fail "bad ip --json: $msg"
	expect 2 ks network vmknic add vmk7 --portgroup APITest --ip 198.18.9.30/24 --gateway 198.18.9.1
	echo "$msg" | grep -q "not available through hostd's API" || fail "--gateway: $msg"
	msg=$(ks network vmknic remove vmk5) || fail "vmknic remove: $msg"
	cj=$(config) || fail "host config show: $cj"
	[ "$(py '[n for n in d["vmknics"] if n["name"] == "vmk5"]' "$cj")" = "[]" ] || fail "vmk5 stays: $cj"
fi

# Removing what was added; an unknown one is vmkernel's error.
msg=$(ks network portgroup remove APITest) || fail "portgroup remove: $msg"
[ "$msg" = "Removed portgroup APITest." ] || fail "portgroup remove output: $msg"
msg=$(ks datastore remove apids) || fail "datastore remove: $msg"
expect 1 ks datastore remove apids
echo "$msg" | grep -q "ChangeDatastore" || fail "removing an unknown datastore: $msg"
cj=$(config) || fail "host config show: $cj"
[ "$(py '[x for x in d["datastores"] if x["name"] == "apids"] + [p for p in d["portgroups"] if p["portgroup"] == "APITest"]' "$cj")" = "[]" ] ||
	fail "removed objects stay: $cj"

# Maintenance mode on a standalone host.
msg=$(ks host maintenance enter) || fail "maintenance enter: $msg"
[ "$msg" = "Host (this host) entered maintenance mode." ] || fail "maintenance enter output: $msg"
[ "$(py 'd["maintenance"]' "$(config)")" = True ] || fail "not in maintenance"
[ "$(cat "$LAB/hosts/host1/maintenance")" = 1 ] || fail "DIR/maintenance"
expect 1 ks host maintenance enter otherhost9
echo "$msg" | grep -q "otherhost9 is not this host" || fail "another host's maintenance: $msg"
msg=$(ks --json host maintenance exit) || fail "maintenance exit: $msg"
[ "$(py '(d["kind"], d["state"])' "$msg")" = "('SetMaintenance', 'success')" ] || fail "exit --json: $msg"
[ "$(py 'd["maintenance"]' "$(config)")" = False ] || fail "still in maintenance"

# The third party's view: refusals and a ReadOnly user.
client config >"$T/client.out" 2>&1 || { cat "$T/client.out"; fail "the config phase"; }
cat "$T/client.out"
grep -q "^ok$" "$T/client.out" || fail "config phase did not finish"

# The console of a kguest VM.
msg=$(ks vm create hostcon --kind kguest --memory 64) || fail "vm create: $msg"
msg=$(ks vm power-on hostcon) || fail "vm power-on: $msg"
for _ in $(seq 100); do # its first lines
	out=$(ks vm console hostcon 2>&1) && echo "$out" | grep -q "kguest: up" && break
	sleep 0.1
done
echo "$out" | grep -q "kguest: up" || fail "vm console: $out"
expect 2 ks vm console hostcon --tail 2000000
echo "$msg" | grep -q "at most 1048576" || fail "--tail too big: $msg"
expect 1 ks vm console nosuchvm
echo "$msg" | grep -q "not found" || fail "console of an unknown VM: $msg"
cj=$(ks --json vm console hostcon) || fail "vm console --json: $cj"
tail=$(py 'd["console_tail"]' "$cj")
grep -q "kguest: up" <<<"$tail" || fail "vm console --json: $cj"
# --follow from the end: the counter lines it prints were written after it started.
set +e
nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 3.5 "$KEEL_BIN" \
	--server "$SRV" vm console hostcon --follow --tail 1 >"$T/follow.out" 2>&1
rc=$?
set -e
[ "$rc" = 124 ] || fail "console --follow ended by itself ($rc): $(cat "$T/follow.out")"
grep -q "kguest: counter" "$T/follow.out" || fail "console --follow: $(cat "$T/follow.out")"
info=$(k --socket "$LAB/hosts/host1/vmkernel.sock" --json vm info hostcon) || fail "vm info: $info"
conlog=$(py 'd["vms"][0]["console_log"]' "$info")
[ -f "$conlog" ] || fail "no console log at '$conlog'"
client console hostcon "$conlog" >"$T/client.out" 2>&1 || { cat "$T/client.out"; fail "the console phase"; }
cat "$T/client.out"
grep -q "^ok$" "$T/client.out" || fail "console phase did not finish"
ks host config show >/dev/null || fail "hostd stopped answering after the console streams"
msg=$(ks vm power-off hostcon) || fail "vm power-off: $msg"
msg=$(ks vm destroy hostcon) || fail "vm destroy: $msg"
grep -q "task-[0-9]* ChangeVmknic (host-[0-9]*) by root: error" "$LAB/hosts/host1/hostd.out" ||
	grep -q "ChangeDatastore (host-[0-9]*) by root: error" "$LAB/hosts/host1/hostd.out" ||
	fail "the failed changes are not logged"
# In a cluster the flag is clusterd's: SetMaintenance is clusterd's ClusterMaintenance
# (its answer, done or refused, is the task's) and DIR/maintenance is left alone.
kv() { "$KEEL_BIN" --socket "$LAB/hosts/host1/vmkernel.sock" --timeout 30 "$@"; }
for _ in $(seq 100); do # clusterd has found vmk0
	[ "$(py 'd["node_state"]' "$(kv cluster status --json 2>/dev/null || echo '{"node_state":""}')")" = "not bootstrapped" ] && break
	sleep 0.1
done
kv cluster create hostcl >/dev/null || fail "cluster create"
for _ in $(seq 100); do # hostd serves the cluster CA's certificate: the pinned session fails
	set +e
	ks host config show >/dev/null 2>&1; rc=$?
	set -e
	[ "$rc" = 3 ] && break
	sleep 0.1
done
k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null ||
	fail "login with the cluster CA"
set +e
msg=$(ks host maintenance enter 2>&1); rc=$?
set -e
echo "maintenance enter in a cluster: exit $rc: $msg"
if [ "$rc" = 0 ]; then
	# GetHostConfig reads the cluster's flag (DIR/maintenance says 0, checked below).
	[ "$(py 'd["maintenance"]' "$(config)")" = True ] || fail "not in maintenance in the cluster"
	msg=$(ks host maintenance exit) || fail "maintenance exit in the cluster: $msg"
	[ "$(py 'd["maintenance"]' "$(config)")" = False ] || fail "still in maintenance in the cluster"
else
	[ "$rc" = 1 ] && echo "$msg" | grep -Eq "^keel: clusterd: .*\(task-[0-9]+, SetMaintenance\)$" ||
		fail "maintenance in a cluster: exit $rc: $msg"
fi
[ "$(cat "$LAB/hosts/host1/maintenance")" = 0 ] || fail "DIR/maintenance changed in a cluster"

"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
