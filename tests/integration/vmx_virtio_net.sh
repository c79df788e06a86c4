# kguest's virtio NIC on a tap in a private network namespace: the host side sends UDP
# echo requests to the guest (198.18.0.2) and every one is answered; ARP resolves.
source "$(dirname "$0")/common.bash"
need_kvm
command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }

NS=keel-it-net-$$
ip netns add "$NS" || fail "cannot create a network namespace"
trap 'cleanup; ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev ktap0 mode tap vnet_hdr
ip -n "$NS" addr add 198.18.0.1/24 dev ktap0
ip -n "$NS" link set ktap0 up

ip netns exec "$NS" "$VMX" --name n --ctl "$T/n.sock" --console-log "$T/n.log" \
	--kernel "$KGUEST" --mem 128M --net ktap0,mac=02:4b:45:00:00:02 \
	--cmdline "ip=198.18.0.2 counter_ms=1000" 2>"$T/n.vmx.log" &
VMX_PID=$!
PIDS+=("$VMX_PID")
wait_for "$T/n.log" "net .*mac=02:4b:45:00:00:02|net.*02:4b:45:00:00:02"
out=$(ip netns exec "$NS" python3 "$(dirname "$0")/udp_echo_client.py" 198.18.0.2 7 200 1.0)
echo "$out"
[[ $out == *"replies=200 lost=0"* ]] || fail "echo lost replies: $out"
ip -n "$NS" neigh show 198.18.0.2 | grep -qi "02:4b:45:00:00:02" || fail "ARP did not resolve the guest"
ip netns exec "$NS" ping -c 3 -W 1 198.18.0.2 >/dev/null 2>&1 && echo "ping answered" || echo "ping not answered (ICMP optional)"
"$VMXCTL" "$T/n.sock" power-off >/dev/null
wait "$VMX_PID" || true
echo "ok: $out"
