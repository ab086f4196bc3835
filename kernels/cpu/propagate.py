"""Depth propagation kernels: x_{l+1} = f(W_l x_l + b_l) through a stack of freshly drawn layers, with a
backward pass of a random output gradient, accumulating per-network, per-layer statistics.

The API (rinit_fast/propagate.py) validates the call and builds a ``Plan`` (rinit_fast/spec/propagate.py:
path, family, segment length, panel rows, memory); :func:`run` executes it.

Layer ``l`` of network ``j`` is the matrix ``rf.sample(scheme, (width, fan_in), seed, start=j, layer=l)``:
value ``i·fan_in + k`` (entry (i, k)) of the weights stream (c2 = j, c3 = WEIGHTS | l).  It is never stored
whole: rows are regenerated panel by panel (``pr`` rows) into a small buffer by the one CPU stream body
(kernels/cpu/stream.py: ``fill_normal``/``fill_uniform``/``fill_truncated``, the functions rf.sample
runs, so bit for bit its matrix), and each panel is applied to all ``samples`` inputs of the network at
once by a single-threaded BLAS GEMM: the generation of a value is shared by every input.  Inputs, output
gradients and biases come from the same fills.

BLAS is SciPy's ``cython_blas`` sgemm/dgemm (the library NumPy's and Numba's matmul reach too), called
from the jitted code by kernels/cpu/blas.py's ``xgemm`` (public APIs only), with alpha and beta exposed
so that the backward pass accumulates panel after panel inside the GEMM (beta = 1).

Layout: every state is (units, samples), C order.  Statistics go to ``stats[j, l, :]`` (float64, columns
``STAT_FIELDS``), computed in float64 from the dtype's values, in a fixed order that depends on neither
the batch, nor the chunking, nor the thread count: each network is one kernel call, handled by one
thread from start to end (``threads.run_tasks``; the kernels release the GIL; BLAS is pinned to one
thread per caller).

Backward: ``delta_depth = g`` (PROP_GRAD stream), ``u = f'(z_l) ⊙ delta_{l+1}``, ``delta_l = W_l^T u``
with W_l regenerated panel by panel.  It needs f'(z_l) of every layer: the forward pass stores them for
a segment of ``seg`` layers; with ``seg < depth`` only the inputs of every segment are kept (checkpoints)
and each segment's forward pass is recomputed, in the same operations, before its backward pass.  The
results do not depend on ``seg``.

Specialisation (compile time, docs/propagate.md "Compilation"): the weight family and the activation
are compile-time constants of each network kernel (``network_kernel(family, act)``: one closure per
pair, with the untaken branches pruned before typing), and each kernel compiles one dtype at a time
on first use; the helpers shared by every variant (statistics, BLAS calls, input draws) compile once per
dtype.  A float32 tanh run thus compiles its network kernel, the tanh activation and the shared
helpers, and never the other families' fills, the other activations or float64.

Orthogonal layers need the whole matrix (QR): the API materialises them one layer at a time for a chunk
of networks (the ``weights`` callback of :func:`run`) and the ``given_*`` kernels apply them with the
same panel GEMMs and the same post-processing.
"""
from __future__ import annotations

import warnings

import numba
import numpy as np
from numba import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload

from rinit_fast.spec import activations as A
from rinit_fast.spec import propagate as P

from . import threads
from ._jit import _COMMON, device, kernel
from .blas import xgemm
from .philox import M32, u32_as_f32
from .stream import fill_normal, fill_truncated, fill_uniform

STAT_FIELDS = P.STAT_FIELDS
NSTAT = P.NSTAT
NCOL = P.NCOL
NORMAL, UNIFORM, TRUNCATED, CONSTANT = P.NORMAL, P.UNIFORM, P.TRUNCATED, P.CONSTANT
LINEAR, TANH, SIGMOID, RELU = A.LINEAR, A.TANH, A.SIGMOID, A.RELU


def helper(fn):
    """A helper called once per panel, layer or row: an ordinary (not inlined) Numba function, compiled
    once per signature and linked into every kernel that calls it."""
    return numba.njit(**_COMMON)(fn)


_u64 = types.uint64
_i64 = types.int64


# --- BLAS: SciPy's cython_blas gemm (kernels/cpu/blas.py) ----------------------------------------
_N = np.int64(ord("n"))
_T = np.int64(ord("t"))


def cast_like(x, arr):
    """The number x in the dtype of the array ``arr`` (compile-time dispatch)."""


@overload(cast_like, inline="always")
def _ol_cast_like(x, arr):
    if arr.dtype == types.float32:
        return lambda x, arr: np.float32(x)
    return lambda x, arr: np.float64(x)


@helper
def mm_forward(wp, X, Z, i0, nr, fi):
    """Z[i0:i0+nr] = Wp @ X[:fi], Wp the row-major (nr, fi) panel at address ``wp``."""
    S = X.shape[1]
    isz = X.itemsize
    xgemm(_N, S, nr, fi, cast_like(1.0, X), X.ctypes.data, S, wp, fi, cast_like(0.0, X),
          Z.ctypes.data + np.uint64(i0 * S * isz), S)


@helper
def mm_backward(wp, U, G2, i0, nr, fi, accumulate):
    """G2[:fi] = Wp^T @ U[i0:i0+nr] (``accumulate``: G2 += ...), Wp the row-major (nr, fi) panel at ``wp``."""
    S = U.shape[1]
    isz = U.itemsize
    beta = cast_like(1.0, U) if accumulate else cast_like(0.0, U)
    xgemm(_T, S, fi, nr, cast_like(1.0, U), U.ctypes.data + np.uint64(i0 * S * isz), S, wp, fi, beta,
          G2.ctypes.data, S)


# --- generation: the stream body, the family fixed at compile time ---------------------------------
@device
def gen_values(FAMILY, buf, v0, n, c2, c3, k0, k1, mul, add, scale):
    """buf[:n] = values v0 .. v0+n-1 of a weight matrix of the family, exactly as rf.sample draws them
    (``FAMILY`` a compile-time constant: the other branches are pruned before typing)."""
    o0 = np.int64(0)
    v0 = np.int64(v0)
    n = np.int64(n)
    if FAMILY == NORMAL:
        fill_normal(buf, o0, v0, n, c2, c3, k0, k1, scale)
    elif FAMILY == UNIFORM:
        fill_uniform(buf, o0, v0, n, c2, c3, k0, k1, mul, add, scale)
    elif FAMILY == TRUNCATED:
        fill_truncated(buf, o0, v0, n, c2, c3, k0, k1, cast_like(P.TRUNC_BOUND, buf), scale)
    else:
        for o in range(n):
            buf[o] = scale


@helper
def draw_inputs(X, G, row, in_width, width, c2, c3x, c3g, k0, k1):
    """X[k, s] = value k of the normal stream (c2, c3x + s); G[i, s] = value i of (c2, c3g + s)."""
    S = X.shape[1]
    one = cast_like(1.0, X)
    z = np.int64(0)
    for s in range(S):
        fill_normal(row, z, z, np.int64(in_width), c2, c3x + np.uint64(s), k0, k1, one)
        for k in range(in_width):
            X[k, s] = row[k]
        fill_normal(row, z, z, np.int64(width), c2, c3g + np.uint64(s), k0, k1, one)
        for i in range(width):
            G[i, s] = row[i]


@helper
def add_bias(Z, row, width, bias_std, c2, c3, k0, k1):
    """Z[i, :] += b_i, b_i = bias_std · value i of the normal stream (c2, c3) (PROP_BIAS, layer)."""
    S = Z.shape[1]
    z = np.int64(0)
    fill_normal(row, z, z, np.int64(width), c2, c3, k0, k1, bias_std)
    for i in range(width):
        b = row[i]
        for s in range(S):
            Z[i, s] += b


# --- activations: float32 tanh and sigmoid that vectorise ----------------------------------------
# libm's tanhf/expf are scalar calls (measured ~10 ns per element with the derivative, a quarter of the
# whole propagation at samples = 32); these use +, -, *, /, floor and bit operations only, so LLVM
# vectorises the activation loop.  Cephes expf/tanhf polynomials: tanh within 2 ulp, exp within 1 ulp
# (tests/test_propagate.py).  The activations are not part of the bit-identical stream contract.
# exp_f32 and tanh_f32 are ordinary compiled functions, which LLVM inlines into the activation loops
# (same speed, measured); inlining them at Numba IR level instead cost 0.5 s more of first-use compile.
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


@helper
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


@helper
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


@device
def act_fn(z, ACT, one, zero):
    """(f(z), f'(z)) for the activation code ACT (rinit_fast/spec/activations.py), a compile-time constant."""
    if ACT == TANH:
        t = tanh_like(z)
        return t, one - t * t
    elif ACT == SIGMOID:
        g = fdiv(one, one + exp_like(-z))
        return g, g * (one - g)
    elif ACT == RELU:
        pos = z > zero
        return (z if pos else zero), (one if pos else zero)
    else:
        return z, one


def _make_activate(ACT):
    def activate(Z, X, D, width):
        """X[:width] = f(Z[:width]), D = f'(Z[:width]): one elementwise loop (it vectorises)."""
        S = Z.shape[1]
        one = cast_like(1.0, Z)
        zero = cast_like(0.0, Z)
        for i in range(width):
            for s in range(S):
                x, d = act_fn(Z[i, s], ACT, one, zero)
                X[i, s] = x
                D[i, s] = d
    activate.__name__ = activate.__qualname__ = f"activate_{A.NAMES[ACT]}"
    return helper(activate)


activate_linear, activate_tanh, activate_sigmoid, activate_relu = (
    _make_activate(a) for a in (LINEAR, TANH, SIGMOID, RELU))


@helper
def layer_stats(Z, X, width, st, cols):
    """The forward statistics of a layer, pre-activations Z and outputs X, into st[0:7] (float64).

    Three passes (cols: (NCOL, samples) float64 scratch of per-column sums, which vectorise where one
    running sum would be a serial chain): column sums of z; then (z - m_s)² and the column sums of x and
    |x|; then (x - m_s)².  Per column the variance is taken around the column mean, and var = mean
    within-column variance + variance of the column means (an exact decomposition, no cancellation).
    Shared by every activation (compiled once per dtype).
    """
    S = Z.shape[1]
    for c in range(NCOL):
        for s in range(S):
            cols[c, s] = 0.0
    for i in range(width):
        for s in range(S):
            cols[0, s] += np.float64(Z[i, s])
    for s in range(S):
        cols[0, s] = cols[0, s] / width
    for i in range(width):
        for s in range(S):
            dz = np.float64(Z[i, s]) - cols[0, s]
            cols[1, s] += dz * dz
            xf = np.float64(X[i, s])
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


@device
def activate(ACT, Z, X, D, width, st, cols, stats):
    """X = f(Z), D = f'(Z) with the compile-time activation ACT (one compiled helper per activation), and
    with ``stats`` the layer's forward statistics into st (the recomputed forward passes of checkpointed
    segments skip them)."""
    if ACT == TANH:
        activate_tanh(Z, X, D, width)
    elif ACT == SIGMOID:
        activate_sigmoid(Z, X, D, width)
    elif ACT == RELU:
        activate_relu(Z, X, D, width)
    else:
        activate_linear(Z, X, D, width)
    if stats:
        layer_stats(Z, X, width, st, cols)


ACTIVATE = {LINEAR: activate_linear, TANH: activate_tanh, SIGMOID: activate_sigmoid, RELU: activate_relu}


def activate_step(act, Z, X, D, width, st, cols):
    """One activation step with statistics, as the network kernels run it (for tests)."""
    with _quiet():
        ACTIVATE[act](Z, X, D, width)
    layer_stats(Z, X, width, st, cols)


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
def copy_rows(dst, src, n):
    """dst[:n] = src[:n] (an explicit loop: a slice assignment compiles Numba's broadcasting and its
    error-message formatting, seconds of compile time)."""
    S = src.shape[1]
    for i in range(n):
        for s in range(S):
            dst[i, s] = src[i, s]


@helper
def times(D, G, width):
    """D[:width] *= G[:width] (u = f'(z) ⊙ delta)."""
    S = G.shape[1]
    for i in range(width):
        for s in range(S):
            D[i, s] = D[i, s] * G[i, s]


# --- the kernels: one network per call --------------------------------------------------------------
def _make_network(FAMILY, ACT):
    def network(st, k0, k1, c2, c3w, c3b, c3x, c3g, mul, add, scale0, scale, bias_std, width, in_width,
                samples, seg, pr, wdummy):
        """Network c2 from its inputs to its last gradient: st[l, :] (columns STAT_FIELDS) for every layer.

        ``scale0`` is layer 0's scale (its fan-in is ``in_width``), ``scale`` that of the others; ``seg``
        the layers per backward segment (``seg >= depth``: f'(z) of every layer stored by the forward
        pass); ``pr`` the rows per generated panel; ``wdummy`` any (0, 0) array of the dtype.
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
        ck = np.empty((nseg if nseg > 1 else 0, maxw, S), dt)
        pbuf = np.empty(pr * maxw, dt)
        row = np.empty(maxw, dt)
        cols = np.empty((NCOL, S), np.float64)
        wp = pbuf.ctypes.data
        draw_inputs(X, G, row, in_width, width, c2, c3x, c3g, k0, k1)
        # sg = nseg: the forward pass through every layer, with statistics (storing the checkpoints when
        # seg < depth); then sg = nseg-1 .. 0: each segment's backward pass, after recomputing its forward
        # pass from its checkpoint when the f'(z) of every layer were not stored (nseg > 1)
        for sg in range(nseg, -1, -1):
            forward = sg == nseg
            l0 = 0 if forward else sg * seg
            l1 = depth if forward else min(depth, l0 + seg)
            if not forward and nseg > 1:
                fi0 = in_width if l0 == 0 else width
                copy_rows(X, ck[sg], fi0)
            if forward or nseg > 1:
                for layer in range(l0, l1):
                    fi = in_width if layer == 0 else width
                    if forward and nseg > 1 and layer % seg == 0:
                        copy_rows(ck[layer // seg], X, fi)
                    c3 = c3w + np.uint64(layer)
                    sc = scale0 if layer == 0 else scale
                    for i0 in range(0, width, pr):
                        nr = min(pr, width - i0)
                        gen_values(FAMILY, pbuf, i0 * fi, nr * fi, c2, c3, k0, k1, mul, add, sc)
                        mm_forward(wp, X, Z, i0, nr, fi)
                    if bias_std != 0:
                        add_bias(Z, row, width, bias_std, c2, c3b + np.uint64(layer), k0, k1)
                    activate(ACT, Z, X, D[layer % seg], width, st[layer], cols, forward)
            if forward:
                continue
            for layer in range(l1 - 1, l0 - 1, -1):
                fi = in_width if layer == 0 else width
                c3 = c3w + np.uint64(layer)
                sc = scale0 if layer == 0 else scale
                Dl = D[layer % seg]
                times(Dl, G, width)
                for i0 in range(0, width, pr):
                    nr = min(pr, width - i0)
                    gen_values(FAMILY, pbuf, i0 * fi, nr * fi, c2, c3, k0, k1, mul, add, sc)
                    mm_backward(wp, Dl, G2, i0, nr, fi, i0 > 0)
                grad_stat(G2, fi, st[layer], cols[0])
                G, G2 = G2, G
    network.__name__ = network.__qualname__ = f"network_{P.FAMILY_NAMES[FAMILY]}_{A.NAMES[ACT]}"
    return kernel([_sig_net(types.float32), _sig_net(types.float64)])(network)


def _sig_net(dt):
    a2 = types.Array(dt, 2, "C")
    return types.void(types.float64[:, ::1], _u64, _u64, _u64, _u64, _u64, _u64, _u64, dt, dt, dt, dt, dt,
                      _i64, _i64, _i64, _i64, _i64, a2)


NETWORKS = {(f, a): _make_network(f, a) for f in P.FAMILY_NAMES for a in A.NAMES}
"""The network kernel of every (family, activation) pair; each compiles one dtype at a time, on first use."""


def network_kernel(family, act):
    """The network kernel of a weight family and an activation code (rinit_fast/spec)."""
    return NETWORKS[(family, act)]


# --- given weights (orthogonal): one layer of one network per call ---------------------------------
def given_inputs(X, G, row, k0, k1, c2, c3x, c3g, in_width, width):
    """X = inputs x_0 (in_width, samples), G = output gradients g (width, samples) of network c2."""
    draw_inputs(X, G, row, in_width, width, c2, c3x, c3g, k0, k1)


def _make_given_forward(ACT):
    def given_forward(W, X, Z, D, row, st, k0, k1, c2, c3b, bias_std, pr):
        """One forward layer of network c2 with the given weights W (width, fan_in): the same panel GEMMs,
        bias and activation as ``network``; D = f'(z), st = the layer's forward statistics."""
        width, fi = W.shape
        S = X.shape[1]
        cols = np.empty((NCOL, S), np.float64)
        wp = W.ctypes.data
        isz = W.itemsize
        for i0 in range(0, width, pr):
            mm_forward(wp + np.uint64(i0 * fi * isz), X, Z, i0, min(pr, width - i0), fi)
        if bias_std != 0:
            add_bias(Z, row, width, bias_std, c2, c3b, k0, k1)
        activate(ACT, Z, X, D, width, st, cols, True)
    given_forward.__name__ = given_forward.__qualname__ = f"given_forward_{A.NAMES[ACT]}"
    return kernel([_sig_given_forward(types.float32), _sig_given_forward(types.float64)])(given_forward)


def given_backward(W, D, G, G2, st, pr):
    """One backward layer: G2[:fan_in] = W^T (D ⊙ G) (D is overwritten) and its grad_var into st."""
    width, fi = W.shape
    wp = W.ctypes.data
    isz = W.itemsize
    times(D, G, width)
    for i0 in range(0, width, pr):
        mm_backward(wp + np.uint64(i0 * fi * isz), D, G2, i0, min(pr, width - i0), fi, i0 > 0)
    grad_stat(G2, fi, st, np.empty(G.shape[1], np.float64))


def _sig_given_forward(dt):
    a2 = types.Array(dt, 2, "C")
    return types.void(a2, a2, a2, a2, types.Array(dt, 1, "C"), types.float64[::1], _u64, _u64, _u64, _u64,
                      dt, _i64)


def _sig_given(dt):
    a1, a2 = types.Array(dt, 1, "C"), types.Array(dt, 2, "C")
    return (types.void(a2, a2, a1, _u64, _u64, _u64, _u64, _u64, _i64, _i64),
            types.void(a2, a2, a2, a2, types.float64[::1], _i64))


given_inputs_k = kernel([_sig_given(types.float32)[0], _sig_given(types.float64)[0]])(given_inputs)
given_backward_k = kernel([_sig_given(types.float32)[1], _sig_given(types.float64)[1]])(given_backward)
GIVEN_FORWARD = {a: _make_given_forward(a) for a in A.NAMES}


# --- the weights as the kernels generate them (for tests) ------------------------------------------
def _make_layer_weights(FAMILY):
    def layer_weights(out, k0, k1, c2_start, c3, mul, add, scale, pr):
        """out[b] = layer c3 of network c2_start + b exactly as the network kernels generate it, panel by
        panel into a buffer (for the test that it equals rf.sample bit for bit)."""
        nb, width, fi = out.shape
        pbuf = np.empty(pr * fi, out.dtype)
        for b in range(nb):
            c2 = (c2_start + np.uint64(b)) & M32
            for i0 in range(0, width, pr):
                nr = min(pr, width - i0)
                gen_values(FAMILY, pbuf, i0 * fi, nr * fi, c2, c3, k0, k1, mul, add, scale)
                for r in range(nr):
                    for k in range(fi):
                        out[b, i0 + r, k] = pbuf[r * fi + k]
    layer_weights.__name__ = layer_weights.__qualname__ = f"layer_weights_{P.FAMILY_NAMES[FAMILY]}"
    return helper(layer_weights)     # test-only: compiled on its first call, not by ``rinit-fast compile``


LAYER_WEIGHTS = {f: _make_layer_weights(f) for f in P.FAMILY_NAMES}


def layer_weights(out, k0, k1, c2_start, c3, family, mul, add, scale, pr):
    """out[b] = layer c3 of network c2_start + b as the kernels of ``family`` generate it (tests)."""
    with _quiet():
        T = out.dtype.type
        LAYER_WEIGHTS[family](out, np.uint64(k0), np.uint64(k1), np.uint64(c2_start), np.uint64(c3), T(mul), T(add),
                              T(scale), np.int64(pr))


# --- running a plan ---------------------------------------------------------------------------------
class _quiet(warnings.catch_warnings):
    """Inlining the ``tanh_like``/``exp_like`` overloads (needed: a call left in the activation loop keeps
    it scalar) trips a pedantic Numba IR check about the inlined function's variable names
    (NumbaIRAssumptionWarning) while a kernel compiles; the code is correct, so that warning is silenced
    during the calls that may compile."""

    def __enter__(self):
        r = super().__enter__()
        warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
        return r


def run(stats, plan, weights=None):
    """Execute a ``rinit_fast.spec.propagate.Plan``: fill ``stats`` (plan.stats_shape, float64).

    ``weights(c0, nb, layer)`` -> a NumPy (nb, width, fan_in) array of layer ``layer`` of networks
    plan.start + c0 .. + nb - 1, for the materialised path (plan.path == "materialised")."""
    if plan.path == P.MATERIALISED:
        return _run_materialised(stats, plan, weights)
    dt = np.dtype(plan.dtype)
    T = dt.type
    k = network_kernel(plan.family, plan.act)
    args = (np.uint64(plan.c3w), np.uint64(plan.c3b), np.uint64(plan.c3x), np.uint64(plan.c3g), T(plan.mul),
            T(plan.add), T(plan.scale0), T(plan.scale), T(plan.bias_std), plan.width, plan.in_width,
            plan.samples, plan.seg, plan.pr, np.empty((0, 0), dt))
    k0, k1 = np.uint64(plan.k0), np.uint64(plan.k1)
    with _quiet():
        fn = k.dispatcher_for(stats[0], k0, k1, k0, *args)

    def task(b):
        fn(stats[b], k0, k1, np.uint64(plan.start + b), *args)

    with threads.blas_single_thread():
        threads.run_tasks(task, plan.batch, plan.chunk)


def _run_materialised(stats, plan, weights):
    """Each layer of a chunk of networks materialised by ``weights`` (once forward, once backward), then
    the same layer steps as the generated path, one network per task."""
    dt = np.dtype(plan.dtype)
    T = dt.type
    width, in_width, depth, S, pr = plan.width, plan.in_width, plan.depth, plan.samples, plan.pr
    maxw = plan.maxw
    k0, k1 = np.uint64(plan.k0), np.uint64(plan.k1)
    c3b, c3x, c3g = np.uint64(plan.c3b), np.uint64(plan.c3x), np.uint64(plan.c3g)
    bias = T(plan.bias_std)
    with _quiet():
        k_in = given_inputs_k.dispatcher_for(np.empty((0, 0), dt))
        k_fw = GIVEN_FORWARD[plan.act].dispatcher_for(np.empty((0, 0), dt))
        k_bw = given_backward_k.dispatcher_for(np.empty((0, 0), dt))
    nthreads = threads.nthreads()
    for c0 in range(0, plan.batch, plan.chunk):
        nb = min(plan.chunk, plan.batch - c0)
        st = stats[c0:c0 + nb]
        X3 = np.zeros((nb, maxw, S), dt)
        G3 = [np.zeros((maxw, S), dt) for _ in range(nb)]
        G3b = [np.zeros((maxw, S), dt) for _ in range(nb)]
        Z3 = np.zeros((nb, width, S), dt)
        D4 = np.zeros((nb, depth, width, S), dt)
        rows = np.zeros((nb, maxw), dt)
        c2 = [np.uint64(plan.start + c0 + b) for b in range(nb)]
        for b in range(nb):
            k_in(X3[b], G3[b], rows[b], k0, k1, c2[b], c3x, c3g, in_width, width)
        for layer in range(depth):
            W3 = weights(c0, nb, layer)

            def fwd(b, W3=W3, layer=layer):
                k_fw(W3[b], X3[b], Z3[b], D4[b, layer], rows[b], st[b, layer], k0, k1, c2[b],
                     c3b + np.uint64(layer), bias, pr)
            with threads.blas_single_thread():
                threads.run_tasks(fwd, nb, nthreads)
        for layer in range(depth - 1, -1, -1):
            W3 = weights(c0, nb, layer)

            def bwd(b, W3=W3, layer=layer):
                k_bw(W3[b], D4[b, layer], G3[b], G3b[b], st[b, layer], pr)
                G3[b], G3b[b] = G3b[b], G3[b]
            with threads.blas_single_thread():
                threads.run_tasks(bwd, nb, nthreads)
