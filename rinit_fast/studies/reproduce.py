"""``rinit-fast reproduce``: the core findings of 001_*.txt (and the depth arguments of 002/003) on the
CPU in a few minutes, written to a report directory.

Layout of the report::

    REPORT/studies/radius, rescaled, orthogonal, recurrence, tanh   the study directories (docs/studies.md;
                                 suffixed -quick for --quick)
    REPORT/radius_hist.png       empirical law of rho beside the asymptotic law, per scheme and width
    REPORT/radius_table.csv      P(rho > 1) (with a 95% Clopper–Pearson interval), median, quantiles,
                                 and the asymptotic law's P(rho > 1) and median
    REPORT/powers.png            log10 ||W^k x|| against k, mean and 10–90% band over matrices × inputs
    REPORT/linear_rnn.png        log10 ||h_t||, h_t = W h_{t-1} + x_t
    REPORT/tanh_tangent.png      log10 ||v_t||, the tangent (gradient flow) of the tanh RNN
    REPORT/recurrence_table.csv  mean log norms at the last horizon and growth rates per step
    REPORT/propagation.png, propagation_table.csv   variance profiles through depth (rf.propagate)
    REPORT/summary.md, summary.json   each finding with its numbers (the same numbers in both)
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from . import figures, storage
from ..calibrate import _host
from .execute import run_study

RADIUS_SCHEMES = ["glorot_normal", "half_glorot", "complex_glorot"]
CURVE_SCHEMES = ["glorot_normal", "half_glorot", "rescaled_glorot", "complex_glorot", "orthogonal"]
EXCEED = 1.0 + 1e-5
"""P(rho > 1) counts rho > 1 + 1e-5: an orthogonal matrix has rho = 1 exactly, and rounding must not count
as exceeding it (the Glorot laws put about 1e-4 of their mass in (1, 1 + 1e-5])."""
P_DEFAULT = math.exp(-math.exp(-0.57721566490153286061 - math.pi / math.sqrt(6.0)))
"""The probability p = exp(-e^{-c}) of the default c = γ_E + π/√6 (≈ 0.856)."""


def settings(quick=False):
    """The sizes of every part of the report (quick: seconds, for tests)."""
    if quick:
        return {"widths": [48, 96], "rescaled_widths": [170], "samples": 24, "ortho_samples": 6,
                "curve_width": 170, "curve_samples": 3, "realizations": 4, "horizons": {"every": 10, "stop": 60},
                "tanh_horizons": {"every": 5, "stop": 30},
                "prop": {"width": 32, "depth": 8, "batch": 2, "samples": 64}, "calib_width": 48}
    return {"widths": [128, 256, 500], "rescaled_widths": [256, 500], "samples": 400, "ortho_samples": 100,
            "curve_width": 256, "curve_samples": 10, "realizations": 20,
            "horizons": {"every": 20, "stop": 2000}, "tanh_horizons": {"every": 5, "stop": 500},
            "prop": {"width": 256, "depth": 50, "batch": 8, "samples": 256}, "calib_width": 128}


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
    }


def study_dir(out, key, quick=False):
    """Where the report keeps one of its studies (quick and full runs into one report never collide)."""
    return os.path.join(out, "studies", key + ("-quick" if quick else ""))


def clopper_pearson(k, n, confidence=0.95):
    from scipy import stats
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _law(scheme, n):
    """The asymptotic law of rho for a scheme at width n (None where there is none)."""
    from scipy import stats

    from .. import scheme_table, theory
    if scheme == "orthogonal" or n < theory.MIN_N:
        return None
    centre, width = theory.edge_location(n)
    shift = 0.0 if scheme_table.get(scheme).complex else -theory.LOG2  # real: Rider & Sinclair
    c = scheme_table.scheme_std(scheme, n) * math.sqrt(n)  # rho(cW) = c rho(W), W of entry variance 1/n
    return stats.gumbel_r(loc=c * (centre + shift * width), scale=c * width)


def _write_csv(path, rows):
    text = storage.csv_text(rows)
    storage._atomic_write(path, lambda f: f.write(text.encode()))


def reproduce(out="rinit-report", *, backend="cpu", quick=False, seed=2026, progress=True, log=print):
    """Run the report (see the module docstring) into ``out`` and return the summary dict.

    Resumable: its studies are ordinary study directories, so a second run reuses what is stored."""
    from .. import theory
    from ..calibrate import quantile_ci
    t0 = time.perf_counter()
    st = settings(quick)
    os.makedirs(out, exist_ok=True)
    cfgs = _configs(st, backend, seed)
    res = {}
    for key, cfg in cfgs.items():
        log(f"[reproduce] study {key}: {len(cfg['schemes'])} scheme(s) x widths {cfg['widths']} x "
            f"{cfg['samples']} matrices")
        res[key] = run_study(cfg, study_dir(out, key, quick), progress=progress)
    summary = {"quick": quick, "backend": backend, "seed": seed, "radius": [], "calibration": [],
               "recurrence": [], "propagation": []}

    # (a) the law of rho ------------------------------------------------------------------------
    panels, rows = {}, []
    schemes_order = RADIUS_SCHEMES[:1] + ["half_glorot", "rescaled_glorot", "complex_glorot", "orthogonal"]
    for key in ("radius", "rescaled", "orthogonal"):
        r = res[key]
        for i, label in enumerate(r.labels):
            for j, n in enumerate(r.widths):
                x = r["radius"][i, j]
                law = _law(label, n)
                panels[(label, n)] = (x, law)
                k = int(np.sum(x > EXCEED))
                lo, hi = clopper_pearson(k, x.size)
                q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
                row = {"scheme": label, "width": n, "samples": int(x.size), "p_gt_1": k / x.size,
                       "p_gt_1_ci_low": lo, "p_gt_1_ci_high": hi, "median": q[2], "q05": q[0], "q25": q[1],
                       "q75": q[3], "q95": q[4], "mean": float(x.mean()),
                       "unconverged": int((~r["radius_converged"][i, j]).sum()) if key != "orthogonal" else 0,
                       "law_p_gt_1": float(law.sf(1.0)) if law is not None else "",
                       "law_median": float(law.median()) if law is not None else ""}
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
            if label not in r.labels:
                row[f"{run}_mean_log_norm_T"] = row[f"{run}_rate_per_step"] = ""
                continue
            a = r[f"{run}_log_norm"][r.labels.index(label), 0]  # (matrices, R, horizons)
            m, rate = growth(a, np.array(r.horizons))
            row[f"{run}_mean_log_norm_T"] = float(m[-1])
            row[f"{run}_rate_per_step"] = rate
        rec_rows.append(row)
    _write_csv(os.path.join(out, "recurrence_table.csv"), rec_rows)
    summary["recurrence"] = rec_rows

    # (d) depth ---------------------------------------------------------------------------------------
    summary["propagation"] = _propagation(out, st["prop"], backend, seed, progress)

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
    half = len(t) // 2
    if half >= len(t) - 1:
        half = 0
    return m, float((m[-1] - m[half]) / max(1, t[-1] - t[half]))


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v))


PROP_CASES = [  # (activation, scheme, gain, params): 002_*.txt and 003_*.txt
    ("tanh", "glorot_normal", 1.0, {}), ("tanh", "glorot_normal", 5.0 / 3.0, {}),
    ("tanh", "normal", 1.0, {"std": 1.0}),
    ("relu", "he_normal", 1.0, {}), ("relu", "glorot_normal", 1.0, {}),
    ("sigmoid", "glorot_normal", 1.0, {}), ("sigmoid", "glorot_normal", 4.0, {})]


def _propagation(out, ps, backend, seed, progress):
    from ..propagate import propagate
    from .. import scheme_table
    from ..theory import mean_field
    profiles, rows = {}, []
    bar = _bar(len(PROP_CASES), "propagate", progress)
    for act, scheme, gain, params in PROP_CASES:
        r = propagate(scheme, ps["width"], ps["depth"], activation=act, batch=ps["batch"],
                      samples=ps["samples"], seed=seed, backend=backend, gain=gain, **params)
        pv, gv = _host(r.preact_var, np.float64), _host(r.grad_var, np.float64)
        mpv = mgv = None
        wv = ps["width"] * scheme_table.scheme_std(scheme, ps["width"], gain, **params) ** 2
        try:
            mf = mean_field(act, wv, 0.0, ps["depth"])
            mpv, mgv = mf.preact_var, mf.grad_var
        except ValueError:  # e.g. a weight variance the recursion refuses: no overlay for that case
            pass
        label = f"{act} / {scheme}" + (f" std={params['std']:g}" if params else "") + \
            (f" gain={gain:.4g}" if gain != 1.0 else "")
        profiles[label] = (pv, gv, mpv, mgv)
        row = {"activation": act, "scheme": label.split(" / ")[1], "width": ps["width"], "depth": ps["depth"],
               "preact_var_first": float(pv[0]), "preact_var_last": float(pv[-1]),
               "grad_var_first": float(gv[0]), "grad_var_last": float(gv[-1])}
        if mpv is not None:
            row["meanfield_preact_var_last"] = float(mpv[-1])
            row["meanfield_grad_var_first"] = float(mgv[0])
        rows.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    figures.propagation(os.path.join(out, "propagation.png"), profiles)
    _write_csv(os.path.join(out, "propagation_table.csv"), rows)
    return rows


def _bar(total, desc, enabled):
    from .execute import _bar as b
    return b(total, desc, enabled)


def _trend(rate, flat=1e-4):
    return "stays flat" if abs(rate) < flat else ("grows" if rate > 0 else "decays")


def _f(x, d=4):
    return "–" if x == "" else fmt(x, d)


def fmt(x, d=4):
    """The one number format of summary.md (tests parse it back)."""
    return f"{x:.{d}f}"


def _summary_md(s):
    L = ["# rinit-fast reproduce: summary", "",
         f"Backend {s['backend']}, seed {s['seed']}{' (quick settings: tiny sizes, numbers are noisy)' if s['quick'] else ''}; "
         f"wall time {s['wall_s']:.1f} s. Figures: radius_hist.png, powers.png, linear_rnn.png, "
         f"tanh_tangent.png, propagation.png; tables: radius_table.csv, recurrence_table.csv, "
         f"propagation_table.csv; the same numbers as JSON in summary.json.", "",
         "## (a) The spectral radius rho: Monte Carlo against the asymptotic law", "",
         "| scheme | n | samples | P(rho>1) [95% CI] | law P(rho>1) | median rho | law median | q05 | q95 |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in s["radius"]:
        law_p = fmt(r["law_p_gt_1"]) if r["law_p_gt_1"] != "" else "–"
        law_m = fmt(r["law_median"]) if r["law_median"] != "" else "–"
        L.append(f"| {r['scheme']} | {r['width']} | {r['samples']} | {fmt(r['p_gt_1'])} "
                 f"[{fmt(r['p_gt_1_ci_low'])}, {fmt(r['p_gt_1_ci_high'])}] | {law_p} | {fmt(r['median'])} | "
                 f"{law_m} | {fmt(r['q05'])} | {fmt(r['q95'])} |")
    L += ["", "Findings:", ""]
    for r in s["radius"]:
        if r["scheme"] == "glorot_normal":
            extra = (f" (the asymptotic real law predicts {fmt(r['law_p_gt_1'])}, median {fmt(r['law_median'])})"
                     if r["law_p_gt_1"] != "" else " (no asymptotic law: gamma_n <= 0 at this n)")
            L.append(f"- Glorot (real), n = {r['width']}: P(rho > 1) = {fmt(r['p_gt_1'])}, median rho = "
                     f"{fmt(r['median'])}{extra}.")
    for r in s["radius"]:
        if r["scheme"] == "rescaled_glorot":
            L.append(f"- Rescaled Glorot, n = {r['width']}: P(rho > 1) = {fmt(r['p_gt_1'])}, median rho = "
                     f"{fmt(r['median'])} (asymptotic law: {fmt(r['law_p_gt_1'])}).")
    for r in s["radius"]:
        if r["scheme"] == "complex_glorot":
            L.append(f"- Complex Glorot, n = {r['width']}: P(rho > 1) = {fmt(r['p_gt_1'])}, median rho = "
                     f"{fmt(r['median'])} (Rider's complex law: {fmt(r['law_p_gt_1'])}, median "
                     f"{fmt(r['law_median'])})." if r["law_p_gt_1"] != "" else
                     f"- Complex Glorot, n = {r['width']}: P(rho > 1) = {fmt(r['p_gt_1'])}, median rho = "
                     f"{fmt(r['median'])} (no asymptotic law at this n).")
    for r in s["radius"]:
        if r["scheme"] == "half_glorot":
            L.append(f"- Half Glorot, n = {r['width']}: P(rho > 1) = {fmt(r['p_gt_1'])}, median rho = "
                     f"{fmt(r['median'])}.")
    for r in s["radius"]:
        if r["scheme"] == "orthogonal":
            L.append(f"- Orthogonal, n = {r['width']}: median rho = {fmt(r['median'])} (exactly 1 in theory).")
    L += ["", f"Empirical calibration (p = {fmt(P_DEFAULT)}, the probability of the default c = γ_E + π/√6): "
               "the scale s with P(rho(W/s) > 1) = 1 - p is the p-quantile of rho over Glorot samples "
               "(95% order-statistic interval):", ""]
    for c in s["calibration"]:
        f = f"the asymptotic formula gives s_n = {fmt(c['formula'])}" if c["formula"] is not None else \
            "the asymptotic formula is undefined at this n"
        L.append(f"- n = {c['width']}: s = {fmt(c['scale'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]; {f}.")
    L += ["", "## (b, c) Recurrences", "",
          "Mean over matrices and input realisations of the natural log of the norm at the last horizon, and "
          "its growth rate per step over the second half of the horizon:", "",
          "| scheme | n | T | log||W^T x|| | rate | log||h_T|| (linear) | rate | T (tanh) | log||h_T|| (tanh) | "
          "log||v_T|| (tanh tangent) | rate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["recurrence"]:
        L.append(f"| {r['scheme']} | {r['width']} | {r['T']} | {fmt(r['powers_mean_log_norm_T'])} | "
                 f"{fmt(r['powers_rate_per_step'], 5)} | {fmt(r['linear_mean_log_norm_T'])} | "
                 f"{fmt(r['linear_rate_per_step'], 5)} | {r['T_tanh']} | {_f(r['tanh_mean_log_norm_T'])} | "
                 f"{_f(r['tanh_tangent_mean_log_norm_T'])} | {_f(r['tanh_tangent_rate_per_step'], 5)} |")
    L += ["", "Findings:", ""]
    for r in s["recurrence"]:
        line = (f"- {r['scheme']}: ||W^k x|| {_trend(r['powers_rate_per_step'])} "
                f"({fmt(r['powers_rate_per_step'], 5)} per step in log), mean log||W^T x|| = "
                f"{fmt(r['powers_mean_log_norm_T'])} at T = {r['T']}; the linear RNN's mean log||h_T|| = "
                f"{fmt(r['linear_mean_log_norm_T'])} ({fmt(r['linear_rate_per_step'], 5)} per step)")
        if r["tanh_tangent_rate_per_step"] != "":
            line += (f"; the tanh RNN's gradient flow {_trend(r['tanh_tangent_rate_per_step'])} "
                     f"({fmt(r['tanh_tangent_rate_per_step'], 5)} per step in log, mean log||v_T|| = "
                     f"{fmt(r['tanh_tangent_mean_log_norm_T'])} at T = {r['T_tanh']})")
        L.append(line + ".")
    L += ["", "(The tanh RNN is run for the real schemes only: the complex tanh has poles.)",
          "", "## (d) Depth: variance profiles", ""]
    L += ["Variance of the pre-activations of the first and last layer, and of the back-propagated "
          "gradient at the network input and at the last layer's input (rf.propagate; the mean-field "
          "prediction is dashed in propagation.png):", "",
          "| activation | scheme | width | depth | preact var, layer 1 | preact var, last | "
          "grad var, input | grad var, last layer |", "|---|---|---|---|---|---|---|---|"]
    for r in s["propagation"]:
        L.append(f"| {r['activation']} | {r['scheme']} | {r['width']} | {r['depth']} | "
                 f"{r['preact_var_first']:.4g} | {r['preact_var_last']:.4g} | {r['grad_var_first']:.4g} | "
                 f"{r['grad_var_last']:.4g} |")
    L += ["", "Findings:", ""]
    for r in s["propagation"]:
        L.append(f"- {r['activation']} / {r['scheme']}: over {r['depth']} layers the pre-activation variance "
                 f"goes from {r['preact_var_first']:.4g} to {r['preact_var_last']:.4g} (ratio "
                 f"{r['preact_var_last'] / r['preact_var_first']:.3g}); the gradient variance at the input is "
                 f"{r['grad_var_first'] / r['grad_var_last']:.3g} times that at the last layer.")
    L.append("")
    return "\n".join(L)
