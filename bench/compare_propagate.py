"""Side-by-side depth propagation on this machine, in one run: rf.propagate against NumPy and torch
versions that materialise every layer's weights (with rf.sample, the same matrices) and loop over layers.

    python bench/compare_propagate.py [--width 256] [--depth 50] [--batch 8] [--samples 1,8,32,128]
                                      [--activation tanh] [--repeat 5] [--threads 2,1] [--clock wall] [--quick]

Same work everywhere: forward pass of ``batch`` networks × ``samples`` inputs through ``depth`` layers of
width × width, the per-layer statistics (mean, variance, mean |x| of pre-activations and activations), a
backward pass of a random output gradient and its mean square per layer.  The baselines are timed twice:
"total" includes drawing the weights (rf.sample), "prop." starts from materialised weights.  The timed
calls run round-robin (engine, NumPy, torch, engine, ...), so a change in the machine's load hits them
alike; best and median of --repeat.  Ratios are baseline time / rf.propagate time (higher = the engine is
faster); the last lines of each thread count put the ratios at every sample count side by side.

Also printed, measured in the same run: the generation rate of the stream body on one weight panel
(kernels/cpu/stream.py, the engine's floor at small samples: it generates every weight twice, forward
and backward) and the GEMM rate of one panel (its floor at large samples), with the time they predict
(the "model" column: 2·B·L·N² values at the generation rate plus 4·B·L·N²·S flops at the GEMM rate,
divided by the threads), and the memory each approach holds.  Each --threads value sets the threads of
every library at once (Numba, NumPy's BLAS, torch): same work on the same cores.
"""
from __future__ import annotations

import argparse
import datetime
import os
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


def round_robin(fns, repeat):
    """Time every callable ``repeat`` times, interleaved; (best, median) seconds of each."""
    for fn in fns:
        fn()  # warm-up (JIT, page faults)
    ts = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = CLOCK()
            fn()
            ts[k].append(CLOCK() - t0)
    return [(min(t), statistics.median(t)) for t in ts]


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


def floors(N, S_list, dtype, repeat):
    """(seconds per generated weight, {S: GEMM flop/s}) of one weight panel on one thread, measured."""
    from threadpoolctl import threadpool_limits

    from rinit_fast.kernels.cpu import propagate as kern
    from rinit_fast.kernels.cpu import stream
    from rinit_fast.spec import propagate as spec
    dt = np.dtype(dtype)
    pr = spec.panel_rows(N, N)
    pbuf = np.empty(pr * N, dt)
    fill = stream.fill_normal_f32 if dt == np.float32 else stream.fill_normal_f64
    one = dt.type(1.0)

    def gen():
        for c in range(64):
            fill(pbuf, 0, 0, pr * N, np.uint64(c), np.uint64(0), np.uint64(1), np.uint64(2), one)
    (tg, _), = round_robin([gen], repeat)
    rate = tg / (64 * pr * N)
    gemm = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for S in S_list:
            X = np.ones((N, S), dt)
            Z = np.empty((N, S), dt)

            def mm(X=X, Z=Z):
                for _ in range(64):
                    kern.mm_forward(pbuf.ctypes.data, X, Z, 0, pr, N)
            (tm, _), = round_robin([mm], repeat)
            gemm[S] = 64 * 2.0 * pr * N * S / tm
    return rate, gemm


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", default="1,8,32,128")
    ap.add_argument("--activation", default="tanh", choices=("tanh", "relu"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--quick", action="store_true", help="--repeat 3, two threads only")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time (core-seconds; robust to other processes on a shared machine, "
                         "meaningful for --threads 1)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat, args.threads = 3, "2"
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
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
            run(args, torch)


def run(args, torch):
    N, L, B, R, act, dt = args.width, args.depth, args.batch, args.repeat, args.activation, args.dtype
    nt = numba.get_num_threads()
    S_list = [int(s) for s in args.samples.split(",")]
    print(f"# compare_propagate  {datetime.date.today()}  {machine()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch"))
    print(f"# glorot_normal {dt}, width {N}, depth {L}, {B} networks, activation {act}; best/median of {R} "
          f"(ms, {args.clock} clock, round-robin); ratio = baseline / rf.propagate")
    nval = B * L * N * N
    (tw, _), = round_robin([lambda: weights(B, N, L, dt)], R)
    Wn = weights(B, N, L, dt)
    wbytes = sum(w.nbytes for w in Wn)
    rate, gemm = floors(N, S_list, dt, R)
    print(f"# materialised weights: {wbytes / 2**20:.0f} MiB, drawn by rf.sample in {tw * 1e3:.1f} ms "
          f"({tw / nval * 1e9:.2f} ns/value on {nt} threads); stream body on one panel, one thread: "
          f"{rate * 1e9:.2f} ns/value; panel GEMM, one thread: "
          + ", ".join(f"S={S} {gemm[S] / 1e9:.0f}" for S in S_list) + " GFLOP/s")
    Wt = [torch.from_numpy(w) for w in Wn] if torch else None
    print(f"{'samples':>7} {'GFLOP':>6} | {'rf.propagate':>13} {'model':>6} | {'numpy total':>12} "
          f"{'prop.':>12} | {'torch total':>12} {'prop.':>12} | ratios np tot/prop, torch tot/prop")
    summary = []
    for S in S_list:
        flop = 4.0 * B * L * N * N * S
        model = (2 * nval * rate + flop / gemm[S]) / min(nt, B)
        x0, g = inputs(B, N, S, dt)
        fns = [lambda: rf.propagate("glorot_normal", N, L, activation=act, batch=B, samples=S, dtype=dt),
               lambda: numpy_prop(Wn, x0, g, act)]
        if torch:
            xt, gt = torch.from_numpy(x0), torch.from_numpy(g)
            fns.append(lambda: torch_prop(torch, Wt, xt, gt, act))
        times = round_robin(fns, R)
        te, tn = times[0], times[1]
        ref = numpy_prop(Wn, x0, g, act)
        r = rf.propagate("glorot_normal", N, L, activation=act, batch=B, samples=S, dtype=dt)
        agree = np.max(np.abs(ref[:, 1] / r.preact_var - 1))
        row = (f"{S:>7} {flop / 1e9:>6.2f} | {te[0] * 1e3:>6.1f} {te[1] * 1e3:>6.1f} {model * 1e3:>6.1f} | "
               f"{(tn[0] + tw) * 1e3:>12.1f} {tn[0] * 1e3:>5.1f} {tn[1] * 1e3:>6.1f} | ")
        rat = [(tn[0] + tw) / te[0], tn[0] / te[0]]
        if torch:
            tt = times[2]
            row += f"{(tt[0] + tw) * 1e3:>12.1f} {tt[0] * 1e3:>5.1f} {tt[1] * 1e3:>6.1f} | "
            rat += [(tt[0] + tw) / te[0], tt[0] / te[0]]
        else:
            row += f"{'-':>12} {'-':>12} | "
        summary.append((S, rat))
        print(row + " ".join(f"{x:.2f}" for x in rat) + f"   (preact_var agree to {agree:.1e})", flush=True)
        mem_e = min(B, nt) * (L + 6) * N * S * np.dtype(dt).itemsize
        print(f"{'':>7} memory: rf.propagate ~{mem_e / 2**20:.1f} MiB in flight; baselines {wbytes / 2**20:.0f} MiB "
              f"of weights + {B * L * N * S * np.dtype(dt).itemsize / 2**20:.1f} MiB of derivatives")
    names = ["numpy total", "numpy prop.", "torch total", "torch prop."][:len(summary[0][1])]
    print(f"# ratios on {nt} thread(s), baseline / rf.propagate, at samples " + ", ".join(str(S) for S, _ in summary)
          + f" (load {os.getloadavg()[0]:.1f}):")
    for k, nm in enumerate(names):
        print(f"#   {nm:>12}: " + "  ".join(f"{rat[k]:5.2f}" for _, rat in summary))


if __name__ == "__main__":
    main()
