"""Theory of the spectral edge of Glorot matrices (Rider 2003; Rider & Sinclair 2014; docs/theory.md).

For W with i.i.d. entries of variance 1/n the spectral radius is asymptotically

    rho ≈ 1 + sqrt(gamma_n / (4n)) + G / sqrt(4 n gamma_n),   gamma_n = log(n / (2π (log n)²)),

G a standard Gumbel variable for complex Ginibre matrices (Rider 2003).  For real matrices Rider &
Sinclair (2014) give the limit law exp(-½ e^{-x}) for the same centring and scaling, i.e. G - log 2.
gamma_n <= 0 for n <= 163, where the formula is undefined: every function here raises a clear error
there (use ``rf.calibrate(n, p)``, which is valid at any n).

How far these asymptotic laws are from the finite-n truth is measured in docs/theory.md.
"""
from __future__ import annotations

import math

import numpy as np

EULER_GAMMA = 0.57721566490153286061
C_DEFAULT = EULER_GAMMA + math.pi / math.sqrt(6.0)
"""The rescaled-Glorot calibration c = γ_E + π/√6 ≈ 1.8600 (Gumbel mean + one standard deviation)."""

MIN_N = 164
"""Smallest n with gamma_n > 0."""

LOG2 = math.log(2.0)
FIELDS = ("real", "complex")


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


def _width(n, what):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer width, got {type(n).__name__} {n!r}")
    n = int(n)
    if n < MIN_N:
        raise ValueError(
            f"{what} is undefined for n = {n}: gamma_n = log(n/(2π(log n)²)) <= 0 for n <= "
            f"{MIN_N - 1}; valid n are >= {MIN_N}. For smaller n, calibrate the scale empirically with "
            f"rf.calibrate(n, p) (and pass it to rescaled_glorot as s=...)")
    return n


def _field(field):
    if field not in FIELDS:
        raise ValueError(f"field must be 'real' or 'complex', got {field!r}")
    return field


def edge_location(n):
    """(centre, width) of the asymptotic law: rho ≈ centre + width·G with
    centre = 1 + sqrt(gamma_n/(4n)) and width = 1/sqrt(4 n gamma_n)."""
    n = _width(n, "the asymptotic spectral-radius law")
    g = gamma_n(n)
    return 1.0 + math.sqrt(g / (4.0 * n)), 1.0 / math.sqrt(4.0 * g * n)


def radius_law(n, field="real"):
    """The asymptotic law of the spectral radius of an n×n Glorot matrix (entries of variance 1/n), as a
    frozen ``scipy.stats.gumbel_r``.

    ``field="complex"`` (complex Ginibre, ``complex_glorot``): centre + width·G, G standard Gumbel
    (Rider 2003).  ``field="real"`` (``glorot_normal``): centre + width·(G - log 2), the law
    exp(-½ e^{-x}) of Rider & Sinclair (2014).  centre, width = :func:`edge_location`.

    For a matrix W/s (e.g. rescaled Glorot, s = s_n) the radius is rho/s: use
    ``radius_law(n).sf(s)`` for P(rho(W/s) > 1).
    """
    from scipy import stats
    centre, width = edge_location(n)
    shift = -LOG2 if _field(field) == "real" else 0.0
    return stats.gumbel_r(loc=centre + shift * width, scale=width)


def prob_exceeds_one(n, field="real", s=1.0):
    """P(rho(W/s) > 1) = P(rho(W) > s) under the asymptotic law of :func:`radius_law`
    (s = 1: plain Glorot; s = rescale_factor(n): rescaled Glorot)."""
    s = float(s)
    if not (math.isfinite(s) and s > 0.0):
        raise ValueError(f"s must be a finite positive scale, got {s}")
    return float(radius_law(n, field).sf(s))


def rescale_factor(n, c=None, p=None, field="complex"):
    """s_n = 1 + sqrt(gamma_n/(4n)) + c / sqrt(4 gamma_n n) (NogaBar/Rescaled_Glorot_for_RNN).

    Give ``c`` (default γ_E + π/√6) or a target probability ``p``, not both.  With ``p`` the factor is
    the p-quantile of the asymptotic law of ``field``: for ``field="complex"`` (the default, the
    authors' formula, which they apply to real matrices too) c = -log(-log p); for ``field="real"``
    c = -log(-log p) - log 2 (Rider & Sinclair's real law).  Either way P(rho(W/s_n) > 1) = 1 - p under
    that law (see docs/theory.md for how far this is from finite n).

    Raises ValueError for n <= 163, where gamma_n <= 0 and the formula is undefined; use
    ``rf.calibrate(n, p)`` there.
    """
    if c is not None and p is not None:
        raise ValueError("give c or p, not both")
    _field(field)
    if p is not None:
        c = gumbel_c(p) - (LOG2 if field == "real" else 0.0)
    elif c is None:
        c = C_DEFAULT
    c = float(c)
    if not math.isfinite(c):
        raise ValueError(f"c must be finite, got {c}")
    _width(n, "the rescaled-Glorot factor")
    centre, width = edge_location(n)
    return centre + c * width


# The mean-field (infinite-width) theory of signal propagation through depth (issue 6) lives in its own
# module; it is part of rf.theory's public surface.
from ._meanfield import MeanField, mean_field  # noqa: E402,F401
