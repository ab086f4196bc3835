"""BLAS from jitted code: SciPy's ``cython_blas`` gemm and gemv, called through symbols of our own.

The one home of the project's BLAS calls inside kernels.  Public APIs only:
``numba.extending.get_cython_function_address`` gives the addresses of SciPy's Fortran routines (the BLAS
NumPy and Numba use too), ``llvmlite.binding.add_symbol`` registers them under names of our own before
any kernel is compiled or loaded from the cache (the cached machine code refers to the names, resolved
when it is linked), and an ``@intrinsic`` emits the call, every argument by reference as Fortran wants.

``xgemm``: column-major ``C = alpha A op(B) + beta C`` (float32/float64), for the panel GEMMs of
kernels/cpu/propagate.py.

``mv(a, x)`` and ``vm(v, a)``: ``a @ x`` and ``v @ a`` for a 2-D array with contiguous rows and contiguous
vectors, in any of the four BLAS dtypes, as **the same gemv call that Numba's** ``np.dot`` **makes**
(same routine, transposition, sizes and leading dimension; alpha 1, beta 0): the same bits.  What they
save is compile time: every ``np.dot`` specialisation compiles Numba's generic implementation (checks,
layout copies, error paths), 0.15-0.35 s each per process, and a spectral radius used three of them
(bench/NOTES.md "Spectral without np.dot").
"""
from __future__ import annotations

import llvmlite.binding as _llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import get_cython_function_address, intrinsic

from ._jit import device

_PREFIX = "rinit_fast_blas_"
_KIND = {types.float32: "s", types.float64: "d", types.complex64: "c", types.complex128: "z"}
for _k in _KIND.values():
    for _routine in ("gemm", "gemv"):
        if _routine == "gemm" and _k in "cz":
            continue
        _llvm.add_symbol(_PREFIX + _k + _routine,
                         get_cython_function_address("scipy.linalg.cython_blas", _k + _routine))

_N = np.int64(ord("n"))
_T = np.int64(ord("t"))


def _by_ref(builder, ty, value):
    """Fortran passes every argument by reference: a stack slot (in the entry block) holding ``value``."""
    with builder.goto_entry_block():
        slot = builder.alloca(ty)
    builder.store(value, slot)
    return slot


def _int32(builder, v):
    i32 = ir.IntType(32)
    if v.type.width > 32:
        return builder.trunc(v, i32)
    return builder.zext(v, i32) if v.type.width < 32 else v


def _declare(builder, name, nargs):
    i8p = ir.IntType(8).as_pointer()
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(ir.VoidType(), [i8p] * nargs), name)
    return fn


@intrinsic
def xgemm(typingctx, transb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc):
    """Column-major ``c[m, n] = alpha · a[m, k] @ op(b) + beta · c`` (op: transpose when ``transb`` is
    ord('t'), none for ord('n')); ``pa``, ``pb``, ``pc`` the addresses of the matrices' first elements
    (``arr.ctypes.data`` + offset), integers by value; alpha and beta of the dtype (float32: sgemm).
    Row-major C = A @ B is the column-major product C^T = B^T A^T, which is how the callers read."""
    ints = (transb, m, n, k, pa, lda, pb, ldb, pc, ldc)
    if not (isinstance(alpha, types.Float) and alpha == beta and alpha.bitwidth in (32, 64)
            and all(isinstance(t, types.Integer) for t in ints)):
        return None
    name = _PREFIX + _KIND[alpha] + "gemm"
    sig = types.void(transb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc)

    def codegen(context, builder, signature, args):
        i8, i32 = ir.IntType(8), ir.IntType(32)
        ft = context.get_value_type(alpha)
        i8p = i8.as_pointer()
        fn = _declare(builder, name, 13)

        def ref(ty, v):
            return builder.bitcast(_by_ref(builder, ty, v), i8p)

        def ptr(v):
            return builder.inttoptr(v, i8p)

        tb, m_, n_, k_, al, a_, lda_, b_, ldb_, be, c_, ldc_ = args
        builder.call(fn, [ref(i8, ir.Constant(i8, ord("n"))), ref(i8, builder.trunc(tb, i8)),
                          ref(i32, _int32(builder, m_)), ref(i32, _int32(builder, n_)),
                          ref(i32, _int32(builder, k_)), ref(ft, al), ptr(a_),
                          ref(i32, _int32(builder, lda_)),
                          ptr(b_), ref(i32, _int32(builder, ldb_)), ref(ft, be), ptr(c_),
                          ref(i32, _int32(builder, ldc_))])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _gemv(typingctx, a, x, y, trans, m, n, lda):
    """Column-major ``y = op(A) x`` (alpha 1, beta 0, unit increments) on the data of the arrays ``a``
    (A: m x n, leading dimension ``lda``), ``x`` and ``y``, all of one BLAS dtype; ``trans`` ord('t') or
    ord('n').  The arrays themselves are the arguments (not their addresses), so they live until the call
    has returned."""
    arrays, ints = (a, x, y), (trans, m, n, lda)
    if not (all(isinstance(t, types.Array) and t.dtype == a.dtype for t in arrays) and a.dtype in _KIND
            and all(isinstance(t, types.Integer) for t in ints)):
        return None
    dt = a.dtype
    name = _PREFIX + _KIND[dt] + "gemv"
    sig = types.void(a, x, y, trans, m, n, lda)

    def codegen(context, builder, signature, args):
        i8, i32 = ir.IntType(8), ir.IntType(32)
        i8p = i8.as_pointer()
        ft = context.get_value_type(dt)
        fn = _declare(builder, name, 11)

        def ref(ty, v):
            return builder.bitcast(_by_ref(builder, ty, v), i8p)

        def data(ty, v):
            return builder.bitcast(context.make_array(ty)(context, builder, v).data, i8p)

        a_, x_, y_, tr, m_, n_, lda_ = args
        one = ref(ft, context.get_constant(dt, 1.0))
        zero = ref(ft, context.get_constant(dt, 0.0))
        inc = ref(i32, ir.Constant(i32, 1))
        builder.call(fn, [ref(i8, builder.trunc(tr, i8)), ref(i32, _int32(builder, m_)),
                          ref(i32, _int32(builder, n_)), one, data(a, a_), ref(i32, _int32(builder, lda_)),
                          data(x, x_), inc, zero, data(y, y_), inc])
        return context.get_dummy_value()
    return sig, codegen


# mv and vm are written out twice on purpose: one shared helper for both (the same calls, the same bits)
# made the first spectral_radius + spectral_norm compile 0.4-0.9 CPU s longer (paired, 2026-12-05), one
# more inlined level for Numba's front end to type in every kernel that multiplies.
@device
def mv(a, x):
    """``a @ x`` (a new vector) for a 2-D ``a`` with contiguous rows and a contiguous vector ``x``: gemv 't'
    on the column-major view, m = columns, n = rows, lda = the row stride, as ``np.dot(a, x)`` calls it."""
    rows, cols = a.shape
    y = np.empty(rows, dtype=a.dtype)
    if rows == 0 or cols == 0:
        for i in range(rows):
            y[i] = 0
        return y
    _gemv(a, x, y, _T, cols, rows, a.strides[0] // a.itemsize)
    return y


@device
def vm(v, a):
    """``v @ a`` (a new vector) for a contiguous vector ``v`` and a 2-D ``a`` with contiguous rows: gemv 'n'
    on the column-major view, m = columns, n = rows, lda = the row stride, as ``np.dot(v, a)`` calls it."""
    rows, cols = a.shape
    y = np.empty(cols, dtype=a.dtype)
    if rows == 0 or cols == 0:
        for i in range(cols):
            y[i] = 0
        return y
    _gemv(a, v, y, _N, cols, rows, a.strides[0] // a.itemsize)
    return y
