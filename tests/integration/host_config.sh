# The host's config store through keel and vmkernel's socket (docs/config-store.md): put,
# get, list, delete; advanced.conf checked and applied (the log level); logs kept in memory
# only; a restart brings the files back; a corrupt config.kar makes vmkernel use
# config.kar.1 and say so in the store's events and the log; backup and restore round trip,
# a damaged archive refused with nothing changed; bad paths and oversized files refused; a
# full disk (a small tmpfs) keeps the change in memory and config.kar intact, says so in
# the status and events, and the next change with space again saves everything. Then through hostd's API on a one-host lab: keel --server put/get/backup/restore, and
# curl on /host/<file> and /host/config.kar: refusals (bad contents, a damaged archive, too
# large, a bad name, a missing file, a ReadOnly user) that change nothing, a store log read
# with System.Read, the legacy host files still read-only.
source "$(dirname "$0")/common.bash"
start_vmkernel

# every command has --help
for c in list get put delete backup restore status; do
	keel host config "$c" --help >/dev/null || fail "keel host config $c --help"
done

st=$(keel --json host config status) || fail "status"
[ "$(json_field "$st" loaded_from)" = "none (new)" ] || fail "a new store: $st"

# put, get, list
printf 'site = lab\nrack = 7\n' >"$T/site.conf"
keel host config put etc/keel/site.conf "$T/site.conf" >/dev/null || fail "put site.conf"
keel host config get etc/keel/site.conf >"$T/site.back" || fail "get site.conf"
cmp -s "$T/site.conf" "$T/site.back" || fail "get returned other bytes: $(cat "$T/site.back")"
printf 'hello from a service\n' | keel host config put var/log/svc.log - >/dev/null || fail "put a log"
out=$(keel --json host config list)
[[ $out == *'"path":"etc/keel/site.conf"'*'"persistent":true'* ]] || fail "list: $out"
[[ $out == *'"path":"var/log/svc.log"'*'"persistent":false'* ]] || fail "list (log): $out"
[ -f "$T/state/config.kar" ] || fail "no config.kar after a put"

# advanced.conf: a bad one is refused and changes nothing; a good one applies at once
printf 'Misc.LogLevel = info\n' >"$T/adv"
keel host config put etc/keel/advanced.conf "$T/adv" >/dev/null || fail "put advanced.conf"
wait_for "$T/state/vmkernel.log" "log level info \(Misc.LogLevel in advanced.conf\)"
printf 'Misc.LogLevel = loud\n' >"$T/adv.bad"
set +e; err=$(keel host config put etc/keel/advanced.conf "$T/adv.bad" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] && [[ $err == *"line 1: Misc.LogLevel must be"* ]] || fail "bad advanced.conf: rc $rc: $err"
[ "$(keel host config get etc/keel/advanced.conf)" = "Misc.LogLevel = info" ] || fail "bad advanced.conf was stored"

# bad input: paths, sizes, missing files; each a clear error, nothing changed
gen=$(json_field "$(keel --json host config status)" generation)
for p in ../etc/x etc/../x /etc/x etc/.hidden "etc/a b" tmp/x etc; do
	set +e; err=$(keel host config put "$p" "$T/site.conf" 2>&1); rc=$?; set -e
	[ "$rc" = 1 ] && [ -n "$err" ] || fail "path '$p' was accepted (rc $rc)"
done
head -c 70000 /dev/zero >"$T/big"
set +e; err=$(keel host config put etc/big "$T/big" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] && [[ $err == *"at most"* ]] || fail "an oversized file: rc $rc: $err"
set +e; keel host config get etc/none >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "get of a missing file: rc $rc"
[ "$(json_field "$(keel --json host config status)" generation)" = "$gen" ] || fail "a refused change changed the store"

# backup, then a change that the backup does not have
keel host config backup "$T/backup.kar" >/dev/null || fail "backup"
[ -s "$T/backup.kar" ] || fail "empty backup"
printf 'v2\n' >"$T/v2"
keel host config put etc/keel/later.conf "$T/v2" >/dev/null || fail "put later.conf"

# restart: the files are back, the log is gone, advanced.conf applies again
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
start_vmkernel
keel host config get etc/keel/site.conf >"$T/site.back2" || fail "site.conf after a restart"
cmp -s "$T/site.conf" "$T/site.back2" || fail "site.conf changed across a restart"
[ "$(keel host config get etc/keel/later.conf)" = v2 ] || fail "later.conf after a restart"
set +e; keel host config get var/log/svc.log >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "a log survived a restart"
st=$(keel --json host config status)
[ "$(json_field "$st" loaded_from)" = config.kar ] || fail "after a restart: $st"
[ "$(grep -c 'log level info (Misc.LogLevel in advanced.conf)' "$T/state/vmkernel.log")" -ge 2 ] ||
	fail "advanced.conf not applied at start"

# a corrupt config.kar: vmkernel uses config.kar.1 (the archive before later.conf) and says so
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
printf 'XXXX' | dd of="$T/state/config.kar" bs=1 seek=60 conv=notrunc status=none
start_vmkernel
st=$(keel --json host config status)
[ "$(json_field "$st" loaded_from)" = config.kar.1 ] || fail "after corruption: $st"
[[ $st == *'"level":"warn","text":"config.kar is bad (archive damaged: checksum mismatch): using the previous good archive config.kar.1'* ]] ||
	fail "no event about the fallback: $st"
grep -q "WARN.*config store: config.kar is bad.*using the previous good archive config.kar.1" "$T/state/vmkernel.log" ||
	fail "no log line about the fallback"
[ -f "$T/state/config.kar.bad" ] || fail "the corrupt archive was not kept"
cmp -s "$T/site.conf" <(keel host config get etc/keel/site.conf) || fail "site.conf from config.kar.1"
set +e; keel host config get etc/keel/later.conf >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "config.kar.1 should not hold later.conf"
keel host config status | grep -q "config.kar.1" || fail "text status does not name config.kar.1"

# restore: a damaged archive is refused and changes nothing; the backup round trips
printf 'other\n' >"$T/other"
keel host config put etc/keel/other.conf "$T/other" >/dev/null
cp "$T/backup.kar" "$T/damaged.kar"
printf 'Z' | dd of="$T/damaged.kar" bs=1 seek=50 conv=notrunc status=none
set +e; err=$(keel host config restore "$T/damaged.kar" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] && [[ $err == *"nothing changed"* ]] || fail "damaged restore: rc $rc: $err"
[ "$(keel host config get etc/keel/other.conf)" = other ] || fail "a refused restore changed the store"
out=$(keel --json host config restore "$T/backup.kar") || fail "restore"
[ "$(json_field "$out" saved)" = True ] || fail "restore not saved: $out"
set +e; keel host config get etc/keel/other.conf >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "restore kept a file the backup does not have"
cmp -s "$T/site.conf" <(keel host config get etc/keel/site.conf) || fail "site.conf after restore"
keel host config backup "$T/again.kar" >/dev/null
python3 - "$T/backup.kar" "$T/again.kar" <<'PY' || fail "the restored store does not hold the backup's files"
import struct, sys
def files(p):
    b = open(p, "rb").read()
    n = struct.unpack_from("<I", b, 12)[0]
    off, out = 32, {}
    for _ in range(n):
        plen, mode, dlen = struct.unpack_from("<HHI", b, off)
        off += 24
        out[b[off:off + plen]] = (mode, b[off + plen:off + plen + dlen])
        off += plen + dlen
    return out
sys.exit(0 if files(sys.argv[1]) == files(sys.argv[2]) else 1)
PY

# delete
keel host config delete etc/keel/site.conf >/dev/null || fail "delete"
set +e; keel host config delete etc/keel/site.conf >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "deleted a missing file"

# a full disk (a 1 MiB tmpfs as the state dir): the change stays in memory, config.kar is
# untouched, status and events say so; with space again the next change saves everything
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
mv "$T/state" "$T/state.disk"
mkdir "$T/state"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$T/state" || fail "mount a tmpfs"
small_cleanup() {
	set +e
	if [ -n "$VMK_PID" ]; then kill "$VMK_PID" 2>/dev/null; wait "$VMK_PID" 2>/dev/null; fi
	VMK_PID=
	cp "$T/state/vmkernel.log" "$T/small-vmkernel.log" 2>/dev/null
	umount "$T/state"
	vmk_cleanup
}
trap small_cleanup EXIT
start_vmkernel
keel host config put etc/keel/one.conf "$T/site.conf" >/dev/null || fail "put on the tmpfs"
cp "$T/state/config.kar" "$T/before-full.kar"
dd if=/dev/zero of="$T/state/filler" bs=4k status=none 2>/dev/null || true
set +e; err=$(keel host config put etc/keel/two.conf "$T/v2" 2>&1 >/dev/null); rc=$?; set -e
[ "$rc" = 0 ] || fail "a change that could not be saved failed: $err"
[[ $err == *"kept in memory but could not be saved"*"No space left on device"* ]] || fail "no warning: $err"
st=$(keel --json host config status)
[ "$(json_field "$st" dirty)" = True ] && [ "$(json_field "$st" last_save_code)" = -28 ] ||
	fail "status after ENOSPC: $st"
[[ $st == *'"level":"error","text":"saving config.kar failed'* ]] || fail "no event about ENOSPC: $st"
cmp -s "$T/state/config.kar" "$T/before-full.kar" || fail "config.kar changed by a failed save"
[ ! -e "$T/state/config.kar.tmp" ] || fail "a temporary archive was left"
[ "$(keel host config get etc/keel/two.conf)" = v2 ] || fail "the unsaved change is not in memory"
rm -f "$T/state/filler"
keel host config put etc/keel/three.conf "$T/v2" >/dev/null || fail "put with space again"
st=$(keel --json host config status)
[ "$(json_field "$st" dirty)" = False ] && [[ $st == *"saved again"* ]] || fail "status after recovery: $st"
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
start_vmkernel
for f in one two three; do
	keel host config get "etc/keel/$f.conf" >/dev/null || fail "etc/keel/$f.conf lost across the full disk"
done
kill "$VMK_PID"; wait "$VMK_PID" 2>/dev/null || true
VMK_PID=
umount "$T/state"
rmdir "$T/state"
mv "$T/state.disk" "$T/state"
trap vmk_cleanup EXIT
echo "ok: through vmkernel's socket"

# ---- through hostd's API: /host/<file> and /host/config.kar on a one-host lab ----------
ip netns del "$NS"
NS=
trap cleanup EXIT
if ! [ -w /dev/kvm ] || ! curl --version | grep -q HTTP2; then
	echo "ok (the API part needs /dev/kvm for the lab and curl with HTTP/2: not run)"
	exit 0
fi
LAB=$T/lab
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
NETNS=/run/netns/$(py 'd["prefix"]' "$out")-lab-host1
pwfile=$(py 'd["root_password_file"]' "$out")
inns() { nsenter --net="$NETNS" "$@"; }
ks() { inns env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 60 "$KEEL_BIN" --server "$SRV" "$@"; }
kv() { "$KEEL_BIN" --socket "$LAB/hosts/host1/vmkernel.sock" --timeout 30 "$@"; }
for _ in $(seq 50); do # hostd listening
	inns bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done
tp=$("$PWD/$BUILD/bin/hostd" --thumbprint --state-dir "$LAB/hosts/host1" |
	grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') || fail "hostd --thumbprint"
ks login --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null || fail "login"
printf 'reader-pw-1\n' >"$T/rpw"
ks user add reader --password-file "$T/rpw" >/dev/null || fail "user add"
ks perm set reader ReadOnly >/dev/null || fail "perm set"
# a configuration admin who may not manage users: the store, but not the password hashes
ks role add ConfigAdmin --priv Host.Config.Network --priv Host.Config.Storage >/dev/null ||
	fail "role add ConfigAdmin"
printf 'config-pw-1\n' >"$T/cpw"
ks user add cfgadm --password-file "$T/cpw" >/dev/null || fail "user add cfgadm"
ks perm set cfgadm ConfigAdmin >/dev/null || fail "perm set cfgadm"
# hc USER:PW ARGS...: curl over HTTP/2 with Basic credentials; the status, the body in $T/body
hc() {
	local u=$1
	shift
	inns curl -sk --http2 --max-time 60 -o "$T/body" -w '%{http_code}' -u "$u" "$@" || true
}
ROOT="root:$(cat "$pwfile")"

# put and get through the API, seen through the socket and back
printf 'api = yes\n' >"$T/api.conf"
j=$(ks --json host config put etc/keel/api.conf "$T/api.conf") || fail "put through the API: $j"
[ "$(json_field "$j" created)" = True ] || fail "put through the API: $j"
[ "$(kv host config get etc/keel/api.conf)" = "api = yes" ] || fail "the API's put is not in the store"
[ "$(ks host config get etc/keel/api.conf)" = "api = yes" ] || fail "get through the API"
j=$(ks --json host config put etc/keel/api.conf "$T/api.conf") || fail "put again: $j"
[ "$(json_field "$j" created)" = False ] || fail "a replaced file reported as created: $j"
# backup and restore through the API
ks host config backup "$T/api-backup.kar" >/dev/null || fail "backup through the API"
python3 - "$T/api-backup.kar" <<'PY' || fail "the API's backup lacks etc/keel/api.conf"
import sys
sys.exit(0 if b"etc/keel/api.conf" in open(sys.argv[1], "rb").read() else 1)
PY
ks host config restore "$T/backup.kar" >/dev/null || fail "restore through the API"
cmp -s "$T/site.conf" <(kv host config get etc/keel/site.conf) || fail "restore through the API"
set +e; kv host config get etc/keel/api.conf >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "the restored store kept etc/keel/api.conf"
# (the archive restored above held no user database: hostd puts its own back within 2 s)
root_auth() { [ "$(hc "$ROOT" "$SRV/host/etc/keel/auth.db")" = 200 ] && grep -q "^keel-auth 1" "$T/body"; }
for _ in $(seq 50); do root_auth && break; sleep 0.2; done
root_auth || fail "root get auth.db: $(head -c 300 "$T/body")"
# with curl: refusals, each changing nothing
gen=$(json_field "$(kv --json host config status)" generation)
printf 'Misc.LogLevel = loud\n' >"$T/adv.bad"
[ "$(hc "$ROOT" -T "$T/adv.bad" "$SRV/host/etc/keel/advanced.conf")" = 400 ] &&
	grep -q "line 1: Misc.LogLevel must be" "$T/body" || fail "bad advanced.conf: $(cat "$T/body")"
[ "$(hc "$ROOT" -T "$T/damaged.kar" "$SRV/host/config.kar")" = 400 ] &&
	grep -q "nothing changed" "$T/body" || fail "damaged archive: $(cat "$T/body")"
[ "$(hc "$ROOT" -T "$T/big" "$SRV/host/etc/big")" = 413 ] || fail "oversized file: $(cat "$T/body")"
[ "$(hc "$ROOT" -T "$T/api.conf" "$SRV/host/etc/.hidden")" = 400 ] || fail "bad name: $(cat "$T/body")"
[ "$(hc "$ROOT" "$SRV/host/etc/keel/none.conf")" = 404 ] || fail "missing file: $(cat "$T/body")"
[ "$(hc "reader:reader-pw-1" -T "$T/api.conf" "$SRV/host/etc/keel/api.conf")" = 403 ] &&
	grep -q "lacks privilege Host.Config" "$T/body" || fail "ReadOnly user put: $(cat "$T/body")"
[ "$(hc "reader:reader-pw-1" "$SRV/host/config.kar")" = 403 ] || fail "ReadOnly user backup"
[ "$(hc "reader:reader-pw-1" -T "$T/backup.kar" "$SRV/host/config.kar")" = 403 ] || fail "ReadOnly user restore"
[ "$(hc "cfgadm:config-pw-1" "$SRV/host/etc/keel/site.conf")" = 200 ] || fail "config admin get: $(cat "$T/body")"
[ "$(hc "cfgadm:config-pw-1" "$SRV/host/etc/keel/auth.db")" = 403 ] &&
	grep -q "lacks privilege Authorization.ModifyUsers" "$T/body" || fail "config admin read the user database: $(cat "$T/body")"
[ "$(hc "cfgadm:config-pw-1" "$SRV/host/config.kar")" = 403 ] || fail "config admin backup (it holds the users)"
[ "$(json_field "$(kv --json host config status)" generation)" = "$gen" ] || fail "a refused request changed the store"
# logs: read with System.Read; the legacy host files are still read-only
kv host config put var/log/api.log "$T/api.conf" >/dev/null
[ "$(hc "reader:reader-pw-1" "$SRV/host/var/log/api.log")" = 200 ] && cmp -s "$T/body" "$T/api.conf" ||
	fail "ReadOnly user: a store log"
[ "$(hc "$ROOT" -T "$T/api.conf" "$SRV/host/network.conf")" = 403 ] || fail "network.conf written"
[ "$(hc "$ROOT" "$SRV/host/auth.db")" = 404 ] || fail "auth.db served"
# the whole archive with curl: download, upload, 204
[ "$(hc "$ROOT" "$SRV/host/config.kar")" = 200 ] && cp "$T/body" "$T/curl.kar" || fail "GET config.kar"
[ "$(hc "$ROOT" -T "$T/curl.kar" "$SRV/host/config.kar")" = 204 ] || fail "PUT config.kar: $(cat "$T/body")"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo "ok: through hostd's API"
