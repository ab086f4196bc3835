"""Figures of the reproduce report (matplotlib, Agg backend, imported lazily: only studies/ and cli.py
import matplotlib)."""
from __future__ import annotations

import math

import numpy as np


def _plt():
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("the report's figures need matplotlib: pip install matplotlib (or "
                           "\"rinit_fast[plot]\")") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def radius_law(scheme, n, gain=1.0, **params):
    """The asymptotic law of the spectral radius of an n×n matrix of ``scheme`` (a frozen scipy
    distribution), or None where there is none: orthogonal matrices (rho = 1), schemes whose entries
    have a non-zero mean, and n < 164 (gamma_n <= 0).  For i.i.d. zero-mean entries of standard
    deviation sigma, rho(W) = sigma·sqrt(n)·rho(G) with G of entry variance 1/n: the law of
    ``rf.theory.radius_law`` (complex for complex schemes, Rider & Sinclair's real law otherwise),
    scaled."""
    from scipy import stats

    from .. import scheme_table, theory
    if scheme == "orthogonal" or n < theory.MIN_N:
        return None
    if scheme_table.scheme_mean(scheme, n, gain, **params) != 0.0:
        return None
    centre, width = theory.edge_location(n)
    shift = 0.0 if scheme_table.get(scheme).complex else -theory.LOG2  # real: Rider & Sinclair
    c = scheme_table.scheme_std(scheme, n, gain, **params) * math.sqrt(n)
    if not c > 0.0:
        return None
    return stats.gumbel_r(loc=c * (centre + shift * width), scale=c * width)


def radius_histograms(path, panels, widths, schemes):
    """A grid (rows: widths, columns: schemes) of histograms of rho with the asymptotic law's density.

    ``panels[(scheme, width)] = (radii, law or None)``; law a frozen scipy distribution."""
    plt = _plt()
    fig, axes = plt.subplots(len(widths), len(schemes), figsize=(3.2 * len(schemes), 2.6 * len(widths)),
                             squeeze=False)
    legend_done = False
    for i, n in enumerate(widths):
        for j, s in enumerate(schemes):
            ax = axes[i][j]
            if (s, n) not in panels:
                ax.axis("off")
                continue
            r, law = panels[(s, n)]
            r = np.asarray(r)
            lo, hi = float(r.min()), float(r.max())
            if law is not None:
                lo, hi = min(lo, float(law.ppf(0.005))), max(hi, float(law.ppf(0.995)))
            if hi - lo < 1e-6:
                lo, hi = lo - 0.01, hi + 0.01
            ax.hist(r, bins=30 if r.size >= 100 else 12, range=(lo, hi), density=True, color="C0",
                    alpha=0.6, label=f"Monte Carlo ({r.size})")
            if law is not None:
                x = np.linspace(lo, hi, 300)
                ax.plot(x, law.pdf(x), "C3-", lw=1.5, label="asymptotic law")
            ax.axvline(1.0, color="k", lw=0.8, ls="--")
            from . import uncertainty as U
            from .measures import EXCEEDS
            med = float(np.median(r))
            mlo, mhi = U.quantile_ci(r, 0.5)
            ax.axvspan(max(mlo, lo), min(mhi, hi), color="C2", alpha=0.3, lw=0,
                       label="median, 95% CI" if not legend_done else None)
            ax.axvline(med, color="C2", lw=1)
            k = int(np.sum(r > EXCEEDS))
            plo, phi = U.clopper_pearson(k, r.size)
            ax.set_title(f"{s}, n={n}\nP(ρ>1) = {k / r.size:.3f} [{plo:.3f}, {phi:.3f}]", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.locator_params(axis="x", nbins=4)
            if i == len(widths) - 1:
                ax.set_xlabel("spectral radius ρ", fontsize=8)
            if not legend_done and (law is not None or (i, j) == (len(widths) - 1, len(schemes) - 1)):
                ax.legend(fontsize=6)
                legend_done = True
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def curves(path, t, series, title, ylabel):
    """Mean over matrices × realisations of log10 norms against t, one line per scheme, with the 95%
    interval of the mean across matrices (dark band) and the 10–90% spread (light band).

    ``series[label] = array (matrices, realisations, len(t))`` of natural-log norms."""
    from . import uncertainty as U
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, (label, a) in enumerate(series.items()):
        a = np.asarray(a) / math.log(10.0)
        a = np.where(np.isfinite(a), a, np.nan)
        flat = a.reshape(-1, len(t))
        m = np.nanmean(flat, axis=0)
        lo, hi = np.nanquantile(flat, 0.1, axis=0), np.nanquantile(flat, 0.9, axis=0)
        ax.plot(t, m, color=f"C{k}", lw=1.5, label=label)
        ax.fill_between(t, lo, hi, color=f"C{k}", alpha=0.12, lw=0)
        if a.ndim == 3:
            _, _, clo, chi = U.mean_ci(np.nanmean(a, axis=1))
            ax.fill_between(t, clo, chi, color=f"C{k}", alpha=0.35, lw=0)
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    ax.set_title(title + "\n(dark band: 95% CI of the mean across matrices; light: 10–90% spread)", fontsize=9)
    ax.axhline(0.0, color="k", lw=0.6, ls=":")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def propagation(path, profiles):
    """Variance profiles against depth: ``profiles[label] = (preact band, grad band, mf_preact, mf_grad)``,
    a band being (value, low, high) per layer (95% interval across networks, shaded); mean-field arrays
    (None where the theory does not apply) dashed; two panels, log scale."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, (label, (pv, gv, mpv, mgv)) in enumerate(profiles.items()):
        layers = np.arange(1, len(pv[0]) + 1)
        for ax, (v, lo, hi), mf in ((axes[0], pv, mpv), (axes[1], gv, mgv)):
            ax.semilogy(layers, v, color=f"C{k}", lw=1.5, label=label)
            ax.fill_between(layers, lo, hi, color=f"C{k}", alpha=0.2, lw=0)
            if mf is not None:
                ax.semilogy(layers, mf, color=f"C{k}", lw=0.8, ls="--")
    axes[0].set_title("pre-activation variance (band: 95% CI across networks; dashed: mean field)", fontsize=9)
    axes[1].set_title("back-propagated gradient variance (band: 95% CI; dashed: mean field)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("layer")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
