"""The one decorator factory for Numba options (as numba-stats does).

Every CPU kernel is compiled with ``cache=True`` (a fresh install compiles each kernel once, on its
first use, and later processes load the machine code from the cache), ``nogil=True``,
``error_model="numpy"`` (no Python exception checks in hot loops) and, deliberately, **no fastmath**:
the random stream must give the same bits on every instruction set and on the GPU, which forbids
re-association and fused multiply-add contraction (docs/rng.md).

Kernels carry explicit signatures but are compiled lazily, **one signature at a time**, on the first
call with that signature's argument types: importing ``rinit_fast`` compiles nothing, and a program that
samples float32 matrices never pays for the float64 or complex specialisations.  Every kernel made here
is recorded in ``REGISTRY``; ``compile_all`` (``rinit-fast compile``) compiles every signature of every
registered kernel ahead of time, filling the on-disk cache (``NUMBA_CACHE_DIR``, docs/performance.md).
"""
from __future__ import annotations

import functools
import threading

import numba
import numpy as np
from numba import types

_COMMON = dict(cache=True, nogil=True, error_model="numpy", fastmath=False, boundscheck=False)

REGISTRY = []
"""Every LazyKernel created by ``kernel``, in definition order."""


def _key(args):
    """What selects a signature: the Numba type of each array argument (scalars convert)."""
    return tuple(numba.typeof(a) if isinstance(a, np.ndarray) else None for a in args)


def _matches(sig, key):
    for want, got in zip(sig.args, key):
        if got is None:
            continue
        if not isinstance(want, types.Array) or want.dtype != got.dtype or want.ndim != got.ndim:
            return False
        if want.layout == "C" and got.layout != "C":
            return False
    return True


class LazyKernel:
    """A Numba kernel with explicit signatures, each compiled (or loaded from the cache) on first use."""

    def __init__(self, fn, signatures, opts):
        self.py_func = fn
        self.signatures = signatures
        self._opts = opts
        self._by_sig = {}
        self._by_key = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)
        REGISTRY.append(self)

    def _compile(self, i):
        d = self._by_sig.get(i)
        if d is None:
            with self._lock:
                d = self._by_sig.get(i)
                if d is None:
                    if self.signatures is None:
                        d = numba.njit(**self._opts)(self.py_func)
                    else:
                        d = numba.njit([self.signatures[i]], **self._opts)(self.py_func)
                    self._by_sig[i] = d
        return d

    def dispatcher_for(self, *args):
        """The compiled Numba dispatcher of the signature that ``args`` select."""
        if self.signatures is None or len(self.signatures) == 1:
            return self._compile(0)
        key = _key(args)
        d = self._by_key.get(key)
        if d is None:
            for i, sig in enumerate(self.signatures):
                if _matches(sig, key):
                    d = self._by_key[key] = self._compile(i)
                    break
            else:
                raise TypeError(f"{self.py_func.__name__}: no signature for argument types {key}; "
                                f"have {[str(s) for s in self.signatures]}")
        return d

    @property
    def dispatcher(self):
        """The dispatcher of a single-signature kernel (compiled on first access)."""
        if self.signatures is not None and len(self.signatures) > 1:
            raise TypeError(f"{self.py_func.__name__} has {len(self.signatures)} signatures: "
                            f"use dispatcher_for(*args)")
        return self._compile(0)

    def compile_all(self):
        """Compile (or load from the cache) every signature."""
        for i in range(0 if self.signatures is None else len(self.signatures)):
            self._compile(i)

    def __call__(self, *args):
        return self.dispatcher_for(*args)(*args)

    def __repr__(self):
        return f"<LazyKernel {self.py_func.__module__}.{self.py_func.__qualname__}>"


def kernel(signature=None, *, parallel=False, **extra):
    """Decorate a kernel (a function called from Python) with the project's options.

    ``signature`` is a Numba signature or a list of them; each compiles on the first call that needs it.
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


def compile_all(modules=None):
    """Import ``modules`` (default: every CPU kernel module) and compile every signature of every
    registered kernel; returns the number of kernels.  Fills the Numba cache ahead of first use."""
    import importlib
    for m in modules or ("philox", "sampling", "spectral", "unroll", "propagate"):
        importlib.import_module(f"{__package__}.{m}")
    for k in list(REGISTRY):
        k.compile_all()
    return len(REGISTRY)
