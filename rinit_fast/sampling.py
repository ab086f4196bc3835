"""``rf.sample``: validate, plan, and call the backend's sampling kernel."""
from __future__ import annotations

import numpy as np

from . import _backend, _validate, scheme_table as schemes
from .rng import Purpose, _fill
from .spec.sample import ORTHO_CHUNK  # matrices per QR batch (bounds the float64 workspace)


def sample(scheme, shape, *, batch=None, seed=0, start=0, dtype="float32", backend="cpu", gain=1.0,
           out=None, layer=0, fans=None, **params):
    """Sample weight matrices of an initialisation scheme from the counter-based stream.

    Parameters
    ----------
    scheme : str
        A name from ``rf.schemes()`` (or an alias such as ``"xavier_uniform"``).
    shape : int or (fan_out, fan_in, *receptive_field)
        ``n`` means n×n.  PyTorch layout: ``y = W x``; a convolution weight is
        ``(out_channels, in_channels, *kernel_size)``.  Fans follow PyTorch's rule:
        ``fan_in = shape[1] · prod(shape[2:])``, ``fan_out = shape[0] · prod(shape[2:])``.  Value ``i``
        of the stream is entry ``i`` of the C-order flattening of one tensor, so a 2-D result is entry
        ``(i // fan_in, i % fan_in)``.  ``orthogonal`` draws the ``(shape[0], prod(shape[1:]))`` matrix
        (semi-orthogonal when not square) and reshapes it, as ``torch.nn.init.orthogonal_``.
    batch : int or None
        Number of matrices; the result is ``(batch, *shape)``, or ``shape`` when None.
    seed : int in [0, 2**64)
        The Philox key.
    start : int
        Matrix ``j`` of the result is matrix ``start + j`` of the stream for ``seed``, on every
        backend and whatever the batch size.
    dtype : "float32" or "float64"
        For ``complex_glorot`` these mean complex64/complex128 (which are accepted too).
    backend : "cpu" (NumPy result) or "cuda" (CuPy result).
    gain : float
        Multiplies the standard deviation (or bound, or constant) of the scheme.
    out : array, optional
        A C-contiguous buffer of the result's shape and dtype on the backend's device (NumPy, CuPy, or
        a foreign tensor through DLPack / ``__cuda_array_interface__``), filled in place.
    layer : int
        Sub-index of the weights stream (layer ``l`` of network ``start + j`` in ``rf.propagate``).
    fans : (fan_out, fan_in), optional
        Fans to use instead of PyTorch's rule, e.g. JAX's layout rule
        ``rinit_fast.scheme_table.jax_fans(shape, in_axis, out_axis, batch_axis)``.
    **params
        Scheme parameters (``std``, ``a``, ``value``, ``mode``, ``scale``, ``distribution``, ``c``,
        ``p``, ``s``); see ``docs/api.md``.
    """
    name = schemes.canonical(scheme)
    dims = _validate.weight_shape(shape)
    nb = 1 if batch is None else _validate.nonneg_int(batch, "batch")
    seed = _validate.seed(seed)
    start, nb, layer, _ = _validate.stream_range(start, nb, layer, 1)
    backend = _backend.check(backend)
    draw = schemes.resolve_shape(name, dims, gain, fans=fans, **params)
    odt = _validate.sample_dtype(dtype, draw.complex, name)
    rows, cols = schemes.orthogonal_matrix(dims)  # the 2-D view the kernels fill (C order)
    full_shape = dims if batch is None else (nb, *dims)
    if out is None:
        nbytes = nb * rows * cols * odt.itemsize
        if draw.family == "orthogonal":  # float64 Gaussian chunk, Q and LAPACK workspace
            nbytes += 3 * min(nb, ORTHO_CHUNK) * rows * cols * 8
        _validate.memory(nbytes, f"sample({name!r}, {full_shape})", backend)
        arr = _backend.xp(backend).empty(full_shape, dtype=odt)
    else:
        arr = _validate.out_array(out, full_shape, odt, backend)
    if nb == 0:
        return out if out is not None else arr
    _draw_into(arr.reshape(nb, rows, cols), draw, seed, start, layer, backend)
    return out if out is not None else arr


def _draw_into(a3, draw, seed, start, layer, backend):
    """Fill a3 (batch, fan_out, fan_in), C-contiguous, with the draw."""
    nb, fo, fi = a3.shape
    real = a3.view(a3.real.dtype) if draw.complex else a3
    flat = real.reshape(nb, 1, -1)
    f = draw.family
    if f == "constant":
        a3.fill(draw.scale)
    elif f == "normal":
        _fill("normal", flat, seed, start, Purpose.WEIGHTS, layer, scale=draw.scale)
    elif f == "uniform01":
        _fill("uniform", flat, seed, start, Purpose.WEIGHTS, layer, 1.0, 0.0, draw.scale)
    elif f == "uniform":
        _fill("uniform", flat, seed, start, Purpose.WEIGHTS, layer, 2.0, -1.0, draw.scale)
    elif f == "truncated":
        _fill("truncated", flat, seed, start, Purpose.WEIGHTS, layer, scale=draw.scale)
    elif f == "orthogonal":
        _orthogonal(a3, seed, start, layer, draw.scale, backend)
    else:  # pragma: no cover - the scheme table only produces the families above
        raise AssertionError(f)


def _orthogonal(a3, seed, start, layer, gain, backend):
    """Q·sign(diag R) of the stream's Gaussian matrices (Mezzadri 2007), QR in float64.

    Tall or square (fan_out >= fan_in): QR of G; wide: QR of G.T, transposed back (as PyTorch does),
    so rows are orthonormal.  The Gaussian matrix is exactly ``sample("normal", ...)`` of the same
    dtype, upcast to float64.
    """
    nb, fo, fi = a3.shape
    xp = _backend.xp(backend)
    for j0 in range(0, nb, ORTHO_CHUNK):
        j1 = min(nb, j0 + ORTHO_CHUNK)
        g = a3[j0:j1]
        _fill("normal", g.reshape(j1 - j0, 1, -1), seed, start + j0, Purpose.WEIGHTS, layer, scale=1.0)
        g64 = g.astype(np.float64)
        if fo < fi:
            g64 = xp.ascontiguousarray(g64.transpose(0, 2, 1))
        if backend == "cpu":
            q = np.empty_like(g64)
            _qr_haar_cpu(g64, q)
        else:
            from .kernels.cuda import loader
            q = loader.qr_haar(g64)
        if fo < fi:
            q = q.transpose(0, 2, 1)
        if gain != 1.0:
            q *= gain
        g[...] = q


def _qr_haar_cpu(g64, q):
    """One LAPACK QR per matrix, matrices spread over Numba's threads, each LAPACK call single-threaded
    (kernels/cpu/threads.py)."""
    from .kernels.cpu import sampling as kern, threads
    with threads.blas_single_thread():
        kern.qr_haar(g64, q)
