#!/usr/bin/env python3
"""Checks a kguest disk-sequence image from the host side (format: kernel/guest/diskseq.c,
docs/kguest.md): the header's checksum, and that records 1..last (those still in their
slots) are each intact and numbered in order, and that their run numbers never go down
(two writers interleaving — two instances of one VM — would make them alternate). Prints
"last=N runs=R"; exits 1 on any corruption."""
import struct
import sys

MASK = (1 << 64) - 1


def fnv(words):
    h = 0xcbf29ce484222325
    for w in words:  # FNV-1a over whole 64-bit words, as kguest computes it
        h ^= w
        h = (h * 0x100000001b3) & MASK
    return h


def main(path):
    with open(path, "rb") as f:
        data = f.read()
    hdr = struct.unpack_from("<QIIQQQ", data, 0)
    words = struct.unpack_from("<64Q", data, 0)
    if words[0] != 0x314851455344474b:
        sys.exit("bad header magic")
    if fnv(words[:63]) != words[63]:
        sys.exit("header checksum mismatch")
    _, _, _, last, slots, runs = hdr
    first = max(1, last - slots + 1)
    prev_run = 0
    for n in range(first, last + 1):
        off = 512 * (1 + (n - 1) % slots)
        w = struct.unpack_from("<64Q", data, off)
        if w[0] != 0x315251455344474b or w[1] != n:
            sys.exit(f"record {n}: magic/number wrong ({w[0]:#x}, {w[1]})")
        if fnv(w[:63]) != w[63]:
            sys.exit(f"record {n}: checksum mismatch")
        for i in range(60):
            if w[3 + i] != ((n * 0x9e3779b97f4a7c15) & MASK) ^ i:
                sys.exit(f"record {n}: fill word {i} wrong")
        if w[2] < prev_run:
            sys.exit(f"record {n}: run {w[2]} after run {prev_run}: two writers interleaved")
        if w[2] > runs:
            sys.exit(f"record {n}: run {w[2]} above the header's {runs} runs")
        prev_run = w[2]
    print(f"last={last} runs={runs}")


if __name__ == "__main__":
    main(sys.argv[1])
