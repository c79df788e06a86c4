# keel's user, role, perm, event and cert commands and certificate login, end to end on a
# 1-host lab, keel run inside the host's namespace as an operator would:
#  - as root (pinned by thumbprint): user add/list/passwd/remove, role privileges/add/
#    list/remove, perm set/list/remove, tables and --json, and the refusals (a duplicate
#    user or role, an unknown role or privilege, an unknown user's passwd, usage errors);
#  - a ReadOnly user reads but is denied `user add` (exit 1, "code" 7 PERMISSION_DENIED);
#    a new password ends its session ("log in again");
#  - `inventory watch` (libkeel's kl_watch): every object first, then a VM made through
#    the local socket arrives as it happens; --since resumes;
#  - after `keel cluster create` (hostd takes the cluster certificate and trusts ca.crt):
#    `event list`, `keel cert issue` for user manager, `keel login --cert --key` as
#    manager with its privileges (ReadOnly: reads, denied changes; Admin: allowed), and
#    refusals: a certificate for an unknown user (naming it), one signed by another CA,
#    cert issue without a CA, with a bad name, over existing files.
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -w /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }

LAB=$T/lab
HOSTD=$PWD/$BUILD/bin/hostd
SRV=https://198.18.0.1:8443
H1=$LAB/hosts/host1
lab() { "$KEEL_BIN" lab "$@"; }
kv() { "$KEEL_BIN" --socket "$H1/vmkernel.sock" --timeout 30 "$@"; }
lab_cleanup() {
	set +e
	[ -f "$H1/hostd.out" ] && { echo "--- hostd host1"; tail -25 "$H1/hostd.out"; }
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }

out=$(lab up 1 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
NETNS=/run/netns/$prefix-lab-host1
# keel in the host's namespace, as root (config dir cfg) or as another user (cfg2).
k() { nsenter --net="$NETNS" env -u KEEL_SERVER -u KEEL_PASSWORD KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" "$@"; }
k2() { nsenter --net="$NETNS" env -u KEEL_SERVER -u KEEL_PASSWORD KEEL_CONFIG_DIR="$T/cfg2" timeout 60 "$KEEL_BIN" "$@"; }
# expect EXIT CMD...: runs CMD, checks its exit code, leaves its output in $msg.
expect() {
	local want=$1 rc
	shift
	set +e
	msg=$("$@" 2>&1)
	rc=$?
	set -e
	[ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $msg"
}
# expect_json EXIT CODE CMD... (with --json): exit code and the JSON "code"; $msg is stdout.
expect_json() {
	local want=$1 code=$2 rc
	shift 2
	set +e
	msg=$("$@" 2>/dev/null)
	rc=$?
	set -e
	[ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $msg"
	[ "$(py 'd["code"]' "$msg")" = "$code" ] || fail "$*: code not $code: $msg"
}

for _ in $(seq 50); do # hostd listening
	nsenter --net="$NETNS" bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done
tp=$("$HOSTD" --thumbprint --state-dir "$H1" | grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') ||
	fail "hostd --thumbprint"
k login --server "$SRV" --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null ||
	fail "root login"

# ---- --help everywhere, usage errors ------------------------------------------------------
for c in "user" "user list" "user add" "user passwd" "user remove" "role" "role list" \
	"role add" "role remove" "role privileges" "perm" "perm list" "perm set" "perm remove" \
	"event" "event list" "cert" "cert issue" "inventory"; do
	# shellcheck disable=SC2086
	h=$(k $c --help) || fail "$c --help"
	grep -q "^Usage: keel $c" <<<"$h" || fail "$c --help: $h"
done
grep -q -- "--password-file" <<<"$(k user add --help)" || fail "user add --help lacks --password-file"
grep -q "inventory watch" <<<"$(k inventory --help)" || fail "inventory --help lacks watch"
expect 2 k --server "$SRV" user add
expect 2 k --server "$SRV" role add Nothing
grep -q -- "--priv" <<<"$msg" || fail "role add without --priv: $msg"
expect 2 k --server "$SRV" perm set ops
expect 2 k --server "$SRV" event list --limit 0
expect 2 k --server "$SRV" inventory watch --count x
expect 2 k --server "$SRV" inventory --count 2
expect 2 k user list # no server
grep -q "works through hostd's API only" <<<"$msg" || fail "user list without --server: $msg"
# no password file and no terminal: a usage error, nothing created
expect 2 k --server "$SRV" user add nopw

# ---- users ------------------------------------------------------------------------------------
printf 'ops-password-1\n' >"$T/ops-pw"
msg=$(k --server "$SRV" user add ops --password-file "$T/ops-pw" --description "night shift" \
	--group operators --group oncall) || fail "user add: $msg"
[ "$msg" = "Added user ops" ] || fail "user add output: $msg"
expect_json 1 6 k --server "$SRV" user add ops --password-file "$T/ops-pw" --json
[ "$(py 'd["ok"]' "$msg")" = False ] || fail "duplicate user json: $msg"
expect 1 k --server "$SRV" user add ops --password-file "$T/ops-pw"
grep -q "user ops already exists" <<<"$msg" || fail "duplicate user: $msg"
printf 'short\n' >"$T/short-pw"
expect 1 k --server "$SRV" user add shorty --password-file "$T/short-pw"
grep -qi "password" <<<"$msg" || fail "short password: $msg"
expect 1 k --server "$SRV" user add Bad-Name --password-file "$T/ops-pw"
grep -q "invalid user name" <<<"$msg" || fail "bad user name: $msg"
txt=$(k --server "$SRV" user list) || fail "user list: $txt"
echo "$txt"
grep -Eq "^NAME +DESCRIPTION +GROUPS" <<<"$txt" || fail "user list header: $txt"
grep -Eq "^ops +night shift +operators,oncall$" <<<"$txt" || fail "user list ops row: $txt"
j=$(k --server "$SRV" user list --json) || fail "user list --json"
[ "$(py 'sorted(u["name"] for u in d["users"])' "$j")" = "['ops', 'root']" ] || fail "users: $j"
[ "$(py '[u["groups"] for u in d["users"] if u["name"] == "ops"][0]' "$j")" = "['operators', 'oncall']" ] ||
	fail "ops groups: $j"
expect 1 k --server "$SRV" user passwd ghost --password-file "$T/ops-pw"
grep -q "user ghost: no such user" <<<"$msg" || fail "passwd ghost: $msg"
j=$(k --server "$SRV" user list --json)
[ "$(py '"ghost" in [u["name"] for u in d["users"]]' "$j")" = False ] || fail "passwd created ghost"

# ---- roles --------------------------------------------------------------------------------------
privs=$(k --server "$SRV" role privileges) || fail "role privileges: $privs"
grep -qx "VirtualMachine.Interact.PowerOn" <<<"$privs" || fail "privileges: $privs"
grep -qx "Authorization.ModifyUsers" <<<"$privs" || fail "privileges: $privs"
j=$(k --server "$SRV" role privileges --json) || fail "role privileges --json"
[ "$(py 'len(d["privileges"]) == '"$(echo "$privs" | wc -l)" "$j")" = True ] || fail "privileges json: $j"
msg=$(k --server "$SRV" role add Operator --priv VirtualMachine.Interact.PowerOn \
	--priv VirtualMachine.Interact.PowerOff) || fail "role add: $msg"
[ "$msg" = "Added role Operator" ] || fail "role add output: $msg"
expect_json 1 6 k --server "$SRV" role add Operator --priv System.Read --json
expect 1 k --server "$SRV" role add Wizard --priv Magic.Wand
grep -q "Magic.Wand" <<<"$msg" || fail "unknown privilege not named: $msg"
expect 1 k --server "$SRV" role remove Admin
txt=$(k --server "$SRV" role list) || fail "role list"
echo "$txt"
grep -Eq "^Operator +no +.*VirtualMachine.Interact.PowerOff" <<<"$txt" || fail "role list: $txt"
grep -Eq "^ReadOnly +yes " <<<"$txt" || fail "role list system: $txt"
j=$(k --server "$SRV" role list --json) || fail "role list --json"
[ "$(py '"VirtualMachine.Interact.PowerOn" in [r for r in d["roles"] if r["name"] == "Operator"][0]["privileges"]' "$j")" = True ] ||
	fail "role json: $j"

# ---- permissions ----------------------------------------------------------------------------------
msg=$(k --server "$SRV" perm set ops ReadOnly) || fail "perm set: $msg"
[ "$msg" = "User ops has role ReadOnly on root and everything below it" ] || fail "perm set output: $msg"
k --server "$SRV" perm set operators Operator --group --entity root --no-propagate >/dev/null ||
	fail "perm set group"
expect 1 k --server "$SRV" perm set ops NoSuchRole
grep -q "NoSuchRole" <<<"$msg" || fail "unknown role: $msg"
expect_json 1 9 k --server "$SRV" perm remove root --json # root's Admin stays
txt=$(k --server "$SRV" perm list) || fail "perm list"
echo "$txt"
grep -Eq "^ops +user +ReadOnly +root +yes$" <<<"$txt" || fail "perm list ops: $txt"
grep -Eq "^operators +group +Operator +root +no$" <<<"$txt" || fail "perm list group: $txt"
j=$(k --server "$SRV" perm list --json) || fail "perm list --json"
[ "$(py '[p["role"] for p in d["permissions"] if p["principal"] == "ops"]' "$j")" = "['ReadOnly']" ] ||
	fail "perm json: $j"
expect 1 k --server "$SRV" role remove Operator # still used
grep -qi "use" <<<"$msg" || fail "role in use: $msg"

# ---- a ReadOnly user ---------------------------------------------------------------------------------
k2 login --server "$SRV" --user ops --password-file "$T/ops-pw" --thumbprint "$tp" >/dev/null ||
	fail "ops login"
k2 --server "$SRV" user list >/dev/null || fail "ops cannot list users"
expect 1 k2 --server "$SRV" user add intruder --password-file "$T/ops-pw"
grep -q "user ops lacks privilege Authorization.ModifyUsers on root" <<<"$msg" ||
	fail "ops user add: $msg"
expect_json 1 7 k2 --server "$SRV" user add intruder --password-file "$T/ops-pw" --json
expect_json 1 7 k2 --server "$SRV" role add R1 --priv System.Read --json
expect_json 1 7 k2 --server "$SRV" perm set ops Admin --json
# A new password ends ops' sessions.
printf 'ops-password-2\n' >"$T/ops-pw2"
msg=$(k --server "$SRV" user passwd ops --password-file "$T/ops-pw2") || fail "passwd: $msg"
expect 1 k2 --server "$SRV" user list
grep -q "log in again" <<<"$msg" || fail "ops session after passwd: $msg"
expect 1 k2 login --server "$SRV" --user ops --password-file "$T/ops-pw" --thumbprint "$tp"
k2 login --server "$SRV" --user ops --password-file "$T/ops-pw2" --thumbprint "$tp" >/dev/null ||
	fail "ops login with the new password"

# ---- the change feed ---------------------------------------------------------------------------------
w=$(k --server "$SRV" inventory watch --count 3) || fail "inventory watch: $w"
echo "$w" | head -3
[ "$(echo "$w" | wc -l)" = 3 ] || fail "watch --count 3 printed: $w"
first=$(echo "$w" | head -1)
[ "$(py 'd["version"] > 0' "$first")" = True ] || fail "update version: $first"
last=$(python3 -c 'import json,sys; print(max(json.loads(l)["version"] for l in sys.argv[1].splitlines()))' "$w")
inv=$(k --server "$SRV" inventory --json)
ver=$(py 'd["version"]' "$inv")
k --server "$SRV" inventory watch --since "$ver" >"$T/watch.out" 2>"$T/watch.err" &
WPID=$!
PIDS+=("$WPID")
sleep 1
kv vm create watched1 --memory 64 >/dev/null || fail "vm create"
for _ in $(seq 100); do grep -q '"name":"watched1"' "$T/watch.out" 2>/dev/null && break; sleep 0.1; done
kill -0 "$WPID" || fail "watch ended early: $(cat "$T/watch.err")"
kill "$WPID"
line=$(grep '"vm":{' "$T/watch.out" | grep '"name":"watched1"' | head -1)
echo "$line"
[ "$(py 'd["vm"]["name"]' "$line")" = watched1 ] || fail "watch did not deliver the VM: $(cat "$T/watch.out")"
[ "$(python3 -c 'import json,sys; print(all(json.loads(l)["version"] > int(sys.argv[2]) for l in open(sys.argv[1])))' "$T/watch.out" "$ver")" = True ] ||
	fail "watch --since $ver delivered older updates: $(cat "$T/watch.out")"
[ "$last" -gt 0 ] || fail "no version"

# ---- users and roles go away -----------------------------------------------------------------------
k --server "$SRV" perm remove operators --group >/dev/null || fail "perm remove group"
k --server "$SRV" role remove Operator >/dev/null || fail "role remove"
msg=$(k --server "$SRV" user remove ops --json) || fail "user remove"
[ "$(py 'd["action"]' "$msg")" = removed ] || fail "user remove json: $msg"
expect 1 k2 --server "$SRV" user list # its session ended with it
expect 1 k --server "$SRV" user remove root

# ---- a cluster: events, certificate login --------------------------------------------------------------
for _ in $(seq 100); do
	[ "$(py 'd["node_state"]' "$(kv cluster status --json 2>/dev/null || echo '{"node_state":""}')")" = "not bootstrapped" ] && break
	sleep 0.1
done
kv cluster create users >/dev/null || fail "cluster create"
for _ in $(seq 150); do
	grep -q "certificate now .*host.crt (cluster)" "$H1/hostd.out" && break
	sleep 0.1
done
grep -q "certificate now .*host.crt (cluster)" "$H1/hostd.out" || fail "hostd kept its certificate"
k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$H1/ca.crt" >/dev/null ||
	fail "root login with the cluster CA"

txt=$(k --server "$SRV" event list) || fail "event list: $txt"
echo "$txt"
grep -Eq "^ *SEQ +TIME +KIND +HOST +VM +MESSAGE" <<<"$txt" || fail "event list header: $txt"
j=$(k --server "$SRV" event list --json) || fail "event list --json"
n=$(py 'len(d["events"])' "$j")
[ "$n" -ge 1 ] || fail "no events: $j"
j1=$(k --server "$SRV" event list --json --limit 1) || fail "event list --limit"
[ "$(py 'len(d["events"])' "$j1")" = 1 ] || fail "--limit 1: $j1"
s1=$(py 'd["events"][0]["seq"]' "$j1")
j2=$(k --server "$SRV" event list --json --since "$s1") || fail "event list --since"
[ "$(py 'all(e["seq"] > '"$s1"' for e in d["events"])' "$j2")" = True ] || fail "--since: $j2"

# Issue a certificate for manager, who does not exist yet.
cj=$(kv cert issue --state-dir "$H1" --name manager --out "$T/manager" --days 30 --json) ||
	fail "cert issue: $cj"
ctp=$(py 'd["thumbprint"]' "$cj")
[ "$(stat -c %a "$T/manager.key")" = 600 ] || fail "key mode $(stat -c %a "$T/manager.key")"
openssl verify -CAfile "$H1/ca.crt" -purpose sslclient "$T/manager.crt" >/dev/null ||
	fail "the certificate does not verify as a client's"
openssl x509 -in "$T/manager.crt" -noout -subject | grep -q "CN *= *manager" || fail "subject"
openssl x509 -in "$T/manager.crt" -noout -ext extendedKeyUsage | grep -q "TLS Web Client Authentication" ||
	fail "no clientAuth"
! grep -q "Server" <<<"$(openssl x509 -in "$T/manager.crt" -noout -ext extendedKeyUsage)" || fail "serverAuth too"
expect 1 kv cert issue --state-dir "$H1" --name manager --out "$T/manager"
grep -q "File exists" <<<"$msg" || fail "overwrite: $msg"
expect 2 kv cert issue --state-dir "$H1" --name "Not A User" --out "$T/x"
expect 2 kv cert issue --state-dir "$H1" --name x --out "$T/x" --days 0
mkdir -p "$T/noca"
expect 1 kv cert issue --state-dir "$T/noca" --name manager --out "$T/y"
grep -q "cluster CA" <<<"$msg" || fail "no CA: $msg"
[ ! -e "$T/y.key" ] || fail "a key was left without a certificate"

kc() { nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg3" timeout 60 "$KEEL_BIN" "$@"; }
expect 1 kc login --server "$SRV" --cert "$T/manager.crt" --key "$T/manager.key" --ca-file "$H1/ca.crt"
grep -q 'names user "manager", which does not exist' <<<"$msg" || fail "unknown user: $msg"
[ ! -e "$T/cfg3/sessions/198.18.0.1_8443" ] || fail "a refused login left a session"
expect 2 kc login --server "$SRV" --cert "$T/manager.crt" --ca-file "$H1/ca.crt"
expect 2 kc login --server "$SRV" --cert "$T/manager.crt" --key "$T/manager.key" --user root

head -c 24 /dev/urandom | base64 >"$T/manager-pw" # never used to log in
k --server "$SRV" user add manager --password-file "$T/manager-pw" >/dev/null || fail "add manager"
k --server "$SRV" perm set manager ReadOnly >/dev/null || fail "perm manager"
msg=$(kc login --server "$SRV" --cert "$T/manager.crt" --key "$T/manager.key" --ca-file "$H1/ca.crt") ||
	fail "certificate login: $msg"
echo "$msg"
grep -q "^Logged in to $SRV as manager " <<<"$msg" || fail "certificate login output: $msg"
grep -q "user manager logged in from .* by certificate $ctp" "$H1/hostd.out" ||
	fail "the certificate login was not logged with its thumbprint"
s=$(kc --server "$SRV" session --json) || fail "session"
[ "$(py 'd["user"]' "$s")" = manager ] || fail "session user: $s"
[ "$(py '"Authorization.ModifyUsers" in d["privileges_root"]' "$s")" = False ] || fail "privs: $s"
kc --server "$SRV" inventory --json >/dev/null || fail "manager cannot read the inventory"
expect_json 1 7 kc --server "$SRV" user add other --password-file "$T/manager-pw" --json
k --server "$SRV" perm set manager Admin >/dev/null || fail "perm manager Admin"
kc --server "$SRV" user add other --password-file "$T/manager-pw" >/dev/null ||
	fail "manager with Admin cannot add a user"
j=$(k --server "$SRV" user list --json)
[ "$(py '"other" in [u["name"] for u in d["users"]]' "$j")" = True ] || fail "other not added"

# A certificate from another CA, for the same name: refused.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil-ca.key" \
	-out "$T/evil-ca.crt" -subj "/CN=evil CA" -days 2 2>/dev/null || fail "openssl CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil.key" \
	-out "$T/evil.csr" -subj "/CN=manager" 2>/dev/null || fail "openssl csr"
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' >"$T/evil.ext"
openssl x509 -req -in "$T/evil.csr" -CA "$T/evil-ca.crt" -CAkey "$T/evil-ca.key" \
	-CAcreateserial -out "$T/evil.crt" -days 2 -extfile "$T/evil.ext" 2>/dev/null || fail "openssl sign"
expect 1 kc login --server "$SRV" --cert "$T/evil.crt" --key "$T/evil.key" --ca-file "$H1/ca.crt"
grep -q "no trusted client certificate" <<<"$msg" || fail "foreign CA: $msg"
grep -q "certificate login from .* failed: no client certificate verified" "$H1/hostd.out" ||
	fail "the refusal was not logged"
# The cached manager session was not replaced by the refused login.
[ "$(py 'd["user"]' "$(kc --server "$SRV" session --json)")" = manager ] || fail "session lost"

kv vm destroy watched1 >/dev/null 2>&1 || true
lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
