"""Long-horizon recurrence unrolls: h_t = f(W h_{t-1} + U x_t + b), norms in log scale.

One work item is one matrix ``m`` and one fixed chunk of realisations (rows of the state); it runs its
own independent recurrence over all the steps, so threads never synchronise inside the time loop (one
compiled call per work item, on a pool of Python threads: the kernel releases the GIL).  Every
realisation is computed by the same operations whatever the chunk, the batch or the thread count, so its
bits do not depend on them.

State representation (docs/unroll.md).  Each realisation keeps ``h = g * 2**e``: ``g`` in the array
dtype, ``e`` an int64.  A step computes, exactly to rounding,

    z = W g + (U x_t + b) * 2**-e          (the pre-activation divided by 2**e)
    g <- f_e(z) = f(z * 2**e) * 2**-e      (linear: z;  relu: max(z, 0);  tanh: see tanh_scaled)

and when ||g|| leaves [2**-RENORM_EXP, 2**RENORM_EXP], g is multiplied by 2**-k and e increased by k
so that ||g|| returns to [1/2, 1).  Multiplying by a power of two is exact, so as long as nothing
underflows the result is bit for bit what the unscaled computation would give, and ``log||h_t|| =
log||g|| + e log 2`` stays exact long after ||h_t|| would overflow.  The exponent never drops below
``e_floor`` (the exponent of a bound on |U x_t + b|, computed by the API), so the scaled inputs stay <= 1
and cannot overflow.  The tangent ``v_t = D_t W v_{t-1}`` is linear in v and is renormalised freely.

The matrix products use the register-blocked micro-kernel below on a copy of [W^T; U^T] packed once per
work item (W is fixed for all the steps, so unlike a BLAS call nothing is re-packed per step): each entry
of W g is one chain of fused multiply-adds over k in order 0..K-1, so its bits do not depend on the
blocking, the chunk, the thread count or the instruction set.  Inputs are drawn inside the time loop from
the Philox stream (whole blocks; values (t-1)*d .. t*d-1 of stream (c2 = c2_start + m, c3 = c3_base +
r)), and are never stored.
"""
from __future__ import annotations

import math

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from rinit_fast.spec.activations import LINEAR, RELU, TANH  # noqa: F401  (one code table)

from . import threads
from ._jit import _COMMON, device, kernel
from .philox import M32, box_muller_f32, box_muller_f64, f64_as_u64, philox4x32_10, u64_as_f64

# Large helpers are compiled as functions of their own (called, not inlined): inlining the Philox
# generator and the per-item time loop into the parallel kernel made its first compilation take minutes.
# They carry the project's options (kernels/cpu/_jit.py) and compile lazily, for the caller's types.
_OPTS = dict(_COMMON)
_called = numba.njit(**_OPTS)   # per-row helpers: compiled once, called (not inlined at Numba IR level)

RENORM_EXP = 20            # renormalise when ||g|| leaves [2**-20, 2**20]
_HI = 2.0 ** (2 * RENORM_EXP)
_LO = 2.0 ** (-2 * RENORM_EXP)
LN2 = math.log(2.0)
LANES = 16                 # partial sums of the norm (fixed, so the bits do not depend on the ISA)

NO_INPUT, GAUSSIAN, ARRAY = 0, 1, 2
NO_FLOOR = -(1 << 62)


# --- the input stream: values v0 .. v0+count-1 in whole Philox blocks (one compiled function per dtype) ---
# Blocks are generated SUPER at a time (an inner loop of constant trip count, fully vectorised, with no
# scalar remainder loop: with a variable trip count, LLVM's scalar epilogue handled up to 31 of the
# 16-126 blocks of a step, and generation ran at 4-5 ns/value instead of ~1.2).  The buffer holds
# ``buffer_len(count)`` values; the few extra values past the end are never used.
SUPER = 16
GEN_VALUES = 512           # values drawn per call: several steps at once when d is small


@device
def buffer_len(count):
    """Length of the generation buffer for ``count`` values (either mapping, any offset)."""
    return (count // 2 + 2 + SUPER) // SUPER * SUPER * 4


@numba.njit(**_OPTS)
def normals_into_f32(buf, v0, count, c2, c3, k0, k1):
    """buf[4j + l] = lane l of block v0//4 + j of the float32 normal stream, j < ceil(...) rounded up to
    a multiple of SUPER; returns v0 % 4 (the position of value v0 in buf)."""
    b0 = v0 >> np.uint64(2)
    off = v0 & np.uint64(3)
    nsup = (((off + count + np.uint64(3)) >> np.uint64(2)) + np.uint64(SUPER - 1)) // np.uint64(SUPER)
    for sb in range(nsup):
        base = sb * np.uint64(SUPER)
        for jj in range(SUPER):
            j = base + np.uint64(jj)
            b = b0 + j
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            z0, z1 = box_muller_f32(x0, x1)
            z2, z3 = box_muller_f32(x2, x3)
            i = j << np.uint64(2)
            buf[i] = z0
            buf[i + np.uint64(1)] = z1
            buf[i + np.uint64(2)] = z2
            buf[i + np.uint64(3)] = z3
    return off


@numba.njit(**_OPTS)
def normals_into_f64(buf, v0, count, c2, c3, k0, k1):
    """float64 twin of normals_into_f32 (2 values per block); returns v0 % 2."""
    b0 = v0 >> np.uint64(1)
    off = v0 & np.uint64(1)
    nsup = (((off + count + np.uint64(1)) >> np.uint64(1)) + np.uint64(SUPER - 1)) // np.uint64(SUPER)
    for sb in range(nsup):
        base = sb * np.uint64(SUPER)
        for jj in range(SUPER):
            j = base + np.uint64(jj)
            b = b0 + j
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
            z0, z1 = box_muller_f64(x0, x1, x2, x3)
            i = j << np.uint64(1)
            buf[i] = z0
            buf[i + np.uint64(1)] = z1
    return off


def fill_normals(buf, v0, count, c2, c3, k0, k1):
    """normals_into_f32 or normals_into_f64, by the dtype of ``buf`` (resolved at compile time)."""


@overload(fill_normals, inline="always")
def _fill_normals_ov(buf, v0, count, c2, c3, k0, k1):
    if buf.dtype == types.float32:
        return lambda buf, v0, count, c2, c3, k0, k1: normals_into_f32(buf, v0, count, c2, c3, k0, k1)
    return lambda buf, v0, count, c2, c3, k0, k1: normals_into_f64(buf, v0, count, c2, c3, k0, k1)


def cast_like(ref, x):
    """``x`` converted to the dtype of array ``ref``."""


@overload(cast_like, inline="always")
def _cast_like_ov(ref, x):
    if ref.dtype == types.float32:
        return lambda ref, x: np.float32(x)
    return lambda ref, x: np.float64(x)


# --- scalar helpers ---------------------------------------------------------------------------------
@_called
def pow2(k):
    """2.0**k as float64 (0 or inf beyond the float64 range)."""
    if k > 1100:
        return math.inf
    if k < -1100:
        return 0.0
    return math.ldexp(1.0, k)


# tanh without library calls, so that the loop over a state vectorises (libm tanh: ~4x slower here).
# |y| < 0.625: Cephes' rational form tanh(y) = y + y·y²·P(y²)/Q(y²); above: (1 - q)/(1 + q), q = e^{-2|y|}.
_TP = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TQ = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_C = tuple(1.0 / math.factorial(k) for k in range(14))


@device
def exp_nonpos(x):
    """exp(x) for x <= 0 (0 below -708), to about 1 ulp: Cody–Waite reduction by ln 2 and a degree-13
    Taylor polynomial on |r| <= ln2/2, scaled by 2**k built from bits.  No library call."""
    xc = max(x, -708.0)
    k = math.floor(xc * _LOG2E + 0.5)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = _EXP_C[13]
    p = p * r + _EXP_C[12]
    p = p * r + _EXP_C[11]
    p = p * r + _EXP_C[10]
    p = p * r + _EXP_C[9]
    p = p * r + _EXP_C[8]
    p = p * r + _EXP_C[7]
    p = p * r + _EXP_C[6]
    p = p * r + _EXP_C[5]
    p = p * r + _EXP_C[4]
    p = p * r + _EXP_C[3]
    p = p * r + _EXP_C[2]
    p = p * r + _EXP_C[1]
    p = p * r + _EXP_C[0]
    scale = u64_as_f64(np.uint64(np.int64(k) + 1023) << np.uint64(52))
    return p * scale if x >= -708.0 else 0.0


@device
def tanh_scaled(z, s, inv):
    """(tanh(z*s)/s, tanh'(z*s)) in float64, for a power of two s = 2**e (inv = 1/s): the state g is
    h/s and z the scaled pre-activation.  Accurate also when z*s underflows (the small-argument form
    z·(1 + y²P/Q) never divides by y), and the derivative has no cancellation when tanh(y) rounds to ±1
    (4q/(1+q)² instead of 1 - tanh²).  Branch-free: both forms are computed and one is selected."""
    y = z * s
    ay = abs(y)
    y2 = y * y
    rs = y2 * ((_TP[0] * y2 + _TP[1]) * y2 + _TP[2]) / (((y2 + _TQ[0]) * y2 + _TQ[1]) * y2 + _TQ[2])
    ts = y + y * rs
    q = exp_nonpos(-2.0 * ay)
    opq = 1.0 + q
    tl = (1.0 - q) / opq
    if ay < 0.625:
        return z + z * rs, 1.0 - ts * ts
    return (tl if y >= 0.0 else -tl) * inv, 4.0 * q / (opq * opq)


@_called
def sumsq(row, n, acc):
    """sum(row[:n]**2) in float64 with LANES fixed partial sums (vectorisable, ISA-independent bits)."""
    for l in range(LANES):
        acc[l] = 0.0
    nfull = n - n % LANES
    for i0 in range(0, nfull, LANES):
        for l in range(LANES):
            v = np.float64(row[i0 + l])
            acc[l] += v * v
    s = 0.0
    for l in range(LANES):
        s += acc[l]
    for i in range(nfull, n):
        v = np.float64(row[i])
        s += v * v
    return s


@_called
def log_norm(s, e):
    """log of sqrt(s)·2**e.  While s·4**e is a normal float64 it is formed exactly and its log taken,
    so the result does not depend on how h is split into g and e (the same bits as the unscaled
    computation would give); beyond that, 0.5·log(s) + e·log 2.  (Exponents by bit operations: frexp
    and ldexp are library calls, and this runs for every realisation at every recorded step.)"""
    if s > 0.0:
        ex = np.int64((f64_as_u64(s) >> np.uint64(52)) & np.uint64(0x7FF))     # biased exponent of s
        if ex > 0 and -1000 < ex - 1023 + 2 * e < 1000 and -1000 < 2 * e < 1000:
            return 0.5 * math.log(s * u64_as_f64(np.uint64(1023 + 2 * e) << np.uint64(52)))
    return 0.5 * math.log(s) + e * LN2


@_called
def scale_row(row, n, k):
    """row[:n] *= 2**-k exactly (in steps of at most 2**±100, so every factor is a normal number)."""
    while k != 0:
        step = min(max(k, -100), 100)
        f = cast_like(row, math.ldexp(1.0, -step))
        for i in range(n):
            row[i] = row[i] * f
        k -= step


@_called
def renorm_exponent(s, e, floor):
    """New exponent for a row with squared norm s (of g) and exponent e: unchanged while
    ||g|| is in [2**-RENORM_EXP, 2**RENORM_EXP] (or zero), else so that ||g|| lands in [1/2, 1);
    never below ``floor``."""
    if s > _HI or (s < _LO and s > 0.0):
        _, ex = math.frexp(s)
        k = (ex + 1) // 2
        return max(e + k, floor)
    return e


# --- the matrix product: C[r, :] = A[r, :K] @ [W^T; U^T][:K]  (register-blocked micro-kernel) --------
# Written as LLVM IR with explicit vector types: Numba cannot keep a tile of accumulators in registers
# (20-35 GFLOP/s with accumulators in memory, when this kernel was written).  This kernel: 104 GFLOP/s
# per core at n = 500, R = 50 (the 1-thread sgemm ceiling), against 60.5 for the per-step BLAS call it
# replaced, which packs W on every call (bench/NOTES.md "Unroll").
# B is packed in panels P[p, k, 0:NR] = B[k, p*NR : (p+1)*NR] (zero-padded past n).  A tile is MR rows
# by NR = NV vectors of LANES floats; the MR*NV accumulators stay in registers through the k loop.
_FEATURES = llvm.get_host_cpu_features()
WIDE = bool(_FEATURES.get("avx512f", False))       # 32 vector registers of 16 float32
LANES32 = 16 if WIDE else 8
LANES64 = LANES32 // 2
NV = 2                                             # vectors per tile row
MR_MAX = 12 if WIDE else 6                         # MR*NV + NV + 1 registers must fit


def _make_microkernel(MR):
    @intrinsic
    def microkernel(typingctx, A, r0, P, p, kuse, C):
        """C[r0:r0+MR, p*NR:(p+1)*NR] = A[r0:r0+MR, :kuse] @ P[p, :kuse, :] (C-contiguous arrays)."""
        if A.dtype == types.float32:
            fty, L, name = ir.FloatType(), LANES32, "f32"
        elif A.dtype == types.float64:
            fty, L, name = ir.DoubleType(), LANES64, "f64"
        else:
            return None
        sig = types.void(A, r0, P, p, kuse, C)

        def codegen(context, builder, signature, args):
            a_arr = context.make_array(signature.args[0])(context, builder, args[0])
            p_arr = context.make_array(signature.args[2])(context, builder, args[2])
            c_arr = context.make_array(signature.args[5])(context, builder, args[5])
            intp = context.get_value_type(types.intp)

            def ival(i):
                return context.cast(builder, args[i], signature.args[i], types.intp)

            def const(v):
                return ir.Constant(intp, v)
            lda = cgutils.unpack_tuple(builder, a_arr.shape, 2)[1]
            ldc = cgutils.unpack_tuple(builder, c_arr.shape, 2)[1]
            pshape = cgutils.unpack_tuple(builder, p_arr.shape, 3)
            r0v, pv, kv = ival(1), ival(3), ival(4)
            NR = L * NV
            a_base = builder.gep(a_arr.data, [builder.mul(r0v, lda)])
            b_base = builder.gep(p_arr.data, [builder.mul(pv, builder.mul(pshape[1], pshape[2]))])
            c_base = builder.gep(c_arr.data, [builder.add(builder.mul(r0v, ldc), builder.mul(pv, const(NR)))])
            vty = ir.VectorType(fty, L)
            vptr = vty.as_pointer()
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                                 f"llvm.fma.v{L}{name}")
            i32 = ir.IntType(32)
            undef = ir.Constant(vty, ir.Undefined)
            splat_mask = ir.Constant(ir.VectorType(i32, L), [0] * L)
            zero = ir.Constant(vty, [0.0] * L)
            entry = builder.block
            loop = builder.append_basic_block("mk_loop")
            done = builder.append_basic_block("mk_done")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(intp)
            k.add_incoming(const(0), entry)
            acc = [[builder.phi(vty) for _ in range(NV)] for _ in range(MR)]
            for row in acc:
                for ph in row:
                    ph.add_incoming(zero, entry)
            bk = builder.gep(b_base, [builder.mul(k, const(NR))])
            bv = [builder.load(builder.bitcast(builder.gep(bk, [const(v * L)]), vptr), align=4)
                  for v in range(NV)]
            new = []
            for r in range(MR):
                a = builder.load(builder.gep(a_base, [builder.add(builder.mul(const(r), lda), k)]))
                av = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)), undef,
                                            splat_mask)
                new.append([builder.call(fma, [av, bv[v], acc[r][v]]) for v in range(NV)])
            k1 = builder.add(k, const(1))
            tail = builder.block
            k.add_incoming(k1, tail)
            for r in range(MR):
                for v in range(NV):
                    acc[r][v].add_incoming(new[r][v], tail)
            builder.cbranch(builder.icmp_signed("<", k1, kv), loop, done)
            builder.position_at_end(done)
            for r in range(MR):
                crow = builder.gep(c_base, [builder.mul(const(r), ldc)])
                for v in range(NV):
                    builder.store(new[r][v], builder.bitcast(builder.gep(crow, [const(v * L)]), vptr),
                                  align=4)
            return context.get_dummy_value()
        return sig, codegen
    return microkernel


(_mk1, _mk2, _mk3, _mk4, _mk5, _mk6, _mk7, _mk8, _mk9, _mk10, _mk11,
 _mk12) = [_make_microkernel(mr) for mr in range(1, 13)]


@device
def _microkernel(A, r, P, p, kuse, C, mr):
    if mr == 12:
        _mk12(A, r, P, p, kuse, C)
    elif mr == 11:
        _mk11(A, r, P, p, kuse, C)
    elif mr == 10:
        _mk10(A, r, P, p, kuse, C)
    elif mr == 9:
        _mk9(A, r, P, p, kuse, C)
    elif mr == 8:
        _mk8(A, r, P, p, kuse, C)
    elif mr == 7:
        _mk7(A, r, P, p, kuse, C)
    elif mr == 6:
        _mk6(A, r, P, p, kuse, C)
    elif mr == 5:
        _mk5(A, r, P, p, kuse, C)
    elif mr == 4:
        _mk4(A, r, P, p, kuse, C)
    elif mr == 3:
        _mk3(A, r, P, p, kuse, C)
    elif mr == 2:
        _mk2(A, r, P, p, kuse, C)
    else:
        _mk1(A, r, P, p, kuse, C)


@numba.njit(**_OPTS)
def gemm_packed(A, P, C, kuse):
    """C[:, :npan*NR] = A[:, :kuse] @ B[:kuse] with B packed in P (npan, K, NR).  Panels outside (each
    panel, K x NR, stays in L2 while every row block uses it); rows in blocks of at most MR_MAX, as
    even as possible (25 rows: 9, 8, 8)."""
    M = A.shape[0]
    nblk = (M + MR_MAX - 1) // MR_MAX
    for p in range(P.shape[0]):
        r = 0
        for blk in range(nblk):
            mr = (M - r) // (nblk - blk)
            _microkernel(A, r, P, p, kuse, C, mr)
            r += mr


def panel_width(W):
    """NR, the width of a packed panel, for the dtype of ``W``."""


@overload(panel_width, inline="always")
def _panel_width_ov(W):
    nr = NV * (LANES32 if W.dtype == types.float32 else LANES64)
    return lambda W: nr


_T32 = types.float32
_T64 = types.float64
_I64 = types.int64
_U64 = types.uint64


def _sig(T):
    """Signature of ``run_item`` for dtype T."""
    return types.void(
        T[:, :, ::1],            # W (nb, n, n)
        T[:, ::1],               # UT (du, n): U transposed, du = 0 without U
        T[::1],                  # bias (n,) or (0,)
        T[:, :, :, ::1],         # xarr (Bx, Rx, steps, d) for array inputs (else a dummy)
        T[:, :, ::1],            # G0 (nb, R, n): initial g
        _I64[:, ::1],            # E0 (nb, R): initial exponents
        T[:, :, ::1],            # V0 (nb, R, n) (dummy without tangent)
        _I64[:, ::1],            # EV0
        _I64, _I64, _I64, _I64,  # steps, record_every, input_mode, nonlinearity
        _I64, _I64, _I64,        # tangent, e_floor, d
        _U64, _U64, _U64, _U64,  # k0, k1, c2_start, c3_base (stream of the inputs)
        T,                       # input_scale
        types.float64[:, :, ::1],  # out_log (nb, R, K)
        types.float64[:, :, ::1],  # out_tlog (nb, R, K) (dummy without tangent)
        T[:, :, ::1], _I64[:, ::1],  # out_g, out_e: final state g and exponent
        T[:, :, ::1], _I64[:, ::1],  # out_v, out_ev: final tangent (dummies without tangent)
        _I64, _I64, _I64,        # m, r0, r1: the work item
    )


def unroll(W, UT, bias, xarr, G0, E0, V0, EV0, steps, record_every, input_mode, nonlin, tangent,
           nchunks, e_floor, d, k0, k1, c2_start, c3_base, input_scale, out_log, out_tlog, out_g,
           out_e, out_v, out_ev):
    """Run the recurrences of every matrix of W and every realisation; see the module docstring.

    Work item = (matrix m, chunk c of the realisations): one call of the compiled ``run_item`` (which
    releases the GIL), spread over ``threads.nthreads()`` Python threads (kernels/cpu/threads.py).  No Numba parallel region:
    the prange wrapper that this replaces took as long to compile as the time loop itself (bench/NOTES.md
    "Unroll"), and each dtype now compiles only when it is used."""
    nb = W.shape[0]
    R = G0.shape[1]
    fn = (_run_item_f32 if W.dtype == np.float32 else _run_item_f64).dispatcher
    args = (W, UT, bias, xarr, G0, E0, V0, EV0, np.int64(steps), np.int64(record_every),
            np.int64(input_mode), np.int64(nonlin), np.int64(tangent), np.int64(e_floor), np.int64(d),
            np.uint64(k0), np.uint64(k1), np.uint64(c2_start), np.uint64(c3_base), input_scale,
            out_log, out_tlog, out_g, out_e, out_v, out_ev)
    items = []
    for m in range(nb):
        for c in range(nchunks):
            items.append((np.int64(m), np.int64((c * R) // nchunks), np.int64(((c + 1) * R) // nchunks)))

    threads.run_tasks(lambda i: fn(*args, *items[i]), len(items))


def run_item(W, UT, bias, xarr, G0, E0, V0, EV0, steps, record_every, input_mode, nonlin, tangent,
             e_floor, d, k0, k1, c2_start, c3_base, input_scale, out_log, out_tlog, out_g, out_e,
             out_v, out_ev, m, r0, r1):
    """The whole time loop of matrix m, realisations r0..r1-1 (one work item)."""
    n = W.shape[1]
    du = UT.shape[0]
    K = n + du
    nbias = bias.shape[0]
    Rx = xarr.shape[1]
    mx = m if xarr.shape[0] > 1 else 0
    sig64 = np.float64(input_scale)
    Rc = r1 - r0
    # [W^T; U^T] (K, n) packed in panels: row i of A @ it is W g_i (+ U x_i); columns >= n are zero
    NR = panel_width(W)
    npan = (n + NR - 1) // NR
    P = np.zeros((npan, K, NR), dtype=W.dtype)
    for i in range(n):
        pi = i // NR
        ji = i - pi * NR
        for k in range(n):
            P[pi, k, ji] = W[m, i, k]
        for k in range(du):
            P[pi, n + k, ji] = UT[k, i]
    A = np.zeros((Rc, K), dtype=W.dtype)       # rows: [g_r | x_t 2**-e_r (with U)]
    C = np.empty((Rc, npan * NR), dtype=W.dtype)
    E = np.empty(Rc, dtype=np.int64)
    for rr in range(Rc):
        for i in range(n):
            A[rr, i] = G0[m, r0 + rr, i]
        E[rr] = E0[m, r0 + rr]
    nv = Rc if tangent else 0
    V = np.empty((nv, n), dtype=W.dtype)
    CV = np.empty((nv, npan * NR), dtype=W.dtype)
    EV = np.empty(nv, dtype=np.int64)
    for rr in range(nv):
        for i in range(n):
            V[rr, i] = V0[m, r0 + rr, i]
        EV[rr] = EV0[m, r0 + rr]
    # Gaussian inputs: S steps of a row are consecutive values of its stream, drawn in one call
    S = min(max(1, GEN_VALUES // d), steps) if input_mode == GAUSSIAN else 1
    XB = np.empty((Rc if input_mode == GAUSSIAN else 0, buffer_len(S * d)), dtype=W.dtype)
    offs = np.zeros(Rc, dtype=np.uint64)
    acc = np.empty(LANES, dtype=np.float64)
    c2 = (c2_start + np.uint64(m)) & M32
    du64 = np.uint64(d)

    for t in range(1, steps + 1):
        js = (t - 1) % S
        if input_mode == GAUSSIAN and js == 0:
            cnt = np.uint64(min(S, steps - t + 1)) * du64
            for rr in range(Rc):
                offs[rr] = fill_normals(XB[rr], np.uint64(t - 1) * du64, cnt, c2,
                                        c3_base + np.uint64(r0 + rr), k0, k1)
        if du > 0 and input_mode != NO_INPUT:      # inputs enter the product: A[:, n:] = x_t 2**-e
            for rr in range(Rc):
                r = r0 + rr
                cx = cast_like(A, sig64 * pow2(-E[rr]))
                arow = A[rr]
                if input_mode == GAUSSIAN:
                    xs = XB[rr]
                    base = offs[rr] + np.uint64(js) * du64
                else:
                    xs = xarr[mx, r if Rx > 1 else 0, t - 1]
                    base = np.uint64(0)
                for i in range(d):
                    arow[n + i] = xs[base + np.uint64(i)] * cx
        gemm_packed(A, P, C, K)
        if tangent:
            gemm_packed(V, P, CV, n)
        rec = t % record_every == 0
        kk = t // record_every - 1
        for rr in range(Rc):
            r = r0 + rr
            e = E[rr]
            arow = A[rr]
            crow = C[rr]
            # pre-activation z (scaled by 2**-e) into arow[:n]
            if du == 0 and input_mode != NO_INPUT:
                cx = cast_like(A, sig64 * pow2(-e))
                if input_mode == GAUSSIAN:
                    xs = XB[rr]
                    base = offs[rr] + np.uint64(js) * du64
                else:
                    xs = xarr[mx, r if Rx > 1 else 0, t - 1]
                    base = np.uint64(0)
                for i in range(n):
                    arow[i] = crow[i] + xs[base + np.uint64(i)] * cx
            else:
                for i in range(n):
                    arow[i] = crow[i]
            if nbias > 0:
                cb = cast_like(A, pow2(-e))
                for i in range(n):
                    arow[i] = arow[i] + bias[i] * cb
            # nonlinearity (and the tangent's D_t)
            if nonlin == RELU:
                if tangent:
                    vrow = V[rr]
                    cvrow = CV[rr]
                    for i in range(n):
                        if arow[i] > 0:
                            vrow[i] = cvrow[i]
                        else:
                            arow[i] = 0
                            vrow[i] = 0
                else:
                    for i in range(n):
                        if not arow[i] > 0:
                            arow[i] = 0
            elif nonlin == TANH:
                s = pow2(e)
                inv = pow2(-e)
                if tangent:
                    vrow = V[rr]
                    cvrow = CV[rr]
                    for i in range(n):
                        g, dd = tanh_scaled(np.float64(arow[i]), s, inv)
                        arow[i] = g
                        vrow[i] = cvrow[i] * dd
                else:
                    for i in range(n):
                        g, dd = tanh_scaled(np.float64(arow[i]), s, inv)
                        arow[i] = g
            elif tangent:
                vrow = V[rr]
                cvrow = CV[rr]
                for i in range(n):
                    vrow[i] = cvrow[i]
            # norm, record, renormalise
            ss = sumsq(arow, n, acc)
            if rec:
                out_log[m, r, kk] = log_norm(ss, e)
            ne = renorm_exponent(ss, e, e_floor)
            if ne != e:
                scale_row(arow, n, ne - e)
                E[rr] = ne
            if tangent:
                vrow = V[rr]
                ev = EV[rr]
                sv = sumsq(vrow, n, acc)
                if rec:
                    out_tlog[m, r, kk] = log_norm(sv, ev)
                nev = renorm_exponent(sv, ev, NO_FLOOR)
                if nev != ev:
                    scale_row(vrow, n, nev - ev)
                    EV[rr] = nev

    for rr in range(Rc):
        for i in range(n):
            out_g[m, r0 + rr, i] = A[rr, i]
        out_e[m, r0 + rr] = E[rr]
    for rr in range(nv):
        for i in range(n):
            out_v[m, r0 + rr, i] = V[rr, i]
        out_ev[m, r0 + rr] = EV[rr]


# one kernel per dtype, compiled (or loaded from the cache) on first use
_run_item_f32 = kernel(_sig(_T32))(run_item)
_run_item_f64 = kernel(_sig(_T64))(run_item)
