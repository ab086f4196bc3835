"""The one CPU stream body (kernels/cpu/stream.py) against the slow reference (tests/naive.py).

Every fill writes buf[o0 + o] = f(value v0 + o) for o < n, whatever v0 and n: ranges that start and end
inside Philox blocks, that span several vectorised groups (SUPER blocks) with a partial last group, empty
ranges, and values past 2**32 (high counter word).  Nothing outside [o0, o0 + n) is touched.
"""
from __future__ import annotations

import numpy as np
import pytest

import naive
from rinit_fast.kernels.cpu import stream as st

RNG = np.random.default_rng(20261204)
SUPER = st.SUPER
# (v0, n): heads and tails of every phase, groups and partial groups, a range past 2**32 values
RANGES = [(0, 0), (0, 1), (1, 1), (3, 2), (2, 7), (5, 4 * SUPER), (6, 4 * SUPER + 3), (0, 8 * SUPER + 5),
          (7, 1), (1, 3 * 4 * SUPER + 1), (int(RNG.integers(0, 1 << 20)), int(RNG.integers(1, 900))),
          ((1 << 33) + 3, 77)]
KEY = (np.uint64(0x12345678), np.uint64(0x9ABCDEF0))
C2, C3 = np.uint64(11), np.uint64((5 << 24) | 3)
SEED = int(KEY[0]) | (int(KEY[1]) << 32)


def _blocks(b0, nb):
    """Words of blocks b0 .. b0+nb-1 of the test stream, by the naive block function."""
    b = np.arange(b0, b0 + nb, dtype=np.uint64)
    w = naive.philox4x32_10(b & naive.M32, b >> np.uint64(32), C2, C3, *KEY)
    return np.stack(w, axis=1)


def reference(kind, dtype, v0, n):
    """Values v0 .. v0+n-1 of one stream, from the naive block function and transforms."""
    per = 4 if np.dtype(dtype) == np.float32 else 2
    w = _blocks(v0 // per, (v0 % per + n + per - 1) // per)
    if np.dtype(dtype) == np.float32:
        if kind == "uniform":
            v = np.stack([naive.uniform_f32(w[:, j]) for j in range(4)], axis=1)
        else:
            z0, z1 = naive.box_muller_f32(w[:, 0], w[:, 1])
            z2, z3 = naive.box_muller_f32(w[:, 2], w[:, 3])
            v = np.stack([z0, z1, z2, z3], axis=1)
    else:
        if kind == "uniform":
            v = np.stack([naive.uniform_f64(w[:, 0], w[:, 1]), naive.uniform_f64(w[:, 2], w[:, 3])], axis=1)
        else:
            v = np.stack(naive.box_muller_f64(w[:, 0], w[:, 1], w[:, 2], w[:, 3]), axis=1)
    return v.reshape(-1)[v0 % per: v0 % per + n].astype(dtype)


def _run(kind, dtype, v0, n, o0=5, pad=3):
    dt = np.dtype(dtype).type
    buf = np.full(o0 + n + pad, np.nan, dtype)
    if kind == "normal":
        st.fill_normal_f32(buf, o0, v0, n, C2, C3, *KEY, dt(1.0)) if dt is np.float32 else \
            st.fill_normal_f64(buf, o0, v0, n, C2, C3, *KEY, dt(1.0))
    else:
        f = st.fill_uniform_f32 if dt is np.float32 else st.fill_uniform_f64
        f(buf, o0, v0, n, C2, C3, *KEY, dt(1.0), dt(0.0), dt(1.0))
    assert np.isnan(buf[:o0]).all() and np.isnan(buf[o0 + n:]).all(), "wrote outside [o0, o0 + n)"
    return buf[o0:o0 + n]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "uniform"])
@pytest.mark.parametrize("v0,n", RANGES)
def test_fill_equals_reference(kind, dtype, v0, n):
    got = _run(kind, dtype, v0, n)
    np.testing.assert_array_equal(got, reference(kind, dtype, v0, n))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_ranges_give_the_same_bits(dtype):
    """Filling [v0, v0 + n) in arbitrary pieces gives exactly the one-piece result."""
    v0, n = 3, 6 * SUPER + 11
    whole = _run("normal", dtype, v0, n)
    cuts = np.sort(RNG.choice(np.arange(1, n), size=7, replace=False))
    parts = [_run("normal", dtype, v0 + a, b - a) for a, b in zip(np.r_[0, cuts], np.r_[cuts, n])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_mul_add(dtype):
    dt = np.dtype(dtype).type
    v0, n = 2, 3 * SUPER + 1
    buf = np.empty(n, dtype)
    f = st.fill_uniform_f32 if dt is np.float32 else st.fill_uniform_f64
    f(buf, 0, v0, n, C2, C3, *KEY, dt(2.0), dt(-1.0), dt(0.25))
    u = reference("uniform", dtype, v0, n)
    np.testing.assert_array_equal(buf, (u * dt(2.0) + dt(-1.0)) * dt(0.25))
    g = st.fill_normal_f32 if dt is np.float32 else st.fill_normal_f64
    g(buf, 0, v0, n, C2, C3, *KEY, dt(0.7))
    np.testing.assert_array_equal(buf, reference("normal", dtype, v0, n) * dt(0.7))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_truncated_equals_reference(dtype):
    """fill_truncated (fill + redraw) is the redraw rule of docs/rng.md (naive.truncated), at a bound low
    enough that many values need several attempts."""
    dt = np.dtype(dtype).type
    n = 4 * SUPER + 9
    buf = np.empty(n, dtype)
    c2, c3 = np.uint64(7), np.uint64(0)
    f = st.fill_truncated_f32 if dt is np.float32 else st.fill_truncated_f64
    f(buf, 0, 0, n, c2, c3, *KEY, dt(0.5), dt(3.0))
    want = naive.truncated(3.0, 1, n, SEED, 7, dtype, bound=0.5).reshape(-1)
    np.testing.assert_array_equal(buf, want)
    assert np.all(np.abs(buf) <= dt(1.5))
