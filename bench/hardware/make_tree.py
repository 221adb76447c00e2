#!/usr/bin/env python3
"""Writes the seeded tree the duplicate-finder benchmark scans.

Usage: make_tree.py DIR FILES TOTAL_MB SEED

Many small files (log-normal sizes) carry 40% of the bytes and a few large ones (one per 500
files) the other 60%. About 10% of the files are exact copies of an earlier file, in another
directory; about 2% are near-copies: the same size and the same first bytes as an earlier file
but a different last byte, so only a full hash (or byte comparison) tells them apart. Contents
come from a seeded pool, so the same arguments always give the same tree.
"""

import os
import random
import sys

POOL_BYTES = 32 * 1024 * 1024
DUPLICATE_SHARE = 0.10
NEAR_DUPLICATE_SHARE = 0.02
HEADER_BYTES = 24


def content(pool: bytes, index: int, size: int, offset: int) -> bytes:
    """Unique bytes of `size` for file `index`: a header naming it, then the pool from `offset`."""
    header = f"file {index:012d} {offset:08x}\n".encode()[:HEADER_BYTES]
    if size <= len(header):
        return header[:size]
    body = bytearray(header)
    while len(body) < size:
        take = min(size - len(body), POOL_BYTES - offset)
        body += pool[offset:offset + take]
        offset = 0
    return bytes(body)


def main() -> None:
    root, files, total_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    total = total_mb * 1024 * 1024
    large_count = max(1, files // 500)
    small_count = files - large_count
    small_weights = [rng.lognormvariate(0.0, 1.0) for _ in range(small_count)]
    small_scale = total * 0.4 / sum(small_weights)
    large_weights = [rng.uniform(0.5, 1.5) for _ in range(large_count)]
    large_scale = total * 0.6 / sum(large_weights)
    sizes = [max(1, int(weight * small_scale)) for weight in small_weights]
    sizes += [max(1, int(weight * large_scale)) for weight in large_weights]
    rng.shuffle(sizes)
    pool = rng.randbytes(POOL_BYTES)

    originals = []  # (size, offset, index) of files with their own content
    written_bytes = 0
    copies = near_copies = 0
    for index, size in enumerate(sizes):
        directory = os.path.join(root, f"d{index // 1000:03d}", f"s{(index // 100) % 10}")
        os.makedirs(directory, exist_ok=True)
        roll = rng.random()
        if originals and roll < DUPLICATE_SHARE:
            size, offset, source = rng.choice(originals)
            data = content(pool, source, size, offset)
            copies += 1
        elif originals and roll < DUPLICATE_SHARE + NEAR_DUPLICATE_SHARE:
            size, offset, source = rng.choice(originals)
            data = bytearray(content(pool, source, size, offset))
            data[-1] ^= 0xFF
            data = bytes(data)
            near_copies += 1
        else:
            offset = rng.randrange(POOL_BYTES)
            data = content(pool, index, size, offset)
            originals.append((size, offset, index))
        with open(os.path.join(directory, f"f{index:06d}.bin"), "wb") as output:
            output.write(data)
        written_bytes += len(data)
    print(f"wrote {files} files, {written_bytes / 1024 / 1024:.0f} MiB, {copies} copies, {near_copies} near-copies")


if __name__ == "__main__":
    main()
