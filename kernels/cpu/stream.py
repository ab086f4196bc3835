"""The one CPU stream body: values ``v0 .. v0+n-1`` of a stream written into a buffer.

Every CPU kernel that draws random numbers (sampling, unroll, propagate, lyapunov) calls these; nothing
else in ``kernels/cpu`` runs the Philox → float mapping over a range.  The mapping itself (the Philox
block function, the uniform and Box–Muller transforms, ``normal_at_*`` for one value) lives in
``philox.py``; the numbers of the contract (values per block, redraw layout) in
``rinit_fast/spec/stream.py``; the prose in docs/rng.md.

Contract of every fill: ``buf[o0 + o] = f(value v0 + o of the stream (c2, c3))`` for ``o < n``, whatever
``v0`` and ``n`` (heads and tails that are not whole Philox blocks included); each Philox block that the
range touches is computed exactly once.  So the bits never depend on how a caller splits a range.
``buf`` is a whole 1-D C-contiguous array (pass an offset ``o0``, not a slice).

    fill_normal(buf, o0, v0, n, c2, c3, k0, k1, scale)             scale · N(0, 1)
    fill_uniform(buf, o0, v0, n, c2, c3, k0, k1, mul, add, scale)  (u · mul + add) · scale, u ~ U[0, 1)
    fill_truncated(buf, o0, v0, n, c2, c3, k0, k1, bound, scale)   scale · N(0, 1), redrawn while |z| > bound
    redraw(buf, o0, v0, n, c2, c3, k0, k1, bound, scale)           the redraw alone, on plain normals
    normal_at(i, c2, c3, k0, k1, like)                             value i alone, in the dtype of ``like``

(the first four dispatch on ``buf``'s dtype at compile time to their ``_f32``/``_f64`` functions).

Speed and compile time.  A range is written in groups of ``SUPER`` Philox blocks by ``_normal_group_*`` /
``_uniform_group_*``, loops with a constant inner trip count that LLVM vectorises completely (a variable
trip count left a scalar epilogue that ran at 4-5 ns/value instead of ~1.2: bench/NOTES.md "Unroll"):
the whole groups in place; a head that does not start on a block boundary, and the tail, as one group
each generated into a small scratch buffer and copied (the head's group also supplies the values after
it, so nothing is computed twice, and at most one group's worth is computed beyond the range).  So each
(transform, dtype) pair compiles the Philox rounds once, vectorised; an earlier version also compiled a
scalar copy for partial head and tail blocks, which cost 0.65 s more of every first call
(bench/NOTES.md "Stream body").  The fills are ordinary (not inlined) Numba functions, compiled once per
dtype and called by every kernel: inlining ten Philox rounds and a Box–Muller into each call site
multiplied the compile time of the kernels that use them.  Only the block function and the transforms
are inlined, inside the group loops, where vectorisation needs them.  (``normal_at`` for single values,
used by the truncated-normal redraw, keeps a scalar block function.)
"""
from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from rinit_fast.spec import stream as S

from ._jit import _COMMON, device
from .philox import M32, box_muller_f32, box_muller_f64, philox4x32_10, uniform_f32, uniform_f64

SUPER = 16                                  # blocks per vectorised group
ATTEMPT_SHIFT = np.uint64(S.ATTEMPT_SHIFT)
MAX_ATTEMPTS = np.uint64(S.MAX_ATTEMPTS)

_body = numba.njit(**_COMMON)               # compiled once per signature, called (not inlined)

_0 = np.uint64(0)
_1 = np.uint64(1)
_2 = np.uint64(2)
_3 = np.uint64(3)
_32 = np.uint64(32)


# --- groups of blocks -----------------------------------------------------------------------------------
# One vectorised loop per dtype and family over ``ng`` groups of SUPER blocks (an inner loop of constant
# trip count: no scalar epilogue); a range's whole groups are written in place, its head and tail groups
# into a scratch buffer and copied (the fills below).  One compiled copy of the inlined Philox + transform
# per dtype and family keeps the compile time down.
@_body
def _normal_group_f32(dst, j0, b0, ng, c2, c3, k0, k1, scale):
    """dst[j0 + 4t + l] = scale · lane l of block b0 + t of the float32 normal stream, t < SUPER · ng."""
    for g in range(ng):
        for jj in range(SUPER):
            t = g * np.uint64(SUPER) + np.uint64(jj)
            b = b0 + t
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> _32, c2, c3, k0, k1)
            z0, z1 = box_muller_f32(x0, x1)
            z2, z3 = box_muller_f32(x2, x3)
            j = j0 + (t << _2)
            dst[j] = z0 * scale
            dst[j + _1] = z1 * scale
            dst[j + _2] = z2 * scale
            dst[j + _3] = z3 * scale


@_body
def _normal_group_f64(dst, j0, b0, ng, c2, c3, k0, k1, scale):
    """dst[j0 + 2t + l] = scale · lane l of block b0 + t of the float64 normal stream, t < SUPER · ng."""
    for g in range(ng):
        for jj in range(SUPER):
            t = g * np.uint64(SUPER) + np.uint64(jj)
            b = b0 + t
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> _32, c2, c3, k0, k1)
            z0, z1 = box_muller_f64(x0, x1, x2, x3)
            j = j0 + (t << _1)
            dst[j] = z0 * scale
            dst[j + _1] = z1 * scale


@_body
def _normal_block_f32(b, c2, c3, k0, k1):
    """The four float32 normals of block b (for partial heads and tails, and single values)."""
    x0, x1, x2, x3 = philox4x32_10(b & M32, b >> _32, c2, c3, k0, k1)
    z0, z1 = box_muller_f32(x0, x1)
    z2, z3 = box_muller_f32(x2, x3)
    return z0, z1, z2, z3


@_body
def _normal_block_f64(b, c2, c3, k0, k1):
    """The two float64 normals of block b (for partial heads and tails, and single values)."""
    x0, x1, x2, x3 = philox4x32_10(b & M32, b >> _32, c2, c3, k0, k1)
    return box_muller_f64(x0, x1, x2, x3)


@_body
def _uniform_group_f32(dst, j0, b0, ng, c2, c3, k0, k1, mul, add, scale):
    """dst[j0 + 4t + l] = (u · mul + add) · scale, u = lane l of block b0 + t (float32 uniforms), t < SUPER · ng."""
    for g in range(ng):
        for jj in range(SUPER):
            t = g * np.uint64(SUPER) + np.uint64(jj)
            b = b0 + t
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> _32, c2, c3, k0, k1)
            j = j0 + (t << _2)
            dst[j] = (uniform_f32(x0) * mul + add) * scale
            dst[j + _1] = (uniform_f32(x1) * mul + add) * scale
            dst[j + _2] = (uniform_f32(x2) * mul + add) * scale
            dst[j + _3] = (uniform_f32(x3) * mul + add) * scale


@_body
def _uniform_group_f64(dst, j0, b0, ng, c2, c3, k0, k1, mul, add, scale):
    """dst[j0 + 2t + l] = (u · mul + add) · scale, u = lane l of block b0 + t (float64 uniforms), t < SUPER · ng."""
    for g in range(ng):
        for jj in range(SUPER):
            t = g * np.uint64(SUPER) + np.uint64(jj)
            b = b0 + t
            x0, x1, x2, x3 = philox4x32_10(b & M32, b >> _32, c2, c3, k0, k1)
            j = j0 + (t << _1)
            dst[j] = (uniform_f64(x0, x1) * mul + add) * scale
            dst[j + _1] = (uniform_f64(x2, x3) * mul + add) * scale


# --- any range: a partial head block, whole blocks, a partial tail block ------------------------------
# ``buf`` is a whole C-contiguous array and ``o0`` the offset of value v0 in it: a slice would have
# Numba's 'A' layout, whose strided stores kept the block loops from vectorising (measured 20% slower).
@device                                     # a loop: inlined, not one more function to compile
def _copy_part(buf, o, tmp, start, m):
    """buf[o + q] = tmp[start + q] for q < m."""
    for q in range(m):
        buf[o + q] = tmp[start + q]


@_body
def fill_normal_f32(buf, o0, v0, n, c2, c3, k0, k1, scale):
    """buf[o0 + o] = scale · value v0 + o of the float32 normal stream (c2, c3), o < n."""
    v0 = np.uint64(v0)
    n = np.uint64(n)
    o0 = np.uint64(o0)
    o = _0
    lane = v0 & _3
    per = np.uint64(4 * SUPER)                     # values of one group
    if lane != _0 and n > _0:                      # head: the group that starts at block v0 // 4
        tmp = np.empty(4 * SUPER, dtype=np.float32)
        _normal_group_f32(tmp, _0, v0 >> _2, _1, c2, c3, k0, k1, scale)
        o = min(per - lane, n)
        _copy_part(buf, o0, tmp, lane, o)
    ng = (n - o) // per                            # whole groups, written in place
    _normal_group_f32(buf, o0 + o, (v0 + o) >> _2, ng, c2, c3, k0, k1, scale)
    o += ng * per
    if o < n:                                      # tail: the start of one more group
        tmp = np.empty(4 * SUPER, dtype=np.float32)
        _normal_group_f32(tmp, _0, (v0 + o) >> _2, _1, c2, c3, k0, k1, scale)
        _copy_part(buf, o0 + o, tmp, _0, n - o)


@_body
def fill_normal_f64(buf, o0, v0, n, c2, c3, k0, k1, scale):
    """buf[o0 + o] = scale · value v0 + o of the float64 normal stream (c2, c3), o < n."""
    v0 = np.uint64(v0)
    n = np.uint64(n)
    o0 = np.uint64(o0)
    o = _0
    lane = v0 & _1
    per = np.uint64(2 * SUPER)
    if lane != _0 and n > _0:                      # head: the group that starts at block v0 // 2
        tmp = np.empty(2 * SUPER, dtype=np.float64)
        _normal_group_f64(tmp, _0, v0 >> _1, _1, c2, c3, k0, k1, scale)
        o = min(per - lane, n)
        _copy_part(buf, o0, tmp, lane, o)
    ng = (n - o) // per
    _normal_group_f64(buf, o0 + o, (v0 + o) >> _1, ng, c2, c3, k0, k1, scale)
    o += ng * per
    if o < n:                                      # tail: the start of one more group
        tmp = np.empty(2 * SUPER, dtype=np.float64)
        _normal_group_f64(tmp, _0, (v0 + o) >> _1, _1, c2, c3, k0, k1, scale)
        _copy_part(buf, o0 + o, tmp, _0, n - o)


@_body
def fill_uniform_f32(buf, o0, v0, n, c2, c3, k0, k1, mul, add, scale):
    """buf[o0 + o] = (u · mul + add) · scale, u the float32 uniform value v0 + o of stream (c2, c3), o < n."""
    v0 = np.uint64(v0)
    n = np.uint64(n)
    o0 = np.uint64(o0)
    o = _0
    lane = v0 & _3
    per = np.uint64(4 * SUPER)
    if lane != _0 and n > _0:                      # head: the group that starts at block v0 // 4
        tmp = np.empty(4 * SUPER, dtype=np.float32)
        _uniform_group_f32(tmp, _0, v0 >> _2, _1, c2, c3, k0, k1, mul, add, scale)
        o = min(per - lane, n)
        _copy_part(buf, o0, tmp, lane, o)
    ng = (n - o) // per
    _uniform_group_f32(buf, o0 + o, (v0 + o) >> _2, ng, c2, c3, k0, k1, mul, add, scale)
    o += ng * per
    if o < n:                                      # tail: the start of one more group
        tmp = np.empty(4 * SUPER, dtype=np.float32)
        _uniform_group_f32(tmp, _0, (v0 + o) >> _2, _1, c2, c3, k0, k1, mul, add, scale)
        _copy_part(buf, o0 + o, tmp, _0, n - o)


@_body
def fill_uniform_f64(buf, o0, v0, n, c2, c3, k0, k1, mul, add, scale):
    """buf[o0 + o] = (u · mul + add) · scale, u the float64 uniform value v0 + o of stream (c2, c3), o < n."""
    v0 = np.uint64(v0)
    n = np.uint64(n)
    o0 = np.uint64(o0)
    o = _0
    lane = v0 & _1
    per = np.uint64(2 * SUPER)
    if lane != _0 and n > _0:                      # head: the group that starts at block v0 // 2
        tmp = np.empty(2 * SUPER, dtype=np.float64)
        _uniform_group_f64(tmp, _0, v0 >> _1, _1, c2, c3, k0, k1, mul, add, scale)
        o = min(per - lane, n)
        _copy_part(buf, o0, tmp, lane, o)
    ng = (n - o) // per
    _uniform_group_f64(buf, o0 + o, (v0 + o) >> _1, ng, c2, c3, k0, k1, mul, add, scale)
    o += ng * per
    if o < n:                                      # tail: the start of one more group
        tmp = np.empty(2 * SUPER, dtype=np.float64)
        _uniform_group_f64(tmp, _0, (v0 + o) >> _1, _1, c2, c3, k0, k1, mul, add, scale)
        _copy_part(buf, o0 + o, tmp, _0, n - o)


# --- one value, and the truncated-normal redraw ---------------------------------------------------------
@_body
def normal_at32(i, c2, c3, k0, k1):
    """Value i of the float32 normal stream (c2, c3): lane i & 3 of block i >> 2."""
    z = _normal_block_f32(i >> _2, c2, c3, k0, k1)
    return z[i & _3]


@_body
def normal_at64(i, c2, c3, k0, k1):
    """Value i of the float64 normal stream (c2, c3): lane i & 1 of block i >> 1."""
    z = _normal_block_f64(i >> _1, c2, c3, k0, k1)
    return z[i & _1]


@_body
def redraw_f32(buf, o0, v0, n, c2, c3, k0, k1, bound, scale):
    """Given buf[o0 + o] = value v0 + o of the float32 normal stream (scale 1), o < n: value i keeps its
    normal z when |z| <= bound, else attempt a = 1, 2, ... draws value (a << (ATTEMPT_SHIFT + 2)) | i of
    the same stream, up to MAX_ATTEMPTS (docs/rng.md); then everything is scaled."""
    shift = ATTEMPT_SHIFT + _2
    o0 = np.uint64(o0)
    for o in range(np.uint64(n)):
        z = buf[o0 + o]
        if abs(z) > bound:
            i = np.uint64(v0) + o
            a = _0
            while abs(z) > bound and a < MAX_ATTEMPTS:
                a += _1
                z = normal_at32((a << shift) | i, c2, c3, k0, k1)
        buf[o0 + o] = z * scale


@_body
def redraw_f64(buf, o0, v0, n, c2, c3, k0, k1, bound, scale):
    """float64 twin of redraw_f32 (redraw value (a << (ATTEMPT_SHIFT + 1)) | i)."""
    shift = ATTEMPT_SHIFT + _1
    o0 = np.uint64(o0)
    for o in range(np.uint64(n)):
        z = buf[o0 + o]
        if abs(z) > bound:
            i = np.uint64(v0) + o
            a = _0
            while abs(z) > bound and a < MAX_ATTEMPTS:
                a += _1
                z = normal_at64((a << shift) | i, c2, c3, k0, k1)
        buf[o0 + o] = z * scale


@_body
def fill_truncated_f32(buf, o0, v0, n, c2, c3, k0, k1, bound, scale):
    """buf[o0 + o] = scale · value v0 + o of the truncated float32 normal stream (|z| <= bound by redraws)."""
    fill_normal_f32(buf, o0, v0, n, c2, c3, k0, k1, np.float32(1.0))
    redraw_f32(buf, o0, v0, n, c2, c3, k0, k1, bound, scale)


@_body
def fill_truncated_f64(buf, o0, v0, n, c2, c3, k0, k1, bound, scale):
    """float64 twin of fill_truncated_f32."""
    fill_normal_f64(buf, o0, v0, n, c2, c3, k0, k1, np.float64(1.0))
    redraw_f64(buf, o0, v0, n, c2, c3, k0, k1, bound, scale)


# --- dtype dispatch at compile time ---------------------------------------------------------------------
def _by_dtype(f32, f64):
    """A generic function that calls ``f32`` or ``f64`` by the dtype of its first argument (an array)."""
    def generic(buf, *args):
        raise NotImplementedError  # pragma: no cover - only the Numba overload is ever called

    @overload(generic)
    def _ol(buf, *args):
        impl = f32 if buf.dtype == types.float32 else f64
        return lambda buf, *args: impl(buf, *args)
    return generic


fill_normal = _by_dtype(fill_normal_f32, fill_normal_f64)
fill_normal.__doc__ = "fill_normal(buf, o0, v0, n, c2, c3, k0, k1, scale): fill_normal_f32/_f64 by buf's dtype."
fill_uniform = _by_dtype(fill_uniform_f32, fill_uniform_f64)
fill_uniform.__doc__ = ("fill_uniform(buf, o0, v0, n, c2, c3, k0, k1, mul, add, scale): fill_uniform_f32/_f64 "
                        "by buf's dtype.")
fill_truncated = _by_dtype(fill_truncated_f32, fill_truncated_f64)
fill_truncated.__doc__ = ("fill_truncated(buf, o0, v0, n, c2, c3, k0, k1, bound, scale): fill_truncated_f32/_f64 "
                          "by buf's dtype.")
redraw = _by_dtype(redraw_f32, redraw_f64)
redraw.__doc__ = "redraw(buf, o0, v0, n, c2, c3, k0, k1, bound, scale): redraw_f32/_f64 by buf's dtype."


def normal_at(i, c2, c3, k0, k1, like):
    """Value i of the normal stream (c2, c3) in the dtype of the scalar ``like``."""


@overload(normal_at, inline="always")
def _ol_normal_at(i, c2, c3, k0, k1, like):
    if like == types.float32:
        return lambda i, c2, c3, k0, k1, like: normal_at32(i, c2, c3, k0, k1)
    return lambda i, c2, c3, k0, k1, like: normal_at64(i, c2, c3, k0, k1)
