"""Lyapunov spectra of recurrences (Benettin's method), one compiled time loop per trajectory.

A work item is one matrix ``m`` and one realisation ``r``: the state h_t = f(W h_{t-1} + U x_t + b) and
an n x k tangent frame F_t = D_t W F_{t-1}, re-orthonormalised by QR at the steps that
``rinit_fast.spec.lyapunov.qr_due`` names; log|R_cc| is summed per frame column.  Items run on the
shared thread pool (kernels/cpu/threads.py) with BLAS pinned to one thread; an item's bits never depend
on the thread, the batch or its position in it.  The control logic (schedule, records, blocks, plan
layout) is the spec's (rinit_fast/spec/lyapunov.py); this module is the arithmetic.

Layout and the step.  The frame is row-major (n, KP): columns 0..k-1 the frame, column k the state
(tanh, relu), the rest zero (KP = k or k + 1 rounded up to 16).  One BLAS GEMM per step gives
C = W [F | g] (k + 1 columns); then, row by row, the pre-activation z = C[:, k] + (U x_t + b) 2**-e, the
new state and D_t, and C[i, :k] *= D_t[i].  A QR step factors C in place and leaves the new frame in
C; other steps rescale C's columns by powers of two (exactly) so nothing overflows, and carry the
exponents into the next QR's logs.  Then C and F swap roles.

QR.  Householder QR (LAPACK's conventions: R_jj = -sign(alpha)·||x||) with the frame's rows contiguous,
so that every reflector update is vectorised across columns, blocked by panels of four reflectors
(``qr_own``).  The primitives work on one 16-column block and are written as LLVM IR on ``<16 x T>``
vectors, the accumulators in registers through the rows: Numba's loop vectoriser left a loop set-up and
a scalar epilogue per row, on rows of 16-64 elements (2x slower), and LAPACK's xGEQRF + xORGQR (or
xGELQF + xORGLQ on this layout) took 4x as long at n = k = 64, 1.3-1.4x at n = k = 256 and 1.1-1.3x at
n = 256, k = 32 (bench/NOTES.md "Lyapunov").
Each output is a fixed chain of fused multiply-adds, so its bits do not depend on the thread or the
batch.

State.  tanh: g = tanh(y) with y the true pre-activation (|g| <= 1, exponent 0 after the first step).
relu: h = g·2**e as in rf.unroll (docs/unroll.md): z = W g + (U x + b)·2**-e, g = max(z, 0), g rescaled
by 2**-s when ||g|| leaves [2**-20, 2**20] (exactly: powers of two), e never below the plan's EFLOOR.
linear: no state at all (D_t = I: the exponents do not depend on the trajectory).  The inputs are
drawn from the stream through kernels/cpu/stream.py (``fill_normal``): values (t-1)·d .. t·d - 1 of
(c2 = C2START + m, c3 = C3INPUTS + r), the layout of rf.unroll, several steps per call.

The GEMM is SciPy's BLAS (``scipy.linalg.cython_blas``), called through its address (``_call`` below:
an address passed as an argument keeps the compiled kernel cacheable; a ctypes function object would be
a "dynamic global" and disable Numba's cache).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from rinit_fast.spec import lyapunov as S
from rinit_fast.spec.unroll import GEN_VALUES

from . import packed_gemm, threads
from ._jit import _COMMON, device, kernel
from .stream import fill_normal
# rf.unroll's helpers for the state h = g·2**e (the same arithmetic, so the same bits)
from .unroll import cast_like as like, pow2, renorm_exponent, scale_row

packed_gemm.check_versions()     # the IR below (intrinsics, cgutils) sits behind the project's one guard

_called = numba.njit(**_COMMON)   # helpers: compiled once per signature, called (not inlined)

BL = S.LANES
LN2 = S.LN2
LOG4 = math.log(4.0)
M32 = np.uint64(0xFFFFFFFF)

# plan fields (rinit_fast/spec/lyapunov.py)
P_N, P_K, P_KP, P_D, P_STEPS, P_WARMUP, P_REORTHO, P_RECORD, P_NREC, P_MODE, P_NONLIN, P_NBIAS, \
    P_EFLOOR, P_NBLOCKS, P_C2START, P_C3INPUTS, P_C3FRAME, P_K0, P_K1 = (S.PLAN[f] for f in S.PLAN_FIELDS)
LINEAR, TANH, RELU = S.LINEAR, S.TANH, S.RELU
GAUSSIAN, ARRAY = S.GAUSSIAN, S.ARRAY

_qr_due = device(S.qr_due)               # the spec's schedule, inlined (tiny functions: a call of its own
_record_index = device(S.record_index)   # cost more compile time than the body)
_block_of = device(S.block_of)


# --- BLAS through its address --------------------------------------------------------------------
@intrinsic
def _call(typingctx, addr, args):
    """Call the C function (void, every argument a pointer: the Fortran ABI of SciPy's cython_blas) at
    integer address ``addr`` with the integer addresses in the tuple ``args``."""
    if not isinstance(args, types.BaseTuple):
        return None
    nargs = len(args)
    sig = types.void(addr, args)

    def codegen(context, builder, signature, llargs):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p] * nargs)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        vals = cgutils.unpack_tuple(builder, llargs[1], nargs)
        builder.call(fn, [builder.inttoptr(v, i8p) for v in vals])
        return context.get_dummy_value()
    return sig, codegen


_ADDR = {}


def addresses(dtype):
    """int64 array [xgemm] of SciPy's BLAS for float32 or float64."""
    p = "s" if np.dtype(dtype) == np.float32 else "d"
    if p not in _ADDR:
        _ADDR[p] = np.array([get_cython_function_address("scipy.linalg.cython_blas", p + "gemm")],
                            dtype=np.int64)
    return _ADDR[p]


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


def _xload(builder, x, xndim, xo, i):
    """X[xo + i] (1-D X) or X[i, xo] (2-D X, C-contiguous) as a scalar."""
    if xndim == 1:
        return builder.load(builder.gep(x.data, [builder.add(xo, i)]))
    ldx = cgutils.unpack_tuple(builder, x.shape, 2)[1]
    return builder.load(builder.gep(x.data, [builder.add(builder.mul(i, ldx), xo)]))


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
def _vgemv(typingctx, A, X, xo, r0, r1, c, out):
    """out[c:c+16] = sum over r0 <= i < r1 of x_i · A[i, c:c+16], x_i = X[xo + i] (1-D X) or X[i, xo]
    (2-D X).  Accumulator q takes the rows r0 + 2m + q, the last odd row going to accumulator 0; the
    result is a0 + a1: a fixed order, the same bits every call."""
    fty, nm = _ftype(A.dtype)
    if fty is None:
        return None
    xndim = X.ndim
    sig = types.void(A, X, xo, r0, r1, c, out)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)

        def iv(q):
            return context.cast(builder, args[q], signature.args[q], types.intp)
        a = context.make_array(signature.args[0])(context, builder, args[0])
        x = context.make_array(signature.args[1])(context, builder, args[1])
        o = context.make_array(signature.args[6])(context, builder, args[6])
        ld = cgutils.unpack_tuple(builder, a.shape, 2)[1]
        xo_, r0v, r1v, cv = iv(2), iv(3), iv(4), iv(5)
        vty, fma, splat = _vec_helpers(context, builder, fty, nm)
        vptr = vty.as_pointer()
        zero = ir.Constant(vty, [0.0] * BL)

        def term(i, acc):
            p = builder.gep(a.data, [builder.add(builder.mul(i, ld), cv)])
            row = builder.load(builder.bitcast(p, vptr), align=4)
            return builder.call(fma, [splat(_xload(builder, x, xndim, xo_, i)), row, acc])

        def two(i, acc):
            return [term(i, acc[0]), term(builder.add(i, ir.Constant(intp, 1)), acc[1])]
        i, (a0, a1) = _loop(builder, intp, r0v, r1v, 2, [zero, zero], two)
        i1, (b0,) = _loop(builder, intp, i, r1v, 1, [a0], lambda i, acc: [term(i, acc[0])])
        builder.store(builder.fadd(b0, a1), builder.bitcast(builder.gep(o.data, [cv]), vptr), align=4)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _vger(typingctx, A, X, xo, r0, r1, c, w, s):
    """A[i, c:c+16] -= x_i · (s · w[c:c+16]) for r0 <= i < r1, x_i as in _vgemv (one fused
    multiply-add per entry)."""
    fty, nm = _ftype(A.dtype)
    if fty is None:
        return None
    xndim = X.ndim
    sig = types.void(A, X, xo, r0, r1, c, w, s)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)

        def iv(q):
            return context.cast(builder, args[q], signature.args[q], types.intp)
        a = context.make_array(signature.args[0])(context, builder, args[0])
        x = context.make_array(signature.args[1])(context, builder, args[1])
        wa = context.make_array(signature.args[6])(context, builder, args[6])
        sv = context.cast(builder, args[7], signature.args[7], signature.args[0].dtype)
        ld = cgutils.unpack_tuple(builder, a.shape, 2)[1]
        xo_, r0v, r1v, cv = iv(2), iv(3), iv(4), iv(5)
        vty, fma, splat = _vec_helpers(context, builder, fty, nm)
        vptr = vty.as_pointer()
        wv = builder.load(builder.bitcast(builder.gep(wa.data, [cv]), vptr), align=4)
        tw = builder.fmul(splat(sv), wv)

        def body(i, _):
            p = builder.bitcast(builder.gep(a.data, [builder.add(builder.mul(i, ld), cv)]), vptr)
            xi = builder.fneg(_xload(builder, x, xndim, xo_, i))
            builder.store(builder.call(fma, [splat(xi), tw, builder.load(p, align=4)]), p, align=4)
            return []
        _loop(builder, intp, r0v, r1v, 1, [], body)
        return context.get_dummy_value()
    return sig, codegen


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
    KP = min(A.shape[1], ((k + BL - 1) // BL) * BL)     # the blocks that hold frame columns (not the state's)
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


@_called
def gemm(fptr, W, m, F, C, ncol, iargs, scal, chars):
    """C[:, :ncol] = W[m] @ F[:, :ncol] (row-major (n, KP) buffers): in BLAS's column-major terms
    C^T = F^T W^T, xGEMM('N', 'N', ncol, n, n, 1, F, KP, W[m], n, 0, C, KP).
    iargs: int32 [ncol, n, KP, ...]; scal: [1, 0] in the dtype; chars: b'NN'."""
    n = W.shape[1]
    pi = np.uint64(iargs.ctypes.data)
    ps = np.uint64(scal.ctypes.data)
    pc = np.uint64(chars.ctypes.data)
    pw = np.uint64(W.ctypes.data) + np.uint64(m * n * n * W.itemsize)
    _1, _4, _8 = np.uint64(1), np.uint64(4), np.uint64(8)
    iargs[0] = ncol
    _call(fptr[0], (pc, pc + _1, pi, pi + _4, pi + _4, ps, np.uint64(F.ctypes.data), pi + _8, pw, pi + _4,
                    ps + np.uint64(scal.itemsize), np.uint64(C.ctypes.data), pi + _8))


# --- the parts of a step (separately compiled: one large function took longer to compile than its parts) --
@_called
def inputs_into(ux, xs, xo, UT, n, du):
    """ux[:n] = U x (x = xs[xo:xo+d]; with UT (du, NP) the transposed, zero-padded U) or x itself (no U)."""
    if du > 0:
        for c in range(0, UT.shape[1], BL):
            _vgemv(UT, xs, xo, 0, du, c, ux)
    else:
        for i in range(n):
            ux[i] = xs[xo + i]


@_called
def state_step(C, vec, e, ux, bias, nonlin, use_x, cx, n, k, e_floor, dvec):
    """The state update after the product C = W [F | g], g = vec[1]: z = C[:, k] + ux·cx + bias·2**-e,
    g = f(z) (scaled by 2**-e for relu, unscaled for tanh), C[i, :k] *= f'(z_i), C[:, k] = 0.  Returns
    (new e, sum of log f'(z_i))."""
    nb = bias.shape[0]
    g = vec[1]
    cb = like(C, pow2(-e))
    if nonlin == TANH:
        s = pow2(e)
        # sum of log tanh'(y) = n log 4 - 2 sum|y| - 2 log prod(1 + q): the product is formed in float64
        # (each factor in [1, 2]) and its log taken every 512 factors (no underflow, no per-unit log)
        sa = 0.0
        pq = 1.0
        lq = 0.0
        for i in range(n):
            z = C[i, k]
            if use_x:
                z = z + ux[i] * cx
            if nb > 0:
                z = z + bias[i] * cb
            y = np.float64(z) * s
            a = abs(y)
            em1 = math.expm1(-2.0 * a)
            th = -em1 / (2.0 + em1)
            opq = 2.0 + em1
            g[i] = th if y >= 0 else -th
            dvec[i] = like(C, 4.0 * (1.0 + em1) / (opq * opq))
            sa += a
            pq *= opq
            if (i & 511) == 511:
                lq += math.log(pq)
                pq = 1.0
        dsum = n * LOG4 - 2.0 * sa - 2.0 * (lq + math.log(pq))
        e = 0
    else:   # relu
        ss = 0.0
        dsum = 0.0
        for i in range(n):
            z = C[i, k]
            if use_x:
                z = z + ux[i] * cx
            if nb > 0:
                z = z + bias[i] * cb
            if z > 0:
                g[i] = z
                dvec[i] = 1
                zz = np.float64(z)
                ss += zz * zz
            else:
                g[i] = 0
                dvec[i] = 0
                dsum = -math.inf
        ne = renorm_exponent(ss, e, e_floor)     # as rf.unroll: g *= 2**(e - ne) exactly
        if ne != e:
            scale_row(vec, 1, n, ne - e)
            e = ne
    KP = C.shape[1]
    for i in range(n):
        C[i, k] = 0
        dv = dvec[i]
        row = C[i]
        for c in range(KP):
            row[c] = row[c] * dv
    return e, dsum


@_called
def renorm_columns(C, k, colss, cfac, cexp):
    """Rescale the frame's columns by powers of two (exactly) when a squared norm leaves
    [2**-40, 2**40], adding the shifts to cexp (the next QR's logs carry them)."""
    n = C.shape[0]
    KP = C.shape[1]
    for c in range(KP):
        colss[c] = 0.0
    for i in range(n):
        for c in range(KP):
            v = np.float64(C[i, c])
            colss[c] += v * v
    any_ = False
    for c in range(KP):
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
            row = C[i]
            for c in range(KP):
                row[c] = row[c] * cfac[c]


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
def run_item(W, UT, bias, xarr, G0, E0, plan, fptr, sigma, out_sum, out_blocks, out_run, out_logdet, m, r,
             M3, T, Y, vec, v64, cexp, giargs, chars):
    """Matrix m, realisation r: the whole time loop (see the module docstring).  Workspace (from
    ``workspace``, zeroed): M3 (3, n, KP) the frame, the product and the reflectors; T, Y (qr_own);
    vec (8, L) dtype vectors; v64 (4, L2) float64 vectors; cexp (k,) int64; giargs (4,) int32; chars (2,)
    uint8."""
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
    c3i = np.uint64(plan[P_C3INPUTS] + r)
    c3f = np.uint64(plan[P_C3FRAME] + r)
    k0 = np.uint64(plan[P_K0])
    k1 = np.uint64(plan[P_K1])
    du = UT.shape[0]
    state = nonlin != LINEAR
    ncol = k + 1 if state else k
    one = like(W, 1)
    F = M3[0]
    C = M3[1]
    V = M3[2]
    w = vec[0]
    g = vec[1]
    dvec = vec[2]
    ux = vec[3]
    xb = vec[4]
    tmp = vec[5]
    cfac = vec[6]
    scal = vec[7]
    logr = v64[0]
    ssum = v64[1]
    colss = v64[2]
    nrm = v64[3]
    giargs[0] = ncol
    giargs[1] = n
    giargs[2] = KP
    scal[0] = 1
    chars[0] = 78                                        # 'N', 'N'
    chars[1] = 78

    # the starting frame: column c = values c·n .. c·n + n - 1 of stream (c2, C3FRAME + r), orthonormalised
    fill_normal(tmp, 0, 0, k * n, c2, c3f, k0, k1, one)
    for i in range(n):
        for c in range(k):
            C[i, c] = tmp[c * n + i]
    qr_own(C, V, T, Y, w, logr, nrm, n, k)
    F, C = C, F

    # the state h = g·2**e
    e = E0[m, r]
    for i in range(n):
        g[i] = G0[m, r, i]
    if state:
        for i in range(n):
            F[i, k] = g[i]
    S_ = min(max(1, GEN_VALUES // d), steps) if mode == GAUSSIAN else 1
    mx = m if xarr.shape[0] > 1 else 0
    rx = r if xarr.shape[1] > 1 else 0
    sig = like(W, sigma)
    xscale = one if mode == GAUSSIAN else sig     # Gaussian draws carry input_scale already
    logdet = 0.0

    for t in range(1, steps + 1):
        gemm(fptr, W, m, F, C, ncol, giargs, scal, chars)
        dsum = 0.0
        if state:
            if mode == GAUSSIAN:
                js = (t - 1) % S_
                if js == 0:                        # x = input_scale · z, rounded once (as an array of them)
                    cnt = min(S_, steps - t + 1) * d
                    fill_normal(xb, 0, (t - 1) * d, cnt, c2, c3i, k0, k1, sig)
                inputs_into(ux, xb, js * d, UT, n, du)
            elif mode == ARRAY:
                inputs_into(ux, xarr[mx, rx, t - 1], 0, UT, n, du)
            e, dsum = state_step(C, vec, e, ux, bias, nonlin, mode != 0, xscale * like(W, pow2(-e)), n, k,
                                 e_floor, dvec)
        if t > warmup:
            logdet += dsum
        if _qr_due(t, steps, warmup, every, record):
            qr_own(C, V, T, Y, w, logr, nrm, n, k)
            log_qr(logr, cexp, ssum, out_blocks, out_run, m, r, t, steps, warmup, record, nblocks, k)
        else:
            renorm_columns(C, k, colss, cfac, cexp)
        F, C = C, F
        if state:
            for i in range(n):
                F[i, k] = g[i]

    for c in range(k):
        out_sum[m, r, c] = ssum[c]
    out_logdet[m, r] = logdet


_T32 = types.float32
_T64 = types.float64
_I64 = types.int64


def _sig(T):
    return types.void(
        T[:, :, ::1],             # W (nb, n, n)
        T[:, ::1],                # UT (du, NP): U transposed and zero-padded to NP columns (du = 0: no U)
        T[::1],                   # bias (n,) or (0,)
        T[:, :, :, ::1],          # xarr (Bx, Rx, steps, d) for array inputs (else a dummy)
        T[:, :, ::1],             # G0 (nb, R, n): initial state g
        _I64[:, ::1],             # E0 (nb, R): initial exponents
        _I64[::1],                # plan (rinit_fast/spec/lyapunov.py PLAN_FIELDS)
        _I64[::1],                # fptr: the address of xGEMM
        T,                        # input_scale
        types.float64[:, :, ::1],     # out_sum (nb, R, k)
        types.float64[:, :, :, ::1],  # out_blocks (nb, R, nblocks, k), zeroed
        types.float64[:, :, :, ::1],  # out_run (nb, R, nrec, k)
        types.float64[:, ::1],        # out_logdet (nb, R): sum of log|det D_t| over the window
        _I64, _I64,               # m, r
        T[:, :, ::1], T[:, :, ::1], T[:, ::1],   # workspace: M3, T, Y
        T[:, ::1], types.float64[:, ::1],       # vec, v64
        _I64[::1], types.int32[::1], types.uint8[::1],   # cexp, giargs, chars
    )


_run_item_f32 = kernel(_sig(_T32))(run_item)
_run_item_f64 = kernel(_sig(_T64))(run_item)


def workspace(plan, dtype):
    """The zeroed work arrays of one item (allocated here, not in the kernel: fewer compiled allocation
    routines, and none per step)."""
    n, k, kp, d = (int(plan[S.PLAN[f]]) for f in ("N", "K", "KP", "D"))
    steps = int(plan[S.PLAN["STEPS"]])
    npad = -(-n // BL) * BL
    nx = min(max(1, GEN_VALUES // d), steps) * d
    L = max(kp, npad, nx, k * n, 2)
    return (np.zeros((3, n, kp), dtype), np.zeros(((k + NB - 1) // NB + 1, NB, NB), dtype),
            np.zeros((NB, kp), dtype), np.zeros((8, L), dtype), np.zeros((4, max(k, kp))),
            np.zeros(k, np.int64), np.zeros(4, np.int32), np.zeros(2, np.uint8))


def lyapunov(W, UT, bias, xarr, G0, E0, plan, sigma, out_sum, out_blocks, out_run, out_logdet):
    """Every (matrix, realisation) item on the shared thread pool, BLAS on one thread per item."""
    nb, R = G0.shape[0], G0.shape[1]
    fn = (_run_item_f32 if W.dtype == np.float32 else _run_item_f64).dispatcher
    fptr = addresses(W.dtype)
    args = (W, UT, bias, xarr, G0, E0, plan, fptr, W.dtype.type(sigma), out_sum, out_blocks, out_run,
            out_logdet)

    def task(i):
        fn(*args, np.int64(i // R), np.int64(i % R), *workspace(plan, W.dtype))
    with threads.blas_single_thread():
        threads.run_tasks(task, nb * R)
