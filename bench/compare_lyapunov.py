"""Side-by-side Lyapunov-spectrum speed on this machine, in one run: rf.lyapunov vs NumPy/SciPy loops doing
the same algorithm (Benettin's QR method, the same re-orthonormalisation interval: every step), float32.

    python bench/compare_lyapunov.py [--quick] [--repeat 3] [--steps 10000] [--batch 50]

Per step and matrix, both do: (tanh) the state update h = tanh(W h + x_t) with x_t ~ N(0, I), D = 1 - h²;
the product D·(W Q) (n x n by n x k); a QR of it with Q formed explicitly; the logs of |diag R| added to
the sums.  The NumPy/SciPy anchors:

* "SciPy LAPACK loop": one network at a time (as the published codes do), xGEQRF + xORGQR called through
  scipy.linalg.lapack with preallocated work space (faster than np.linalg.qr: less wrapping);
* "NumPy batched": every matrix at once per step, np.matmul and np.linalg.qr on (batch, n, k) stacks;

each with 1 and with 2 BLAS threads (on a busy machine the threaded BLAS can be much slower).

The anchors are timed on a few matrices and fewer steps (their cost is linear in both) and projected to the
full workload; rf.lyapunov runs the full workload (--batch matrices, --steps steps) on 2 threads and on 1.
Wall-clock figures depend on how much of the two cores the process gets (the load average is printed);
the CPU time per matrix-step (all threads) is the work done and moves much less.

Also printed: the machine's GEMM ceiling (NumPy sgemm/dgemm 1536³, 1 and 2 BLAS threads), and the two
parts of a step at n = 64 (k = 64) and n = 256 (k = 32, 256): the GEMM as the kernel runs it (the frame
packed in panels, kernels/cpu/packed_gemm.py's micro-kernel; NumPy's matmul on one BLAS thread beside it)
and the QR with Q formed, the kernel's blocked Householder against LAPACK's
xGEQRF + xORGQR (SciPy, one thread), in µs and GFLOP/s (QR with Q: 4nk² - 4k³/3 flops).
"""
from __future__ import annotations

import argparse
import datetime
import time

import numba
import numpy as np

import rinit_fast as rf
try:  # as bench.<script> (bench/compare.py) or as a script (bench/ on sys.path)
    from ._machine import load_averages, machine
except ImportError:
    from _machine import load_averages, machine


def best(fn, repeat, warm=True):
    """(least wall seconds, least CPU seconds) of ``repeat`` calls (after one warm-up call if ``warm``)."""
    if warm:
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def gemm_ceiling(ctl, repeat):
    """(dtype, GFLOP/s per CPU second on 1 thread, GFLOP/s of wall clock on 1 and 2 threads) of a 1536³
    matmul: the CPU-time rate is what one core does while it runs (the wall clock on a shared machine also
    counts the time other processes hold the core)."""
    rows = []
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        a = rng.standard_normal((1536, 1536)).astype(dt)
        c = np.empty_like(a)
        res = []
        for th in (1, 2):
            with ctl.limit(limits=th, user_api="blas"):
                w, cpu = best(lambda: np.matmul(a, a, out=c), repeat)
            res.append((2 * 1536 ** 3 / cpu / 1e9, 2 * 1536 ** 3 / w / 1e9))
        rows.append((np.dtype(dt).name, res[0][0], res[0][1], res[1][1]))
    return rows


def parts(repeat):
    """Rows (n, k, GEMM µs, GEMM GFLOP/s, NumPy matmul µs, own QR µs, own GFLOP/s, LAPACK QR µs,
    LAPACK GFLOP/s): float32, one thread, CPU time.  The GEMM is the kernel's (the frame packed in panels,
    packed_gemm's micro-kernel); NumPy's matmul (BLAS, one thread, with its ~1 µs of call overhead) is the
    reference it replaced."""
    import scipy.linalg.lapack as la
    from rinit_fast.kernels.cpu import lyapunov as K
    from rinit_fast.kernels.cpu import threads

    from rinit_fast.kernels.cpu.packed_gemm import aligned_empty, gemm_packed, panel_width

    @numba.njit(nogil=True)
    def gemm_loop(W, F, P, C, reps):             # the kernel's product: the frame in panels, the micro-kernel
        for _ in range(reps):
            K.pack_frame(F, P)
            gemm_packed(W, P, C, W.shape[0], W.shape[0])

    @numba.njit(nogil=True)
    def qr_loop(A0, A, V, T, Y, w, logr, nrm, n, k, reps):
        for _ in range(reps):
            A[:] = A0
            K.qr_own(A, V, T, Y, w, logr, nrm, n, k)

    rows = []
    rng = np.random.default_rng(1)
    dt = np.float32
    with threads.blas_single_thread():
        for n, k in ((64, 64), (256, 32), (256, 256)):
            kp = -(-k // 16) * 16
            kw = K.frame_width(k, dt)
            W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dt)
            F = aligned_empty((n, kw), dt)
            F[:] = 0
            F[:, :k] = np.linalg.qr(rng.standard_normal((n, k)))[0]
            C = aligned_empty((n, kw), dt)
            P = aligned_empty((kw // panel_width(dt), n, panel_width(dt)), dt)
            reps = max(5, int(3e8 / (2 * n * n * k)))
            gemm_loop(W, F, P, C, 1)
            _, wg = best(lambda: gemm_loop(W, F, P, C, reps), repeat)
            tg = wg / reps
            Fk, Ck = np.ascontiguousarray(F[:, :k]), np.empty((n, k), dt)
            _, wb = best(lambda: [np.matmul(W, Fk, out=Ck) for _ in range(reps)], repeat)
            tb = wb / reps
            A0 = np.ascontiguousarray(C[:, :kp])
            A = A0.copy()
            V = np.zeros((n, kp), dt)
            T = np.zeros(((k + 3) // 4 + 1, 4, 4), dt)
            Y = np.zeros((4, kp), dt)
            w = np.zeros(kp, dt)
            logr = np.zeros(k)
            nrm = np.zeros(kp)
            qreps = max(3, reps // 3)
            qr_loop(A0, A, V, T, Y, w, logr, nrm, n, k, 1)
            _, wq = best(lambda: qr_loop(A0, A, V, T, Y, w, logr, nrm, n, k, qreps), repeat)
            tq = wq / qreps
            Af = np.asfortranarray(A0[:, :k])
            lw = 64 * k

            def lapack():
                for _ in range(qreps):
                    qr, tau, _, _ = la.sgeqrf(Af, lwork=lw)
                    la.sorgqr(qr, tau, lwork=lw, overwrite_a=1)
            _, wl = best(lapack, repeat)
            tl = wl / qreps
            fl_qr = 4 * n * k * k - 4 * k ** 3 / 3
            rows.append((n, k, tg * 1e6, 2 * n * n * k / tg / 1e9, tb * 1e6, tq * 1e6, fl_qr / tq / 1e9,
                         tl * 1e6, fl_qr / tl / 1e9))
    return rows


def scipy_loop(W, k, steps, tanh, seed=0):
    """One network at a time (the published codes' structure), LAPACK called as directly as SciPy allows."""
    import scipy.linalg.lapack as la
    n = W.shape[0]
    rng = np.random.default_rng(seed)
    Q = np.asfortranarray(np.linalg.qr(rng.standard_normal((n, k)))[0].astype(np.float32))
    h = np.zeros(n, np.float32)
    acc = np.zeros(k)
    lw = 64 * max(k, 1)
    for _ in range(steps):
        A = W @ Q
        if tanh:
            h = np.tanh(W @ h + rng.standard_normal(n, dtype=np.float32))
            A *= (1 - h * h)[:, None]
        qr, tau, _, _ = la.sgeqrf(A, lwork=lw, overwrite_a=1)
        acc += np.log(np.abs(np.diagonal(qr)[:k]))
        Q, _, _ = la.sorgqr(qr, tau, lwork=lw, overwrite_a=1)
    return acc / steps


def numpy_batched(Wb, k, steps, tanh, seed=0):
    """Every matrix at once per step: np.matmul and np.linalg.qr on stacks."""
    B, n, _ = Wb.shape
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((B, n, k)))[0].astype(np.float32)
    h = np.zeros((B, n, 1), np.float32)
    acc = np.zeros((B, k))
    for _ in range(steps):
        A = Wb @ Q
        if tanh:
            h = np.tanh(Wb @ h + rng.standard_normal((B, n, 1), dtype=np.float32))
            A *= 1 - h * h
        Q, R = np.linalg.qr(A)
        acc += np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)))
    return acc / steps


def engine(W, k, steps, tanh, threads_):
    def run():
        old = numba.get_num_threads()
        numba.set_num_threads(threads_)
        try:
            return rf.lyapunov(W, k, steps=steps, warmup=0, nonlinearity="tanh" if tanh else "linear",
                               inputs="gaussian" if tanh else None, seed=1)
        finally:
            numba.set_num_threads(old)
    return run


def compare(n, k, batch, steps, repeat, ctl, quick):
    W = rf.sample("glorot_normal", n, batch=batch, seed=7, dtype="float32")
    sub_b = 2
    sub_steps = max(20, int((300 if quick else 2000) * (64 / n) ** 2 * (64 / k)))
    print(f"\n## n = {n}, k = {k}: {batch} matrices x {steps} steps (anchors timed on {sub_b} matrices x "
          f"{sub_steps} steps, projected)")
    print(f"{'':44} {'us/matrix-step':>14} {'CPU us':>8} {'full run s':>10} {'ratio':>6} {'CPU ratio':>9}")
    for tanh in (False, True):
        label = "tanh + inputs" if tanh else "linear"
        rows = []
        engine(W, k, 2, tanh, 2)()                       # compile (or load from the cache) first
        for th in (2, 1):
            w, c = best(engine(W, k, steps, tanh, th), repeat, warm=False)
            rows.append((f"rf.lyapunov {th} thread{'s' if th > 1 else ''} ({label})", w / (batch * steps),
                         c / (batch * steps)))
        anchors = (("SciPy LAPACK loop",
                    lambda: [scipy_loop(W[j], k, sub_steps, tanh) for j in range(sub_b)]),
                   ("NumPy batched", lambda: numpy_batched(W[:sub_b * 2], k, sub_steps // 2, tanh)))
        for name, fn in anchors:
            for th in (1, 2):      # BLAS threads: on a busy machine the threaded BLAS can be far slower
                with ctl.limit(limits=th, user_api="blas"):
                    w, c = best(fn, repeat)
                rows.append((f"{name}, {th} BLAS thr. ({label})", w / (sub_b * sub_steps),
                             c / (sub_b * sub_steps)))
        ours_w, ours_c = rows[0][1], rows[0][2]
        for name, w, c in rows:
            r = "" if name.startswith("rf.") else f"{w / ours_w:6.1f}"
            rc = "" if name.startswith("rf.") else f"{c / ours_c:9.1f}"
            print(f"{name:44} {w * 1e6:14.1f} {c * 1e6:8.1f} {w * batch * steps:10.1f} {r:>6} {rc:>9}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="1,000 steps, 10 matrices, fewer anchor steps")
    args = ap.parse_args(argv)
    steps, batch = (1000, 10) if args.quick else (args.steps, args.batch)
    import scipy.linalg.cython_blas  # noqa: F401  (so that threadpoolctl sees every BLAS)
    from threadpoolctl import ThreadpoolController
    ctl = ThreadpoolController()
    print(f"# compare_lyapunov  {datetime.date.today()}  {machine()}")
    print(f"# load average (1, 5, 15 min) at start: {load_averages()}")
    print("# float32; ratio = anchor / rf.lyapunov (higher = we are faster): wall clock and CPU time "
          "(all threads)")
    print("\n## GEMM ceiling: NumPy matmul 1536^3, GFLOP/s (per CPU second on 1 thread; of wall clock)")
    for dt, gc, g1, g2 in gemm_ceiling(ctl, args.repeat):
        print(f"{dt:8} 1 thread {gc:7.1f} per CPU s, wall: 1 thread {g1:7.1f}, 2 threads {g2:7.1f}")
    print("\n## the parts of a step, float32, one thread, per CPU second: GEMM W F (the kernel's packed "
          "micro-kernel; NumPy matmul for reference) and QR with Q")
    print(f"{'n':>4} {'k':>4} {'GEMM us':>9} {'GFLOP/s':>8} {'matmul us':>10} {'own QR us':>10} "
          f"{'GFLOP/s':>8} {'LAPACK QR us':>13} {'GFLOP/s':>8}")
    for n, k, tg, gg, tb, tq, gq, tl, gl in parts(args.repeat):
        print(f"{n:4} {k:4} {tg:9.1f} {gg:8.1f} {tb:10.1f} {tq:10.1f} {gq:8.1f} {tl:13.1f} {gl:8.1f}")
    compare(64, 64, batch, steps, args.repeat, ctl, args.quick)
    big_steps = max(50, steps // 20)
    compare(256, 32, min(batch, 4), big_steps, args.repeat, ctl, args.quick)
    compare(256, 256, 2, max(10, big_steps // 10), args.repeat, ctl, args.quick)
    print(f"\n# load average (1, 5, 15 min) at end: {load_averages()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
