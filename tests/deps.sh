#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need.
# Idempotent: when all are present it does nothing and never touches apt.
set -euo pipefail

pkgs=(
	build-essential pkg-config make gcc binutils
	libcmocka-dev                         # unit tests
	libprotobuf-c-dev protobuf-c-compiler # proto/ -> build/gen
	libuv1-dev                            # daemons' event loops
	libraft-dev                           # clusterd's replicated state
	libssl-dev                            # TLS, certificates
	libnghttp2-dev                        # hostd: HTTP/2 framing
	libcurl4-openssl-dev                  # libkeel: the API client (HTTP/2 over TLS)
	protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf # API interop tests
	nghttp2-server nghttp2-client         # nghttpd and h2load: the API benchmark's anchor and driver
	qemu-system-x86 qemu-utils            # nested Linux test, QEMU anchor in benchmarks
	busybox-static cpio xz-utils gzip     # guest initramfs images
	kmod                                  # modules tooling for the nested image
	iproute2                              # taps and bridges for the network tests
	rsyslog rsyslog-openssl openssl       # remote syslog test: rsyslogd's UDP/TCP/TLS receiver, a test CA
	chrony                                # NTP: vmntpd's chronyd and chronyc, the host_ntp test's servers
	libsnmp-dev snmpd snmp snmptrapd      # keel-snmpd (AgentX subagent) and its test: snmpget/walk, traps
	libseccomp-dev strace                 # user worlds' seccomp filters (kernel/world)
	python3 file procps util-linux
	clang-format
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The guest images: Debian's stock kernel package, downloaded and unpacked (never
# installed) into the build cache for the Linux guest tests. Cached after the first time.
cd "$(dirname "$0")/.."
if ! tests/guest-images/fetch-kernel.sh >/dev/null; then
	apt-get update -qq
	tests/guest-images/fetch-kernel.sh >/dev/null
fi
