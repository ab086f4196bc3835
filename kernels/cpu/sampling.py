"""Sampling kernels: fill an (index, sub, values) array from the stream.

Row ``out[a, s]`` holds values 0, 1, ... of the stream with counter words c2 = ``c2_start + a``
(the matrix, network or other index) and c3 = ``c3_base + s`` (purpose and sub-index), see
docs/rng.md.  A batch of weight matrices is ``out`` of shape (batch, 1, fan_out * fan_in), value
``i`` being entry ``(i // fan_in, i % fan_in)``.  The value → (block, lane) mapping
is fixed by docs/rng.md and does not depend on the batch, the chunking or the thread count: each
thread handles whole chunks of blocks and every block is a pure function of its counter.
"""
from __future__ import annotations

import numpy as np
from numba import prange, types

from ._jit import kernel
from .philox import (M32, box_muller_f32, box_muller_f64, philox4x32_10, uniform_f32,
                     uniform_f64, normal_at_f32, normal_at_f64)

CHUNK = 2048  # Philox blocks per parallel work item (8192 float32 values)

_u64 = types.uint64


def _sig(arr, scal, nscal):
    return types.void(arr, _u64, _u64, _u64, _u64, *([scal] * nscal))


@kernel(_sig(types.float32[:, :, ::1], types.float32, 1), parallel=True)
def normal_f32(out, k0, k1, c2_start, c3_base, std):
    """out[m, s, i] = std * value i of the normal stream (c2_start + m, c3_base + s) (float32 mapping: 4 values per block)."""
    nmat, nsub, nval = out.shape
    nfull = np.uint64(nval) >> np.uint64(2)
    nch = (nval // 4 + (nval % 4 > 0) + CHUNK - 1) // CHUNK
    for t in prange(nmat * nsub * nch):
        ms = t // nch
        ch = t - ms * nch
        m = ms // nsub
        sub = ms - m * nsub
        c2 = np.uint64(c2_start + np.uint64(m)) & M32
        c3 = np.uint64(c3_base + np.uint64(sub)) & M32
        row = out[m, sub]
        b0 = np.uint64(ch) * np.uint64(CHUNK)
        b1 = min(b0 + np.uint64(CHUNK), nfull)
        for b in range(b0, b1):
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            z0, z1 = box_muller_f32(x0, x1)
            z2, z3 = box_muller_f32(x2, x3)
            j = b << np.uint64(2)
            row[j] = z0 * std
            row[j + np.uint64(1)] = z1 * std
            row[j + np.uint64(2)] = z2 * std
            row[j + np.uint64(3)] = z3 * std
        if ch == nch - 1:
            for i in range(nfull << np.uint64(2), np.uint64(nval)):
                row[i] = normal_at_f32(i, c2, c3, k0, k1) * std


@kernel(_sig(types.float64[:, :, ::1], types.float64, 1), parallel=True)
def normal_f64(out, k0, k1, c2_start, c3_base, std):
    """out[m, s, i] = std * value i of the normal stream (c2_start + m, c3_base + s) (float64 mapping: 2 values per block)."""
    nmat, nsub, nval = out.shape
    nfull = np.uint64(nval) >> np.uint64(1)
    nch = (nval // 2 + (nval % 2) + CHUNK - 1) // CHUNK
    for t in prange(nmat * nsub * nch):
        ms = t // nch
        ch = t - ms * nch
        m = ms // nsub
        sub = ms - m * nsub
        c2 = np.uint64(c2_start + np.uint64(m)) & M32
        c3 = np.uint64(c3_base + np.uint64(sub)) & M32
        row = out[m, sub]
        b0 = np.uint64(ch) * np.uint64(CHUNK)
        b1 = min(b0 + np.uint64(CHUNK), nfull)
        for b in range(b0, b1):
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            z0, z1 = box_muller_f64(x0, x1, x2, x3)
            j = b << np.uint64(1)
            row[j] = z0 * std
            row[j + np.uint64(1)] = z1 * std
        if ch == nch - 1 and (nval & 1):
            i = np.uint64(nval - 1)
            row[i] = normal_at_f64(i, c2, c3, k0, k1) * std


@kernel(_sig(types.float32[:, :, ::1], types.float32, 3), parallel=True)
def uniform_f32_fill(out, k0, k1, c2_start, c3_base, mul, add, scale):
    """out[m, s, i] = (u * mul + add) * scale, u the float32 uniform value i (4 per block)."""
    nmat, nsub, nval = out.shape
    nfull = np.uint64(nval) >> np.uint64(2)
    nch = (nval // 4 + (nval % 4 > 0) + CHUNK - 1) // CHUNK
    for t in prange(nmat * nsub * nch):
        ms = t // nch
        ch = t - ms * nch
        m = ms // nsub
        sub = ms - m * nsub
        c2 = np.uint64(c2_start + np.uint64(m)) & M32
        c3 = np.uint64(c3_base + np.uint64(sub)) & M32
        row = out[m, sub]
        b0 = np.uint64(ch) * np.uint64(CHUNK)
        b1 = min(b0 + np.uint64(CHUNK), nfull)
        for b in range(b0, b1):
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            j = b << np.uint64(2)
            row[j] = (uniform_f32(x0) * mul + add) * scale
            row[j + np.uint64(1)] = (uniform_f32(x1) * mul + add) * scale
            row[j + np.uint64(2)] = (uniform_f32(x2) * mul + add) * scale
            row[j + np.uint64(3)] = (uniform_f32(x3) * mul + add) * scale
        if ch == nch - 1 and (nval & 3):
            b = nfull
            x = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            j = b << np.uint64(2)
            for lane in range(nval & 3):
                row[j + np.uint64(lane)] = (uniform_f32(x[lane]) * mul + add) * scale


@kernel(_sig(types.float64[:, :, ::1], types.float64, 3), parallel=True)
def uniform_f64_fill(out, k0, k1, c2_start, c3_base, mul, add, scale):
    """out[m, s, i] = (u * mul + add) * scale, u the float64 uniform value i (2 per block)."""
    nmat, nsub, nval = out.shape
    nfull = np.uint64(nval) >> np.uint64(1)
    nch = (nval // 2 + (nval % 2) + CHUNK - 1) // CHUNK
    for t in prange(nmat * nsub * nch):
        ms = t // nch
        ch = t - ms * nch
        m = ms // nsub
        sub = ms - m * nsub
        c2 = np.uint64(c2_start + np.uint64(m)) & M32
        c3 = np.uint64(c3_base + np.uint64(sub)) & M32
        row = out[m, sub]
        b0 = np.uint64(ch) * np.uint64(CHUNK)
        b1 = min(b0 + np.uint64(CHUNK), nfull)
        for b in range(b0, b1):
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            j = b << np.uint64(1)
            row[j] = (uniform_f64(x0, x1) * mul + add) * scale
            row[j + np.uint64(1)] = (uniform_f64(x2, x3) * mul + add) * scale
        if ch == nch - 1 and (nval & 1):
            b = nfull
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            row[b << np.uint64(1)] = (uniform_f64(x0, x1) * mul + add) * scale


# Truncated normal: value i keeps its normal when |z| <= 2; otherwise attempt a = 1, 2, ... redraws
# value i of the same matrix at block position (a << 48) | block.  See docs/rng.md.
ATTEMPT_SHIFT = np.uint64(48)
MAX_ATTEMPTS = 1 << 14  # attempts < 2**14 keep (a << 50) | i inside 64 bits: no counter ever repeats


@kernel(types.void(types.float32[:, :, ::1], _u64, _u64, _u64, _u64, types.float32, types.float32),
        parallel=True)
def truncate_f32(out, k0, k1, c2_start, c3_base, bound, std):
    """Given out = N(0,1) draws (normal_f32 with std 1), redraw |z| > bound, then scale by std."""
    nmat, nsub, nval = out.shape
    for ms in prange(nmat * nsub):
        m = ms // nsub
        sub = ms - m * nsub
        c2 = np.uint64(c2_start + np.uint64(m)) & M32
        c3 = np.uint64(c3_base + np.uint64(sub)) & M32
        row = out[m, sub]
        for i in range(np.uint64(nval)):
            z = row[i]
            a = np.uint64(0)
            while abs(z) > bound and a < np.uint64(MAX_ATTEMPTS):
                a += np.uint64(1)
                z = normal_at_f32((a << (ATTEMPT_SHIFT + np.uint64(2))) | i, c2, c3, k0, k1)
            row[i] = z * std


@kernel(types.void(types.float64[:, :, ::1], _u64, _u64, _u64, _u64, types.float64, types.float64),
        parallel=True)
def truncate_f64(out, k0, k1, c2_start, c3_base, bound, std):
    """float64 twin of truncate_f32."""
    nmat, nsub, nval = out.shape
    for ms in prange(nmat * nsub):
        m = ms // nsub
        sub = ms - m * nsub
        c2 = np.uint64(c2_start + np.uint64(m)) & M32
        c3 = np.uint64(c3_base + np.uint64(sub)) & M32
        row = out[m, sub]
        for i in range(np.uint64(nval)):
            z = row[i]
            a = np.uint64(0)
            while abs(z) > bound and a < np.uint64(MAX_ATTEMPTS):
                a += np.uint64(1)
                z = normal_at_f64((a << (ATTEMPT_SHIFT + np.uint64(1))) | i, c2, c3, k0, k1)
            row[i] = z * std


@kernel(types.void(types.float64[:, :, ::1], types.float64[:, :, ::1]), parallel=True)
def qr_haar(g, q):
    """q[m] = Q of the QR of g[m] (rows >= cols), columns multiplied by sign(diag R): Haar measure
    (Mezzadri 2007).  One LAPACK QR per matrix, matrices spread over the threads."""
    for m in prange(g.shape[0]):
        qm, rm = np.linalg.qr(g[m])
        for j in range(qm.shape[1]):
            if rm[j, j] < 0.0:
                for i in range(qm.shape[0]):
                    q[m, i, j] = -qm[i, j]
            else:
                for i in range(qm.shape[0]):
                    q[m, i, j] = qm[i, j]
