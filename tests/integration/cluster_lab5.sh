# clusterd on a five-host lab (docs/clusterd.md, DESIGN.md §4): the cluster formed from host1
# has exactly 3 voters and 2 standbys; a killed voter that does not lead is replaced by a
# standby after the 5 s voter grace and becomes a standby itself (still sent the log, so it
# rejoins when it comes back); remove-host removes it (gone from
# every status, a host-removed event) and refuses a connected host; a connected standby
# leaves (gone from the others' status, its clusterd back unbootstrapped); the remaining
# cluster still commits (a join token is issued).
source "$(dirname "$0")/common.bash"
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the lab needs root"; exit 77; }
[ -x "$PWD/$BUILD/bin/clusterd" ] || { echo "SKIP: clusterd not built"; exit 77; }

LAB=$T/lab
START=$(date +%s)
lab() { "$KEEL_BIN" lab "$@"; }
kc() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 15 cluster "$@"; }
lab_cleanup() {
	set +e
	if [ -d "$LAB" ]; then
		cp "$LAB/lab.log" "$T/" 2>/dev/null
		for h in 1 2 3 4 5; do cp "$LAB/hosts/host$h/clusterd.out" "$T/clusterd$h.out" 2>/dev/null; done
	fi
	"$KEEL_BIN" lab down --dir "$LAB" >/dev/null 2>&1
	for f in "$T/lab.log" "$T"/clusterd?.out; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
	cleanup
}
trap lab_cleanup EXIT
py() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$2" 2>/dev/null; }
st() { kc "$1" status --json 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# until_ok SECONDS CMD...: polls CMD every 100 ms until it succeeds (0) or SECONDS pass (1).
until_ok() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.1
	done
}
leader_of() { py '([h["name"][4:] for h in d["hosts"] if d["leader_id"] and h["id"] == d["leader_id"]] + [""])[0]' "$1"; }
field_of() { py "([h['$3'] for h in d['hosts'] if h['name'] == '$2'] or ['absent'])[0]" "$1"; }
# names JSON STATE RAFT_ROLE: the sorted numbers of the hosts in that state and Raft role
names() { py "' '.join(sorted(h['name'][4:] for h in d['hosts'] if h['state'] == '$2' and h['raft_role'] == '$3'))" "$1"; }
unbootstrapped() { local s; s=$(st "$1") && [ "$(py 'd["node_state"]' "$s")" = "not bootstrapped" ]; }

out=$(lab up 5 --dir "$LAB" --json) || fail "lab up: $out"
prefix=$(py 'd["prefix"]' "$out")
for h in 1 2 3 4 5; do until_ok 15 unbootstrapped $h || fail "host$h before create: $(st $h)"; done

# ---- form the cluster: 3 voters, 2 standbys -------------------------------------------------
out=$(kc 1 create lab5 --json) || fail "create: $out"
for h in 2 3 4 5; do
	tok=$(kc 1 join-token) || fail "join-token: $tok"
	out=$(kc $h join 198.18.0.1 --token "$tok" 2>&1) || fail "host$h join: $out"
done
formed() {
	local h s
	for h in 1 2 3 4 5; do
		s=$(st $h) || return 1
		[ "$(py 'd["leader_id"] != 0' "$s")" = True ] || return 1
		[ "$(py 'len(d["hosts"])' "$s")" = 5 ] || return 1
		[ "$(py 'sorted((h["state"], h["role"], h["raft_role"]) for h in d["hosts"])' "$s")" = \
			"[('connected', 'standby', 'standby'), ('connected', 'standby', 'standby'), ('connected', 'voter', 'voter'), ('connected', 'voter', 'voter'), ('connected', 'voter', 'voter')]" ] ||
			return 1
	done
}
until_ok 20 formed || fail "not 5 connected hosts with 3 voters and 2 standbys: $(st 1)"
kc 1 status
s=$(st 1)
id=$(py 'd["cluster_id"]' "$s")
L=$(leader_of "$s")
voters=$(names "$s" connected voter)
standbys=$(names "$s" connected standby)
[ "$(py 'd["node_role"]' "$(st "$L")")" = voter ] || fail "the leader host$L is not a voter"
echo "leader host$L; voters $voters; standbys $standbys"

# ---- a voter dies: a standby takes its place -------------------------------------------------
V=
for h in $voters; do [ "$h" != "$L" ] && { V=$h; break; }; done
[ -n "$V" ] || fail "no voter other than the leader: $s"
vid=$(field_of "$s" "host$V" id)
lab host-kill $V --dir "$LAB" >/dev/null || fail "host-kill $V"
t0=$(now_ms)
replaced() {
	local s
	s=$(st "$L") || return 1
	[ "$(field_of "$s" "host$V" state)" = failed ] || return 1
	[ "$(field_of "$s" "host$V" raft_role)" = standby ] || return 1
	[ "$(py 'len([h for h in d["hosts"] if h["state"] == "connected" and h["raft_role"] == "voter" and h["role"] == "voter"])' "$s")" = 3 ]
}
until_ok 15 replaced || fail "no standby promoted within 15 s of killing voter host$V: $(st "$L")"
ms=$(($(now_ms) - t0))
echo "voter host$V replaced after $ms ms"
[ "$ms" -ge 4000 ] || fail "voter host$V replaced after $ms ms, before the 5 s voter grace"
s=$(st "$L")
promoted=$(names "$s" connected voter)
P=$(comm -13 <(tr ' ' '\n' <<<"$voters" | sort) <(tr ' ' '\n' <<<"$promoted" | sort))
[ -n "$P" ] && [[ " $standbys " == *" $P "* ]] || fail "the new voter ($promoted) is not a former standby ($standbys)"
[ "$(field_of "$s" "host$V" role)" = standby ] || fail "host$V's wanted role is not standby: $s"
[ "$(leader_of "$s")" = "$L" ] || fail "the leader changed: $s"

# ---- remove-host: the dead host goes, a connected one stays ---------------------------------------
S=$(tr ' ' '\n' <<<"$standbys" | grep -vx "$P" | head -1)
[ -n "$S" ] || fail "no standby left: $s"
rc=0; out=$(kc "$L" remove-host "host$S" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "remove-host of connected host$S: exit $rc, want 1: $out"
[ "$(field_of "$(st "$L")" "host$S" state)" = connected ] || fail "host$S changed after a refused remove: $(st "$L")"
F=
for h in $promoted; do [ "$h" != "$L" ] && { F=$h; break; }; done
out=$(kc "$F" remove-host "host$V" 2>&1) || fail "remove-host host$V through host$F: $out"
removed() {
	local h
	for h in 1 2 3 4 5; do
		[ "$h" = "$V" ] && continue
		[ "$(field_of "$(st $h)" "host$V" state)" = absent ] || return 1
	done
}
until_ok 5 removed || fail "host$V still listed after remove-host: $(st "$L")"
ev=$(kc "$L" events --json --limit 1000) || fail "events: $ev"
[ "$(py "len([e for e in d['events'] if e['kind'] == 'host-removed' and e['host'] == $vid])" "$ev")" = 1 ] ||
	fail "no host-removed event for host$V: $ev"

# ---- a connected standby leaves ---------------------------------------------------------------
out=$(kc "$S" leave 2>&1) || fail "host$S leave: $out"
left() {
	local h
	for h in 1 2 3 4 5; do
		{ [ "$h" = "$V" ] || [ "$h" = "$S" ]; } && continue
		[ "$(field_of "$(st $h)" "host$S" state)" = absent ] || return 1
	done
}
until_ok 10 left || fail "host$S still listed after leave: $(st "$L")"
until_ok 10 unbootstrapped "$S" ||
	fail "host$S is not unbootstrapped after leave: $(st "$S"); $(grep -E 'Assertion|left|restarts' "$LAB/hosts/host$S/clusterd.out")"

# ---- the rest still commits ------------------------------------------------------------------
s=$(st "$L")
[ "$(py 'sorted((h["name"], h["state"], h["raft_role"]) for h in d["hosts"])' "$s")" = \
	"$(python3 -c 'import sys; print(sorted(("host" + n, "connected", "voter") for n in sys.argv[1].split()))' "$promoted")" ] ||
	fail "after leave: $s"
c0=$(py 'd["commit_index"]' "$s")
tok=$(kc "$L" join-token) || fail "join-token after the changes: $tok"
[[ $tok == K1.* ]] || fail "token text: $tok"
committed() { [ "$(py 'd["commit_index"]' "$(st "$F")")" -gt "$c0" ]; }
until_ok 5 committed || fail "nothing committed after the join token: $(st "$F")"
for h in $promoted; do [ "$(py 'd["cluster_id"]' "$(st $h)")" = "$id" ] || fail "host$h cluster id: $(st $h)"; done

for h in 1 2 3 4 5; do
	! grep -E "Assertion|Segmentation|ERROR" "$LAB/hosts/host$h/clusterd.out" ||
		fail "host$h clusterd.out reports a crash or an error"
done
lab down --dir "$LAB" >/dev/null || fail "lab down"
! ip netns list | grep -q -- "^$prefix-" || fail "namespaces of $prefix left"
echo "PASS ($(($(date +%s) - START)) s)"
