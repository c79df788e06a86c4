# Remote syslog (docs/syslog.md): vmsyslogd forwards vmkernel's log lines as RFC 5424 to
# Debian's rsyslogd over UDP, TCP (octet counting) and TLS (a test CA), configured with
# `keel host syslog set` in the config store. rsyslogd stopped: the stream remotes back off
# with the lines buffered and the lines past the buffer dropped and counted; rsyslogd
# back: the buffered lines arrive in order after a notice of the drops, the configuration
# is unchanged; `keel host syslog test` arrives everywhere; a restarted vmsyslogd sends
# what was logged while it was down, and nothing twice; a TLS server signed by another CA
# is refused. Bad options are refused and change nothing. Everything listens on 127.0.0.1
# only.
source "$(dirname "$0")/common.bash"
VSLD=$PWD/$BUILD/bin/vmsyslogd
command -v rsyslogd >/dev/null || { echo "SKIP: rsyslogd is not installed (make deps)"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed (make deps)"; exit 77; }
start_vmkernel

for c in set show test; do
	keel host syslog "$c" --help >/dev/null || fail "keel host syslog $c --help"
done

# ---- a test CA and a server certificate for 127.0.0.1 ------------------------------------
R=$T/rsyslog
mkdir -p "$R/work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$R/ca.key" -out "$R/ca.pem" -days 2 \
	-subj "/CN=keel test syslog CA" 2>/dev/null || fail "making the test CA"
openssl req -newkey rsa:2048 -nodes -keyout "$R/srv.key" -out "$R/srv.csr" \
	-subj "/CN=127.0.0.1" 2>/dev/null || fail "making the server key"
printf 'subjectAltName=IP:127.0.0.1\n' >"$R/ext"
openssl x509 -req -in "$R/srv.csr" -CA "$R/ca.pem" -CAkey "$R/ca.key" -CAcreateserial \
	-out "$R/srv.pem" -days 2 -extfile "$R/ext" 2>/dev/null || fail "signing the server cert"

read -r PU PT PS < <(/usr/bin/python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", 0))
s = socket.socket(); s.bind(("127.0.0.1", 0))
print(u.getsockname()[1], t.getsockname()[1], s.getsockname()[1])')

cat >"$R/rsyslog.conf" <<EOC
global(workDirectory="$R/work" defaultNetstreamDriverCAFile="$R/ca.pem"
       defaultNetstreamDriverCertFile="$R/srv.pem" defaultNetstreamDriverKeyFile="$R/srv.key")
module(load="imudp")
module(load="imtcp")
template(name="fields" type="string"
         string="%hostname% %app-name% %procid% %msgid% %syslogseverity% %structured-data% %msg%\n")
ruleset(name="udp") { action(type="omfile" file="$R/udp.out" template="fields") }
ruleset(name="tcp") { action(type="omfile" file="$R/tcp.out" template="fields") }
ruleset(name="tls") { action(type="omfile" file="$R/tls.out" template="fields") }
input(type="imudp" address="127.0.0.1" port="$PU" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="$PT" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="$PS" ruleset="tls" streamDriver.name="ossl"
      streamDriver.mode="1" streamDriver.authMode="anon")
EOC
RS_PID=
start_rsyslog() {
	rsyslogd -n -f "$R/rsyslog.conf" -i "$R/rsyslogd.pid" >>"$T/rsyslogd.log" 2>&1 &
	RS_PID=$!
	PIDS+=("$RS_PID")
	for ((i = 0; i < 100; i++)); do
		ss -Hltn "sport = :$PS" | grep -q . && return 0
		kill -0 "$RS_PID" 2>/dev/null || fail "rsyslogd exited: $(tail -5 "$T/rsyslogd.log")"
		sleep 0.05
	done
	fail "rsyslogd did not listen on $PS"
}
stop_rsyslog() {
	kill "$RS_PID" && wait "$RS_PID" 2>/dev/null || true
}
start_rsyslog

VSL_PID=
start_vsl() {
	local n
	n=$(grep -c "vmsyslogd ready" "$T/vmsyslogd.log" 2>/dev/null || true)
	"$VSLD" --state-dir "$T/state" --hostname esx-it-1 2>>"$T/vmsyslogd.log" &
	VSL_PID=$!
	PIDS+=("$VSL_PID")
	for ((i = 0; i < 200; i++)); do
		[ "$(grep -c "vmsyslogd ready" "$T/vmsyslogd.log")" -gt "${n:-0}" ] && return 0
		kill -0 "$VSL_PID" 2>/dev/null || fail "vmsyslogd exited"
		sleep 0.05
	done
	fail "vmsyslogd did not start"
}
start_vsl
"$VSLD" --state-dir "$T/state" 2>"$T/second.out" && fail "a second vmsyslogd ran for the same state dir"
grep -q "another vmsyslogd runs" "$T/second.out" || fail "second vmsyslogd: $(cat "$T/second.out")"

# ---- bad options are refused and change nothing ---------------------------------------------
for bad in "--remote http://127.0.0.1:514" "--remote udp://127.0.0.1:0" \
	"--remote tcp://127.0.0.1:65536" "--remote tcp://bad_host:601" "--remote tls://[::1" \
	"--remote udp://127.0.0.1:514/x" "--remote udp://127.0.0.1 --buffer-lines 0" \
	"--remote udp://127.0.0.1 --buffer-lines 2000000" "--remote udp://127.0.0.1 --buffer-lines 5k" \
	"--remote udp://127.0.0.1 --ca $R/missing.pem" "--clear --remote udp://127.0.0.1" ""; do
	# shellcheck disable=SC2086
	if keel host syslog set $bad >"$T/out" 2>&1; then fail "set $bad was accepted"; fi
	grep -q "keel: " "$T/out" || fail "set $bad: no clear error: $(cat "$T/out")"
done
keel host config get etc/keel/syslog.conf >/dev/null 2>&1 && fail "a refused set wrote syslog.conf"

# ---- three remotes ------------------------------------------------------------------------
keel host syslog set --remote "udp://127.0.0.1:$PU" --remote "tcp://127.0.0.1:$PT" \
	--remote "tls://127.0.0.1:$PS" --ca "$R/ca.pem" --buffer-lines 5 >/dev/null || fail "set"
conf_before=$(keel host config get etc/keel/syslog.conf)
[[ $conf_before == *"remote = tls://127.0.0.1:$PS"* ]] || fail "syslog.conf: $conf_before"

# wait until all three are connected
connected() {
	local out n
	out=$(keel --json host syslog show) || return 1
	n=$(/usr/bin/python3 -c 'import json,sys
d=json.loads(sys.argv[1])["daemon"] or {}
print(sum(1 for r in d.get("remotes",[]) if r["state"]==sys.argv[2]))' "$out" "$1")
	[ "$n" = "$2" ]
}
for ((i = 0; i < 100; i++)); do connected connected 3 && break; sleep 0.1; done
connected connected 3 || fail "not all remotes connected: $(keel host syslog show)"

# vmkernel log lines: creating a VM logs one
marker="sysit$RANDOM"
keel vm create "$marker" --memory 64 >/dev/null || fail "vm create"
grep -q "VM $marker created" "$T/state/vmkernel.log" || fail "vmkernel did not log the create"
for p in udp tcp tls; do
	wait_for "$R/$p.out" "^esx-it-1 vmkernel [0-9]+ - 6 - VM $marker created" 10
done
# and the VM's own vmx log, once it runs (needs /dev/kvm)
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	keel vm power-on "$marker" >/dev/null || fail "power-on"
	wait_for "$R/tcp.out" "^esx-it-1 vmx-$marker [0-9-]+ - [0-9] " 15
	keel vm power-off "$marker" >/dev/null || fail "power-off"
fi

# ---- rsyslogd goes away ------------------------------------------------------------------
stop_rsyslog
for ((i = 0; i < 100; i++)); do connected "backing off" 2 && break; sleep 0.1; done
connected "backing off" 2 || fail "tcp and tls not backing off: $(keel host syslog show)"
for n in 1 2 3 4 5 6 7 8; do
	keel vm create "away$n" --memory 64 >/dev/null || fail "vm create away$n"
done
sleep 1.5
out=$(keel --json host syslog show)
/usr/bin/python3 - "$out" "$PT" "$PS" <<'EOP' || fail "status while away: $out"
import json, sys
d = json.loads(sys.argv[1])["daemon"]
for r in d["remotes"]:
    if r["url"].startswith(("tcp://", "tls://")):
        assert r["state"] == "backing off", r
        assert r["buffered"] == 5, r
        assert r["dropped"] > 0, r
        assert r["last_error"], r
assert any("unreachable" in e["text"] or "lost" in e["text"] for e in d["events"]), d["events"]
EOP
out=$(keel host syslog show) || fail "show"
[[ $out == *"backing off"* ]] || fail "show (text) does not say backing off: $out"

# ---- rsyslogd comes back ----------------------------------------------------------------
start_rsyslog
for p in tcp tls; do
	wait_for "$R/$p.out" "vmsyslogd - DROPPED 4 .*messages for this server were dropped" 40
	wait_for "$R/$p.out" "VM away5 created" 10
	# the five buffered lines arrive in order, after the drop notice; the rest were dropped
	got=$(grep -o "DROPPED\|VM away[0-9] created" "$R/$p.out" | tr '\n' ,)
	[ "$got" = "DROPPED,VM away1 created,VM away2 created,VM away3 created,VM away4 created,VM away5 created," ] ||
		fail "$p: after the outage: $got"
done
for ((i = 0; i < 100; i++)); do connected connected 3 && break; sleep 0.1; done
[ "$(keel host config get etc/keel/syslog.conf)" = "$conf_before" ] ||
	fail "the configuration changed across the outage"

# ---- test -------------------------------------------------------------------------------
out=$(keel --json host syslog test --text "hello from the test") || fail "test: $out"
id=$(json_field "$out" test_id)
for p in udp tcp tls; do
	wait_for "$R/$p.out" "^esx-it-1 vmsyslogd - TEST 5 \[origin software=\"vmsyslogd\"\] keel host syslog test $id: hello from the test" 10
done

# ---- vmsyslogd restarted: lines written while it was down are sent, config from the store --
kill "$VSL_PID"
wait "$VSL_PID" 2>/dev/null || true
keel vm create whiledown --memory 64 >/dev/null || fail "vm create whiledown"
start_vsl
for p in tcp tls; do
	wait_for "$R/$p.out" "^esx-it-1 vmkernel [0-9]+ - 6 - VM whiledown created" 15
done
[ "$(grep -c "VM away1 created" "$R/tcp.out")" = 1 ] || fail "lines sent twice after the restart"

# ---- a TLS server whose certificate the CA did not sign is refused ------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$R/other.key" -out "$R/other.pem" -days 2 \
	-subj "/CN=other CA" 2>/dev/null
keel host syslog set --remote "tls://127.0.0.1:$PS" --ca "$R/other.pem" >/dev/null || fail "set other CA"
for ((i = 0; i < 100; i++)); do
	out=$(keel host syslog show)
	[[ $out == *"certificate not accepted"* ]] && break
	sleep 0.1
done
[[ $out == *"certificate not accepted"* ]] || fail "a server signed by another CA was not refused: $out"
connected error 1 || fail "a refused TLS server is not in state error: $(keel host syslog show)"

# ---- clear --------------------------------------------------------------------------------
keel host syslog set --clear >/dev/null || fail "clear"
for ((i = 0; i < 100; i++)); do connected connected 0 && connected "backing off" 0 && break; sleep 0.1; done
out=$(keel --json host syslog show)
[[ $out == *'"config":null'* ]] || fail "show after clear: $out"
keel host syslog test >/dev/null 2>&1 && fail "test with no remote succeeded"
echo "PASS"
