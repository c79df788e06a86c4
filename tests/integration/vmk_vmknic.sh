# VMkernel adapters and netstacks through keel and vmkernel, in a private network
# namespace: vmk0 (Management) in defaultTcpipStack and vmk1, vmk2 in the netstack vmotion
# (a namespace bound under the state dir), all on one vSwitch. Checks the interfaces and
# addresses with ip(8) inside the namespaces, UDP from the vmotion netstack to vmk0
# across the bridge, UDP between two adapters of the vmotion netstack, that a vmkernel
# restart re-applies everything without duplicates, set-ip / set-mtu / tags, the refusals
# (exit code 1 and a clear message), and that removing leaves no interface or namespace.
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }

VMOTION=$T/state/netns/vmotion
vmknic_cleanup() {
	set +e
	for f in "$T"/state/netns/*; do [ -e "$f" ] && umount -l "$f" 2>/dev/null; done
	vmk_cleanup
}
start_vmkernel
trap vmknic_cleanup EXIT
in_vmotion() { nsenter --net="$VMOTION" "$@"; }
in_default() { nsenter --net="/run/netns/$NS" "$@"; }

# udp_cross: a datagram from vmk1 (netstack vmotion) to a listener on vmk0
# (defaultTcpipStack), which crosses vmk1's veth, the bridge vSwitch1 and vmk0's veth.
udp_cross() {
	nsenter --net="/run/netns/$NS" python3 -c '
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("198.18.0.11", 7001)); r.settimeout(5)
print("ready", flush=True)
d, a = r.recvfrom(100); print(d.decode(), a[0])' >"$T/udp.out" 2>&1 &
	local lpid=$!
	for ((i = 0; i < 100; i++)); do grep -q ready "$T/udp.out" && break; sleep 0.05; done
	nsenter --net="$VMOTION" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.0.12", 0))
for _ in range(20):
    s.sendto(b"cross", ("198.18.0.11", 7001)); time.sleep(0.1)' &
	local spid=$!
	wait "$lpid" || true
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	grep -q "^cross 198.18.0.12$" "$T/udp.out" || fail "UDP vmk1 -> vmk0 across the bridge: $(cat "$T/udp.out")"
}

# refuse WANT CMD...: the keel command fails with exit 1 and a message matching WANT.
refuse() {
	local want=$1 rc=0
	shift
	keel "$@" >"$T/out.txt" 2>"$T/err.txt" || rc=$?
	[ "$rc" = 1 ] || fail "keel $* exited $rc, not 1: $(cat "$T/err.txt")"
	grep -q -- "$want" "$T/err.txt" || fail "keel $*: no '$want' in: $(cat "$T/err.txt")"
	echo "refused as expected: $(cat "$T/err.txt")"
}

keel network vswitch add vSwitch1 >/dev/null || fail "vswitch add"
keel network portgroup add "Management Network" --vswitch vSwitch1 >/dev/null || fail "portgroup add"
keel network portgroup add vMotion --vswitch vSwitch1 >/dev/null || fail "portgroup add"

keel network vmknic add vmk0 --portgroup "Management Network" --ip 198.18.0.11/24 \
	--tag Management || fail "vmknic add vmk0"
keel network vmknic add vmk1 --portgroup vMotion --netstack vmotion --ip 198.18.0.12 \
	--netmask 255.255.255.0 --tag VMotion || fail "vmknic add vmk1"
keel network vmknic add vmk2 --portgroup vMotion --netstack vmotion --ip 198.18.0.13/24 \
	--mac 02:00:5e:00:00:02 --mtu 1400 --tag FaultToleranceLogging --tag vsan ||
	fail "vmknic add vmk2"
keel network vmknic list
keel network netstack list

# The interfaces, in the right namespaces, with their addresses.
ip -n "$NS" -4 addr show dev vmk0 | grep -q "inet 198.18.0.11/24" || fail "vmk0 has no address"
[ "$(basename "$(ip netns exec "$NS" readlink /sys/class/net/vmkp0/master)")" = vSwitch1 ] ||
	fail "vmkp0 is not a port of vSwitch1"
in_vmotion ip -4 addr show dev vmk1 | grep -q "inet 198.18.0.12/24" || fail "vmk1 has no address"
in_vmotion ip link show dev vmk2 | grep -q "mtu 1400" || fail "vmk2 MTU"
in_vmotion ip link show dev vmk2 | grep -q "02:00:5e:00:00:02" || fail "vmk2 MAC"
ip -n "$NS" link show dev vmk1 >/dev/null 2>&1 && fail "vmk1 is in the default netstack"
in_vmotion ip link show dev lo | grep -q "UP" || fail "loopback of vmotion is down"

# Across the bridge: the vmotion netstack reaches vmk0 in defaultTcpipStack.
udp_cross
# Two adapters of one netstack: UDP from vmk2's address to a listener on vmk1's.
out=$(in_vmotion python3 -c '
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("198.18.0.12", 7000)); r.settimeout(2)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.0.13", 0))
s.sendto(b"keel", ("198.18.0.12", 7000))
d, a = r.recvfrom(100); print(d.decode(), a[0])')
[ "$out" = "keel 198.18.0.13" ] || fail "UDP vmk2 -> vmk1: $out"

# JSON list.
json=$(keel --json network vmknic list)
[ "$(json_field "$json" ok)" = True ] || fail "json: $json"
[[ $json == *'"tags":["VMotion"]'* ]] || fail "json tags: $json"
[[ $json == *'"tags":["FaultToleranceLogging","vSAN"]'* ]] || fail "json tags: $json"

# Refusals.
refuse "must be vmk0 to vmk9999" network vmknic add vmkx --portgroup vMotion --ip 198.18.0.20/24
refuse "already exists" network vmknic add vmk0 --portgroup vMotion --ip 198.18.0.21/24
refuse "IPv4 address" network vmknic add vmk5 --portgroup vMotion --ip 300.1.1.1/24
refuse "is already vmk1's" network vmknic add vmk5 --portgroup vMotion --netstack vmotion \
	--ip 198.18.0.12/24
refuse "no netstack named" network vmknic add vmk5 --portgroup vMotion --netstack custom \
	--ip 198.18.0.22/24
refuse "no portgroup" network vmknic add vmk5 --portgroup nope --ip 198.18.0.22/24
refuse "unknown tag" network vmknic tag add vmk1 Bogus
refuse "in use by VMkernel adapter vmk1" network netstack remove vmotion
refuse "in use by VMkernel adapter" network portgroup remove vMotion
refuse "cannot be removed" network netstack remove defaultTcpipStack
ip netns exec "$NS" ls /sys/class/net | grep -q vmkp5 && fail "a refused add left vmkp5"

# set-ip, set-mtu, tags.
keel network vmknic set-ip vmk2 --ip 198.18.0.14/24 --gateway 198.18.0.1 >/dev/null || fail "set-ip"
in_vmotion ip -4 addr show dev vmk2 | grep -q "inet 198.18.0.14/24" || fail "set-ip: new address"
in_vmotion ip -4 addr show dev vmk2 | grep -q "198.18.0.13" && fail "set-ip: old address kept"
in_vmotion ip route show default | grep -q "via 198.18.0.1 dev vmk2" || fail "no default route"
refuse "already has the default gateway" network vmknic set-ip vmk1 --ip 198.18.0.12/24 \
	--gateway 198.18.0.2
keel network vmknic set-mtu vmk2 1500 >/dev/null || fail "set-mtu"
in_vmotion ip link show dev vmk2 | grep -q "mtu 1500" || fail "set-mtu not applied"
refuse "larger than the vSwitch" network vmknic set-mtu vmk2 9000
keel network vmknic tag add vmk1 Provisioning >/dev/null || fail "tag add"
keel network vmknic tag remove vmk2 vSAN >/dev/null || fail "tag remove"
grep -q '^vmknic "vmk1" .* tags VMotion,Provisioning$' "$T/state/network.conf" ||
	fail "tags not saved: $(cat "$T/state/network.conf")"

# Restart: everything is re-applied, nothing is duplicated.
# (Background jobs call nsenter directly, so that $! is the pid of python itself.)
ifindex() { "$@" ip -o link show | awk -F'[:@]' '{ print $1, $2 }'; }
idx0=$(ifindex in_default | grep ' vmk0$')
idx1=$(ifindex in_vmotion | grep ' vmk1$')
kill "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
start_vmkernel
[ "$(ifindex in_default | grep ' vmk0$')" = "$idx0" ] || fail "vmk0 was re-created"
[ "$(ifindex in_vmotion | grep ' vmk1$')" = "$idx1" ] || fail "vmk1 was re-created"
[ "$(ip -n "$NS" -4 -o addr show dev vmk0 | wc -l)" = 1 ] || fail "vmk0 has duplicate addresses"
[ "$(in_vmotion ip -4 -o addr show dev vmk2 | wc -l)" = 1 ] || fail "vmk2 has duplicate addresses"
[ "$(ip -n "$NS" -o link show | grep -c ' vmkp')" = 3 ] || fail "duplicate bridge ports"
out=$(keel network vmknic list)
[ "$(grep -c '^vmk' <<<"$out")" = 3 ] || fail "after restart: $out"
[ "$(grep -c ' up ' <<<"$out")" = 3 ] || fail "after restart, not all up: $out"
udp_cross

# A vmkernel restart after half of a pair vanished makes the pair again.
in_vmotion ip link del vmk2
kill "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
start_vmkernel
in_vmotion ip -4 addr show dev vmk2 | grep -q "inet 198.18.0.14/24" || fail "vmk2 not re-made"

# Removal leaves nothing behind.
keel network vmknic remove vmk1 >/dev/null || fail "remove vmk1"
keel network vmknic remove vmk2 >/dev/null || fail "remove vmk2"
keel network vmknic remove vmk0 >/dev/null || fail "remove vmk0"
refuse "no VMkernel adapter named" network vmknic remove vmk0
keel network netstack remove vmotion >/dev/null || fail "netstack remove"
[ -e "$VMOTION" ] && fail "the namespace file of vmotion is still there"
ip -n "$NS" -o link show | grep -q ' vmk' && fail "interfaces left: $(ip -n "$NS" -o link show)"
grep -q vmknic "$T/state/network.conf" && fail "network.conf still lists adapters"
keel network netstack add custom >/dev/null || fail "netstack add custom"
[ -e "$T/state/netns/custom" ] || fail "no namespace for custom"
refuse "already exists" network netstack add custom
keel network netstack remove custom >/dev/null || fail "netstack remove custom"
echo "ok: vmknics and netstacks: add, datapath, restart, set-ip/mtu, tags, refusals, removal"
