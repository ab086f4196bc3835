"""One command for every side-by-side comparison: runs bench/compare_*.py in one process, in turn.

    python bench/compare.py [--only sampling,spectral,lyapunov] [--quick]

Each script times rinit_fast and the anchors people use today (NumPy, SciPy eigvals/eigs, torch, CuPy
when present; compare_frameworks: rinit_fast.torch/.jax against torch's and JAX's own initialisers of
real models; NumPy/SciPy QR loops for the Lyapunov spectra of compare_lyapunov.py) on the same work in the
same run and prints times and ratios; this driver prints the
machine first and forwards ``--quick`` to scripts that accept it.  Results for this project's machines
are kept, dated, in bench/RESULTS.md.

The scripts import the *installed* rinit_fast (``pip install .``, or ``pip install -e .`` for
development): run them as files (``python bench/compare.py``), which puts only ``bench/`` on
``sys.path``.  Nothing here adds the repository root, whose ``rinit_fast/`` has no ``kernels/`` (they
are installed as ``rinit_fast.kernels``).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import os
import pkgutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _bench_module(name):
    """A module of bench/: ``bench.<name>`` under ``python -m bench.compare``, else ``<name>`` (bench/ is
    the script's directory, first on sys.path)."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def check_installed():
    """The rinit_fast that the scripts will import must carry its kernels (an installed package)."""
    import importlib.util
    spec = importlib.util.find_spec("rinit_fast")
    if spec is None:
        sys.exit("rinit_fast is not installed: run `pip install .` in the repository first")
    try:  # imports rinit_fast itself (no kernel); an editable install maps kernels/ in through its finder
        kernels = importlib.util.find_spec("rinit_fast.kernels")
    except ImportError:
        kernels = None
    if kernels is None:
        sys.exit(f"the rinit_fast found first on sys.path ({spec.origin}) has no kernels: it is the source "
                 f"tree, not the installed package. Run `python bench/compare.py` (not `python -m "
                 f"bench.compare`) after `pip install .`")


def describe_machine():
    machine = _bench_module("_machine").machine
    lines = [f"date {datetime.datetime.now().isoformat(timespec='minutes')}",
             f"cpu {machine()}"]
    try:
        import torch
        lines.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        lines.append("torch: not installed")
    try:
        import cupy
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        lines.append(f"gpu {props['name'].decode()} (CuPy {cupy.__version__})")
    except Exception:
        lines.append("gpu: none (CUDA comparisons skipped)")
    return "\n".join("# " + s for s in lines)


def scripts():
    return sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("compare_"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated names, e.g. sampling,spectral")
    ap.add_argument("--quick", action="store_true", help="smaller sizes/repeats where a script supports it")
    args = ap.parse_args(argv)
    check_installed()
    print(describe_machine(), flush=True)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(wanted) - {s[len("compare_"):] for s in scripts()})
    if unknown:
        ap.error(f"--only: no bench/compare_{unknown[0]}.py; choose from "
                 f"{', '.join(s[len('compare_'):] for s in scripts())}")
    failed = []
    for name in scripts():
        short = name[len("compare_"):]
        if wanted and short not in wanted:
            continue
        print(f"\n## {short}  (bench/{name}.py)", flush=True)
        t0 = time.perf_counter()
        try:
            mod = _bench_module(name)
            fn_args = ["--quick"] if args.quick and "--quick" in inspect.getsource(mod) else []
            mod.main(fn_args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                failed.append(short)
        except Exception as exc:  # keep going: one missing anchor must not hide the others
            print(f"!! {short} failed: {type(exc).__name__}: {exc}", flush=True)
            failed.append(short)
        print(f"# ({short}: {time.perf_counter() - t0:.0f} s)", flush=True)
    if failed:
        print(f"\n!! failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
