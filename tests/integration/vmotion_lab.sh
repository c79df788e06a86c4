# vMotion through the cluster (docs/vmotion.md) on a three-host lab with the shared datastore:
# `keel vm migrate` of a running kguest VM writing its disk sequence and dirtying memory,
# asked from a third host: the cluster then names the destination at a higher epoch, the VM
# runs there (and no longer on the source, whose inventory lets it go), its disk sequence
# goes on with no interleaving (diskseq_check.py), its memory checksum (a filled working set)
# is the same before and after, and events name the migration with its figures. Then the
# way back through hostd's API (the MigrateVm task), a migration without --to (the cluster
# picks), and the refusals: a powered-off VM, a destination in maintenance mode, the VM's own
# host, an unknown host — each leaving the VM where it runs.
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2 3; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -Ei "migrat" "$LAB/hosts/host$h/clusterd.out" | tail -15; }
		[ -f "$LAB/hosts/host$h/vmkernel.log" ] &&
			{ echo "--- vmkernel host$h"; grep -Ei "migrat|incoming|lock|exited" "$LAB/hosts/host$h/vmkernel.log" | tail -15; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
healthy() {
	local s
	s=$(st "$1") || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected"), ("host3", "connected")]' "$s")" = True ]
}
all_healthy() { healthy 1 && healthy 2 && healthy 3; }
# owner NAME: "host epoch desired" for VM NAME as host 1 sees it
owner() { py "' '.join('%s %d %s' % (v['owner_name'], v['epoch'], v['desired_power']) for v in d['vms'] if v['name'] == '$1')" "$(st 1)" || true; }
power_of() { py 'd["vms"][0]["power_state"]' "$(kv "$1" --json vm info "$2" 2>/dev/null)" || echo absent; }
uuid_of() { py "[v['uuid'] for v in d['vms'] if v['name'] == '$1'][0]" "$(st 1)"; }
# csum H NAME: the guest's checksum of its working set, asked through its vmx's agent channel
csum() {
	local sock=$LAB/hosts/host$1/run/$(uuid_of "$2").ctl out
	"$VMXCTL" "$sock" agent-recv >/dev/null || return 1
	"$VMXCTL" "$sock" agent-send "csum" >/dev/null || return 1
	for _ in $(seq 200); do
		out=$("$VMXCTL" "$sock" agent-recv | grep -Eo "csum [0-9a-f]{16}" | tail -1)
		[ -n "$out" ] && { echo "$out"; return 0; }
		sleep 0.05
	done
	return 1
}
expect_fail() { # WANT_EXIT CMD...: the command fails with that exit code; $msg is its output
	local want=$1 rc
	shift
	msg=$("$@" 2>&1) && fail "$* succeeded: $msg"
	rc=$?
	[ "$rc" = "$want" ] || fail "$*: exit $rc, not $want: $msg"
}

out=$(lab up 3 --dir "$LAB" --json) || fail "lab up: $out"
pwfile=$(py 'd["root_password_file"]' "$out")
prefix=$(py 'd["prefix"]' "$out")
for h in 1 2 3; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create vmo3 >/dev/null || fail "create"
for h in 2 3; do
	tok=$(kc 1 join-token) || fail "join-token"
	kc $h join 198.18.0.1 --token "$tok" >/dev/null || fail "host$h join"
done
until_ok 20 all_healthy || fail "cluster not healthy: $(st 1)"

# ---- a VM writing its disk sequence and dirtying memory, moved while it runs ------------
kv 1 vm create mv1 --memory 128 --vcpus 1 --datastore shared1 --disk 4 \
	--cmdline "counter_ms=100 disk_seq=1 disk_ms=20 fill_mib=32 dirty_mib_s=16 dirty_ws_mib=16" \
	>/dev/null || fail "create mv1"
kv 1 vm power-on mv1 >/dev/null || fail "power-on mv1"
on1() { [ "$(owner mv1)" = "host1 1 on" ]; }
until_ok 5 on1 || fail "mv1 registry: $(owner mv1)"
wait_for "$LAB/shared/mv1/console.log" "disk seq 20\b"
j=$(kv 3 --json vm migrate mv1 --to host2) || fail "migrate mv1 to host2: $j"
echo "$j"
[ "$(py 'd["to"]' "$j")" = host2 ] || fail "migrate answer: $j"
[ "$(py 'd["report"] != ""' "$j")" = True ] || fail "no figures in the answer: $j"
o=$(owner mv1)
[[ $o == "host2 "*" on" ]] || fail "mv1 after the migration: $o"
[ "${o#host2 }" != "1 on" ] || fail "the epoch did not grow: $o"
[ "$(power_of 2 mv1)" = poweredOn ] || fail "mv1 not running on host2"
gone1() { [ "$(power_of 1 mv1)" = absent ]; }
until_ok 10 gone1 || fail "mv1 still on host1: $(power_of 1 mv1)"
n0=$(grep -c "disk seq" "$LAB/shared/mv1/console.log")
more() { [ "$(grep -c "disk seq" "$LAB/shared/mv1/console.log")" -gt "$((n0 + 3))" ]; }
until_ok 10 more || fail "mv1's disk sequence stopped after the migration"
ev=$(kc 1 events --json) || fail "events"
[ "$(py "any('migration of VM mv1 from host1 to host2 began' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "no begin event: $ev"
[ "$(py "any('VM mv1 migrated to host2' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "no report event: $ev"

# ---- memory: a filled working set has the same checksum after the move ------------------
kv 2 vm create mf --memory 128 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100 fill_mib=48" \
	>/dev/null || fail "create mf"
kv 2 vm power-on mf >/dev/null || fail "power-on mf"
wait_for "$LAB/shared/mf/console.log" "counter 10\b"
c1=$(csum 2 mf) || fail "csum of mf on host2"
# host2's own vMotion settings: plain streams, three per adapter (a bad value is refused)
printf 'Migrate.StreamsPerAdapter = 12\n' >"$T/adv.bad"
expect_fail 1 kv 2 host config put etc/keel/advanced.conf "$T/adv.bad"
[[ $msg == *"1..8"* ]] || fail "a bad Migrate.StreamsPerAdapter: $msg"
printf 'Migrate.Encrypt = off\nMigrate.StreamsPerAdapter = 3\n' >"$T/adv"
kv 2 host config put etc/keel/advanced.conf "$T/adv" >/dev/null || fail "put host2's advanced.conf"
kv 2 vm migrate mf --to host3 >/dev/null || fail "migrate mf to host3"
ev=$(kc 2 events --json) || fail "events"
[ "$(py "any('VM mf migrated to host3' in e['message'] and '3 plain stream(s)' in e['message'] for e in d['events'])" "$ev")" = True ] ||
	fail "mf's migration did not use host2's settings: $ev"
[ "$(power_of 3 mf)" = poweredOn ] || fail "mf not running on host3"
c2=$(csum 3 mf) || fail "csum of mf on host3"
[ "$c1" = "$c2" ] || fail "mf's memory changed in the move: $c1 / $c2"
echo "mf: $c1 on host2 and on host3"

# ---- refusals leave the VM where it runs ---------------------------------------------------
kv 2 vm create off1 --memory 64 --vcpus 1 --datastore shared1 >/dev/null || fail "create off1"
expect_fail 1 kv 2 vm migrate off1 --to host1
[[ $msg == *"not powered on"* ]] || fail "powered-off refusal: $msg"
expect_fail 1 kv 1 vm migrate mv1 --to host2
[[ $msg == *"already runs on host2"* ]] || fail "same-host refusal: $msg"
expect_fail 1 kv 1 vm migrate mv1 --to host9
[[ $msg == *"no such host"* ]] || fail "unknown host refusal: $msg"
[[ $(owner mv1) == "host2 "*" on" ]] || fail "a refusal moved mv1: $(owner mv1)"

# ---- through hostd's API, and without --to -------------------------------------------------
SRV=https://198.18.0.3:8443
k() { nsenter --net="/run/netns/$prefix-lab-host3" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 120 "$KEEL_BIN" "$@"; }
for _ in $(seq 150); do
	grep -q "certificate now .*host.crt (cluster)" "$LAB/hosts/host3/hostd.out" 2>/dev/null && break
	sleep 0.1
done
logged_in() { k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null 2>&1; }
until_ok 20 logged_in || fail "login to host3's API"
# host1 runs nothing now: in maintenance mode it takes no migration
k --server "$SRV" host maintenance enter host1 >/dev/null || fail "maintenance enter host1"
in_maint() { [ "$(py "[h['maintenance'] for h in d['hosts'] if h['name'] == 'host1'][0]" "$(st 1)")" = "$1" ]; }
until_ok 5 in_maint True || fail "host1 not in maintenance mode"
expect_fail 1 kv 2 vm migrate mv1 --to host1
[[ $msg == *"maintenance"* ]] || fail "maintenance refusal: $msg"
k --server "$SRV" host maintenance exit host1 >/dev/null || fail "maintenance exit host1"
until_ok 5 in_maint False || fail "host1 still in maintenance mode"
[[ $(owner mv1) == "host2 "*" on" ]] || fail "a refusal moved mv1: $(owner mv1)"
msg=$(k --server "$SRV" --timeout 120 vm migrate mv1 --to host1) || fail "migrate through the API: $msg"
echo "$msg"
[[ $(owner mv1) == "host1 "*" on" ]] || fail "mv1 after the API's migration: $(owner mv1)"
[ "$(power_of 1 mv1)" = poweredOn ] || fail "mv1 not running on host1 after the API's migration"
tasks=$(k --server "$SRV" --json task list) || fail "task list"
[ "$(py "[t['state'] for t in d['tasks'] if t['kind'] == 'MigrateVm'][-1]" "$tasks")" = success ] ||
	fail "the MigrateVm task: $tasks"
j=$(kv 1 --json vm migrate mv1) || fail "migrate without --to: $j"
[ "$(py 'd["to"] != "host1"' "$j")" = True ] || fail "the cluster's pick: $j"
echo "the cluster picked $(py 'd["to"]' "$j") for mv1"

# ---- the disk sequence was written by one VM at a time ---------------------------------------
h=$(owner mv1); h=${h%% *}
kv "${h#host}" vm power-off mv1 >/dev/null || fail "power-off mv1"
python3 "$KEEL_TOP/tests/integration/diskseq_check.py" "$LAB/shared/mv1/mv1.img" ||
	fail "mv1's disk sequence"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo ok
