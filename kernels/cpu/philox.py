"""Philox4x32-10 and the word → float mappings of the random stream, as Numba device functions.

This module is the CPU half of the stream contract written down in docs/rng.md; the CUDA half is
kernels/cuda/philox.cuh.  Both perform the same IEEE operations in the same order (no FMA
contraction, no library transcendental), so every uniform and normal is bit-identical on both.

All 32-bit words are carried in uint64 variables (values < 2**32): Numba then multiplies two of them
into the full 64-bit product in one instruction, which LLVM vectorises (``vpmuludq``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from rinit_fast.spec import stream as S

from ._jit import device, kernel

M32 = np.uint64(0xFFFFFFFF)
PHILOX_M0 = np.uint64(S.PHILOX_M0)
PHILOX_M1 = np.uint64(S.PHILOX_M1)
PHILOX_W0 = np.uint64(S.PHILOX_W0)
PHILOX_W1 = np.uint64(S.PHILOX_W1)


# --- bit casts (no scalar .view in Numba; these are one LLVM instruction each) -------------------
def _bitcast(src_cls, width, dst):
    """Reinterpret the bits of a scalar; an integer source is first truncated to ``width`` bits
    (Numba widens uint32 arithmetic to 64 bits)."""
    @intrinsic
    def cast(typingctx, x):
        if isinstance(x, src_cls) and (x.bitwidth == width or src_cls is types.Integer):
            def codegen(context, builder, signature, args):
                v = args[0]
                if isinstance(x, types.Integer) and x.bitwidth > width:
                    v = builder.trunc(v, ir.IntType(width))
                return builder.bitcast(v, context.get_value_type(dst))
            return dst(x), codegen
        return None
    return cast


f32_as_u32 = _bitcast(types.Float, 32, types.uint32)
u32_as_f32 = _bitcast(types.Integer, 32, types.float32)
f64_as_u64 = _bitcast(types.Float, 64, types.uint64)
u64_as_f64 = _bitcast(types.Integer, 64, types.float64)


# --- Philox4x32-10 -------------------------------------------------------------------------------
_S32 = np.uint64(32)


@device
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """One Philox4x32-10 block (Random123).  All arguments and results are uint64 < 2**32.

    Each round multiplies (c0, c2) by (M0, M1) into 64-bit products and mixes their halves with c1, c3
    and the round key.  The ten rounds are written out, in this one function: a counted loop would stay
    the innermost loop and keep LLVM from vectorising the caller's loop over blocks, and a helper per
    round would be inlined ten times at Numba IR level on every compile (measured: most of the compile
    time of the stream body went to those IR copies; bench/NOTES.md "Stream body").
    """
    k0b = (k0 + PHILOX_W0) & M32
    k1b = (k1 + PHILOX_W1) & M32
    k0c = (k0 + np.uint64(0x3C6EF372)) & M32   # k + 2*W, 3*W, ... (mod 2**32)
    k1c = (k1 + np.uint64(0x76CF5D0A)) & M32
    k0d = (k0 + np.uint64(0xDAA66D2B)) & M32
    k1d = (k1 + np.uint64(0x32370B8F)) & M32
    k0e = (k0 + np.uint64(0x78DDE6E4)) & M32
    k1e = (k1 + np.uint64(0xED9EBA14)) & M32
    k0f = (k0 + np.uint64(0x1715609D)) & M32
    k1f = (k1 + np.uint64(0xA9066899)) & M32
    k0g = (k0 + np.uint64(0xB54CDA56)) & M32
    k1g = (k1 + np.uint64(0x646E171E)) & M32
    k0h = (k0 + np.uint64(0x5384540F)) & M32
    k1h = (k1 + np.uint64(0x1FD5C5A3)) & M32
    k0i = (k0 + np.uint64(0xF1BBCDC8)) & M32
    k1i = (k1 + np.uint64(0xDB3D7428)) & M32
    k0j = (k0 + np.uint64(0x8FF34781)) & M32
    k1j = (k1 + np.uint64(0x96A522AD)) & M32
    p0 = PHILOX_M0 * c0                                   # round 1
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & M32, (p0 >> _S32) ^ c3 ^ k1, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 2
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0b, p1 & M32, (p0 >> _S32) ^ c3 ^ k1b, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 3
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0c, p1 & M32, (p0 >> _S32) ^ c3 ^ k1c, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 4
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0d, p1 & M32, (p0 >> _S32) ^ c3 ^ k1d, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 5
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0e, p1 & M32, (p0 >> _S32) ^ c3 ^ k1e, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 6
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0f, p1 & M32, (p0 >> _S32) ^ c3 ^ k1f, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 7
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0g, p1 & M32, (p0 >> _S32) ^ c3 ^ k1g, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 8
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0h, p1 & M32, (p0 >> _S32) ^ c3 ^ k1h, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 9
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0i, p1 & M32, (p0 >> _S32) ^ c3 ^ k1i, p0 & M32
    p0 = PHILOX_M0 * c0                                   # round 10
    p1 = PHILOX_M1 * c2
    c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0j, p1 & M32, (p0 >> _S32) ^ c3 ^ k1j, p0 & M32
    return c0, c1, c2, c3


@kernel(types.void(types.uint32[:, ::1], types.uint32[:, ::1], types.uint32[:, ::1]))
def philox4x32_blocks(ctr, key, out):
    """Vectorised block function: ``out[i] = philox4x32_10(ctr[i], key[i])`` (rows of 4 and 2 words)."""
    for i in range(ctr.shape[0]):
        r0, r1, r2, r3 = philox4x32_10(
            np.uint64(ctr[i, 0]), np.uint64(ctr[i, 1]), np.uint64(ctr[i, 2]), np.uint64(ctr[i, 3]),
            np.uint64(key[i, 0]), np.uint64(key[i, 1]))
        out[i, 0] = np.uint32(r0)
        out[i, 1] = np.uint32(r1)
        out[i, 2] = np.uint32(r2)
        out[i, 3] = np.uint32(r3)


# --- uniforms ------------------------------------------------------------------------------------
F32_2M24 = np.float32(2.0 ** -24)
F32_2M21 = np.float32(2.0 ** -21)
F64_2M53 = np.float64(2.0 ** -53)
F64_2M50 = np.float64(2.0 ** -50)


@device
def uniform_f32(w):
    """Word → float32 in [0, 1): the top 24 bits, times 2**-24 (exact)."""
    return np.float32(np.int32(w >> np.uint64(8))) * F32_2M24


@device
def bits53(wa, wb):
    """Two words → a 53-bit integer: top 27 bits of ``wa``, then top 26 bits of ``wb``."""
    return ((wa >> np.uint64(5)) << np.uint64(26)) | (wb >> np.uint64(6))


@device
def uniform_f64(wa, wb):
    """Two words → float64 in [0, 1): 53 bits times 2**-53 (exact)."""
    return np.float64(np.int64(bits53(wa, wb))) * F64_2M53


# --- float32 log, sin, cos: +, -, *, / and bit operations only ------------------------------------
LOGF_P = tuple(np.float32(c) for c in S.LOGF_P)
F32_SQRT2 = np.float32(S.F32_SQRT2)
F32_LN2_HI = np.float32(S.F32_LN2_HI)
F32_LN2_LO = np.float32(S.F32_LN2_LO)
F32_PI_4 = np.float32(S.F32_PI_4)
SINF_P = tuple(np.float32(c) for c in S.SINF_P)
COSF_P = tuple(np.float32(c) for c in S.COSF_P)


@device
def log_f32(u):
    """Natural log of a positive normal float32 (Cephes ``logf`` polynomial, about 1 ulp)."""
    bits = f32_as_u32(u)
    e = np.int32(bits >> np.uint32(23)) - np.int32(127)
    m = u32_as_f32((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000))  # m in [1, 2)
    if m >= F32_SQRT2:
        m = m * np.float32(0.5)
        e = e + np.int32(1)
    x = m - np.float32(1.0)                                                   # exact (Sterbenz)
    fe = np.float32(e)
    z = x * x
    y = LOGF_P[0] * x + LOGF_P[1]
    y = y * x + LOGF_P[2]
    y = y * x + LOGF_P[3]
    y = y * x + LOGF_P[4]
    y = y * x + LOGF_P[5]
    y = y * x + LOGF_P[6]
    y = y * x + LOGF_P[7]
    y = y * x + LOGF_P[8]
    y = y * x * z
    y = y + F32_LN2_LO * fe
    y = y + np.float32(-0.5) * z
    r = x + y
    return r + F32_LN2_HI * fe


@device
def sincos_f32_reduced(x):
    """sin(x), cos(x) for x in [0, pi/4] (Cephes ``sinf``/``cosf`` polynomials)."""
    z = x * x
    s = SINF_P[0] * z + SINF_P[1]
    s = s * z + SINF_P[2]
    s = s * z * x + x
    c = COSF_P[0] * z + COSF_P[1]
    c = c * z + COSF_P[2]
    c = c * z * z - np.float32(0.5) * z + np.float32(1.0)
    return s, c


@device
def sincos_2pi_f32(k24):
    """sin and cos of 2*pi*k24/2**24 for an integer k24 < 2**24, octant reduced exactly."""
    octant = k24 >> np.uint64(21)
    frac = k24 & np.uint64(0x1FFFFF)
    if octant & np.uint64(1):
        frac = np.uint64(0x200000) - frac
    x = (np.float32(np.int32(frac)) * F32_2M21) * F32_PI_4
    s, c = sincos_f32_reduced(x)
    if ((octant + np.uint64(1)) >> np.uint64(1)) & np.uint64(1):
        s, c = c, s
    if (octant >> np.uint64(2)) & np.uint64(1):
        s = -s
    if ((octant + np.uint64(2)) >> np.uint64(2)) & np.uint64(1):
        c = -c
    return s, c


@device
def box_muller_f32(wa, wb):
    """Two words → two independent float32 N(0, 1) values (r*cos, r*sin)."""
    u = np.float32(np.int32((wa >> np.uint64(8)) + np.uint64(1))) * F32_2M24    # (0, 1]
    r = np.sqrt(np.float32(-2.0) * log_f32(u))
    s, c = sincos_2pi_f32(wb >> np.uint64(8))
    return r * c, r * s


# --- float64 log, sin, cos (fdlibm kernels) -----------------------------------------------------
LG = S.LG
F64_LN2_HI = S.F64_LN2_HI
F64_LN2_LO = S.F64_LN2_LO
F64_SQRT2 = S.F64_SQRT2
F64_PI_4 = S.F64_PI_4
S64 = S.S64
C64 = S.C64


@device
def log_f64(u):
    """Natural log of a positive normal float64 (fdlibm ``__ieee754_log`` reduction, < 1 ulp)."""
    bits = f64_as_u64(u)
    e = np.int64(bits >> np.uint64(52)) - np.int64(1023)
    m = u64_as_f64((bits & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000))
    if m >= F64_SQRT2:
        m = m * 0.5
        e = e + np.int64(1)
    f = m - 1.0
    k = np.float64(e)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG[1] + w * (LG[3] + w * LG[5]))
    t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * F64_LN2_HI - ((hfsq - (s * (hfsq + r) + k * F64_LN2_LO)) - f)


@device
def sincos_f64_reduced(x):
    """sin(x), cos(x) for x in [0, pi/4] (fdlibm ``__kernel_sin``/``__kernel_cos`` polynomials)."""
    z = x * x
    v = z * x
    rs = S64[1] + z * (S64[2] + z * (S64[3] + z * (S64[4] + z * S64[5])))
    s = x + v * (S64[0] + z * rs)
    rc = z * (C64[0] + z * (C64[1] + z * (C64[2] + z * (C64[3] + z * (C64[4] + z * C64[5])))))
    c = 1.0 - (0.5 * z - z * rc)
    return s, c


@device
def sincos_2pi_f64(k53):
    """sin and cos of 2*pi*k53/2**53 for an integer k53 < 2**53, octant reduced exactly."""
    octant = k53 >> np.uint64(50)
    frac = k53 & np.uint64(0x3FFFFFFFFFFFF)
    if octant & np.uint64(1):
        frac = np.uint64(0x4000000000000) - frac
    x = (np.float64(np.int64(frac)) * F64_2M50) * F64_PI_4
    s, c = sincos_f64_reduced(x)
    if ((octant + np.uint64(1)) >> np.uint64(1)) & np.uint64(1):
        s, c = c, s
    if (octant >> np.uint64(2)) & np.uint64(1):
        s = -s
    if ((octant + np.uint64(2)) >> np.uint64(2)) & np.uint64(1):
        c = -c
    return s, c


@device
def box_muller_f64(w0, w1, w2, w3):
    """Four words → two independent float64 N(0, 1) values (r*cos, r*sin)."""
    u = np.float64(np.int64(bits53(w0, w1) + np.uint64(1))) * F64_2M53                 # (0, 1]
    r = np.sqrt(-2.0 * log_f64(u))
    s, c = sincos_2pi_f64(bits53(w2, w3))
    return r * c, r * s


# --- one value of the stream at a given index (for kernels that need values one at a time) ---------
@device
def normal_at_f32(i, c2, c3, k0, k1):
    """Value ``i`` of the float32 normal stream (c2, c3): block i >> 2, lane i & 3."""
    b = i >> np.uint64(2)
    x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
    lane = i & np.uint64(3)
    if lane < np.uint64(2):
        za, zb = box_muller_f32(x0, x1)
    else:
        za, zb = box_muller_f32(x2, x3)
    return za if (lane & np.uint64(1)) == np.uint64(0) else zb


@device
def normal_at_f64(i, c2, c3, k0, k1):
    """Value ``i`` of the float64 normal stream (c2, c3): block i >> 1, lane i & 1."""
    b = i >> np.uint64(1)
    x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
    za, zb = box_muller_f64(x0, x1, x2, x3)
    return za if (i & np.uint64(1)) == np.uint64(0) else zb
