# Shared by the HA lab tests (ha_restart, ha_settings, ha_leader, ha_chaos): sourced after
# common.bash and after LAB is set. keel against a lab host's sockets, JSON picking, a
# polling wait and the leader's host number.
lab() { "$KEEL_BIN" lab "$@"; }
kc() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 15 cluster "$@"; }
kv() { local h=$1; shift; "$KEEL_BIN" --socket "$LAB/hosts/host$h/vmkernel.sock" --timeout 30 "$@"; }
# py EXPR JSON: EXPR evaluated with d = the parsed JSON
py() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$2" 2>/dev/null; }
st() { kc "$1" status --json 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# until_ok SECONDS CMD...: CMD every 50 ms until it succeeds (0) or SECONDS pass (1)
until_ok() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.05
	done
}
# leader_of STATUS: the number of the host a status names as leader, or nothing
leader_of() {
	py '([h["name"][4:] for h in d["hosts"] if d["leader_id"] and h["id"] == d["leader_id"]] + [""])[0]' "$1"
}
