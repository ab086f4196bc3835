"""One command for every side-by-side comparison: runs bench/compare_*.py in one process, in turn.

    python bench/compare.py [--only sampling,spectral,lyapunov] [--quick]

Each script times rinit_fast and the anchors people use today (NumPy, SciPy eigvals/eigs, torch, CuPy
when present; NumPy/SciPy QR loops for the Lyapunov spectra of compare_lyapunov.py) on the same work in the
same run and prints times and ratios; this driver prints the
machine first and forwards ``--quick`` to scripts that accept it.  Results for this project's machines
are kept, dated, in bench/RESULTS.md.
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


def describe_machine():
    from _machine import machine  # bench/ is this script's directory
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
    sys.path.insert(0, os.path.dirname(HERE))
    return sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("compare_"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated names, e.g. sampling,spectral")
    ap.add_argument("--quick", action="store_true", help="smaller sizes/repeats where a script supports it")
    args = ap.parse_args(argv)
    print(describe_machine(), flush=True)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    failed = []
    for name in scripts():
        short = name[len("compare_"):]
        if wanted and short not in wanted:
            continue
        print(f"\n## {short}  (bench/{name}.py)", flush=True)
        mod = importlib.import_module(f"bench.{name}")
        fn_args = []
        if args.quick and "--quick" in inspect.getsource(mod):
            fn_args = ["--quick"]
        t0 = time.perf_counter()
        try:
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
