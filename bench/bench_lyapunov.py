"""asv: rf.lyapunov (Benettin's QR method every step), float32 and float64, the sizes of issue 14.

``track_gflops`` counts the GEMM and the QR with Q formed: (2n²k + 4nk² - 4k³/3) flops per matrix and
step (the state update, the nonlinearity and the logs come on top).  ``time_reortho_10`` shows what a
re-orthonormalisation every 10 steps saves (the GEMM remains).

CPU only (issue 14): there is no CUDA path yet, so there is no backend parameter.
"""
from __future__ import annotations

import rinit_fast as rf

from .common import GFLOPS, Benchmark, best_time, preload_cpu_kernels

preload_cpu_kernels("sampling", "lyapunov")

BATCH = 4
STEPS = {(64, 64): 500, (256, 32): 100, (256, 256): 10}


class Lyapunov(Benchmark):
    params = ([(64, 64), (256, 32), (256, 256)], ["float32", "float64"], ["linear", "tanh"])
    param_names = ["n_k", "dtype", "nonlinearity"]

    def setup(self, n_k, dtype, nonlinearity):
        n, k = n_k
        self.W = rf.sample("glorot_normal", n, batch=BATCH, seed=5, dtype=dtype)
        self.steps = STEPS[n_k]
        self.kw = dict(nonlinearity=nonlinearity, inputs="gaussian" if nonlinearity == "tanh" else None,
                       warmup=0, seed=1)
        rf.lyapunov(self.W, k, steps=2, **self.kw)          # JIT warm-up: same dtype and arguments

    def time_lyapunov(self, n_k, dtype, nonlinearity):
        rf.lyapunov(self.W, n_k[1], steps=self.steps, **self.kw)

    def time_reortho_10(self, n_k, dtype, nonlinearity):
        rf.lyapunov(self.W, n_k[1], steps=self.steps, reortho_every=10, **self.kw)

    def track_gflops(self, n_k, dtype, nonlinearity):
        """Achieved GFLOP/s of GEMM + QR (best of 3)."""
        n, k = n_k
        seconds, _ = best_time(lambda: rf.lyapunov(self.W, k, steps=self.steps, **self.kw))
        flops = (2 * n * n * k + 4 * n * k * k - 4 * k ** 3 / 3) * self.steps * BATCH
        return flops / seconds / 1e9

    track_gflops.unit = GFLOPS
