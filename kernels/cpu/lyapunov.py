"""Lyapunov spectra of recurrences (Benettin's method), one compiled time loop per trajectory.

A work item is one matrix ``m`` and one realisation ``r``: the state h_t = f(W h_{t-1} + U x_t + b) and
an n x k tangent frame F_t = D_t W F_{t-1}, re-orthonormalised by QR at the steps that
``rinit_fast.spec.lyapunov.qr_due`` names; log|R_cc| is summed per frame column.  Items run on the
shared thread pool (kernels/cpu/threads.py); an item's bits never depend on the thread, the batch or its
position in it.  The control logic (schedule, records, blocks, plan layout) is the spec's
(rinit_fast/spec/lyapunov.py); this module is the arithmetic.

The step. The frame is row-major (n, KW): columns 0..k-1, the rest zero (KW: k rounded up to the QR's
16-column blocks and to whole panels of the product). The state is rf.unroll's, step for step
(``state_step``: the same operations as kernels/cpu/unroll.py's time loop, so the same bits): h = g·2**e,
z = [g | x_t·cx] @ [Wᵀ; Uᵀ] + b·2**-e with [Wᵀ; Uᵀ] packed once (kernels/cpu/packed_gemm.py),
g = max(z, 0) or ``tanh_scaled``, the exact power-of-two renormalisation of ``norm_rows``, e never below the
plan's EFLOOR; the inputs are staged by unroll's ``draw_inputs`` (the stream body, kernels/cpu/stream.py).
linear: no state at all (D_t = I: the exponents do not depend on the trajectory). The frame's product
C = W F is packed_gemm's micro-kernel too (W times the frame packed in panels; for k < NR the transposed frame
times the packed Wᵀ, the same bits): every entry one chain of fused multiply-adds, so the bits do not depend
on the BLAS, the instruction set or the thread. Then C[i, :k] *= f'(y_i). A QR step factors C in place and
leaves the new frame in C; other steps rescale C's columns by powers of two (exactly) so nothing overflows,
and carry the exponents into the next QR's logs. Then C and F swap roles.

QR.  Householder QR (LAPACK's conventions: R_jj = -sign(alpha)·||x||) with the frame's rows contiguous,
so that every reflector update is vectorised across columns, blocked by panels of four reflectors
(``qr_own``).  The primitives work on one 16-column block and are written as LLVM IR on ``<16 x T>``
vectors, the accumulators in registers through the rows: Numba's loop vectoriser left a loop set-up and
a scalar epilogue per row, on rows of 16-64 elements (2x slower), and LAPACK's xGEQRF + xORGQR (or
xGELQF + xORGLQ on this layout) took 4x as long at n = k = 64, 1.3-1.4x at n = k = 256 and 1.1-1.3x at
n = 256, k = 32 (bench/NOTES.md "Lyapunov").
Each output is a fixed chain of fused multiply-adds, so its bits do not depend on the thread or the
batch.  The IR is written for the Numba and llvmlite versions of packed_gemm's guard
(``packed_gemm.check_versions()``, called at import: the project's one version guard).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rinit_fast.spec import lyapunov as S
from rinit_fast.spec.activations import LINEAR, RELU
from rinit_fast.spec.stream import VALUES_PER_BLOCK
from rinit_fast.spec.unroll import GEN_VALUES, LN2, NO_INPUT
from rinit_fast.spec.unroll import LANES as ACC_LANES

from . import packed_gemm, threads
from ._jit import _COMMON, device, kernel
from .packed_gemm import aligned_empty, gemm_packed, pack_panels, panel_width
from .stream import SUPER, fill_normal
# rf.unroll's step of the state h = g·2**e (the same operations, so the same bits) and its helpers
from .unroll import cast_like as like
from .unroll import draw_inputs, norm_rows, pow2, renorm_exponent, tanh_scaled

packed_gemm.check_versions()     # the IR below (intrinsics, cgutils) sits behind the project's one guard

_called = numba.njit(**_COMMON)   # helpers: compiled once per signature, called (not inlined)

BL = S.LANES
LOG4 = math.log(4.0)
M32 = np.uint64(0xFFFFFFFF)

# plan fields (rinit_fast/spec/lyapunov.py)
P_N, P_K, P_KP, P_D, P_STEPS, P_WARMUP, P_REORTHO, P_RECORD, P_NREC, P_MODE, P_NONLIN, P_NBIAS, \
    P_EFLOOR, P_NBLOCKS, P_C2START, P_C3INPUTS, P_C3FRAME, P_K0, P_K1 = (S.PLAN[f] for f in S.PLAN_FIELDS)

_qr_due = device(S.qr_due)               # the spec's schedule, inlined (tiny functions: a call of its own
_record_index = device(S.record_index)   # cost more compile time than the body)
_block_of = device(S.block_of)


# --- 16-column block primitives (LLVM IR on <16 x T> vectors) ----------------------------------------
def _ftype(dt):
    if dt == types.float32:
        return ir.FloatType(), "f32"
    if dt == types.float64:
        return ir.DoubleType(), "f64"
    return None, None


def _vec_helpers(context, builder, fty, nm):
    vty = ir.VectorType(fty, BL)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                         f"llvm.fma.v{BL}{nm}")
    i32 = ir.IntType(32)
    undef = ir.Constant(vty, ir.Undefined)
    mask = ir.Constant(ir.VectorType(i32, BL), [0] * BL)

    def splat(s):
        return builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, mask)
    return vty, fma, splat


def _loop(builder, intp, start, stop, step, carried, body):
    """for i in range(start, stop - step + 1, step) with loop-carried values; returns (i at exit, carried)."""
    entry = builder.block
    head = builder.append_basic_block("lh")
    blk = builder.append_basic_block("lb")
    done = builder.append_basic_block("ld")
    builder.branch(head)
    builder.position_at_end(head)
    i = builder.phi(intp)
    i.add_incoming(start, entry)
    phis = []
    for v in carried:
        ph = builder.phi(v.type)
        ph.add_incoming(v, entry)
        phis.append(ph)
    nxt = builder.add(i, ir.Constant(intp, step))
    builder.cbranch(builder.icmp_signed("<=", nxt, builder.add(stop, ir.Constant(intp, 0))), blk, done)
    builder.position_at_end(blk)
    new = body(i, phis)
    end = builder.block
    i.add_incoming(nxt, end)
    for ph, v in zip(phis, new):
        ph.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return i, phis


@intrinsic
def _hh_gemv(typingctx, A, V, j, r0, r1, c, w, sc):
    """The reflector of column j applied to one block, first half, with its vector written on the way:
    v_r0 = 1 and v_i = A[i, j]·sc for r0 < i < r1 are stored in V[:, j], and
    w[c:c+16] = sum_i v_i · A[i, c:c+16] (two accumulators by row parity, as _vgemv)."""
    fty, nm = _ftype(A.dtype)
    if fty is None:
        return None
    sig = types.void(A, V, j, r0, r1, c, w, sc)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)

        def iv(q):
            return context.cast(builder, args[q], signature.args[q], types.intp)
        a = context.make_array(signature.args[0])(context, builder, args[0])
        v = context.make_array(signature.args[1])(context, builder, args[1])
        o = context.make_array(signature.args[6])(context, builder, args[6])
        scv = context.cast(builder, args[7], signature.args[7], signature.args[0].dtype)
        ld = cgutils.unpack_tuple(builder, a.shape, 2)[1]
        ldv = cgutils.unpack_tuple(builder, v.shape, 2)[1]
        jv, r0v, r1v, cv = iv(2), iv(3), iv(4), iv(5)
        vty, fma, splat = _vec_helpers(context, builder, fty, nm)
        vptr = vty.as_pointer()
        builder.store(ir.Constant(fty, 1.0), builder.gep(v.data, [builder.add(builder.mul(r0v, ldv), jv)]))
        p0 = builder.gep(a.data, [builder.add(builder.mul(r0v, ld), cv)])
        first = builder.load(builder.bitcast(p0, vptr), align=4)
        zero = ir.Constant(vty, [0.0] * BL)

        def term(i, acc):
            base = builder.mul(i, ld)
            row = builder.load(builder.bitcast(builder.gep(a.data, [builder.add(base, cv)]), vptr), align=4)
            vi = builder.fmul(builder.load(builder.gep(a.data, [builder.add(base, jv)])), scv)
            builder.store(vi, builder.gep(v.data, [builder.add(builder.mul(i, ldv), jv)]))
            return builder.call(fma, [splat(vi), row, acc])

        def two(i, acc):
            return [term(i, acc[0]), term(builder.add(i, ir.Constant(intp, 1)), acc[1])]
        i, (a0, a1) = _loop(builder, intp, builder.add(r0v, ir.Constant(intp, 1)), r1v, 2, [first, zero], two)
        _, (b0,) = _loop(builder, intp, i, r1v, 1, [a0], lambda i, acc: [term(i, acc[0])])
        builder.store(builder.fadd(b0, a1), builder.bitcast(builder.gep(o.data, [cv]), vptr), align=4)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _hh_ger(typingctx, A, V, j, r0, r1, c, w, s, nrm, nr0):
    """Second half: A[i, c:c+16] -= V[i, j] · (s · w[c:c+16]) for r0 <= i < r1, and
    nrm[c:c+16] = sum over nr0 <= i < r1 of the updated A[i, c:c+16]**2 in float64 (the squared norms
    of the block's columns below row nr0 - 1: the next reflector's column, without a strided pass)."""
    fty, nm = _ftype(A.dtype)
    if fty is None:
        return None
    sig = types.void(A, V, j, r0, r1, c, w, s, nrm, nr0)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)

        def iv(q):
            return context.cast(builder, args[q], signature.args[q], types.intp)
        a = context.make_array(signature.args[0])(context, builder, args[0])
        v = context.make_array(signature.args[1])(context, builder, args[1])
        wa = context.make_array(signature.args[6])(context, builder, args[6])
        na = context.make_array(signature.args[8])(context, builder, args[8])
        sv = context.cast(builder, args[7], signature.args[7], signature.args[0].dtype)
        ld = cgutils.unpack_tuple(builder, a.shape, 2)[1]
        ldv = cgutils.unpack_tuple(builder, v.shape, 2)[1]
        jv, r0v, r1v, cv, nr0v = iv(2), iv(3), iv(4), iv(5), iv(9)
        vty, fma, splat = _vec_helpers(context, builder, fty, nm)
        dty = ir.VectorType(ir.DoubleType(), BL)
        dfma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(dty, [dty, dty, dty]),
                                              f"llvm.fma.v{BL}f64")
        vptr = vty.as_pointer()
        wv = builder.load(builder.bitcast(builder.gep(wa.data, [cv]), vptr), align=4)
        tw = builder.fmul(splat(sv), wv)

        def update(i):
            base = builder.mul(i, ld)
            p = builder.bitcast(builder.gep(a.data, [builder.add(base, cv)]), vptr)
            xi = builder.fneg(builder.load(builder.gep(v.data, [builder.add(builder.mul(i, ldv), jv)])))
            row = builder.call(fma, [splat(xi), tw, builder.load(p, align=4)])
            builder.store(row, p, align=4)
            return row

        def plain(i, _):
            update(i)
            return []

        def normed(i, acc):
            row = update(i)
            r64 = row if nm == "f64" else builder.fpext(row, dty)
            return [builder.call(dfma, [r64, r64, acc[0]])]
        mid = builder.select(builder.icmp_signed("<", nr0v, r1v), nr0v, r1v)
        mid = builder.select(builder.icmp_signed(">", mid, r0v), mid, r0v)
        _loop(builder, intp, r0v, mid, 1, [], plain)
        _, (acc,) = _loop(builder, intp, mid, r1v, 1, [ir.Constant(dty, [0.0] * BL)], normed)
        builder.store(acc, builder.bitcast(builder.gep(na.data, [cv]), dty.as_pointer()), align=8)
        return context.get_dummy_value()
    return sig, codegen


NB = 4   # reflectors per panel of the blocked QR


def _make_v4(nblk):
    """The block-reflector primitives on ``nblk`` adjacent 16-column blocks at once (1 or 2: two blocks
    share the four broadcasts of V's row per row of A, the loads that bound the one-block version)."""

    @intrinsic
    def v4gemv(typingctx, A, V, vc, r0, r1, c, Y):
        """Y[q, c:c+16·nblk] = sum over r0 <= i < r1 of V[i, vc + q] · A[i, c:c+16·nblk], q < 4
        (Y = V_panel^T A).  Per q and block, P accumulators (P = 2, or 1 for two float64 blocks:
        registers) take the rows r0 + P·m + p; rows after the last whole group go to the first; summed at
        the end: a fixed order."""
        fty, nm = _ftype(A.dtype)
        if fty is None:
            return None
        sig = types.void(A, V, vc, r0, r1, c, Y)
        npar = 1 if (nblk > 1 and nm == "f64") else 2

        def codegen(context, builder, signature, args):
            intp = context.get_value_type(types.intp)

            def iv(q):
                return context.cast(builder, args[q], signature.args[q], types.intp)

            def const(q):
                return ir.Constant(intp, q)
            a = context.make_array(signature.args[0])(context, builder, args[0])
            v = context.make_array(signature.args[1])(context, builder, args[1])
            y = context.make_array(signature.args[6])(context, builder, args[6])
            ld = cgutils.unpack_tuple(builder, a.shape, 2)[1]
            ldv = cgutils.unpack_tuple(builder, v.shape, 2)[1]
            ldy = cgutils.unpack_tuple(builder, y.shape, 2)[1]
            vcv, r0v, r1v, cv = iv(2), iv(3), iv(4), iv(5)
            vty, fma, splat = _vec_helpers(context, builder, fty, nm)
            vptr = vty.as_pointer()
            zero = ir.Constant(vty, [0.0] * BL)
            width = NB * nblk                                   # accumulators per row group

            def terms(i, acc):
                base = builder.add(builder.mul(i, ld), cv)
                rows = [builder.load(builder.bitcast(builder.gep(a.data, [builder.add(base, const(BL * b))]),
                                                     vptr), align=4) for b in range(nblk)]
                vb = builder.add(builder.mul(i, ldv), vcv)
                vq = [splat(builder.load(builder.gep(v.data, [builder.add(vb, const(q))])))
                      for q in range(NB)]
                return [builder.call(fma, [vq[q], rows[b], acc[q * nblk + b]]) for q in range(NB)
                        for b in range(nblk)]

            def group(i, acc):
                out = []
                for p in range(npar):
                    out += terms(builder.add(i, const(p)), acc[p * width:(p + 1) * width])
                return out
            i, acc = _loop(builder, intp, r0v, r1v, npar, [zero] * (npar * width), group)
            _, acc0 = _loop(builder, intp, i, r1v, 1, acc[:width], terms)
            for q in range(NB):
                for b in range(nblk):
                    s_ = acc0[q * nblk + b]
                    for p in range(1, npar):
                        s_ = builder.fadd(s_, acc[p * width + q * nblk + b])
                    dst = builder.gep(y.data, [builder.add(builder.add(builder.mul(const(q), ldy), cv),
                                                           const(BL * b))])
                    builder.store(s_, builder.bitcast(dst, vptr), align=4)
            return context.get_dummy_value()
        return sig, codegen

    @intrinsic
    def v4ger(typingctx, A, V, vc, r0, r1, c, Y, Tm):
        """Z_q = sum_p Tm[q, p] · Y[p, c:c+16·nblk] (q, p < 4), then
        A[i, c:c+16·nblk] -= sum_q V[i, vc + q]·Z_q for r0 <= i < r1: the block reflector update
        A <- (I - V Tm' V^T) A, with Y = V^T A from v4gemv (Tm = T^T applies Q^T = H_{j+3}..H_j, Tm = T
        applies Q = H_j..H_{j+3})."""
        fty, nm = _ftype(A.dtype)
        if fty is None:
            return None
        sig = types.void(A, V, vc, r0, r1, c, Y, Tm)

        def codegen(context, builder, signature, args):
            intp = context.get_value_type(types.intp)

            def iv(q):
                return context.cast(builder, args[q], signature.args[q], types.intp)

            def const(q):
                return ir.Constant(intp, q)
            a = context.make_array(signature.args[0])(context, builder, args[0])
            v = context.make_array(signature.args[1])(context, builder, args[1])
            y = context.make_array(signature.args[6])(context, builder, args[6])
            tm = context.make_array(signature.args[7])(context, builder, args[7])
            ld = cgutils.unpack_tuple(builder, a.shape, 2)[1]
            ldv = cgutils.unpack_tuple(builder, v.shape, 2)[1]
            ldy = cgutils.unpack_tuple(builder, y.shape, 2)[1]
            vcv, r0v, r1v, cv = iv(2), iv(3), iv(4), iv(5)
            vty, fma, splat = _vec_helpers(context, builder, fty, nm)
            vptr = vty.as_pointer()
            z = []                                              # z[q][b]
            for q in range(NB):
                zq = []
                for b in range(nblk):
                    acc = None
                    for p in range(NB):
                        src = builder.add(builder.add(builder.mul(const(p), ldy), cv), const(BL * b))
                        yv = builder.load(builder.bitcast(builder.gep(y.data, [src]), vptr), align=4)
                        tqp = splat(builder.load(builder.gep(tm.data, [const(NB * q + p)])))
                        acc = builder.fmul(tqp, yv) if acc is None else builder.call(fma, [tqp, yv, acc])
                    zq.append(acc)
                z.append(zq)

            def body(i, _):
                base = builder.add(builder.mul(i, ld), cv)
                ptrs = [builder.bitcast(builder.gep(a.data, [builder.add(base, const(BL * b))]), vptr)
                        for b in range(nblk)]
                rows = [builder.load(p_, align=4) for p_ in ptrs]
                vb = builder.add(builder.mul(i, ldv), vcv)
                for q in range(NB):
                    vq = splat(builder.fneg(builder.load(builder.gep(v.data, [builder.add(vb, const(q))]))))
                    rows = [builder.call(fma, [vq, z[q][b], rows[b]]) for b in range(nblk)]
                for p_, r_ in zip(ptrs, rows):
                    builder.store(r_, p_, align=4)
                return []
            _loop(builder, intp, r0v, r1v, 1, [], body)
            return context.get_dummy_value()
        return sig, codegen
    return v4gemv, v4ger


_v4gemv, _v4ger = _make_v4(1)
_v4gemv2, _v4ger2 = _make_v4(2)


@device
def _block_update(A, V, j0, r0, n, c0, KP, Y, Tm):
    """A[r0:n, c0:KP] <- (I - V Tm' V^T) A[r0:n, c0:KP] for the panel of reflectors j0..j0+3, two 16-column
    blocks per pass while two remain."""
    c = c0
    while c + 2 * BL <= KP:
        _v4gemv2(A, V, j0, r0, n, c, Y)
        _v4ger2(A, V, j0, r0, n, c, Y, Tm)
        c += 2 * BL
    if c < KP:
        _v4gemv(A, V, j0, r0, n, c, Y)
        _v4ger(A, V, j0, r0, n, c, Y, Tm)


# --- QR -----------------------------------------------------------------------------------------------
@device
def colsumsq(A, c, r0, r1):
    """sum of A[i, c]**2 over r0 <= i < r1 in float64 (four partial sums: the additions do not wait on
    each other; (s0 + s1) + (s2 + s3))."""
    s0 = s1 = s2 = s3 = 0.0
    i = r0
    while i + 4 <= r1:
        a0 = np.float64(A[i, c])
        a1 = np.float64(A[i + 1, c])
        a2 = np.float64(A[i + 2, c])
        a3 = np.float64(A[i + 3, c])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
        i += 4
    while i < r1:
        a0 = np.float64(A[i, c])
        s0 += a0 * a0
        i += 1
    return (s0 + s1) + (s2 + s3)


@_called
def qr_own(A, V, T, Y, w, logr, nrm, n, k):
    """A (n, KP) row-major, columns >= k zero: logr[c] = log|R_cc| of A = QR (Householder), and A <- Q
    (columns >= k zero again).

    Blocked by panels of NB = 4 reflectors (LAPACK's xGEQRF/xORGQR scheme at register level): a panel's
    reflectors are computed and applied one at a time to the panel's own 16-column block (_vgemv/_vger);
    the blocks to its right get them at once as the block reflector I - V T V^T (_v4gemv/_v4ger: one
    pass over the rows for four reflectors).  Q = H_0 ... H_{k-1} [I; 0] is formed backwards by panels.
    Workspace: V (n, KP) zero on entry (v_j in column j, rows >= j), T (panels + 1, NB, NB) (the last one a
    scratch T^T), Y (NB, KP), w (KP,), nrm (KP,) float64.
    """
    KP = min(A.shape[1], ((k + BL - 1) // BL) * BL)     # the blocks that hold frame columns
    Tm = T[T.shape[0] - 1]
    for j0 in range(0, k, NB):
        j1 = min(j0 + NB, k)
        cb = (j0 // BL) * BL
        xn2 = colsumsq(A, j0, j0 + 1, n)
        for j in range(j0, j1):
            alpha = np.float64(A[j, j])
            if xn2 == 0.0:
                t = 0.0
                beta = alpha
                sc = 0.0
            else:
                beta = -math.copysign(math.sqrt(alpha * alpha + xn2), alpha)
                t = (beta - alpha) / beta
                sc = 1.0 / (alpha - beta)
            logr[j] = math.log(abs(beta))
            T[j0 // NB, j - j0, j - j0] = t
            if t != 0.0 and j + 1 < k:               # the rest of the panel's block, v_j written on the way
                _hh_gemv(A, V, j, j, n, cb, w, like(A, sc))
                _hh_ger(A, V, j, j, n, cb, w, like(A, t), nrm, j + 2)
                xn2 = nrm[j + 1]
            else:
                V[j, j] = 1
                for i in range(j + 1, n):
                    V[i, j] = A[i, j] * like(A, sc)
                if j + 1 < j1:
                    xn2 = colsumsq(A, j + 1, j + 2, n)
        # T of the panel: H_j0 ... H_j1-1 = I - V T V^T, T[:q, q] = -tau_q T[:q, :q] (V[:, :q]^T v_q)
        p = j0 // NB
        _v4gemv(V, V, j0, j0, n, cb, Y)               # Y[q, j0 - cb + r] = v_{j0+q} . v_{j0+r}
        for q in range(1, j1 - j0):
            for r in range(q):
                acc = 0.0
                for m in range(r, q):
                    acc += np.float64(T[p, r, m]) * np.float64(Y[m, j0 + q])
                T[p, r, q] = -np.float64(T[p, q, q]) * acc
        if cb + BL < KP and j1 < k:
            for q in range(NB):
                for r in range(NB):
                    Tm[q, r] = T[p, r, q]
            _block_update(A, V, j0, j0, n, cb + BL, KP, Y, Tm)
    for i in range(n):
        for c in range(KP):
            A[i, c] = 0
    for c in range(k):
        A[c, c] = 1
    for j0 in range(((k - 1) // NB) * NB, -1, -NB):
        _block_update(A, V, j0, j0, n, (j0 // BL) * BL, KP, Y, T[j0 // NB])


# --- the parts of a step (separately compiled: one large function took longer to compile than its parts) --
@_called
def pack_frame(F, P):
    """P[p, i, j] = F[i, p·NR + j]: the frame (n, >= npan·NR, zero past column k) in the panels of
    packed_gemm (npan, n, NR), the right operand of the product W F."""
    nr = P.shape[2]
    for p in range(P.shape[0]):
        c0 = p * nr
        for i in range(F.shape[0]):
            for j in range(nr):
                P[p, i, j] = F[i, c0 + j]


# --- the state: rf.unroll's step (kernels/cpu/unroll.py), one row -----------------------------------------
@_called
def state_step(PW, A, Z, E, XB, xo, bias, nonlin, inputs, n, du, sig64, e_floor, dvec, acc, dummy):
    """One step of rf.unroll's recurrence for the state row A[0] = [g | x_t·cx] (h = g·2**E[0]), with the
    same operations in the same order as kernels/cpu/unroll.py's ``run_item``, so the same bits:
    z = [g | x_t·cx] @ [Wᵀ; Uᵀ] (packed_gemm, PW), + x_t·cx without U, + b·2**-e; g = f_e(z) (relu, or
    ``tanh_scaled``); the renormalisation of ``norm_rows``.  x_t = XB[xo:xo+d] (unscaled),
    cx = input_scale·2**-e.
    Also dvec[i] = f'(y_i) (y the true pre-activation).  Returns the sum of log f'(y_i) (float64)."""
    e = E[0]
    cx = like(A, sig64 * pow2(-e))
    if du > 0 and inputs:                        # the inputs enter the product: A[0, n:] = x_t·cx
        for i in range(du):
            A[0, n + i] = XB[xo + i] * cx
    gemm_packed(A, PW, Z, n + du, 1)
    if du == 0 and inputs:
        for i in range(n):
            A[0, i] = Z[0, i] + XB[xo + i] * cx
    else:
        for i in range(n):
            A[0, i] = Z[0, i]
    if bias.shape[0] > 0:
        cb = like(A, pow2(-e))
        for i in range(n):
            A[0, i] = A[0, i] + bias[i] * cb
    dsum = 0.0
    if nonlin == RELU:
        for i in range(n):
            pos = A[0, i] > 0
            if not pos:
                A[0, i] = 0
                dsum = -math.inf
            dvec[i] = 1 if pos else 0
    else:
        # tanh: sum of log tanh'(y) = n log 4 - 2 sum|y| - 2 log prod(1 + q), q = e^{-2|y|}, 1 + q = 2/(1 +
        # |tanh y|) (no cancellation where tanh' underflows); the product is formed in float64 (each factor in
        # [1, 2]) and its log taken every 512 factors (no underflow, no per-unit log)
        s = pow2(e)
        inv = pow2(-e)
        sa = 0.0
        pq = 1.0
        lq = 0.0
        for i in range(n):
            z = np.float64(A[0, i])
            gi, di = tanh_scaled(z, s, inv)
            A[0, i] = gi
            dvec[i] = like(A, di)
            sa += abs(z * s)
            pq *= 2.0 / (1.0 + abs(gi) * s)
            if (i & 511) == 511:
                lq += math.log(pq)
                pq = 1.0
        dsum = n * LOG4 - 2.0 * sa - 2.0 * (lq + math.log(pq))
    norm_rows(A, 1, n, E, e_floor, acc, False, dummy, 0, 0)
    return dsum


@_called
def renorm_columns(C, k, kp, colss, cfac, cexp):
    """Rescale the frame's columns by powers of two (exactly) when a squared norm leaves
    [2**-40, 2**40], adding the shifts to cexp (the next QR's logs carry them).  Columns >= k are zero;
    the loops run to kp (k rounded up to the QR's blocks)."""
    n = C.shape[0]
    for c in range(kp):
        colss[c] = 0.0
    for i in range(n):
        for c in range(kp):
            v = np.float64(C[i, c])
            colss[c] += v * v
    any_ = False
    for c in range(kp):
        cfac[c] = 1
    for c in range(k):
        sc = colss[c]
        sh = min(renorm_exponent(sc, 0, -120), 120)      # 0 while the norm is in [2**-20, 2**20]
        if sh != 0:
            cexp[c] += sh
            cfac[c] = like(C, math.ldexp(1.0, -sh))
            any_ = True
    if any_:
        for i in range(n):
            for c in range(kp):
                C[i, c] = C[i, c] * cfac[c]


@device
def log_qr(logr, cexp, ssum, out_blocks, out_run, m, r, t, steps, warmup, record, nblocks, k):
    """After a QR at step t: the window's sums, blocks and records (past the warm-up); cexp reset."""
    if t > warmup:
        b = _block_of(t, steps, warmup, nblocks)
        for c in range(k):
            v = logr[c] + cexp[c] * LN2
            ssum[c] += v
            out_blocks[m, r, b, c] += v
        j = _record_index(t, warmup, record)
        if j >= 0:
            for c in range(k):
                out_run[m, r, j, c] = ssum[c] / (t - warmup)
    for c in range(k):
        cexp[c] = 0


# --- the time loop of one trajectory ---------------------------------------------------------------------
def run_item(W, PW, bias, X, G0, E0, plan, sigma, out_sum, out_blocks, out_run, out_logdet, m, r, vpb, group,
             M3, P, FT, CT, T, Y, vec, v64, cexp, A, Z, E, XB, acc, dummy):
    """Matrix m, realisation r: the whole time loop (see the module docstring).  Workspace (from
    ``workspace``, zeroed): M3 (3, n, KW) the frame, the product and the reflectors; P the frame's panels
    (k >= NR), FT (k, n) and CT (k, >= n) the transposed frame and product (k < NR); T, Y (qr_own); vec
    (4, L) dtype vectors; v64 (4, L2) float64 vectors; cexp (k,) int64; the state's A (1, n + du),
    Z (1, >= n), E (1,), XB (inputs of several steps), acc (LANES,), dummy (1, 1)."""
    n = plan[P_N]
    k = plan[P_K]
    KP = plan[P_KP]
    d = plan[P_D]
    steps = plan[P_STEPS]
    warmup = plan[P_WARMUP]
    every = plan[P_REORTHO]
    record = plan[P_RECORD]
    mode = plan[P_MODE]
    nonlin = plan[P_NONLIN]
    e_floor = plan[P_EFLOOR]
    nblocks = plan[P_NBLOCKS]
    c2 = np.uint64(plan[P_C2START] + m) & M32
    c3i = np.uint64(plan[P_C3INPUTS])
    c3f = np.uint64(plan[P_C3FRAME] + r)
    k0 = np.uint64(plan[P_K0])
    k1 = np.uint64(plan[P_K1])
    du = A.shape[1] - n
    state = nonlin != LINEAR
    inputs = mode != NO_INPUT
    Wm = W[m]
    PWm = PW[m if PW.shape[0] > 1 else 0]
    Xm = X[m if X.shape[0] > 1 else 0]
    F = M3[0]
    C = M3[1]
    V = M3[2]
    w = vec[0]
    dvec = vec[1]
    cfac = vec[2]
    tmp = vec[3]
    logr = v64[0]
    ssum = v64[1]
    colss = v64[2]
    nrm = v64[3]

    # the starting frame: column c = values c·n .. c·n + n - 1 of stream (c2, C3FRAME + r), orthonormalised
    fill_normal(tmp, 0, 0, k * n, c2, c3f, k0, k1, like(W, 1))
    for i in range(n):
        for c in range(k):
            C[i, c] = tmp[c * n + i]
    qr_own(C, V, T, Y, w, logr, nrm, n, k)
    F, C = C, F

    # the state h = g·2**e (rf.unroll's representation), in A[0, :n] and E[0]
    E[0] = E0[m, r]
    for i in range(n):
        A[0, i] = G0[m, r, i]
    spd = min(max(1, GEN_VALUES // d), steps) if inputs else 1    # spec.unroll.steps_per_draw
    xbl = XB.shape[0]
    sig64 = np.float64(sigma)
    logdet = 0.0

    narrow = k < P.shape[2]          # the frame is narrower than one panel: multiply it transposed
    for t in range(1, steps + 1):
        # C = W F (columns >= k: zero).  Each entry is one chain of fused multiply-adds over W's row in
        # order, either way: as (W)(F in panels), or, for k < NR (no work on padding columns), transposed,
        # (Fᵀ)([Wᵀ; Uᵀ] packed, its first n rows)
        if narrow:
            for c in range(k):
                for i in range(n):
                    FT[c, i] = F[i, c]
            gemm_packed(FT, PWm, CT, n, k)
            for i in range(n):
                for c in range(k):
                    C[i, c] = CT[c, i]
        else:
            pack_frame(F, P)
            gemm_packed(Wm, P, C, n, n)
        if state:
            js = (t - 1) % spd
            if inputs and js == 0:                       # rf.unroll's staging of the inputs
                draw_inputs(XB, xbl, 1, Xm, mode, (t - 1) * d, min(spd, steps - t + 1) * d, vpb, group, c2,
                            c3i, r, k0, k1)
            dsum = state_step(PWm, A, Z, E, XB, js * d, bias, nonlin, inputs, n, du, sig64, e_floor, dvec,
                              acc, dummy)
            for i in range(n):                           # the frame's product D_t W F
                dv = dvec[i]
                for c in range(KP):
                    C[i, c] = C[i, c] * dv
            if t > warmup:
                logdet += dsum
        if _qr_due(t, steps, warmup, every, record):
            qr_own(C, V, T, Y, w, logr, nrm, n, k)
            log_qr(logr, cexp, ssum, out_blocks, out_run, m, r, t, steps, warmup, record, nblocks, k)
        else:
            renorm_columns(C, k, KP, colss, cfac, cexp)
        F, C = C, F

    for c in range(k):
        out_sum[m, r, c] = ssum[c]
    out_logdet[m, r] = logdet


_T32 = types.float32
_T64 = types.float64
_I64 = types.int64


def _sig(T):
    return types.void(
        T[:, :, ::1],             # W (nb, n, n)
        T[:, :, :, ::1],          # PW (nb or 1, npan, n + du, NR): [Wᵀ; Uᵀ] packed (a dummy for linear)
        T[::1],                   # bias (n,) or (0,)
        T[:, :, ::1],             # X (Bx, Rx, steps·d): the inputs array (a dummy unless ARRAY)
        T[:, :, ::1],             # G0 (nb, R, n): initial state g
        _I64[:, ::1],             # E0 (nb, R): initial exponents
        _I64[::1],                # plan (rinit_fast/spec/lyapunov.py PLAN_FIELDS)
        T,                        # input_scale
        types.float64[:, :, ::1],     # out_sum (nb, R, k)
        types.float64[:, :, :, ::1],  # out_blocks (nb, R, nblocks, k), zeroed
        types.float64[:, :, :, ::1],  # out_run (nb, R, nrec, k)
        types.float64[:, ::1],        # out_logdet (nb, R): sum of log|det D_t| over the window
        _I64, _I64,               # m, r
        _I64, _I64,               # vpb (values per Philox block), group (values per vectorised group)
        T[:, :, ::1], T[:, :, ::1], T[:, ::1], T[:, ::1],      # workspace: M3, P, FT, CT
        T[:, :, ::1], T[:, ::1],                               # T, Y
        T[:, ::1], types.float64[:, ::1], _I64[::1],          # vec, v64, cexp
        T[:, ::1], T[:, ::1], _I64[::1], T[::1],               # the state: A, Z, E, XB
        types.float64[::1], types.float64[:, ::1],             # acc, dummy
    )


_run_item_f32 = kernel(_sig(_T32))(run_item)
_run_item_f64 = kernel(_sig(_T64))(run_item)


def frame_width(k, dtype):
    """Columns of the frame's buffers: k rounded up to the QR's 16-column blocks and to whole panels of
    packed_gemm (the product writes whole panels)."""
    return -(-k // max(BL, panel_width(dtype))) * max(BL, panel_width(dtype))


def workspace(plan, dtype, du):
    """The zeroed work arrays of one item (allocated here, not in the kernel: fewer compiled allocation
    routines, and none per step); the product's operands and results 64-byte aligned (packed_gemm)."""
    n, k, kp, d, mode = (int(plan[S.PLAN[f]]) for f in ("N", "K", "KP", "D", "MODE"))
    steps = int(plan[S.PLAN["STEPS"]])
    dt = np.dtype(dtype)
    nr = panel_width(dt)
    kw = frame_width(k, dt)
    M3 = aligned_empty((3, n, kw), dt)
    M3[:] = 0
    narrow = k < nr
    P = aligned_empty((1, 1, nr) if narrow else (kw // nr, n, nr), dt)
    FT = aligned_empty((k, n) if narrow else (1, 1), dt)
    CT = aligned_empty((k, -(-n // nr) * nr) if narrow else (1, 1), dt)
    A = aligned_empty((1, n + du), dt)
    A[:] = 0
    Z = aligned_empty((1, -(-n // nr) * nr), dt)
    # the inputs of spd steps, plus the stream body's whole last group (kernels/cpu/unroll.py)
    group = VALUES_PER_BLOCK[dt.name] * SUPER
    spd = min(max(1, GEN_VALUES // d), steps)
    XB = aligned_empty(spd * d + group if mode != NO_INPUT else 0, dt)
    L = max(kw, k * n, 2)
    return (M3, P, FT, CT, np.zeros(((k + NB - 1) // NB + 1, NB, NB), dt), np.zeros((NB, kw), dt),
            np.zeros((4, L), dt), np.zeros((4, kw)), np.zeros(k, np.int64), A, Z, np.zeros(1, np.int64), XB,
            np.zeros(ACC_LANES),
            np.zeros((1, 1)))


def work_bytes(n, k, d, du, steps, dtype):
    """Bytes of one item's work arrays (``workspace``; rinit_fast/lyapunov.py checks the memory)."""
    dt = np.dtype(dtype)
    kw = frame_width(k, dt)
    spd = min(max(1, GEN_VALUES // d), steps)
    items = 4 * n * kw + 4 * max(kw, k * n) + 2 * k * (n + 32) + NB * kw + 2 * n + du + spd * d + 128
    return items * dt.itemsize + 8 * (4 * kw + k + 16 * (k // NB + 2)) + 1024


def lyapunov(W, UT, bias, xarr, G0, E0, plan, sigma, out_sum, out_blocks, out_run, out_logdet):
    """Every (matrix, realisation) item on the shared thread pool.  UT (du, n) is U transposed (du = 0
    without U), xarr (Bx, Rx, steps, d) the inputs array (a dummy unless ARRAY)."""
    nb, R = G0.shape[0], G0.shape[1]
    dt = np.dtype(W.dtype)
    fn = (_run_item_f32 if dt == np.float32 else _run_item_f64).dispatcher
    du = UT.shape[0]
    if int(plan[S.PLAN["NONLIN"]]) != LINEAR or int(plan[S.PLAN["K"]]) < panel_width(dt):
        # [Wᵀ; Uᵀ] of every matrix, packed once (the state's product, and the narrow frame's)
        B = np.swapaxes(W, 1, 2)
        if du:
            B = np.concatenate((B, np.broadcast_to(UT, (nb, du, W.shape[1]))), axis=1)
        PW = pack_panels(B, dt)
    else:
        PW = aligned_empty((1, 1, 1, panel_width(dt)), dt)
    X = xarr.reshape(xarr.shape[0], xarr.shape[1], -1)
    vpb = VALUES_PER_BLOCK[dt.name]
    args = (W, PW, bias, X, G0, E0, plan, dt.type(sigma), out_sum, out_blocks, out_run, out_logdet)

    def task(i):
        fn(*args, np.int64(i // R), np.int64(i % R), np.int64(vpb), np.int64(vpb * SUPER),
           *workspace(plan, dt, du))
    threads.run_tasks(task, nb * R)
