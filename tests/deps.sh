#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need.
# Idempotent: when all are present it does nothing and never touches apt.
set -euo pipefail

pkgs=(
	build-essential pkg-config make gcc binutils
	libcmocka-dev                         # unit tests
	libprotobuf-c-dev protobuf-c-compiler # proto/ -> build/gen
	qemu-system-x86 qemu-utils            # nested Linux test, QEMU anchor in benchmarks
	busybox-static cpio xz-utils gzip     # guest initramfs images
	kmod                                  # modules tooling for the nested image
	iproute2                              # taps and bridges for the network tests
	python3 file procps util-linux
	clang-format
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
