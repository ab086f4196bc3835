"""``rf.calibrate``: the empirical scale at which P(rho(W/s) > 1) = 1 - p, at any width n.

rho(W/s) = rho(W)/s, so P(rho(W/s) > 1) = P(rho(W) > s): the scale is the p-quantile of the spectral
radius of the scheme's matrices.  It is estimated from ``samples`` matrices of the engine's stream
(matrices ``start .. start+samples-1`` of ``seed``) with the engine's own spectral radius, and comes with
a distribution-free confidence interval from order statistics (the number of samples below the true
quantile is Binomial(samples, p), whatever the law of rho).  Valid at any n, including n <= 163 where
the asymptotic formula (``rf.theory.rescale_factor``) is undefined.  See docs/theory.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _validate

_CHUNK_BYTES = 64 * 2 ** 20


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate`.  ``float(cal)`` is ``cal.scale``."""

    n: int
    p: float
    scale: float
    """Estimate of the p-quantile of rho: use ``rf.sample("rescaled_glorot", n, s=cal.scale)``."""
    ci_low: float
    ci_high: float
    """Order-statistic confidence interval for the true p-quantile (may be ±inf if samples are too few)."""
    confidence: float
    coverage: float
    """Exact coverage of [ci_low, ci_high] (>= confidence; binomial, distribution-free)."""
    samples: int
    scheme: str
    seed: int
    start: int
    method: str
    unconverged: int
    """Matrices whose power iteration did not converge; their radius was recomputed exactly (LAPACK)."""
    radii: np.ndarray = field(repr=False)
    """The spectral radii, in stream order (matrix start + j of seed)."""

    def __float__(self):
        return float(self.scale)

    def prob_exceeds_one(self, s=None):
        """Empirical P(rho(W/s) > 1) = fraction of samples with rho > s (s defaults to the scale)."""
        s = self.scale if s is None else float(s)
        return float(np.mean(self.radii > s))


def quantile_ci(x, p, confidence=0.95):
    """Distribution-free confidence interval for the p-quantile of the law of the i.i.d. sample ``x``.

    With x_(1) <= ... <= x_(N) and B ~ Binomial(N, p) (the count of samples below the quantile),
    [x_(l), x_(u)] covers the quantile with probability P(l <= B <= u-1); l and u are the binomial
    alpha/2 and 1-alpha/2 quantiles (l = binom.ppf(alpha/2), u = binom.ppf(1-alpha/2) + 1, 1-based), so
    the coverage is at least ``confidence``.  Returns (low, high, coverage); a bound is -inf/+inf when
    N is too small to reach it.
    """
    from scipy import stats
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.size
    if n == 0:
        raise ValueError("quantile_ci needs at least one sample")
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be a probability in (0, 1), got {p}")
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    b = stats.binom(n, p)
    lo = int(b.ppf(alpha / 2.0))            # smallest l with F(l) >= alpha/2, so F(l-1) < alpha/2
    hi = int(b.ppf(1.0 - alpha / 2.0)) + 1  # u with F(u-1) >= 1 - alpha/2
    coverage = float(b.cdf(hi - 1) - (b.cdf(lo - 1) if lo >= 1 else 0.0))
    low = x[lo - 1] if lo >= 1 else -math.inf
    high = x[hi - 1] if hi <= n else math.inf
    return float(low), float(high), coverage


def _host(a, dtype=None):
    """A NumPy copy of a NumPy or CuPy array (results of the GPU path come back to the host)."""
    if not isinstance(a, np.ndarray) and hasattr(a, "get"):
        a = a.get()
    return np.array(a, dtype=dtype)


def radii(W, *, seed=0, start=0, method="power", tol=None, max_iter=None):
    """Spectral radii of a batch ``W`` (B, n, n) whose matrix j is matrix ``start + j`` of the stream:
    the engine's ``rf.spectral_radius`` with start vectors indexed by the global matrix index (so the
    result does not depend on how a study is chunked), with every unconverged power iteration
    recomputed exactly.  Returns (radius float64 (B,), converged bool (B,), iterations int64 (B,)),
    where ``converged`` is the power iteration's own flag.  The one place studies and calibrate call
    the spectral engine.
    """
    from .spectral import spectral_radius
    kw = {"method": method, "seed": seed, "start": start}
    if tol is not None:
        kw["tol"] = tol
    if max_iter is not None:
        kw["max_iter"] = max_iter
    r = spectral_radius(W, **kw)
    rad = _host(r.radius, np.float64)
    conv = _host(r.converged, bool)
    its = _host(r.iterations, np.int64)
    bad = np.flatnonzero(~conv)
    if method != "exact" and bad.size:
        ex = spectral_radius(W[bad.tolist()], method="exact")
        rad[bad] = _host(ex.radius, np.float64)
    return rad, conv, its


def calibrate(n, p, *, samples=1000, seed=0, start=0, scheme="glorot_normal", confidence=0.95,
              dtype="float32", backend="cpu", method="power", tol=None, max_iter=None, progress=False,
              **params):
    """The scale s with P(rho(W/s) > 1) = 1 - p for n×n matrices of ``scheme``, by Monte Carlo.

    Parameters
    ----------
    n : int >= 1
        Width; any n (the asymptotic ``rf.theory.rescale_factor`` needs n >= 164).
    p : float in (0, 1)
        Target probability that the rescaled matrix has rho <= 1.
    samples : int
        Matrices ``start .. start+samples-1`` of the stream for ``seed``.  The confidence interval
        narrows like 1/sqrt(samples); both of its ends are finite once samples is large enough for the
        binomial tails (about 40 for p = 0.9 at 95%).
    scheme : str
        A square scheme (default ``"glorot_normal"``; ``"complex_glorot"`` for the complex case), with
        its ``**params``.
    confidence : float
        Level of the order-statistic interval (``Calibration.ci_low``, ``ci_high``).
    dtype, backend
        As ``rf.sample``.
    method, tol, max_iter
        As ``rf.spectral_radius``; unconverged power iterations are recomputed exactly.

    Returns a :class:`Calibration`; ``rf.sample("rescaled_glorot", n, s=cal.scale)`` (for the Glorot
    schemes) then has P(rho > 1) ≈ 1 - p.
    """
    n = _validate.positive_int(n, "n")
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be a probability in (0, 1), got {p}")
    samples = _validate.positive_int(samples, "samples")
    seed = _validate.seed(seed)
    start, samples, _, _ = _validate.stream_range(start, samples)
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("power", "exact"):
        raise ValueError(f"method must be 'power' or 'exact', got {method!r}")
    from . import sampling, scheme_table
    name = scheme_table.canonical(scheme)
    draw = scheme_table.resolve(name, n, n, 1.0, **params)  # validates the parameters now
    itemsize = _validate.sample_dtype(dtype, draw.complex, name).itemsize
    chunk = max(1, min(samples, _CHUNK_BYTES // (n * n * itemsize)))
    rad = np.empty(samples)
    n_bad = 0
    bar = _progress(samples, f"calibrate n={n}", progress)
    for j0 in range(0, samples, chunk):
        k = min(chunk, samples - j0)
        W = sampling.sample(name, n, batch=k, seed=seed, start=start + j0, dtype=dtype, backend=backend,
                            **params)
        r, conv, _ = radii(W, seed=seed, start=start + j0, method=method, tol=tol, max_iter=max_iter)
        rad[j0:j0 + k] = r
        n_bad += int((~conv).sum()) if method != "exact" else 0
        if bar is not None:
            bar.update(k)
    if bar is not None:
        bar.close()
    lo, hi, cov = quantile_ci(rad, p, confidence)
    return Calibration(n=n, p=p, scale=float(np.quantile(rad, p)), ci_low=lo, ci_high=hi,
                       confidence=float(confidence), coverage=cov, samples=samples, scheme=name,
                       seed=seed, start=start, method=method, unconverged=n_bad, radii=rad)


def _progress(total, desc, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the bar is a convenience: no tqdm, no bar
        return None
    return tqdm(total=total, desc=desc, unit="matrix", leave=False)
