"""The random stream: purposes, counter layout, limits, and the constants of the word → float mapping.

This is the single source of the stream contract's numbers.  ``rinit_fast.rng`` (the public face,
docs/rng.md its prose twin), the Numba stream body (``kernels/cpu/philox.py``, ``kernels/cpu/stream.py``)
and the CUDA header (``kernels/cuda/philox.cuh``, compared by tests/test_spec.py) all take them from here.

Generator: Philox4x32-10 exactly as in Random123 (Salmon et al., SC'11).  Key (64 bits) = the seed:
``k0 = seed & 0xFFFFFFFF``, ``k1 = seed >> 32``.  Counter (128 bits), four 32-bit words:

====  =====================================================================================
c0    block position, low 32 bits
c1    block position, high 32 bits (positions < 2**48; bits 48..63 count truncated-normal redraws)
c2    index: the matrix (weights, start vectors, unroll inputs/states) or the network (propagate)
c3    purpose (bits 24..31)  |  sub-index (bits 0..23): layer, realisation or start vector
====  =====================================================================================

Value ``i`` of a stream (fixed seed, index, purpose, sub): float32 values sit 4 to a block (uniform:
word ``i & 3``; normal: Box–Muller on words (0, 1) gives values 4b, 4b+1, on (2, 3) values 4b+2, 4b+3),
float64 values 2 to a block (uniform: words (0, 1) or (2, 3), 53 bits; normal: one Box–Muller on the
53-bit pairs from words (0, 1) and (2, 3) gives 2b and 2b+1).
"""
from __future__ import annotations

import enum

STREAM_VERSION = 1
"""Bumped whenever any value of any stream changes (kernels/cuda/philox.cuh: RF_STREAM_VERSION)."""

MAX_INDEX = 2 ** 32          # c2: matrices or networks per seed
SUB_BITS = 24
MAX_SUB = 2 ** SUB_BITS      # c3 low bits: layers, realisations, start vectors
PURPOSE_SHIFT = SUB_BITS     # c3 = purpose << 24 | sub
MAX_SEED = 2 ** 64
POSITION_BITS = 48           # block positions < 2**48 (c0, c1)


class Purpose(enum.IntEnum):
    """Purposes of the stream: each has its own counters, so no two ever share a block."""

    WEIGHTS = 0        # weight matrices: c2 = matrix (or network), sub = layer (0 for rf.sample)
    INPUTS = 1         # unroll inputs x_t: c2 = matrix, sub = realisation, value t*d + k
    START = 2          # spectral start vectors: c2 = matrix, sub = vector
    H0 = 3             # unroll initial states: c2 = matrix, sub = realisation
    V0 = 4             # unroll tangent start vectors: c2 = matrix, sub = realisation
    PROP_INPUT = 5     # propagate inputs x_0: c2 = network, sub = sample
    PROP_GRAD = 6      # propagate output gradients: c2 = network, sub = sample
    PROP_BIAS = 7      # propagate biases b_l: c2 = network, sub = layer, value i = unit i
    USER = 255         # free for users' own draws (never used by the engine)


def counter_word3(purpose, sub=0):
    """c3 = purpose << 24 | sub, as a Python int (callers validate ``sub``)."""
    return (int(Purpose(purpose)) << PURPOSE_SHIFT) | int(sub)


# --- the word → float mapping ----------------------------------------------------------------------
VALUES_PER_BLOCK = {"float32": 4, "float64": 2}
"""Values of one stream per Philox block, by dtype (uniform and normal alike)."""

# Truncated normal (variance_scaling's truncated_normal, JAX's rule): value i keeps its normal when
# |z| <= TRUNC_BOUND; otherwise attempt a = 1, 2, ... draws value i of the same stream at block position
# (a << ATTEMPT_SHIFT) | block, i.e. value index (a << (ATTEMPT_SHIFT + log2(values per block))) | i.
TRUNC_BOUND = 2.0
TRUNC_STD = 0.87962566103423978   # std of N(0, 1) truncated to [-2, 2]: the rescale of JAX's rule
ATTEMPT_SHIFT = 48
MAX_ATTEMPTS = 1 << 14            # attempts < 2**14 keep (a << 50) | i inside 64 bits: no counter repeats
GAUSS_MAX = 8.6                   # |z| of the stream's Box–Muller normals is < 8.58 (u >= 2**-53)


def value_shift(dtype_name):
    """log2 of the values per block of a dtype: 2 (float32) or 1 (float64)."""
    return {"float32": 2, "float64": 1}[dtype_name]


# Philox4x32-10 (Random123)
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85

# float32 log (Cephes logf), sin and cos on [0, pi/4] (Cephes sinf/cosf): evaluated in float32 with
# +, -, * only, in the order of kernels/cpu/philox.py, without fused multiply-add
LOGF_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
F32_SQRT2 = 1.41421356237309504880
F32_LN2_HI = 0.693359375
F32_LN2_LO = -2.12194440e-4
F32_PI_4 = 0.785398163397448309616
SINF_P = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
COSF_P = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)

# float64 log (fdlibm __ieee754_log), sin and cos on [0, pi/4] (fdlibm __kernel_sin / __kernel_cos)
LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
      2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
      1.479819860511658591e-01)
F64_LN2_HI = 6.93147180369123816490e-01
F64_LN2_LO = 1.90821492927058770002e-10
F64_SQRT2 = 1.41421356237309504880
F64_PI_4 = 0.785398163397448309616
S64 = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
       2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
C64 = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
       -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


def _f32(x):
    """x rounded to float32 (the C side writes float32 constants with an ``f`` suffix)."""
    import numpy as np
    return float(np.float32(x))


C_CONSTANTS = {
    # kernels/cuda/philox.cuh
    "RF_STREAM_VERSION": STREAM_VERSION,
    "RF_PHILOX_M0": PHILOX_M0, "RF_PHILOX_M1": PHILOX_M1, "RF_PHILOX_W0": PHILOX_W0, "RF_PHILOX_W1": PHILOX_W1,
    "RF_F32_2M24": 2.0 ** -24, "RF_F32_2M21": 2.0 ** -21, "RF_F64_2M53": 2.0 ** -53, "RF_F64_2M50": 2.0 ** -50,
    **{f"RF_LOGF_P{i}": _f32(c) for i, c in enumerate(LOGF_P)},
    "RF_F32_SQRT2": _f32(F32_SQRT2), "RF_F32_LN2_HI": _f32(F32_LN2_HI), "RF_F32_LN2_LO": _f32(F32_LN2_LO),
    "RF_F32_PI_4": _f32(F32_PI_4), "RF_F32_PI_4_2M21": _f32(F32_PI_4) * 2.0 ** -21,
    **{f"RF_SINF_P{i}": _f32(c) for i, c in enumerate(SINF_P)},
    **{f"RF_COSF_P{i}": _f32(c) for i, c in enumerate(COSF_P)},
    **{f"RF_F64_CONSTANTS/LG{i}": c for i, c in enumerate(LG)},
    "RF_F64_CONSTANTS/F64_LN2_HI": F64_LN2_HI, "RF_F64_CONSTANTS/F64_LN2_LO": F64_LN2_LO,
    "RF_F64_CONSTANTS/F64_SQRT2": F64_SQRT2, "RF_F64_CONSTANTS/F64_PI_4_2M50": F64_PI_4 * 2.0 ** -50,
    **{f"RF_F64_CONSTANTS/S64_{i}": c for i, c in enumerate(S64)},
    **{f"RF_F64_CONSTANTS/C64_{i}": c for i, c in enumerate(C64)},
    # kernels/cuda/sampling.cu, propagate.cu (truncated-normal redraws)
    "RF_ATTEMPT_SHIFT": ATTEMPT_SHIFT, "RF_MAX_ATTEMPTS": MAX_ATTEMPTS,
    "RF_PG_ATTEMPT_SHIFT": ATTEMPT_SHIFT, "RF_PG_MAX_ATTEMPTS": MAX_ATTEMPTS,
    # a full 32-bit word / warp mask (kernels/cuda/sampling.cu, spectral.cu)
    "RF_FULL_MASK": 0xFFFFFFFF, "RF_SP_FULL": 0xFFFFFFFF,
}
