# Guest memory in 2 MiB pages (vmx --large-pages, docs/vmx.md "Large pages"): the test
# grows the host's pool of 2 MiB pages (vm.nr_hugepages) by what it needs and gives it back
# on exit. A kguest filling and dirtying its memory starts on large pages: stats and the log
# say so, its mapping has 2 MiB kernel pages, and its whole size is reserved from the pool at
# start. It migrates (encrypted, 2 streams, dirtier running) to a vmx on 4 KiB pages with its
# memory identical at READY and the counter going on, back to large pages with the same
# checksum, and once more large to large with a 64 MiB/s dirtier (memory identical at READY);
# with the dirtier stopped it is saved and restored into a large-page vmx with the same
# checksum, its counter going on and no reboot. A VM the pool cannot hold starts on 4 KiB
# pages, logs why, runs, and reserves nothing. Once every vmx is gone no page of the pool is
# held any more (other tests' VMs may use the pool meanwhile: they are accounted apart).
source "$(dirname "$0")/common.bash"
need_kvm
trap 'echo "FAIL: command failed at line $LINENO"' ERR
HELP="python3 $(dirname "$0")/vmx_migrate.py"
ID=4b45454c4c41524745504147455300a1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
PORT=$((20000 + RANDOM % 20000))
GUEST=(--kernel "$KGUEST" --mem 256M)
CL="counter_ms=100 hb_ms=50 fill_mib=96 dirty_ws_mib=64 dirty_mib_s=32"
NEED=300 # pages of 2 MiB: two 256 MiB VMs at once, and some to spare

# ---- the pool: grown by NEED pages now, given back on exit
HP=/proc/sys/vm/nr_hugepages
if ! [ -e "$HP" ]; then
	echo "SKIP: no hugetlb support in this kernel ($HP is missing)"
	exit 77
fi
if ! grep -q '^Hugepagesize: *2048 kB' /proc/meminfo; then
	echo "SKIP: the default large page size is not 2 MiB: $(grep Hugepagesize /proc/meminfo)"
	exit 77
fi
# hp KEY: HugePages_KEY of /proc/meminfo (Total, Free, Rsvd)
hp() { awk -v k="HugePages_$1:" '$1 == k {print $2}' /proc/meminfo; }
OLD=$(cat "$HP")
SET=
restore_pool() {
	[ -n "$SET" ] || return 0
	local now
	now=$(cat "$HP")
	# the pool was resized under the test (by someone else): take back only the test's pages
	if [ "$now" != "$SET" ]; then OLD=$((now > SET - OLD ? now - (SET - OLD) : 0)); fi
	echo "$OLD" >"$HP" || echo "could not give the pool back: nr_hugepages $now, was $OLD"
}
# common.bash's cleanup ends the vmx processes first, then the pool shrinks back
trap 'cleanup; restore_pool' EXIT
free0=$(hp Free)
SET=$((OLD + NEED))
echo "$SET" >"$HP" 2>/dev/null || true
SET=$(cat "$HP")
free1=$(hp Free)
# (Free may grow by a little less when another test's VM takes pages at the same moment)
if [ $((SET - OLD)) -lt $NEED ] || [ $((free1 - free0)) -lt $((NEED * 9 / 10)) ]; then
	echo "SKIP: the kernel could add only $((SET - OLD)) of $NEED 2 MiB pages to its pool" \
		"($free0 -> $free1 free)"
	exit 77
fi
if [ $((free1 - $(hp Rsvd))) -lt 280 ]; then
	echo "SKIP: only $((free1 - $(hp Rsvd))) pages of 2 MiB are free and unreserved"
	exit 77
fi

# The pool is the host's: VMs of other tests may take from it while this one runs. What the
# test's vmx processes hold is what the pool has given out (taken, Total - Free, or promised,
# Rsvd) less the whole size of every other process's large-page mapping (a mapping reserves
# all it covers; a file mapped twice counts once).
# others: pages promised to large-page mappings of processes other than the test's vmx.
others() {
	local d
	for d in /proc/[0-9]*; do
		echo "PID ${d#/proc/}"
		cat "$d/smaps" 2>/dev/null || true
	done | awk -v ours=" ${PIDS[*]:-} " '
		$1 == "PID" { skip = index(ours, " " $2 " ") > 0; pid = $2; next }
		/^[0-9a-f]+-[0-9a-f]+ / { key = $5 == 0 ? pid ":" $1 : $4 ":" $5; next }
		$1 == "Size:" { size = $2; next }
		$1 == "KernelPageSize:" && $2 == 2048 && !skip && size > kb[key] { kb[key] = size }
		END { for (k in kb) t += kb[k]; print t / 2048 }'
}
# ours: pool pages taken or promised for the test's vmx processes.
ours() {
	local given
	given=$(awk '$1 == "HugePages_Total:" {t = $2} $1 == "HugePages_Free:" {f = $2}
		$1 == "HugePages_Rsvd:" {r = $2} END {print t - f + r}' /proc/meminfo)
	echo $((given - $(others)))
}
# pool_is PAGES WHAT: the test's vmx processes hold PAGES of the pool (retried for a moment:
# another process may be between its mapping and the meminfo read).
pool_is() {
	local got i
	for ((i = 0; i < 40; i++)); do
		got=$(ours)
		[ "$got" = "$1" ] && return 0
		sleep 0.05
	done
	fail "the test's VMs hold $got pages of the pool, not $1 ($2):" \
		"$(grep HugePages_ /proc/meminfo | tr -s ' \n' ' '), others $(others)"
}
# ram_kib PID KEY: KEY (KernelPageSize, Size, Private_Hugetlb...) of the guest RAM mapping of
# vmx PID, in KiB.
ram_kib() {
	awk -v k="$2:" '/keel-guest-ram/ {m = 1; next} m && $1 == k {print $2; exit}' \
		"/proc/$1/smaps"
}
# before any VM of the test, the rest of the pool's use must be told by the mappings
for ((i = 0; i < 40; i++)); do
	held=$(ours)
	[ "$held" = 0 ] && break
	sleep 0.05
done
if [ "$held" != 0 ]; then
	echo "SKIP: $held pages of the pool are held beyond what large-page mappings account" \
		"for: $(grep HugePages_ /proc/meminfo | tr -s ' \n' ' ')"
	exit 77
fi

# backing NAME PID LARGE(true|false): stats, --json stats and the mapping agree on it.
backing() {
	local name=$1 pid=$2 large=$3 want_txt=4\ KiB want_kib=4
	[ "$large" = true ] && { want_txt=2\ MiB; want_kib=2048; }
	"$VMXCTL" "$T/$name.sock" stats | grep -q "^memory: [0-9]* MiB in $want_txt pages" ||
		fail "$name stats: $("$VMXCTL" "$T/$name.sock" stats | head -1), not $want_txt pages"
	local js
	js=$("$VMXCTL" --json "$T/$name.sock" stats)
	grep -q "\"mem_large_pages\":${large}[,}]" <<<"$js" || fail "$name --json stats: $js"
	[ "$(ram_kib "$pid" KernelPageSize)" = "$want_kib" ] ||
		fail "$name maps its guest RAM in $(ram_kib "$pid" KernelPageSize) KiB pages, not $want_kib"
}

# incoming NAME PORT [--large-pages]: an incoming vmx for the guest; sets IN_PID.
incoming() {
	start_vmx "$1" "${GUEST[@]}" --cmdline "$CL" --incoming "127.0.0.1:$2" "${@:3}"
	IN_PID=$VMX_PID
}

# ---- 1. a large-page VM: 2 MiB pages, its whole size reserved at start, filled from the pool
start_vmx a "${GUEST[@]}" --large-pages --cmdline "$CL"
A=$VMX_PID
grep -q "INFO .*guest memory: 256 MiB in 2 MiB pages from the host's pool" "$T/a.vmx.log" ||
	fail "no INFO line for large pages: $(grep 'guest memory' "$T/a.vmx.log")"
backing a "$A" true
# the reservation: Rsvd grows by the size at once, Free falls as the guest touches pages
pool_is 128 "256 MiB reserved by a"
wait_for "$T/a.log" "kguest: fill done" 15
taken=$((($(ram_kib "$A" Private_Hugetlb) + $(ram_kib "$A" Shared_Hugetlb)) / 1024))
if [ "$taken" -lt 96 ] || [ "$taken" -gt 256 ]; then
	fail "after a 96 MiB fill a's RAM has $taken MiB in large pages"
fi
pool_is 128 "touching pages of a does not change what is promised"
wait_for "$T/a.log" "counter 5\b" 5

# ---- 2. large -> small: dirtier running, encrypted, 2 streams, memory identical at READY
incoming b $PORT
B=$IN_PID
backing b "$B" false
pool_is 128 "the small destination b reserves nothing"
"$VMXCTL" migrate-in "$T/b.sock" --key-file "$T/key" --id $ID --streams 2 >"$T/b.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" --json migrate "$T/a.sock" --to 127.0.0.1:$PORT --streams 2 --key-file "$T/key" \
	--id $ID >"$T/a.out" || fail "migrate a -> b: $(cat "$T/a.out")"
grep -q '"phase":"ready"' "$T/a.out" || fail "a -> b not ready: $(cat "$T/a.out")"
$HELP memcmp "$A" "$B" >"$T/cmp1" || fail "memory differs between a (2 MiB) and b (4 KiB): $(cat "$T/cmp1")"
c_before=$(last_counter a)
"$VMXCTL" migrate-commit "$T/a.sock" --epoch 2 >"$T/a.commit" || fail "commit: $(cat "$T/a.commit")"
wait_exit "$A" 10
[ "$RC" = 4 ] || fail "a exited with $RC, not 4 (migrated)"
wait "$IN_CTL" || fail "migrate-in b: $(cat "$T/b.in")"
grep -q "phase: resumed" "$T/b.in" || fail "b: $(cat "$T/b.in")"
wait_for "$T/b.log" "counter $((c_before + 5))\b" 10
pool_is 0 "a is gone, its pages and its reservation with it"

# ---- 3. small -> large with the dirtier stopped: the same checksum
agent_ask b "set dirty_mib_s=0" "^ok" >/dev/null
sum_b=$(agent_ask b "csum all" "^csum ")
incoming c $((PORT + 1)) --large-pages
C=$IN_PID
backing c "$C" true
pool_is 128 "the large destination c reserves its size before any page arrives"
"$VMXCTL" migrate-in "$T/c.sock" --key-file "$T/key" --id $ID --streams 2 >"$T/c.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" migrate "$T/b.sock" --to 127.0.0.1:$((PORT + 1)) --streams 2 --key-file "$T/key" \
	--id $ID --commit 3 >"$T/b.out" 2>&1 || fail "migrate b -> c: $(cat "$T/b.out")"
wait_exit "$B" 10
[ "$RC" = 4 ] || fail "b exited with $RC, not 4 (migrated)"
wait "$IN_CTL" || fail "migrate-in c: $(cat "$T/c.in")"
sum_c=$(agent_ask c "csum all" "^csum ")
[ "$sum_b" = "$sum_c" ] || fail "checksum $sum_b on b (4 KiB), $sum_c on c (2 MiB)"
n=$(last_counter c)
wait_for "$T/c.log" "counter $((n + 3))\b" 5

# ---- 4. large -> large with a 64 MiB/s dirtier: memory identical at READY
agent_ask c "set dirty_mib_s=64" "^ok" >/dev/null
incoming d $((PORT + 2)) --large-pages
D=$IN_PID
backing d "$D" true
pool_is 256 "c and d hold 128 pages each"
"$VMXCTL" migrate-in "$T/d.sock" --key-file "$T/key" --id $ID --streams 2 >"$T/d.in" 2>&1 &
IN_CTL=$!
"$VMXCTL" --json migrate "$T/c.sock" --to 127.0.0.1:$((PORT + 2)) --streams 2 \
	--key-file "$T/key" --id $ID >"$T/c.out" || fail "migrate c -> d: $(cat "$T/c.out")"
grep -q '"phase":"ready"' "$T/c.out" || fail "c -> d not ready: $(cat "$T/c.out")"
$HELP memcmp "$C" "$D" >"$T/cmp2" || fail "memory differs between c and d (2 MiB both): $(cat "$T/cmp2")"
c_before=$(last_counter c)
"$VMXCTL" migrate-commit "$T/c.sock" --epoch 4 >"$T/c.commit" || fail "commit: $(cat "$T/c.commit")"
wait_exit "$C" 10
[ "$RC" = 4 ] || fail "c exited with $RC, not 4 (migrated)"
wait "$IN_CTL" || fail "migrate-in d: $(cat "$T/d.in")"
wait_for "$T/d.log" "counter $((c_before + 5))\b" 10
pool_is 128 "c is gone, d holds its 128 pages"
dirtied=$(agent_ask d status "^status " | grep -Eo 'dirtied=[0-9]+' | cut -d= -f2)
sleep 0.3
dirtied2=$(agent_ask d status "^status " | grep -Eo 'dirtied=[0-9]+' | cut -d= -f2)
[ "$dirtied2" -gt "$dirtied" ] || fail "the dirtier stopped on d ($dirtied then $dirtied2)"

# ---- 5. save d (dirtier stopped), restore into a new large-page vmx e: same checksum
agent_ask d "set dirty_mib_s=0" "^ok" >/dev/null
sum_d=$(agent_ask d "csum all" "^csum ")
"$VMXCTL" "$T/d.sock" pause >/dev/null
"$VMXCTL" "$T/d.sock" save "$T/vm.vmss" >"$T/d.save" 2>&1 || fail "save: $(cat "$T/d.save")"
last=$(last_counter d)
"$VMXCTL" "$T/d.sock" power-off >/dev/null
wait_exit "$D" 10
pool_is 0 "d is gone"
start_vmx e "${GUEST[@]}" --large-pages --paused
E=$VMX_PID
backing e "$E" true
pool_is 128 "e reserved its size"
"$VMXCTL" "$T/e.sock" restore "$T/vm.vmss" >"$T/e.restore" 2>&1 ||
	fail "restore into large pages: $(cat "$T/e.restore")"
"$VMXCTL" "$T/e.sock" resume >/dev/null
wait_for "$T/e.log" "counter $((last + 2))\b" 10
sum_e=$(agent_ask e "csum all" "^csum ")
[ "$sum_d" = "$sum_e" ] || fail "checksum $sum_d saved, $sum_e restored"
! grep -q "kguest: up" "$T/e.log" || fail "the restored guest booted again"
first=$(grep -Eo 'counter [0-9]+' "$T/e.log" | head -1 | awk '{print $2}')
[ "$first" -gt "$last" ] || fail "counter went back: $last then $first"
backing e "$E" true
pool_is 128 "restoring took nothing beyond e's reservation"

# ---- 6. a VM the pool cannot hold: 4 KiB pages, a line saying why, no reservation
big=$((($(hp Free) - $(hp Rsvd)) * 2 + 1024))
start_vmx f --kernel "$KGUEST" --mem "${big}M" --large-pages --cmdline "counter_ms=100"
F=$VMX_PID
grep -Eq "INFO .*guest memory: $big MiB in 4 KiB pages: .*pool of 2 MiB pages cannot hold $big MiB" \
	"$T/f.vmx.log" || fail "no line saying why f is on 4 KiB pages: $(grep 'guest memory' "$T/f.vmx.log")"
backing f "$F" false
wait_for "$T/f.log" "counter 3\b" 10
pool_is 128 "the failed reservation of f left nothing behind"
why=$(grep -o "guest memory: .*" "$T/f.vmx.log" | head -1)

# ---- 7. every vmx gone: the pool is as the test made it
"$VMXCTL" "$T/e.sock" power-off >/dev/null
"$VMXCTL" "$T/f.sock" power-off >/dev/null
wait_exit "$E" 10
wait_exit "$F" 10
pool_is 0 "every vmx is gone"

echo "ok: 2 MiB pages for a (128 reserved at start, $taken MiB taken after the fill); a->b large to" \
	"small (memory identical), b->c small to large ($sum_c both sides), c->d large to large at" \
	"64 MiB/s (memory identical); save/restore into large pages ($sum_e, counter $last ->" \
	"$first); fallback: $why; no page of the pool left held"
