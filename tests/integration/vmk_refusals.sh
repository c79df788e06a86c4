# Refusals that change nothing: admission control, hostile .vmx files, bad requests.
source "$(dirname "$0")/common.bash"
need_kvm
start_vmkernel

reservable=$(( $(json_field "$(keel --json host info)" mem_reservable_bytes) / 1048576 ))
[ "$reservable" -gt 512 ] || fail "host reports $reservable MiB reservable"
# a VM that reserves more memory than the host can hand out
keel vm create big --memory 256 --mem-reservation 200 >/dev/null || fail "create big"
keel vm create hog --memory $(( (reservable / 2 + 1) * 2 )) --mem-reservation $(( reservable - 100 )) >/dev/null || fail "create hog"
keel vm power-on hog >/dev/null || fail "power-on hog (fits alone)"
set +e
msg=$(keel vm power-on big 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] || fail "admission: exit $rc ($msg)"
[[ $msg == *"cannot power on big"* && $msg == *"MiB"* ]] || fail "admission message: $msg"
[ "$(json_field "$(keel --json vm info big)" power_state)" = poweredOff ] || fail "big powered on"
keel vm power-off hog >/dev/null
keel vm power-on big >/dev/null || fail "big fits once hog is off"
keel vm power-off big >/dev/null

# hostile .vmx files are refused with a clear error and register nothing
D=$T/state/datastore1/evil
mkdir -p "$D"
n0=$(keel --json vm list | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("vms",[])))')
try_vmx() {
	printf '%b' "$2" >"$D/evil.vmx"
	set +e
	out=$(keel vm register "$D/evil.vmx" 2>&1)
	rc=$?
	set -e
	[ "$rc" = 1 ] || fail "$1: registered (exit $rc): $out"
	[ -n "$out" ] || fail "$1: no message"
	echo "refused $1: $out"
}
try_vmx "path traversal" 'config.version = "1"\ndisplayName = "evil"\nmemsize = "64"\nnumvcpus = "1"\ndisk0.present = "TRUE"\ndisk0.fileName = "../../../etc/shadow"\n'
try_vmx "bad quoting" 'config.version = "1"\ndisplayName = "evil\n'
try_vmx "huge memsize" 'config.version = "1"\ndisplayName = "evil"\nmemsize = "99999999999"\nnumvcpus = "1"\n'
try_vmx "NUL byte" 'config.version = "1"\ndisplayName = "ev\0il"\n'
try_vmx "duplicate key" 'config.version = "1"\ndisplayName = "evil"\ndisplayName = "evil2"\nmemsize = "64"\nnumvcpus = "1"\n'
head -c 200000 /dev/zero | tr '\0' 'a' >"$D/evil.vmx"
set +e; out=$(keel vm register "$D/evil.vmx" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] || fail "a 200 KB .vmx was registered"
ln -sf /etc/passwd "$D/evil.vmx"
set +e; out=$(keel vm register "$D/evil.vmx" 2>&1); rc=$?; set -e
[ "$rc" = 1 ] || fail "a symlinked .vmx was registered"
n1=$(keel --json vm list | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("vms",[])))')
[ "$n0" = "$n1" ] || fail "the inventory changed: $n0 -> $n1"

# bad requests through keel
set +e
keel vm power-on nosuchvm >/dev/null 2>&1; [ $? = 1 ] || fail "power-on of a missing VM"
keel vm create "bad/name" >/dev/null 2>&1; [ $? = 1 ] || fail "a VM name with a slash"
keel vm create x --memory 3 >/dev/null 2>&1; [ $? = 1 ] || fail "memory 3 MiB"
keel vm create y --nic "No Such Portgroup" >/dev/null 2>&1
rc=$?
set -e
if [ "$rc" = 0 ]; then
	set +e; keel vm power-on y >/dev/null 2>&1; rc=$?; set -e
	[ "$rc" = 1 ] || fail "power-on with a NIC on a missing portgroup"
fi
# a raw malformed frame does not disturb vmkernel
python3 - "$T/state/vmkernel.sock" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(struct.pack(">I", 5) + b"\xff\xff\xff\xff\x0f"); s.recv(4096); s.close()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(struct.pack(">I", 0x7fffffff)); s.recv(4096); s.close()
PY
keel host info >/dev/null || fail "vmkernel stopped answering after malformed frames"
echo "ok"
