"""Side-by-side spectral radius on this machine, in one run: rf.spectral_radius vs LAPACK, ARPACK, torch.

    python bench/compare_spectral.py [--repeat 5] [--quick] [--sizes 128,500,1024] [--batch 20]
    python bench/compare_spectral.py --validate 2000 [--sizes 64,128,256,500,1024]
    python bench/compare_spectral.py --model [--sizes 500] [--repeat 5]
    python bench/compare_spectral.py --sweep [--sizes 500] [--batch 20] [--repeat 3]
    python bench/compare_spectral.py --startup

Speed mode.  For a batch of real Glorot matrices (float32 and float64) at each size: milliseconds per
matrix (best and median of --repeat runs, wall clock; and the least process CPU time per matrix, all
threads) and accuracy (max and median relative error of the radius against float64 LAPACK ``eigvals``) of

- rf.spectral_radius, float32 and float64 input (2 threads, and 1 thread);
- numpy.linalg.eigvals on the stack (2 BLAS threads) and matrix by matrix on 2 Python threads with 1
  BLAS thread each (the faster way, anchors.md);
- scipy.sparse.linalg.eigs(k, tol=1e-4) for k = 1, 2, 4, 6 (ARPACK; matrix by matrix, one thread: ARPACK
  is not thread-safe);
- torch.linalg.eigvals (float64, its own threads), if torch is installed;
- a naive power loop, ||W^k x||^(1/k) with k = 1000 (torch bmm, float32, the whole batch at once; NumPy
  matmul if torch is absent).

``--anchors lapack`` keeps only the LAPACK anchor (matrix by matrix on 2 threads), for a quick side by
side at a large batch.  Ratios are anchor time / rinit_fast time (higher = we are faster).  The
float32/float64 GEMM and GEMV rates of the machine (1 and 2 BLAS threads) are printed first: the kernel
is a chain of GEMVs.

Validate mode.  --validate N: N fresh real Glorot matrices (glorot_normal/glorot_uniform, float32 and
float64, halved for every doubling of n above 256) and N/4 complex ones per size, default settings:
the fraction within 1e-4 of LAPACK, the flagged fraction, and the count of silent misses (error > 1e-4
with converged=True, which must be 0).  The VM is shared and noisy: compare ratios within one run.

Model mode.  --model: one thread, per phase on Glorot matrices, through the CPU backend's primitives
(kernels/cpu/spectral.py): a float32 filter product (GEMV + normalisation, timed inside the compiled
filter loop), a float64 product (the nilpotency confirmation's GEMV), an Arnoldi step (GEMV + CGS2, mean
over dimensions 0..40), a Rayleigh-Ritz check (the spec's ritz_check: NumPy eig + vectors) at dimension
16..40, the prep scan (scale, triangularity, float64 copy, Frobenius norm) and the isometry probe per
matrix; then the phase counts of rf.spectral_radius on a batch, the time they predict (sum of phases)
against the measured one-thread time, and the FLOP and byte counts.

Startup mode.  --startup: CPU seconds of the first rf.spectral_radius (float32, then float64, complex64)
and rf.spectral_norm (float32) in fresh processes with an empty NUMBA_CACHE_DIR, after warming the
stream's start-vector fill in the same process (compiled by rinit_fast.rng, not here), then the same with
the cache filled; beside them the NumPy/SciPy call a user would otherwise make (eigvals, norm(W, 2)).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

import rinit_fast as rf  # the installed package (pip install .), never the source tree's rinit_fast/
try:  # as bench.<script> (bench/compare.py) or as a script (bench/ on sys.path)
    from ._machine import machine
except ImportError:
    from _machine import machine


def timed(fn, repeat):
    """fn() after a warm-up, ``repeat`` times: (best, median) seconds of wall clock, least process CPU s."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), statistics.median(walls), min(cpus)


def blas_rates(repeat, ctl):
    """GFLOP/s of NumPy matmul 500x500x500 and of a 500x500 GEMV, float32/float64, 1 and 2 threads."""
    rng = np.random.default_rng(0)
    rows = []
    for dt in (np.float64, np.float32):
        a = rng.standard_normal((500, 500)).astype(dt)
        b = rng.standard_normal((500, 500)).astype(dt)
        x = rng.standard_normal(500).astype(dt)
        for label, fn, flop, reps in (("GEMM 500x500x500", lambda: np.matmul(a, b), 2 * 500 ** 3, 20),
                                      ("GEMV 500x500", lambda: a @ x, 2 * 500 ** 2, 2000)):
            res = []
            for th in (1, 2):
                with ctl.limit(limits=th, user_api="blas"):
                    best, _, _ = timed(lambda: [fn() for _ in range(reps)], repeat)
                res.append(reps * flop / best / 1e9)
            rows.append((np.dtype(dt).name, label, res[0], res[1]))
    return rows


def lapack_radius(W, threads=2):
    """float64 LAPACK eigvals radius of each matrix, on Python threads with 1 BLAS thread each."""
    from threadpoolctl import threadpool_limits
    wide = np.complex128 if np.iscomplexobj(W) else np.float64
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as ex:
        return np.array(list(ex.map(lambda w: np.abs(np.linalg.eigvals(w.astype(wide))).max(), W)))


def rel(est, exact):
    e = np.abs(np.asarray(est, dtype=np.float64) - exact) / exact
    return float(e.max()), float(np.median(e))


# --- the contenders: each returns the radii of the batch -----------------------------------------------
def ours(W, threads=None):
    def run():
        if threads is None:
            return rf.spectral_radius(W).radius
        old = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return rf.spectral_radius(W).radius
        finally:
            numba.set_num_threads(old)
    return run


def ours_each(W):
    """rf.spectral_radius called once per matrix (batch 1), on 2 threads."""
    return lambda: np.array([rf.spectral_radius(W[b]).radius for b in range(W.shape[0])])


def numpy_stacked(W, ctl):
    def run():
        with ctl.limit(limits=2, user_api="blas"):
            return np.abs(np.linalg.eigvals(W.astype(np.float64))).max(-1)
    return run


def numpy_threads(W):
    return lambda: lapack_radius(W, threads=2)


def arpack(W, k, ctl):
    from scipy.sparse.linalg import eigs

    def run():
        out = np.empty(W.shape[0])
        rng = np.random.default_rng(0)
        with ctl.limit(limits=1, user_api="blas"):
            for b in range(W.shape[0]):
                w = W[b].astype(np.float64)
                vals = eigs(w, k=k, which="LM", tol=1e-4, v0=rng.standard_normal(w.shape[0]),
                            return_eigenvectors=False)
                out[b] = np.abs(vals).max()
        return out
    return run


def torch_eigvals(torch, W):
    t = torch.from_numpy(W.astype(np.float64))
    return lambda: torch.linalg.eigvals(t).abs().amax(-1).numpy()


def power_loop(torch, W, steps=1000):
    """||W^k x||^(1/k), k = steps, float32, renormalised every step, the whole batch at once."""
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((W.shape[0], W.shape[1], 1)).astype(np.float32)
    if torch is not None:
        tw = torch.from_numpy(np.ascontiguousarray(W, dtype=np.float32))
        tx0 = torch.from_numpy(x0)

        def run():
            x = tx0 / tx0.norm(dim=1, keepdim=True)
            logg = torch.zeros(W.shape[0], dtype=torch.float64)
            for _ in range(steps):
                x = torch.bmm(tw, x)
                nx = x.norm(dim=1, keepdim=True)
                logg += nx[:, 0, 0].double().log()
                x = x / nx
            return (logg / steps).exp().numpy()
        return run
    w32 = np.ascontiguousarray(W, dtype=np.float32)

    def run_np():
        x = x0 / np.linalg.norm(x0, axis=1, keepdims=True)
        logg = np.zeros(W.shape[0])
        for _ in range(steps):
            x = np.matmul(w32, x)
            nx = np.linalg.norm(x, axis=1, keepdims=True)
            logg += np.log(nx[:, 0, 0])
            x = x / nx
        return np.exp(logg / steps)
    return run_np


def speed(args):
    try:
        import torch
    except ImportError:
        torch = None
    import scipy.linalg.cython_blas  # noqa: F401  (so that threadpoolctl sees every BLAS)
    from threadpoolctl import ThreadpoolController
    ctl = ThreadpoolController()
    repeat = 3 if args.quick else args.repeat
    print(f"# compare_spectral  {datetime.date.today()}  {machine()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch"))
    print(f"# ms per matrix: best (median) of {repeat} runs, wall clock; CPU = least process CPU time per "
          f"matrix (all threads); ratio = anchor / rinit_fast float32 (higher = we are faster); errors vs "
          f"float64 LAPACK eigvals")
    print("\n## BLAS rates: NumPy GFLOP/s (best)")
    print(f"{'dtype':8} {'work':>17} {'1 thread':>9} {'2 threads':>9}")
    for dt, label, g1, g2 in blas_rates(repeat, ctl):
        print(f"{dt:8} {label:>17} {g1:9.1f} {g2:9.1f}")

    for n in (int(s) for s in args.sizes.split(",")):
        B = max(2, int(args.batch * min(1.0, (500 / n) ** 2))) if n > 500 else args.batch
        if args.quick:
            B = max(2, B // 4)
        W32 = rf.sample("glorot_normal", n, batch=B, seed=2026, dtype="float32")
        W64 = W32.astype(np.float64)
        exact = lapack_radius(W64)
        cand = [("rinit_fast float32 input", ours(W32), repeat),
                ("rinit_fast float64 input", ours(W64), repeat),
                ("rinit_fast float32, 1 thread", ours(W32, threads=1), repeat),
                ("rinit_fast float32, one call per matrix", ours_each(W32), repeat),
                ("numpy eigvals, 2 thr x 1 BLAS", numpy_threads(W64), max(1, repeat // 2))]
        if args.anchors == "all":
            cand.insert(4, ("numpy eigvals, stacked (2 BLAS thr)", numpy_stacked(W64, ctl),
                            max(1, repeat // 2)))
        if n <= 600 and args.anchors == "all":
            cand += [(f"scipy eigs k={k} tol=1e-4 (1 thr)", arpack(W64, k, ctl), max(1, repeat // 2))
                     for k in (1, 2, 4, 6)]
        if torch is not None and n <= 600 and args.anchors == "all":
            cand.append(("torch.linalg.eigvals float64", torch_eigvals(torch, W64), max(1, repeat // 2)))
        if args.anchors == "all":
            cand.append((f"naive power loop k=1000 ({'torch bmm' if torch else 'numpy'} f32)",
                         power_loop(torch, W32), max(1, repeat // 2)))
        rows = []
        for name, fn, rep in cand:
            best, med, cpu = timed(fn, rep)
            mx, md = rel(fn(), exact)
            rows.append((name, best / B * 1e3, med / B * 1e3, cpu / B * 1e3, mx, md))
        r = rf.spectral_radius(W32)
        print(f"\n## n = {n}, batch {B} (load {os.getloadavg()[0]:.1f}): rinit_fast iterations mean "
              f"{r.iterations.mean():.0f} "
              f"(max {r.iterations.max()}), converged {r.converged.mean():.3f}")
        print(f"{'':40} {'ms/matrix':>9} {'(median)':>9} {'CPU ms':>7} {'ratio':>6} {'max err':>8} "
              f"{'med err':>8}")
        ref = rows[0][1]
        for name, best, med, cpu, mx, md in rows:
            ratio = "" if name.startswith("rinit") else f"{best / ref:6.1f}"
            print(f"{name:40} {best:9.2f} {med:9.2f} {cpu:7.2f} {ratio:>6} {mx:8.1e} {md:8.1e}")
    return 0


def validate(args):
    N = args.validate
    print(f"# compare_spectral --validate {N}  {datetime.date.today()}  {machine()}")
    print("# default settings; miss = rel. error > 1e-4 vs float64 LAPACK; silent = miss with converged=True")
    print(f"{'case':34} {'N':>6} {'within':>8} {'flagged':>8} {'silent':>6} {'max err':>8} {'q99.9':>8} "
          f"{'median':>8} {'its':>5} {'ms/mat':>7}")
    total = {"N": 0, "miss": 0, "silent": 0}
    for n in (int(s) for s in args.sizes.split(",")):
        k = max(1, N if n <= 256 else int(N * 256 / n))
        cases = [("glorot_normal", "float32", k), ("glorot_normal", "float64", k),
                 ("glorot_uniform", "float32", k), ("complex_glorot", "complex64", max(1, k // 4))]
        for scheme, dtype, count in cases:
            done = 0
            errs, conv, its, secs = [], [], [], 0.0
            while done < count:                      # chunks bound the memory at large n
                b = min(count - done, max(1, 200 * 256 * 256 // (n * n)))
                seed = 1000 + n
                W = rf.sample(scheme, n, batch=b, seed=seed,
                              start=done + (0 if dtype != "float64" else 10 ** 6), dtype=dtype)
                t0 = time.perf_counter()
                r = rf.spectral_radius(W, seed=seed, start=done)
                secs += time.perf_counter() - t0
                exact = lapack_radius(W)
                errs.append(np.abs(r.radius - exact) / exact)
                conv.append(r.converged)
                its.append(r.iterations)
                done += b
            err = np.concatenate(errs)
            cv = np.concatenate(conv)
            miss = err > 1e-4
            silent = int((miss & cv).sum())
            total["N"] += count
            total["miss"] += int(miss.sum())
            total["silent"] += silent
            print(f"{scheme + ' ' + dtype + f' n={n}':34} {count:6d} {1 - miss.mean():8.4f} "
                  f"{1 - cv.mean():8.4f} "
                  f"{silent:6d} {err.max():8.1e} {np.quantile(err, 0.999):8.1e} {np.median(err):8.1e} "
                  f"{np.concatenate(its).mean():5.0f} {secs / count * 1e3:7.2f}", flush=True)
    print(f"# total {total['N']} matrices: {total['miss']} outside 1e-4 ({total['miss'] / total['N']:.4%}), "
          f"{total['silent']} silent")
    return 0 if total["silent"] == 0 else 1


def model(args):
    from threadpoolctl import threadpool_limits
    repeat = args.repeat
    print(f"# compare_spectral --model  {datetime.date.today()}  {machine()}")
    print(f"# one thread, best of {repeat}; us = microseconds")
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            for n in (int(s) for s in args.sizes.split(",")):
                _model_one(n, repeat, args.batch)
    finally:
        numba.set_num_threads(old)
    return 0


def _best(fn, repeat):
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def _model_one(n, repeat, batch):
    from rinit_fast.kernels.cpu import spectral as kern
    from rinit_fast.spec import spectral as spec
    from rinit_fast.spectral import _start_vectors
    p0 = spec.default_filter_steps(n)
    m = spec.KRYLOV_DIM
    W = rf.sample("glorot_normal", n, batch=batch, seed=2026, dtype="float32")
    k = min(batch, 8)
    xs = _start_vectors(0, 0, k, n, 2, False, "cpu")
    st = kern.Stack(W[:k], xs)
    items = np.arange(k, dtype=np.int64)
    t_prep = _best(lambda: st.prep(True, True), repeat) / k
    t_iso = _best(lambda: st.isometry(items), repeat) / k
    st.arnoldi_init(m)
    steps = np.full(k, max(p0, 200), dtype=np.int64)
    done, _ = st.power(items, steps, source="start", low=True, settle=True)   # may stop early (settled)
    t32 = _best(lambda: st.power(items, steps, source="start", low=True, settle=True), repeat) / done.sum()
    t64 = _best(lambda: st.power(items, steps, source="start", low=False, settle=False), repeat) / steps.sum()
    q0 = st.Q[:, 0].copy()

    def arnoldi():
        st.Q[:] = 0.0
        st.H[:] = 0.0
        st.Q[:, 0] = q0
        st.arnoldi(items, np.zeros(k, dtype=np.int64), np.full(k, m), np.zeros(k))
    tarn = _best(arnoldi, repeat) / (k * m)
    hh = st.hessenberg(items)
    trr = {j: _best(lambda j=j: spec.ritz_check(hh, j), repeat) / k for j in (16, 24, 32, 40)}
    t_ours = _best(lambda: rf.spectral_radius(W), repeat) / batch
    r = rf.spectral_radius(W)
    its = r.iterations
    arn = its - spec.ISO_PRODUCTS - p0     # products of the Arnoldi phase (the filter never settles here)
    checks = np.array([sum(1 for c in (16, 24, 32, 40) if c <= a) + (a > 40) * (1 + (a - 41) // 8)
                       for a in arn])
    t_rr_mean = statistics.mean(trr.values())
    pred = t_prep + t_iso + p0 * t32 + arn.mean() * tarn + checks.mean() * t_rr_mean
    flop_f = p0 * 2 * n * n
    flop_k = (4 + arn.mean()) * 2 * n * n + sum(8 * j * n for j in range(1, int(arn.mean()) + 1))
    byte_f = p0 * 4 * n * n
    byte_k = (4 + arn.mean()) * 8 * n * n
    print(f"\n## n = {n} (load {os.getloadavg()[0]:.1f}): filter {p0} steps; batch {batch}: iterations mean "
          f"{its.mean():.1f} (Arnoldi {arn.mean():.1f}, max {arn.max()}), Rayleigh-Ritz checks mean "
          f"{checks.mean():.2f}, paths {sorted(set(map(str, r.path)))}, converged {r.converged.mean():.3f}")
    print(f"float32 filter product  {t32 * 1e6:8.1f} us  {2 * n * n / t32 / 1e9:5.1f} GFLOP/s "
          f"{4 * n * n / t32 / 1e9:5.1f} GB/s of matrix")
    print(f"float64 product         {t64 * 1e6:8.1f} us  {2 * n * n / t64 / 1e9:5.1f} GFLOP/s "
          f"{8 * n * n / t64 / 1e9:5.1f} GB/s of matrix")
    print(f"Arnoldi step (mean j<={m}) {tarn * 1e6:6.1f} us")
    print("Rayleigh-Ritz check     " + "  ".join(f"j={j}: {t * 1e6:.0f} us" for j, t in trr.items()))
    print(f"prep scan + copy        {t_prep * 1e6:8.1f} us per matrix; isometry probe {t_iso * 1e6:.1f} us")
    print(f"predicted per matrix    {pred * 1e3:8.2f} ms = prep {t_prep * 1e3:.2f} + probe "
          f"{t_iso * 1e3:.2f} + "
          f"filter {p0 * t32 * 1e3:.2f} + Arnoldi {arn.mean() * tarn * 1e3:.2f} + checks "
          f"{checks.mean() * t_rr_mean * 1e3:.2f}")
    print(f"measured (1 thread)     {t_ours * 1e3:8.2f} ms per matrix (batch {batch}, best of {repeat})")
    print(f"work per matrix: filter {flop_f / 1e6:.0f} MFLOP / {byte_f / 1e6:.0f} MB, float64 part "
          f"{flop_k / 1e6:.1f} MFLOP / {byte_k / 1e6:.0f} MB (matrix bytes streamed per product)")


def sweep(args):
    from threadpoolctl import threadpool_limits
    print(f"# compare_spectral --sweep  {datetime.date.today()}  {machine()}")
    print(f"# one thread, ms per matrix best of {args.repeat}; err = max relative error vs float64 LAPACK")
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            for n in (int(s) for s in args.sizes.split(",")):
                W = rf.sample("glorot_normal", n, batch=args.batch, seed=2027, dtype="float32")
                exact = lapack_radius(W)
                p0 = int(round(12 * math.sqrt(n)))
                print(f"\n## n = {n}, batch {args.batch} (default filter {p0}, krylov_dim 40)")
                print(f"{'filter':>6} {'m':>4} {'tol':>6} {'ms/mat':>7} {'products':>8} {'conv':>5} "
                      f"{'max err':>8}")
                grid = [(f, 40, 1e-4) for f in (0, 50, 100, 150, 200, p0, 300, 400)]
                grid += [(0, m, 1e-4) for m in (80, 130, 160)]
                grid += [(f, 40, 1e-6) for f in (0, p0)] + [(0, 160, 1e-6)]
                for f, m, tol in grid:
                    kw = dict(filter_steps=f, krylov_dim=m, tol=tol)
                    t = _best(lambda: rf.spectral_radius(W, **kw), args.repeat) / args.batch
                    r = rf.spectral_radius(W, **kw)
                    err = np.abs(r.radius - exact) / exact
                    print(f"{f:6d} {m:4d} {tol:6.0e} {t * 1e3:7.2f} {r.iterations.mean():8.0f} "
                          f"{r.converged.mean():5.2f} {err.max():8.1e}", flush=True)
    finally:
        numba.set_num_threads(old)
    return 0


_STARTUP = """
import sys, time
import numpy as np
import rinit_fast as rf
what, dt = sys.argv[1], sys.argv[2]
scheme = "complex_glorot" if dt.startswith("complex") else "glorot_normal"
W = rf.sample(scheme, 64, batch=4, seed=1, dtype=dt)
rf.rng.normals(0, rf.rng.Purpose.START, count=8, dtype="float64")   # the stream fill: not ours
fn = rf.spectral_radius if what == "radius" else rf.spectral_norm
c0 = time.process_time()
fn(W)
c1 = time.process_time()
ref = (lambda: np.linalg.eigvals(W[0])) if what == "radius" else (lambda: np.linalg.norm(W[0], 2))
ref()
print(c1 - c0, time.process_time() - c1)
"""


def startup(args):
    import subprocess
    import tempfile
    print(f"# compare_spectral --startup  {datetime.date.today()}  {machine()}")
    print("# CPU seconds of the first call in a fresh process (4 matrices, n = 64) after warming the stream "
          "fill, each row with its own empty NUMBA_CACHE_DIR, then again with it filled; 'then' = the first "
          "call of the next dtype in the same cache (only what it adds); NumPy = the first numpy call a user "
          "would otherwise make (eigvals / norm(W, 2)), same process")

    def first(what, dt, env):
        out = subprocess.run([sys.executable, "-c", _STARTUP, what, dt], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        return float(out[0]), float(out[1])
    print(f"{'call':28} {'empty cache':>11} {'filled':>8} {'NumPy':>7} {'then':>28}  load")
    for what, dt, then in (("radius", "float32", "float64"), ("radius", "complex64", "complex128"),
                           ("norm", "float32", "float64"), ("norm", "complex128", "complex64")):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            cold, _ = first(what, dt, env)
            warm, ref = first(what, dt, env)
            nxt, _ = first(what, then, env)
        nxt = f"{then} {nxt:.2f}"
        print(f"{'spectral_' + what + ' ' + dt:28} {cold:11.2f} {warm:8.2f} {ref:7.3f} {nxt:>28}"
              f"  {os.getloadavg()[0]:.1f}", flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default=None, help="comma-separated n (speed: 128,500,1024; validate: "
                                                  "64,128,256,500,1024; model, sweep: 500)")
    ap.add_argument("--batch", type=int, default=20, help="matrices per timing at n <= 500")
    ap.add_argument("--quick", action="store_true", help="3 repeats, a quarter of the batch")
    ap.add_argument("--validate", type=int, default=0, metavar="N", help="accuracy sweep instead of speed")
    ap.add_argument("--model", action="store_true", help="per-phase costs against the measured time")
    ap.add_argument("--sweep", action="store_true", help="filter length and Krylov dimension sweep")
    ap.add_argument("--startup", action="store_true", help="first-call CPU seconds, empty and filled cache")
    ap.add_argument("--anchors", choices=("all", "lapack"), default="all", help="speed: anchors to time")
    args = ap.parse_args(argv)
    if args.startup:
        return startup(args)
    if args.model:
        args.sizes = args.sizes or "500"
        return model(args)
    if args.sweep:
        args.sizes = args.sizes or "500"
        args.repeat = min(args.repeat, 3)
        return sweep(args)
    if args.validate:
        args.sizes = args.sizes or "64,128,256,500,1024"
        return validate(args)
    args.sizes = args.sizes or "128,500,1024"
    return speed(args)


if __name__ == "__main__":
    sys.exit(main())
