"""Side-by-side initialisation of real models in one run: rinit_fast.torch / rinit_fast.jax vs the
frameworks' own initialisers.

    python bench/compare_frameworks.py [--repeat 3] [--quick] [--only torch,orthogonal,jax,qr] [--threads N]

1. A GPT-2-small-shaped torch model (124 M float32 parameters: 50257x768 token and 1024x768 position
   embeddings, 12 blocks of LayerNorm, 768x2304 attention, 768x768 projection, 768x3072 and 3072x768 MLP,
   tied head): ``rinit_fast.torch.initialize(model, seed=...)`` (torch's default laws from our stream)
   against torch's own initialisation of the same model (every module's ``reset_parameters()``), and
   GPT-2's own scheme (every weight N(0, 0.02²), biases 0) both ways.
2. ``orthogonal_`` of a 4096x4096 float32 weight, rinit_fast.torch against torch (and orthogonal 500x500
   float32, a batch of 16, per matrix).
3. ``glorot_normal`` of 64 Mi float32 values (8192x8192), rinit_fast.jax against
   ``jax.nn.initializers.glorot_normal``, eager and under ``jax.jit``.
4. ``--only qr``: the LAPACK QR behind orthogonal, float64 (our bits) and float32, 1 and 2 BLAS threads
   (bench/NOTES.md, "Frameworks", explains why it bounds the orthogonal target).

Times are best and median of --repeat after a warm-up call (JIT compilation excluded); ratio = the
framework's time / ours (higher = we are faster).  The load average is printed at the start and end.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

try:  # as bench.<script> (bench/compare.py) or as a script (bench/ on sys.path)
    from ._machine import machine
except ImportError:
    from _machine import machine


def timeit(fn, repeat, sync=lambda r: r):
    sync(fn())  # warm-up: compilation, page faults
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sync(fn())
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def row(what, ours, theirs, unit="s", scale=1.0):
    (ob, om), (tb, tm) = ours, theirs
    print(f"{what:<52} {ob * scale:9.3f} {om * scale:9.3f} {tb * scale:9.3f} {tm * scale:9.3f} {unit:<6} "
          f"x{tb / ob:5.2f}", flush=True)


def gpt2(torch, n_layer=12, vocab=50257, ctx=1024, d=768):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d)
            self.attn = nn.ModuleDict({"c_attn": nn.Linear(d, 3 * d), "c_proj": nn.Linear(d, d)})
            self.ln_2 = nn.LayerNorm(d)
            self.mlp = nn.ModuleDict({"c_fc": nn.Linear(d, 4 * d), "c_proj": nn.Linear(4 * d, d)})

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(ctx, d)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.wte.weight  # tied, as GPT-2

    m = GPT()  # allocated and initialised by torch (its own init is timed separately, on this model)
    assert m.lm_head.weight is m.wte.weight
    return m


def qr_rates(n):
    """geqrf + orgqr of one n x n Gaussian matrix (SciPy's LAPACK, optimal workspace as Numba's qr uses),
    float64 and float32, on 1 and 2 BLAS threads: seconds and GFLOP/s of 8/3 n^3; the float64 Q (signs
    fixed) is compared bit for bit with rf.sample("orthogonal", n, dtype="float64")."""
    import numpy as np
    import scipy.linalg.lapack as lapack
    from threadpoolctl import threadpool_limits

    import rinit_fast as rf
    flop = 8.0 / 3.0 * n ** 3
    ref = rf.sample("orthogonal", n, seed=1, dtype="float64")  # QR of the float64 draw below
    draws = (("d", rf.sample("normal", n, seed=1, dtype="float64")), ("s", rf.sample("normal", n, seed=1)))
    for pre, a in draws:
        geqrf, orgqr = getattr(lapack, pre + "geqrf"), getattr(lapack, pre + "orgqr")
        for th in (1, 2):
            with threadpool_limits(th):
                f = np.asfortranarray(a)
                t0 = time.perf_counter()
                qr, tau, _, _ = geqrf(f, lwork=int(geqrf(f, lwork=-1)[2][0]))
                q, _, _ = orgqr(qr, tau, lwork=int(orgqr(qr, tau, lwork=-1)[1][0]))
                t = time.perf_counter() - t0
            same = ""
            if pre == "d" and n <= 4096:
                q = q * np.where(np.diag(qr) < 0, -1.0, 1.0)
                same = f", equal to rf's orthogonal bits: {bool(np.array_equal(q, ref))}"
            print(f"# QR {n}x{n} {pre}geqrf+{pre}orgqr, {th} BLAS thread(s): {t:.2f} s, "
                  f"{flop / t / 1e9:.1f} GFLOP/s{same}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="2-block model, 1024x1024 orthogonal, 4 Mi JAX values")
    ap.add_argument("--only", default="torch,orthogonal,jax", help="comma-separated parts")
    ap.add_argument("--qr-n", type=int, default=2048, help="matrix size of the 'qr' part (--only qr)")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for rinit_fast (Numba) and torch alike (default: as configured)")
    args = ap.parse_args(argv)
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    parts = set(args.only.split(","))
    R = args.repeat
    print(f"# compare_frameworks  {datetime.date.today()}  {machine()}")
    print(f"# best/median of {R} after a warm-up; ratio = framework time / rinit_fast time "
          f"(higher = we are faster)")
    print(f"{'work':<52} {'ours best':>9} {'median':>9} {'theirs':>9} {'median':>9} {'unit':<6} ratio")
    try:
        import torch
    except ImportError:
        torch = None
        print("# torch not installed: torch parts skipped")
    if torch is not None and parts & {"torch", "orthogonal"}:
        import rinit_fast as rf
        import rinit_fast.torch as rt
        print(f"# torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if torch is not None and "torch" in parts:
        m = gpt2(torch, n_layer=2 if args.quick else 12, vocab=8192 if args.quick else 50257)
        nparam = sum(p.numel() for p in m.parameters())

        def torch_default():
            for mod in m.modules():
                if hasattr(mod, "reset_parameters"):
                    mod.reset_parameters()

        gpt2_rules = [("*.bias", "zeros_"), ("*ln_*.weight", "ones_"), ("*", ("normal_", {"std": 0.02}))]

        def torch_gpt2():
            with torch.no_grad():
                for name, p in m.named_parameters():
                    if name.endswith(".bias"):
                        p.zero_()
                    elif ".ln_" in name or name.startswith("ln_"):
                        p.fill_(1.0)
                    else:
                        p.normal_(0.0, 0.02)

        row(f"GPT-2 shape ({nparam / 1e6:.0f} M) torch default laws",
            timeit(lambda: rt.initialize(m, seed=1), R), timeit(torch_default, R))
        row(f"GPT-2 shape ({nparam / 1e6:.0f} M) N(0, 0.02) weights",
            timeit(lambda: rt.initialize(m, seed=1, rules=gpt2_rules), R), timeit(torch_gpt2, R))
        del m
    if torch is not None and "orthogonal" in parts:
        n = 1024 if args.quick else 4096
        big = torch.empty(n, n)
        row(f"orthogonal_ {n}x{n} float32", timeit(lambda: rt.orthogonal_(big, seed=1), max(1, R - 1)),
            timeit(lambda: torch.nn.init.orthogonal_(big), max(1, R - 1)))
        del big
        B = 4 if args.quick else 16
        w = torch.empty(B, 500, 500)

        def torch500():
            for j in range(B):
                torch.nn.init.orthogonal_(w[j])

        row(f"orthogonal 500x500 float32, batch {B} (per matrix)",
            timeit(lambda: rf.sample("orthogonal", 500, batch=B, seed=1, out=w), R), timeit(torch500, R),
            unit="ms", scale=1e3 / B)
    if "qr" in parts:  # where orthogonal's time goes: LAPACK QR rates by precision and thread count
        qr_rates(1024 if args.quick else args.qr_n)
    if "jax" in parts:
        try:
            import jax
        except ImportError:
            print("# jax not installed: JAX part skipped")
            return 0
        import rinit_fast.jax as rj
        print(f"# jax {jax.__version__} ({jax.default_backend()})")
        shape = (2048, 2048) if args.quick else (8192, 8192)
        key = jax.random.key(0)
        ours, theirs = rj.glorot_normal(), jax.nn.initializers.glorot_normal()
        ready = jax.block_until_ready
        row(f"glorot_normal {shape[0]}x{shape[1]} float32 (eager)",
            timeit(lambda: ours(key, shape), R, ready), timeit(lambda: theirs(key, shape), R, ready))
        oj = jax.jit(lambda k: ours(k, shape))
        tj = jax.jit(lambda k: theirs(k, shape))
        row(f"glorot_normal {shape[0]}x{shape[1]} float32 (jax.jit)", timeit(lambda: oj(key), R, ready),
            timeit(lambda: tj(key), R, ready))
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
