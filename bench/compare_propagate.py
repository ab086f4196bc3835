"""Side-by-side depth propagation on this machine, in one run: rf.propagate against NumPy and torch
versions that materialise every layer's weights (with rf.sample, the same matrices) and loop over layers.

    python bench/compare_propagate.py [--width 256] [--depth 50] [--batch 8] [--samples 1,8,32,128]
                                      [--activation tanh] [--repeat 5] [--threads 1,2] [--clock wall]

Same work everywhere: forward pass of ``batch`` networks × ``samples`` inputs through ``depth`` layers of
width × width, the per-layer statistics (mean, variance, mean |x| of pre-activations and activations), a
backward pass of a random output gradient and its mean square per layer.  The baselines are timed twice:
"total" includes drawing the weights (rf.sample, the fastest generator here), "prop." starts from
materialised weights.  Also printed: the GEMM alone (np.matmul of the same shapes, the floor of the
materialising baselines), the engine's generation rate, and the memory each approach holds.  Ratios
are baseline time / rf.propagate time (higher = the engine is faster).  Best and median of --repeat.
Each --threads value sets the threads of every library at once (Numba, NumPy's BLAS, torch): same work on
the same cores.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import time

import numba
import numpy as np

import rinit_fast as rf
from rinit_fast.rng import Purpose


CLOCK = time.perf_counter
try:  # as bench.<script> (bench/compare.py) or as a script (bench/ on sys.path)
    from ._machine import machine
except ImportError:
    from _machine import machine


def timeit(fn, repeat):
    fn()  # warm-up (JIT, page faults)
    ts = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return min(ts), statistics.median(ts)


def weights(B, N, L, dtype):
    """Every layer of networks 0..B-1, materialised: list over layers of (B, N, N)."""
    return [rf.sample("glorot_normal", N, batch=B, seed=0, start=0, layer=l, dtype=dtype) for l in range(L)]


def inputs(B, N, S, dtype):
    x = rf.rng.normals(0, Purpose.PROP_INPUT, index=0, count=N, n_index=B, n_sub=S, dtype=dtype)
    g = rf.rng.normals(0, Purpose.PROP_GRAD, index=0, count=N, n_index=B, n_sub=S, dtype=dtype)
    return np.ascontiguousarray(x.transpose(0, 2, 1)), np.ascontiguousarray(g.transpose(0, 2, 1))


def numpy_prop(W, x0, g, act):
    f = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[act]
    L = len(W)
    stats = np.empty((L, 6))
    D = []
    x = x0
    for l in range(L):
        z = np.matmul(W[l], x)
        x = f(z)
        D.append(1 - x * x if act == "tanh" else (z > 0).astype(z.dtype))
        stats[l] = (z.mean(), z.var(), x.mean(), x.var(), np.abs(x).mean(), 0.0)
    d = g
    for l in range(L - 1, -1, -1):
        d = np.matmul(W[l].transpose(0, 2, 1), D[l] * d)
        stats[l, 5] = np.mean(np.square(d, dtype=np.float64))
    return stats


def torch_prop(torch, W, x0, g, act):
    f = {"tanh": torch.tanh, "relu": torch.relu}[act]
    L = len(W)
    stats = torch.empty((L, 6), dtype=torch.float64)
    D = []
    x = x0
    with torch.no_grad():
        for l in range(L):
            z = torch.matmul(W[l], x)
            x = f(z)
            D.append(1 - x * x if act == "tanh" else (z > 0).to(z.dtype))
            stats[l, 0] = z.mean()
            stats[l, 1] = z.var(unbiased=False)
            stats[l, 2] = x.mean()
            stats[l, 3] = x.var(unbiased=False)
            stats[l, 4] = x.abs().mean()
        d = g
        for l in range(L - 1, -1, -1):
            d = torch.matmul(W[l].transpose(1, 2), D[l] * d)
            stats[l, 5] = (d.double() ** 2).mean()
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", default="1,8,32,128")
    ap.add_argument("--activation", default="tanh", choices=("tanh", "relu"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time (core-seconds; robust to other processes on a shared machine, "
                         "meaningful for --threads 1)")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    N, L, B, R, act, dt = args.width, args.depth, args.batch, args.repeat, args.activation, args.dtype
    try:
        import torch
    except ImportError:
        torch = None
    from threadpoolctl import threadpool_limits
    for nt in [int(t) for t in args.threads.split(",")]:
        numba.set_num_threads(nt)
        if torch:
            torch.set_num_threads(nt)
        with threadpool_limits(limits=nt, user_api="blas"):
            run(args, torch, N, L, B, R, act, dt)


def run(args, torch, N, L, B, R, act, dt):
    print(f"# compare_propagate  {datetime.date.today()}  {machine()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch"))
    print(f"# glorot_normal {dt}, width {N}, depth {L}, {B} networks, activation {act}; best/median of {R} "
          f"(ms, {args.clock} clock); ratio = baseline / rf.propagate")
    nval = B * L * N * N
    tw = timeit(lambda: weights(B, N, L, dt), R)
    Wn = weights(B, N, L, dt)
    wbytes = sum(w.nbytes for w in Wn)
    print(f"# materialised weights: {wbytes / 2**20:.0f} MiB, drawn by rf.sample in {tw[0] * 1e3:.1f} ms "
          f"({tw[0] / nval * 1e9:.2f} ns/value)")
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    tg = timeit(lambda: np.matmul(a, a), R)
    ws, xs = Wn[0][0], np.ones((N, 32), dt)
    tp = timeit(lambda: [np.matmul(ws, xs) for _ in range(100)], R)
    print(f"# GEMM ceiling: sgemm 1024^3 {2 * 1024**3 / tg[0] / 1e9:.0f} GFLOP/s; {N}x{N} @ {N}x32 "
          f"{100 * 2 * N * N * 32 / tp[0] / 1e9:.0f} GFLOP/s")
    Wt = [torch.from_numpy(w) for w in Wn] if torch else None
    head = (f"{'samples':>7} {'GFLOP':>6} | {'rf.propagate':>13} {'GFLOP/s':>7} | {'numpy total':>12} "
            f"{'prop.':>12} | {'torch total':>12} {'prop.':>12} | {'matmul alone':>12} | ratios np tot/prop, "
            f"torch tot/prop")
    print(head)
    for S in [int(s) for s in args.samples.split(",")]:
        flop = 4.0 * B * L * N * N * S
        x0, g = inputs(B, N, S, dt)
        te = timeit(lambda: rf.propagate("glorot_normal", N, L, activation=act, batch=B, samples=S, dtype=dt), R)
        tn = timeit(lambda: numpy_prop(Wn, x0, g, act), R)
        tmm = timeit(lambda: [np.matmul(W, x0) for W in Wn for _ in range(2)], R)
        ref = numpy_prop(Wn, x0, g, act)
        r = rf.propagate("glorot_normal", N, L, activation=act, batch=B, samples=S, dtype=dt)
        agree = np.max(np.abs(ref[:, 1] / r.preact_var - 1))
        row = (f"{S:>7} {flop / 1e9:>6.2f} | {te[0] * 1e3:>6.1f} {te[1] * 1e3:>6.1f} {flop / te[0] / 1e9:>7.1f} | "
               f"{(tn[0] + tw[0]) * 1e3:>12.1f} {tn[0] * 1e3:>5.1f} {tn[1] * 1e3:>6.1f} | ")
        rat = [(tn[0] + tw[0]) / te[0], tn[0] / te[0]]
        if torch:
            xt, gt = torch.from_numpy(x0), torch.from_numpy(g)
            tt = timeit(lambda: torch_prop(torch, Wt, xt, gt, act), R)
            row += f"{(tt[0] + tw[0]) * 1e3:>12.1f} {tt[0] * 1e3:>5.1f} {tt[1] * 1e3:>6.1f} | "
            rat += [(tt[0] + tw[0]) / te[0], tt[0] / te[0]]
        else:
            row += f"{'-':>12} {'-':>12} | "
        row += f"{tmm[0] * 1e3:>12.1f} | " + " ".join(f"{x:.2f}" for x in rat)
        print(row + f"   (preact_var agree to {agree:.1e})")
        mem_e = min(B, numba.get_num_threads()) * (L + 6) * N * S * np.dtype(dt).itemsize
        print(f"{'':>7} memory: rf.propagate ~{mem_e / 2**20:.1f} MiB in flight; baselines {wbytes / 2**20:.0f} MiB "
              f"of weights + {B * L * N * S * np.dtype(dt).itemsize / 2**20:.1f} MiB of derivatives")


if __name__ == "__main__":
    main()
