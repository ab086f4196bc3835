"""Shared asv machinery (after SciPy's benchmarks/common.py).

* ``Benchmark``: base class; subclasses warm up (JIT compilation, CUDA module loading) in ``setup`` so
  compile time never lands in a timing.
* ``cuda_or_skip()``: raises asv's ``SkipNotImplemented`` when CuPy or a GPU is missing, so CUDA
  benchmarks show ``n/a`` (skipped), not failed, on a CPU machine.
* ``sync(backend)``: GPU calls synchronise inside the timed function.
* ``warm_up(backend, call)``: runs a tiny call of the benchmarked function (same dtype and signature) in
  ``setup``, so that compilation or module loading stays out of the timings.
* ``best_time(call)``, ``GFLOPS``: for ``track_`` benchmarks that report an achieved rate.
* ``preload_cpu_kernels(*names)``: under ``asv run --launch-method forkserver``, loads the Numba kernels
  once in the fork server instead of once per benchmark process.

Time to first result (compilation itself) is measured on purpose, in fresh processes, by
bench/bench_startup.py.
"""
from __future__ import annotations

try:
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:  # asv < 0.6 or running outside asv
    SkipNotImplemented = NotImplementedError


class Benchmark:
    """Base class: asv attributes shared by every rinit_fast benchmark."""

    timeout = 300
    # asv repeats; kernels are deterministic, so a few samples suffice
    repeat = (3, 10, 20.0)
    number = 1


def cuda_or_skip(backend):
    if backend != "cuda":
        return
    from rinit_fast import _backend
    if not _backend.cuda_available():
        raise SkipNotImplemented("needs CuPy and a CUDA GPU")


def sync(backend):
    if backend == "cuda":
        import cupy
        cupy.cuda.get_current_stream().synchronize()


GFLOPS = "GFLOP/s"  # ``unit`` of the track_ benchmarks that report achieved floating-point rates


def warm_up(backend, call):
    """Run ``call()`` (a tiny call of the benchmarked function with the benchmark's dtype, sizes and
    backend) so that Numba compilation or CUDA module loading stays out of the timings.  Call
    ``cuda_or_skip(backend)`` first, before any CuPy array is made.  Every public function has a CUDA
    path: an exception here is a broken benchmark (asv reports it failed), never a skip."""
    result = call()
    sync(backend)
    return result


def best_time(call, repeat=3):
    """(best wall time of ``repeat`` calls of ``call()`` in seconds, the last call's result); ``call``
    synchronises the GPU itself."""
    import time
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - t0)
    return best, result


def preload_cpu_kernels(*names):
    """In asv's fork server only (``asv run --launch-method forkserver``): load every signature of the
    serial kernels of the families of the modules ``names`` (``"sampling"``, ``"spectral"``, ...) when the
    benchmark module is imported.

    The kernels compile lazily, one signature on its first call (kernels/cpu/_jit.py), so without this
    every benchmark process would load (on a cold cache: compile) the signatures it uses in its
    ``setup``.  The fork server imports the benchmark modules once and forks a process per benchmark:
    loaded there, the machine code is inherited by every fork.  Kernels compiled with ``parallel=True``
    (the sampling fills) are left to each benchmark process: loading one starts Numba's threading layer,
    and with the OpenMP layer every process forked after that aborts ("fork() called from a process
    already using GNU OpenMP"; measured).  Under asv's default ``spawn`` and in discovery this does
    nothing.  Warm-up calls in ``setup`` keep compilation out of the timings either way."""
    import sys
    if "run_server" not in sys.argv:
        return
    from rinit_fast.kernels.cpu import _jit
    for k, i in _jit.select(sorted({_jit.family_of(n) for n in names})):
        if not k.parallel:
            k.compile(i)
