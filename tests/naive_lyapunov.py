"""Slow, obviously-right float64 NumPy/SciPy reference of ``rf.lyapunov`` (one trajectory; QR by LAPACK).

    h_t = f(W h_{t-1} + U x_t + b),   D_t = diag f'(W h_{t-1} + U x_t + b),   F_t = D_t W F_{t-1}

F_0 = Q of the QR of the given n x k matrix G.  After step t the frame is re-orthonormalised, F = QR,
F <- Q, when t is a multiple of ``reortho_every`` (during the warm-up: also at t = warmup; after it:
counted from the warm-up, and at every recorded step and at the last step); log|R_cc| is added to column
c's sum when t > warmup.  No rescaling of any kind: only for sizes where nothing overflows.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg


def lyapunov_ref(W, G, steps, *, warmup=0, x=None, U=None, b=None, h0=None, nonlinearity="linear",
                 reortho_every=1, record_every=None, conds=False):
    """W (n, n); G (n, k) the starting frame before orthonormalisation; x (steps, d) inputs or None.

    Returns a dict: ``sums`` (k,) the log growth of each frame column over the window (unsorted),
    ``exponents`` sums / (steps - warmup) sorted descending, ``running`` (K, k) (column order, unsorted)
    or None, ``logdet`` the sum over the window of log|det D_t| (without log|det W|), ``h`` the last state,
    ``min_abs_preact`` the smallest |pre-activation| seen (relu checks are well posed only when rounding
    cannot flip a sign), ``min_preact`` the smallest pre-activation (> 0: every relu unit always active),
    and with ``conds`` ``cond`` (steps,): the 2-norm condition number of each step's D_t W F_{t-1}."""
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[0]
    F, _ = np.linalg.qr(np.asarray(G, dtype=np.float64))
    k = F.shape[1]
    h = np.zeros(n) if h0 is None else np.array(h0, dtype=np.float64)
    L = steps - warmup
    sums = np.zeros(k)
    running = []
    logdet = 0.0
    min_abs = np.inf
    min_z = np.inf
    cond = []
    for t in range(1, steps + 1):
        z = W @ h
        if x is not None:
            xt = np.asarray(x[t - 1], dtype=np.float64)
            z = z + (np.asarray(U, dtype=np.float64) @ xt if U is not None else xt)
        if b is not None:
            z = z + np.asarray(b, dtype=np.float64)
        min_abs = min(min_abs, float(np.abs(z).min()))
        min_z = min(min_z, float(z.min()))
        if nonlinearity == "linear":
            h, D = z, np.ones(n)
        elif nonlinearity == "relu":
            h, D = np.maximum(z, 0.0), (z > 0).astype(np.float64)
        elif nonlinearity == "tanh":
            h, D = np.tanh(z), 1.0 / np.cosh(z) ** 2
        else:
            raise ValueError(nonlinearity)
        F = D[:, None] * (W @ F)
        if conds:
            cond.append(np.linalg.cond(F))
        u = t - warmup
        if t <= warmup:
            due = t % reortho_every == 0 or t == warmup
        else:
            due = (u % reortho_every == 0 or t == steps
                   or (record_every is not None and u % record_every == 0))
        if due:
            F, Rm = scipy.linalg.qr(F, mode="economic")
            if t > warmup:
                sums += np.log(np.abs(np.diag(Rm)))
                if record_every is not None and u % record_every == 0:
                    running.append(sums / u)
        if t > warmup:
            with np.errstate(divide="ignore"):
                logdet += float(np.sum(np.log(D)))
    return dict(sums=sums, exponents=np.sort(sums / L)[::-1],
                running=np.array(running) if record_every is not None else None, logdet=logdet, h=h,
                min_abs_preact=min_abs, min_preact=min_z, cond=np.array(cond) if conds else None)
