# The host's networking configuration in the config store (docs/config-store.md,
# docs/networking.md): vmkernel keeps it as etc/keel/network.conf and <state dir>/network.conf
# is a copy written from the store. A vSwitch, portgroup and VMkernel adapter added through
# keel are in the store; with the copy deleted, a restart brings them back from config.kar;
# a host whose store lacks the file takes <state dir>/network.conf in at start; a malformed
# network.conf put through keel is refused with the parser's error and changes nothing; a
# valid put applies at the next start (reformatted), with network changes refused until
# then; backup and restore carry the networking, applied by the next start; a corrupt
# config.kar falls back to config.kar.1 with the networking in it.
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }

restart() {
	kill "$VMK_PID"
	wait "$VMK_PID" 2>/dev/null || true
	start_vmkernel
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
store_net() { keel host config get etc/keel/network.conf; }
gen() { json_field "$(keel --json host config status)" generation; }

start_vmkernel
# first start: the default configuration is in the store, the file is its copy
store_net >"$T/first.conf" || fail "no etc/keel/network.conf after the first start"
grep -q '^vswitch "vSwitch0" mtu 1500$' "$T/first.conf" || fail "default: $(cat "$T/first.conf")"
cmp -s "$T/first.conf" "$T/state/network.conf" || fail "the copy differs from the store"

keel network vswitch add vSwitch1 >/dev/null || fail "vswitch add"
keel network portgroup add "Management Network" --vswitch vSwitch1 >/dev/null || fail "portgroup add"
keel network vmknic add vmk0 --portgroup "Management Network" --ip 198.18.0.11/24 \
	--tag Management >/dev/null || fail "vmknic add vmk0"
store_net >"$T/net.conf" || fail "get network.conf"
grep -q '^vswitch "vSwitch1" mtu 1500$' "$T/net.conf" || fail "vSwitch1 not in the store: $(cat "$T/net.conf")"
grep -q '^portgroup "Management Network" vswitch "vSwitch1" vlan 0$' "$T/net.conf" ||
	fail "portgroup not in the store"
grep -q '^vmknic "vmk0" portgroup "Management Network" .*ip 198.18.0.11/24 .*tags Management$' \
	"$T/net.conf" || fail "vmk0 not in the store: $(cat "$T/net.conf")"
cmp -s "$T/net.conf" "$T/state/network.conf" || fail "the copy differs from the store"
keel --json host config list | grep -q '"path":"etc/keel/network.conf"' || fail "not listed"

# a malformed network.conf is refused with the parser's error and changes nothing
g=$(gen)
sed 's/mtu 1500$/mtu 99999/' "$T/net.conf" >"$T/bad.conf"
refuse "etc/keel/network.conf: line [0-9]*: MTU" host config put etc/keel/network.conf "$T/bad.conf"
printf 'version 1\nvswitch "vSwitch0" mtu 1500\nportgroup "X" vswitch "nope" vlan 0\n' >"$T/bad2.conf"
refuse 'unknown vSwitch' host config put etc/keel/network.conf "$T/bad2.conf"
[ "$(gen)" = "$g" ] || fail "a refused put changed the store"
cmp -s "$T/net.conf" <(store_net) || fail "a refused put changed network.conf"
keel host config backup "$T/backup.kar" >/dev/null || fail "backup"

# restart with the copy deleted: everything is back from config.kar
kill "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
rm -f "$T/state/network.conf"
ip -n "$NS" link del vmk0 || fail "deleting vmk0"
ip -n "$NS" link del vSwitch1 || fail "deleting vSwitch1"
start_vmkernel
ip -n "$NS" link show dev vSwitch1 >/dev/null 2>&1 || fail "vSwitch1 not re-made from the store"
ip -n "$NS" -4 addr show dev vmk0 | grep -q "inet 198.18.0.11/24" || fail "vmk0 not re-made"
keel network vmknic list | grep -q vmk0 || fail "vmk0 not listed"
cmp -s "$T/net.conf" "$T/state/network.conf" || fail "the copy was not rewritten at start"

# a valid put applies at the next start; network changes are refused until then
# (with a comment and other spacing: vmkernel puts it back as its writer formats it)
sed 's/^vswitch "vSwitch1" mtu 1500$/vswitch  "vSwitch1"\tmtu 1400\n# edited by hand/' \
	"$T/net.conf" >"$T/put.conf"
grep -q '# edited by hand' "$T/put.conf" || fail "test setup: no MTU edit"
keel host config put etc/keel/network.conf "$T/put.conf" >/dev/null || fail "a valid put"
refuse "applies when vmkernel restarts" network vswitch add vSwitch2
ip -n "$NS" link show dev vSwitch2 >/dev/null 2>&1 && fail "a refused change made vSwitch2"
cmp -s "$T/put.conf" <(store_net) || fail "the refused change overwrote the put"
restart
ip -n "$NS" link show dev vSwitch1 | grep -q "mtu 1400" || fail "the put did not apply at start"
store_net >"$T/put.back"
grep -q '^vswitch "vSwitch1" mtu 1400$' "$T/put.back" || fail "not reformatted: $(cat "$T/put.back")"
grep -q 'edited by hand' "$T/put.back" && fail "the hand-written comment is still in the store"
cmp -s "$T/put.back" "$T/state/network.conf" || fail "the copy is not the store's"
keel network vswitch add vSwitch2 >/dev/null || fail "changes after the restart"

# restore: the backup's networking (vSwitch1 at 1500, no vSwitch2) after a restart
keel host config restore "$T/backup.kar" >/dev/null || fail "restore"
cmp -s "$T/net.conf" <(store_net) || fail "restore did not bring network.conf back"
restart
cmp -s "$T/net.conf" "$T/state/network.conf" || fail "the copy is not the restored one"
ip -n "$NS" link show dev vSwitch1 | grep -q "mtu 1500" || fail "restored MTU not applied"
keel network vswitch list | grep -q vSwitch2 && fail "vSwitch2 still configured after restore"
keel network vmknic list | grep -q vmk0 || fail "vmk0 gone after restore"

# a corrupt config.kar: config.kar.1 has the networking too
keel network portgroup add Later --vswitch vSwitch1 >/dev/null || fail "portgroup Later"
kill "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
printf 'XXXX' | dd of="$T/state/config.kar" bs=1 seek=60 conv=notrunc status=none
rm -f "$T/state/network.conf"
start_vmkernel
[ "$(json_field "$(keel --json host config status)" loaded_from)" = config.kar.1 ] ||
	fail "not loaded from config.kar.1"
store_net | grep -q '^vswitch "vSwitch1" mtu 1500$' || fail "no vSwitch1 from config.kar.1"
store_net | grep -q '^portgroup "Later"' && fail "config.kar.1 should not hold the last change"
keel network vmknic list | grep -q vmk0 || fail "vmk0 not back from config.kar.1"
cmp -s <(store_net) "$T/state/network.conf" || fail "the copy after the fallback"

# migration: a store without etc/keel/network.conf takes <state dir>/network.conf in
cp "$T/state/network.conf" "$T/legacy.conf"
keel host config delete etc/keel/network.conf >/dev/null || fail "delete network.conf"
refuse "deleted in the config store" network vswitch add vSwitch3
kill "$VMK_PID"
wait "$VMK_PID" 2>/dev/null || true
start_vmkernel
grep -q "network: took .*network.conf into the config store as etc/keel/network.conf" \
	"$T/state/vmkernel.log" || fail "no log line about taking network.conf in"
cmp -s "$T/legacy.conf" <(store_net) || fail "network.conf not taken into the store"
keel network vmknic list | grep -q vmk0 || fail "vmk0 after migration"
echo "PASS"
