"""The spec of ``rf.lyapunov``: codes, constants, the plan handed to kernels, and the control logic that
is not arithmetic (re-orthonormalisation schedule, warm-up, recording, batch-means blocks, the summaries
computed from the exponents).

The API (rinit_fast/lyapunov.py) builds the plan with ``plan()``; the Numba kernel
(kernels/cpu/lyapunov.py) reads the plan's fields by name and compiles the scalar schedule functions
below (``qr_due``, ``record_index``, ``block_of``) as they are; a CUDA launcher would pass the same int64
plan array and implement the same three one-line predicates.  docs/lyapunov.md is the prose twin.

Benettin's method, per trajectory (matrix j, realisation r): the state h_t = f(W h_{t-1} + U x_t + b)
and an n x k frame F_t = D_t W F_{t-1} (D_t = diag f'(pre-activation of step t)); after the steps that
``qr_due`` names, F = Q R (Householder), F <- Q, and log|R_cc| (plus the column exponents of the
power-of-two renormalisations since the last QR) is added to column c's sum when the step lies past the
warm-up.  Exponent c = sum_c / (steps - warmup).
"""
from __future__ import annotations

import math

import numpy as np

# rf.lyapunov runs rf.unroll's recurrence: the nonlinearity codes are spec/activations.py's; the input modes,
# the state h = g·2**e (its renormalisation and exponent floor) and the bound on the inputs spec/unroll.py's.

NBLOCKS = 10               # batch means: the accumulation window is split into this many blocks
LANES = 16                 # column-block width (elements) of the CPU kernel's Householder QR

PLAN_FIELDS = ("N", "K", "KP", "D", "STEPS", "WARMUP", "REORTHO", "RECORD", "NREC", "MODE", "NONLIN",
               "NBIAS", "EFLOOR", "NBLOCKS", "C2START", "C3INPUTS", "C3FRAME", "K0", "K1")
"""The int64 plan array: field f is at index ``PLAN[f]``.

N n; K k (exponents); KP k rounded up to LANES (the frame's columns that the QR blocks cover);
D the input width; STEPS, WARMUP, REORTHO (re-orthonormalise every REORTHO steps), RECORD (record the
running estimates every RECORD steps past the warm-up; 0: no record), NREC the number of records;
MODE (spec/unroll.py's NO_INPUT/GAUSSIAN/ARRAY), NONLIN (activations code), NBIAS (n or 0), EFLOOR
(lowest state exponent, relu: spec/unroll.py ``e_floor``), NBLOCKS; the stream: C2START (index of matrix
0), C3INPUTS and C3FRAME (counter word 3 of realisation 0 for the inputs and the starting frame), K0, K1
(key words)."""
PLAN = {f: i for i, f in enumerate(PLAN_FIELDS)}

C_CONSTANTS = {}
"""No CUDA kernel yet (issue 14 is CPU only); a lyapunov.cu would list its #defines here."""


# --- the schedule (scalar functions: the Numba kernel compiles them as they are) ----------------------
def qr_due(t, steps, warmup, every, record):
    """True when the frame is re-orthonormalised (QR) after step t, 1 <= t <= steps.

    During the warm-up: every ``every`` steps and at t = warmup (so the accumulation window starts from a
    fresh orthonormal frame).  Past it: every ``every`` steps counted from the warm-up, at every recorded
    step (``record`` > 0: every ``record`` steps counted from the warm-up, so a running estimate is exact
    at the step it is recorded), and at the last step."""
    if t == steps or t == warmup:
        return True
    if t < warmup:
        return t % every == 0
    u = t - warmup
    return u % every == 0 or (record > 0 and u % record == 0)


def record_index(t, warmup, record):
    """The record taken after step t (0, 1, ...), or -1: records at t = warmup + record·(j + 1)."""
    u = t - warmup
    if record <= 0 or u <= 0 or u % record != 0:
        return -1
    return u // record - 1


def block_of(t, steps, warmup, nblocks):
    """The batch-means block of a QR after step t > warmup: ((t - warmup - 1)·nblocks) // (steps - warmup)."""
    return ((t - warmup - 1) * nblocks) // (steps - warmup)


def n_records(steps, warmup, record):
    """Number of recorded running estimates."""
    return 0 if record <= 0 else (steps - warmup) // record


def recorded_steps(steps, warmup, record):
    """The step t of each record (int64 array)."""
    return warmup + record * np.arange(1, n_records(steps, warmup, record) + 1, dtype=np.int64)


def default_warmup(steps):
    """The warm-up when none is given: a tenth of the steps (the trajectory and the frame forget their
    random start; tests/test_lyapunov.py and docs/lyapunov.md show its effect)."""
    return steps // 10


def block_lengths(steps, warmup, every, record, nblocks=NBLOCKS):
    """Steps covered by each batch-means block (int64 (nblocks,); 0 for an empty block).

    A QR after step t (relative u = t - warmup in 1..L, L = steps - warmup) logs the growth of the
    interval since the previous QR into block ((u - 1)·nblocks) // L; block b therefore ends at the last
    QR step u <= ceil((b + 1)·L / nblocks), and its length is that end minus the previous block's end."""
    L = steps - warmup
    ends = []
    for b in range(nblocks):
        ub = -(-(b + 1) * L // nblocks)
        if ub >= L:
            end = L
        else:
            end = every * (ub // every)
            if record > 0:
                end = max(end, record * (ub // record))
        ends.append(end)
    ends = np.asarray(ends, dtype=np.int64)
    return np.diff(np.concatenate([[0], ends]))


def plan(*, n, k, d, steps, warmup, reortho_every, record_every, mode, nonlin, nbias, e_floor, c2_start,
         c3_inputs, c3_frame, k0, k1, nblocks=NBLOCKS):
    """The int64 plan array of one call (validated numbers in, see PLAN_FIELDS)."""
    kp = -(-k // LANES) * LANES
    rec = 0 if record_every is None else int(record_every)
    vals = dict(N=n, K=k, KP=kp, D=d, STEPS=steps, WARMUP=warmup, REORTHO=reortho_every, RECORD=rec,
                NREC=n_records(steps, warmup, rec), MODE=mode, NONLIN=nonlin, NBIAS=nbias, EFLOOR=e_floor,
                NBLOCKS=nblocks, C2START=c2_start, C3INPUTS=c3_inputs, C3FRAME=c3_frame,
                K0=int(k0), K1=int(k1))
    p = np.zeros(len(PLAN_FIELDS), dtype=np.int64)
    for f, v in vals.items():
        p[PLAN[f]] = int(v)
    return p


# --- summaries (NumPy, on the kernel's float64 outputs) ------------------------------------------------
def summarise(sums, blocks, running, steps, warmup, every, record, nblocks=NBLOCKS):
    """From the kernel's per-column sums to the public numbers, per trajectory.

    sums (..., k): the log growth of each frame column over the window; blocks (..., nblocks, k): the same
    per batch-means block; running (..., K, k) or None: the running estimates.  Returns (exponents,
    stderr, running, order): the exponents sum / (steps - warmup) sorted in descending order, their
    batch-means standard errors, the running estimates, both in the same order (``order`` (..., k) is the
    frame column of each sorted exponent)."""
    L = steps - warmup
    est = sums / L
    order = np.argsort(-est, axis=-1, kind="stable")
    exps = np.take_along_axis(est, order, axis=-1)
    lens = block_lengths(steps, warmup, every, record, nblocks)
    keep = lens > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = blocks[..., keep, :] / lens[keep][:, None]
        nb = int(keep.sum())
        if nb >= 2:
            err = np.std(means, axis=-2, ddof=1) / math.sqrt(nb)
        else:
            err = np.full(est.shape, np.nan)
    err = np.take_along_axis(err, order, axis=-1)
    if running is not None:
        running = np.take_along_axis(running, order[..., None, :], axis=-1)
    return exps, err, running, order


def kaplan_yorke(exps):
    """Kaplan–Yorke dimension of descending exponents (..., k): j + S_j / |lambda_{j+1}| with j the largest
    index whose partial sum S_j >= 0; 0 when lambda_1 < 0; k when every partial sum is >= 0 (a lower
    bound when k < n).  NaN where an exponent is NaN."""
    exps = np.asarray(exps, dtype=np.float64)
    k = exps.shape[-1]
    with np.errstate(invalid="ignore"):
        S = np.cumsum(exps, axis=-1)
        j = np.sum(S >= 0, axis=-1)                       # partial sums of descending values: a prefix
        Sj = np.take_along_axis(np.concatenate([np.zeros(exps.shape[:-1] + (1,)), S], axis=-1),
                                j[..., None], axis=-1)[..., 0]
        nxt = np.take_along_axis(exps, np.minimum(j, k - 1)[..., None], axis=-1)[..., 0]
        frac = np.where(j < k, Sj / np.abs(nxt), 0.0)
        out = np.where(np.isnan(exps).any(axis=-1), np.nan, j + np.where(np.isfinite(frac), frac, 0.0))
    return out


def entropy_rate(exps):
    """Sum of the positive exponents (Pesin's bound on the Kolmogorov–Sinai entropy rate, nats per step);
    a lower bound when k < n and the smallest computed exponent is still positive."""
    exps = np.asarray(exps, dtype=np.float64)
    return np.where(np.isnan(exps).any(axis=-1), np.nan, np.sum(np.where(exps > 0, exps, 0.0), axis=-1))


def truncated(exps, n):
    """True where k < n and the k exponents do not settle the summaries: the smallest is > 0 (the entropy
    rate may miss positive exponents) or the sum of all k is >= 0 (the Kaplan–Yorke dimension is only
    known to be >= k)."""
    exps = np.asarray(exps, dtype=np.float64)
    k = exps.shape[-1]
    if k >= n:
        return np.zeros(exps.shape[:-1], dtype=bool)
    return (exps[..., -1] > 0) | (np.sum(exps, axis=-1) >= 0)
