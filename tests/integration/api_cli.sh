# keel through hostd's API (--server) on a 1-host lab (no cluster: hostd's certificate is
# self-signed, so keel pins it by thumbprint), keel run inside the host's namespace with
# its own config dir: a wrong password refused, login with --password-file and
# --thumbprint (the session file 0600 in a 0700 directory), `keel session`, the inventory
# as JSON listing the host and a VM made through the local socket, the inventory as tables,
# a wrong thumbprint refused naming both thumbprints, --server refused by a command that
# does not support it, logout, and then "not logged in"; then `cluster create` through the
# API (the task's line, a second create's error, an empty name refused, --no-wait refused
# locally) and the certificate switched to the cluster CA's: the pinned session refused,
# a login with --ca-file working.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -w /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }

LAB=$T/lab
HOSTD=$PWD/$BUILD/bin/hostd
SRV=https://198.18.0.1:8443
lab() { "$KEEL_BIN" lab "$@"; }
kv() { "$KEEL_BIN" --socket "$LAB/hosts/host1/vmkernel.sock" --timeout 30 "$@"; }
lab_cleanup() {
	set +e
	[ -f "$LAB/hosts/host1/hostd.out" ] && { echo "--- hostd host1"; tail -25 "$LAB/hosts/host1/hostd.out"; }
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

out=$(lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
NETNS=/run/netns/$prefix-lab-host1
# keel as an operator on the host would run it: in its namespace, with a private config dir.
k() { nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" "$@"; }

for _ in $(seq 50); do # hostd listening
	nsenter --net="$NETNS" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done
tp=$("$HOSTD" --thumbprint --state-dir "$LAB/hosts/host1" | grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') ||
	fail "hostd --thumbprint"
echo "thumbprint $tp"
kv vm create apicli1 --memory 64 >/dev/null || fail "vm create"

# Not logged in yet.
set +e
msg=$(k --server "$SRV" inventory 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "inventory before login: exit $rc: $msg"
echo "$msg" | grep -q "not logged in to $SRV: run keel login --server $SRV --user" ||
	fail "inventory before login: $msg"

# A wrong password.
echo "not-the-password" >"$T/badpw"
set +e
msg=$(k login --server "$SRV" --user root --password-file "$T/badpw" --thumbprint "$tp" 2>&1); rc=$?
set -e
echo "$msg"
[ "$rc" = 1 ] || fail "wrong password: exit $rc"
echo "$msg" | grep -q "login to $SRV as root failed: incorrect user name or password" ||
	fail "wrong password message: $msg"
[ ! -e "$T/cfg/sessions/198.18.0.1_8443" ] || fail "a refused login left a session file"

# The right one (the thumbprint without colons, lower case, works as well).
tp_bare=$(echo "$tp" | tr -d : | tr A-F a-f)
msg=$(k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$tp_bare") ||
	fail "login: $msg"
echo "$msg"
echo "$msg" | grep -Eq "^Logged in to $SRV as root \(session expires after [0-9]+ min idle\)$" ||
	fail "login output: $msg"
sf=$T/cfg/sessions/198.18.0.1_8443
[ "$(stat -c %a "$sf")" = 600 ] || fail "session file mode $(stat -c %a "$sf")"
[ "$(stat -c %a "$T/cfg/sessions")" = 700 ] || fail "sessions dir mode"
grep -q "^token=[0-9a-f]\{64\}$" "$sf" || fail "no token cached"
grep -q "$(cat "$pwfile")" "$sf" && fail "the password was cached"

# The session and the inventory.
msg=$(k --server "$SRV" session) || fail "session: $msg"
echo "$msg"
echo "$msg" | grep -Eq "^User: +root$" || fail "session user"
echo "$msg" | grep -q "System.Read" || fail "session privileges"
sj=$(k session --server "$SRV" --json) || fail "session --json: $sj"
[ "$(py 'd["user"]' "$sj")" = root ] || fail "session json: $sj"
[ "$(py '"token" in d' "$sj")" = False ] || fail "session --json shows the token"

inv=$(k --server "$SRV" inventory --json) || fail "inventory --json: $inv"
echo "$inv" | head -c 600; echo
[ "$(py 'd["ok"]' "$inv")" = True ] || fail "inventory ok"
# Outside a cluster the one host is named as vmkernel names it (host info's hostname).
hname=$(py 'd["host"]["hostname"]' "$(kv host info --json)")
[ "$(py '[h["name"] for h in d["hosts"]]' "$inv")" = "['$hname']" ] || fail "inventory hosts: $inv"
[ "$(py 'd["vms"][0]["host"] == d["hosts"][0]["id"]' "$inv")" = True ] || fail "VM's host: $inv"
[ "$(py '[v["name"] for v in d["vms"] if v["name"] == "apicli1"]' "$inv")" = "['apicli1']" ] ||
	fail "inventory VMs: $inv"
[ "$(py '[v["id"][:3] for v in d["vms"]][0]' "$inv")" = "vm-" ] || fail "VM id"
[ "$(py 'len(d["datastores"]) > 0 and len(d["networks"]) > 0' "$inv")" = True ] ||
	fail "inventory datastores/networks: $inv"
txt=$(k inventory --server "$SRV") || fail "inventory: $txt"
echo "$txt"
echo "$txt" | grep -q "^Hosts:" || fail "no hosts table"
echo "$txt" | grep -Eq "^vm-[0-9a-f-]+ +apicli1 " || fail "no VM row"
echo "$txt" | grep -q "^Datastores:" || fail "no datastores table"
# Through $KEEL_SERVER too.
nsenter --net="$NETNS" env KEEL_SERVER="$SRV" KEEL_CONFIG_DIR="$T/cfg" "$KEEL_BIN" inventory \
	--json >/dev/null || fail "inventory with KEEL_SERVER"

# A wrong thumbprint: refused before anything is sent, naming both.
wrong=00${tp:2}
set +e
msg=$(k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$wrong" 2>&1); rc=$?
set -e
echo "$msg"
[ "$rc" = 3 ] || fail "wrong thumbprint: exit $rc"
echo "$msg" | grep -q "has thumbprint $tp, but $wrong was expected" ||
	fail "wrong thumbprint message: $msg"
# No trust given: the system's CAs do not know a self-signed certificate.
set +e
msg=$(k login --server "$SRV" --user root --password-file "$pwfile" 2>&1); rc=$?
set -e
[ "$rc" = 3 ] || fail "untrusted: exit $rc: $msg"
echo "$msg" | grep -q "cannot verify the certificate of $SRV" || fail "untrusted: $msg"

# A command without API support refuses an explicit --server.
set +e
msg=$(k --server "$SRV" cluster config 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "cluster config --server: exit $rc"
echo "$msg" | grep -q "does not work through hostd's API" || fail "cluster config --server: $msg"

# A session hostd no longer knows: "log in again".
cp "$sf" "$T/stale"
sed -i 's/^token=.*/token=0000000000000000000000000000000000000000000000000000000000000000/' "$sf"
set +e
msg=$(k --server "$SRV" inventory 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "stale session: exit $rc"
echo "$msg" | grep -q "has expired or was ended.*log in again" || fail "stale session: $msg"
cp "$T/stale" "$sf"

# Logout ends the session on hostd and forgets it here.
msg=$(k --server "$SRV" logout) || fail "logout: $msg"
[ "$msg" = "Logged out of $SRV" ] || fail "logout output: $msg"
[ ! -e "$sf" ] || fail "session file left after logout"
set +e
msg=$(k --server "$SRV" inventory 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "inventory after logout: exit $rc"
echo "$msg" | grep -q "not logged in to $SRV" || fail "inventory after logout: $msg"
# The old token no longer works on hostd either.
cp "$T/stale" "$sf"
set +e
msg=$(k --server "$SRV" inventory 2>&1); rc=$?
set -e
[ "$rc" = 1 ] && echo "$msg" | grep -q "log in again" || fail "token alive after logout: $msg"
rm -f "$sf"

# A cluster created through the API: a task followed to its end, one line naming the
# cluster; hostd then serves the certificate the cluster CA signed, so the pinned session
# is refused and a login trusting the CA works.
kv vm destroy apicli1 >/dev/null 2>&1 || true
k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null ||
	fail "login before cluster create"
set +e
msg=$(k cluster create x --no-wait --socket "$LAB/hosts/host1/vmkernel.sock" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && echo "$msg" | grep -q "works through hostd's API only" ||
	fail "local create --no-wait: exit $rc: $msg"
set +e
msg=$(k --server "$SRV" cluster create "" 2>&1); rc=$?
set -e
[ "$rc" = 1 ] && echo "$msg" | grep -q "the cluster's name is required" ||
	fail "create with an empty name: exit $rc: $msg"
for _ in $(seq 100); do # clusterd has found vmk0
	[ "$(py 'd["node_state"]' "$(kv cluster status --json 2>/dev/null || echo '{"node_state":""}')")" = "not bootstrapped" ] && break
	sleep 0.1
done
msg=$(k --server "$SRV" cluster create apicli) || fail "cluster create: $msg"
echo "$msg"
echo "$msg" | grep -Eq "^Created cluster apicli \(cluster-[0-9a-f-]{36}\)\.$" ||
	fail "cluster create output: $msg"
cid=$(py 'd["cluster_id"]' "$(kv cluster status --json)")
echo "$msg" | grep -q "cluster-$cid" || fail "cluster create names another cluster than $cid: $msg"
ok=
for _ in $(seq 100); do
	set +e
	msg=$(k --server "$SRV" cluster status 2>&1); rc=$?
	set -e
	[ "$rc" = 3 ] && { ok=1; break; }
	sleep 0.1
done
[ -n "$ok" ] || fail "the pinned self-signed certificate is still served: $msg"
echo "$msg" | grep -q "has thumbprint .*, but $tp was expected" || fail "pinned session: $msg"
k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" ||
	fail "login with the cluster CA"
set +e
msg=$(k --server "$SRV" cluster create apicli2 2>&1); rc=$?
set -e
echo "$msg"
[ "$rc" = 1 ] || fail "second create: exit $rc"
echo "$msg" | grep -Eq "^keel: clusterd: .*apicli.* \(task-[0-9]+, ClusterCreate\)$" ||
	fail "second create: $msg"
msg=$(k --server "$SRV" cluster status) || fail "cluster status: $msg"
echo "$msg"
echo "$msg" | grep -Eq "^Cluster: +apicli$" || fail "cluster status after create: $msg"
echo "$msg" | grep -Eq "^Cluster id: +cluster-$cid$" || fail "cluster id: $msg"
tj=$(k --server "$SRV" task list --json) || fail "task list: $tj"
[ "$(py '[(t["state"], t["result"]) for t in d["tasks"] if t["kind"] == "ClusterCreate"]' "$tj")" = \
	"[('success', 'cluster-$cid'), ('error', '')]" ] || fail "ClusterCreate tasks: $tj"
k --server "$SRV" logout >/dev/null || fail "logout"

lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
