"""Depth propagation kernels: x_{l+1} = f(W_l x_l + b_l) through a stack of freshly drawn layers, with a
backward pass of a random output gradient, accumulating per-network, per-layer statistics.

Layer ``l`` of network ``j`` is the matrix ``rf.sample(scheme, (width, fan_in), seed, start=j,
layer=l)``: value ``i·fan_in + k`` (entry (i, k)) of the weights stream (c2 = j, c3 = WEIGHTS | l).  It
is never stored whole: rows are regenerated panel by panel (``pr`` rows: 16 Ki values, at least 64 rows) into a
small buffer, with exactly the operations of kernels/cpu/sampling.py (so bit for bit the matrix
``rf.sample`` returns), and each panel is applied to all ``samples`` inputs of the network at once by a
single-threaded BLAS GEMM (the gemm np.dot calls): the generation of a value (~1.2 ns) is shared by every
input.

Layout: every state is (units, samples), C order.  Statistics go to ``stats[j, l, :]`` (float64, columns
``STAT_FIELDS``), computed in float64 from the dtype's values, in a fixed order that depends on neither
the batch, nor the chunking, nor the thread count: each network is one kernel call, handled by one
thread from start to end (the API runs the calls on a pool of threads, the kernels release the GIL; BLAS
is pinned to one thread per caller).

Backward: ``delta_depth = g`` (PROP_GRAD stream), ``u = f'(z_l) ⊙ delta_{l+1}``, ``delta_l = W_l^T u``
with W_l regenerated panel by panel (``delta_l`` accumulates one GEMM per panel, beta = 1).  It needs f'(z_l) of
every layer: the forward pass stores them for a segment of ``seg`` layers; with ``seg < depth`` only the
inputs of every segment are kept (checkpoints) and each segment's forward pass is recomputed, in the
same operations, before its backward pass (memory (seg + depth/seg + 4) · width · samples per network in
flight, one more forward pass of time).  The results do not depend on ``seg``.

Families (``family``): 0 normal (z · scale), 1 uniform ((u · mul + add) · scale), 2 truncated normal
(redraws as docs/rng.md, then · scale), 3 constant (scale).  Orthogonal layers need the whole matrix
(QR): the API materialises them one layer at a time and calls the ``given_*`` kernels, which share the
panel loop and every post-processing step with ``network``.
"""
from __future__ import annotations

import warnings

import numba
import numpy as np
from numba import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload
from numba.np.linalg import _BLAS

from rinit_fast.spec import activations as _act

from ._jit import _COMMON, device, kernel
from .philox import (M32, box_muller_f32, box_muller_f64, normal_at_f32, normal_at_f64, philox4x32_10,
                     u32_as_f32, uniform_f32, uniform_f64)
from .stream import ATTEMPT_SHIFT, MAX_ATTEMPTS

STAT_FIELDS = ("preact_mean", "preact_var", "preact_unit_var", "act_mean", "act_var", "act_unit_var",
               "act_abs_mean", "grad_var")
NSTAT = len(STAT_FIELDS)
FAMILIES = {"normal": 0, "uniform": 1, "truncated": 2, "constant": 3}
ACTIVATIONS = _act.CODES      # one code table (rinit_fast/spec/activations.py)



def helper(fn):
    """A helper called once per panel, layer or row: compiled as an ordinary (not inlined) Numba
    function.  Only the Philox/Box–Muller device functions are inlined, into the fill loops that must
    vectorise; inlining these larger helpers too would multiply the compile time (measured: minutes)."""
    return numba.njit(**_COMMON)(fn)


_u64 = types.uint64
_i64 = types.int64
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_THREE = np.uint64(3)


# --- generation of a contiguous range of stream values (any start, any length) -------------------
@helper
def _normal_at32(i, c2, c3, k0, k1):
    """normal_at_f32 behind a call: one compiled copy serves every scattered value (heads and tails of
    panels, redraws, biases, inputs), which keeps the compile time down."""
    return normal_at_f32(i, c2, c3, k0, k1)


@helper
def _normal_at64(i, c2, c3, k0, k1):
    """normal_at_f64 behind a call (see _normal_at32)."""
    return normal_at_f64(i, c2, c3, k0, k1)


@helper
def _fill_normal_f32(buf, v0, n, c2, c3, k0, k1, scale):
    """buf[o] = value v0 + o of the float32 normal stream (c2, c3) times scale, o < n."""
    o = np.uint64(0)
    i = np.uint64(v0)
    n = np.uint64(n)
    while (i & _THREE) != np.uint64(0) and o < n:
        buf[o] = _normal_at32(i, c2, c3, k0, k1) * scale
        i += _ONE
        o += _ONE
    nb = (n - o) >> _TWO
    b0 = i >> _TWO
    for t in range(nb):
        b = b0 + t
        x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
        z0, z1 = box_muller_f32(x0, x1)
        z2, z3 = box_muller_f32(x2, x3)
        j = o + (t << _TWO)
        buf[j] = z0 * scale
        buf[j + _ONE] = z1 * scale
        buf[j + _TWO] = z2 * scale
        buf[j + _THREE] = z3 * scale
    o += nb << _TWO
    i += nb << _TWO
    while o < n:
        buf[o] = _normal_at32(i, c2, c3, k0, k1) * scale
        i += _ONE
        o += _ONE


@helper
def _fill_normal_f64(buf, v0, n, c2, c3, k0, k1, scale):
    """buf[o] = value v0 + o of the float64 normal stream (c2, c3) times scale, o < n."""
    o = np.uint64(0)
    i = np.uint64(v0)
    n = np.uint64(n)
    if (i & _ONE) != np.uint64(0) and o < n:
        buf[o] = _normal_at64(i, c2, c3, k0, k1) * scale
        i += _ONE
        o += _ONE
    nb = (n - o) >> _ONE
    b0 = i >> _ONE
    for t in range(nb):
        b = b0 + t
        x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
        z0, z1 = box_muller_f64(x0, x1, x2, x3)
        j = o + (t << _ONE)
        buf[j] = z0 * scale
        buf[j + _ONE] = z1 * scale
    o += nb << _ONE
    i += nb << _ONE
    if o < n:
        buf[o] = _normal_at64(i, c2, c3, k0, k1) * scale


@helper
def _fill_uniform_f32(buf, v0, n, c2, c3, k0, k1, mul, add, scale):
    """buf[o] = (u * mul + add) * scale, u the float32 uniform value v0 + o of stream (c2, c3)."""
    o = np.uint64(0)
    i = np.uint64(v0)
    n = np.uint64(n)
    while (i & _THREE) != np.uint64(0) and o < n:
        b = i >> _TWO
        x = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
        buf[o] = (uniform_f32(x[i & _THREE]) * mul + add) * scale
        i += _ONE
        o += _ONE
    nb = (n - o) >> _TWO
    b0 = i >> _TWO
    for t in range(nb):
        b = b0 + t
        x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
        j = o + (t << _TWO)
        buf[j] = (uniform_f32(x0) * mul + add) * scale
        buf[j + _ONE] = (uniform_f32(x1) * mul + add) * scale
        buf[j + _TWO] = (uniform_f32(x2) * mul + add) * scale
        buf[j + _THREE] = (uniform_f32(x3) * mul + add) * scale
    o += nb << _TWO
    i += nb << _TWO
    while o < n:
        b = i >> _TWO
        x = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
        buf[o] = (uniform_f32(x[i & _THREE]) * mul + add) * scale
        i += _ONE
        o += _ONE


@helper
def _fill_uniform_f64(buf, v0, n, c2, c3, k0, k1, mul, add, scale):
    """buf[o] = (u * mul + add) * scale, u the float64 uniform value v0 + o of stream (c2, c3)."""
    o = np.uint64(0)
    i = np.uint64(v0)
    n = np.uint64(n)
    while o < n:
        b = i >> _ONE
        x0, x1, x2, x3 = philox4x32_10(b & M32, b >> np.uint64(32), c2, c3, k0, k1)
        if (i & _ONE) == np.uint64(0):
            buf[o] = (uniform_f64(x0, x1) * mul + add) * scale
            if o + _ONE < n:
                buf[o + _ONE] = (uniform_f64(x2, x3) * mul + add) * scale
            i += _TWO
            o += _TWO
        else:
            buf[o] = (uniform_f64(x2, x3) * mul + add) * scale
            i += _ONE
            o += _ONE


def fill_normal(buf, v0, n, c2, c3, k0, k1, scale):
    """Dtype dispatch (compile time) between the float32 and float64 normal fills."""


@overload(fill_normal, inline="always")
def _ol_fill_normal(buf, v0, n, c2, c3, k0, k1, scale):
    if buf.dtype == types.float32:
        return lambda buf, v0, n, c2, c3, k0, k1, scale: _fill_normal_f32(buf, v0, n, c2, c3, k0, k1, scale)
    return lambda buf, v0, n, c2, c3, k0, k1, scale: _fill_normal_f64(buf, v0, n, c2, c3, k0, k1, scale)


def fill_uniform(buf, v0, n, c2, c3, k0, k1, mul, add, scale):
    """Dtype dispatch (compile time) between the float32 and float64 uniform fills."""


@overload(fill_uniform, inline="always")
def _ol_fill_uniform(buf, v0, n, c2, c3, k0, k1, mul, add, scale):
    if buf.dtype == types.float32:
        return (lambda buf, v0, n, c2, c3, k0, k1, mul, add, scale:
                _fill_uniform_f32(buf, v0, n, c2, c3, k0, k1, mul, add, scale))
    return (lambda buf, v0, n, c2, c3, k0, k1, mul, add, scale:
            _fill_uniform_f64(buf, v0, n, c2, c3, k0, k1, mul, add, scale))


def normal_at(i, c2, c3, k0, k1, like):
    """Value i of the normal stream (c2, c3) in the dtype of the scalar ``like``."""


@overload(normal_at)
def _ol_normal_at(i, c2, c3, k0, k1, like):
    if like == types.float32:
        return lambda i, c2, c3, k0, k1, like: _normal_at32(i, c2, c3, k0, k1)
    return lambda i, c2, c3, k0, k1, like: _normal_at64(i, c2, c3, k0, k1)


def cast_like(x, arr):
    """The number x in the dtype of the array ``arr`` (compile-time dispatch)."""


@overload(cast_like, inline="always")
def _ol_cast_like(x, arr):
    if arr.dtype == types.float32:
        return lambda x, arr: np.float32(x)
    return lambda x, arr: np.float64(x)


def attempt_shift(like):
    """Bit position of the redraw counter in a value index (50 for float32, 49 for float64)."""


@overload(attempt_shift, inline="always")
def _ol_attempt_shift(like):
    if like == types.float32:
        return lambda like: ATTEMPT_SHIFT + np.uint64(2)
    return lambda like: ATTEMPT_SHIFT + np.uint64(1)


@helper
def gen_values(buf, v0, n, family, mul, add, scale, c2, c3, k0, k1):
    """buf[:n] = values v0 .. v0+n-1 of a weight matrix of the family, exactly as rf.sample draws them."""
    if family == 0:
        fill_normal(buf, v0, n, c2, c3, k0, k1, scale)
    elif family == 1:
        fill_uniform(buf, v0, n, c2, c3, k0, k1, mul, add, scale)
    elif family == 2:
        one = cast_like(1.0, buf)
        fill_normal(buf, v0, n, c2, c3, k0, k1, one)
        bound = cast_like(2.0, buf)
        shift = attempt_shift(one)
        for o in range(np.uint64(n)):
            z = buf[o]
            i = np.uint64(v0) + o
            a = np.uint64(0)
            while abs(z) > bound and a < np.uint64(MAX_ATTEMPTS):
                a += _ONE
                z = normal_at((a << shift) | i, c2, c3, k0, k1, one)
            buf[o] = z * scale
    else:
        for o in range(n):
            buf[o] = scale


# --- activations: float32 tanh and sigmoid that vectorise ----------------------------------------
# libm's tanhf/expf are scalar calls (measured ~10 ns per element with the derivative, a quarter of the
# whole propagation at samples = 32); these use +, -, *, /, floor and bit operations only, so LLVM
# vectorises the activation loop.  Cephes expf/tanhf polynomials: tanh within 2 ulp, exp within 1 ulp
# (tests/test_propagate.py).  The activations are not part of the bit-identical stream contract.
EXPF_P = (np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3),
          np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1))
TANHF_P = (np.float32(-5.70498872745e-3), np.float32(2.06390887954e-2), np.float32(-5.37397155531e-2),
           np.float32(1.33314422036e-1), np.float32(-3.33332819422e-1))
F32_LOG2E = np.float32(1.44269504088896341)
F32_C1 = np.float32(0.693359375)
F32_C2 = np.float32(-2.12194440e-4)
F32_EXP_MAX = np.float32(88.0)
F32_EXP_MIN = np.float32(-87.0)


@intrinsic
def fdiv(typingctx, a, b):
    """a / b as one IEEE division: Numba's ``/`` branches on a zero divisor (for its error model), and
    that branch keeps LLVM from vectorising the loop around it."""
    if isinstance(a, types.Float) and a == b:
        def codegen(context, builder, signature, args):
            return builder.fdiv(args[0], args[1])
        return a(a, b), codegen
    return None


@device
def exp_f32(x):
    """e**x for float32, x clamped to [-87, 88] (no overflow, no subnormals): Cephes expf."""
    x = min(max(x, F32_EXP_MIN), F32_EXP_MAX)
    n = np.floor(x * F32_LOG2E + np.float32(0.5))
    r = x - n * F32_C1
    r = r - n * F32_C2
    p = EXPF_P[0] * r + EXPF_P[1]
    p = p * r + EXPF_P[2]
    p = p * r + EXPF_P[3]
    p = p * r + EXPF_P[4]
    p = p * r + EXPF_P[5]
    p = p * r * r + r + np.float32(1.0)
    two_n = u32_as_f32(np.uint32((np.int32(n) + np.int32(127)) << np.int32(23)))
    return p * two_n


@device
def tanh_f32(x):
    """tanh for float32: odd polynomial for |x| < 0.625, 1 - 2/(e^{2|x|} + 1) beyond (Cephes tanhf)."""
    ax = abs(x)
    z = x * x
    p = TANHF_P[0] * z + TANHF_P[1]
    p = p * z + TANHF_P[2]
    p = p * z + TANHF_P[3]
    p = p * z + TANHF_P[4]
    small = p * z * x + x
    big = np.float32(1.0) - fdiv(np.float32(2.0), exp_f32(ax + ax) + np.float32(1.0))
    big = big if x >= np.float32(0.0) else -big
    return small if ax < np.float32(0.625) else big


def tanh_like(x):
    """tanh in the dtype of x: the vectorising float32 version, libm for float64."""


@overload(tanh_like, inline="always")
def _ol_tanh_like(x):
    if x == types.float32:
        return lambda x: tanh_f32(x)
    return lambda x: np.tanh(x)


def exp_like(x):
    """exp in the dtype of x: the vectorising float32 version, libm for float64."""


@overload(exp_like, inline="always")
def _ol_exp_like(x):
    if x == types.float32:
        return lambda x: exp_f32(x)
    return lambda x: np.exp(x)


# --- the layer steps, shared by the generated and the given-weights paths -------------------------
# BLAS through Numba's own gemm entry point (the symbol np.dot calls, with alpha and beta exposed), so the
# backward pass accumulates panel after panel inside the GEMM (beta = 1) instead of in an extra pass over
# the result per panel (measured: at width 1024 those passes cost a quarter of the run).  Row-major C =
# A @ B is the column-major product C^T = B^T A^T, which is how the calls below read.
_XXGEMM32 = _BLAS().numba_xxgemm(types.float32)
_XXGEMM64 = _BLAS().numba_xxgemm(types.float64)


def gemm(transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major c[m, n] = alpha · a[m, k] @ op(b) + beta · c (op = transpose when transb is 't');
    a, b, c are arrays (their first element is the matrix), alpha and beta 1-element arrays."""


@overload(gemm)
def _ol_gemm(transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    fn, kind = (_XXGEMM32, ord("s")) if c.dtype == types.float32 else (_XXGEMM64, ord("d"))

    def impl(transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        r = fn(kind, ord("n"), transb, m, n, k, alpha.ctypes, a.ctypes, lda, b.ctypes, ldb, beta.ctypes,
               c.ctypes, ldc)
        if r != 0:
            raise RuntimeError("propagate: BLAS gemm failed")
    return impl


@helper
def forward_gemm(X, Z, fi, width, pr, pbuf, W, given, family, mul, add, scale, c2, c3, k0, k1, ab):
    """Z[:width] = W_l @ X[:fi], W_l generated panel by panel (or read from W when ``given``);
    ab = [1, 0, 1] in the dtype (alpha, beta = 0, beta = 1)."""
    S = X.shape[1]
    for i0 in range(0, width, pr):
        nr = min(pr, width - i0)
        if given:
            wp = W[i0:i0 + nr]
        else:
            gen_values(pbuf[:nr * fi], np.uint64(i0) * np.uint64(fi), nr * fi, family, mul, add, scale, c2, c3,
                       k0, k1)
            wp = pbuf[:nr * fi].reshape((nr, fi))
        gemm(ord("n"), S, nr, fi, ab[0:1], X, S, wp, fi, ab[1:2], Z[i0:i0 + nr], S)


@helper
def backward_gemm(U, Dn, fi, width, pr, pbuf, W, given, family, mul, add, scale, c2, c3, k0, k1, ab):
    """Dn[:fi] = W_l^T @ U[:width]: one GEMM per panel of rows, the first with beta = 0, the others
    accumulating (beta = 1) in panel order."""
    S = U.shape[1]
    for i0 in range(0, width, pr):
        nr = min(pr, width - i0)
        if given:
            wp = W[i0:i0 + nr]
        else:
            gen_values(pbuf[:nr * fi], np.uint64(i0) * np.uint64(fi), nr * fi, family, mul, add, scale, c2, c3,
                       k0, k1)
            wp = pbuf[:nr * fi].reshape((nr, fi))
        beta = ab[1:2] if i0 == 0 else ab[2:3]
        gemm(ord("t"), S, fi, nr, ab[0:1], U[i0:i0 + nr], S, wp, fi, beta, Dn, S)


@helper
def add_bias(Z, width, bias_std, c2, c3, k0, k1):
    """Z[i, :] += b_i, b_i = bias_std · value i of the normal stream (c2, c3) (PROP_BIAS, layer)."""
    S = Z.shape[1]
    for i in range(width):
        b = normal_at(np.uint64(i), c2, c3, k0, k1, bias_std) * bias_std
        for s in range(S):
            Z[i, s] += b


@device
def act_fn(z, act, one, zero):
    """(f(z), f'(z)) for activation code act (0 linear, 1 tanh, 2 sigmoid, 3 relu)."""
    if act == 1:
        t = tanh_like(z)
        return t, one - t * t
    if act == 2:
        g = fdiv(one, one + exp_like(-z))
        return g, g * (one - g)
    if act == 3:
        pos = z > zero
        return (z if pos else zero), (one if pos else zero)
    return z, one


@helper
def activate(Z, X, D, width, act, st, do_stats, cols):
    """X[:width] = f(Z), D = f'(Z); with ``do_stats`` the statistics of Z and X into st[0:7].

    Three fused passes over the layer (cols: (5, samples) float64 scratch of per-column sums, which
    vectorise where one running sum would be a serial chain): column sums of z; then (z - m_s)², the
    activation, and the column sums of x and |x|; then (x - m_s)².  Per column the variance is taken
    around the column mean, and var = mean within-column variance + variance of the column means (an
    exact decomposition, no cancellation).
    """
    S = Z.shape[1]
    one = cast_like(1.0, Z)
    zero = cast_like(0.0, Z)
    if not do_stats:
        for i in range(width):
            for s in range(S):
                x, d = act_fn(Z[i, s], act, one, zero)
                X[i, s] = x
                D[i, s] = d
        return
    for c in range(5):
        for s in range(S):
            cols[c, s] = 0.0
    for i in range(width):
        for s in range(S):
            cols[0, s] += np.float64(Z[i, s])
    for s in range(S):
        cols[0, s] = cols[0, s] / width
    for i in range(width):
        for s in range(S):
            z = Z[i, s]
            dz = np.float64(z) - cols[0, s]
            cols[1, s] += dz * dz
            x, d = act_fn(z, act, one, zero)
            X[i, s] = x
            D[i, s] = d
            xf = np.float64(x)
            cols[2, s] += xf
            cols[3, s] += abs(xf)
    for s in range(S):
        cols[2, s] = cols[2, s] / width
    for i in range(width):
        for s in range(S):
            dx = np.float64(X[i, s]) - cols[2, s]
            cols[4, s] += dx * dx
    n = width * S
    zm, zq, xm, xa, xq, zb, xb = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for s in range(S):
        zm += cols[0, s]
        zq += cols[1, s]
        xm += cols[2, s]
        xa += cols[3, s]
        xq += cols[4, s]
    zm = zm / S
    xm = xm / S
    for s in range(S):
        d = cols[0, s] - zm
        zb += d * d
        d = cols[2, s] - xm
        xb += d * d
    st[0] = zm
    st[2] = zq / n
    st[1] = zq / n + zb / S
    st[3] = xm
    st[5] = xq / n
    st[4] = xq / n + xb / S
    st[6] = xa / n


@helper
def grad_stat(Dn, fi, st, col):
    """st[7] = mean over units and samples of Dn[:fi]² (float64; per-column partial sums in col)."""
    S = Dn.shape[1]
    for s in range(S):
        col[s] = 0.0
    for k in range(fi):
        for s in range(S):
            v = np.float64(Dn[k, s])
            col[s] += v * v
    a = 0.0
    for s in range(S):
        a += col[s]
    st[7] = a / (fi * S)


@helper
def draw_inputs(X, G, in_width, width, c2, c3x, c3g, k0, k1):
    """X[k, s] = value k of the normal stream (c2, c3x + s); G[i, s] = value i of (c2, c3g + s)."""
    S = X.shape[1]
    like = cast_like(0.0, X)
    for s in range(S):
        for k in range(in_width):
            X[k, s] = normal_at(np.uint64(k), c2, c3x + np.uint64(s), k0, k1, like)
        for i in range(width):
            G[i, s] = normal_at(np.uint64(i), c2, c3g + np.uint64(s), k0, k1, like)


@helper
def backward_step(D, G, G2, fi, width, pr, pbuf, W, given, family, mul, add, scale, c2, c3, k0, k1, ab):
    """U = D ⊙ G (into D), G2[:fi] = W^T U (the caller swaps G and G2)."""
    S = G.shape[1]
    for i in range(width):
        for s in range(S):
            D[i, s] = D[i, s] * G[i, s]
    backward_gemm(D, G2, fi, width, pr, pbuf, W, given, family, mul, add, scale, c2, c3, k0, k1, ab)


# --- the kernels: one network per call --------------------------------------------------------------
# The API runs networks on a pool of Python threads (the kernels release the GIL), one network per task:
# coarse parallelism with no Numba parallel region, whose compilation re-optimises every helper linked
# into it (measured: 13 s of the 48 s it took to compile the first version).
def network(st, k0, k1, c2, c3w, c3b, c3x, c3g, family, mul, add, scale0, scale, bias_std, width, in_width,
            samples, act, seg, pr, wdummy):
    """Network c2 from its inputs to its last gradient: st[l, :] (columns STAT_FIELDS) for every layer.

    ``scale0`` is layer 0's scale (its fan-in is ``in_width``), ``scale`` that of the others; ``seg``
    the layers per backward segment (``seg >= depth``: f'(z) of every layer stored by the forward pass);
    ``pr`` the rows per generated panel; ``wdummy`` any (0, 0) array of the dtype.
    """
    depth = st.shape[0]
    dt = wdummy.dtype
    S = samples
    maxw = max(width, in_width)
    nseg = (depth + seg - 1) // seg
    X = np.empty((maxw, S), dt)
    Z = np.empty((width, S), dt)
    G = np.empty((maxw, S), dt)
    G2 = np.empty((maxw, S), dt)
    D = np.empty((seg, width, S), dt)
    ab = np.zeros(3, dt)
    ab[0] = 1.0
    ab[2] = 1.0
    ck = np.empty((nseg if nseg > 1 else 0, maxw, S), dt)
    pbuf = np.empty(pr * maxw, dt)
    cols = np.empty((5, S), np.float64)
    draw_inputs(X, G, in_width, width, c2, c3x, c3g, k0, k1)
    # forward pass, with statistics
    for layer in range(depth):
        fi = in_width if layer == 0 else width
        if nseg > 1 and layer % seg == 0:
            ck[layer // seg, :fi] = X[:fi]
        c3 = c3w + np.uint64(layer)
        sc = scale0 if layer == 0 else scale
        forward_gemm(X, Z, fi, width, pr, pbuf, wdummy, False, family, mul, add, sc, c2, c3, k0, k1, ab)
        if bias_std != 0:
            add_bias(Z, width, bias_std, c2, c3b + np.uint64(layer), k0, k1)
        activate(Z, X, D[layer % seg], width, act, st[layer], True, cols)
    # backward pass, segment by segment (one segment, stored during the forward pass, when seg >= depth)
    for sg in range(nseg - 1, -1, -1):
        l0 = sg * seg
        l1 = min(depth, l0 + seg)
        if nseg > 1:
            fi0 = in_width if l0 == 0 else width
            X[:fi0] = ck[sg, :fi0]
            for layer in range(l0, l1):
                fi = in_width if layer == 0 else width
                c3 = c3w + np.uint64(layer)
                sc = scale0 if layer == 0 else scale
                forward_gemm(X, Z, fi, width, pr, pbuf, wdummy, False, family, mul, add, sc, c2, c3, k0, k1, ab)
                if bias_std != 0:
                    add_bias(Z, width, bias_std, c2, c3b + np.uint64(layer), k0, k1)
                activate(Z, X, D[layer - l0], width, act, st[layer], False, cols)
        for layer in range(l1 - 1, l0 - 1, -1):
            fi = in_width if layer == 0 else width
            c3 = c3w + np.uint64(layer)
            sc = scale0 if layer == 0 else scale
            backward_step(D[layer - l0], G, G2, fi, width, pr, pbuf, wdummy, False, family, mul, add, sc,
                          c2, c3, k0, k1, ab)
            grad_stat(G2, fi, st[layer], cols[0])
            G, G2 = G2, G


def _sig_net(dt):
    a2 = types.Array(dt, 2, "C")
    return types.void(types.float64[:, ::1], _u64, _u64, _u64, _u64, _u64, _u64, _u64, _i64, dt, dt, dt, dt,
                      dt, _i64, _i64, _i64, _i64, _i64, _i64, a2)


network_f32 = kernel(_sig_net(types.float32))(network)
network_f64 = kernel(_sig_net(types.float64))(network)


# --- given weights (orthogonal): one layer of one network per call ---------------------------------
def given_inputs(X, G, k0, k1, c2, c3x, c3g, in_width, width):
    """X = inputs x_0 (in_width, samples), G = output gradients g (width, samples) of network c2."""
    draw_inputs(X, G, in_width, width, c2, c3x, c3g, k0, k1)


def given_forward(W, X, Z, D, st, k0, k1, c2, c3b, bias_std, act, pr):
    """One forward layer of network c2 with the given weights W (width, fan_in): the same panel GEMMs,
    bias and activation as ``network``; D = f'(z), st = the layer's forward statistics."""
    width, fi = W.shape
    S = X.shape[1]
    pbuf = np.empty(0, X.dtype)
    cols = np.empty((5, S), np.float64)
    ab = np.zeros(3, X.dtype)
    ab[0] = 1.0
    ab[2] = 1.0
    forward_gemm(X, Z, fi, width, pr, pbuf, W, True, 0, bias_std, bias_std, bias_std, c2, np.uint64(0), k0,
                 k1, ab)
    if bias_std != 0:
        add_bias(Z, width, bias_std, c2, c3b, k0, k1)
    activate(Z, X, D, width, act, st, True, cols)


def given_backward(W, D, G, G2, st, pr):
    """One backward layer: G2[:fan_in] = W^T (D ⊙ G) (D is overwritten) and its grad_var into st."""
    width, fi = W.shape
    pbuf = np.empty(0, G.dtype)
    ab = np.zeros(3, G.dtype)
    ab[0] = 1.0
    ab[2] = 1.0
    backward_step(D, G, G2, fi, width, pr, pbuf, W, True, 0, ab[0], ab[0], ab[0], np.uint64(0), np.uint64(0),
                  np.uint64(0), np.uint64(0), ab)
    grad_stat(G2, fi, st, np.empty(G.shape[1], np.float64))


def _given_sigs(dt):
    a2 = types.Array(dt, 2, "C")
    f64 = types.float64[::1]
    return (types.void(a2, a2, _u64, _u64, _u64, _u64, _u64, _i64, _i64),
            types.void(a2, a2, a2, a2, f64, _u64, _u64, _u64, _u64, dt, _i64, _i64),
            types.void(a2, a2, a2, a2, f64, _i64))


_g32, _g64 = _given_sigs(types.float32), _given_sigs(types.float64)
given_inputs_f32, given_forward_f32, given_backward_f32 = (
    kernel(_g32[0])(given_inputs), kernel(_g32[1])(given_forward), kernel(_g32[2])(given_backward))
given_inputs_f64, given_forward_f64, given_backward_f64 = (
    kernel(_g64[0])(given_inputs), kernel(_g64[1])(given_forward), kernel(_g64[2])(given_backward))


# --- the weights as the kernel generates them (for tests) ------------------------------------------
def _sig_w(dt):
    return types.void(types.Array(dt, 3, "C"), _u64, _u64, _u64, _u64, _i64, dt, dt, dt, _i64)


@kernel([_sig_w(types.float32), _sig_w(types.float64)], parallel=False)
def layer_weights(out, k0, k1, c2_start, c3, family, mul, add, scale, pr):
    """out[b] = layer c3 of network c2_start + b exactly as ``propagate`` generates it, panel by panel
    (for the test that it equals rf.sample bit for bit)."""
    nb, width, fi = out.shape
    for b in range(nb):
        c2 = (c2_start + np.uint64(b)) & M32
        flat = out[b].reshape(width * fi)
        for i0 in range(0, width, pr):
            nr = min(pr, width - i0)
            gen_values(flat[i0 * fi:(i0 + nr) * fi], np.uint64(i0) * np.uint64(fi), nr * fi, family, mul, add,
                       scale, c2, c3, k0, k1)


def compiled(*kernels):
    """Compile (or load from the cache) the given kernels now.  Inlining the ``tanh_like``/``exp_like``
    overloads (needed: a call left in the activation loop keeps it scalar) trips a pedantic Numba IR
    check about the inlined function's variable names (NumbaIRAssumptionWarning); the code is correct,
    so that warning is silenced here, during compilation only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
        for k in kernels:
            k.dispatcher
    return kernels[0] if len(kernels) == 1 else kernels
