"""Sampling kernels: fill an (index, sub, values) array from the stream.

Row ``out[a, s]`` holds values 0, 1, ... of the stream with counter words c2 = ``c2_start + a``
(the matrix, network or other index) and c3 = ``c3_base + s`` (purpose and sub-index), see
docs/rng.md.  A batch of weight matrices is ``out`` of shape (batch, 1, fan_out * fan_in), value
``i`` being entry ``(i // fan_in, i % fan_in)``.

Every value comes from the one stream body (``stream.py``), so the bits do not depend on the batch,
the chunking or the thread count.  Work is split into items of at most ``CHUNK`` values of one row;
the compiled kernels fill a range of items and release the GIL, and ``threads.run_chunks`` spreads the
items over the CPU threads (coarse parallelism, no Numba parallel region: a ``prange`` kernel cost
twice the compile time for no gain at this granularity; bench/NOTES.md "Stream body").

The Python functions here keep the signatures that ``rinit_fast.rng`` and ``rinit_fast.sampling`` call
on either backend (the CUDA loader has the same names).
"""
from __future__ import annotations

import numpy as np
from numba import types

from . import threads
from ._jit import kernel
from .philox import M32
from .stream import fill_normal, fill_truncated, fill_uniform, redraw

CHUNK = 8192            # values per work item (a multiple of 4: items start on block boundaries)
SERIAL_VALUES = 1 << 16  # below this many values in all, one thread (a thread pool costs more than it saves)

_u64 = types.uint64
_i64 = types.int64


def _arr(dt):
    return types.Array(dt, 3, "C")


def _sig(dt, nscal):
    return types.void(_arr(dt), _u64, _u64, _u64, _u64, *([dt] * nscal), _i64, _i64)


def _normal_items(out, k0, k1, c2_start, c3_base, std, t0, t1):
    """Items t0 .. t1-1 of out: std · N(0, 1) values of stream (c2_start + a, c3_base + s)."""
    nmat, nsub, nval = out.shape
    nch = (nval + CHUNK - 1) // CHUNK
    for t in range(t0, t1):
        ms = t // nch
        v0 = (t - ms * nch) * CHUNK
        m = ms // nsub
        s = ms - m * nsub
        c2 = (c2_start + np.uint64(m)) & M32
        c3 = (c3_base + np.uint64(s)) & M32
        n = min(CHUNK, nval - v0)
        fill_normal(out[m, s], v0, v0, n, c2, c3, k0, k1, std)


def _uniform_items(out, k0, k1, c2_start, c3_base, mul, add, scale, t0, t1):
    """Items t0 .. t1-1 of out: (u · mul + add) · scale, u ~ U[0, 1) of stream (c2_start + a, c3_base + s)."""
    nmat, nsub, nval = out.shape
    nch = (nval + CHUNK - 1) // CHUNK
    for t in range(t0, t1):
        ms = t // nch
        v0 = (t - ms * nch) * CHUNK
        m = ms // nsub
        s = ms - m * nsub
        c2 = (c2_start + np.uint64(m)) & M32
        c3 = (c3_base + np.uint64(s)) & M32
        n = min(CHUNK, nval - v0)
        fill_uniform(out[m, s], v0, v0, n, c2, c3, k0, k1, mul, add, scale)


def _truncated_items(out, k0, k1, c2_start, c3_base, bound, std, t0, t1):
    """Items t0 .. t1-1 of out: std · the truncated normal stream (redraws while |z| > bound), in one pass
    per item (the redraws read the item's normals while they are in cache)."""
    nmat, nsub, nval = out.shape
    nch = (nval + CHUNK - 1) // CHUNK
    for t in range(t0, t1):
        ms = t // nch
        v0 = (t - ms * nch) * CHUNK
        m = ms // nsub
        s = ms - m * nsub
        c2 = (c2_start + np.uint64(m)) & M32
        c3 = (c3_base + np.uint64(s)) & M32
        n = min(CHUNK, nval - v0)
        fill_truncated(out[m, s], v0, v0, n, c2, c3, k0, k1, bound, std)


def _redraw_items(out, k0, k1, c2_start, c3_base, bound, std, t0, t1):
    """Items t0 .. t1-1 of out, which holds the plain normals: redraw |z| > bound, scale by std."""
    nmat, nsub, nval = out.shape
    nch = (nval + CHUNK - 1) // CHUNK
    for t in range(t0, t1):
        ms = t // nch
        v0 = (t - ms * nch) * CHUNK
        m = ms // nsub
        s = ms - m * nsub
        c2 = (c2_start + np.uint64(m)) & M32
        c3 = (c3_base + np.uint64(s)) & M32
        n = min(CHUNK, nval - v0)
        redraw(out[m, s], v0, v0, n, c2, c3, k0, k1, bound, std)



# One kernel per (function, dtype), each with one signature: a float32 program compiles only float32 code,
# and `rinit-fast compile --dtype float32` still selects the float64 fills that float32 calls use (the
# spectral start vectors are float64 draws): a single-signature kernel is selected for every precision.
_KERNELS = {(fn.__name__, dt.name): kernel(_sig(dt, n))(fn)
            for fn, n in ((_normal_items, 1), (_uniform_items, 3), (_truncated_items, 2), (_redraw_items, 2))
            for dt in (types.float32, types.float64)}


def _run(fn, out3, *args):
    """Run a per-item kernel over every item of out3 on the CPU threads."""
    nmat, nsub, nval = out3.shape
    items = nmat * nsub * (-(-nval // CHUNK))
    if items == 0:
        return
    d = _KERNELS[fn.__name__, out3.dtype.name].dispatcher
    if items == 1 or out3.size <= SERIAL_VALUES:
        d(out3, *args, 0, items)
    else:
        threads.run_chunks(lambda t0, t1: d(out3, *args, t0, t1), items, per_thread=4)


def _u(x):
    return np.uint64(x)


# --- the entry points rinit_fast.rng and rinit_fast.sampling call (same names on the CUDA loader) -----
def normal_f32(out, k0, k1, c2_start, c3_base, std):
    """out[m, s, i] = std · value i of the normal stream (c2_start + m, c3_base + s), float32."""
    _run(_normal_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), np.float32(std))


def normal_f64(out, k0, k1, c2_start, c3_base, std):
    """float64 twin of normal_f32."""
    _run(_normal_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), np.float64(std))


def uniform_f32_fill(out, k0, k1, c2_start, c3_base, mul, add, scale):
    """out[m, s, i] = (u · mul + add) · scale, u the float32 uniform value i of stream (c2_start + m, c3_base + s)."""
    f = np.float32
    _run(_uniform_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), f(mul), f(add), f(scale))


def uniform_f64_fill(out, k0, k1, c2_start, c3_base, mul, add, scale):
    """float64 twin of uniform_f32_fill."""
    f = np.float64
    _run(_uniform_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), f(mul), f(add), f(scale))


def truncated_f32(out, k0, k1, c2_start, c3_base, bound, std):
    """out[m, s, i] = std · value i of the truncated float32 normal stream (|z| <= bound by redraws; docs/rng.md)."""
    _run(_truncated_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), np.float32(bound), np.float32(std))


def truncated_f64(out, k0, k1, c2_start, c3_base, bound, std):
    """float64 twin of truncated_f32."""
    _run(_truncated_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), np.float64(bound), np.float64(std))


def truncate_f32(out, k0, k1, c2_start, c3_base, bound, std):
    """Given out = the plain normals (normal_f32 with std 1), redraw |z| > bound, then scale by std."""
    _run(_redraw_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), np.float32(bound), np.float32(std))


def truncate_f64(out, k0, k1, c2_start, c3_base, bound, std):
    """float64 twin of truncate_f32."""
    _run(_redraw_items, out, _u(k0), _u(k1), _u(c2_start), _u(c3_base), np.float64(bound), np.float64(std))


@kernel(types.void(types.float64[:, :, ::1], types.float64[:, :, ::1], _i64, _i64))
def _qr_items(g, q, m0, m1):
    """q[m] = Q of the QR of g[m] (rows >= cols), columns multiplied by sign(diag R): Haar measure
    (Mezzadri 2007).  One LAPACK QR per matrix (Numba's np.linalg.qr: public API)."""
    for m in range(m0, m1):
        qm, rm = np.linalg.qr(g[m])
        for j in range(qm.shape[1]):
            if rm[j, j] < 0.0:
                for i in range(qm.shape[0]):
                    q[m, i, j] = -qm[i, j]
            else:
                for i in range(qm.shape[0]):
                    q[m, i, j] = qm[i, j]


def qr_haar(g, q):
    """q[m] = Q·sign(diag R) of g[m] for every m; matrices spread over the CPU threads (callers pin
    BLAS to one thread: threads.blas_single_thread)."""
    d = _qr_items.dispatcher
    nb = g.shape[0]
    if nb == 1:
        d(g, q, 0, 1)
    else:
        threads.run_tasks(lambda m: d(g, q, m, m + 1), nb)
