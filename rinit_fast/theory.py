"""Theory of the spectral edge of Glorot matrices (Rider 2003; Rider & Sinclair 2014; BRIEF §2).

For W with i.i.d. entries of variance 1/n the spectral radius is asymptotically

    rho ≈ 1 + sqrt(gamma_n / (4n)) + G / sqrt(4 n gamma_n),   gamma_n = log(n / (2π (log n)²)),

G a standard Gumbel variable (complex Ginibre); for real matrices the limit law is believed to be
exp(-½ e^{-x}), i.e. G - log 2.  gamma_n <= 0 for n <= 163, where the formula is undefined.
"""
from __future__ import annotations

import math

import numpy as np

EULER_GAMMA = 0.57721566490153286061
C_DEFAULT = EULER_GAMMA + math.pi / math.sqrt(6.0)
"""The rescaled-Glorot calibration c = γ_E + π/√6 ≈ 1.8600 (Gumbel mean + one standard deviation)."""

MIN_N = 164
"""Smallest n with gamma_n > 0."""


def gamma_n(n):
    """gamma_n = log(n / (2π (log n)²)); positive only for n >= 164.  Accepts arrays."""
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 2):
        raise ValueError(f"gamma_n needs n >= 2, got {n}")
    g = np.log(n / (2.0 * np.pi * np.log(n) ** 2))
    return float(g) if g.ndim == 0 else g


def gumbel_c(p):
    """The Gumbel quantile c = -log(-log p) for a target probability p in (0, 1)."""
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be a probability in (0, 1), got {p}")
    return -math.log(-math.log(p))


def rescale_factor(n, c=None, p=None):
    """s_n = 1 + sqrt(gamma_n/(4n)) + c / sqrt(4 gamma_n n) (NogaBar/Rescaled_Glorot_for_RNN).

    Give ``c`` (default γ_E + π/√6) or a target probability ``p`` (then c = -log(-log p)), not both.
    Raises ValueError for n <= 163, where gamma_n <= 0 and the formula is undefined; use
    ``rf.calibrate(n, p)`` there.
    """
    if c is not None and p is not None:
        raise ValueError("give c or p, not both")
    if p is not None:
        c = gumbel_c(p)
    elif c is None:
        c = C_DEFAULT
    c = float(c)
    if not math.isfinite(c):
        raise ValueError(f"c must be finite, got {c}")
    n = int(n)
    if n < MIN_N:
        raise ValueError(
            f"the rescaled-Glorot factor is undefined for n = {n}: gamma_n = log(n/(2π(log n)²)) <= 0 "
            f"for n <= {MIN_N - 1}; valid n are >= {MIN_N}. For smaller n, calibrate the scale "
            f"empirically with rf.calibrate(n, p) and pass it as s=...")
    g = gamma_n(n)
    return 1.0 + math.sqrt(g / (4.0 * n)) + c / math.sqrt(4.0 * g * n)
