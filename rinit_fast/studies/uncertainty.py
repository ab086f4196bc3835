"""Monte Carlo uncertainty of every statistic a study reports (docs/studies.md, "Uncertainty").

The independent replicates of a study cell are its samples (matrices, or networks for [propagate]);
realisations of one matrix, or inputs of one network, share that matrix and are not independent, so
every interval here is computed across samples:

- a mean: Student t interval from the standard error across samples;
- a probability: Clopper–Pearson interval;
- a quantile: the distribution-free order-statistic interval (``rf.calibrate``'s ``quantile_ci``);
- any other smooth function of the samples (a pooled variance, a ratio, a growth rate): the jackknife
  (leave one sample out) standard error with a Student t interval, computed on a log scale for
  positive quantities so that the interval stays positive.

All intervals are two-sided at ``CONFIDENCE`` (95%); with a single sample they are NaN (undefined).
"""
from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95


def t_quantile(k, confidence=CONFIDENCE):
    """The two-sided Student t quantile for k samples (k - 1 degrees of freedom); NaN for k < 2."""
    if k < 2:
        return math.nan
    from scipy import stats
    return float(stats.t.ppf(0.5 + confidence / 2.0, k - 1))


def mean_ci(x, axis=0, confidence=CONFIDENCE):
    """(mean, standard error, low, high) across ``axis`` (the samples)."""
    x = np.asarray(x, dtype=np.float64)
    k = x.shape[axis]
    m = x.mean(axis=axis)
    if k < 2:
        nan = np.full_like(m, np.nan)
        return m, nan, nan, nan
    se = x.std(axis=axis, ddof=1) / math.sqrt(k)
    t = t_quantile(k, confidence)
    return m, se, m - t * se, m + t * se


def clopper_pearson(k, n, confidence=CONFIDENCE):
    """The exact binomial interval for a probability observed as k successes in n trials."""
    from scipy import stats
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def quantile_ci(x, p, confidence=CONFIDENCE):
    """(low, high) order-statistic interval of the p-quantile (-inf/+inf where too few samples)."""
    from ..calibrate import quantile_ci as q
    lo, hi, _ = q(x, p, confidence)
    return float(lo), float(hi)


def jackknife(stat, x, *, log=False, confidence=CONFIDENCE):
    """(estimate, standard error, low, high) of ``stat(x)`` by the jackknife over the samples ``x[i]``.

    ``stat`` maps an array of samples (k', ...) to a float (or an array); ``log=True`` computes the
    interval of log(stat) and maps it back (positive quantities).  For a plain mean it is the t interval
    of :func:`mean_ci` exactly."""
    x = np.asarray(x)
    k = x.shape[0]
    f = (lambda y: np.log(stat(y))) if log else stat
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.asarray(f(x), dtype=np.float64)
        if k < 2:
            nan = np.full_like(est, np.nan)
            return _back(est, log), nan, nan, nan
        loo = np.stack([np.asarray(f(np.delete(x, i, axis=0)), dtype=np.float64) for i in range(k)])
        se = np.sqrt((k - 1) / k * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    t = t_quantile(k, confidence)
    lo, hi = est - t * se, est + t * se
    if log:
        return np.exp(est), se, np.exp(lo), np.exp(hi)
    return est, se, lo, hi


def _back(v, log):
    return np.exp(v) if log else v


def fmt_ci(value, low, high, digits=4, sig=False):
    """"value [low, high]" with one number format (fixed ``digits`` decimals, or significant digits)."""
    f = (lambda v: f"{v:.{digits}g}") if sig else (lambda v: f"{v:.{digits}f}")
    if not (np.isfinite(low) or np.isfinite(high)) and (np.isnan(low) and np.isnan(high)):
        return f"{f(value)} [–]"
    return f"{f(value)} [{f(low)}, {f(high)}]"


# --- [propagate]: statistics pooled over networks, per layer, with vectorised jackknife bands ----------

def loo_band(est, loo, log):
    """95% band from leave-one-out replicates ``loo`` (k, ...) of ``est`` (...)."""
    k = loo.shape[0]
    if k < 2:
        nan = np.full_like(est, np.nan)
        return est, nan, nan
    f = np.log if log else (lambda v: v)
    with np.errstate(divide="ignore", invalid="ignore"):
        fl = f(loo)
        se = np.sqrt((k - 1) / k * ((fl - fl.mean(axis=0)) ** 2).sum(axis=0))
        t = t_quantile(k)
        c = f(est)
        lo, hi = c - t * se, c + t * se
    return (est, np.exp(lo), np.exp(hi)) if log else (est, lo, hi)


def pooled_mean_band(x):
    """Pooled mean over networks (axis 0) per layer with its jackknife band (log scale)."""
    k = x.shape[0]
    est = x.mean(axis=0)
    loo = (x.sum(axis=0) - x) / max(k - 1, 1)
    return loo_band(est, loo, log=True)


def pooled_var_band(m, v):
    """rf.propagate's pooled variance (mean of variances + variance of means) per layer, with its band."""
    k = m.shape[0]
    est = v.mean(axis=0) + ((m - m.mean(axis=0)) ** 2).mean(axis=0)
    if k < 2:
        return loo_band(est, np.empty((0,) + est.shape), log=True)
    loo = np.empty((k,) + est.shape)
    for i in range(k):
        mm, vv = np.delete(m, i, axis=0), np.delete(v, i, axis=0)
        loo[i] = vv.mean(axis=0) + ((mm - mm.mean(axis=0)) ** 2).mean(axis=0)
    return loo_band(est, loo, log=True)


def rate_ci(gv, l0, l1, span=None):
    """The per-layer growth rate (log G[l0] - log G[l1]) / span of the pooled gradient variance G (span =
    l1 - l0 unless given: columns l0, l1 of ``gv`` may be a selection of layers), with its jackknife
    interval across networks (gv: (networks, layers))."""
    k = gv.shape[0]
    span = l1 - l0 if span is None else span
    with np.errstate(divide="ignore", invalid="ignore"):
        f = lambda a, b: (np.log(a) - np.log(b)) / span
        est = float(f(gv[:, l0].mean(), gv[:, l1].mean()))
        if k < 2:
            return est, np.nan, np.nan
        s0, s1 = gv[:, l0].sum(), gv[:, l1].sum()
        loo = f((s0 - gv[:, l0]) / (k - 1), (s1 - gv[:, l1]) / (k - 1))
        se = math.sqrt((k - 1) / k * float(((loo - loo.mean()) ** 2).sum()))
    t = t_quantile(k)
    return est, est - t * se, est + t * se
