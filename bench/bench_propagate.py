"""asv: rf.propagate (forward and backward through ``depth`` layers whose weights are regenerated from
the stream, never stored) x width x dtype x backend, and the other weight families.

``track_gflops`` counts the GEMM flops: per network 2 * depth * width^2 * samples forward and as many
backward (layer 0 is square here, in_width = width), i.e. 4 * depth * width^2 * samples * batch per call.
Weight generation, activations and statistics come on top.

CUDA: ``rf.propagate(backend="cuda")`` runs kernels/cuda/propagate.cu; without CuPy and a GPU the cuda
column is skipped (``cuda_or_skip``: SkipNotImplemented, asv shows n/a).  The warm-up call in ``setup``
compiles the Numba kernel of the benchmark's family, activation and dtype (or the CUDA module) outside
the timed calls.
"""
from __future__ import annotations

import rinit_fast as rf

from .common import GFLOPS, Benchmark, best_time, cuda_or_skip, preload_cpu_kernels, sync, warm_up

preload_cpu_kernels("sampling", "propagate")  # once in asv's fork server, not in every benchmark process

DEPTH = 20
BATCH = 2  # networks per call: one per core here (rf.propagate wants batch >= threads)
SAMPLES = 32
ACTIVATION = "tanh"


def _propagate(scheme, width, depth, dtype, backend, batch=BATCH):
    return rf.propagate(scheme, width, depth, activation=ACTIVATION, batch=batch, samples=SAMPLES, seed=1,
                        dtype=dtype, backend=backend)


class Propagate(Benchmark):
    params = ([256, 1024], ["float32", "float64"], ["cpu", "cuda"])
    param_names = ["width", "dtype", "backend"]

    def setup(self, width, dtype, backend):
        cuda_or_skip(backend)
        # JIT warm-up: same scheme, width, samples and dtype; 2 layers, 1 network
        warm_up(backend, lambda: _propagate("glorot_normal", width, 2, dtype, backend, batch=1))

    def _run(self, width, dtype, backend):
        result = _propagate("glorot_normal", width, DEPTH, dtype, backend)
        sync(backend)
        return result

    def time_propagate(self, width, dtype, backend):
        self._run(width, dtype, backend)

    def track_gflops(self, width, dtype, backend):
        """Achieved GFLOP/s of the forward and backward GEMMs (best of 3)."""
        seconds, _ = best_time(lambda: self._run(width, dtype, backend))
        return 4.0 * DEPTH * width * width * SAMPLES * BATCH / seconds / 1e9

    track_gflops.unit = GFLOPS


class PropagateFamilies(Benchmark):
    """The other weight generators (normal is Propagate above); orthogonal materialises each layer (QR)."""

    FAMILIES = {"uniform": "glorot_uniform", "truncated": "variance_scaling", "orthogonal": "orthogonal"}
    params = (list(FAMILIES), ["cpu", "cuda"])
    param_names = ["family", "backend"]
    width = 256

    def setup(self, family, backend):
        cuda_or_skip(backend)
        self.scheme = self.FAMILIES[family]
        warm_up(backend, lambda: _propagate(self.scheme, self.width, 2, "float32", backend, batch=1))

    def time_propagate(self, family, backend):
        _propagate(self.scheme, self.width, DEPTH, "float32", backend)
        sync(backend)
