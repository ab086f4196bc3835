"""Side-by-side sampling speed on this machine, in one run: rinit_fast vs NumPy's Generator and torch.

    python bench/compare_sampling.py [--values 2**25] [--repeat 7] [--ortho-batch 16]

Prints ns/value (best and median of --repeat runs) for N(0,1) and U(-1,1) in float32 and float64, and
ms/matrix for orthogonal 500x500 float32, with the ratio of each anchor to rinit_fast.  Every library
fills a preallocated buffer (no allocation in the timed region); JIT compilation is done before timing.
The GPU twin is bench/compare_sampling_cuda.py.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import os
import statistics
import time

import numba
import numpy as np

import rinit_fast as rf
try:  # as bench.<script> (bench/compare.py) or as a script (bench/ on sys.path)
    from ._machine import machine
except ImportError:
    from _machine import machine


def timeit(fn, repeat):
    fn()  # warm-up (JIT, page faults)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=lambda s: int(eval(s, {})), default=2 ** 25)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--ortho-batch", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="2**22 values, 3 repeats, 4 orthogonal matrices")
    args = ap.parse_args(argv)
    if args.quick:
        args.values, args.repeat, args.ortho_batch = 2 ** 22, 3, 4
    N, R = args.values, args.repeat
    try:
        import torch
    except ImportError:
        torch = None
    print(f"# compare_sampling  {datetime.date.today()}  {machine()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch"))
    print(f"# {N} values per call, best/median of {R}; ratio = anchor time / rinit_fast time (higher = we are faster)")
    nthreads = os.cpu_count() or 1
    gens = [np.random.default_rng(s) for s in range(nthreads)]
    pool = cf.ThreadPoolExecutor(nthreads)

    def numpy_mt(method, buf, **kw):
        parts = np.array_split(buf, nthreads)
        list(pool.map(lambda gp: getattr(gp[0], method)(out=gp[1], **kw), zip(gens, parts)))

    rows = []
    for dtype in ("float32", "float64"):
        buf = np.empty(N, dtype)
        side = int(np.sqrt(N))
        mat = np.empty((N // (side * side), side, side), dtype)  # what rf.sample fills
        for kind in ("normal", "uniform"):
            scheme = "normal" if kind == "normal" else "uniform"
            def ours():
                rf.sample(scheme, side, batch=mat.shape[0], seed=1, dtype=dtype, out=mat)
            t_ours = timeit(ours, R)
            n_ours = mat.size
            res = [("rinit_fast (%d threads)" % numba.get_num_threads(), t_ours, n_ours)]
            numba.set_num_threads(1)
            res.append(("rinit_fast (1 thread)", timeit(ours, R), n_ours))
            numba.set_num_threads(nthreads)
            g = gens[0]
            dt = np.dtype(dtype)
            if kind == "normal":
                res.append(("numpy Generator (1 thread)",
                            timeit(lambda: g.standard_normal(out=buf, dtype=dt), R), N))
                res.append((f"numpy Generator ({nthreads} threads)",
                            timeit(lambda: numpy_mt("standard_normal", buf, dtype=dt), R), N))
            else:
                def np_uniform():
                    g.random(out=buf, dtype=dt)
                    np.multiply(buf, 2, out=buf)
                    np.subtract(buf, 1, out=buf)
                res.append(("numpy Generator (1 thread, random*2-1)", timeit(np_uniform, R), N))
                res.append((f"numpy Generator ({nthreads} threads, random only)",
                            timeit(lambda: numpy_mt("random", buf, dtype=dt), R), N))
            if torch is not None:
                tb = torch.from_numpy(buf)
                fn = (lambda: tb.normal_()) if kind == "normal" else (lambda: tb.uniform_(-1, 1))
                res.append((f"torch {kind}_ ({torch.get_num_threads()} threads)", timeit(fn, R), N))
            for name, (best, med), n in res:
                rows.append((f"{kind} {dtype}", name, best / n * 1e9, med / n * 1e9,
                             (best / n) / (t_ours[0] / n_ours)))
    # orthogonal 500x500 float32
    B = args.ortho_batch
    q = np.empty((B, 500, 500), np.float32)
    t_ours = timeit(lambda: rf.sample("orthogonal", 500, batch=B, seed=3, out=q), max(3, R // 2))
    res = [("rinit_fast", t_ours)]
    g = np.random.default_rng(0)
    G = g.standard_normal((B, 500, 500)).astype(np.float32)
    res.append(("numpy stacked QR float32 (no sign fix)", timeit(lambda: np.linalg.qr(G), max(3, R // 2))))
    if torch is not None:
        tq = torch.empty(500, 500)
        def torch_orth():
            for _ in range(B):
                torch.nn.init.orthogonal_(tq)
        res.append(("torch orthogonal_", timeit(torch_orth, max(3, R // 2))))
    for name, (best, med) in res:
        rows.append(("orthogonal 500 f32", name, best / B * 1e3, med / B * 1e3, best / t_ours[0]))
    print(f"{'work':<20} {'library':<40} {'best':>9} {'median':>9} {'ratio':>7}")
    for work, name, best, med, ratio in rows:
        unit = "ms/mat" if work.startswith("orthogonal") else "ns/val"
        print(f"{work:<20} {name:<40} {best:9.3f} {med:9.3f} {ratio:7.2f}  {unit}")


if __name__ == "__main__":
    main()
