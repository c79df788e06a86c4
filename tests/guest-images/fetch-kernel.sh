#!/usr/bin/env bash
# Fetches Debian's stock kernel package (the one linux-image-amd64 depends on) with
# `apt-get download` — never installing it — and unpacks it with `dpkg -x` into a cache
# directory. Idempotent: a finished unpack is reused (marked by a stamp file).
#
# Usage: tests/guest-images/fetch-kernel.sh [CACHE_DIR]
#   CACHE_DIR defaults to $BUILD/cache (BUILD defaults to build).
# Prints the path of the unpacked tree on stdout (its boot/vmlinuz-* and lib/modules/*).
# Exit status: 0 on success, 1 when the package cannot be found or downloaded.
set -euo pipefail

cache=${1:-${BUILD:-build}/cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "fetch-kernel: $*" >&2; }

# The versioned image package behind the metapackage, e.g. linux-image-6.1.0-56-amd64.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$pkg" ]; then
	log "apt-cache knows no linux-image-amd64 (run apt-get update?)"
	exit 1
fi
dest=$cache/$pkg
if [ -f "$dest/.unpacked" ]; then
	echo "$dest"
	exit 0
fi

tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "downloading $pkg"
# apt-get download writes into the current directory and, as root, hands the download to
# the _apt user, which needs write access there.
chmod 0777 "$tmp"
if ! (cd "$tmp" && apt-get download -q "$pkg" >&2); then
	log "apt-get download $pkg failed"
	exit 1
fi
deb=$(ls "$tmp"/*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { log "no .deb downloaded"; exit 1; }
rm -rf "$dest"
mkdir -p "$tmp/x"
dpkg -x "$deb" "$tmp/x"
ls "$tmp"/x/boot/vmlinuz-* >/dev/null 2>&1 || { log "$deb holds no boot/vmlinuz-*"; exit 1; }
mv "$tmp/x" "$dest"
touch "$dest/.unpacked"
log "unpacked into $dest"
echo "$dest"
