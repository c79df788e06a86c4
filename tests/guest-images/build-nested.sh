#!/usr/bin/env bash
# Builds the two initramfs images of the nested Linux test (tests/integration/
# linux_nested.sh) from Debian's kernel package (unpacked by fetch-kernel.sh), busybox-static
# and vmx:
#
#   OUT/l2.cpio.gz  the Linux guest vmx boots: busybox and the virtio modules (virtio_pci,
#                   virtio_blk, virtio_net and their dependencies, in dependency order); its
#                   /init prints "KEEL-L2: ..." markers on ttyS0: init reached, disk seen
#                   and readable/writable, eth0 up and answering ping, done.
#   OUT/l1.cpio.gz  the Linux that QEMU (TCG, emulated SVM) boots: busybox, kvm-amd and its
#                   dependencies, tun, vmx with its shared libraries, the L2 kernel and
#                   initramfs; its /init loads the modules, creates tap0 (198.18.0.1/24),
#                   a 16 MiB disk image, runs vmx with the L2 guest and prints "KEEL-L1: ..."
#                   markers, then powers off.
#
# Usage: build-nested.sh KERNEL_TREE VMX OUT [pvh]
#   KERNEL_TREE: the dpkg -x tree (boot/vmlinuz-*, lib/modules/*)
#   pvh: also put the uncompressed vmlinux (extracted from the bzImage's xz payload) into
#        L1 as /l2/vmlinux; L1's /init then boots the L2 a second time through the PVH
#        entry, without devices, after the bzImage run.
# Modules may be plain .ko or .ko.xz/.ko.zst (decompressed here: busybox insmod loads only
# plain ELF). Module order comes from each module's `modinfo -F depends` (the package has
# no modules.dep).
set -euo pipefail

ktree=$1 vmx=$2 out=$3 pvh=${4:-}
die() { echo "build-nested: $*" >&2; exit 1; }

vmlinuz=$(ls "$ktree"/boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $ktree"
moddir=$(ls -d "$ktree"/lib/modules/*/ 2>/dev/null | head -1)
[ -n "$moddir" ] || die "no lib/modules/* in $ktree"
busybox=$(command -v busybox) || die "busybox not found (busybox-static)"
file -L "$busybox" | grep -q 'statically linked' || die "$busybox is not static"
[ -x "$vmx" ] || die "no vmx at $vmx"
modinfo=$(command -v modinfo || echo /sbin/modinfo)

mkdir -p "$out"
work=$(mktemp -d "$out/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- modules ------------------------------------------------------------------------
declare -A modpath seen
while IFS= read -r f; do
	n=$(basename "$f")
	n=${n%%.ko*}
	modpath[${n//-/_}]=$f
done < <(find "$moddir" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
order=()
add_mod() {
	local n=${1//-/_} p d
	[ -n "${seen[$n]:-}" ] && return 0
	seen[$n]=1
	p=${modpath[$n]:-}
	[ -n "$p" ] || die "module $n not found in $moddir"
	for d in $("$modinfo" -F depends "$p" | tr ',' ' '); do
		add_mod "$d"
	done
	order+=("$n")
}
# copy_mods ROOT NAME...: ROOT/lib/modules/NAME.ko (decompressed) and ROOT/etc/modules
# in load order.
copy_mods() {
	local root=$1 n p
	shift
	order=()
	seen=()
	for n in "$@"; do add_mod "$n"; done
	mkdir -p "$root/lib/modules" "$root/etc"
	: >"$root/etc/modules"
	for n in "${order[@]}"; do
		p=${modpath[$n]}
		case $p in
		*.ko.xz) xz -dc "$p" >"$root/lib/modules/$n.ko" ;;
		*.ko.zst) zstd -qdc "$p" >"$root/lib/modules/$n.ko" ;;
		*.ko.gz) gzip -dc "$p" >"$root/lib/modules/$n.ko" ;;
		*) cp "$p" "$root/lib/modules/$n.ko" ;;
		esac
		echo "$n" >>"$root/etc/modules"
	done
}

base_root() {
	local root=$1
	mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,usr/bin,usr/sbin}
	cp "$busybox" "$root/bin/busybox"
	for a in $("$busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	if [ "$(id -u)" = 0 ]; then
		mknod -m 600 "$root/dev/console" c 5 1
		mknod -m 666 "$root/dev/null" c 1 3
	fi
}

pack() { # pack ROOT OUTFILE
	(cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$2.tmp"
	mv "$2.tmp" "$2"
}

# --- L2 -----------------------------------------------------------------------------
l2=$work/l2
base_root "$l2"
copy_mods "$l2" virtio_pci virtio_blk virtio_net
cat >"$l2/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
echo "KEEL-L2: init reached uptime=$(cut -d' ' -f1 /proc/uptime) cpus=$(grep -c ^processor /proc/cpuinfo)"
if grep -q keel.pvh /proc/cmdline; then
	echo "KEEL-L2: PVH boot reached init: $(dmesg | grep -m1 -o 'Booting paravirtualized kernel on [A-Za-z ]*')"
	reboot -f
fi
dmesg | grep -E 'IOAPIC\[|MPTABLE|Processors:|smpboot: Allowing|smp: Brought up|8250:|ttyS0 at' | sed 's/^/KEEL-L2: dmesg: /'
for m in $(cat /etc/modules); do
	insmod /lib/modules/$m.ko || echo "KEEL-L2: insmod $m failed"
done
echo "KEEL-L2: modules loaded uptime=$(cut -d' ' -f1 /proc/uptime)"
if grep -q keel.debug /proc/cmdline; then
	echo "KEEL-L2: clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "KEEL-L2: clockevent $(cat /sys/devices/system/clockevents/clockevent0/current_device 2>/dev/null)"
	cat /proc/interrupts | sed 's/^/KEEL-L2: irq: /'
	dmesg | tail -40 | sed 's/^/KEEL-L2: dmesg: /'
fi
for i in $(seq 1 50); do [ -e /sys/block/vda ] && break; sleep 0.1; done
if [ -e /sys/block/vda ]; then
	echo "KEEL-L2: disk vda present, $(cat /sys/block/vda/size) sectors"
	sig=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 16)
	echo "KEEL-L2: disk sector 0: $sig"
	echo "KEEL-L2-WROTE-THIS" | dd of=/dev/vda bs=512 seek=1 conv=sync,fsync 2>/dev/null &&
		echo "KEEL-L2: disk write done"
else
	echo "KEEL-L2: no disk vda"
fi
for i in $(seq 1 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
if [ -e /sys/class/net/eth0 ]; then
	ip link set lo up
	ip addr add 198.18.0.2/24 dev eth0
	ip link set eth0 up
	echo "KEEL-L2: eth0 up mac=$(cat /sys/class/net/eth0/address)"
	if ping -c 3 -W 3 198.18.0.1 >/tmp/ping 2>&1; then
		echo "KEEL-L2: ping 198.18.0.1 ok: $(grep -E 'packets transmitted' /tmp/ping)"
	else
		echo "KEEL-L2: ping 198.18.0.1 failed: $(tail -2 /tmp/ping | tr '\n' ' ')"
	fi
else
	echo "KEEL-L2: no eth0"
fi
dmesg | grep -Ei 'virtio|vda|eth0' | grep -Ei 'err|fail|warn|timeout|bad' | sed 's/^/KEEL-L2: dmesg: /' | head -20
echo "KEEL-L2: done uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
# No ACPI here: reboot=t on the command line makes this a triple fault, which ends vmx.
reboot -f
INIT
chmod +x "$l2/init"
pack "$l2" "$out/l2.cpio.gz"

# --- L1 -----------------------------------------------------------------------------
l1=$work/l1
base_root "$l1"
copy_mods "$l1" kvm_amd tun
mkdir -p "$l1/l2"
cp "$vmlinuz" "$l1/l2/vmlinuz"
if [ "$pvh" = pvh ]; then
	# The bzImage's payload is one xz stream; vmlinux is the ELF inside it.
	off=$(LC_ALL=C grep -abo "$(printf '\3757zXZ')" "$vmlinuz" | head -1 | cut -d: -f1)
	[ -n "$off" ] || die "no xz payload in $vmlinuz"
	# xz stops reading at the end of the stream, so tail may die of SIGPIPE.
	{ tail -c +$((off + 1)) "$vmlinuz" || true; } | xz -dc --single-stream >"$l1/l2/vmlinux" ||
		die "cannot extract vmlinux from $vmlinuz"
	head -c 4 "$l1/l2/vmlinux" | grep -q ELF || die "the xz payload of $vmlinuz is not an ELF"
fi
cp "$out/l2.cpio.gz" "$l1/l2/initrd.gz"
cp "$vmx" "$l1/bin/vmx"
# vmx's shared libraries and the dynamic loader, at the paths ldd names.
ldd "$vmx" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
	mkdir -p "$l1$(dirname "$lib")"
	cp -L "$lib" "$l1$lib"
done
cat >"$l1/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
echo "KEEL-L1: init reached uptime=$(up)"
for m in $(cat /etc/modules); do
	insmod /lib/modules/$m.ko || echo "KEEL-L1: insmod $m failed"
done
if [ ! -c /dev/kvm ]; then
	echo "KEEL-L1: no /dev/kvm"
	dmesg | grep -Ei 'kvm|svm' | tail -5
	poweroff -f
fi
echo "KEEL-L1: /dev/kvm ready"
args=""
if [ -z "$KEEL_NO_NET" ]; then
	mkdir -p /dev/net
	[ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200
	if tunctl -t tap0 >/dev/null && ip addr add 198.18.0.1/24 dev tap0 && ip link set tap0 up; then
		args="$args --net tap0"
	else
		echo "KEEL-L1: cannot create tap0"
	fi
fi
if [ -z "$KEEL_NO_DISK" ]; then
	truncate -s 16M /tmp/disk.img
	printf 'KEEL-DISK-MAGIC!' | dd of=/tmp/disk.img conv=notrunc 2>/dev/null
	args="$args --disk /tmp/disk.img"
fi
echo "KEEL-L1: starting vmx$args uptime=$(up)"
timeout 240 /bin/vmx --kind linux --kernel /l2/vmlinuz --initrd /l2/initrd.gz \
	--cmdline "console=ttyS0 reboot=t panic=-1 quiet $KEEL_L2_CMDLINE" --mem 256M \
	--vcpus ${KEEL_L2_VCPUS:-1} $args
echo "KEEL-L1: vmx exited rc=$? uptime=$(up)"
if [ -f /l2/vmlinux ]; then
	echo "KEEL-L1: starting vmx with the PVH vmlinux uptime=$(up)"
	timeout 240 /bin/vmx --kind linux --kernel /l2/vmlinux --initrd /l2/initrd.gz \
		--cmdline "console=ttyS0 reboot=t panic=-1 quiet keel.pvh $KEEL_L2_CMDLINE" \
		--mem 256M --vcpus ${KEEL_L2_VCPUS:-1}
	echo "KEEL-L1: PVH vmx exited rc=$? uptime=$(up)"
fi
if [ -z "$KEEL_NO_DISK" ]; then
	w=$(dd if=/tmp/disk.img bs=512 skip=1 count=1 2>/dev/null | head -c 18)
	echo "KEEL-L1: disk sector 1 after the guest: $w"
fi
poweroff -f
INIT
chmod +x "$l1/init"
# Variables for the L1 /init come from the kernel command line (KEY=value is passed to
# init's environment).
pack "$l1" "$out/l1.cpio.gz"
echo "$out"
