"""Side-by-side unroll speed on this machine, in one run: rf.unroll vs NumPy and torch loops doing the same
work.

    python bench/compare_unroll.py [--repeat 5] [--quick] [--sizes 500,64] [--realizations 50]
    python bench/compare_unroll.py --compile      # first-call compile time of each variant instead

The work, per step, for R realisations of a float32 linear RNN h_t = W h_{t-1} + x_t, x_t ~ N(0, I):
draw the n·R inputs, one (n x n)·(n x R) product, the add, and log||h_t|| of every realisation (what
rf.unroll records with record_every=1).  The loops keep H as an (n, R) array and draw X with NumPy's
Generator (float32, in place) or torch's ``normal_``; the matmul alone (NumPy and torch, no inputs, no
norms) is the ceiling such loops approach.  rf.unroll is also timed with one thread, without inputs
(||W^k h0||), with the tangent and with tanh.  The GEMM ceiling of the machine (float32/float64 matmul,
1 and 2 BLAS threads) is printed first.  Figures are steps per second: best and median of --repeat runs
(wall clock), and the least CPU time per step of the process (all threads); the VM is shared and noisy,
so compare ratios within one run.

``--compile`` measures what the first call of each variant costs instead (issue 11: the first float32
call <= 3 CPU s with an empty cache, <= 0.3 s cached): a fresh ``python -P`` process in an empty directory
with an empty ``NUMBA_CACHE_DIR`` first draws a few float32 and float64 normals (``rf.rng.normals``: the
stream body, shared with sampling, stays out of the figures), then times the first call of each variant
in turn (CPU seconds of the process, all threads); a second process does the same with the cache the
first one filled.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numba
import numpy as np

import rinit_fast as rf
try:  # as bench.<script> (bench/compare.py) or as a script (bench/ on sys.path)
    from ._machine import load_averages, machine
except ImportError:
    from _machine import load_averages, machine


def timed(fn, steps, repeat):
    """``fn(steps)`` timed ``repeat`` times after a warm-up: (best, median) steps per second of wall
    clock, and the least CPU time of the process per step, in µs (all its threads: the work done, which
    other users of the machine disturb less than the wall clock)."""
    fn(max(2, steps // 20))
    rates, cpus = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn(steps)
        rates.append(steps / (time.perf_counter() - t0))
        cpus.append((time.process_time() - c0) / steps * 1e6)
    return max(rates), statistics.median(rates), min(cpus)


def blas_ceiling(repeat, ctl):
    """GFLOP/s of NumPy matmul: square 1536³ and the unroll shapes, float32/float64, 1 and 2 threads."""
    rows = []
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        for shape in ((1536, 1536, 1536), (500, 500, 50), (64, 64, 50)):
            m, k, nn = shape
            a = rng.standard_normal((m, k)).astype(dt)
            b = rng.standard_normal((k, nn)).astype(dt)
            c = np.empty((m, nn), dt)
            flop = 2.0 * m * k * nn
            reps = max(1, int(2e9 / flop))
            res = []
            for th in (1, 2):
                with ctl.limit(limits=th, user_api="blas"):
                    best, _, _ = timed(lambda s: [np.matmul(a, b, out=c) for _ in range(s)], reps, repeat)
                res.append(best * flop / 1e9)
            rows.append((np.dtype(dt).name, "x".join(map(str, shape)), res[0], res[1]))
    return rows


def numpy_loop(W, R, seed=0):
    n = W.shape[0]
    rng = np.random.default_rng(seed)
    H = np.zeros((n, R), np.float32)
    T = np.empty_like(H)
    X = np.empty_like(H)

    def run(steps):
        nonlocal H, T
        H[:] = 0
        rec = np.empty((steps, R))
        for t in range(steps):
            rng.standard_normal(out=X, dtype=np.float32)
            np.matmul(W, H, out=T)
            T += X
            H, T = T, H
            rec[t] = np.log(np.linalg.norm(H, axis=0))
        return rec
    return run


def numpy_matmul(W, R):
    H = np.ones((W.shape[0], R), np.float32)
    T = np.empty_like(H)

    def run(steps):
        for _ in range(steps):
            np.matmul(W, H, out=T)
    return run


def torch_loop(torch, W, R, threads=None):
    Wt = torch.from_numpy(W)
    n = W.shape[0]
    H = torch.zeros((n, R))
    T = torch.empty_like(H)
    X = torch.empty_like(H)

    def run(steps):
        nonlocal H, T
        H.zero_()
        rec = torch.empty((steps, R))
        old = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                for t in range(steps):
                    X.normal_()
                    torch.addmm(X, Wt, H, out=T)
                    H, T = T, H
                    torch.log(torch.linalg.vector_norm(H, dim=0), out=rec[t])
        finally:
            torch.set_num_threads(old)
        return rec
    return run


def one_blas_thread(ctl, fn):
    def run(steps):
        with ctl.limit(limits=1, user_api="blas"):
            return fn(steps)
    return run


def torch_matmul(torch, W, R):
    Wt = torch.from_numpy(W)
    H = torch.ones((W.shape[0], R))
    T = torch.empty_like(H)

    def run(steps):
        for _ in range(steps):
            torch.mm(Wt, H, out=T)
    return run


def engine(W, R, threads=None, **kw):
    def run(steps):
        old = numba.get_num_threads()
        if threads:
            numba.set_num_threads(threads)
        try:
            return rf.unroll(W, steps, realizations=R, **kw)
        finally:
            numba.set_num_threads(old)
    return run


# variant -> the call (after "W32/W64 = a 20 x 20 Glorot pair"), in the order they are timed
COMPILE_CASES = (
    ("float32, Gaussian inputs, linear (the first call)", "rf.unroll(W32, 10, realizations=3)"),
    ("float32, tanh", "rf.unroll(W32, 10, realizations=3, nonlinearity='tanh')"),
    ("float32, relu", "rf.unroll(W32, 10, realizations=3, nonlinearity='relu')"),
    ("float32, tangent", "rf.unroll(W32, 10, realizations=3, tangent=True)"),
    ("float32, tanh + tangent", "rf.unroll(W32, 10, realizations=3, tangent=True, nonlinearity='tanh')"),
    ("float32, inputs=None", "rf.unroll(W32, 10, realizations=3, inputs=None)"),
    ("float32, inputs array, U, b", "rf.unroll(W32, 10, realizations=3, inputs=np.ones((10, 5), np.float32), "
                                    "U=np.ones((20, 5), np.float32) / 5, b=np.ones(20, np.float32))"),
    ("float64, Gaussian inputs, linear", "rf.unroll(W64, 10, realizations=3)"),
    ("float64, tanh + tangent", "rf.unroll(W64, 10, realizations=3, tangent=True, nonlinearity='tanh')"),
)

_CHILD = """
import json, time
import numpy as np
import rinit_fast as rf
rf.rng.normals(0, rf.rng.Purpose.INPUTS, count=8, dtype="float32")
rf.rng.normals(0, rf.rng.Purpose.INPUTS, count=8, dtype="float64")
W32 = (0.9 * np.random.default_rng(1).standard_normal((2, 20, 20)) / 20 ** 0.5).astype(np.float32)
W64 = W32.astype(np.float64)
out = []
for call in CALLS:
    c = time.process_time()
    eval(call)
    out.append(time.process_time() - c)
print(json.dumps(out))
"""


def compile_times():
    """CPU seconds of the first call of each COMPILE_CASES variant: (cold, cached) lists."""
    cache = tempfile.mkdtemp(prefix="rf-numba-cache-")
    cwd = tempfile.mkdtemp(prefix="rf-compile-")
    code = "CALLS = " + repr([c for _, c in COMPILE_CASES]) + "\n" + textwrap.dedent(_CHILD)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    try:
        runs = []
        for _ in range(2):
            r = subprocess.run([sys.executable, "-P", "-c", code], cwd=cwd, env=env, capture_output=True,
                               text=True, check=True)
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        return runs
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(cwd, ignore_errors=True)


def main_compile():
    print(f"# compare_unroll --compile  {datetime.date.today()}  {machine()}")
    print(f"# load average (1, 5, 15 min) at start: {load_averages()}")
    cold, warm = compile_times()
    print("# CPU seconds of the first call of each variant, in this order, in one fresh process (empty "
          "Numba cache; the stream body compiled beforehand), then in a second one (cache filled)")
    print(f"{'':52} {'cold':>6} {'cached':>7}")
    for (name, _), c, w in zip(COMPILE_CASES, cold, warm):
        print(f"{name:52} {c:6.2f} {w:7.2f}")
    print(f"{'all':52} {sum(cold):6.2f} {sum(warm):7.2f}")
    print(f"# load average (1, 5, 15 min) at end: {load_averages()}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="500,64")
    ap.add_argument("--realizations", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="fewer steps and 3 repeats")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the BLAS GEMM ceiling")
    ap.add_argument("--compile", action="store_true", help="first-call compile time of each variant instead")
    args = ap.parse_args(argv)
    if args.compile:
        return main_compile()
    repeat = 3 if args.quick else args.repeat
    R = args.realizations
    try:
        import torch
    except ImportError:
        torch = None
    import scipy.linalg.cython_blas  # noqa: F401  (so that threadpoolctl sees every BLAS)
    from threadpoolctl import ThreadpoolController
    ctl = ThreadpoolController()
    print(f"# compare_unroll  {datetime.date.today()}  {machine()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch"))
    print(f"# load average (1, 5, 15 min) at start: {load_averages()}")
    print(f"# steps/s, best (median) of {repeat} runs, wall clock; ratio = rinit_fast / anchor "
          f"(higher = we are faster); CPU us/step = least process CPU time per step (all threads), its "
          f"ratio = anchor / rinit_fast; float32, R = {R}")
    if not args.no_ceiling:
        print("\n## GEMM ceiling: NumPy matmul GFLOP/s (best)")
        print(f"{'dtype':8} {'m x k x n':>15} {'1 thread':>9} {'2 threads':>9}")
        for dt, shape, g1, g2 in blas_ceiling(repeat, ctl):
            print(f"{dt:8} {shape:>15} {g1:9.1f} {g2:9.1f}")

    for n in (int(s) for s in args.sizes.split(",")):
        # Glorot, scaled to spectral radius 0.95 (at n = 64 a gain of 0.9 alone can leave rho > 1 and the
        # plain loops overflow to inf/NaN); the work does not depend on W
        W = rf.sample("glorot_normal", n, seed=7, dtype="float64")
        W = (W * (0.95 / np.abs(np.linalg.eigvals(W)).max())).astype(np.float32)
        scale = 500 / n
        es = int(1500 * scale ** 2 / (10 if args.quick else 1))      # engine steps per timing
        ls = max(20, int(300 * scale / (10 if args.quick else 1)))  # loop steps per timing
        flop = 2.0 * n * n * R
        rows = []
        cand = [("rf.unroll (gaussian inputs)", engine(W, R), es),
                ("rf.unroll, 1 thread", engine(W, R, threads=1), es),
                ("rf.unroll inputs=None (||W^k h0||)", engine(W, R, inputs=None), es),
                ("rf.unroll tangent=True", engine(W, R, tangent=True), es // 2),
                ("rf.unroll tanh", engine(W, R, nonlinearity="tanh"), es // 4),
                ("NumPy loop (Generator + matmul + norms)", numpy_loop(W, R), ls),
                ("NumPy loop, 1 BLAS thread", one_blas_thread(ctl, numpy_loop(W, R)), ls),
                ("NumPy matmul alone", numpy_matmul(W, R), 4 * ls)]
        if torch is not None:
            cand += [("torch loop (normal_ + addmm + norms)", torch_loop(torch, W, R), ls),
                     ("torch loop, 1 thread", torch_loop(torch, W, R, threads=1), ls),
                     ("torch mm alone", torch_matmul(torch, W, R), 4 * ls)]
        for name, fn, steps in cand:
            best, med, cpu = timed(fn, max(steps, 10), repeat)
            rows.append((name, best, med, cpu))
        ours, ours_cpu = rows[0][1], rows[0][3]
        print(f"\n## n = {n}, R = {R}: {flop / 1e6:.2f} MFLOP of product per step")
        print(f"{'':42} {'steps/s':>9} {'(median)':>9} {'GFLOP/s':>8} {'ratio':>6} {'CPU us/step':>11} "
              f"{'ratio':>6}")
        for name, best, med, cpu in rows:
            ratio = "" if name.startswith("rf.") else f"{ours / best:6.2f}"
            cratio = "" if name.startswith("rf.") else f"{cpu / ours_cpu:6.2f}"
            print(f"{name:42} {best:9.0f} {med:9.0f} {best * flop / 1e9:8.1f} {ratio:>6} {cpu:11.1f} "
                  f"{cratio:>6}")
    print(f"\n# load average (1, 5, 15 min) at end: {load_averages()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
