"""Write the raw 32-bit words of the random stream to stdout, for outside test batteries.

    python bench/stream_words.py | dieharder -a -g 200

The words cycle through several seeds, purposes and matrix indices in chunks of CHUNK_BLOCKS Philox
blocks (4 words each), so the output crosses stream boundaries every 64 Ki words: a correlation between
neighbouring matrices, seeds or purposes would show up as a defect.  Chunk c uses
seed SEEDS[c % 3], purpose PURPOSES[(c // 3) % 3], matrix index c // 9 and, from the block position
(c % 7) * 2**20, so block positions far from zero are covered too.  Runs until stdout closes.
"""
from __future__ import annotations

import sys

import numpy as np

import rinit_fast as rf
from rinit_fast.rng import Purpose

SEEDS = (0, 1, 0xDEADBEEFCAFEF00D)
PURPOSES = (Purpose.WEIGHTS, Purpose.INPUTS, Purpose.START)
CHUNK_BLOCKS = 1 << 14


def chunk_words(c):
    seed = SEEDS[c % 3]
    purpose = PURPOSES[(c // 3) % 3]
    index = c // 9
    first = (c % 7) << 20
    b = np.arange(first, first + CHUNK_BLOCKS, dtype=np.uint64)
    ctr = np.empty((CHUNK_BLOCKS, 4), np.uint32)
    ctr[:, 0] = (b & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    ctr[:, 1] = (b >> np.uint64(32)).astype(np.uint32)
    ctr[:, 2] = index
    ctr[:, 3] = int(rf.rng.counter_word3(purpose, 0))
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32)
    return rf.rng.philox4x32(ctr, key)


def main():
    out = sys.stdout.buffer
    c = 0
    try:
        while True:
            out.write(chunk_words(c).tobytes())
            c += 1
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
