# Datastore and host files over HTTPS from hostd (docs/hostd-files.md) on a 1-host lab, driven
# from inside the host's namespace with Debian's curl (HTTP/2), the keel CLI and a raw HTTP/2
# helper (tests/integration/api_files_client.py): a 64 MiB random file up and down with the
# same sha256 while hostd's RSS stays far below the file's size; "..", %2e%2e, backslashes
# and a symlink out of the datastore refused with nothing outside read or written; 401
# without or with wrong credentials (session token and Basic); 403 for users without
# Datastore.Browse / FileManagement / System.Read; a client that stops reading 16 downloads
# on one connection (a 17th is refused) does not grow hostd and others are still served;
# an upload cut by a killed client or a reset stream leaves the old file and no temporary
# file; refused uploads give their flow-control window back; a full datastore is 507;
# /host/vmkernel.log served, /host/auth.db refused, host files read-only.
source "$(dirname "$0")/common.bash"
# an AddressSanitizer build: hostd's RSS says nothing about what it keeps
case "$BUILD" in *asan*) export KEEL_ASAN=1 ;; esac
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "SKIP: no python3-grpcio"; exit 77; }
curl --version | grep -q HTTP2 || { echo "SKIP: curl without HTTP/2"; exit 77; }
[ -w /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }

LAB=$T/lab
SRV=https://198.18.0.1:8443
HOSTD=$PWD/$BUILD/bin/hostd
DS=$LAB/hosts/host1/datastore1
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

# A small shared datastore (a 32 MiB ext4 image) for the disk-full case.
out=$(lab up 1 --dir "$LAB" --shared-datastore-size 32M --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
NETNS=/run/netns/$prefix-lab-host1
st=$(lab status --dir "$LAB" --json) || fail "lab status"
hostd_pid=$(py '[x["pid"] for x in d["hosts"][0]["daemons"] if x["name"] == "hostd"][0]' "$st")
[ "$hostd_pid" -gt 0 ] 2>/dev/null || fail "no hostd pid in $st"
inns() { nsenter --net="$NETNS" "$@"; }
k() { inns env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 120 "$KEEL_BIN" --server "$SRV" "$@"; }
for _ in $(seq 50); do # hostd listening
	inns bash -c 'exec 3<>/dev/tcp/198.18.0.1/8443' 2>/dev/null && break
	sleep 0.1
done

inns timeout 60 /usr/bin/python3 "$KEEL_TOP/tests/integration/api_files_client.py" users \
	"$T/stubs" "$pwfile" 198.18.0.1 8443 >"$T/tokens" || fail "making the users: $(cat "$T/tokens")"
tok() { awk -v u="$1" '$1 == "TOKEN" && $2 == u { print $3 }' "$T/tokens"; }
ROOT=$(tok root)
[ ${#ROOT} = 64 ] || fail "no root token: $(cat "$T/tokens")"
# hc TOKEN ARGS...: curl over HTTP/2 with a session; prints the status, the body in $T/body.
hc() {
	local t=$1
	shift
	inns curl -sk --http2 --max-time 60 -o "$T/body" -w '%{http_code}' \
		${t:+-H "x-keel-session: $t"} "$@" || true
}
url() { echo "$SRV/folder/$1?dsName=${2:-datastore1}"; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$hostd_pid/status"; }
# peak_rss PID: the largest VmRSS of hostd (KiB) while PID runs.
peak_rss() {
	local max=0 r
	while kill -0 "$1" 2>/dev/null; do
		r=$(rss)
		[ "$r" -gt "$max" ] && max=$r
		sleep 0.02
	done
	echo "$max"
}
no_temp() { # no temporary upload file left in the datastore (waits for the cleanup)
	for _ in $(seq 50); do
		[ -z "$(find "$1" -name '*.keel-upload')" ] && return 0
		sleep 0.1
	done
	fail "temporary files left: $(find "$1" -name '*.keel-upload')"
}

# 1. a 64 MiB random file up (curl) and down (curl, keel), same sha256, bounded RSS
head -c 64M /dev/urandom >"$T/big"
want=$(sha256sum <"$T/big" | cut -d' ' -f1)
base=$(rss)
hc "$ROOT" -T "$T/big" "$(url big.bin)" >"$T/code" &
cpid=$!
peak=$(peak_rss $cpid)
wait $cpid || fail "upload: curl failed"
[ "$(cat "$T/code")" = 201 ] || fail "upload: HTTP $(cat "$T/code"): $(cat "$T/body")"
[ "$(sha256sum <"$DS/big.bin" | cut -d' ' -f1)" = "$want" ] || fail "uploaded file differs"
[ "$(stat -c %a "$DS/big.bin")" = 644 ] || fail "mode $(stat -c %a "$DS/big.bin")"
echo "upload: hostd RSS $base KiB before, peak $peak KiB"
hc "$ROOT" "$(url big.bin)" >"$T/code" &
cpid=$!
peak2=$(peak_rss $cpid)
wait $cpid || fail "download: curl failed"
[ "$(cat "$T/code")" = 200 ] || fail "download: HTTP $(cat "$T/code")"
[ "$(sha256sum <"$T/body" | cut -d' ' -f1)" = "$want" ] || fail "downloaded file differs"
echo "download: hostd peak RSS $peak2 KiB"
if [ "${KEEL_ASAN:-0}" != 1 ]; then
	[ $((peak - base)) -lt 24576 ] || fail "hostd grew by $((peak - base)) KiB on a 64 MiB upload"
	[ $((peak2 - base)) -lt 24576 ] || fail "hostd grew by $((peak2 - base)) KiB on a 64 MiB download"
fi
[ "$(hc "$ROOT" -T "$T/big" "$(url big.bin)")" = 204 ] || fail "replace: $(cat "$T/body")"
[ "$(hc "$ROOT" -I "$(url big.bin)")" = 200 ] || fail "HEAD"
grep -q "file PUT /folder/big.bin?dsName=datastore1 by root: HTTP 201, 67108864 bytes" \
	"$LAB/hosts/host1/hostd.out" || fail "no log line of the upload"
# the CLI: login, put, get, --json
tp=$("$HOSTD" --thumbprint --state-dir "$LAB/hosts/host1" |
	grep -oE '([0-9A-F]{2}:){31}[0-9A-F]{2}') || fail "hostd --thumbprint"
k login --user root --password-file "$pwfile" --thumbprint "$tp" >/dev/null || fail "keel login"
mkdir "$DS/sub"
j=$(k file put --datastore datastore1 "$T/big" sub/cli.bin --json) || fail "keel file put: $j"
[ "$(py 'd["bytes"], d["created"]' "$j")" = "67108864 True" ] || fail "put json: $j"
j=$(cd "$T" && k file get --datastore datastore1 sub/cli.bin --output "$T/cli.out" --json) ||
	fail "keel file get: $j"
[ "$(py 'd["bytes"]' "$j")" = 67108864 ] || fail "get json: $j"
[ "$(sha256sum <"$T/cli.out" | cut -d' ' -f1)" = "$want" ] || fail "keel file get differs"
[ ! -e "$T/cli.out.part" ] || fail "a .part file was left"
set +e
msg=$(k file get --datastore datastore1 missing.bin --output "$T/m" 2>&1); rc=$?
set -e
[ "$rc" = 1 ] && echo "$msg" | grep -q "missing.bin does not exist on datastore datastore1" ||
	fail "keel file get of a missing file: $rc $msg"
[ ! -e "$T/m" ] && [ ! -e "$T/m.part" ] || fail "a failed get left a file"
k file get --help | grep -q -- "--output LOCAL" || fail "file get --help"

# 2. traversal: refused, nothing outside read or written
mkdir -p "$T/outside"
echo "secret-outside" >"$T/outside/secret"
ln -s "$T/outside" "$DS/evil"
ln -s ../../root-password "$DS/up.txt"
echo "inside" >"$DS/in.txt"
for p in "../hostd.key" "sub/../../hostd.key" "..%2fhostd.key" "%2e%2e/hostd.key" \
	"sub/%2E%2E/%2e%2E/hostd.key" "a%5c..%5chostd.key" "in.txt%00" "sub//in.txt" "/in.txt" \
	"./in.txt"; do
	code=$(hc "$ROOT" --path-as-is "$(url "$p")")
	[ "$code" = 400 ] || fail "GET $p: HTTP $code: $(cat "$T/body")"
	grep -Eq "not allowed|bad %-escape|NUL" "$T/body" || fail "GET $p: $(cat "$T/body")"
done
code=$(hc "$ROOT" "$(url evil/secret)")
[ "$code" = 403 ] && grep -q "leads outside datastore datastore1" "$T/body" ||
	fail "symlink out: HTTP $code $(cat "$T/body")"
code=$(hc "$ROOT" "$(url up.txt)")
[ "$code" = 403 ] && ! grep -qf "$pwfile" "$T/body" || fail "relative symlink out: $code"
echo x >"$T/x"
code=$(hc "$ROOT" -T "$T/x" "$(url evil/planted)")
[ "$code" = 403 ] || fail "PUT through a symlink: HTTP $code"
code=$(hc "$ROOT" -T "$T/x" --path-as-is "$(url ../planted)")
[ "$code" = 400 ] || fail "PUT ..: HTTP $code"
[ ! -e "$T/outside/planted" ] && [ ! -e "$LAB/hosts/host1/planted" ] || fail "a file was written outside"
[ "$(hc "$ROOT" "$(url in.txt)")" = 200 ] && [ "$(cat "$T/body")" = inside ] || fail "in.txt"
[ "$(hc "$ROOT" "$(url in.txt nosuchds)")" = 404 ] || fail "unknown datastore"
[ "$(hc "$ROOT" "$SRV/folder/in.txt")" = 400 ] && grep -q dsName "$T/body" || fail "no dsName"
[ "$(hc "$ROOT" "$(url sub)")" = 400 ] && grep -q "directory" "$T/body" || fail "GET a directory"
[ "$(hc "$ROOT" -X DELETE "$(url in.txt)")" = 405 ] || fail "DELETE"

# 3. authentication and privileges
code=$(hc "" -D "$T/hdrs" "$(url in.txt)")
[ "$code" = 401 ] && grep -qi "^www-authenticate: Basic" "$T/hdrs" || fail "no credentials: $code"
[ "$(hc 0000000000000000000000000000000000000000000000000000000000000000 "$(url in.txt)")" = 401 ] ||
	fail "unknown session"
[ "$(hc "" -u root:wrong-password "$(url in.txt)")" = 401 ] &&
	grep -q "incorrect user name or password" "$T/body" || fail "wrong password"
[ "$(hc "" -u "root:$(cat "$pwfile")" "$(url in.txt)")" = 200 ] || fail "Basic: $(cat "$T/body")"
code=$(hc "$(tok fro)" "$(url in.txt)")
[ "$code" = 403 ] && grep -q "lacks privilege Datastore.Browse on ds-datastore1" "$T/body" ||
	fail "ReadOnly user: HTTP $code $(cat "$T/body")"
[ "$(hc "$(tok fro)" "$SRV/host/vmkernel.log")" = 200 ] || fail "ReadOnly user: host file"
[ "$(hc "$(tok fna)" "$SRV/host/vmkernel.log")" = 403 ] || fail "NoAccess user: host file"
[ "$(hc "$(tok fna)" "$(url in.txt)")" = 403 ] || fail "NoAccess user: datastore file"
[ "$(hc "$(tok fbr)" "$(url in.txt)")" = 200 ] || fail "Datastore.Browse user: GET"
code=$(hc "$(tok fbr)" -T "$T/x" "$(url in.txt)")
[ "$code" = 403 ] && grep -q "Datastore.FileManagement" "$T/body" || fail "browse-only PUT: $code"
[ "$(cat "$DS/in.txt")" = inside ] || fail "in.txt changed"

# 4. a client that stops reading 17 downloads on one connection: the 17th is refused (16 per
# connection), memory stays bounded, others are served
base=$(rss)
inns timeout 30 /usr/bin/python3 "$KEEL_TOP/tests/integration/api_files_client.py" stall \
	198.18.0.1 8443 "$ROOT" "/folder/big.bin?dsName=datastore1" 17 6 >"$T/stall.out" 2>&1 &
spid=$!
sleep 2
[ "$(hc "$ROOT" "$(url in.txt)")" = 200 ] || fail "a GET beside the stalled client"
k inventory --json >/dev/null || fail "inventory beside the stalled client"
[ "$(hc "$ROOT" "$(url big.bin)")" = 200 ] || fail "a 64 MiB GET beside the stalled client"
cmp -s "$T/body" "$T/big" || fail "the GET beside the stalled client differs"
during=$(rss)
wait $spid || fail "stall client: $(cat "$T/stall.out")"
echo "stalled client: hostd RSS $base KiB before, $during KiB during"
[ "${KEEL_ASAN:-0}" = 1 ] || [ $((during - base)) -lt 24576 ] ||
	fail "hostd grew by $((during - base)) KiB with a client that does not read"
for _ in $(seq 50); do
	[ "$(grep -c "file GET /folder/big.bin.*(cut short)" "$LAB/hosts/host1/hostd.out")" -ge 16 ] && break
	sleep 0.1
done
[ "$(grep -c "file GET /folder/big.bin.*(cut short)" "$LAB/hosts/host1/hostd.out")" -ge 16 ] ||
	fail "the stalled downloads did not end when the client went"
[ "$(grep -c "file GET /folder/big.bin?dsName=datastore1 by root: HTTP 503" \
	"$LAB/hosts/host1/hostd.out")" = 1 ] ||
	fail "the 17th download on one connection was not refused"

# 5. uploads cut mid-stream: the old file stays, no temporary file
head -c 64M /dev/urandom >"$T/big2"
nsenter --net="$NETNS" curl -sk --http2 --limit-rate 4M -o /dev/null \
	-H "x-keel-session: $ROOT" -T "$T/big2" "$(url big.bin)" & # nsenter execs curl: one pid
cpid=$!
sleep 1.5
[ -n "$(find "$DS" -name '*.keel-upload')" ] || fail "no temporary file while uploading"
kill -9 $cpid
wait $cpid 2>/dev/null || true
no_temp "$DS"
[ "$(sha256sum <"$DS/big.bin" | cut -d' ' -f1)" = "$want" ] || fail "a killed upload changed the file"
inns timeout 20 /usr/bin/python3 "$KEEL_TOP/tests/integration/api_files_client.py" reset \
	198.18.0.1 8443 "$ROOT" "/folder/big.bin?dsName=datastore1" 60000 || fail "reset client"
no_temp "$DS"
[ "$(sha256sum <"$DS/big.bin" | cut -d' ' -f1)" = "$want" ] || fail "a reset upload changed the file"
[ "$(hc "$ROOT" "$(url in.txt)")" = 200 ] || fail "hostd after the cut uploads"
# Six 64 MiB uploads refused on one connection (no such directory: refused after their
# first DATA arrived): the windows they held come back, a download on it still works.
args=()
for i in 1 2 3 4 5 6; do args+=(-T "$T/big" -o /dev/null "$(url "nodir/f$i")"); done
codes=$(inns curl -sk --http2 --max-time 60 -H "x-keel-session: $ROOT" \
	-w '%{http_code}/%{num_connects} ' "${args[@]}" -o "$T/again" "$(url big.bin)") || true
echo "one connection: $codes"
[ "$codes" = "404/1 404/0 404/0 404/0 404/0 404/0 200/0 " ] || fail "refused uploads: $codes"
cmp -s "$T/again" "$T/big" || fail "the download after the refused uploads differs"

# 6. a full datastore: 507, nothing left
code=$(hc "$ROOT" -T "$T/big" "$(url full.bin shared1)")
[ "$code" = 507 ] && grep -q "no space left" "$T/body" || fail "disk full: HTTP $code $(cat "$T/body")"
no_temp "$LAB/shared"
[ ! -e "$LAB/shared/full.bin" ] || fail "a failed upload left its target"

# 7. host files
code=$(hc "$ROOT" "$SRV/host/vmkernel.log")
[ "$code" = 200 ] && head -1 "$T/body" | cmp -s - <(head -1 "$LAB/hosts/host1/vmkernel.log") ||
	fail "host vmkernel.log: $code"
k file get --host network.conf --output "$T/net.conf" >/dev/null || fail "keel file get --host"
cmp -s "$T/net.conf" "$LAB/hosts/host1/network.conf" || fail "network.conf differs"
for f in auth.db hostd.key root-password vmkernel.sock ../root-password; do
	code=$(hc "$ROOT" --path-as-is "$SRV/host/$f")
	[ "$code" = 404 ] || fail "host file $f: HTTP $code"
	grep -q "not a host file" "$T/body" || fail "host file $f: $(cat "$T/body")"
done
code=$(hc "$ROOT" -T "$T/x" "$SRV/host/network.conf")
[ "$code" = 403 ] && grep -q "network.conf cannot be replaced over HTTPS; change it through the API" \
	"$T/body" || fail "PUT host file: $code $(cat "$T/body")"
cmp -s "$T/net.conf" "$LAB/hosts/host1/network.conf" || fail "network.conf changed"

lab down --dir "$LAB" >/dev/null || fail "lab down"
echo PASS
