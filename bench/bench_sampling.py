"""asv: rf.sample per scheme family x backend x dtype, timings and achieved GB/s written."""
from __future__ import annotations

import rinit_fast as rf

from .common import Benchmark, cuda_or_skip, sync

FAMILIES = {  # one representative scheme per kernel family
    "normal": ("glorot_normal", {}),
    "uniform": ("glorot_uniform", {}),
    "uniform01": ("uniform01", {}),
    "truncated": ("variance_scaling", {}),
    "complex": ("complex_glorot", {}),
}


class Sample(Benchmark):
    params = (list(FAMILIES), [256, 1024], ["float32", "float64"], ["cpu", "cuda"])
    param_names = ["family", "n", "dtype", "backend"]

    def setup(self, family, n, dtype, backend):
        cuda_or_skip(backend)
        self.scheme, self.kw = FAMILIES[family]
        self.batch = max(1, (1 << 24) // (n * n))  # 16 Mi values per call
        self.out = rf.sample(self.scheme, n, batch=self.batch, dtype=dtype, backend=backend, **self.kw)
        sync(backend)

    def _run(self, family, n, dtype, backend):
        rf.sample(self.scheme, n, batch=self.batch, dtype=dtype, backend=backend, out=self.out, seed=1,
                  **self.kw)
        sync(backend)

    def time_sample(self, family, n, dtype, backend):
        self._run(family, n, dtype, backend)

    def track_gbps(self, family, n, dtype, backend):
        """Achieved output bandwidth (GB/s written), best of 3."""
        import time
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            self._run(family, n, dtype, backend)
            best = min(best, time.perf_counter() - t0)
        return self.out.nbytes / best / 1e9

    track_gbps.unit = "GB/s"


class Orthogonal(Benchmark):
    params = ([64, 500], ["float32", "float64"], ["cpu", "cuda"])
    param_names = ["n", "dtype", "backend"]

    def setup(self, n, dtype, backend):
        cuda_or_skip(backend)
        self.batch = 8
        self.out = rf.sample("orthogonal", n, batch=self.batch, dtype=dtype, backend=backend)
        sync(backend)

    def time_orthogonal(self, n, dtype, backend):
        rf.sample("orthogonal", n, batch=self.batch, dtype=dtype, backend=backend, out=self.out)
        sync(backend)


class Philox(Benchmark):
    params = ([1 << 20],)
    param_names = ["blocks"]

    def setup(self, blocks):
        import numpy as np
        self.ctr = np.zeros((blocks, 4), np.uint32)
        self.ctr[:, 0] = np.arange(blocks, dtype=np.uint32)
        self.key = np.array([1, 2], np.uint32)
        rf.rng.philox4x32(self.ctr[:4], self.key)

    def time_philox_blocks(self, blocks):
        rf.rng.philox4x32(self.ctr, self.key)
