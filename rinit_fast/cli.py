"""The ``rinit-fast`` command line (docs/cli.md).

    rinit-fast                      the main job: reproduce, with its defaults (./rinit-report)
    rinit-fast reproduce            the report of the core findings (docs/cli.md), a few minutes on a CPU
    rinit-fast sample-stats         sample a batch of every scheme, print its statistics against theory
    rinit-fast study CONFIG.toml    a Monte Carlo grid, chunked, resumable, on Dask if asked
    rinit-fast plot DIR             the standard figures of a study directory
    rinit-fast calibrate N P        the empirical rescaling with P(rho > 1) = 1 - P at width N

Subcommands are argparse subparsers: a new one is a function ``_add_<name>(sub)`` registered in
``_SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys


def _add_sample_stats(sub):
    p = sub.add_parser("sample-stats", help="sample a batch of every scheme and print its statistics "
                       "against theory (the default job)")
    p.add_argument("--n", type=int, default=256, help="matrices are n x n (default 256)")
    p.add_argument("--batch", type=int, default=4, help="matrices per scheme (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=_sample_stats)


def _sample_stats(args):
    import numpy as np
    from scipy import stats

    import rinit_fast as rf
    params = {"constant": {"value": 0.5}}
    print(f"rinit-fast {rf.__version__}: {args.batch} matrices of {args.n}x{args.n} per scheme, seed "
          f"{args.seed}, {args.dtype}, backend {args.backend}")
    print(f"{'scheme':<18}{'mean':>11}{'theory':>11}{'std':>11}{'theory':>11}{'KS p':>9}")
    worst = 1.0
    for name in rf.schemes():
        p = params.get(name, {})
        W = rf.sample(name, args.n, batch=args.batch, seed=args.seed, dtype=args.dtype, backend=args.backend,
                      **p)
        if args.backend == "cuda":
            W = W.get()
        x = np.asarray(W)
        if np.iscomplexobj(x):
            mean, std = abs(x.mean()), float(np.sqrt(np.mean(np.abs(x) ** 2)))
            parts = x.real.ravel()
        else:
            mean, std = float(x.mean()), float(x.std())
            parts = x.ravel()
        law = rf.scheme_law(name, args.n, **p)
        if law is not None:
            ks = stats.kstest(parts.astype(np.float64), law.cdf).pvalue
            worst = min(worst, ks)
            ks_s = f"{ks:9.3f}"
        else:
            ks_s = f"{'-':>9}"
        print(f"{name:<18}{mean:11.3e}{rf.scheme_mean(name, args.n, **p):11.3e}{std:11.4e}"
              f"{rf.scheme_std(name, args.n, **p):11.4e}{ks_s}")
    print("KS p: Kolmogorov-Smirnov test of the entries (real parts for complex schemes) against "
          "rf.scheme_law; '-' where the law is not per-entry (constant, orthogonal). Schemes of one family "
          "draw the same variates (common random numbers), hence equal p-values.")
    print("The full report of the spectral-edge findings: rinit-fast reproduce (a few minutes).")
    return 0


def _add_reproduce(sub):
    p = sub.add_parser("reproduce", help="write the report of the core findings (law of rho, recurrences, "
                       "gradient flow, depth profiles) to a directory")
    p.add_argument("--out", default="rinit-report", help="report directory (default ./rinit-report)")
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds (for tests)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_reproduce)


def _reproduce(args):
    from .studies.reproduce import reproduce
    reproduce(args.out, backend=args.backend, quick=args.quick, seed=args.seed,
              progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{args.out}/summary.md")
    return 0


def _add_study(sub):
    p = sub.add_parser("study", help="run or resume a Monte Carlo study from a TOML configuration "
                       "(docs/studies.md)")
    p.add_argument("config", help="the study's TOML file")
    p.add_argument("--out", required=True, help="the study directory (created, or resumed)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, help="start a local Dask cluster with N worker processes")
    g.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--chunk", type=int, help="matrices per chunk (does not change any result)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_study)


def _study(args):
    from .studies import run_study
    import os
    run_study(args.config, args.out, workers=args.workers, scheduler=args.scheduler, chunk=args.chunk,
              progress=not args.no_progress, load=False)
    with open(os.path.join(args.out, "summary.csv")) as f:  # written one cell at a time: any study size
        print(f.read(), end="")
    return 0


def _add_plot(sub):
    p = sub.add_parser("plot", help="write the standard figures of a study directory, chosen by what it "
                       "measured (docs/studies.md)")
    p.add_argument("dir", help="the study directory (rinit-fast study --out DIR)")
    p.add_argument("--out", help="where to write the figures (default DIR/figures)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help="figure format (default png)")
    p.set_defaults(func=_plot)


def _plot(args):
    from .studies import plot_study
    for f in plot_study(args.dir, args.out, format=args.format):
        print(f)
    return 0


def _add_calibrate(sub):
    p = sub.add_parser("calibrate", help="the scale s with P(rho(W/s) > 1) = 1 - p, by Monte Carlo")
    p.add_argument("n", type=int, help="width")
    p.add_argument("p", type=float, help="target probability that rho(W/s) <= 1")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheme", default="glorot_normal", help="glorot_normal (default) or complex_glorot")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=_calibrate)


def _calibrate(args):
    import rinit_fast as rf
    c = rf.calibrate(args.n, args.p, samples=args.samples, seed=args.seed, scheme=args.scheme,
                     confidence=args.confidence, backend=args.backend, progress=True)
    print(f"n={c.n} p={c.p} scale={c.scale:.6f} ci{int(round(100 * c.confidence))}=[{c.ci_low:.6f}, "
          f"{c.ci_high:.6f}] samples={c.samples} unconverged={c.unconverged}")
    if c.n >= rf.theory.MIN_N:
        print(f"asymptotic formula: s_n = {rf.theory.rescale_factor(c.n, p=c.p):.6f} (complex law), "
              f"{rf.theory.rescale_factor(c.n, p=c.p, field='real'):.6f} (real law)")
    return 0


_SUBCOMMANDS = [_add_sample_stats, _add_reproduce, _add_study, _add_plot, _add_calibrate]


def parser():
    p = argparse.ArgumentParser(prog="rinit-fast", description="rinit_fast: the science of weight "
                                "initialisation. Without a subcommand, runs sample-stats.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:  # the main job (BRIEF §3): reproduce the core findings on the CPU
        args = p.parse_args(["reproduce"])
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError, MemoryError) as exc:
        print(f"rinit-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
