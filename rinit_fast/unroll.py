"""``rf.unroll``: long-horizon recurrences h_t = f(W h_{t-1} + U x_t + b), norms in log scale.

Validate → plan → call kernels/cpu/unroll.py.  docs/unroll.md explains the state representation
(h = g·2**e, exact power-of-two renormalisation), the stream of the inputs, and the speed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _backend, _validate
from .rng import Purpose, _fill, counter_word3, key_words
from .spec import activations

__all__ = ["unroll", "UnrollResult"]

_MODE = {None: 0, "gaussian": 1, "array": 2}
GAUSS_MAX = 8.6            # |z| of the stream's Box–Muller normals is < 8.58 (u >= 2**-53)
CHUNK_R = 64               # at most this many realisations per work item (see _nchunks)
_FLOOR_MIN = {np.dtype(np.float32): -100, np.dtype(np.float64): -1000}
_NO_FLOOR = -(1 << 62)


@dataclass(frozen=True)
class UnrollResult:
    """What ``rf.unroll`` records.  Leading axes: (batch, R), or (R,) for a single W.

    log_norm : float64 (..., K)
        ``log_norm[..., k]`` = natural log of ||h_t||_2 after step t = (k+1)·record_every; -inf for a
        state that is exactly zero.  Exact to rounding at any size (no overflow, no underflow).
    tangent_log_norm : float64 (..., K) or None
        log ||v_t||, v_t = D_t W v_{t-1} (``tangent=True``): the gradient-flow factor ||∂h_t/∂h_0 · v_0||.
    steps_recorded : int64 (K,)
        The t of each column: record_every, 2·record_every, ...
    final_state, final_exponent : (..., n) in W's dtype, int64 (...)
        The state after the last step as h = final_state · 2**final_exponent (exactly; ``final_h()``
        multiplies it out, which may overflow to inf).  ||final_state|| is in [2**-20, 2**20] unless the
        state is zero or far below the inputs' size.
    final_tangent, final_tangent_exponent : the same for the tangent, or None.
    """

    log_norm: np.ndarray
    tangent_log_norm: np.ndarray | None
    steps_recorded: np.ndarray
    final_state: np.ndarray
    final_exponent: np.ndarray
    final_tangent: np.ndarray | None = None
    final_tangent_exponent: np.ndarray | None = None

    def final_h(self):
        """h_T = final_state · 2**final_exponent (inf where it overflows the dtype)."""
        return np.ldexp(self.final_state, self.final_exponent[..., None])

    def final_v(self):
        """v_T (the tangent), or None."""
        if self.final_tangent is None:
            return None
        return np.ldexp(self.final_tangent, self.final_tangent_exponent[..., None])


def _host(cp, a):
    """A host copy of a CuPy (or __cuda_array_interface__) array, for the shared validation."""
    if _backend.is_cupy(a) or hasattr(a, "__cuda_array_interface__"):
        return cp.asarray(a).get()
    return a


def _nchunks(R):
    """Work items per matrix: a function of R only (never of the thread count or the batch), so
    the bits of every realisation do not depend on them.  Even, so two cores share one matrix."""
    return 1 if R == 1 else 2 * -(-R // (2 * CHUNK_R))


def _split_scale(h, floor):
    """h (A, B, n) → (g, e): h = g·2**e exactly, ||g|| in [1/2, 1) (or 0), e >= floor."""
    a = np.abs(h).max(axis=-1).astype(np.float64)
    _, ea = np.frexp(a)
    hs = np.ldexp(h.astype(np.float64), -ea[..., None])          # entries <= 1: no overflow
    _, en = np.frexp(np.sqrt(np.einsum("...i,...i->...", hs, hs)))
    e = np.where(a > 0, ea.astype(np.int64) + en, 0).astype(np.int64)
    e = np.maximum(e, floor)
    g = np.ascontiguousarray(np.ldexp(h, -e[..., None]).astype(h.dtype, copy=False))
    return g, np.ascontiguousarray(e)


def unroll(W, steps, *, realizations=1, inputs="gaussian", input_scale=1.0, U=None, b=None, h0=None,
           v0=None, nonlinearity="linear", record_every=1, tangent=False, seed=0, start=0):
    """Unroll h_t = f(W h_{t-1} + U x_t + b), t = 1..steps, for every matrix and realisation.

    Parameters
    ----------
    W : (n, n) or (batch, n, n) float32/float64 array (the dtype of the computation).
    steps : int >= 1.
    realizations : int R >= 1, independent input sequences (and initial vectors) per matrix.
    inputs : "gaussian", None or an array.
        "gaussian": x_t ~ N(0, input_scale² I_d) drawn inside the kernel: for matrix j (stream index
        ``start + j``) and realisation r, x_t is ``input_scale *`` values (t-1)·d .. t·d-1 of
        ``rf.rng.normals(seed, Purpose.INPUTS, index=start+j, sub=r, dtype=W.dtype)`` (the product
        rounded once, in W's dtype).  None: no input; h0 then defaults to N(0, I) from the stream
        (``Purpose.H0``), so log_norm is log||W^k h0|| (linear).  An array of shape (steps, d),
        (R, steps, d) or (batch, R, steps, d) gives x_t itself (times input_scale), converted to W's dtype.
    input_scale : float >= 0, multiplies the inputs.
    U : (n, d) array or None (then d = n and U x = x).  b : (n,) array or None.
    h0, v0 : (n,), (R, n) or (batch, R, n).  h0 defaults to 0 with inputs, to a Gaussian vector
        (Purpose.H0, values 0..n-1 of stream (start+j, r)) without; v0 (tangent=True) to a Gaussian
        vector (Purpose.V0).  An R axis must equal ``realizations``.
    nonlinearity : "linear", "tanh" or "relu" (relu'(0) = 0).
    record_every : int in [1, steps]; log_norm[..., k] is taken after step (k+1)·record_every.
    tangent : also propagate v_t = D_t W v_{t-1}, D_t = diag f'(pre-activation of step t).
    seed : int in [0, 2**64).  start : stream index of the first matrix (chunked studies).

    Returns an ``UnrollResult``.  Memory is O(batch·R·(n + K)): neither states nor inputs are stored.
    The backend follows W: a CuPy W (or a GPU tensor through ``__cuda_array_interface__``) runs
    kernels/cuda/unroll.cu and gives CuPy arrays (docs/cuda.md, "Unroll kernel").
    """
    on_gpu = _backend.is_cupy(W) or hasattr(W, "__cuda_array_interface__")
    if on_gpu:     # validation is shared: W on the device, the small arrays on host copies
        cp = _backend._cupy()
        W = cp.asarray(W)
        U, b, h0, v0 = (None if a is None else _host(cp, a) for a in (U, b, h0, v0))
        if not (inputs is None or isinstance(inputs, str)):
            inputs = _host(cp, inputs)
    W3, batched = _validate.unroll_weights(W)
    nb, n = W3.shape[0], W3.shape[1]
    dt = W3.dtype
    steps, record_every = _validate.unroll_steps(steps, record_every)
    R = _validate.positive_int(realizations, "realizations")
    seed = _validate.seed(seed)
    start, nb, _, R = _validate.stream_range(start, nb, 0, R)
    nonlin = _validate.nonlinearity(nonlinearity)
    tangent = _validate.flag(tangent, "tangent")
    sigma = _validate.nonneg_finite(input_scale, "input_scale")
    UT = np.zeros((0, n), dt)
    d = n
    if U is not None:
        Ua = _validate.unroll_matrix_U(U, n, dt)
        d = Ua.shape[1]
        UT = np.ascontiguousarray(Ua.T)
    bias = np.zeros(0, dt) if b is None else _validate.unroll_bias(b, n, dt)
    if isinstance(inputs, str):
        if inputs != "gaussian":
            raise ValueError(f'inputs must be "gaussian", None or an array, got {inputs!r}')
        mode = "gaussian"
    elif inputs is None:
        mode = None
    else:
        mode = "array"
    xarr = np.zeros((1, 1, 1, 1), dt)
    if mode == "array":
        xarr = _validate.unroll_inputs(inputs, steps, d, nb, R, batched, dt)
    if steps * d >= _validate.UNROLL_MAX_VALUES:
        raise ValueError(f"steps·d = {steps * d} exceeds the {_validate.UNROLL_MAX_VALUES} values of one "
                         f"input stream; unroll in shorter runs")
    if v0 is not None and not tangent:
        raise ValueError("v0 is given but tangent=False; pass tangent=True to propagate it")
    g0_in = None if h0 is None else _validate.unroll_rows(h0, "h0", n, nb, R, batched, dt)
    v0_in = None if v0 is None else _validate.unroll_rows(v0, "v0", n, nb, R, batched, dt)

    # Bound on |U x_t + b| (per component) → the lowest exponent of the state (kernels/cpu/unroll.py).
    if mode is None:
        xmax = 0.0
    elif mode == "gaussian":
        xmax = sigma * GAUSS_MAX
    else:
        xmax = sigma * float(np.abs(xarr).max(initial=0.0))
    if U is not None:
        xmax *= float(np.abs(UT.astype(np.float64)).sum(axis=0).max())
    bound = xmax + (float(np.abs(bias).max()) if bias.size else 0.0)
    top = float(np.finfo(dt).max) * 2.0 ** -10
    if not bound < top or sigma * GAUSS_MAX >= top:
        raise ValueError(f"the inputs are too large for {dt.name}: |U x_t + b| may reach {bound:.3g} "
                         f"(input_scale={sigma:g}); scale them down or use float64")
    e_floor = max(math.frexp(bound)[1], _FLOOR_MIN[dt]) if bound > 0 else _NO_FLOOR

    K = steps // record_every
    nbytes = (nb * R * (K * 8 * (1 + tangent) + (n * dt.itemsize + 8) * (3 + 3 * tangent))
              + 4 * (n + d) * n * dt.itemsize)
    _validate.memory(nbytes, f"unroll(W {tuple(W3.shape)}, steps={steps}, realizations={R})")

    # initial states: h = g·2**e
    if g0_in is None:
        h = np.zeros((nb, R, n), dt)
        if mode is None:
            _fill("normal", h, seed, start, Purpose.H0, 0)
    else:
        h = np.ascontiguousarray(np.broadcast_to(g0_in, (nb, R, n)))
    G0, E0 = _split_scale(h, e_floor)
    if tangent:
        if v0_in is None:
            v = np.empty((nb, R, n), dt)
            _fill("normal", v, seed, start, Purpose.V0, 0)
        else:
            v = np.ascontiguousarray(np.broadcast_to(v0_in, (nb, R, n)))
        V0, EV0 = _split_scale(v, _NO_FLOOR)
        out_tlog = np.empty((nb, R, K), np.float64)
        out_v = np.empty((nb, R, n), dt)
        out_ev = np.empty((nb, R), np.int64)
    else:
        V0, EV0 = np.zeros((1, 1, 1), dt), np.zeros((1, 1), np.int64)
        out_tlog = np.zeros((1, 1, 1), np.float64)
        out_v, out_ev = np.zeros((1, 1, 1), dt), np.zeros((1, 1), np.int64)
    out_log = np.empty((nb, R, K), np.float64)
    out_g = np.empty((nb, R, n), dt)
    out_e = np.empty((nb, R), np.int64)

    k0, k1 = key_words(seed)
    if on_gpu:
        _validate.memory(nbytes + nb * (n + d) * (n + 4) * dt.itemsize,
                         f"unroll(W {tuple(W3.shape)}, steps={steps}, realizations={R})", backend="cuda")
        from .kernels.cuda import unroll_launch as gkern
        UT, bias, xarr, G0, E0, V0, EV0 = (cp.ascontiguousarray(cp.asarray(a))
                                           for a in (UT, bias, xarr, G0, E0, V0, EV0))
        out_log, out_tlog, out_g, out_e, out_v, out_ev = (cp.empty(a.shape, a.dtype) for a in (
            out_log, out_tlog, out_g, out_e, out_v, out_ev))
        gkern.unroll(W3, UT, bias, xarr, G0, E0, V0, EV0, steps, record_every, _MODE[mode],
                     activations.code(nonlin), int(tangent), e_floor, d, k0, k1, np.uint64(start),
                     counter_word3(Purpose.INPUTS, 0), dt.type(sigma), out_log, out_tlog, out_g, out_e,
                     out_v, out_ev)
    else:
        from .kernels.cpu import unroll as kern
        kern.unroll(W3, UT, bias, xarr, G0, E0, V0, EV0, steps, record_every, _MODE[mode],
                    activations.code(nonlin), int(tangent), _nchunks(R), e_floor, d, k0, k1, np.uint64(start),
                    counter_word3(Purpose.INPUTS, 0), dt.type(sigma), out_log, out_tlog, out_g, out_e,
                    out_v, out_ev)

    def shape(a):
        return a if batched else a[0]
    return UnrollResult(
        log_norm=shape(out_log), tangent_log_norm=shape(out_tlog) if tangent else None,
        steps_recorded=np.arange(1, K + 1, dtype=np.int64) * record_every,
        final_state=shape(out_g), final_exponent=shape(out_e),
        final_tangent=shape(out_v) if tangent else None,
        final_tangent_exponent=shape(out_ev) if tangent else None)
