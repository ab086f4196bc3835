"""The one decorator factory for Numba options (as numba-stats does).

Every CPU kernel is compiled with ``cache=True`` (a fresh install compiles each kernel once, on its
first use, and later processes load the machine code from the cache), ``nogil=True``,
``error_model="numpy"`` (no Python exception checks in hot loops) and, deliberately, **no fastmath**:
the random stream must give the same bits on every instruction set and on the GPU, which forbids
re-association and fused multiply-add contraction (docs/rng.md).

Kernels carry explicit signatures but are compiled lazily, on first call: importing ``rinit_fast``
compiles nothing, and a program pays only for the kernels it uses.
"""
from __future__ import annotations

import functools
import threading

import numba

_COMMON = dict(cache=True, nogil=True, error_model="numpy", fastmath=False, boundscheck=False)


class LazyKernel:
    """A Numba kernel compiled for its explicit signatures on first use."""

    def __init__(self, fn, signatures, opts):
        self.py_func = fn
        self._signatures = signatures
        self._opts = opts
        self._dispatcher = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    @property
    def dispatcher(self):
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    if self._signatures is None:
                        self._dispatcher = numba.njit(**self._opts)(self.py_func)
                    else:
                        self._dispatcher = numba.njit(self._signatures, **self._opts)(self.py_func)
        return self._dispatcher

    def __call__(self, *args):
        return self.dispatcher(*args)


def kernel(signature=None, *, parallel=False, **extra):
    """Decorate a kernel (a function called from Python) with the project's options.

    ``signature`` is a Numba signature or a list of them; compilation waits for the first call.
    """
    opts = dict(_COMMON, parallel=parallel, **extra)
    if signature is not None and not isinstance(signature, (list, tuple)):
        signature = [signature]

    def wrap(fn):
        return LazyKernel(fn, signature, opts)
    return wrap


def device(fn=None, **extra):
    """Compile a helper that is only called from other kernels.

    Helpers are inlined at the Numba IR level (``inline="always"``): LLVM's own inliner gives up on
    a function as large as ten unrolled Philox rounds, and a call left in a loop body stops that
    loop from being vectorised (measured: 15 ns per block instead of 2; bench/NOTES.md).
    """
    opts = dict(_COMMON, inline="always", **extra)
    if fn is None:
        return numba.njit(**opts)
    return numba.njit(**opts)(fn)
