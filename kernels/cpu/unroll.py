"""Long-horizon recurrence unrolls on the CPU: h_t = f(W h_{t-1} + U x_t + b), norms in log scale.

:func:`unroll` takes the plan of ``rinit_fast.spec.unroll`` and the prepared arrays (the CUDA launcher,
kernels/cuda/unroll_launch.py, takes the same arguments).  One work item is one matrix ``m`` and one
chunk of its realisations (rows of the state, ``spec.unroll.nchunks``); it runs its own recurrence over
all the steps, so threads never synchronise inside the time loop: one call of the compiled
:func:`run_item` per work item (it releases the GIL), items spread in contiguous ranges over the thread
pool of kernels/cpu/threads.py.  Every realisation is computed by the same operations whatever the
chunk, the batch or the thread count, so its bits do not depend on them.

State representation (docs/unroll.md).  Each realisation keeps ``h = g * 2**e``: ``g`` in the array
dtype, ``e`` an int64.  A step computes, exactly to rounding,

    z = W g + (U x_t + b) * 2**-e          (the pre-activation divided by 2**e)
    g <- f_e(z) = f(z * 2**e) * 2**-e      (linear: z;  relu: max(z, 0);  tanh: see tanh_scaled)

and when ||g|| leaves [2**-RENORM_EXP, 2**RENORM_EXP], g is multiplied by 2**-k and e increased by k
so that ||g|| returns to [1/2, 1).  Multiplying by a power of two is exact, so as long as nothing
underflows the result is bit for bit what the unscaled computation would give, and ``log||h_t|| =
log||g|| + e log 2`` stays exact long after ||h_t|| would overflow.  The exponent never drops below
``e_floor`` (spec.unroll.e_floor), so the scaled inputs stay <= 1 and cannot overflow.  The tangent
``v_t = D_t W v_{t-1}`` is linear in v and is renormalised freely.

The products W g (+ U x_t) and W v are kernels/cpu/packed_gemm.py's micro-kernel on [Wᵀ; Uᵀ] packed
once per work item (W is fixed for all the steps, so unlike a BLAS call nothing is re-packed per step):
each entry is one chain of fused multiply-adds over k in order, so its bits do not depend on the
blocking, the chunk, the thread count or the instruction set.  Gaussian inputs come from the one stream
body (kernels/cpu/stream.py ``fill_normal``) inside the time loop, several steps of a row per call
(values (t-1)·d .. of stream (c2 = c2_start + m, c3 = c3_base + r)), and are never stored.

What is compiled (docs/unroll.md "Compilation"): one :func:`run_item` per dtype, on its first use; it
covers every input mode, nonlinearity and the tangent (runtime branches outside the inner loops), so
another mode costs no compilation.  It calls, compiled once per dtype as functions of their own: the
stream body's ``fill_normal`` (shared with sampling), ``packed_gemm.gemm_packed`` and
:func:`norm_rows`; tanh, the input stage and the norm helpers are inlined where they are used once.
Work buffers are allocated in Python, not in the compiled code (each array shape allocated in Numba
compiled its own allocator: ~1 s of the first call).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from rinit_fast.spec import unroll as spec
from rinit_fast.spec.activations import RELU, TANH
from rinit_fast.spec.stream import VALUES_PER_BLOCK

from . import threads
from ._jit import _COMMON, device, kernel
from .packed_gemm import ALIGN, aligned_empty, gemm_packed, pack_panels, panel_width
from .philox import f64_as_u64, u64_as_f64
from .stream import SUPER, fill_normal

NO_INPUT, GAUSSIAN = spec.NO_INPUT, spec.GAUSSIAN
LANES = spec.LANES
NO_FLOOR = spec.NO_FLOOR
_HI = spec.RENORM_HI
_LO = spec.RENORM_LO
LN2 = spec.LN2

_called = numba.njit(**_COMMON)   # helpers compiled once per signature and called (not inlined)


def cast_like(ref, x):
    """``x`` converted to the dtype of array ``ref``."""


@overload(cast_like)
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
_LOG2E = spec.EXP_LOG2E
_LN2_HI = spec.EXP_LN2_HI
_LN2_LO = spec.EXP_LN2_LO
_EXP_C = tuple(1.0 / math.factorial(k) for k in range(14))


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
    # q = exp(-2|y|) (0 below -708), to about 1 ulp: Cody–Waite reduction by ln 2 and a degree-13 Taylor
    # polynomial on |r| <= ln2/2, scaled by 2**k built from bits; no library call.  (Written here, not
    # as a helper: an inlined helper inside an inlined helper doubled the compile time of this code.)
    x = -2.0 * ay
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
    q = p * u64_as_f64(np.uint64(np.int64(k) + 1023) << np.uint64(52)) if x >= -708.0 else 0.0
    opq = 1.0 + q
    tl = (1.0 - q) / opq
    if ay < 0.625:
        return z + z * rs, 1.0 - ts * ts
    return (tl if y >= 0.0 else -tl) * inv, 4.0 * q / (opq * opq)


@device
def sumsq(M, rr, n, acc):
    """sum(M[rr, :n]**2) in float64 with LANES fixed partial sums (vectorisable, ISA-independent bits).
    (Rows are indexed, not sliced: a row view costs two atomic reference-count updates.)"""
    for q in range(LANES):
        acc[q] = 0.0
    nfull = n - n % LANES
    for i0 in range(0, nfull, LANES):
        for q in range(LANES):
            v = np.float64(M[rr, i0 + q])
            acc[q] += v * v
    s = 0.0
    for q in range(LANES):
        s += acc[q]
    for i in range(nfull, n):
        v = np.float64(M[rr, i])
        s += v * v
    return s


@device
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


@device
def scale_row(M, rr, n, k):
    """M[rr, :n] *= 2**-k exactly (in steps of at most 2**±100, so every factor is a normal number)."""
    while k != 0:
        step = min(max(k, -100), 100)
        f = cast_like(M, math.ldexp(1.0, -step))
        for i in range(n):
            M[rr, i] = M[rr, i] * f
        k -= step


@device
def renorm_exponent(s, e, floor):
    """New exponent for a row with squared norm s (of g) and exponent e: unchanged while
    ||g|| is in [2**-RENORM_EXP, 2**RENORM_EXP] (or zero), else so that ||g|| lands in [1/2, 1);
    never below ``floor``."""
    if s > _HI or (s < _LO and s > 0.0):
        _, ex = math.frexp(s)
        k = (ex + 1) // 2
        return max(e + k, floor)
    return e


@_called
def norm_rows(M, rows, n, Ex, floor, acc, rec, out, r0, k):
    """The end of a step for rows rr < ``rows`` of M (the states g or the tangents, exponents Ex): the
    squared norm ss of M[rr, :n]; out[r0 + rr, k] = log(sqrt(ss)·2**Ex[rr]) when ``rec``; then the
    renormalisation (the row scaled by a power of two, Ex[rr] updated, when ||row|| left
    [2**-RENORM_EXP, 2**RENORM_EXP]).  One compiled function per dtype, called once per step for the
    states and once for the tangents (a call per row cost 5-10% of a step at n = 64)."""
    for rr in range(rows):
        e = Ex[rr]
        ss = sumsq(M, rr, n, acc)
        if rec:
            out[r0 + rr, k] = log_norm(ss, e)
        ne = renorm_exponent(ss, e, floor)
        if ne != e:
            scale_row(M, rr, n, ne - e)
            Ex[rr] = ne


# --- the inputs --------------------------------------------------------------------------------------
@device
def draw_inputs(XB, L, rows, X, mode, v0, cnt, vpb, group, c2, c3_base, r0, k0, k1):
    """Input values v0 .. v0+cnt-1 of rows rr < ``rows`` (realisations r0 + rr) into
    XB[rr·L : rr·L + cnt] (L >= cnt + group).

    GAUSSIAN: values of the normal stream (c2, c3 = c3_base + r0 + rr), from the one stream body
    (kernels/cpu/stream.py ``fill_normal``; ``vpb`` values per Philox block, ``group`` values per
    vectorised group of blocks).  The count is rounded up to whole groups after the first block boundary,
    so the stream body never needs its scratch buffer for a partial group; the values past cnt are the
    stream's next ones, never used.  ARRAY: a copy of X[r or 0, v0 : v0+cnt] (X: (Rx, steps·d))."""
    if mode == GAUSSIAN:
        head = -v0 % vpb                          # values up to the next Philox block
        if cnt > head:
            cnt = head + (cnt - head + group - 1) // group * group
        one = cast_like(XB, 1.0)
        for rr in range(rows):
            fill_normal(XB, rr * L, v0, cnt, c2, c3_base + np.uint64(r0 + rr), k0, k1, one)
    else:
        Rx = X.shape[0]
        for rr in range(rows):
            rx = r0 + rr if Rx > 1 else 0
            for j in range(cnt):
                XB[rr * L + j] = X[rx, v0 + j]


# --- the time loop of one work item -----------------------------------------------------------------
_I64 = types.int64
_U64 = types.uint64


def _sig(T):
    """Signature of :func:`run_item` for dtype T."""
    return types.void(
        T[:, :, ::1],            # P: [Wᵀ; Uᵀ] of the matrix, packed (packed_gemm.pack_panels)
        T[::1],                  # bias (n,) or (0,)
        T[:, ::1],               # X (Rx, steps·d): the matrix's inputs array (a dummy unless ARRAY)
        T[:, ::1],               # A (>= Rc, K): rows [g | x_t 2**-e (with U)]: the states, in and out
        T[:, ::1],               # C (>= Rc, npan·NR): the product
        _I64[::1],               # E (>= Rc,): exponents, in and out
        T[:, ::1], T[:, ::1],    # V (>= Rc, n): the tangents, in and out; CV (>= Rc, npan·NR); (0, .) without
        _I64[::1],               # EV (>= Rc,) or (0,)
        T[::1],                  # XB: the inputs, rows of xbl >= spd·d + group values, or (0,)
        types.float64[::1],      # acc (LANES,): scratch of sumsq
        types.float64[:, ::1],   # out_log (R, K) of the matrix
        types.float64[:, ::1],   # out_tlog (R, K) of the matrix (a dummy without tangent)
        _I64, _I64, _I64, _I64,  # n, steps, record_every, input_mode
        _I64, _I64, _I64,        # nonlin, tangent, e_floor
        _I64, _I64, _I64,        # d, spd (steps of inputs staged per draw), xbl (XB row length)
        _I64, _I64,              # vpb (values per Philox block), group (values per vectorised group)
        _U64, _U64,              # k0, k1 (the key)
        _I64,                    # Rc: rows (realisations) of the item
        _U64, _U64,              # c2 (= c2_start + m), c3_base: the stream of the inputs
        T,                       # input_scale
        _I64,                    # r0: the first realisation of the chunk
    )


def run_item(P, bias, X, A, C, E, V, CV, EV, XB, acc, out_log, out_tlog, n, steps, record_every, input_mode,
             nonlin, tangent, e_floor, d, spd, xbl, vpb, group, k0, k1, Rc, c2, c3_base, input_scale, r0):
    """The whole time loop of one matrix and realisations r0 .. r0+Rc-1 (one work item): rows rr < Rc of
    the work arrays."""
    K = P.shape[1]
    du = K - n
    nbias = bias.shape[0]
    sig64 = np.float64(input_scale)
    no_floor = np.int64(NO_FLOOR)
    inputs = input_mode != NO_INPUT

    for t in range(1, steps + 1):
        js = (t - 1) % spd
        if inputs and js == 0:     # the inputs of spd steps of every row into XB
            draw_inputs(XB, xbl, Rc, X, input_mode, (t - 1) * d, min(spd, steps - t + 1) * d, vpb, group, c2,
                        c3_base, r0, k0, k1)
        if du > 0 and inputs:                        # inputs enter the product: A[:, n:] = x_t 2**-e
            for rr in range(Rc):
                cx = cast_like(A, sig64 * pow2(-E[rr]))
                base = np.uint64(rr * xbl + js * d)
                for i in range(d):
                    A[rr, n + i] = XB[base + np.uint64(i)] * cx
        gemm_packed(A, P, C, K, Rc)
        if tangent:
            gemm_packed(V, P, CV, n, Rc)
        rec = t % record_every == 0
        kk = t // record_every - 1
        for rr in range(Rc):
            e = E[rr]
            # pre-activation z (scaled by 2**-e) into A[rr, :n]
            if du == 0 and inputs:
                cx = cast_like(A, sig64 * pow2(-e))
                base = np.uint64(rr * xbl + js * d)
                for i in range(n):
                    A[rr, i] = C[rr, i] + XB[base + np.uint64(i)] * cx
            else:
                for i in range(n):
                    A[rr, i] = C[rr, i]
            if nbias > 0:
                cb = cast_like(A, pow2(-e))
                for i in range(n):
                    A[rr, i] = A[rr, i] + bias[i] * cb
            # nonlinearity, and the tangent's D_t W v (the tangent branch is loop-invariant)
            if nonlin == RELU:
                for i in range(n):
                    pos = A[rr, i] > 0
                    if not pos:
                        A[rr, i] = 0
                    if tangent:
                        V[rr, i] = CV[rr, i] if pos else 0
            elif nonlin == TANH:
                s = pow2(e)
                inv = pow2(-e)
                if tangent:
                    for i in range(n):
                        g, dd = tanh_scaled(np.float64(A[rr, i]), s, inv)
                        A[rr, i] = g
                        V[rr, i] = CV[rr, i] * dd
                else:
                    for i in range(n):
                        g, dd = tanh_scaled(np.float64(A[rr, i]), s, inv)
                        A[rr, i] = g
            elif tangent:
                for i in range(n):
                    V[rr, i] = CV[rr, i]
        # norms, records, renormalisation
        norm_rows(A, Rc, n, E, e_floor, acc, rec, out_log, r0, kk)
        if tangent:
            norm_rows(V, Rc, n, EV, no_floor, acc, rec, out_tlog, r0, kk)


# one kernel per dtype, compiled (or loaded from the cache) on first use
_RUN_ITEM = {np.dtype(np.float32): kernel(_sig(types.float32))(run_item),
             np.dtype(np.float64): kernel(_sig(types.float64))(run_item)}


def unroll(plan, W, UT, bias, xarr, G0, E0, V0, EV0, out):
    """Run the recurrences of every matrix of W (batch, n, n) and every realisation (spec.unroll.Plan
    ``plan``); fill the arrays of ``out`` (a dict, spec.unroll.OUTPUTS).  UT (du, n) is U transposed
    (du = 0 without U), bias (n,) or (0,), xarr (Bx, Rx, steps, d) the inputs array (a dummy unless
    plan.mode is ARRAY); the initial states are G0 (batch, R, n) · 2**E0 (batch, R) and, with the
    tangent, V0 · 2**EV0.  All C-contiguous host arrays in W's dtype (exponents int64).

    The states evolve in place in the outputs (in a (batch, R, n + du) array with U: its last du
    columns carry the scaled inputs).  Work items run in contiguous ranges on the CPU threads
    (threads.run_chunks); a range packs its matrices in one NumPy call and gets its own work buffers."""
    p = plan
    dt = np.dtype(W.dtype)
    fn = _RUN_ITEM[dt].dispatcher
    nb, R, n, du, tangent = p.batch, p.R, p.n, p.du, p.tangent
    K = n + du
    nr = panel_width(dt)
    ncol = -(-n // nr) * nr
    nch = spec.nchunks(R, nb, threads.nthreads())
    rmax = -(-R // nch)
    spd = spec.steps_per_draw(p)
    vpb = VALUES_PER_BLOCK[dt.name]
    group = vpb * SUPER
    per_line = ALIGN // dt.itemsize
    xbl = -(-(spd * p.d + group) // per_line) * per_line if p.mode != NO_INPUT else 0   # aligned rows
    X = xarr.reshape(xarr.shape[0], xarr.shape[1], -1)
    out_log, out_tlog = out["log_norm"], out["tangent_log_norm"]
    out_g, out_e = out["final_state"], out["final_exponent"]
    out_v, out_ev = out["final_tangent"], out["final_tangent_exponent"]
    scal = (np.int64(n), np.int64(p.steps), np.int64(p.record_every), np.int64(p.mode), np.int64(p.nonlin),
            np.int64(tangent), np.int64(p.e_floor), np.int64(p.d), np.int64(spd), np.int64(xbl),
            np.int64(vpb), np.int64(group), np.uint64(p.k0), np.uint64(p.k1))
    c3, scale = np.uint64(p.c3_base), dt.type(p.input_scale)
    c2_0 = p.c2_start   # start + batch <= 2**32: c2 = c2_0 + m fits its 32-bit word

    def run(t0, t1):
        m0, m1 = t0 // nch, (t1 - 1) // nch + 1
        B = np.swapaxes(W[m0:m1], 1, 2)
        if du:
            B = np.concatenate((B, np.broadcast_to(UT, (m1 - m0, du, n))), axis=1)
        P = pack_panels(B, dt)
        nv = rmax if tangent else 0
        # private, 64-byte aligned work buffers (a state row shared with another thread, or misaligned,
        # ran the tanh loop at half speed)
        A, C = aligned_empty((rmax, K), dt), aligned_empty((rmax, ncol), dt)
        V, CV = aligned_empty((nv, n), dt), aligned_empty((nv, ncol), dt)
        E, EV = np.empty(rmax, np.int64), np.empty(nv, np.int64)
        XB, acc = aligned_empty(rmax * xbl, dt), np.empty(LANES)
        A[:, n:] = 0
        Xm = X[0]
        for t in range(t0, t1):
            m, c = divmod(t, nch)
            r0, r1 = c * R // nch, (c + 1) * R // nch        # spec.chunk
            Rc = r1 - r0
            A[:Rc, :n] = G0[m, r0:r1]
            E[:Rc] = E0[m, r0:r1]
            if tangent:
                V[:Rc] = V0[m, r0:r1]
                EV[:Rc] = EV0[m, r0:r1]
            fn(P[m - m0], bias, X[m] if X.shape[0] > 1 else Xm, A, C, E, V, CV, EV, XB, acc, out_log[m],
               out_tlog[m] if tangent else out_tlog[0], *scal, np.int64(Rc), np.uint64(c2_0 + m), c3, scale,
               np.int64(r0))
            out_g[m, r0:r1] = A[:Rc, :n]
            out_e[m, r0:r1] = E[:Rc]
            if tangent:
                out_v[m, r0:r1] = V[:Rc]
                out_ev[m, r0:r1] = EV[:Rc]

    threads.run_chunks(run, nb * nch)
