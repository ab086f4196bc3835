"""``rinit-fast plot DIR`` / ``rf.plot_study``: the standard figures of a study, chosen by what it measured
(docs/studies.md, "Figures").  Every statistic is drawn with its Monte Carlo uncertainty (uncertainty.py).

- [radius] / [norm]: without sweeps, histograms per (scheme, width), the radius beside its asymptotic law
  (Rider; Rider & Sinclair) where one exists; along one sweep, the median (and P(rho > 1)) against the
  swept value with 95% intervals; over two sweeps, heatmaps.
- [unroll]: without sweeps, the log norm of each run over time (mean, its 95% interval, and the 10–90%
  spread over matrices and realisations); with sweeps, the mean log norm at the last horizon against the
  sweep (one sweep) or as a heatmap (two).
- [propagate]: without sweeps, per-layer profiles of the pre-activation and gradient variance (pooled
  over networks, 95% jackknife band) beside the mean field; along one sweep, the per-layer growth rate of
  the gradient variance with its interval beside the mean field; over two sweeps, heatmaps of the measured
  rate, of the mean field's, and of their difference in units of its standard error, with the chi_1 = 1
  line (the order/chaos boundary of the mean field) drawn on each.

With more than two sweeps, the heatmaps are drawn over the first two for each value of the others (at
most ``MAX_FIGURES`` figures per statistic).
"""
from __future__ import annotations

import itertools
import math
import os

import numpy as np

from . import uncertainty as U
from .figures import _plt, radius_law

FORMATS = ("png", "svg", "pdf")
MAX_FIGURES = 12


def plot_study(path, out=None, *, format="png"):
    """Write the standard figures of the study directory ``path`` into ``out`` (default
    ``path/figures``) in ``format`` ("png", "svg" or "pdf"); returns the list of files written."""
    from .. import _validate
    from .execute import _active, load_study
    fmt = _validate.figure_format(format, FORMATS)
    res = load_study(path)
    out = os.path.join(os.fspath(path), "figures") if out is None else os.fspath(out)
    os.makedirs(out, exist_ok=True)
    p = Plotter(res, out, fmt)
    files = []
    for meas, spec in _active(res.config):
        files += meas.figures(spec, res, p)
    return files


def _slug(*parts):
    return "_".join(str(x).replace(" ", "").replace("/", "-") for x in parts if x != "")


class Plotter:
    """Figure helpers shared by the measures (each measure's ``figures`` calls the ones it needs)."""

    def __init__(self, res, out, fmt):
        self.res, self.out, self.fmt = res, out, fmt
        self.sweeps = list(res.sweeps)

    # -- plumbing --------------------------------------------------------------------------------------
    def save(self, fig, *name):
        plt = _plt()
        path = os.path.join(self.out, _slug(*name) + "." + self.fmt)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path

    def groups(self):
        """[(title suffix, {scheme index, width index}, ...)]: the (scheme, width) pairs."""
        return [(i, j) for i in range(len(self.res.labels)) for j in range(len(self.res.widths))]

    def other_points(self):
        """Index tuples of the sweeps beyond the first two (one heatmap each), capped."""
        rest = [len(self.res.sweeps[k]) for k in self.sweeps[2:]]
        return list(itertools.islice(np.ndindex(*rest), MAX_FIGURES)) if rest else [()]

    def _cell_title(self, i, j, extra=()):
        r = self.res
        t = f"{r.labels[i]}, n={r.widths[j]}"
        for k, v in extra:
            t += f", {k}={v:g}"
        return t

    def per_cell(self, stat, i, j):
        """stat(cell) -> (value, low, high) over the sweep grid of (scheme i, width j):
        arrays of shape (*sweep lengths,)."""
        shape = tuple(len(v) for v in self.res.sweeps.values())
        v, lo, hi = (np.full(shape, np.nan) for _ in range(3))
        for cell in self.res.cells():
            if cell.index[:2] == (i, j):
                v[cell.index[2:]], lo[cell.index[2:]], hi[cell.index[2:]] = stat(cell)
        return v, lo, hi

    # -- generic sweep figures --------------------------------------------------------------------------
    def sweep_lines(self, stats, name, ylabel, reference=None, ylog=False):
        """One sweep: stats = {label: fn(cell) -> (v, lo, hi)}; a panel per statistic, a line per
        (scheme, width) with its 95% interval; ``reference[label]`` = fn(cell) -> theory value (dashed)."""
        plt = _plt()
        x = np.asarray(self.res.sweeps[self.sweeps[0]], dtype=float)
        fig, axes = plt.subplots(1, len(stats), figsize=(5.2 * len(stats), 3.8), squeeze=False)
        for ax, (label, fn) in zip(axes[0], stats.items()):
            for k, (i, j) in enumerate(self.groups()):
                v, lo, hi = self.per_cell(fn, i, j)
                ax.errorbar(x, v, yerr=[v - lo, hi - v], color=f"C{k % 10}", marker="o", ms=3, lw=1.2,
                            capsize=2, label=self._cell_title(i, j) + " (95% CI)")
                if reference and label in reference:
                    ref, _, _ = self.per_cell(lambda c, f=reference[label]: (f(c), np.nan, np.nan), i, j)
                    ax.plot(x, ref, color=f"C{k % 10}", ls="--", lw=1, label="mean field" if k == 0 else None)
            ax.set_xlabel(self.sweeps[0])
            ax.set_ylabel(label)
            if ylog:
                ax.set_yscale("log")
            ax.legend(fontsize=6)
        fig.suptitle(ylabel, fontsize=10)
        return [self.save(fig, name, "sweep", self.sweeps[0])]

    def heatmaps(self, panels, name, contour=None, title=""):
        """Two sweeps or more: panels = [(label, fn(cell) -> value, cmap, centred)], one figure per
        (scheme, width, value of the further sweeps); ``contour`` = fn(cell) -> value whose zero line is
        drawn on every panel."""
        plt = _plt()
        sx, sy = self.sweeps[0], self.sweeps[1]
        x = np.asarray(self.res.sweeps[sx], dtype=float)
        y = np.asarray(self.res.sweeps[sy], dtype=float)
        files = []
        for (i, j), rest in itertools.product(self.groups(), self.other_points()):
            fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
            def grid(fn, i=i, j=j, rest=rest):
                return self.per_cell(lambda c: (fn(c), np.nan, np.nan), i, j)[0][(slice(None), slice(None)) + rest]
            cz = grid(contour) if contour is not None else None
            for ax, (label, fn, cmap, centred) in zip(axes[0], panels):
                z = grid(fn)
                finite = z[np.isfinite(z)]
                kw = {}
                if centred and finite.size:
                    lim = float(np.max(np.abs(finite))) or 1.0
                    kw = {"vmin": -lim, "vmax": lim}
                m = ax.pcolormesh(_edges(x), _edges(y), z.T, cmap=cmap, shading="flat", **kw)
                fig.colorbar(m, ax=ax, fraction=0.046, pad=0.04)
                if cz is not None and np.isfinite(cz).sum() >= 4 and np.nanmin(cz) < 0 < np.nanmax(cz):
                    cs = ax.contour(x, y, cz.T, levels=[0.0], colors="k", linewidths=1.5)
                    ax.clabel(cs, fmt={0.0: "χ₁ = 1"}, fontsize=7)
                ax.set_xlabel(sx)
                ax.set_ylabel(sy)
                ax.set_title(label, fontsize=9)
            extra = [(k, self.res.sweeps[k][r]) for k, r in zip(self.sweeps[2:], rest)]
            fig.suptitle(f"{title} — {self._cell_title(i, j, extra)}", fontsize=10)
            files.append(self.save(fig, name, "heatmap", self.res.labels[i], f"n{self.res.widths[j]}",
                                   *[f"{k}{r}" for k, r in zip(self.sweeps[2:], rest)]))
        return files

    # -- spectral radius and norm ------------------------------------------------------------------------
    def spectral(self, what, res):
        if not self.sweeps:
            return self._histograms(what)
        median = lambda c: _median_ci(res.sel(what, c.label, c.width, **c.values))
        stats = {f"median {what}": median}
        if what == "radius":
            stats["P(rho > 1)"] = lambda c: _p_gt_1(res.sel(what, c.label, c.width, **c.values))
        if len(self.sweeps) == 1:
            return self.sweep_lines(stats, what, f"{what}: median and P(> 1) with 95% intervals")
        panels = [(f"median {what}", lambda c: median(c)[0], "viridis", False)]
        if what == "radius":
            panels.append(("P(rho > 1)", lambda c: stats["P(rho > 1)"](c)[0], "magma", False))
        return self.heatmaps(panels, what, title=what)

    def _histograms(self, what):
        plt = _plt()
        res = self.res
        S, Wd = len(res.labels), len(res.widths)
        fig, axes = plt.subplots(Wd, S, figsize=(3.4 * S, 2.7 * Wd), squeeze=False)
        for i, j in self.groups():
            ax = axes[j][i]
            x = res.sel(what, res.labels[i], res.widths[j])
            s = res.config["schemes"][i]
            law = radius_law(s["scheme"], res.widths[j], s["gain"], **s["params"]) if what == "radius" else None
            lo, hi = float(x.min()), float(x.max())
            if law is not None:
                lo, hi = min(lo, float(law.ppf(0.005))), max(hi, float(law.ppf(0.995)))
            if hi - lo < 1e-6:
                lo, hi = lo - 0.01, hi + 0.01
            ax.hist(x, bins=30 if x.size >= 100 else 12, range=(lo, hi), density=True, color="C0", alpha=0.6,
                    label=f"Monte Carlo ({x.size})")
            if law is not None:
                t = np.linspace(lo, hi, 300)
                ax.plot(t, law.pdf(t), "C3-", lw=1.5, label="asymptotic law")
            med, mlo, mhi = _median_ci(x)
            ax.axvspan(mlo, mhi, color="C2", alpha=0.25, label="median, 95% CI")
            ax.axvline(med, color="C2", lw=1)
            if what == "radius":
                ax.axvline(1.0, color="k", lw=0.8, ls="--")
                p, plo, phi = _p_gt_1(x)
                ax.set_title(f"{self._cell_title(i, j)}\nP(ρ>1) = {p:.3f} [{plo:.3f}, {phi:.3f}]", fontsize=8)
            else:
                ax.set_title(self._cell_title(i, j), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.locator_params(axis="x", nbins=4)
            ax.set_xlabel("spectral radius ρ" if what == "radius" else "spectral norm", fontsize=8)
            if (i, j) == (0, 0):
                ax.legend(fontsize=6)
        return [self.save(fig, what, "histograms")]

    # -- recurrences ------------------------------------------------------------------------------------
    def unroll(self, spec, res, names):
        T = spec["horizons"][-1]
        if self.sweeps:
            stats = {n: (lambda c, n=n: _mean_ci(res.sel(n, c.label, c.width, **c.values)[..., -1].mean(axis=1)))
                     for n in names}
            if len(self.sweeps) == 1:
                return self.sweep_lines(stats, "unroll", f"mean log norm at t = {T} (natural log), 95% intervals "
                                                         f"across matrices")
            files = []
            for n in names:
                files += self.heatmaps([(f"{n} at t={T}", lambda c, n=n: stats[n](c)[0], "viridis", False)],
                                       f"unroll_{n}", title=f"mean {n} at t = {T}")
            return files
        plt = _plt()
        t = np.asarray(res.horizons, dtype=float)
        files = []
        for n in names:
            for j, w in enumerate(res.widths):
                fig, ax = plt.subplots(figsize=(6.4, 4.0))
                for i, label in enumerate(res.labels):
                    a = res.sel(n, label, w) / math.log(10.0)  # (matrices, R, H)
                    a = np.where(np.isfinite(a), a, np.nan)
                    m, _, lo, hi = U.mean_ci(np.nanmean(a, axis=1))
                    flat = a.reshape(-1, len(t))
                    ax.plot(t, m, color=f"C{i % 10}", lw=1.5, label=label)
                    ax.fill_between(t, lo, hi, color=f"C{i % 10}", alpha=0.35, lw=0)
                    ax.fill_between(t, np.nanquantile(flat, 0.1, axis=0), np.nanquantile(flat, 0.9, axis=0),
                                    color=f"C{i % 10}", alpha=0.1, lw=0)
                ax.set_xlabel("t")
                ax.set_ylabel(f"log10 of the norm ({n})")
                ax.set_title(f"{n}, n={w}: mean (line), its 95% CI across matrices (dark), "
                             f"10–90% spread (light)", fontsize=8)
                ax.axhline(0.0, color="k", lw=0.6, ls=":")
                ax.legend(fontsize=7)
                files.append(self.save(fig, "unroll", n, f"n{w}"))
        return files

    # -- depth ----------------------------------------------------------------------------------------------
    def propagate(self, spec, res):
        from .measures import rate_layers
        files = []
        rl = rate_layers(spec["depth"])
        for a, act in enumerate(spec["activations"]):
            if not self.sweeps:
                files += self._profiles(spec, a, act)
                continue
            if rl is None:
                continue

            def rate(c, a=a):
                gv = res.sel("propagate_grad_var", c.label, c.width, **c.values)[:, a]
                return U.rate_ci(gv, *rl)

            def mf_rate(c, a=a):
                chi = res.sel("meanfield_chi", c.label, c.width, **c.values)[a]
                with np.errstate(divide="ignore", invalid="ignore"):
                    return float(np.mean(np.log(chi[rl[0]:rl[1]])))

            def mf_chi1(c, a=a):
                chi = res.sel("meanfield_chi", c.label, c.width, **c.values)[a]
                with np.errstate(divide="ignore", invalid="ignore"):
                    return float(np.log(chi[-1]))

            def zscore(c):
                v, lo, hi = rate(c)
                se = (hi - lo) / (2 * U.t_quantile(res.samples))
                return (v - mf_rate(c)) / se if se > 0 else np.nan

            label = f"growth rate of the gradient variance per layer, layers {rl[0]}–{rl[1]}"
            if len(self.sweeps) == 1:
                files += self.sweep_lines({"measured rate (95% CI)": rate}, f"propagate_{act}", f"{act}: {label}",
                                          reference={"measured rate (95% CI)": mf_rate})
            else:
                files += self.heatmaps([("measured rate", lambda c: rate(c)[0], "RdBu_r", True),
                                        ("mean field: mean log χ", mf_rate, "RdBu_r", True),
                                        ("(measured − mean field) / s.e.", zscore, "PuOr", True)],
                                       f"propagate_{act}", contour=mf_chi1, title=f"{act}: {label}")
        return files

    def _profiles(self, spec, a, act):
        plt = _plt()
        res = self.res
        layers = np.arange(spec["depth"])
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for k, (i, j) in enumerate(self.groups()):
            lab, w = res.labels[i], res.widths[j]
            c = f"C{k % 10}"
            pm = res.sel("propagate_preact_mean", lab, w)[:, a]
            pv = res.sel("propagate_preact_var", lab, w)[:, a]
            gv = res.sel("propagate_grad_var", lab, w)[:, a]
            for ax, (v, lo, hi), mfk in ((axes[0], U.pooled_var_band(pm, pv), "meanfield_preact_var"),
                                         (axes[1], U.pooled_mean_band(gv), "meanfield_grad_var")):
                ax.semilogy(layers, v, color=c, lw=1.5, label=self._cell_title(i, j))
                ax.fill_between(layers, lo, hi, color=c, alpha=0.25, lw=0)
                mf = res.sel(mfk, lab, w)[a]
                if np.isfinite(mf).any():
                    ax.semilogy(layers, mf, color=c, lw=0.9, ls="--")
        axes[0].set_title(f"{act}: pre-activation variance (band: 95% CI across networks; dashed: mean field)",
                          fontsize=8)
        axes[1].set_title(f"{act}: gradient variance at each layer's input (dashed: mean field)", fontsize=8)
        for ax in axes:
            ax.set_xlabel("layer")
        axes[0].legend(fontsize=6)
        return [self.save(fig, "propagate", act, "profiles")]


# --- statistics with their intervals (vectorised jackknife over networks) ---------------------------------

def _edges(v):
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _median_ci(x):
    x = np.asarray(x, dtype=float)
    lo, hi = U.quantile_ci(x, 0.5)
    return float(np.median(x)), lo, hi


def _p_gt_1(x):
    from .measures import EXCEEDS
    k = int(np.sum(np.asarray(x) > EXCEEDS))
    lo, hi = U.clopper_pearson(k, np.asarray(x).size)
    return k / np.asarray(x).size, lo, hi


def _mean_ci(x):
    m, _, lo, hi = U.mean_ci(x)
    return float(m), float(lo), float(hi)
