# `keel host top` on one vmkernel (kernel/vm/stats.c, docs/top.md): a kguest VM dirtying
# memory, writing its disk sequence and answering UDP echoes over its portgroup; --batch CSV has
# a header and the VM's row every round with CPU, VM exits (port I/O of its console), disk
# write bytes and network rates above zero; --json the same figures; the vmkernel world;
# one VM only with --vm; bad options refused; a VM that is off or unknown refused.
source "$(dirname "$0")/common.bash"
need_kvm
start_vmkernel

keel vm create top1 --memory 128 --vcpus 1 --disk 16 --nic "VM Network" \
	--cmdline "counter_ms=50 hb_ms=50 ip=198.18.21.2 disk_seq=1 disk_ms=10 dirty_mib_s=16 dirty_ws_mib=8" \
	>/dev/null || fail "create top1"
keel vm create off1 --memory 64 >/dev/null || fail "create off1"
keel vm power-on top1 >/dev/null || fail "power-on"
CON=$T/state/datastore1/top1/console.log
wait_for "$CON" "disk seq 1\b"

# UDP echoes from the portgroup's host side, 50 a second, for the whole run
ip -n "$NS" addr add 198.18.21.1/24 dev vSwitch0
ip netns exec "$NS" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
for i in range(3000):
    s.sendto(b"keel-top %d" % i, ("198.18.21.2", 7))
    time.sleep(0.02)
    try:
        while s.recv(2048): pass
    except BlockingIOError:
        pass' >"$T/echo.log" 2>&1 &
PIDS+=("$!")

# bad options and refusals change nothing and say why
keel host top --interval 0.1 --batch --iterations 1 >/dev/null 2>&1 && fail "--interval 0.1 accepted"
keel host top --iterations 0 --batch >/dev/null 2>&1 && fail "--iterations 0 accepted"
keel host top --batch --iterations 1 --vm nosuch >/dev/null 2>"$T/err.txt" && fail "an unknown VM accepted"
grep -q "no VM named nosuch" "$T/err.txt" || fail "unknown VM: $(cat "$T/err.txt")"
keel host top --batch --iterations 1 --vm off1 >/dev/null 2>"$T/err.txt" && fail "a VM that is off accepted"
grep -q "not powered on" "$T/err.txt" || fail "VM off: $(cat "$T/err.txt")"
keel host top --help | grep -q -- "--batch" || fail "--help lacks --batch"

keel host top --batch --iterations 3 --interval 1 >"$T/top.csv" || fail "host top --batch"
python3 - "$T/top.csv" <<'EOF' || fail "CSV: $(cat "$T/top.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
vm = [r for r in rows if r["world"] == "top1"]
assert len(vm) == 3, f"{len(vm)} rows of top1, want 3"
assert len({r["time"] for r in vm}) >= 2, "rounds with the same time"
assert any(r["world"] == "vmkernel" and r["kind"] == "system" for r in rows), "no vmkernel row"
for r in vm:
    assert r["kind"] == "vm" and int(r["pid"]) > 0, r
    assert float(r["cpu_used_pct"]) > 0, ("cpu", r)
    assert float(r["exits_s"]) > 0 and float(r["exits_io_s"]) > 0, ("exits", r)
    assert int(r["rss_bytes"]) > 0, ("rss", r)
assert any(float(r["disk_write_bytes_s"]) > 0 for r in vm), "no disk writes"
assert any(float(r["net_rx_packets_s"]) > 0 and float(r["net_tx_packets_s"]) > 0 for r in vm), "no network"
print("csv ok:", {k: vm[-1][k] for k in ("cpu_used_pct", "cpu_ready_pct", "exits_s", "disk_write_bytes_s", "net_rx_packets_s")})
EOF

keel --json host top --vm top1 --interval 1 --iterations 2 >"$T/top.json" || fail "host top --json"
python3 - "$T/top.json" <<'EOF' || fail "JSON: $(cat "$T/top.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 2, f"{len(lines)} objects"
for o in lines:
    assert o["ok"] is True
    ws = o["perf"]["worlds"]
    assert [w["name"] for w in ws] == ["top1"], ws
    w = ws[0]
    assert w["cpu_used_pct"] > 0 and w["exits_s"] > 0 and w["exits_io_s"] > 0, w
    assert w["disk_write_bytes"] > 0 and w["mem_size"] == 128 << 20, w
    assert len(w["vcpus"]) == 1 and w["vcpus"][0]["exits_s"] > 0, w["vcpus"]
    assert len(w["nics"]) == 1 and w["nics"][0]["tap"], w["nics"]
    assert o["perf"]["cpus"] >= 1 and o["perf"]["interval_ms"] >= 100, o["perf"]
print("json ok")
EOF
# the screen (not a terminal here: no clearing, one block per round)
keel host top --interval 0.5 --iterations 2 >"$T/top.txt" || fail "host top"
cat "$T/top.txt"
[ "$(grep -c '^WORLD ' "$T/top.txt")" = 2 ] || fail "screen: two header rows wanted"
[ "$(grep -cE '^top1 +vm +[0-9]+ ' "$T/top.txt")" = 2 ] || fail "screen: two top1 rows wanted"
grep -q $'\033' "$T/top.txt" && fail "terminal control sequences when not on a terminal"
echo "ok: host top"
