"""``rf.unroll``: long-horizon recurrences h_t = f(W h_{t-1} + U x_t + b), norms in log scale.

Validate (rinit_fast/_validate.py) → plan (rinit_fast/spec/unroll.py) → run on W's backend: the same
call ``unroll(plan, W, UT, bias, xarr, G0, E0, V0, EV0, out)`` of kernels/cpu/unroll.py (NumPy W) or
kernels/cuda/unroll_launch.py (CuPy W).  docs/unroll.md explains the state representation (h = g·2**e,
exact power-of-two renormalisation), the stream of the inputs, what is compiled, and the speed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _backend, _validate
from .rng import Purpose, _fill
from .spec import unroll as spec

__all__ = ["unroll", "UnrollResult"]


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


def _host(a):
    """A host copy of a CuPy (or __cuda_array_interface__) array, for the shared validation."""
    if _backend.is_cupy(a) or hasattr(a, "__cuda_array_interface__"):
        return _backend.xp("cuda").asarray(a).get()
    return a


def _split_scale(h, floor):
    """h (A, B, n) → (g, e): h = g·2**e exactly, ||g|| in [1/2, 1) (or 0), e >= floor (host, NumPy)."""
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
    # --- validate (shared by both backends: W on its device, the small arrays on the host) ---------------
    on_gpu = _backend.is_cupy(W) or hasattr(W, "__cuda_array_interface__")
    if on_gpu:
        W = _backend.xp("cuda").asarray(W)
        U, b, h0, v0 = (None if a is None else _host(a) for a in (U, b, h0, v0))
        if not (inputs is None or isinstance(inputs, str)):
            inputs = _host(inputs)
    W3, batched = _validate.unroll_weights(W)
    nb, n = W3.shape[0], W3.shape[1]
    dt = np.dtype(W3.dtype)
    steps, record_every = _validate.unroll_steps(steps, record_every)
    R = _validate.positive_int(realizations, "realizations")
    seed = _validate.seed(seed)
    start, nb, _, R = _validate.stream_range(start, nb, 0, R)
    nonlin = _validate.nonlinearity(nonlinearity)
    tangent = _validate.flag(tangent, "tangent")
    sigma = _validate.nonneg_finite(input_scale, "input_scale")
    mode, UT, d, bias, xarr, g0_in, bound = _validate.unroll_drive(inputs, U, b, h0, sigma, n, steps, nb, R,
                                                                   batched, dt)
    _validate.unroll_v0(v0, tangent)
    v0_in = None if v0 is None else _validate.unroll_rows(v0, "v0", n, nb, R, batched, dt)

    # --- plan (rinit_fast/spec/unroll.py) ---------------------------------------------------------------
    p = spec.plan(batch=nb, R=R, n=n, d=d, du=UT.shape[0], steps=steps, record_every=record_every,
                  inputs=inputs, nonlinearity=nonlin, tangent=tangent, nbias=bias.shape[0],
                  bx=xarr.shape[0], rx=xarr.shape[1], bound=bound, seed=seed, start=start,
                  input_scale=sigma, dtype=dt)
    backend = "cuda" if on_gpu else "cpu"
    what = f"unroll(W {tuple(W3.shape)}, steps={steps}, realizations={R})"
    _validate.memory(spec.memory_bytes(p, "cpu"), what)
    if on_gpu:
        _validate.memory(spec.memory_bytes(p, "cuda"), what, backend="cuda")

    # initial states h = g·2**e (host)
    if g0_in is None:
        h = np.zeros((nb, R, n), dt)
        if mode == spec.NO_INPUT:
            _fill("normal", h, seed, start, Purpose.H0, 0)
    else:
        h = np.ascontiguousarray(np.broadcast_to(g0_in, (nb, R, n)))
    G0, E0 = _split_scale(h, p.e_floor)
    if tangent:
        if v0_in is None:
            v = np.empty((nb, R, n), dt)
            _fill("normal", v, seed, start, Purpose.V0, 0)
        else:
            v = np.ascontiguousarray(np.broadcast_to(v0_in, (nb, R, n)))
        V0, EV0 = _split_scale(v, spec.NO_FLOOR)
    else:
        V0, EV0 = np.zeros((1, 1, 1), dt), np.zeros((1, 1), np.int64)

    # --- run on W's backend: the same call, the arrays on its device ------------------------------------
    xp, kern = _kernels(backend)
    args = [xp.ascontiguousarray(xp.asarray(a)) for a in (UT, bias, xarr, G0, E0, V0, EV0)]
    out = {k: xp.empty(shape, dtype) for k, (shape, dtype) in spec.output_shapes(p).items()}
    kern.unroll(p, W3, *args, out=out)

    def shape(a):
        return a if batched else a[0]
    return UnrollResult(
        log_norm=shape(out["log_norm"]), tangent_log_norm=shape(out["tangent_log_norm"]) if tangent else None,
        steps_recorded=spec.record_steps(steps, record_every),
        final_state=shape(out["final_state"]), final_exponent=shape(out["final_exponent"]),
        final_tangent=shape(out["final_tangent"]) if tangent else None,
        final_tangent_exponent=shape(out["final_tangent_exponent"]) if tangent else None)


def _kernels(backend):
    """(array module, kernel module) of a backend: both kernel modules have ``unroll(plan, W, UT, bias,
    xarr, G0, E0, V0, EV0, out)`` (kernels/cpu/unroll.py, kernels/cuda/unroll_launch.py)."""
    if backend == "cuda":
        from .kernels.cuda import unroll_launch
        return _backend.xp("cuda"), unroll_launch
    from .kernels.cpu import unroll as cpu_unroll
    return np, cpu_unroll
