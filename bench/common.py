"""Shared asv machinery (after SciPy's benchmarks/common.py).

* ``Benchmark``: base class; subclasses warm up (JIT compilation, CUDA module loading) in ``setup`` so
  compile time never lands in a timing.
* ``cuda_or_skip()``: raises ``NotImplementedError`` (asv's "skipped" signal, ``SkipNotImplemented``)
  when CuPy or a GPU is missing, so CUDA benchmarks are skipped, not failed, on a CPU machine.
* ``sync(backend)``: GPU calls synchronise inside the timed function.
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
