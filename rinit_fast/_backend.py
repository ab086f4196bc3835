"""Backend selection: "cpu" (NumPy + Numba) or "cuda" (CuPy + CUDA C).

CuPy is imported only here and only when the CUDA path is asked for; nothing imports it at module
import time.
"""
from __future__ import annotations

import os

import numpy as np

BACKENDS = ("cpu", "cuda")


def _cupy():
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        raise RuntimeError(
            'backend="cuda" needs CuPy for CUDA 13 and an NVIDIA GPU: pip install "rinit_fast[cuda]" '
            f'(CuPy could not be imported: {exc}); use backend="cpu" otherwise') from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise RuntimeError(f'backend="cuda": no usable CUDA device ({exc}); use backend="cpu"') from exc
    if n < 1:
        raise RuntimeError('backend="cuda": CuPy found no CUDA device; use backend="cpu"')
    return cupy


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        _cupy()
    except RuntimeError:
        return False
    return True


def check(backend):
    """Validate a backend name (and, for "cuda", that it can run); returns the name."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cuda":
        _cupy()
    return backend


def xp(backend):
    """The array module of a backend."""
    return np if check(backend) == "cpu" else _cupy()


def is_cupy(a):
    mod = type(a).__module__
    return mod.startswith("cupy") or mod.startswith("cupyx")


def array_module(a):
    """numpy for host arrays, cupy for CuPy arrays."""
    if is_cupy(a):
        return _cupy()
    return np


def backend_of(a):
    return "cuda" if is_cupy(a) else "cpu"


def available_memory(backend="cpu"):
    """Bytes that can be allocated now (host: MemAvailable; GPU: free device memory)."""
    if backend == "cuda":
        free, _total = _cupy().cuda.runtime.memGetInfo()
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62
