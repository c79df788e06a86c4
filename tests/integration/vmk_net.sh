# VM networking of vmkernel (kernel/net) end to end, in a private network namespace:
# first start makes vSwitch0 with "VM Network"; a vSwitch with a veth uplink and a
# portgroup are added; a VM NIC's port (a persistent tap) is created on it and attached to
# the bridge; kguest runs under vmx on that tap and answers UDP echo from the bridge's
# address through bridge and tap. A restart while the VM runs keeps its tap; a restart
# after the VM stopped drops it; the removal rules hold; everything is removed at the end.
# The library is driven through "test_net drive" (tests/unit/test_net.c).
#
# When this kernel has no bridge VLAN filtering, the VLAN unit tests also run under
# Debian's kernel in QEMU (TCG) when qemu-system-x86_64, busybox-static, cpio and the
# kernel package (tests/guest-images/fetch-kernel.sh) are available; otherwise a note says
# the VLAN datapath was not checked here.
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
TEST_NET=$PWD/$BUILD/tests/test_net
[ -x "$TEST_NET" ] || fail "no $TEST_NET (build it first)"
[ -x "$VMX" ] || fail "no vmx at $VMX (build it first)"
here=$(cd "$(dirname "$0")/.." && pwd)

NS=keel-it-vmknet-$$
ip netns add "$NS" || fail "cannot create a network namespace"
trap 'cleanup; ip netns del "$NS" 2>/dev/null || true' EXIT
# (Background jobs call ip netns exec directly, so that $! is the pid of vmx itself.)
in_ns() { ip netns exec "$NS" "$@"; }
STATE=$T/state
mkdir -p "$STATE"
drive() { in_ns "$TEST_NET" drive "$STATE" "$@"; }
UUID=6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b
MAC=02:4b:45:00:01:02
in_ns ip link set lo up

# First start: the default vSwitch and portgroup, no uplink.
out=$(drive show) || fail "first start: $out"
echo "$out"
[[ $out == *"vswitch vSwitch0 mtu 1500 uplinks"* ]] || fail "no default vSwitch0"
[[ $out == *'portgroup "VM Network" vswitch vSwitch0 vlan 0 ports'* ]] || fail "no VM Network"
grep -q '^version 1$' "$STATE/network.conf" || fail "network.conf not written"

# A vSwitch with an uplink (a veth end stands in for vmnic0) and a portgroup.
in_ns ip link add vmnic0 type veth peer name vmnic0p
in_ns ip link set vmnic0p up
drive vswitch-add vSwitch1 1500 || fail "vswitch-add"
drive uplink-add vSwitch1 vmnic0 || fail "uplink-add"
drive portgroup-add "Test Network" vSwitch1 0 || fail "portgroup-add"
drive vswitch-add "bad name" 1500 2>"$T/err.log" && fail "a bad vSwitch name was accepted"
grep -q "vSwitch name" "$T/err.log" || fail "no clear error for a bad name: $(cat "$T/err.log")"
[ "$(in_ns cat /sys/class/net/vmnic0/master/ifindex)" = "$(in_ns cat /sys/class/net/vSwitch1/ifindex)" ] ||
	fail "vmnic0 is not a port of vSwitch1"

# The VM NIC's port: a tap on the portgroup's bridge, which vmx with kguest opens at
# once (every drive call is a vmkernel start, and a start drops ports no vmx holds).
tap=$(drive port-create "Test Network" "$UUID" 0) || fail "port-create"
echo "port $tap"
[[ $tap =~ ^kt[0-9a-f]{8}n0$ ]] || fail "unexpected tap name $tap"
ip netns exec "$NS" "$VMX" --name n --ctl "$T/n.sock" --console-log "$T/n.log" \
	--kernel "$KGUEST" --mem 128M --net "$tap,mac=$MAC" \
	--cmdline "ip=198.18.1.2 counter_ms=1000" 2>"$T/n.vmx.log" &
VMX_PID=$!
PIDS+=("$VMX_PID")
wait_for "$T/n.log" "net .*mac=$MAC|net.*$MAC"
[ "$(basename "$(in_ns readlink "/sys/class/net/$tap/master")")" = vSwitch1 ] ||
	fail "$tap is not attached to vSwitch1"
[ "$(in_ns cat "/sys/class/net/$tap/tun_flags")" = 0x5802 ] ||
	fail "tap flags are not TAP|NO_PI|VNET_HDR|PERSIST"
drive portgroup-remove "Test Network" 2>"$T/err.log" && fail "portgroup with a port was removed"
grep -q "in use by port $tap" "$T/err.log" || fail "no clear error: $(cat "$T/err.log")"

# The host on the bridge, kguest behind the tap.
in_ns ip addr add 198.18.1.1/24 dev vSwitch1
out=$(in_ns python3 "$here/integration/udp_echo_client.py" 198.18.1.2 7 100 1.0)
echo "through vSwitch1 and $tap: $out"
[[ $out == *"replies=100 lost=0"* ]] || fail "echo through the bridge lost replies: $out"
in_ns ip neigh show 198.18.1.2 | grep -qi "$MAC" || fail "ARP did not resolve the guest"

# vmkernel restarts while the VM runs: the tap is kept and still carries traffic.
index=$(in_ns cat "/sys/class/net/$tap/ifindex")
out=$(drive show) || fail "restart: $out"
[[ $out == *"ports $tap"* ]] || fail "the running VM's port was dropped: $out"
[ "$(in_ns cat "/sys/class/net/$tap/ifindex")" = "$index" ] || fail "the tap was re-created"
out=$(in_ns python3 "$here/integration/udp_echo_client.py" 198.18.1.2 7 20 1.0)
[[ $out == *"replies=20 lost=0"* ]] || fail "echo after the restart lost replies: $out"

# The VM stops, then vmkernel restarts: the tap is deleted and the port dropped.
"$VMXCTL" "$T/n.sock" power-off >/dev/null
wait "$VMX_PID" || true
out=$(drive show) || fail "restart: $out"
[[ $out != *"$tap"* ]] || fail "the stopped VM's port was kept: $out"
in_ns test -e "/sys/class/net/$tap" && fail "the stopped VM's tap was kept"

# Power-on again makes the same port; removing it works while vmx holds the tap.
[ "$(drive port-create "Test Network" "$UUID" 0)" = "$tap" ] || fail "port name changed"
ip netns exec "$NS" "$VMX" --name n2 --ctl "$T/n2.sock" --console-log "$T/n2.log" \
	--kernel "$KGUEST" --mem 128M --net "$tap,mac=$MAC" \
	--cmdline "ip=198.18.1.2 counter_ms=1000" 2>"$T/n2.vmx.log" &
VMX_PID=$!
PIDS+=("$VMX_PID")
wait_for "$T/n2.log" "net .*mac=$MAC|net.*$MAC"
drive vswitch-remove vSwitch1 2>"$T/err.log" && fail "vSwitch with a portgroup was removed"
grep -q 'in use by portgroup "Test Network"' "$T/err.log" || fail "no clear error: $(cat "$T/err.log")"
drive port-remove "$tap" || fail "port-remove"
in_ns test -e "/sys/class/net/$tap" && fail "port-remove left the tap"
kill -9 "$VMX_PID" 2>/dev/null || true
wait "$VMX_PID" 2>/dev/null || true
drive portgroup-remove "Test Network" || fail "portgroup-remove"
drive vswitch-remove vSwitch1 || fail "vswitch-remove"
in_ns test -e /sys/class/net/vSwitch1 && fail "vswitch-remove left the bridge"
in_ns test -e /sys/class/net/vmnic0/master && fail "the uplink was not released"
out=$(drive show)
[[ $out != *vSwitch1* ]] || fail "vSwitch1 still configured: $out"
echo "ok: vSwitch, uplink, portgroup, port; UDP echo through bridge and tap; restart rules"

# ---- VLAN filtering under a kernel that has it -----------------------------------------
vlan_note() { echo "note: VLAN datapath not checked on this machine ($*)"; }
in_ns ip link add kvprobe type bridge
if in_ns ip link set kvprobe type bridge vlan_filtering 1 2>/dev/null; then
	in_ns ip link del kvprobe
	echo "ok: this kernel filters VLANs; test_net's test_vlan covers them"
	exit 0
fi
in_ns ip link del kvprobe
for t in qemu-system-x86_64 busybox cpio; do
	command -v "$t" >/dev/null || { vlan_note "$t missing"; exit 0; }
done
file -L "$(command -v busybox)" | grep -q 'statically linked' || { vlan_note "busybox not static"; exit 0; }
ktree=$("$here/guest-images/fetch-kernel.sh" "$BUILD/cache" 2>"$T/fetch.log") ||
	{ vlan_note "Debian's kernel not available"; exit 0; }
vmlinuz=$(ls "$ktree"/boot/vmlinuz-* | head -1)
mods=$(ls -d "$ktree"/lib/modules/*/kernel)
root=$T/vlanvm
mkdir -p "$root"/{bin,lib/modules,lib64,proc,sys,dev,tmp}
for m in net/llc/llc net/802/stp net/bridge/bridge drivers/net/tun drivers/net/veth; do
	f=$(ls "$mods/$m".ko* | head -1)
	case $f in
	*.xz) xz -dc "$f" ;;
	*.zst) zstd -qdc "$f" ;;
	*) cat "$f" ;;
	esac >"$root/lib/modules/$(basename "$m").ko"
done
cp "$(command -v busybox)" "$root/bin/"
cp "$TEST_NET" "$root/bin/"
for lib in $(ldd "$TEST_NET" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }'); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in llc stp bridge tun veth; do insmod /lib/modules/$m.ko; done
cd /tmp && CMOCKA_MESSAGE_OUTPUT=TAP /bin/test_net 2>&1
echo "KEEL-VLANVM: rc=$?"
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip >"$T/vlanvm.cpio.gz")
timeout 300 qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -nographic -no-reboot \
	-nic none -kernel "$vmlinuz" -initrd "$T/vlanvm.cpio.gz" \
	-append "console=ttyS0 panic=-1 quiet" </dev/null >"$T/vlanvm.log" 2>&1 ||
	fail "QEMU failed: $(tail -20 "$T/vlanvm.log")"
tr -d '\r' <"$T/vlanvm.log" | grep -aE '^(ok|not ok|KEEL-VLANVM)' || true
grep -aq '^ok .* test_vlan\s*$' <(tr -d '\r' <"$T/vlanvm.log") ||
	fail "test_vlan did not pass under Debian's kernel"
grep -aq 'KEEL-VLANVM: rc=0' "$T/vlanvm.log" || fail "test_net failed under Debian's kernel"
echo "ok: VLAN portgroups under Debian's kernel ($(basename "$vmlinuz"))"
