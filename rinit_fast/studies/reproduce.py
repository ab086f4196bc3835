"""``rinit-fast reproduce``: the core findings of [1] (docs/sources.md) (and the depth arguments of [2], [3]) on the
CPU in a few minutes, written to a report directory.

Layout of the report::

    REPORT/studies/radius, rescaled, orthogonal, recurrence, tanh, depth-tanh, depth-relu, depth-sigmoid
                                 the study directories (docs/studies.md; suffixed -quick for --quick)
    REPORT/radius_hist.png       empirical law of rho beside the asymptotic law, per scheme and width
    REPORT/radius_table.csv      P(rho > 1) (with a 95% Clopper–Pearson interval), mean, median and
                                 quantiles (with 95% intervals), the asymptotic law's P(rho > 1) and median
    REPORT/powers.png            log10 ||W^k x|| against k, mean and 10–90% band over matrices × inputs
    REPORT/linear_rnn.png        log10 ||h_t||, h_t = W h_{t-1} + x_t
    REPORT/tanh_tangent.png      log10 ||v_t||, the tangent (gradient flow) of the tanh RNN
    REPORT/recurrence_table.csv  mean log norms at the last horizon and growth rates per step (95%
                                 intervals across matrices)
    REPORT/propagation.png, propagation_table.csv   variance profiles through depth ([propagate] studies,
                                 95% jackknife intervals across networks) beside the mean field
    REPORT/lyapunov_edge.png, lyapunov_spectrum.png, lyapunov_table.csv   the edge of chaos: Lyapunov
                                 spectra of tanh(g W h) against g and of the linear Glorot recurrence
                                 beside log|eigenvalues| (rinit_fast/studies/lyapunov_report.py)
    REPORT/summary.md, summary.json   each finding with its numbers and their 95% Monte Carlo intervals
                                 (the same numbers in both); sentences say when a difference is within them
"""
from __future__ import annotations

import json
import math
import os
import threading
import time

import numpy as np

from . import figures, storage
from . import uncertainty as U
from .execute import run_study
from .measures import EXCEEDS as EXCEED  # P(rho > 1) counts rho > 1 + 1e-5 (rho = 1 exactly: orthogonal)
from .uncertainty import clopper_pearson

RADIUS_SCHEMES = ["glorot_normal", "half_glorot", "complex_glorot"]
CURVE_SCHEMES = ["glorot_normal", "half_glorot", "rescaled_glorot", "complex_glorot", "orthogonal"]
PREFETCH = [
    # (kernel module, function, dtype): what the report's later steps compile on a cold cache, in the order
    # they need it, for a helper process to compile ahead (kernels/cpu/_jit.py, ``prefetch``).  Left out:
    # the first study's own real-valued kernels (the job compiles them at once, itself).
    ("spectral", "isometry_complex", None), ("spectral", "power_c64", None),
    ("spectral", "arnoldi_complex", None), ("sampling", "_qr_items", None),
    ("unroll", "run_item", "float32"), ("spectral", "prep", "complex64"),
    ("propagate", "network_normal_tanh", "float32"), ("propagate", "network_normal_relu", "float32"),
    ("propagate", "network_normal_sigmoid", "float32"), ("sampling", "_normal_items", "float64"),
    ("lyapunov", "run_item", "float64"),
]
"""Kernels the CPU report compiles after its first study; ``reproduce`` has them compiled ahead in a
low-priority helper process while the first study runs (docs/performance.md, "The main job")."""
P_DEFAULT = math.exp(-math.exp(-0.57721566490153286061 - math.pi / math.sqrt(6.0)))
"""The probability p = exp(-e^{-c}) of the default c = γ_E + π/√6 (≈ 0.856)."""


def settings(quick=False):
    """The sizes of every part of the report (quick: seconds, for tests)."""
    if quick:
        return {"widths": [48, 96], "rescaled_widths": [170], "samples": 24, "ortho_samples": 6,
                "curve_width": 170, "curve_samples": 3, "realizations": 4, "horizons": {"every": 10, "stop": 60},
                "tanh_horizons": {"every": 5, "stop": 30},
                "prop": {"width": 32, "depth": 8, "networks": 8, "inputs": 16}, "calib_width": 48}
    return {"widths": [128, 256, 500], "rescaled_widths": [256, 500], "samples": 400, "ortho_samples": 100,
            "curve_width": 256, "curve_samples": 10, "realizations": 20,
            "horizons": {"every": 20, "stop": 2000}, "tanh_horizons": {"every": 5, "stop": 500},
            "prop": {"width": 256, "depth": 50, "networks": 32, "inputs": 64}, "calib_width": 128}


def _configs(st, backend, seed):
    base = {"seed": seed, "backend": backend, "dtype": "float32"}
    return {
        "radius": dict(base, name="radius", samples=st["samples"], chunk=50, widths=st["widths"],
                       schemes=RADIUS_SCHEMES, radius={"method": "power"}),
        "rescaled": dict(base, name="rescaled", samples=st["samples"], chunk=50,
                         widths=st["rescaled_widths"], schemes=["rescaled_glorot"],
                         radius={"method": "power"}),
        # all eigenvalues of an orthogonal matrix lie on the unit circle: no power iteration can separate
        # them; rf.spectral_radius recognises the isometry (path "isometry") and returns rho = 1
        "orthogonal": dict(base, name="orthogonal", samples=st["ortho_samples"], chunk=50,
                           widths=st["widths"], schemes=["orthogonal"], radius={"method": "power"}),
        "recurrence": dict(base, name="recurrence", samples=st["curve_samples"], chunk=1,
                           widths=[st["curve_width"]], schemes=CURVE_SCHEMES,
                           unroll={"horizons": st["horizons"], "realizations": st["realizations"],
                                   "runs": ["powers", "linear"]}),
        # the tanh RNN is real (the complex tanh has poles)
        "tanh": dict(base, name="tanh", samples=st["curve_samples"], chunk=1, widths=[st["curve_width"]],
                     schemes=[s for s in CURVE_SCHEMES if s != "complex_glorot"],
                     unroll={"horizons": st["tanh_horizons"], "realizations": st["realizations"],
                             "runs": ["tanh"], "tangent": True}),
        **{f"depth-{act}": dict(base, name=f"depth-{act}", samples=st["prop"]["networks"],
                                chunk=st["prop"]["networks"],
                                widths=[st["prop"]["width"]],
                                schemes=[{"scheme": sch, "label": prop_label(sch, gain, params), "gain": gain,
                                          **params} for a, sch, gain, params in PROP_CASES if a == act],
                                propagate={"activations": [act], "depth": st["prop"]["depth"],
                                           "inputs": st["prop"]["inputs"]})
           for act in PROP_ACTIVATIONS},
    }


def study_dir(out, key, quick=False):
    """Where the report keeps one of its studies (quick and full runs into one report never collide)."""
    return os.path.join(out, "studies", key + ("-quick" if quick else ""))


def _write_csv(path, rows):
    text = storage.csv_text(rows)
    storage._atomic_write(path, lambda f: f.write(text.encode()))


def reproduce(out="rinit-report", *, backend="cpu", quick=False, seed=2026, progress=True, log=print,
              prefetch=None):
    """Run the report (see the module docstring) into ``out`` and return the summary dict.

    Resumable: its studies are ordinary study directories, so a second run reuses what is stored.
    Every statistic carries its 95% Monte Carlo interval (``*_ci_low``, ``*_ci_high``; uncertainty.py).
    ``prefetch`` (default: on the CPU and not ``quick``): a low-priority helper process compiles the
    kernels of the later steps (``PREFETCH``) while the first study runs; ``RINIT_FAST_PREFETCH=0`` turns
    it off whatever ``prefetch`` says.  It changes when kernels compile, never a result."""
    t0 = time.perf_counter()
    st = settings(quick)
    os.makedirs(out, exist_ok=True)
    cfgs = _configs(st, backend, seed)
    res = {}
    helper = None
    if prefetch is None:
        prefetch = backend == "cpu" and not quick
    if prefetch:
        from ..kernels.cpu import _jit
        helper = _jit.prefetch(PREFETCH)
    try:
        for key, cfg in cfgs.items():
            log(f"[reproduce] study {key}: {len(cfg['schemes'])} scheme(s) x widths {cfg['widths']} x "
                f"{cfg['samples']} {'networks' if 'propagate' in cfg else 'matrices'}")
            res[key] = run_study(cfg, study_dir(out, key, quick), progress=progress)
        return _report(out, res, st, backend, quick, seed, t0, log)
    finally:
        if helper is not None:
            helper.stop()


class _Background(threading.Thread):
    """``fn(**kw)`` in a daemon thread; ``result()`` joins it and returns its value or raises its error."""

    def __init__(self, fn, **kw):
        super().__init__(daemon=True, name="rinit-fast-report")
        self.fn, self.kw, self.value, self.error = fn, kw, None, None
        self.start()

    def run(self):
        try:
            self.value = self.fn(**self.kw)
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def _report(out, res, st, backend, quick, seed, t0, log):
    from .. import theory
    from ..calibrate import quantile_ci
    from . import lyapunov_report
    # (e)'s numbers are computed while (a)-(d) draw their figures: matplotlib runs on one core and holds the
    # GIL, the Lyapunov kernels release it (measured: bench/NOTES.md "The main job's tail").  Its own
    # figures are drawn here, after it (matplotlib is used from this thread only).
    edge = _Background(lyapunov_report.compute, quick=quick, seed=seed)
    summary = {"quick": quick, "backend": backend, "seed": seed, "confidence": U.CONFIDENCE, "radius": [],
               "calibration": [], "recurrence": [], "propagation": []}

    # (a) the law of rho ------------------------------------------------------------------------
    panels, rows = {}, []
    schemes_order = RADIUS_SCHEMES[:1] + ["half_glorot", "rescaled_glorot", "complex_glorot", "orthogonal"]
    for key in ("radius", "rescaled", "orthogonal"):
        r = res[key]
        for i, label in enumerate(r.labels):
            for j, n in enumerate(r.widths):
                x = r["radius"][i, j]
                law = figures.radius_law(label, n)
                panels[(label, n)] = (x, law)
                k = int(np.sum(x > EXCEED))
                lo, hi = clopper_pearson(k, x.size)
                row = {"scheme": label, "width": n, "samples": int(x.size), "p_gt_1": k / x.size,
                       "p_gt_1_ci_low": lo, "p_gt_1_ci_high": hi}
                for p, nm in ((0.5, "median"), (0.05, "q05"), (0.25, "q25"), (0.75, "q75"), (0.95, "q95")):
                    row[nm] = float(np.quantile(x, p))
                    row[f"{nm}_ci_low"], row[f"{nm}_ci_high"] = U.quantile_ci(x, p)
                m, _, mlo, mhi = U.mean_ci(x)
                row.update({"mean": float(m), "mean_ci_low": float(mlo), "mean_ci_high": float(mhi),
                            "unconverged": int((~r["radius_converged"][i, j]).sum()) if key != "orthogonal" else 0,
                            "law_p_gt_1": float(law.sf(1.0)) if law is not None else "",
                            "law_median": float(law.median()) if law is not None else ""})
                rows.append(row)
    rows.sort(key=lambda r: (schemes_order.index(r["scheme"]), r["width"]))
    _write_csv(os.path.join(out, "radius_table.csv"), rows)
    summary["radius"] = rows
    figures.radius_histograms(os.path.join(out, "radius_hist.png"), panels, st["widths"] + [
        n for n in st["rescaled_widths"] if n not in st["widths"]], schemes_order)

    # empirical calibration where the formula exists and where it does not
    rr = res["radius"]
    gi = rr.labels.index("glorot_normal")
    for n in rr.widths:
        x = rr["radius"][gi, rr.widths.index(n)]
        lo, hi, cov = quantile_ci(x, P_DEFAULT, 0.95)
        summary["calibration"].append({
            "width": n, "p": P_DEFAULT, "scale": float(np.quantile(x, P_DEFAULT)), "ci_low": lo, "ci_high": hi,
            "formula": theory.rescale_factor(n) if n >= theory.MIN_N else None})

    # (b, c) recurrences --------------------------------------------------------------------------
    rc, rt = res["recurrence"], res["tanh"]
    t = np.array(rc.horizons)
    titles = {"powers": (rc, "||W^k x||: pure powers, x ~ N(0, I)", "log10 ||W^k x||", "powers.png"),
              "linear": (rc, "||h_t||: linear RNN h_t = W h_{t-1} + x_t", "log10 ||h_t||", "linear_rnn.png"),
              "tanh_tangent": (rt, "tanh RNN: tangent ||v_t|| = ||dh_t/dh_0 v_0|| (gradient flow)",
                               "log10 ||v_t||", "tanh_tangent.png")}
    for run, (r, title, ylab, fname) in titles.items():
        series = {label: r[f"{run}_log_norm"][i, 0] for i, label in enumerate(r.labels)}
        figures.curves(os.path.join(out, fname), np.array(r.horizons), series, f"{title} (n={r.widths[0]})",
                       ylab)
    rec_rows = []
    for i, label in enumerate(rc.labels):
        row = {"scheme": label, "width": rc.widths[0], "matrices": rc.samples,
               "realizations": rc.config["unroll"]["realizations"], "T": int(t[-1]),
               "T_tanh": int(rt.horizons[-1])}
        for run in ("powers", "linear", "tanh", "tanh_tangent"):
            r = rt if run.startswith("tanh") else rc
            cols = [f"{run}_mean_log_norm_T", f"{run}_rate_per_step"]
            if label not in r.labels:
                for c in cols:
                    row[c] = row[f"{c}_ci_low"] = row[f"{c}_ci_high"] = ""
                continue
            a = r[f"{run}_log_norm"][r.labels.index(label), 0]  # (matrices, R, horizons)
            m, rate = growth(a, np.array(r.horizons))
            per_m, per_rate = growth_per_matrix(a, np.array(r.horizons))
            row[cols[0]] = float(m[-1])
            row[cols[1]] = rate
            for c, x in ((cols[0], per_m), (cols[1], per_rate)):
                _, _, lo, hi = U.mean_ci(x)
                row[f"{c}_ci_low"], row[f"{c}_ci_high"] = float(lo), float(hi)
        rec_rows.append(row)
    _write_csv(os.path.join(out, "recurrence_table.csv"), rec_rows)
    summary["recurrence"] = rec_rows

    # (d) depth ---------------------------------------------------------------------------------------
    summary["propagation"] = _propagation(out, {a: res[f"depth-{a}"] for a in PROP_ACTIVATIONS})

    # (e) the edge of chaos: Lyapunov spectra (rinit_fast/studies/lyapunov_report.py) ---------------------
    lines, _figs = lyapunov_report.write(out, edge.result())
    summary["lyapunov"] = lines

    summary["wall_s"] = time.perf_counter() - t0
    with open(os.path.join(out, "summary.json.tmp"), "w") as f:
        json.dump(summary, f, indent=1, default=_jsonable)
    os.replace(os.path.join(out, "summary.json.tmp"), os.path.join(out, "summary.json"))
    text = _summary_md(summary)
    storage._atomic_write(os.path.join(out, "summary.md"), lambda f: f.write(text.encode()))
    log(f"[reproduce] report written to {out} in {summary['wall_s']:.1f} s")
    return summary


def growth(a, t):
    """(mean log norm per horizon over matrices and realisations, its growth rate per step over the second
    half of the horizons)."""
    m = np.asarray(a).reshape(-1, len(t)).mean(axis=0)
    h = _half(t)
    return m, float((m[-1] - m[h]) / max(1, t[-1] - t[h]))


def growth_per_matrix(a, t):
    """Per matrix (the independent replicates): (mean log norm at the last horizon over its
    realisations, its growth rate per step over the second half of the horizons); their means are
    :func:`growth`'s numbers."""
    m = np.asarray(a).mean(axis=1)  # (matrices, horizons)
    h = _half(t)
    return m[:, -1], (m[:, -1] - m[:, h]) / max(1, t[-1] - t[h])


def _half(t):
    half = len(t) // 2
    return 0 if half >= len(t) - 1 else half


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v))


PROP_CASES = [  # (activation, scheme, gain, params): sources [2] and [3] (docs/sources.md)
    ("tanh", "glorot_normal", 1.0, {}), ("tanh", "glorot_normal", 5.0 / 3.0, {}),
    ("tanh", "normal", 1.0, {"std": 1.0}),
    ("relu", "he_normal", 1.0, {}), ("relu", "glorot_normal", 1.0, {}),
    ("sigmoid", "glorot_normal", 1.0, {}), ("sigmoid", "glorot_normal", 4.0, {})]
PROP_ACTIVATIONS = ("tanh", "relu", "sigmoid")


def prop_label(scheme, gain, params):
    """The study label of a PROP_CASES entry, e.g. glorot_normal-gain1.667, normal-std1."""
    return scheme + "".join(f"-{k}{v:g}" for k, v in params.items()) + (f"-gain{gain:.4g}" if gain != 1.0 else "")


def _propagation(out, studies):
    """Rows of the depth part, from the studies depth-<activation> (one per activation): pooled statistics
    exactly as rf.propagate pools them, each with its 95% jackknife interval across networks."""
    from ..propagate import STAT_FIELDS, PropagateResult
    profiles, rows = {}, []
    for act, scheme, gain, params in PROP_CASES:
        r = studies[act]
        label = prop_label(scheme, gain, params)
        i, n = r.labels.index(label), r.widths[0]
        stats = np.stack([r[f"propagate_{f}"][i, 0, :, 0] for f in STAT_FIELDS], axis=-1)  # (networks, layer, 8)
        pooled = PropagateResult.from_networks(stats)
        table = {(rw["scheme"]): rw for rw in r.table()}[label]
        pv, gv = pooled.preact_var, pooled.grad_var
        mpv, mgv = r["meanfield_preact_var"][i, 0, 0], r["meanfield_grad_var"][i, 0, 0]
        mf_ok = bool(np.isfinite(mpv).all())
        display = f"{act} / {scheme}" + (f" std={params['std']:g}" if params else "") + \
            (f" gain={gain:.4g}" if gain != 1.0 else "")
        pm = r["propagate_preact_mean"][i, 0, :, 0]
        pvn = r["propagate_preact_var"][i, 0, :, 0]
        gvn = r["propagate_grad_var"][i, 0, :, 0]
        profiles[display] = (U.pooled_var_band(pm, pvn), U.pooled_mean_band(gvn), mpv if mf_ok else None,
                             mgv if mf_ok else None)
        ratio = (lambda y: y[:, 1].mean() / y[:, 0].mean())
        gratio = U.jackknife(ratio, np.stack([gvn[:, -1], gvn[:, 0]], axis=-1), log=True)
        row = {"activation": act, "scheme": display.split(" / ")[1], "width": n, "depth": len(pv),
               "networks": r.samples, "inputs": r.config["propagate"]["inputs"],
               "preact_var_first": float(pv[0]), "preact_var_last": float(pv[-1]),
               "grad_var_first": float(gv[0]), "grad_var_last": float(gv[-1])}
        for k in ("preact_var_first", "preact_var_last", "grad_var_first", "grad_var_last"):
            row[f"{k}_ci_low"] = table[f"propagate_{k}_ci_low"]
            row[f"{k}_ci_high"] = table[f"propagate_{k}_ci_high"]
        row["preact_var_ratio"] = float(pv[-1] / pv[0])
        row["preact_var_ratio_ci_low"] = table["propagate_preact_var_ratio_ci_low"]
        row["preact_var_ratio_ci_high"] = table["propagate_preact_var_ratio_ci_high"]
        row["grad_var_ratio"] = float(gv[0] / gv[-1])
        row["grad_var_ratio_ci_low"], row["grad_var_ratio_ci_high"] = float(gratio[2]), float(gratio[3])
        if mf_ok:
            row["meanfield_preact_var_first"] = float(mpv[0])
            row["meanfield_preact_var_last"] = float(mpv[-1])
            row["meanfield_grad_var_first"] = float(mgv[0])
            row["meanfield_grad_var_last"] = float(mgv[-1])
        rows.append(row)
    figures.propagation(os.path.join(out, "propagation.png"), profiles)
    _write_csv(os.path.join(out, "propagation_table.csv"), rows)
    return rows


def _bar(total, desc, enabled):
    from .execute import _bar as b
    return b(total, desc, enabled)


def fmt(x, d=4):
    """The one number format of summary.md (tests parse it back)."""
    return f"{x:.{d}f}"


def _ci(v, lo, hi, d=4, sig=False):
    """'value [low, high]' in summary.md's format ('–' for a missing value)."""
    if v == "":
        return "–"
    f = (lambda x: f"{x:.{d}g}") if sig else (lambda x: fmt(x, d))
    if lo == "" or not (np.isfinite(lo) or np.isfinite(hi)) and np.isnan(lo):
        return f(v)
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def _vs(theory_value, lo, hi):
    """Whether a theoretical value lies in a Monte Carlo interval, as a phrase (an interval with an
    infinite end, from too few samples, still decides on its finite side)."""
    if np.isnan(lo) or np.isnan(hi):
        return "with no interval to compare (too few samples)"
    return "within the 95% interval" if lo <= theory_value <= hi else "outside the 95% interval"


def _trend(rate, lo, hi):
    """'grows' / 'decays' when the 95% interval of the rate excludes 0, else 'is flat within its interval'."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "grows" if rate > 0 else "decays"
    if lo > 0:
        return "grows"
    if hi < 0:
        return "decays"
    return "is flat within its 95% interval"


def _summary_md(s):
    R = lambda r, k, d=4: _ci(r[k], r[f"{k}_ci_low"], r[f"{k}_ci_high"], d)
    L = ["# rinit-fast reproduce: summary", "",
         f"Backend {s['backend']}, seed {s['seed']}{' (quick settings: tiny sizes, numbers are noisy)' if s['quick'] else ''}; "
         f"wall time {s['wall_s']:.1f} s. Figures: radius_hist.png, powers.png, linear_rnn.png, "
         f"tanh_tangent.png, propagation.png, lyapunov_edge.png, lyapunov_spectrum.png; tables: "
         f"radius_table.csv, recurrence_table.csv, propagation_table.csv, lyapunov_table.csv; the same "
         f"numbers as JSON in summary.json.", "",
         "Every Monte Carlo number is followed by its 95% interval in brackets: Clopper–Pearson for "
         "probabilities, order statistics for quantiles, Student t across matrices for means and rates, "
         "the jackknife across networks for the depth statistics (docs/studies.md, \"Uncertainty\"). "
         "Theory values (the asymptotic law, the mean field) have none.", "",
         "## (a) The spectral radius rho: Monte Carlo against the asymptotic law", "",
         "| scheme | n | samples | P(rho>1) [95% CI] | law P(rho>1) | median rho [95% CI] | law median | "
         "q05 [95% CI] | q95 [95% CI] |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in s["radius"]:
        law_p = fmt(r["law_p_gt_1"]) if r["law_p_gt_1"] != "" else "–"
        law_m = fmt(r["law_median"]) if r["law_median"] != "" else "–"
        L.append(f"| {r['scheme']} | {r['width']} | {r['samples']} | {R(r, 'p_gt_1')} | {law_p} | "
                 f"{R(r, 'median')} | {law_m} | {R(r, 'q05')} | {R(r, 'q95')} |")
    L += ["", "Findings:", ""]
    names = {"glorot_normal": "Glorot (real)", "rescaled_glorot": "Rescaled Glorot",
             "complex_glorot": "Complex Glorot", "half_glorot": "Half Glorot", "orthogonal": "Orthogonal"}
    for sch in ("glorot_normal", "rescaled_glorot", "complex_glorot", "half_glorot", "orthogonal"):
        for r in s["radius"]:
            if r["scheme"] != sch:
                continue
            line = (f"- {names[sch]}, n = {r['width']}: P(rho > 1) = {R(r, 'p_gt_1')}, median rho = "
                    f"{R(r, 'median')}")
            if sch == "orthogonal":
                line += " (exactly 1 in theory)"
            elif r["law_p_gt_1"] != "":
                law = "Rider's complex law" if sch == "complex_glorot" else "the asymptotic real law"
                line += (f"; {law} predicts P(rho > 1) = {fmt(r['law_p_gt_1'])}, "
                         f"{_vs(r['law_p_gt_1'], r['p_gt_1_ci_low'], r['p_gt_1_ci_high'])}, and median "
                         f"{fmt(r['law_median'])}, {_vs(r['law_median'], r['median_ci_low'], r['median_ci_high'])}")
            else:
                line += " (no asymptotic law at this n: gamma_n <= 0)"
            L.append(line + ".")
    L += ["", f"Empirical calibration (p = {fmt(P_DEFAULT)}, the probability of the default c = γ_E + π/√6): "
               "the scale s with P(rho(W/s) > 1) = 1 - p is the p-quantile of rho over Glorot samples "
               "(95% order-statistic interval):", ""]
    for c in s["calibration"]:
        f = (f"the asymptotic formula gives s_n = {fmt(c['formula'])}, "
             f"{_vs(c['formula'], c['ci_low'], c['ci_high'])}") if c["formula"] is not None else \
            "the asymptotic formula is undefined at this n"
        L.append(f"- n = {c['width']}: s = {fmt(c['scale'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]; {f}.")
    L += ["", "## (b, c) Recurrences", "",
          "Mean over matrices and input realisations of the natural log of the norm at the last horizon, and "
          "its growth rate per step over the second half of the horizon, each with its 95% interval across "
          "matrices:", "",
          "| scheme | n | T | log||W^T x|| | rate | log||h_T|| (linear) | rate | T (tanh) | log||h_T|| (tanh) | "
          "log||v_T|| (tanh tangent) | rate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["recurrence"]:
        L.append(f"| {r['scheme']} | {r['width']} | {r['T']} | {R(r, 'powers_mean_log_norm_T')} | "
                 f"{R(r, 'powers_rate_per_step', 5)} | {R(r, 'linear_mean_log_norm_T')} | "
                 f"{R(r, 'linear_rate_per_step', 5)} | {r['T_tanh']} | {R(r, 'tanh_mean_log_norm_T')} | "
                 f"{R(r, 'tanh_tangent_mean_log_norm_T')} | {R(r, 'tanh_tangent_rate_per_step', 5)} |")
    L += ["", "Findings:", ""]
    for r in s["recurrence"]:
        tr = lambda k: _trend(r[k], r[f"{k}_ci_low"], r[f"{k}_ci_high"])
        line = (f"- {r['scheme']}: ||W^k x|| {tr('powers_rate_per_step')} "
                f"({R(r, 'powers_rate_per_step', 5)} per step in log), mean log||W^T x|| = "
                f"{R(r, 'powers_mean_log_norm_T')} at T = {r['T']}; the linear RNN's mean log||h_T|| = "
                f"{R(r, 'linear_mean_log_norm_T')} ({R(r, 'linear_rate_per_step', 5)} per step)")
        if r["tanh_tangent_rate_per_step"] != "":
            line += (f"; the tanh RNN's gradient flow {tr('tanh_tangent_rate_per_step')} "
                     f"({R(r, 'tanh_tangent_rate_per_step', 5)} per step in log, mean log||v_T|| = "
                     f"{R(r, 'tanh_tangent_mean_log_norm_T')} at T = {r['T_tanh']})")
        L.append(line + ".")
    L += ["", "(The tanh RNN is run for the real schemes only: the complex tanh has poles.)",
          "", "## (d) Depth: variance profiles", ""]
    p0 = s["propagation"][0] if s["propagation"] else {"networks": 0, "inputs": 0}
    L += [f"Variance of the pre-activations of the first and last layer, and of the back-propagated "
          f"gradient at the network input and at the last layer's input (rf.propagate, {p0['networks']} "
          f"networks of {p0['inputs']} inputs each; the 95% intervals are across networks, whose spread is "
          f"the finite-width spread of a product of random layers; the mean-field prediction is dashed in "
          f"propagation.png):", "",
          "| activation | scheme | width | depth | preact var, layer 1 | preact var, last | mean field, last | "
          "grad var, input | grad var, last layer | mean field, input |", "|---|---|---|---|---|---|---|---|---|---|"]
    G = lambda r, k: _ci(r[k], r[f"{k}_ci_low"], r[f"{k}_ci_high"], 4, sig=True)
    mfv = lambda r, k: f"{r[k]:.4g}" if k in r else "–"
    for r in s["propagation"]:
        L.append(f"| {r['activation']} | {r['scheme']} | {r['width']} | {r['depth']} | "
                 f"{G(r, 'preact_var_first')} | {G(r, 'preact_var_last')} | {mfv(r, 'meanfield_preact_var_last')} | "
                 f"{G(r, 'grad_var_first')} | {G(r, 'grad_var_last')} | {mfv(r, 'meanfield_grad_var_first')} |")
    L += ["", "Findings:", ""]
    for r in s["propagation"]:
        lo, hi = r["preact_var_ratio_ci_low"], r["preact_var_ratio_ci_high"]
        if np.isfinite(lo) and lo <= 1.0 <= hi:
            verdict = "within its 95% interval of 1: no change beyond the Monte Carlo error"
        elif np.isfinite(lo):
            verdict = ("it grows beyond the Monte Carlo error" if lo > 1.0 else
                       "it shrinks beyond the Monte Carlo error")
        else:
            verdict = "too few networks for an interval"
        if "meanfield_preact_var_last" in r:
            mr = r["meanfield_preact_var_last"] / r["meanfield_preact_var_first"]
            verdict += f"; the mean field predicts a ratio {mr:.3g}, {_vs(mr, lo, hi)}"
        gr = _ci(r["grad_var_ratio"], r["grad_var_ratio_ci_low"], r["grad_var_ratio_ci_high"], 3, sig=True)
        L.append(f"- {r['activation']} / {r['scheme']}: over {r['depth']} layers the pre-activation variance "
                 f"goes from {G(r, 'preact_var_first')} to {G(r, 'preact_var_last')} (ratio "
                 f"{_ci(r['preact_var_ratio'], lo, hi, 3, sig=True)}: {verdict}); the gradient variance at the "
                 f"input is {gr} times that at the last layer.")
    L.append("")
    if s.get("lyapunov"):
        L += list(s["lyapunov"]) + [""]
    return "\n".join(L)
