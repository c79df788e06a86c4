# hostd's users, roles and permissions in vmkernel's config store (docs/hostd-auth.md,
# "Where the database lives"): a vmkernel and a lone hostd on 127.0.0.1 sharing one state
# dir, driven with keel as an operator would.
#  - first start: root is made and put into the store as etc/keel/auth.db (0600), the
#    state dir's auth.db a byte-identical copy;
#  - a user added through the API is in the store (list, get, backup); it logs in after
#    hostd and vmkernel restart, and after the state dir's copy is removed;
#  - backup, remove the user, restore: the user is back (within seconds, and after a
#    restart);
#  - hostile puts: through the API (403, "users are changed through the API"), through the
#    socket with garbage (refused by the store), a damaged database put into the store
#    (hostd keeps its last good one at start and while running, says so, puts it back,
#    and root still logs in);
#  - a change that would make the database exceed 64 KiB is refused and changes nothing;
#  - vmkernel away: a change is kept in the copy with auth.pending, hostd restarted without
#    vmkernel serves the copy, and puts it into the store once vmkernel answers;
#  - a host from before the store (no etc/keel/auth.db, the state dir's auth.db) takes the
#    file in at start.
source "$(dirname "$0")/common.bash"
HOSTD=$PWD/$BUILD/bin/hostd
VMKERNEL=${VMKERNEL:-$PWD/$BUILD/bin/vmkernel}
[ -x "$HOSTD" ] && [ -x "$VMKERNEL" ] || { echo "SKIP: hostd or vmkernel not built"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }

mkdir -p "$T/state"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SRV=https://127.0.0.1:$PORT
HOSTD_PID=

start_hostd() {
	: >"$T/hostd.log"
	"$HOSTD" --state-dir "$T/state" --listen "127.0.0.1:$PORT" --log-level debug \
		>"$T/hostd.out" 2>>"$T/hostd.log" &
	HOSTD_PID=$!
	PIDS+=("$HOSTD_PID")
	wait_for "$T/hostd.log" 'hostd ready' 20
}
stop_hostd() {
	kill -TERM "$HOSTD_PID"
	wait "$HOSTD_PID" 2>/dev/null || true
	HOSTD_PID=
}
stop_vmkernel() {
	kill "$VMK_PID"
	wait "$VMK_PID" 2>/dev/null || true
	VMK_PID=
}
# ka CFG ARGS...: keel through hostd's API with the session cache in $T/CFG
ka() {
	local cfg=$1
	shift
	env -u KEEL_SERVER -u KEEL_PASSWORD KEEL_CONFIG_DIR="$T/$cfg" timeout 60 "$KEEL_BIN" \
		--server "$SRV" "$@"
}
# login CFG USER PWFILE: a fresh session
login() {
	rm -rf "${T:?}/$1"
	ka "$1" login --user "$2" --password-file "$3" --thumbprint "$TP" >/dev/null
}
store_db() { keel host config get etc/keel/auth.db; }

# ---- first start: root, put into the store ---------------------------------------------
start_vmkernel
start_hostd
grep -q "user database etc/keel/auth.db made with user root" "$T/hostd.log" || fail "no bootstrap line"
TP=$("$HOSTD" --thumbprint --state-dir "$T/state" | grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') ||
	fail "hostd --thumbprint"
out=$(keel --json host config list etc/keel/auth.db)
[[ $out == *'"path":"etc/keel/auth.db"'* ]] || fail "etc/keel/auth.db not in the store: $out"
[ "$(json_field "$out" mode)" = 384 ] || fail "etc/keel/auth.db is not 0600: $out"
cmp -s <(store_db) "$T/state/auth.db" || fail "the copy differs from the store's"
[ "$(stat -c %a "$T/state/auth.db")" = 600 ] || fail "the copy is not 0600"
head -1 "$T/state/root-password" >"$T/rootpw"
login cfg root "$T/rootpw" || fail "root login"

# ---- a user through the API is in the store ------------------------------------------
printf 'alice-password-1\n' >"$T/apw"
ka cfg user add alice --password-file "$T/apw" --description "from ops" >/dev/null || fail "user add"
ka cfg perm set alice ReadOnly >/dev/null || fail "perm set"
store_db | grep -q '^user alice \$.* - from%20ops$' || fail "alice not in the store: $(store_db)"
store_db | grep -q '^perm user alice ReadOnly root propagate$' || fail "alice's permission not in the store"
cmp -s <(store_db) "$T/state/auth.db" || fail "the copy differs after a change"
grep -q 'alice-password-1' "$T/state/config.kar" "$T/hostd.log" && fail "a password was written out"
keel host config list | grep -q 'etc/keel/auth.db' || fail "list (text) lacks etc/keel/auth.db"

# ---- restarts: hostd and vmkernel; then without the state dir's copy --------------------
stop_hostd
stop_vmkernel
start_vmkernel
start_hostd
grep -q "users and permissions: etc/keel/auth.db from the config store" "$T/hostd.log" ||
	fail "hostd did not read the store"
login cfg2 alice "$T/apw" || fail "alice's login after a restart"
stop_hostd
rm "$T/state/auth.db"
start_hostd
login cfg2 alice "$T/apw" || fail "alice's login without the state dir's auth.db"
cmp -s <(store_db) "$T/state/auth.db" || fail "the copy was not written again at start"

# ---- backup, remove, restore + restart: the user is back ---------------------------------
keel host config backup "$T/backup.kar" >/dev/null || fail "backup"
grep -qa '^user alice ' "$T/backup.kar" || fail "the backup lacks alice"
login cfg root "$T/rootpw" || fail "root login"
ka cfg user remove alice >/dev/null || fail "user remove"
store_db | grep -q '^user alice ' && fail "alice still in the store"
login cfg2 alice "$T/apw" 2>/dev/null && fail "a removed user logged in"
keel host config restore "$T/backup.kar" >/dev/null || fail "restore"
# hostd running takes the restored database within a few seconds ...
wait_for "$T/hostd.log" "etc/keel/auth.db was replaced in the config store .*: users and permissions taken from it \(2 users\)" 15
login cfg2 alice "$T/apw" || fail "alice's login after the restore"
wait_for "$T/state/auth.db" "^user alice " 10
# ... and after a restart
ka cfg user remove alice >/dev/null || fail "user remove"
keel host config restore "$T/backup.kar" >/dev/null || fail "restore"
stop_hostd
stop_vmkernel
start_vmkernel
start_hostd
login cfg2 alice "$T/apw" || fail "alice's login after the restore"
cmp -s <(store_db) "$T/state/auth.db" || fail "the copy differs after the restore"

# ---- hostile puts ------------------------------------------------------------------------
login cfg root "$T/rootpw" || fail "root login"
gen=$(json_field "$(keel --json host config status)" generation)
printf 'keel-auth 1\nuser root x - -\n' >"$T/evil.db"
set +e; err=$(ka cfg host config put etc/keel/auth.db "$T/evil.db" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] && [[ $err == *"users are changed through the API"* ]] ||
	fail "a put through the API: rc $rc: $err"
printf 'garbage\n' >"$T/garbage.db"
set +e; err=$(keel host config put etc/keel/auth.db "$T/garbage.db" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] && [[ $err == *"not a user database"* ]] || fail "garbage through the socket: rc $rc: $err"
set +e; err=$(keel host config put etc/keel/auth.db "$T/evil.db" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] && [[ $err == *"no user root with Admin"* ]] || fail "no root's Admin: rc $rc: $err"
[ "$(json_field "$(keel --json host config status)" generation)" = "$gen" ] || fail "a refused put changed the store"
# a database with root's lines that hostd's strict decoder refuses (a bad hash)
sed 's/^user root [^ ]*/user root not-a-hash/' "$T/state/auth.db" >"$T/bad.db"
stop_hostd
keel host config put etc/keel/auth.db "$T/bad.db" --mode 0600 >/dev/null || fail "put of bad.db"
start_hostd
grep -q "ERROR.*etc/keel/auth.db in the config store does not decode (.*): keeping .*auth.db, the last good database" \
	"$T/hostd.log" || fail "no error about the damaged database"
login cfg root "$T/rootpw" || fail "root cannot log in after a damaged database"
login cfg2 alice "$T/apw" || fail "alice cannot log in after a damaged database"
cmp -s <(store_db) "$T/state/auth.db" || fail "the good database was not put back"
# the same while hostd runs: it keeps its database and puts it back
keel host config put etc/keel/auth.db "$T/bad.db" --mode 0600 >/dev/null || fail "put of bad.db"
wait_for "$T/hostd.log" "ERROR.*etc/keel/auth.db was replaced in the config store by a database that does not decode" 15
for _ in $(seq 50); do cmp -s <(store_db) "$T/state/auth.db" && break; sleep 0.1; done
cmp -s <(store_db) "$T/state/auth.db" || fail "the good database was not put back (running)"
login cfg root "$T/rootpw" || fail "root cannot log in after a damaged restore"

# ---- 64 KiB: a change that would exceed it is refused, nothing changes ------------------
login cfg root "$T/rootpw" || fail "root login"
groups=()
for g in $(seq -w 1 32); do groups+=(--group "group-with-a-long-name-number-$g"); done
desc=$(printf '%.0s ' $(seq 200))x
printf 'filler-password-1\n' >"$T/fpw"
n=0
while :; do
	n=$((n + 1))
	[ "$n" -le 60 ] || fail "never refused: the database is $(stat -c %s "$T/state/auth.db") bytes"
	before=$(store_db | md5sum)
	set +e; err=$(ka cfg user add "filler$n" --password-file "$T/fpw" --description "$desc" \
		"${groups[@]}" 2>&1); rc=$?; set -e
	[ "$rc" = 0 ] && continue
	[[ $err == *"the user database would exceed 64 KiB"* ]] || fail "filler$n: rc $rc: $err"
	break
done
echo "refused at user $n ($(stat -c %s "$T/state/auth.db") bytes before)"
[ "$(store_db | md5sum)" = "$before" ] || fail "a refused change changed the store"
ka cfg user list | grep -q "filler$n\b" && fail "the refused user exists"
cmp -s <(store_db) "$T/state/auth.db" || fail "the copy differs after a refusal"
# a smaller change still works, then the fillers go
printf 'bob-password-12\n' >"$T/bpw"
for ((i = 1; i < n; i++)); do ka cfg user remove "filler$i" >/dev/null || fail "remove filler$i"; done

# ---- vmkernel away ---------------------------------------------------------------------
stop_vmkernel
ka cfg user add bob --password-file "$T/bpw" >/dev/null || fail "a change while vmkernel is away"
grep -q "change by root kept in .*auth.db: vmkernel does not answer" "$T/hostd.log" ||
	fail "no log line about the kept change"
[ -f "$T/state/auth.pending" ] || fail "no auth.pending"
grep -q '^user bob ' "$T/state/auth.db" || fail "bob not in the copy"
stop_hostd
start_hostd
grep -q "WARN.*the config store: vmkernel does not answer.*serving the copy .*auth.db" "$T/hostd.log" ||
	fail "hostd does not say it serves the copy"
login cfg3 bob "$T/bpw" || fail "bob's login while vmkernel is away"
start_vmkernel
wait_for "$T/hostd.log" "vmkernel answers: users and permissions put into the config store" 20
store_db | grep -q '^user bob ' || fail "bob not put into the store"
for _ in $(seq 40); do [ -f "$T/state/auth.pending" ] || break; sleep 0.1; done
[ ! -f "$T/state/auth.pending" ] || fail "auth.pending left after the put"
# changes made while vmkernel was away, then hostd restarted with vmkernel back
login cfg root "$T/rootpw" || fail "root login"
stop_vmkernel
ka cfg user remove bob >/dev/null || fail "remove bob while vmkernel is away"
stop_hostd
start_vmkernel
start_hostd
grep -q "holds changes made while vmkernel did not answer: putting them into the config store" \
	"$T/hostd.log" || fail "the pending changes were not taken in"
store_db | grep -q '^user bob ' && fail "the store still has bob"
[ ! -f "$T/state/auth.pending" ] || fail "auth.pending left after start"

# ---- a host from before the store --------------------------------------------------------
stop_hostd
keel host config delete etc/keel/auth.db >/dev/null || fail "delete"
start_hostd
grep -q "took .*auth.db into the config store as etc/keel/auth.db" "$T/hostd.log" ||
	fail "the state dir's auth.db was not taken in"
cmp -s <(store_db) "$T/state/auth.db" || fail "the store's differs from the state dir's"
login cfg2 alice "$T/apw" || fail "alice after the take-in"
stop_hostd
echo "PASS"
