"""asv: rf.spectral_radius and rf.spectral_norm (method="power", default tolerances) x size x dtype x backend.

Timings are per batched call; ``track_gflops`` reports the achieved rate of the products with W (or
W^H) that the call reports in ``result.iterations``: 2n^2 flops per product for real W, 8n^2 for
complex W (Gram-Schmidt and the small Rayleigh-Ritz problems are not counted, so this is a lower bound
on the work done).

CUDA: a CuPy W runs kernels/cuda/spectral.cu through the same driver (rinit_fast/spec/spectral.py);
``cuda_or_skip`` skips the cuda column where CuPy or a GPU is missing (n/a).  The kernels compile lazily,
one dtype at a time (docs/spectral.md, "Design"): ``setup`` warms up the benchmark's own dtype.
"""
from __future__ import annotations

import rinit_fast as rf

from .common import GFLOPS, Benchmark, best_time, cuda_or_skip, preload_cpu_kernels, sync, warm_up

preload_cpu_kernels("sampling", "spectral")  # once in asv's fork server, not in every benchmark process

BATCH = {128: 8, 500: 4}  # matrices per call


def _matrices(n, batch, dtype, backend):
    scheme = "complex_glorot" if dtype.startswith("complex") else "glorot_normal"
    return rf.sample(scheme, n, batch=batch, seed=3, dtype=dtype, backend=backend)


class _Spectral(Benchmark):
    params = ([128, 500], ["float32", "float64", "complex64"], ["cpu", "cuda"])
    param_names = ["n", "dtype", "backend"]
    kernel = None  # rf.spectral_radius or rf.spectral_norm (a staticmethod in the subclasses)

    def setup(self, n, dtype, backend):
        cuda_or_skip(backend)
        self.W = _matrices(n, BATCH[n], dtype, backend)
        sync(backend)
        # JIT warm-up: one matrix of the same n and dtype (the kernels compile per dtype)
        warm_up(backend, lambda: self.kernel(self.W[:1]))

    def _run(self, backend):
        result = self.kernel(self.W)
        sync(backend)
        return result

    def track_gflops(self, n, dtype, backend):
        """Achieved GFLOP/s of the products with W that the call reports (best of 3)."""
        seconds, result = best_time(lambda: self._run(backend))
        per_product = (8 if dtype.startswith("complex") else 2) * n * n
        return float(result.iterations.sum()) * per_product / seconds / 1e9

    track_gflops.unit = GFLOPS


class SpectralRadius(_Spectral):
    kernel = staticmethod(rf.spectral_radius)

    def time_spectral_radius(self, n, dtype, backend):
        self._run(backend)


class SpectralNorm(_Spectral):
    kernel = staticmethod(rf.spectral_norm)

    def time_spectral_norm(self, n, dtype, backend):
        self._run(backend)
