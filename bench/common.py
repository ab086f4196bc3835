"""Shared asv machinery (after SciPy's benchmarks/common.py).

* ``Benchmark``: base class; subclasses warm up (JIT compilation, CUDA module loading) in ``setup`` so
  compile time never lands in a timing.
* ``cuda_or_skip()``: raises ``NotImplementedError`` (asv's "skipped" signal, ``SkipNotImplemented``)
  when CuPy or a GPU is missing, so CUDA benchmarks are skipped, not failed, on a CPU machine.
* ``sync(backend)``: GPU calls synchronise inside the timed function.
* ``warm_up(backend, call)``: runs a tiny call of the benchmarked function (same dtype and signature) in
  ``setup``; on the CUDA backend a ``NotImplementedError`` from it (a kernel whose CUDA path is not
  written yet) becomes ``SkipNotImplemented``, so the benchmark shows ``n/a`` and starts running by
  itself once the kernel lands.
* ``best_time(call)``, ``GFLOPS``: for ``track_`` benchmarks that report an achieved rate.
* ``preload_cpu_kernels(*names)``: under ``asv run --launch-method forkserver``, loads the Numba kernels
  once in the fork server instead of once per benchmark process.
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
    backend) so that Numba compilation or CUDA module loading stays out of the timings.

    On ``backend == "cuda"`` a ``NotImplementedError`` raised by the call means that the function has no
    CUDA path yet: it is turned into ``SkipNotImplemented`` (asv shows ``n/a``). On the CPU it propagates
    (a failure). Call ``cuda_or_skip(backend)`` first, before any CuPy array is made."""
    try:
        result = call()
    except SkipNotImplemented:
        raise
    except NotImplementedError as exc:
        if backend == "cuda":
            raise SkipNotImplemented(f"CUDA path not implemented yet: {exc}") from exc
        raise
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
    """In asv's fork server only (``asv run --launch-method forkserver``): import
    ``rinit_fast.kernels.cpu.<name>`` for each name when the benchmark module is imported.

    The kernels are Numba functions with explicit signatures and ``cache=True``: importing a kernel module
    loads (on a cold cache: compiles) them, 1-1.7 s per module on this machine, and the API imports its
    kernel module on first use, i.e. in every benchmark process's ``setup``. The fork server imports the
    benchmark modules once and forks a process per benchmark, so a preload there is paid once per run.
    Under asv's default ``spawn`` (a fresh process per benchmark and parameter set, what CI uses) and in
    discovery this does nothing: there it would only add the import to the benchmarks that are skipped.
    Warm-up calls in ``setup`` keep compilation out of the timings either way."""
    import importlib
    import sys
    if "run_server" not in sys.argv:
        return
    for name in names:
        importlib.import_module(f"rinit_fast.kernels.cpu.{name}")
