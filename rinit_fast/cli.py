"""The ``rinit-fast`` command line (docs/cli.md).

    rinit-fast                      the main job: reproduce, with its defaults (./rinit-report)
    rinit-fast reproduce            the report of the core findings (docs/cli.md), a few minutes on a CPU
    rinit-fast sample-stats         sample a batch of every scheme, print its statistics against theory
    rinit-fast study CONFIG.toml    a Monte Carlo grid, chunked, resumable, on Dask if asked
    rinit-fast plot DIR             the standard figures of a study directory
    rinit-fast calibrate N P        the empirical rescaling with P(rho > 1) = 1 - P at width N
    rinit-fast compile              compile every CPU kernel ahead of time into Numba's cache

Subcommands are argparse subparsers: a new one is a function ``_add_<name>(sub)`` registered in
``_SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys


def _add_sample_stats(sub):
    p = sub.add_parser("sample-stats", help="sample a batch of every scheme and print its statistics "
                       "against theory")
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


def _add_compile(sub):
    p = sub.add_parser("compile", help="compile every CPU kernel ahead of time into Numba's on-disk cache "
                       "(container images, clusters: docs/performance.md)",
                       description="Compile the Numba CPU kernels ahead of time, filling the on-disk cache "
                       "(NUMBA_CACHE_DIR if set, else __pycache__ beside the installed kernels), so that "
                       "later processes load machine code instead of compiling it. See docs/performance.md.")
    p.add_argument("--family", default="", help="comma-separated kernel families (default: all): "
                   "sample, spectral, unroll, propagate")
    p.add_argument("--dtype", default="", help="comma-separated precisions (default: all): float32 "
                   "(with complex64), float64 (with complex128)")
    p.add_argument("--jobs", type=int, default=1, help="compile in N fresh processes (default 1; "
                   "0 = one per CPU)")
    p.add_argument("--list", action="store_true", help="list what would be compiled, compile nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="print each signature in full")
    p.set_defaults(func=_compile)


def _compile(args):
    import os
    import time

    import numba

    from .kernels.cpu import _jit
    fams = [f.strip() for f in args.family.split(",") if f.strip()] or None
    dts = [d.strip() for d in args.dtype.split(",") if d.strip()] or None
    if args.jobs < 0:
        raise ValueError(f"--jobs must be >= 0 (0 = one per CPU), got {args.jobs}")
    jobs = args.jobs or os.cpu_count() or 1
    chosen = _jit.select(fams, dts)  # validates --family and --dtype; imports the kernels, compiles nothing
    if args.list:
        for k, i in chosen:
            name = f"{k.module}.{k.py_func.__name__}"
            sig = _jit.signature_text(k.signatures[i])
            print(f"{k.family:<10} {name:<28} {k.precision(i) or 'any':<8} {sig}")
        return 0
    env = os.environ.get("NUMBA_CACHE_DIR")
    print(f"rinit-fast compile: Numba {numba.__version__}, CPU {numba.config.CPU_NAME or 'host'}, "
          f"NUMBA_CACHE_DIR={env if env else '(unset)'}, {jobs} process{'es' if jobs > 1 else ''}",
          flush=True)

    def log(r):
        sig = f"  {r['signature']}" if args.verbose else ""
        print(f"  {r['status']:<8} {r['cpu_s']:6.1f} s  {r['kernel']:<28} {r['precision'] or 'any':<8}{sig}",
              flush=True)

    c0, w0 = time.process_time(), time.perf_counter()
    recs = _jit.compile_selected(fams, dts, jobs=jobs, log=log)
    wall = time.perf_counter() - w0
    if not recs:
        print("nothing selected")
        return 0
    print(f"{'family':<12}{'signatures':>11}{'compiled':>10}{'cached':>8}{'CPU s':>9}")
    by = {}
    for r in recs:
        by.setdefault(r["family"], []).append(r)
    for fam, rs in by.items():
        print(f"{fam:<12}{len(rs):>11}{sum(r['status'] == 'compiled' for r in rs):>10}"
              f"{sum(r['status'] != 'compiled' for r in rs):>8}{sum(r['cpu_s'] for r in rs):>9.1f}")
    n_comp = sum(r["status"] == "compiled" for r in recs)
    cpu = sum(r["cpu_s"] for r in recs) if jobs > 1 else time.process_time() - c0
    print(f"{'total':<12}{len(recs):>11}{n_comp:>10}{len(recs) - n_comp:>8}{cpu:>9.1f}   ({wall:.1f} s wall)")
    for path in sorted({r["cache_path"] for r in recs}):
        print(f"cache directory: {path}")
    return 0


_SUBCOMMANDS = [_add_sample_stats, _add_reproduce, _add_study, _add_plot, _add_calibrate, _add_compile]


def parser():
    p = argparse.ArgumentParser(prog="rinit-fast", description="rinit_fast: the science of weight "
                                "initialisation. Without a subcommand, runs the main job: reproduce, with its defaults "
                                "(./rinit-report).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:  # the main job (docs/cli.md): reproduce the core findings on the CPU
        args = p.parse_args(["reproduce"])
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError, MemoryError) as exc:
        print(f"rinit-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
