"""asv: rf.unroll (Gaussian inputs drawn in the kernel, R = 50 realisations) x size x dtype x backend,
the nonlinearities and the tangent, and the memory of a long unroll.

``track_gflops`` counts the products with W only: 2 n^2 flops per realisation, step and matrix
(2 n^2 * R * steps * batch per call); the input draws, nonlinearity and norms come on top.

``peakmem_unroll`` runs 1,000 and 100,000 steps with ``record_every = steps // 100`` (100 recorded norms
either way): neither the states nor the inputs are stored, so the two peaks are equal. A kernel that kept
one state or input per step would add steps * R * n * 4 bytes, about 200 MB at 100,000 steps.

CUDA: a CuPy W runs kernels/cuda/unroll.cu (the W of the cuda variants is sampled on the GPU; results stay
there, timed calls synchronise). Without CuPy and a GPU the cuda variants are skipped (n/a).
``peakmem_`` is host memory (RSS) only.
"""
from __future__ import annotations

import rinit_fast as rf

from .common import GFLOPS, Benchmark, best_time, cuda_or_skip, preload_cpu_kernels, sync, warm_up

preload_cpu_kernels("sampling", "unroll")  # once in asv's fork server, not in every benchmark process

R = 50
BATCH = 2  # matrices per call (one per core here)
STEPS = {64: 1000, 128: 500, 500: 200}


class Unroll(Benchmark):
    params = ([64, 500], ["float32", "float64"], ["cpu", "cuda"])
    param_names = ["n", "dtype", "backend"]

    def setup(self, n, dtype, backend):
        cuda_or_skip(backend)
        self.W = rf.sample("glorot_normal", n, batch=BATCH, seed=5, dtype=dtype, backend=backend)
        self.steps = STEPS[n]
        sync(backend)
        # JIT warm-up: same W (dtype, n, batch) and R, 2 steps
        warm_up(backend, lambda: rf.unroll(self.W, 2, realizations=R, seed=1))

    def _run(self, backend):
        result = rf.unroll(self.W, self.steps, realizations=R, seed=1)
        sync(backend)
        return result

    def time_unroll(self, n, dtype, backend):
        self._run(backend)

    def track_gflops(self, n, dtype, backend):
        """Achieved GFLOP/s of the products W h (best of 3)."""
        seconds, _ = best_time(lambda: self._run(backend))
        return 2.0 * n * n * R * self.steps * BATCH / seconds / 1e9

    track_gflops.unit = GFLOPS


class UnrollNonlinear(Benchmark):
    """The other code paths of the loop: tanh (own exp), relu, and the tangent v_t = D_t W v_{t-1}."""

    params = (["tanh", "relu"], [False, True], ["cpu", "cuda"])
    param_names = ["nonlinearity", "tangent", "backend"]
    n = 128

    def setup(self, nonlinearity, tangent, backend):
        cuda_or_skip(backend)
        self.W = rf.sample("glorot_normal", self.n, batch=BATCH, seed=5, dtype="float32", backend=backend)
        self.steps = STEPS[self.n]
        sync(backend)
        warm_up(backend, lambda: rf.unroll(self.W, 2, realizations=R, nonlinearity=nonlinearity,
                                           tangent=tangent, seed=1))

    def time_unroll(self, nonlinearity, tangent, backend):
        rf.unroll(self.W, self.steps, realizations=R, nonlinearity=nonlinearity, tangent=tangent, seed=1)
        sync(backend)


class UnrollMemory(Benchmark):
    """Peak memory of an unroll does not grow with the horizon (records fixed at 100 per realisation)."""

    params = ([1_000, 100_000], ["cpu", "cuda"])
    param_names = ["steps", "backend"]
    n = 64
    realizations = 8

    def setup(self, steps, backend):
        cuda_or_skip(backend)
        self.W = rf.sample("glorot_normal", self.n, seed=5, dtype="float32", backend=backend)
        sync(backend)
        warm_up(backend, lambda: rf.unroll(self.W, 100, realizations=self.realizations, record_every=1,
                                           seed=1))

    def peakmem_unroll(self, steps, backend):
        u = rf.unroll(self.W, steps, realizations=self.realizations, record_every=steps // 100, seed=1)
        sync(backend)
        assert u.log_norm.shape == (self.realizations, 100)
