"""The random stream contract, public face (docs/rng.md is its prose twin; change both together, with a
version bump).

The numbers of the contract — the Philox4x32-10 key and counter layout, the purposes, the limits, the
word → float mapping and its constants — live in ``rinit_fast.spec.stream`` (read by the kernels too; its
docstring has the counter table).  This module re-exports them and adds the validated entry points: the
key of a seed, the counter word of a purpose, the block function on either backend, and the streams as
arrays (``normals``, ``uniforms``: exactly the values the engine's kernels draw).

Box–Muller uses ``r = sqrt(-2 log u1)`` with ``u1`` in (0, 1] and the angle ``2 pi u2`` reduced to an
octant exactly in integers; log, sin and cos are fixed polynomials (kernels/cpu/philox.py,
kernels/cuda/philox.cuh) evaluated without fused multiply-add, so CPU and GPU agree bit for bit.
"""
from __future__ import annotations

import numpy as np

from . import _backend, _validate
from .spec.stream import MAX_INDEX, MAX_SEED, MAX_SUB, STREAM_VERSION, Purpose  # noqa: F401  (re-exported)
from .spec import stream as _spec


def key_words(seed):
    """The Philox key (k0, k1) of a seed, as numpy.uint64 scalars (each < 2**32)."""
    seed = _validate.seed(seed)
    return np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)


def counter_word3(purpose, sub=0):
    """The counter word c3 = purpose << 24 | sub."""
    purpose = Purpose(purpose)
    if not 0 <= sub < MAX_SUB:
        raise ValueError(f"sub-index must be in [0, 2**24), got {sub}")
    return np.uint64(_spec.counter_word3(purpose, sub))


def philox4x32(counter, key):
    """The Philox4x32-10 block function, vectorised over uint32 arrays.

    ``counter``: (..., 4) uint32, ``key``: (..., 2) uint32 (broadcast against each other).  Returns the
    (..., 4) uint32 output words.  NumPy arrays run on the CPU, CuPy arrays on the GPU.  Reproduces
    the known answers published with Random123 (tests/test_rng.py).
    """
    xp = _backend.array_module(counter)
    counter = xp.asarray(counter)
    key = xp.asarray(key)
    for name, a, w in (("counter", counter, 4), ("key", key, 2)):
        if a.dtype != xp.uint32:
            raise TypeError(f"philox4x32: {name} must be a uint32 array, got dtype {a.dtype}; "
                            f"convert with .astype('uint32') after checking the values fit")
        if a.ndim == 0 or a.shape[-1] != w:
            raise ValueError(f"philox4x32: {name} must have {w} words in its last axis, got shape "
                             f"{tuple(a.shape)}")
    shape = np.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    ctr = xp.broadcast_to(counter, shape + (4,)).reshape(-1, 4).copy()  # writable, C order
    k = xp.broadcast_to(key, shape + (2,)).reshape(-1, 2).copy()
    out = xp.empty_like(ctr)
    if xp is np:
        from .kernels.cpu import philox as cpu
        cpu.philox4x32_blocks(ctr, k, out)
    else:
        from .kernels.cuda import loader
        loader.philox4x32_blocks(ctr, k, out)
    return out.reshape(shape + (4,))


def _fill(kind, out3, seed, index, purpose, sub, mul=1.0, add=0.0, scale=1.0):
    """Fill ``out3`` (A, S, N), C-contiguous, float32/float64: row (a, s) = stream (index + a, sub + s).

    ``kind``: "normal" (scale · N(0, 1)), "uniform" ((u · mul + add) · scale), "truncated" (scale · N(0, 1)
    redrawn while |z| > TRUNC_BOUND).  The array's module picks the backend's kernels (same names on both:
    kernels/cpu/sampling.py, kernels/cuda/loader.py)."""
    k0, k1 = key_words(seed)
    c2 = np.uint64(index)
    c3 = counter_word3(purpose, sub)
    dt = out3.dtype.type
    if _backend.array_module(out3) is np:
        from .kernels.cpu import sampling as kern
    else:
        from .kernels.cuda import loader as kern
    sfx = "f32" if out3.dtype == np.float32 else "f64"
    if kind == "normal":
        getattr(kern, f"normal_{sfx}")(out3, k0, k1, c2, c3, dt(scale))
    elif kind == "uniform":
        getattr(kern, f"uniform_{sfx}_fill")(out3, k0, k1, c2, c3, dt(mul), dt(add), dt(scale))
    elif kind == "truncated":
        getattr(kern, f"truncated_{sfx}")(out3, k0, k1, c2, c3, dt(_spec.TRUNC_BOUND), dt(scale))
    else:  # pragma: no cover - internal callers only
        raise ValueError(kind)
    return out3


def _stream(kind, seed, purpose, index, count, n_index, sub, n_sub, dtype, backend):
    dtype = _validate.real_dtype(dtype, "dtype")
    _validate.stream_range(index, n_index, sub, n_sub)
    count = _validate.positive_int(count, "count")
    xp = _backend.xp(backend)
    out = xp.empty((n_index, n_sub, count), dtype=dtype)
    return _fill(kind, out, seed, index, purpose, sub)


def normals(seed, purpose, index=0, count=1, *, n_index=1, sub=0, n_sub=1, dtype="float64",
            backend="cpu"):
    """Values 0..count-1 of the N(0, 1) streams (index + a, sub + s) of ``purpose``: shape
    (n_index, n_sub, count).  Exactly the numbers the engine's kernels draw for that purpose."""
    return _stream("normal", seed, purpose, index, count, n_index, sub, n_sub, dtype, backend)


def uniforms(seed, purpose, index=0, count=1, *, n_index=1, sub=0, n_sub=1, dtype="float64",
             backend="cpu"):
    """Values 0..count-1 of the U[0, 1) streams (index + a, sub + s) of ``purpose``: shape
    (n_index, n_sub, count)."""
    return _stream("uniform", seed, purpose, index, count, n_index, sub, n_sub, dtype, backend)
