# A stock Debian Linux guest under vmx, one level down: QEMU (TCG, emulated AMD SVM) boots
# Debian's kernel as L1, which loads kvm-amd and runs vmx; vmx boots the same kernel as L2
# through the 64-bit boot protocol with an initramfs, a virtio-blk disk and a virtio-net NIC
# on a tap in L1. Checks from the serial output: L2 reaches init, sees its disk and reads
# the signature L1 wrote, writes a sector L1 reads back, brings eth0 up and pings L1.
# Then L1 boots the L2 once more through the PVH entry (the vmlinux extracted from the
# bzImage) up to init. Prints the L1 and L2 boot times. QEMU has no network device: all traffic stays in L1.
#
# Needs qemu-system-x86_64, busybox-static, cpio and Debian's kernel package (fetched once
# with apt-get download into $BUILD/cache by tests/guest-images/fetch-kernel.sh); SKIP when
# one of them is unavailable. /dev/kvm on this host is not needed.
# Knobs: KEEL_NESTED_TIMEOUT (seconds, default 300), KEEL_L2_VCPUS (default 2),
# KEEL_NESTED_PVH (default 1; 0 skips the PVH boot).
source "$(dirname "$0")/common.bash"

timeout_s=${KEEL_NESTED_TIMEOUT:-300}
l2_vcpus=${KEEL_L2_VCPUS:-2}
pvh=${KEEL_NESTED_PVH:-1}
here=$(cd "$(dirname "$0")/.." && pwd)

command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
command -v busybox >/dev/null || { echo "SKIP: busybox-static not installed"; exit 77; }
command -v cpio >/dev/null || { echo "SKIP: cpio not installed"; exit 77; }
[ -x "$VMX" ] || fail "no vmx at $VMX (build it first)"

if ! ktree=$("$here/guest-images/fetch-kernel.sh" "$BUILD/cache" 2>"$T/fetch.log"); then
	cat "$T/fetch.log"
	echo "SKIP: Debian's kernel package could not be fetched"
	exit 77
fi
vmlinuz=$(ls "$ktree"/boot/vmlinuz-* | head -1)
"$here/guest-images/build-nested.sh" "$ktree" "$VMX" "$T/img" "$([ "$pvh" = 1 ] && echo pvh)" >/dev/null 2>"$T/build.log" ||
	fail "building the initramfs images: $(cat "$T/build.log")"

# Every line of the L1 serial console, prefixed with seconds since QEMU started.
start=$(date +%s%N)
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 \
	-nographic -no-reboot -nic none -kernel "$vmlinuz" -initrd "$T/img/l1.cpio.gz" \
	-append "console=ttyS0 panic=-1 quiet KEEL_L2_VCPUS=$l2_vcpus" </dev/null 2>&1 |
	while IFS= read -r line; do
		now=$(date +%s%N)
		printf '%8.3f %s\n' "$(( (now - start) / 1000000 ))e-3" "${line%$'\r'}"
	done >"$T/l1.log"
rc=${PIPESTATUS[0]}
set -e
total=$(( ($(date +%s%N) - start) / 1000000 ))

grep -a 'KEEL-' "$T/l1.log" | grep -av 'dmesg:' || true
[ "$rc" -eq 124 ] && fail "QEMU timed out after ${timeout_s}s"
[ "$rc" -eq 0 ] || fail "QEMU exited with status $rc"

# at MARKER: seconds at the first line matching MARKER ("" if none).
at() { grep -a -m1 -E "$1" "$T/l1.log" | awk '{ print $1 }'; }
t_l1=$(at 'KEEL-L1: init reached')
t_vmx=$(at 'KEEL-L1: starting vmx')
t_l2=$(at 'KEEL-L2: init reached')
t_done=$(at 'KEEL-L2: done')

[ -n "$t_l1" ] || fail "L1 did not reach init"
grep -aq 'KEEL-L1: /dev/kvm ready' "$T/l1.log" || fail "no /dev/kvm in L1"
[ -n "$t_vmx" ] || fail "L1 did not start vmx"
[ -n "$t_l2" ] || fail "the L2 Linux did not reach init"
grep -aq "KEEL-L2: init reached .* cpus=$l2_vcpus" "$T/l1.log" ||
	fail "L2 does not see $l2_vcpus CPUs"
grep -aq 'KEEL-L2: disk vda present' "$T/l1.log" || fail "L2 found no virtio disk"
grep -aq 'KEEL-L2: disk sector 0: KEEL-DISK-MAGIC!' "$T/l1.log" ||
	fail "L2 did not read the disk signature"
grep -aq 'KEEL-L1: disk sector 1 after the guest: KEEL-L2-WROTE-THIS' "$T/l1.log" ||
	fail "L2's disk write did not reach the image"
grep -aq 'KEEL-L2: eth0 up' "$T/l1.log" || fail "L2 has no eth0"
grep -aq 'KEEL-L2: ping 198.18.0.1 ok' "$T/l1.log" || fail "L2 could not ping L1 over virtio-net"
[ -n "$t_done" ] || fail "L2 did not finish its checks"
grep -aq 'KEEL-L1: vmx exited' "$T/l1.log" || fail "vmx did not exit after the guest rebooted"
pvh_msg=""
if [ "$pvh" = 1 ]; then
	t_pvh=$(at 'KEEL-L1: starting vmx with the PVH')
	t_pvh_init=$(at 'KEEL-L2: PVH boot reached init')
	[ -n "$t_pvh_init" ] || fail "the L2 Linux did not reach init through the PVH entry"
	pvh_msg=$(awk -v a="$t_pvh" -v b="$t_pvh_init" 'BEGIN { printf "; PVH: L2 init %.1fs after vmx started", b - a }')
fi

awk -v a="$t_l1" -v b="$t_vmx" -v c="$t_l2" -v d="$t_done" -v t="$total" -v p="$pvh_msg" 'BEGIN {
	printf "ok: L1 init at %.1fs; bzImage: L2 (%s vCPUs) init %.1fs after vmx started, checks done %.1fs after%s; total %.1fs\n",
		a, '"$l2_vcpus"', c - b, d - c, p, t / 1000 }'
