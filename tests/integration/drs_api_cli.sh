# `keel cluster rule` and `keel cluster drs` through hostd's API (--server) on a two-host
# lab with the shared datastore, two small VMs on host1, keel run in the follower's
# namespace against the follower's hostd (so every change is passed on to the leader):
#   - usage errors before anything is sent: --cluster-socket with --server, a bad threshold
#     (the settings unchanged);
#   - rule add (a must anti-affinity rule between the two VMs) and the table it prints;
#     the local path on both hosts shows it, and `rule list --json` through the API is the
#     local one; a rule added locally is listed and removed through the API; refusals
#     with hostd's message: an unknown VM (exit 1, code 5), an unknown rule; nothing
#     changed by them;
#   - drs status and recommend through the API equal the local ones (--json), the
#     violated rule's fix first; drs set through the API seen locally, and the reverse;
#   - a ReadOnly user reads but is denied rule add, drs set and drs apply, with the missing
#     privilege named;
#   - drs apply of a VM without a recommendation refused; drs apply --all (one task) moves
#     a VM, after which the cluster names host2 as its owner and the rule holds; then an
#     affinity rule in its place and drs apply VM --no-wait: the task id, which `task wait`
#     follows to success, the VM moved beside the other; the rule replaced (--replace) by an
#     anti-affinity one and apply --json moving one back; nothing more to apply (text and
#     --json).
source "$(dirname "$0")/common.bash"
KEEL_TOP=${KEEL_TOP:-$PWD}
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
need_kvm

LAB=$T/lab
source "$(dirname "$0")/ha_common.bash"
lab_cleanup() {
	set +e
	for h in 1 2; do
		[ -f "$LAB/hosts/host$h/clusterd.out" ] &&
			{ echo "--- clusterd host$h"; grep -Ei "DRS|rule|migrat" "$LAB/hosts/host$h/clusterd.out" | tail -15; }
		[ -f "$LAB/hosts/host$h/hostd.out" ] &&
			{ echo "--- hostd host$h"; grep -Ei "rule|DRS|task|denied" "$LAB/hosts/host$h/hostd.out" | tail -15; }
	done
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	cleanup
}
trap lab_cleanup EXIT
# expect EXIT CMD...: runs CMD, checks its exit code, leaves its stdout and stderr in $msg.
expect() {
	local want=$1 rc
	shift
	set +e
	msg=$("$@" 2>&1)
	rc=$?
	set -e
	[ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $msg"
}
# jsame A B: the two JSON texts hold the same value
jsame() { python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"; }
healthy() {
	local s
	s=$(st 1) || return 1
	[ "$(py 'd["leader_id"] != 0 and sorted((h["name"], h["state"]) for h in d["hosts"]) == [("host1", "connected"), ("host2", "connected")]' "$s")" = True ]
}
owner_host() { py "[v['owner_name'] for v in d['vms'] if v['name'] == '$1'][0]" "$(st 1)" || true; }
mkvm() { # HOST NAME
	kv "$1" vm create "$2" --memory 64 --vcpus 1 --datastore shared1 --cmdline "counter_ms=100" >/dev/null ||
		fail "create $2"
	kv "$1" vm power-on "$2" >/dev/null || fail "power-on $2"
}

t0=$(now_ms)
out=$(lab up 2 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
pwfile=$(py 'd["root_password_file"]' "$out")
for h in 1 2; do
	ready() { local s; s=$(st $h) && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }
	until_ok 15 ready || fail "clusterd on host$h"
done
kc 1 create drscli >/dev/null || fail "create"
tok=$(kc 1 join-token) || fail "join-token"
kc 2 join 198.18.0.1 --token "$tok" >/dev/null || fail "host2 join"
until_ok 20 healthy || fail "cluster not healthy: $(st 1)"
L=$(leader_of "$(st 1)")
F=2; [ "$F" = "$L" ] && F=1
echo "leader host$L; keel --server against follower host$F"
mkvm 1 da1
mkvm 1 da2

SRV=https://198.18.0.$F:8443
NETNS=/run/netns/$prefix-lab-host$F
# keel in the follower's namespace as root (config dir cfg) or as user ops (cfg2)
k() { nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg" timeout 90 "$KEEL_BIN" "$@"; }
ks() { k --server "$SRV" --timeout 30 "$@"; }
k2() { nsenter --net="$NETNS" env -u KEEL_SERVER KEEL_CONFIG_DIR="$T/cfg2" timeout 60 "$KEEL_BIN" --server "$SRV" "$@"; }
logged_in() { k login --server "$SRV" --user root --password-file "$pwfile" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null 2>&1; }
until_ok 20 logged_in || fail "login to host$F's API"

# ---- usage errors: nothing sent ------------------------------------------------------------------
for c in "cluster rule add" "cluster rule list" "cluster rule remove" "cluster drs status" \
	"cluster drs recommend" "cluster drs apply" "cluster drs set"; do
	# shellcheck disable=SC2086
	k $c --help >/dev/null || fail "keel $c --help"
done
for c in rule drs; do
	k cluster $c --help | grep -q "hostd's API with --server" || fail "keel cluster $c --help"
done
expect 2 ks cluster rule list --cluster-socket "$LAB/hosts/host$F/clusterd.sock"
grep -q "does not apply through hostd's API" <<<"$msg" || fail "--cluster-socket with --server: $msg"
expect 2 ks cluster drs set --threshold 9
grep -q -- "--threshold: 1 (conservative) .. 5" <<<"$msg" || fail "bad threshold: $msg"
[ "$(py 'd["threshold"]' "$(kc "$L" drs status --json)")" = 3 ] || fail "threshold changed by a refusal"

# ---- rules --------------------------------------------------------------------------------------
msg=$(ks cluster rule list) || fail "rule list: $msg"
[ "$msg" = "No rules." ] || fail "rule list on a new cluster: $msg"
msg=$(ks cluster rule add apart --kind anti-affinity --must --vm da1 --vm da2) || fail "rule add: $msg"
echo "$msg"
grep -Eq "^NAME +KIND +MUST +VMS +HOSTS +OUT OF PLACE$" <<<"$msg" || fail "rule add table head: $msg"
grep -Eq "^apart +anti-affinity +must +(da1, da2|da2, da1) +- +1$" <<<"$msg" || fail "rule add row: $msg"
for h in 1 2; do
	j=$(kc $h rule list --json) || fail "local rule list on host$h: $j"
	[ "$(py "[(r['name'], r['kind'], r['mandatory'], sorted(r['vms'])) for r in d['rules']]" "$j")" = \
		"[('apart', 'anti-affinity', True, ['da1', 'da2'])]" ] || fail "local rule list on host$h: $j"
done
ja=$(ks --json cluster rule list) || fail "rule list --json: $ja"
jl=$(kc "$F" rule list --json)
jsame "$ja" "$jl" || fail "rule list --json through the API: $ja; locally: $jl"
# refusals with hostd's message, changing nothing
expect 1 ks cluster rule add bad --kind affinity --vm da1 --vm nosuch
grep -q "nosuch" <<<"$msg" || fail "unknown VM: $msg"
echo "refused: $msg"
set +e; j=$(ks --json cluster rule add bad --kind affinity --vm da1 --vm nosuch 2>/dev/null); set -e
[ "$(py '(d["ok"], d["code"])' "$j")" = "(False, 5)" ] || fail "unknown VM --json: $j"
expect 1 ks cluster rule remove nosuch
grep -q "nosuch" <<<"$msg" || fail "unknown rule: $msg"
expect 2 ks cluster rule add bad2 --kind sideways --vm da1 --vm da2
[ "$(py "[r['name'] for r in d['rules']]" "$(kc "$L" rule list --json)")" = "['apart']" ] ||
	fail "a refusal changed the rules: $(kc "$L" rule list --json)"
# added locally, seen and removed through the API
# (committed by the leader; the follower's replica, which its hostd reads, follows)
kc "$L" rule add pin --kind host-affinity --should --vm da1 --host host1 >/dev/null || fail "local rule add pin"
pin_listed() { msg=$(ks cluster rule list) && grep -Eq "^pin +host-affinity +should +da1 +host1 +0$" <<<"$msg"; }
until_ok 5 pin_listed || fail "rule pin through the API: $msg"
msg=$(ks cluster rule remove pin) || fail "rule remove pin: $msg"
grep -q "^pin " <<<"$msg" && fail "rule remove pin still lists it: $msg"
[ "$(py "[r['name'] for r in d['rules']]" "$(kc "$L" rule list --json)")" = "['apart']" ] ||
	fail "rule pin left after its removal through the API"

# ---- DRS: status, recommend, set ------------------------------------------------------------------
ja=$(ks --json cluster drs status) || fail "drs status --json: $ja"
jl=$(kc "$F" drs status --json)
jsame "$ja" "$jl" || fail "drs status --json through the API: $ja; locally: $jl"
[ "$(py '(d["automation"], d["threshold"], d["mandatory_violated"])' "$ja")" = "('manual', 3, 1)" ] ||
	fail "drs status: $ja"
msg=$(ks cluster drs status) || fail "drs status: $msg"
grep -Eq "^Violated rules: +1 mandatory, 0 preferential$" <<<"$msg" || fail "drs status text: $msg"
grep -Eq "^  rule apart \(anti-affinity, must\): 1 VMs out of place$" <<<"$msg" || fail "drs status rules: $msg"
ja=$(ks --json cluster drs recommend) || fail "drs recommend --json: $ja"
jl=$(kc "$F" drs recommend --json)
jsame "$ja" "$jl" || fail "drs recommend --json through the API: $ja; locally: $jl"
[ "$(py '(d["recommendations"][0]["reason"], d["recommendations"][0]["rule"], d["recommendations"][0]["from_name"])' "$ja")" = \
	"('fix mandatory rule', 'apart', 'host1')" ] || fail "drs recommend: $ja"
msg=$(ks cluster drs recommend) || fail "drs recommend: $msg"
grep -Eq "^VM +FROM +TO +REASON +RULE +MEMORY +IMBALANCE +AUTO$" <<<"$msg" || fail "drs recommend text: $msg"
grep -Eq "^da[12] +host1 +host2 +fix mandatory rule +apart " <<<"$msg" || fail "drs recommend row: $msg"
msg=$(ks cluster drs set --threshold 4 --hold 0) || fail "drs set: $msg"
grep -Eq "^Threshold: +4 \(target imbalance 0.05\)$" <<<"$msg" || fail "drs set output: $msg"
[ "$(py '(d["threshold"], d["hold_s"])' "$(kc "$L" drs status --json)")" = "(4, 0)" ] ||
	fail "drs set through the API not seen locally: $(kc "$L" drs status --json)"
kc "$L" drs set --threshold 2 --hold 300 >/dev/null || fail "local drs set"
set_seen() { [ "$(py '(d["threshold"], d["hold_s"])' "$(ks --json cluster drs status)")" = "(2, 300)" ]; }
until_ok 5 set_seen || fail "local drs set not seen through the API: $(ks --json cluster drs status)"

# ---- a ReadOnly user ------------------------------------------------------------------------------
printf 'ops-password-1\n' >"$T/ops-pw"
ks user add ops --password-file "$T/ops-pw" >/dev/null || fail "user add ops"
ks perm set ops ReadOnly >/dev/null || fail "perm set ops ReadOnly"
k2 login --user ops --password-file "$T/ops-pw" --ca-file "$LAB/hosts/host1/ca.crt" >/dev/null || fail "ops login"
k2 cluster rule list >/dev/null || fail "ops cannot list rules"
k2 cluster drs status >/dev/null || fail "ops cannot read the DRS status"
expect 1 k2 cluster rule add ro --kind affinity --vm da1 --vm da2
grep -q "lacks privilege Host.Inventory.ManageCluster" <<<"$msg" || fail "ops rule add: $msg"
expect 1 k2 cluster drs set --threshold 5
grep -q "lacks privilege Host.Inventory.ManageCluster" <<<"$msg" || fail "ops drs set: $msg"
expect 1 k2 cluster drs apply --all
grep -q "lacks privilege Host.Inventory.ManageCluster" <<<"$msg" || fail "ops drs apply: $msg"
[ "$(py '(d["threshold"], len(d["rules"]))' "$(kc "$L" drs status --json)")" = "(2, 1)" ] ||
	fail "ops changed something: $(kc "$L" drs status --json)"

# ---- apply ------------------------------------------------------------------------------------------
expect 1 ks cluster drs apply nosuch
grep -q "DRS recommends no move of VM nosuch" <<<"$msg" || fail "apply nosuch: $msg"
t1=$(now_ms)
msg=$(ks cluster drs apply --all) || fail "drs apply --all: $msg"
echo "$msg"
echo "applied in $(($(now_ms) - t1)) ms"
grep -Eq "^VM +FROM +TO +REASON +RESULT$" <<<"$msg" || fail "apply table head: $msg"
moved=$(sed -nE 's/^(da[12]) +host1 +host2 +fix mandatory rule +moved$/\1/p' <<<"$msg")
[ -n "$moved" ] || fail "apply row: $msg"
[ "$(owner_host "$moved")" = host2 ] || fail "$moved is owned by '$(owner_host "$moved")' after the apply"
j=$(kc "$L" drs status --json)
[ "$(py 'd["mandatory_violated"]' "$j")" = 0 ] || fail "rule apart still violated: $j"
# an affinity rule instead: the VM that moved is held (hold 300 s), so DRS moves the other
# to it; --no-wait prints the task, which task wait follows to its end
other=da1; [ "$moved" = da1 ] && other=da2
ks cluster rule remove apart >/dev/null || fail "rule remove apart"
ks cluster rule add together --kind affinity --must --vm da1 --vm da2 >/dev/null || fail "rule add together"
ja=$(ks --json cluster drs recommend) || fail "drs recommend: $ja"
[ "$(py '[(r["vm_name"], r["to_name"]) for r in d["recommendations"]]' "$ja")" = "[('$other', 'host2')]" ] ||
	fail "recommendations for rule together: $ja"
tid=$(ks cluster drs apply "$other" --no-wait) || fail "apply --no-wait: $tid"
grep -Eq "^task-[0-9]+$" <<<"$tid" || fail "apply --no-wait printed: $tid"
j=$(ks --json task wait "$tid") || fail "task wait $tid: $j"
[ "$(py '(d["kind"], d["state"], d["result"])' "$j")" = "('ApplyDrsRecommendations', 'success', '1 VMs moved')" ] ||
	fail "the apply task: $j"
[ "$(owner_host $other)" = host2 ] || fail "$other is owned by '$(owner_host $other)' after the apply"
# no hold, and the rule replaced by an anti-affinity one: apply --json moves one VM back
ks cluster drs set --hold 0 >/dev/null || fail "drs set --hold 0"
msg=$(ks cluster rule add together --kind anti-affinity --must --vm da1 --vm da2 --replace) ||
	fail "rule add --replace: $msg"
grep -Eq "^together +anti-affinity +must +(da1, da2|da2, da1) +- +1$" <<<"$msg" || fail "rule replaced: $msg"
j=$(ks --json cluster drs apply --all) || fail "apply --all --json: $j"
[ "$(py '[(m["from_name"], m["to_name"], m["reason"], m["rule"], m["begun"], m["result"]) for m in d["moves"]]' "$j")" = \
	"[('host2', 'host1', 'fix mandatory rule', 'together', True, 'moved')]" ] || fail "apply --json: $j"
back=$(py 'd["moves"][0]["vm_name"]' "$j")
[ "$(owner_host "$back")" = host1 ] || fail "$back is owned by '$(owner_host "$back")' after the apply"
j=$(ks --json cluster drs apply --all) || fail "apply with nothing recommended: $j"
[ "$(py '(d["ok"], d["moves"])' "$j")" = "(True, [])" ] || fail "apply --json with nothing recommended: $j"
msg=$(ks cluster drs apply --all) || fail "apply with nothing recommended: $msg"
[ "$msg" = "Nothing to apply." ] || fail "apply with nothing recommended: $msg"
"$KEEL_BIN" lab down --dir "$LAB" >/dev/null || fail "lab down"
echo "whole test $(($(now_ms) - t0)) ms"
echo ok
