"""The edge-of-chaos section of ``rinit-fast reproduce`` (issue 14): Lyapunov spectra with ``rf.lyapunov``.

``edge_of_chaos(out, quick=False, seed=2026)`` (:func:`compute`, then :func:`write`) writes into ``out``

    lyapunov_edge.png       the largest exponent and the Kaplan–Yorke dimension of h_t = tanh(g W h_{t-1})
                            (Glorot W, no input) against g, beside the linear recurrence's log rho(g W)
    lyapunov_spectrum.png   the spectrum of the linear Glorot recurrence beside the log-moduli of W's
                            eigenvalues (LAPACK)
    lyapunov_table.csv      the numbers of both, per gain and per matrix

and returns ``(lines, figures)``: the markdown lines of its summary section (numbers and their spread)
and the paths of the two figures.  About 10 s of CPU with a warm Numba cache (n = 64, 6 matrices,
11 gains, 2,000 steps each), a second with ``quick``.
"""
from __future__ import annotations

import math
import os

import numpy as np

from . import figures, storage


def settings(quick=False):
    if quick:
        return {"n": 16, "gains": [0.5, 1.0, 1.5, 2.0, 3.0], "matrices": 2, "steps": 300, "warmup": 100,
                "lin_matrices": 2, "lin_steps": 600, "lin_warmup": 100}
    return {"n": 64, "gains": [0.5 + 0.25 * i for i in range(11)], "matrices": 6, "steps": 2000,
            "warmup": 500,
            "lin_matrices": 3, "lin_steps": 4000, "lin_warmup": 400}


def _crossing(g, y):
    """The first g where y (mean over matrices) crosses 0 upwards, by linear interpolation; None if never."""
    for i in range(len(g) - 1):
        if y[i] < 0 <= y[i + 1]:
            return g[i] + (g[i + 1] - g[i]) * (-y[i]) / (y[i + 1] - y[i])
    return None


def edge_of_chaos(out, *, quick=False, seed=2026):
    """Run the two Lyapunov experiments into ``out``; return (markdown lines, [figure paths])."""
    return write(out, compute(quick=quick, seed=seed))


def compute(*, quick=False, seed=2026):
    """The numbers of both experiments (a dict of arrays; writes nothing).  The main job runs this in a
    background thread while it draws the figures of the other sections (rinit_fast/studies/reproduce.py)."""
    from ..lyapunov import lyapunov
    from ..sampling import sample
    from ..kernels.cpu import threads
    st = settings(quick)
    n, gains = st["n"], st["gains"]
    W = sample("glorot_normal", n, batch=st["matrices"], seed=seed, dtype="float64")
    with threads.blas_single_thread():
        logrho = np.log(np.abs(np.linalg.eigvals(W)).max(axis=-1))            # (matrices,)
    lam1, err1, ky, ent = [], [], [], []
    for g in gains:
        r = lyapunov(g * W, steps=st["steps"], warmup=st["warmup"], nonlinearity="tanh", seed=seed)
        lam1.append(r.exponents[:, 0, 0])
        err1.append(r.stderr[:, 0, 0])
        ky.append(r.kaplan_yorke_dimension[:, 0])
        ent.append(r.entropy_rate[:, 0])
    lam1, err1, ky, ent = np.array(lam1), np.array(err1), np.array(ky), np.array(ent)   # (gains, matrices)
    chaotic = (lam1 > 3 * err1).sum(axis=1)        # positive by more than 3 batch-means standard errors
    lin = np.log(np.array(gains))[:, None] + logrho[None, :]                   # log rho(g W)

    # the linear recurrence: the whole spectrum against LAPACK's log-moduli
    Wl = sample("glorot_normal", n, batch=st["lin_matrices"], seed=seed + 1, dtype="float64")
    rl = lyapunov(Wl, steps=st["lin_steps"], warmup=st["lin_warmup"], seed=seed)
    with threads.blas_single_thread():
        logmod = np.sort(np.log(np.abs(np.linalg.eigvals(Wl))), axis=-1)[:, ::-1]
    return {"quick": quick, "W": W, "Wl": Wl, "logrho": logrho, "lam1": lam1, "err1": err1, "ky": ky,
            "ent": ent, "chaotic": chaotic, "lin": lin, "spec": rl.exponents[:, 0, :], "logmod": logmod}


def write(out, data):
    """Write the table and figures of :func:`compute`'s ``data`` into ``out``; return (markdown lines,
    [figure paths])."""
    st = settings(data["quick"])
    n, gains = st["n"], st["gains"]
    names = ("W", "Wl", "logrho", "lam1", "err1", "ky", "ent", "chaotic", "lin", "spec", "logmod")
    W, Wl, logrho, lam1, err1, ky, ent, chaotic, lin, spec, logmod = (data[k] for k in names)
    os.makedirs(out, exist_ok=True)
    dev = np.abs(spec - logmod)

    rows = []
    for i, g in enumerate(gains):
        for j in range(W.shape[0]):
            rows.append({"experiment": "tanh_edge", "n": n, "gain": g, "matrix": j, "lambda_max": lam1[i, j],
                         "lambda_max_stderr": err1[i, j], "log_rho_gW": lin[i, j], "kaplan_yorke": ky[i, j],
                         "entropy_rate": ent[i, j],
                         "steps": st["steps"], "warmup": st["warmup"]})
    for j in range(Wl.shape[0]):
        for c in range(n):
            rows.append({"experiment": "linear_spectrum", "n": n, "gain": 1.0, "matrix": j, "index": c,
                         "exponent": spec[j, c], "log_modulus": logmod[j, c], "steps": st["lin_steps"],
                         "warmup": st["lin_warmup"]})
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    text = storage.csv_text([{k: r.get(k, "") for k in keys} for r in rows])
    storage._atomic_write(os.path.join(out, "lyapunov_table.csv"), lambda f: f.write(text.encode()))

    fig_edge = os.path.join(out, "lyapunov_edge.png")
    fig_spec = os.path.join(out, "lyapunov_spectrum.png")
    _plot_edge(fig_edge, gains, lam1, lin, ky, n)
    _plot_spectrum(fig_spec, spec, logmod, n)

    g = np.array(gains)
    m1, s1 = lam1.mean(1), lam1.std(1, ddof=1)
    mk, sk = ky.mean(1), ky.std(1, ddof=1)
    g0 = _crossing(g, m1)
    gl = _crossing(g, lin.mean(1))
    below = g < (gl if gl is not None else 0.0)
    agree = float(np.abs(lam1 - lin)[below].max()) if below.any() else float("nan")
    ipk = int(np.argmax(mk))
    L = [f"## (e) The edge of chaos: Lyapunov spectra (rf.lyapunov, n = {n})", "",
         f"h_t = tanh(g W h_{{t-1}}), W Glorot (one fixed sample per matrix, {W.shape[0]} matrices), "
         "no input, "
         f"{st['steps']} steps of which {st['warmup']} warm-up, the full spectrum (k = n, QR every step). "
         f"Figures: lyapunov_edge.png, lyapunov_spectrum.png; numbers per matrix in lyapunov_table.csv.", "",
         "± is the standard deviation over matrices; 'chaotic' counts the matrices whose lambda_max exceeds "
         "3 "
         "batch-means standard errors of its own trajectory.", "",
         "| g | lambda_max (mean ± sd) | chaotic | log rho(gW) (mean) | Kaplan–Yorke dimension (mean ± sd) | "
         "entropy rate (mean) |", "|---|---|---|---|---|---|"]
    for i, gi in enumerate(gains):
        L.append(f"| {gi:g} | {m1[i]:.4f} ± {s1[i]:.4f} | {chaotic[i]}/{W.shape[0]} | {lin[i].mean():.4f} | "
                 f"{mk[i]:.2f} ± {sk[i]:.2f} | {ent[i].mean():.4f} |")
    L += ["", "Findings:", ""]
    if gl is not None:
        L.append(f"- The linear recurrence's log rho(gW) crosses 0 at g = {gl:.3f} (1/rho(W): rho(W) = "
                 f"{math.exp(logrho.mean()):.4f} on average, above 1 as for every finite Glorot matrix).")
    if below.any():
        L.append(f"- Below that gain the tanh network decays to its fixed point 0, where D_t -> I: its "
                 f"largest exponent equals log rho(gW) (largest difference {agree:.2e} over those gains and "
                 f"matrices).")
    allc = [gi for i, gi in enumerate(gains) if chaotic[i] == W.shape[0]]
    if g0 is not None:
        L.append(f"- The mean largest exponent of the tanh network crosses 0 (the edge of chaos) at "
                 f"g ≈ {g0:.3f} (linear interpolation between the gains run); near it some networks settle "
                 f"on periodic orbits "
                 f"(lambda_max = 0) and the spread between matrices is as large as the mean"
                 + (f"; every matrix is chaotic from g = {allc[0]:g} on" if allc else "") + ".")
        L.append(f"- Beyond the edge lambda_max grows far more slowly than log rho(gW): at "
                 f"g = {gains[-1]:g}, "
                 f"{m1[-1]:.4f} ± {s1[-1]:.4f} against {lin[-1].mean():.4f}.")
    else:
        L.append("- The mean largest exponent of the tanh network does not cross 0 over the gains run.")
    top = "the largest gain run" if ipk == len(gains) - 1 else f"g = {gains[ipk]:g}"
    zero = [gi for i, gi in enumerate(gains) if ky[i].max() == 0]
    L.append("- The Kaplan–Yorke dimension is 0 (every exponent negative, for every matrix) "
             + (f"up to g = {zero[-1]:g}" if zero else "at no gain run")
             + f", and largest at {top}: {mk[ipk]:.2f} ± {sk[ipk]:.2f} of n = {n} dimensions (the attractor "
             f"is much smaller than the phase space); the entropy rate grows to {ent[-1].mean():.4f} nats "
             f"per "
             f"step at g = {gains[-1]:g}.")
    L.append(f"- Linear Glorot recurrence, {Wl.shape[0]} matrices, {st['lin_steps']} steps: the {n} "
             f"exponents match the log-moduli of the eigenvalues, with multiplicity (complex pairs give "
             f"equal exponents): largest difference {dev.max():.2e}, mean {dev.mean():.2e} (the QR method "
             f"converges as 1/steps).")
    L.append("")
    return L, [fig_edge, fig_spec]


def _plot_edge(path, gains, lam1, lin, ky, n):
    plt = figures._plt()
    g = np.array(gains)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for j in range(lam1.shape[1]):
        ax.plot(g, lam1[:, j], color="C0", lw=0.6, alpha=0.4)
    ax.plot(g, lam1.mean(1), "C0o-", lw=1.8, label="tanh: largest Lyapunov exponent")
    ax.plot(g, lin.mean(1), "C3--", lw=1.5, label="linear: log rho(gW)")
    ax.axhline(0.0, color="k", lw=0.7, ls=":")
    ax.set_xlabel("gain g")
    ax.set_ylabel("per step (natural log)")
    ax.set_title(f"largest exponent, Glorot n={n} (thin: each matrix)", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[1]
    for j in range(ky.shape[1]):
        ax.plot(g, ky[:, j], color="C2", lw=0.6, alpha=0.4)
    ax.plot(g, ky.mean(1), "C2o-", lw=1.8)
    ax.set_xlabel("gain g")
    ax.set_ylabel("Kaplan–Yorke dimension")
    ax.set_title(f"attractor dimension (of n = {n})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_spectrum(path, spec, logmod, n):
    plt = figures._plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    idx = np.arange(1, n + 1)
    for j in range(spec.shape[0]):
        ax.plot(idx, logmod[j], "C3-", lw=1.0, alpha=0.7,
                label="log |eigenvalue| (LAPACK)" if j == 0 else None)
        ax.plot(idx, spec[j], "C0.", ms=4, label="Lyapunov exponents (rf.lyapunov)" if j == 0 else None)
    ax.axhline(0.0, color="k", lw=0.7, ls=":")
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("per step (natural log)")
    ax.set_title(f"linear Glorot recurrence, n = {n}: spectrum vs eigenvalue moduli", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
