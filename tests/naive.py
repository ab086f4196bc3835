"""Slow, obviously-right references for the random stream and the sampling kernels.

The stream is re-implemented here in plain NumPy: Philox4x32-10 on uint64 arrays and the word → float
mappings in NumPy float32/float64 arithmetic, one IEEE operation per line in the order docs/rng.md
gives (NumPy never fuses a multiply and an add).  Equality with the Numba kernels, bit for bit, is
what shows that the kernels compute exactly the documented mapping.
"""
from __future__ import annotations

import numpy as np

M32 = np.uint64(0xFFFFFFFF)
F32 = np.float32


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    c = [np.asarray(x, dtype=np.uint64) for x in (c0, c1, c2, c3)]
    k0 = np.asarray(k0, dtype=np.uint64).copy()
    k1 = np.asarray(k1, dtype=np.uint64).copy()
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(0x9E3779B9)) & M32
            k1 = (k1 + np.uint64(0xBB67AE85)) & M32
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & M32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & M32]
    return c


def blocks(seed, c2, c3, nblocks):
    """Words of blocks 0..nblocks-1 of stream (seed, c2, c3): array (nblocks, 4) uint64."""
    b = np.arange(nblocks, dtype=np.uint64)
    k0 = np.uint64(seed & 0xFFFFFFFF)
    k1 = np.uint64(seed >> 32)
    w = philox4x32_10(b & M32, b >> np.uint64(32), np.uint64(c2), np.uint64(c3), k0, k1)
    return np.stack(w, axis=1)


# --- float32 ------------------------------------------------------------------------------------
def uniform_f32(w):
    return (w >> np.uint64(8)).astype(np.int32).astype(F32) * F32(2.0 ** -24)


LOGF_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1]


def log_f32(u):
    u = np.asarray(u, dtype=F32)
    bits = u.view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int32) - np.int32(127)
    m = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(F32)
    big = m >= F32(1.41421356237309504880)
    m = np.where(big, m * F32(0.5), m)
    e = np.where(big, e + np.int32(1), e)
    x = m - F32(1.0)
    fe = e.astype(F32)
    z = x * x
    y = F32(LOGF_P[0]) * x + F32(LOGF_P[1])
    for c in LOGF_P[2:]:
        y = y * x + F32(c)
    y = y * x * z
    y = y + F32(-2.12194440e-4) * fe
    y = y + F32(-0.5) * z
    r = x + y
    return r + F32(0.693359375) * fe


def sincos_2pi_f32(k24):
    k24 = np.asarray(k24, dtype=np.uint64)
    octant = k24 >> np.uint64(21)
    frac = k24 & np.uint64(0x1FFFFF)
    frac = np.where(octant & np.uint64(1), np.uint64(0x200000) - frac, frac)
    x = (frac.astype(np.int32).astype(F32) * F32(2.0 ** -21)) * F32(0.785398163397448309616)
    z = x * x
    s = F32(-1.9515295891e-4) * z + F32(8.3321608736e-3)
    s = s * z + F32(-1.6666654611e-1)
    s = s * z * x + x
    c = F32(2.443315711809948e-5) * z + F32(-1.388731625493765e-3)
    c = c * z + F32(4.166664568298827e-2)
    c = c * z * z - F32(0.5) * z + F32(1.0)
    swap = ((octant + np.uint64(1)) >> np.uint64(1)) & np.uint64(1)
    s, c = np.where(swap, c, s), np.where(swap, s, c)
    s = np.where((octant >> np.uint64(2)) & np.uint64(1), -s, s)
    c = np.where(((octant + np.uint64(2)) >> np.uint64(2)) & np.uint64(1), -c, c)
    return s, c


def box_muller_f32(wa, wb):
    u = ((wa >> np.uint64(8)) + np.uint64(1)).astype(np.int32).astype(F32) * F32(2.0 ** -24)
    r = np.sqrt(F32(-2.0) * log_f32(u))
    s, c = sincos_2pi_f32(wb >> np.uint64(8))
    return r * c, r * s


# --- float64 ------------------------------------------------------------------------------------
def bits53(wa, wb):
    return ((wa >> np.uint64(5)) << np.uint64(26)) | (wb >> np.uint64(6))


def uniform_f64(wa, wb):
    return bits53(wa, wb).astype(np.int64).astype(np.float64) * 2.0 ** -53


LG = [6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
      2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
      1.479819860511658591e-01]


def log_f64(u):
    u = np.asarray(u, dtype=np.float64)
    bits = u.view(np.uint64)
    e = (bits >> np.uint64(52)).astype(np.int64) - 1023
    m = ((bits & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    big = m >= 1.41421356237309504880
    m = np.where(big, m * 0.5, m)
    e = np.where(big, e + 1, e)
    f = m - 1.0
    k = e.astype(np.float64)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG[1] + w * (LG[3] + w * LG[5]))
    t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + r) + k * 1.90821492927058770002e-10)) - f)


S64 = [-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
       2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10]
C64 = [4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
       -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11]


def sincos_2pi_f64(k53):
    k53 = np.asarray(k53, dtype=np.uint64)
    octant = k53 >> np.uint64(50)
    frac = k53 & np.uint64(0x3FFFFFFFFFFFF)
    frac = np.where(octant & np.uint64(1), np.uint64(0x4000000000000) - frac, frac)
    x = (frac.astype(np.int64).astype(np.float64) * 2.0 ** -50) * 0.785398163397448309616
    z = x * x
    v = z * x
    rs = S64[1] + z * (S64[2] + z * (S64[3] + z * (S64[4] + z * S64[5])))
    s = x + v * (S64[0] + z * rs)
    rc = z * (C64[0] + z * (C64[1] + z * (C64[2] + z * (C64[3] + z * (C64[4] + z * C64[5])))))
    c = 1.0 - (0.5 * z - z * rc)
    swap = ((octant + np.uint64(1)) >> np.uint64(1)) & np.uint64(1)
    s, c = np.where(swap, c, s), np.where(swap, s, c)
    s = np.where((octant >> np.uint64(2)) & np.uint64(1), -s, s)
    c = np.where(((octant + np.uint64(2)) >> np.uint64(2)) & np.uint64(1), -c, c)
    return s, c


def box_muller_f64(w0, w1, w2, w3):
    u = (bits53(w0, w1) + np.uint64(1)).astype(np.int64).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2.0 * log_f64(u))
    s, c = sincos_2pi_f64(bits53(w2, w3))
    return r * c, r * s


# --- streams ------------------------------------------------------------------------------------
def stream(seed, c2, c3, count, kind, dtype):
    """Values 0..count-1 of one stream: kind "uniform" or "normal", dtype float32 or float64."""
    dtype = np.dtype(dtype)
    per = 4 if dtype == np.float32 else 2
    w = blocks(seed, c2, c3, (count + per - 1) // per)
    if dtype == np.float32:
        if kind == "uniform":
            v = np.stack([uniform_f32(w[:, j]) for j in range(4)], axis=1)
        else:
            z0, z1 = box_muller_f32(w[:, 0], w[:, 1])
            z2, z3 = box_muller_f32(w[:, 2], w[:, 3])
            v = np.stack([z0, z1, z2, z3], axis=1)
    else:
        if kind == "uniform":
            v = np.stack([uniform_f64(w[:, 0], w[:, 1]), uniform_f64(w[:, 2], w[:, 3])], axis=1)
        else:
            v = np.stack(box_muller_f64(w[:, 0], w[:, 1], w[:, 2], w[:, 3]), axis=1)
    return v.reshape(-1)[:count].astype(dtype)


def c3_word(purpose, sub=0):
    return (int(purpose) << 24) | int(sub)


def sample(scheme_family, scale, fan_out, fan_in, seed, index, dtype, layer=0):
    """Reference of one sampled matrix for the families of rinit_fast.schemes (not orthogonal)."""
    dt = np.dtype(dtype).type
    n = fan_out * fan_in
    c3 = c3_word(0, layer)
    if scheme_family == "normal":
        v = stream(seed, index, c3, n, "normal", dtype) * dt(scale)
    elif scheme_family == "uniform01":
        v = (stream(seed, index, c3, n, "uniform", dtype) * dt(1.0) + dt(0.0)) * dt(scale)
    elif scheme_family == "uniform":
        v = (stream(seed, index, c3, n, "uniform", dtype) * dt(2.0) + dt(-1.0)) * dt(scale)
    elif scheme_family == "constant":
        v = np.full(n, scale, dtype)
    else:
        raise ValueError(scheme_family)
    return v.astype(dtype).reshape(fan_out, fan_in)


def truncated(scale, fan_out, fan_in, seed, index, dtype, bound=2.0):
    """Truncated normal by the redraw rule of docs/rng.md: attempt a of value i is value
    (a << 50) | i (float32) or (a << 49) | i (float64) of the same stream."""
    dt = np.dtype(dtype).type
    n = fan_out * fan_in
    z = stream(seed, index, 0, n, "normal", dtype)
    shift = 50 if np.dtype(dtype) == np.float32 else 49
    per = 4 if np.dtype(dtype) == np.float32 else 2
    for i in np.flatnonzero(np.abs(z) > dt(bound)):
        a = 0
        while abs(z[i]) > dt(bound):
            a += 1
            j = (a << shift) | int(i)
            b = j // per
            w = philox4x32_10(np.uint64(b & 0xFFFFFFFF), np.uint64(b >> 32), np.uint64(index),
                              np.uint64(0), np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32))
            w = [np.atleast_1d(x) for x in w]
            if per == 4:
                lane = j & 3
                pair = box_muller_f32(w[0], w[1]) if lane < 2 else box_muller_f32(w[2], w[3])
                z[i] = pair[lane & 1][0]
            else:
                z[i] = box_muller_f64(*w)[j & 1][0]
    return (z * dt(scale)).astype(dtype).reshape(fan_out, fan_in)
