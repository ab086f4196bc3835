"""Slow, obviously-right float64 NumPy reference of ``rf.unroll`` (one matrix; no rescaling at all).

    h_t = f(W h_{t-1} + U x_t + b),   v_t = f'(W h_{t-1} + U x_t + b) * (W v_{t-1}),   t = 1..steps

Only for sizes where nothing overflows or underflows: it is the "plain computation" that the engine's
power-of-two renormalisation must reproduce to rounding.
"""
from __future__ import annotations

import numpy as np


def unroll_ref(W, steps, x=None, *, U=None, b=None, h0=None, v0=None, nonlinearity="linear",
               record_every=1, tangent=False):
    """W (n, n); x (R, steps, d) or None (no input); h0, v0 (R, n) (h0 defaults to zeros).

    Returns a dict: log_norm (R, K), tangent_log_norm (R, K) or None, h (R, n) and v (R, n) after the
    last step, min_abs_preact (the smallest |pre-activation| seen: a relu test is well posed only when
    rounding cannot flip a sign)."""
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[0]
    R = h0.shape[0] if h0 is not None else x.shape[0]
    H = np.zeros((R, n)) if h0 is None else np.array(h0, dtype=np.float64)
    V = None if not tangent else np.array(v0, dtype=np.float64)
    K = steps // record_every
    log_norm = np.empty((R, K))
    t_log = np.empty((R, K)) if tangent else None
    min_abs = np.inf
    for t in range(1, steps + 1):
        z = H @ W.T
        if x is not None:
            xt = np.asarray(x[:, t - 1], dtype=np.float64)
            z = z + (xt @ np.asarray(U, dtype=np.float64).T if U is not None else xt)
        if b is not None:
            z = z + np.asarray(b, dtype=np.float64)
        min_abs = min(min_abs, float(np.abs(z).min()))
        if nonlinearity == "linear":
            H, D = z, np.ones_like(z)
        elif nonlinearity == "relu":
            H, D = np.maximum(z, 0.0), (z > 0).astype(np.float64)
        elif nonlinearity == "tanh":
            H, D = np.tanh(z), 1.0 / np.cosh(z) ** 2
        else:
            raise ValueError(nonlinearity)
        if tangent:
            V = D * (V @ W.T)
        if t % record_every == 0:
            k = t // record_every - 1
            with np.errstate(divide="ignore"):
                log_norm[:, k] = np.log(np.linalg.norm(H, axis=1))
                if tangent:
                    t_log[:, k] = np.log(np.linalg.norm(V, axis=1))
    return dict(log_norm=log_norm, tangent_log_norm=t_log, h=H, v=V, min_abs_preact=min_abs)
