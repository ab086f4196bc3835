"""``rf.lyapunov``: the k largest Lyapunov exponents of h_t = f(W h_{t-1} + U x_t + b) along its trajectory.

Validate → plan (rinit_fast/spec/lyapunov.py) → run (kernels/cpu/lyapunov.py).  docs/lyapunov.md explains
the method (Benettin's QR iteration), the stream of the inputs and the starting frame, the accuracy and
the speed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate
from .rng import Purpose, _fill, counter_word3, key_words
from .spec import activations
from .spec import lyapunov as spec
from .spec import unroll as unroll_spec
from .unroll import _split_scale   # h = g·2**e, as rf.unroll splits its initial states

__all__ = ["lyapunov", "LyapunovResult", "measure"]


@dataclass(frozen=True)
class LyapunovResult:
    """What ``rf.lyapunov`` returns.  Leading axes (batch, R), or (R,) for a single W.

    exponents : float64 (..., k)
        The k largest Lyapunov exponents (natural log per step), in descending order: the average of
        log|R_cc| over the steps after the warm-up.  Directions that the map annihilates (relu with fewer
        active units than k: -inf in exact arithmetic) come out at the rounding floor, about
        log(machine epsilon) per step or below.
    stderr : float64 (..., k)
        Batch-means standard error of each exponent (NBLOCKS = 10 blocks of the averaging window); NaN
        with fewer than two blocks.  A measure of convergence along one trajectory, not of the spread
        between matrices or realisations.
    running : float64 (..., K, k) or None
        The running estimates (sum so far / steps so far past the warm-up) after each step in
        ``steps_recorded``, in the order of ``exponents`` (``record_every``; None without it).
    steps_recorded : int64 (K,)
        The step t of each running estimate: warmup + record_every·(1..K).
    kaplan_yorke_dimension : float64 (...)
        j + (λ_1 + ... + λ_j)/|λ_{j+1}|, j the largest index with λ_1 + ... + λ_j >= 0 (0 when λ_1 < 0).
    entropy_rate : float64 (...)
        Sum of the positive exponents (nats per step; Pesin's formula for the Kolmogorov–Sinai entropy).
    volume_rate : float64 (...)
        (1/(steps - warmup)) Σ_t log|det(D_t W)| along the same trajectory: the sum of all n exponents, to
        rounding (so with k = n it equals exponents.sum(-1): tests/test_lyapunov.py); -inf for relu
        steps with an inactive unit.
    truncated : bool (...)
        True where k < n leaves the Kaplan–Yorke dimension or the entropy rate undetermined (then they
        are lower bounds: the smallest computed exponent is still positive, or the k exponents sum to
        >= 0).
    steps, warmup, reortho_every : int
        The schedule that was run.
    """

    exponents: np.ndarray
    stderr: np.ndarray
    running: np.ndarray | None
    steps_recorded: np.ndarray
    kaplan_yorke_dimension: np.ndarray
    entropy_rate: np.ndarray
    volume_rate: np.ndarray
    truncated: np.ndarray
    steps: int
    warmup: int
    reortho_every: int


def lyapunov(W, k=None, *, steps, warmup=None, nonlinearity="linear", inputs=None, input_scale=1.0, U=None,
             b=None, h0=None, reortho_every=1, realizations=1, record_every=None, seed=0, start=0):
    """The k largest Lyapunov exponents of h_t = f(W h_{t-1} + U x_t + b), for every matrix and realisation.

    Parameters
    ----------
    W : (n, n) or (batch, n, n) float32/float64 array (the dtype of the computation).
    k : number of exponents, 1..n (default n).
    steps : int >= 1, steps of the recurrence; the exponents average the steps after the warm-up.
    warmup : int in [0, steps) (default steps // 10): steps run first, frame re-orthonormalised, not counted.
    nonlinearity : "linear", "tanh" or "relu" (relu'(0) = 0), as rf.unroll.
    inputs : None (default), "gaussian" or an array, as rf.unroll: "gaussian" draws x_t ~ N(0, input_scale²)
        from stream Purpose.INPUTS (index start + j, sub r, value (t-1)·d + i) exactly as rf.unroll does;
        an array (steps, d), (R, steps, d) or (batch, R, steps, d) gives x_t (times input_scale).
    input_scale, U (n, d), b (n,), h0 ((n,), (R, n) or (batch, R, n)) : as rf.unroll; h0 defaults to 0
        with inputs and to N(0, I) (Purpose.H0, as rf.unroll) without.
    reortho_every : int >= 1, re-orthonormalise the frame (QR) every this many steps (1: every step).
    realizations : int R >= 1, trajectories per matrix (own inputs, h0 and starting frame).
    record_every : None, or record the running estimates every this many steps after the warm-up.
    seed : int in [0, 2**64).  start : stream index of the first matrix.

    The starting frame of realisation r of matrix j is the Householder Q of the n x k Gaussian matrix whose
    column c holds values c·n .. c·n + n - 1 of stream Purpose.V0 (index start + j, sub r): its first
    column is rf.unroll's default tangent v0, so k = 1 follows exactly rf.unroll(..., tangent=True)'s
    tangent on the same trajectory (same seed and start).  Memory O(n·k) per trajectory, whatever
    ``steps``; CPU only.  Returns a ``LyapunovResult``.
    """
    W3, batched = _validate.lyapunov_weights(W)
    nb, n = W3.shape[0], W3.shape[1]
    dt = W3.dtype
    k = _validate.lyapunov_k(k, n)
    steps, warmup, every, rec = _validate.lyapunov_schedule(steps, warmup, reortho_every, record_every)
    R = _validate.positive_int(realizations, "realizations")
    seed = _validate.seed(seed)
    start, nb, _, R = _validate.stream_range(start, nb, 0, R)
    nonlin = _validate.nonlinearity(nonlinearity)
    sigma = _validate.nonneg_finite(input_scale, "input_scale")
    code = activations.code(nonlin)
    # inputs, U, b, h0: rf.unroll's rules, checks and bound (spec/unroll.py, _validate.unroll_drive)
    mode, UT, d, bias, xarr, g0_in, bound = _validate.unroll_drive(inputs, U, b, h0, sigma, n, steps, nb, R,
                                                                   batched, dt)
    e_floor = unroll_spec.e_floor(bound, dt)

    K = spec.n_records(steps, warmup, rec)
    from .kernels.cpu import lyapunov as kern, threads
    work = kern.work_bytes(n, k, d, UT.shape[0], steps, dt)     # one item's work arrays
    nbytes = (nb * R * (8 * k * (2 + spec.NBLOCKS + K) + n * dt.itemsize + 16)    # outputs, initial states
              + nb * n * n * 8                                                 # the float64 copy (slogdet)
              + nb * (n + UT.shape[0]) * (n + 32) * dt.itemsize                # [Wᵀ; Uᵀ] packed
              + threads.nthreads() * work)                                     # one item per thread
    _validate.memory(nbytes, f"lyapunov(W {tuple(W3.shape)}, k={k}, realizations={R}, "
                             f"record_every={record_every})")

    # initial states h = g·2**e (the frame is drawn inside the kernel)
    if g0_in is None:
        h = np.zeros((nb, R, n), dt)
        if mode == unroll_spec.NO_INPUT:
            _fill("normal", h, seed, start, Purpose.H0, 0)
    else:
        h = np.ascontiguousarray(np.broadcast_to(g0_in, (nb, R, n)))
    G0, E0 = _split_scale(h, e_floor)

    k0, k1 = key_words(seed)
    plan = spec.plan(n=n, k=k, d=d, steps=steps, warmup=warmup, reortho_every=every, record_every=rec,
                     mode=mode, nonlin=code, nbias=bias.shape[0], e_floor=e_floor, c2_start=start,
                     c3_inputs=counter_word3(Purpose.INPUTS, 0),
                     c3_frame=counter_word3(Purpose.V0, 0), k0=k0, k1=k1)
    return _run(W3, UT, bias, xarr, G0, E0, plan, sigma, batched, steps, warmup, every, rec)


def _run(W3, UT, bias, xarr, G0, E0, plan, sigma, batched, steps, warmup, every, rec):
    """Call the kernel with a plan and summarise."""
    from .kernels.cpu import lyapunov as kern
    nb, R = G0.shape[0], G0.shape[1]
    k = int(plan[spec.PLAN["K"]])
    n = int(plan[spec.PLAN["N"]])
    K = int(plan[spec.PLAN["NREC"]])
    nblocks = int(plan[spec.PLAN["NBLOCKS"]])
    out_sum = np.zeros((nb, R, k))
    out_blocks = np.zeros((nb, R, nblocks, k))
    out_run = np.zeros((nb, R, K, k))
    out_logdet = np.zeros((nb, R))
    kern.lyapunov(W3, UT, bias, xarr, G0, E0, plan, sigma, out_sum, out_blocks, out_run, out_logdet)

    L = steps - warmup
    exps, err, running, _ = spec.summarise(out_sum, out_blocks, out_run if K else None, steps, warmup,
                                           every, rec, nblocks)
    from .kernels.cpu import threads
    with threads.blas_single_thread():     # NumPy's threaded BLAS on a busy machine: 100x slower at n = 256
        _, logabsdet = np.linalg.slogdet(W3.astype(np.float64))
    volume = out_logdet / L + logabsdet[:, None]

    def shape(a):
        return a if batched or a is None else a[0]
    return LyapunovResult(
        exponents=shape(exps), stderr=shape(err), running=shape(running),
        steps_recorded=spec.recorded_steps(steps, warmup, rec),
        kaplan_yorke_dimension=shape(spec.kaplan_yorke(exps)), entropy_rate=shape(spec.entropy_rate(exps)),
        volume_rate=shape(volume), truncated=shape(spec.truncated(exps, n)),
        steps=steps, warmup=warmup, reortho_every=every)


def measure(W, *, k=None, steps, warmup=None, nonlinearity="linear", reortho_every=1, realizations=1,
            seed=0, start=0, **kw):
    """The ``[lyapunov]`` study measure: one cell's matrices W (batch, n, n) → named float64 arrays
    (leading axes (batch, R)): ``lyap_exponents`` (batch, R, k), ``lyap_stderr`` (batch, R, k),
    ``lyap_max`` (batch, R), ``lyap_kaplan_yorke`` (batch, R), ``lyap_entropy_rate`` (batch, R),
    ``lyap_volume_rate`` (batch, R).  Keyword arguments are those of ``lyapunov`` (``inputs``,
    ``input_scale``, ``U``, ``b``, ``h0``, ``record_every``)."""
    W = np.asarray(W)
    if W.ndim == 2:
        W = W[None]
    r = lyapunov(W, k, steps=steps, warmup=warmup, nonlinearity=nonlinearity, reortho_every=reortho_every,
                 realizations=realizations, seed=seed, start=start, **kw)
    return {"lyap_exponents": r.exponents, "lyap_stderr": r.stderr, "lyap_max": r.exponents[..., 0],
            "lyap_kaplan_yorke": r.kaplan_yorke_dimension, "lyap_entropy_rate": r.entropy_rate,
            "lyap_volume_rate": r.volume_rate}
