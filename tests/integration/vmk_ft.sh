# FT, vmkernel's part (docs/ft.md "vmkernel's part"), standalone: `keel lab up 2` without a
# cluster gives host1 and host2 with the shared datastore shared1 and FaultToleranceLogging-
# tagged vmk2 adapters. A kguest VM on shared1 (counter, disk sequence) runs on host1; a
# Python client speaks VmkVmFt* to the vmkernels (vmk_ft_client.py):
#   - refusals change nothing: an unknown VM, FtStart for a VM not powered on, an id of
#     the wrong size, a wrong uuid or datastore, FtSecondary where the VM runs, a second
#     FtSecondary, a takeover before protection;
#   - FtSecondary on host2: sparse copies of the disks in <VM dir>/ft-<host>/, a vmx
#     listening on host2's vmk2 address, power state "ft-secondary", busy for power
#     operations, not in inventory.conf; FtStop there ends it, removes the copies and
#     undoes the registration;
#   - a secondary vmx killed is cleaned up (copies, registration) with an event; host2's
#     vmkernel killed under a secondary: the restarted one ends the leftover vmx;
#   - FtStop on the primary: the VM runs on there, the secondary stays ("lost") until its
#     own FtStop;
#   - FtSecondary again, FtStart on host1: both sides reach "protected";
#   - host1 killed (keel lab host-kill), Takeover on host2 at epoch 2: the VM is powered on
#     at host2 (in its inventory, the .vmx naming the copies), its counter goes on, and
#     the disk sequence goes on on the copy (diskseq_check.py after power-off).
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
PY=/usr/bin/python3
$PY -c 'import google.protobuf' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no protobuf module"; exit 77; }
command -v protoc >/dev/null || { echo "SKIP: protoc missing"; exit 77; }
"$VMX" --help 2>&1 | grep -q -- '--ft-secondary-fd' || { echo "SKIP: this vmx cannot be an FT secondary"; exit 77; }

KEEL_TOP=${KEEL_TOP:-$PWD}
CLIENT=$KEEL_TOP/tests/integration/vmk_ft_client.py
mkdir -p "$T/stubs"
protoc -Iproto --python_out="$T/stubs" proto/vmk.proto || fail "protoc"

LAB=$T/lab
cp "$KEEL_BIN" "$T/keel"
lab() { "$KEEL_BIN" lab "$@"; }
hk() { local h=$1; shift; "$T/keel" --socket "$LAB/hosts/$h/vmkernel.sock" "$@"; }
ft() { local h=$1; shift; $PY "$CLIENT" "$T/stubs" "$LAB/hosts/$h/vmkernel.sock" "$@"; }
lab_cleanup() {
	set +e
	if [ -d "$LAB" ]; then
		cp "$LAB/lab.log" "$T/lab.log" 2>/dev/null
		for h in host1 host2; do cp "$LAB/hosts/$h/vmkernel.log" "$T/vmkernel-$h.log" 2>/dev/null; done
		for _ in 1 2 3 4 5; do "$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1 && break; sleep 2; done
	fi
	cleanup
}
trap lab_cleanup EXIT

py() { $PY -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }
code() { py 'd.get("code", 0)' "$1"; }
err() { py 'd.get("error", "")' "$1"; }
power() { py 'd["vms"][0]["power_state"]' "$(hk "$1" --json vm info "$2")"; }
listed() { hk "$1" --json vm list | $PY -c 'import json,sys; print(any(v["name"]==sys.argv[1] for v in json.load(sys.stdin).get("vms",[])))' "$2"; }
phase() { py 'd.get("ft", {}).get("phase", "")' "$(ft "$1" status "$2" 2>/dev/null || echo '{}')" 2>/dev/null || true; }
sec_pid() { pgrep -f -- "--ctl $LAB/hosts/host2/run/$UUID.ctl" | head -1; }
counter() { grep "kguest: counter" "$1" 2>/dev/null | tail -1 | sed 's/.*counter \([0-9]*\).*/\1/'; }
nlines() { grep -c "kguest: counter" "$1" 2>/dev/null || echo 0; }
inv2() { grep -v '^#' "$LAB/hosts/host2/inventory.conf" 2>/dev/null || true; }

out=$(lab up 2 --dir "$LAB" --json) || fail "lab up: $out"
vn=$(hk host2 --json network vmknic list) || fail "vmknic list"
FTIP=$(py '[n["ipv4"] for n in d["vmknics"] if "FaultToleranceLogging" in n.get("tags", [])][0]' "$vn") ||
	fail "host2 has no FaultToleranceLogging adapter: $vn"

CMD="counter_ms=100 idle_ms=5 disk_seq=1 disk_ms=20"
hk host1 vm create f1 --memory 64 --datastore shared1 --disk 8 --cmdline "$CMD" \
	--nic "VM Network" >/dev/null || fail "create f1 on shared1"
hk host1 vm power-on f1 >/dev/null || fail "power-on f1"
info=$(hk host1 --json vm info f1)
UUID=$(py 'd["vms"][0]["uuid"]' "$info")
VMX_PATH=$(py 'd["vms"][0]["vmx_path"]' "$info")
VMDIR=$(dirname "$VMX_PATH")
CON=$VMDIR/console.log
DISK=$(ls "$VMDIR"/*.img 2>/dev/null | head -1)
[ -n "$DISK" ] || DISK=$(ls "$VMDIR"/*disk* | head -1)
ID=$($PY -c 'import os; print(os.urandom(16).hex())')
KEY=$($PY -c 'import os; print(os.urandom(32).hex())')
hk host1 vm create f2 --memory 64 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
	fail "create f2"
VMX_BEFORE=$(cat "$VMX_PATH")

# ---- refusals: clear errors, nothing changes -------------------------------------------
inv2_before=$(inv2)
r=$(ft host1 status nosuch)
[[ $(err "$r") == "no VM named nosuch" ]] || fail "status of an unknown VM: $r"
r=$(ft host2 takeover nosuch 2)
[[ $(err "$r") == "no VM named nosuch" ]] || fail "takeover of an unknown VM: $r"
r=$(ft host1 start f2 "$FTIP:1" "$ID" "$KEY")
[[ $(err "$r") == *"VM f2 is not powered on"* ]] || fail "FtStart of a powered-off VM: $r"
[ "$(power host1 f2)" = poweredOff ] || fail "f2 changed"
r=$(ft host1 start f1 "$FTIP" "$ID" "$KEY")
[[ $(err "$r") == *"is not IP:PORT"* ]] || fail "FtStart without a port: $r"
r=$(ft host2 raw-secondary "$VMX_PATH" "$UUID" 15 32)
[[ $(err "$r") == *"must be 16 bytes and its key 32"* ]] || fail "short id: $r"
r=$(ft host2 secondary "$VMX_PATH" 11111111-2222-3333-4444-555555555555 "$ID" "$KEY")
[[ $(err "$r") == *"names uuid $UUID, not 11111111-2222-3333-4444-555555555555"* ]] ||
	fail "wrong uuid: $r"
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY" nosuch)
[[ $(err "$r") == *"no datastore named nosuch"* ]] || fail "FtSecondary on an unknown datastore: $r"
r=$(ft host1 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[[ $(err "$r") == *"VM f1 is powered on here"* ]] || fail "FtSecondary where the VM runs: $r"
[ "$(power host1 f1)" = poweredOn ] || fail "f1 disturbed on host1"
[ "$(listed host2 f1)" = False ] || fail "a refusal registered f1 on host2"
[ "$(inv2)" = "$inv2_before" ] || fail "a refusal changed host2's inventory"
ls -d "$VMDIR"/ft-* 2>/dev/null && fail "a refusal made copies"

# ---- the secondary, then FtStop on it --------------------------------------------------
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtSecondary: $r"
EP=$(py 'd["ft"]["endpoint"]' "$r")
[[ $EP == "$FTIP":* ]] || fail "endpoint $EP not on host2's FT adapter $FTIP: $r"
[ "$(py 'd["ft"]["role"]' "$r")" = secondary ] || fail "role: $r"
COPY=$(py 'd["ft"]["copies"][0]' "$r")
[[ $COPY == "$VMDIR"/ft-*/* ]] || fail "copy $COPY not in $VMDIR/ft-*/"
[ "$(stat -c %s "$COPY")" = "$(stat -c %s "$DISK")" ] || fail "the copy's size differs from $DISK"
[ "$(du -k "$COPY" | cut -f1)" -lt 1024 ] || fail "the copy is not sparse: $(du -k "$COPY")"
[ "$(power host2 f1)" = ft-secondary ] || fail "f1 not ft-secondary on host2: $(hk host2 --json vm info f1)"
[ "$(inv2)" = "$inv2_before" ] || fail "a secondary went into host2's inventory.conf: $(inv2)"
spid=$(sec_pid)
[ -n "$spid" ] || fail "no secondary vmx on host2"
tr '\0' ' ' </proc/"$spid"/cmdline | grep -q -- "--ft-secondary-fd" || fail "the vmx is no FT secondary"
tr '\0' ' ' </proc/"$spid"/cmdline | grep -q -- "--disk $COPY" || fail "the vmx does not use the copy"
rc=0; hk host2 vm power-on f1 >"$T/busy.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "busy: FT secondary in progress" "$T/busy.out" ||
	fail "power-on of a secondary: rc $rc $(cat "$T/busy.out")"
rc=0; hk host2 vm power-off f1 >"$T/busy.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "busy: FT secondary in progress" "$T/busy.out" ||
	fail "power-off of a secondary: rc $rc $(cat "$T/busy.out")"
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[[ $(err "$r") == *"has an FT secondary on this host already"* ]] || fail "FtSecondary twice: $r"
r=$(ft host2 takeover f1 2)
[ "$(code "$r")" != 0 ] && [[ $(err "$r") == *"no checkpoint was applied here"* ]] ||
	fail "takeover before protection: $r"
[ "$(power host2 f1)" = ft-secondary ] || fail "a refused takeover changed f1 on host2"
[ "$(sec_pid)" = "$spid" ] || fail "a refusal changed the secondary vmx"
[ "$(ls "$VMDIR"/ft-*/ | wc -l)" = 1 ] || fail "a refusal changed the copies: $(ls "$VMDIR"/ft-*/)"
r=$(ft host2 stop f1)
[ "$(code "$r")" = 0 ] && [ "$(py 'd["ft"]["phase"]' "$r")" = stopped ] || fail "FtStop on the secondary: $r"
kill -0 "$spid" 2>/dev/null && fail "the secondary vmx $spid survived FtStop"
[ -e "$COPY" ] && fail "FtStop left the copy $COPY"
[ "$(listed host2 f1)" = False ] || fail "FtStop left f1 registered on host2"
hk host2 host log --lines 100 | grep -q "VM f1: FT secondary stopped by request (registration for it undone)" ||
	fail "FtStop not logged: $(hk host2 host log --lines 20)"
[ "$(power host1 f1)" = poweredOn ] || fail "f1 disturbed on host1 by FtStop"

# ---- supervision: the secondary vmx killed; vmkernel restarted under a secondary ---------
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtSecondary (kill): $r"
COPY=$(py 'd["ft"]["copies"][0]' "$r")
spid=$(sec_pid)
[ -n "$spid" ] || fail "no secondary vmx on host2 (kill)"
kill -9 "$spid"
for _ in $(seq 200); do [ "$(listed host2 f1)" = False ] && break; sleep 0.05; done
[ "$(listed host2 f1)" = False ] || fail "a killed secondary left f1 on host2: $(hk host2 --json vm info f1)"
[ -e "$COPY" ] && fail "a killed secondary left its copy $COPY"
hk host2 host log --lines 100 | grep -q "VM f1: FT secondary ended: vmx killed by signal 9" ||
	fail "the kill is not reported: $(hk host2 host log --lines 20)"
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtSecondary (vmkernel kill): $r"
spid=$(sec_pid)
[ -n "$spid" ] || fail "no secondary vmx on host2 (vmkernel kill)"
vmk2=$(py 'd["hosts"][1]["daemons"][0]["pid"]' "$(lab status --dir "$LAB" --json)")
kill -9 "$vmk2"
for _ in $(seq 200); do
	new=$(py 'd["hosts"][1]["daemons"][0]["pid"]' "$(lab status --dir "$LAB" --json)")
	[ "$new" != "$vmk2" ] && [ "$new" -gt 0 ] && hk host2 host info >/dev/null 2>&1 && break
	sleep 0.05
done
hk host2 host info >/dev/null 2>&1 || fail "host2's vmkernel was not restarted"
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$spid" 2>/dev/null && fail "the secondary vmx $spid outlived its vmkernel's restart"
[ "$(listed host2 f1)" = False ] || fail "f1 listed on host2 after the restart"
[ ! -e "$LAB/hosts/host2/run/$UUID.pid" ] || fail "the secondary's pid record is left"
[ "$(power host1 f1)" = poweredOn ] || fail "f1 disturbed on host1 by host2's restart"
rm -rf "$VMDIR"/ft-* # the copies of a secondary vmkernel lost track of

# ---- FtStop on the primary: FT ends there, the guest runs on; the secondary stays lost --
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtSecondary (primary stop): $r"
COPY=$(py 'd["ft"]["copies"][0]' "$r")
r=$(ft host1 start f1 "$(py 'd["ft"]["endpoint"]' "$r")" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtStart (primary stop): $r"
for _ in $(seq 600); do [ "$(phase host1 f1)" = protected ] && break; sleep 0.1; done
[ "$(phase host1 f1)" = protected ] || fail "not protected (primary stop): $(ft host1 status f1)"
r=$(ft host1 stop f1)
[ "$(code "$r")" = 0 ] || fail "FtStop on the primary: $r"
# the stream ends without an abort: the secondary keeps its last checkpoint ("lost"),
# as after the primary's death, until it is told (here: FtStop on host2)
for _ in $(seq 100); do [ "$(phase host2 f1)" = lost ] && break; sleep 0.1; done
[ "$(phase host2 f1)" = lost ] || fail "the secondary after the primary's FtStop: $(ft host2 status f1)"
[ "$(power host2 f1)" = ft-secondary ] || fail "f1 on host2 after the primary's FtStop"
r=$(ft host2 stop f1)
[ "$(code "$r")" = 0 ] || fail "FtStop on the lost secondary: $r"
[ "$(listed host2 f1)" = False ] || fail "FtStop left f1 on host2"
[ -e "$COPY" ] && fail "FtStop left the copy $COPY"
[ "$(power host1 f1)" = poweredOn ] || fail "f1 does not run on host1 after FtStop"
n=$(nlines "$CON"); sleep 0.5
[ "$(nlines "$CON")" -gt "$n" ] || fail "f1's guest stopped on host1 after FtStop"

# ---- protection ------------------------------------------------------------------------
r=$(ft host2 secondary "$VMX_PATH" "$UUID" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtSecondary (2): $r"
EP=$(py 'd["ft"]["endpoint"]' "$r")
COPY=$(py 'd["ft"]["copies"][0]' "$r")
r=$(ft host1 start f1 "$EP" "$ID" "$KEY")
[ "$(code "$r")" = 0 ] || fail "FtStart: $r"
for _ in $(seq 600); do
	[ "$(phase host1 f1)" = protected ] && [ "$(phase host2 f1)" = protected ] && break
	sleep 0.1
done
[ "$(phase host2 f1)" = protected ] || fail "the secondary is not protected: $(ft host2 status f1)"
[ "$(phase host1 f1)" = protected ] || fail "the primary is not protected: $(ft host1 status f1)"
r=$(ft host1 status f1)
[ "$(py 'd["ft"]["role"]' "$r")" = primary ] || fail "primary's role: $r"
r=$(ft host2 status f1)
[ "$(py 'int(d["ft"].get("checkpoint", 0)) > 0' "$r")" = True ] || fail "no checkpoint on host2: $r"
echo "protected: $(py 'd["ft"]' "$(ft host1 status f1)")"

# ---- failover: host1 dies, host2 takes over at epoch 2 ---------------------------------
sleep 1
seq_before=$(grep -E "disk seq [0-9]+" "$CON" | tail -1 | sed 's/.*disk seq \([0-9]*\).*/\1/')
lab host-kill host1 --dir "$LAB" >/dev/null || fail "host-kill host1"
c_kill=$(counter "$CON")
for _ in $(seq 100); do [ "$(phase host2 f1)" = lost ] && break; sleep 0.1; done
[ "$(phase host2 f1)" = lost ] || fail "the secondary did not notice: $(ft host2 status f1)"
n0=$(nlines "$CON")
t0=$(date +%s%N)
r=$(ft host2 takeover f1 2)
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(code "$r")" = 0 ] || fail "takeover: $r"
info=$(hk host2 --json vm info f1)
[ "$(py 'd["vms"][0]["power_state"]' "$info")" = poweredOn ] || fail "f1 not powered on at host2: $info"
ev=$(py 'd["vms"][0]["last_event"]' "$info")
[[ $ev == "FT takeover at epoch 2"* ]] || fail "host2's event: $ev"
echo "takeover request: $ms ms; $ev"
grep -q "$VMX_PATH" "$LAB/hosts/host2/inventory.conf" || fail "f1 not in host2's inventory.conf"
grep -q "$(basename "$COPY")" "$VMX_PATH" || fail "the .vmx does not name the copy: $(cat "$VMX_PATH")"
more() { [ "$(nlines "$CON")" -gt "$((n0 + 3))" ]; }
for _ in $(seq 100); do more && break; sleep 0.1; done
more || fail "f1's guest does not run on host2"
c_after=$(counter "$CON")
[ "$c_after" -ge "$((c_kill - 20))" ] && [ "$c_after" -gt 20 ] ||
	fail "the counter did not go on ($c_kill at the kill, $c_after after the takeover)"
n1=$(grep -cE "disk seq [0-9]+" "$CON")
moreseq() { [ "$(grep -cE "disk seq [0-9]+" "$CON")" -gt "$((n1 + 2))" ]; }
for _ in $(seq 100); do moreseq && break; sleep 0.1; done
moreseq || fail "the disk sequence does not go on on host2"
hk host2 vm power-off f1 >/dev/null || fail "power-off f1 on host2"
chk=$($PY "$KEEL_TOP/tests/integration/diskseq_check.py" "$COPY") || fail "the copy: $chk"
last=$(echo "$chk" | sed 's/last=\([0-9]*\).*/\1/')
[[ $chk == *"runs=1"* ]] || fail "the sequence restarted on the copy: $chk"
[ "$last" -gt "$seq_before" ] || fail "the copy ($chk) is behind the primary ($seq_before)"
echo "ok: refusals, secondary start/stop/kill/vmkernel restart, primary stop, protection, takeover at epoch 2 (disk sequence $seq_before -> $chk)"
