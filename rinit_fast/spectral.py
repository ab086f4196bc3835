"""``rf.spectral_radius`` and ``rf.spectral_norm``: validate, plan, call the backend's kernel.

The algorithms, the accuracy measured against LAPACK and the exact meaning of ``converged`` are in
docs/spectral.md; the kernels are kernels/cpu/spectral.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _backend, _validate
from .kernels.cpu import threads
from .rng import Purpose, normals

PATHS = ("ritz", "triangular", "isometry", "nilpotent", "exact")
"""How each radius was obtained (``SpectralResult.path``):

- ``"ritz"``: thick-restart Arnoldi (Rayleigh–Ritz) after a power filter; ``converged`` is its test.
- ``"triangular"``: W is (upper or lower) triangular, or zero: the radius is max |W_ii|, exactly.
- ``"isometry"``: W is c times an isometry (all singular values equal, measured on two random probes at
  rounding level): every eigenvalue has modulus c, the growth factor of the iterates.
- ``"nilpotent"``: an iterate W^p x of the random start vector became exactly zero: radius 0.
- ``"exact"``: ``method="exact"`` (LAPACK ``geev``).
"""

DEFAULT_TOL = 1e-4          # radius: relative accuracy aimed at (docs/spectral.md)
DEFAULT_NORM_TOL = 1e-7     # norm: relative accuracy aimed at
KRYLOV_DIM = 40
KEEP = 20
N_RITZ = 6
NORM_KRYLOV_DIM = 48


@dataclass(frozen=True)
class SpectralResult:
    """Spectral radius estimates of a stack of matrices; every array has W's batch shape (``W.shape[:-2]``).

    Attributes
    ----------
    radius : float64 array
        The estimate of max |lambda_i(W)|.
    converged : bool array
        True when the estimate passed its test (for ``path == "ritz"``: the largest-modulus Ritz value has
        relative residual <= tol/100 and moved by <= tol/10 between the last two Rayleigh–Ritz checks;
        the other paths are exact or certified).  A False entry may be wrong: recompute it with
        ``method="exact"`` or a larger ``max_iter``.
    iterations : int64 array
        Products of W (or Wᴴ) with a vector spent on the matrix.
    residual : float64 array
        Relative residual ||W y - theta y|| / (|theta| ||y||) of the top Ritz pair (path "ritz"), the
        isometry defect (path "isometry"), 0 for exact paths.
    ritz : complex128 array (..., n_ritz)
        The largest-modulus Ritz values (eigenvalues for the exact paths), by decreasing modulus; NaN
        where not available (path "isometry", or fewer than n_ritz values).
    path : str array
        How each answer was obtained, one of :data:`PATHS`.
    method : str
        ``"power"`` or ``"exact"``.
    """

    radius: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    ritz: np.ndarray
    path: np.ndarray
    method: str


@dataclass(frozen=True)
class NormResult:
    """Spectral norm (largest singular value) estimates; arrays have W's batch shape.

    Attributes
    ----------
    norm : float64 array
        The estimate of ||W||_2.
    converged : bool array
        True when the a-posteriori bound on the top Ritz value of Wᴴ W is <= tol (relative) and the value
        was stable between the last two checks.
    iterations : int64 array
        Products of W or Wᴴ with a vector (two per Lanczos step).
    residual : float64 array
        The relative error bound on the norm, min(r, r²/gap) / (2 theta), r the Lanczos residual.
    method : str
    """

    norm: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    method: str


def _prepare(W, name):
    """Validation shared by both functions: returns (W as a C-contiguous (B, n, n) array, batch shape, n):
    a NumPy array, or a CuPy array for a CuPy W (the backend follows the array; validated on the device,
    without a host copy).  Raises before any kernel runs."""
    if _backend.is_cupy(W):
        batch_shape, n = _validate.square_stack(W, "W")
        _validate.finite(W, "W")
        cp = _backend._cupy()
        return cp.ascontiguousarray(W.reshape((-1, n, n))), batch_shape, n
    if not isinstance(W, np.ndarray):
        try:
            W = np.asarray(W)
        except Exception as exc:  # pragma: no cover - depends on the foreign object
            raise TypeError(f"{name}: W must be a NumPy or CuPy array, got {type(W).__name__}: {exc}") from exc
    batch_shape, n = _validate.square_stack(W, "W")
    _validate.finite(W, "W")
    return np.ascontiguousarray(W.reshape((-1, n, n))), batch_shape, n


def _start_vectors(seed, start, nb, n, nsub, complex_):
    """Start vectors of matrices start..start+nb-1 (stream purpose START, sub-index = vector): (nb, nsub, n)
    float64, or complex128 whose real and imaginary parts are values 2i and 2i+1 of the stream."""
    if complex_:
        x = normals(seed, Purpose.START, index=start, count=2 * n, n_index=nb, n_sub=nsub, dtype="float64")
        return np.ascontiguousarray(x.view(np.complex128))
    return normals(seed, Purpose.START, index=start, count=n, n_index=nb, n_sub=nsub, dtype="float64")


def _common_args(seed, start, nb, max_iter):
    seed = _validate.seed(seed)
    start, nb, _, _ = _validate.stream_range(start, nb)
    if max_iter is not None:
        max_iter = _validate.positive_int(max_iter, "max_iter")
    return seed, start, max_iter


def spectral_radius(W, *, tol=DEFAULT_TOL, max_iter=None, method="power", seed=0, start=0,
                    filter_steps=None, krylov_dim=KRYLOV_DIM, n_ritz=N_RITZ):
    """Spectral radius max |lambda_i| of each square matrix of W, with an honest convergence flag.

    Parameters
    ----------
    W : array (..., n, n)
        float32, float64, complex64 or complex128; NumPy (CPU).  All entries must be finite.
    tol : float in (0, 1)
        Relative accuracy aimed at (default 1e-4).  See docs/spectral.md for the measured error.
    max_iter : int, optional
        Most products of W with a vector per matrix (default ``filter_steps + 2000``); a matrix that runs
        out is returned with ``converged=False``.
    method : "power" or "exact"
        ``"exact"``: LAPACK ``geev`` in float64/complex128 (the reference; ~10-20x slower at n = 500).
    seed, start : int
        Start vectors of matrix j of W are the stream vectors of matrix ``start + j`` (purpose START):
        results do not depend on how a study is chunked.
    filter_steps : int, optional
        Power steps before the Arnoldi phase (default ``round(12 sqrt(n))``).
    krylov_dim : int
        Largest Krylov dimension of the Arnoldi phase (restarts keep half).
    n_ritz : int
        How many of the largest Ritz values to return in ``ritz``.

    Returns
    -------
    SpectralResult
    """
    W3, batch_shape, n = _prepare(W, "spectral_radius")
    nb = W3.shape[0]
    tol = _validate.tolerance(tol)
    method = _validate.spectral_method(method)
    seed, start, max_iter = _common_args(seed, start, nb, max_iter)
    n_ritz = _validate.positive_int(n_ritz, "n_ritz")
    krylov_dim = _validate.integer(krylov_dim, "krylov_dim")
    if krylov_dim < 8:
        raise ValueError(f"krylov_dim must be >= 8, got {krylov_dim}")
    if filter_steps is None:
        filter_steps = int(round(12 * math.sqrt(n)))
    filter_steps = _validate.nonneg_int(filter_steps, "filter_steps")
    if max_iter is None:
        max_iter = filter_steps + 2000
    cplx = np.iscomplexobj(W3)
    if _backend.is_cupy(W3):
        return _radius_cuda(W3, batch_shape, n, tol, max_iter, method, seed, start, filter_steps, krylov_dim,
                            n_ritz)
    if method == "exact":
        return _radius_exact(W3, batch_shape, n_ritz)
    _validate.memory(min(nb, threads.nthreads()) * (n * n * (24 if cplx else 12) + (krylov_dim + 2) * n * 32)
                     + nb * n * 32, f"spectral_radius scratch at n={n}")
    xs = _start_vectors(seed, start, nb, n, 2, cplx)
    radius = np.empty(nb)
    conv = np.empty(nb, dtype=np.bool_)
    its = np.empty(nb, dtype=np.int64)
    res = np.empty(nb)
    ritz = np.empty((nb, n_ritz), dtype=np.complex128)
    path = np.empty(nb, dtype=np.int8)
    wf_tmpl = np.zeros(1, dtype=np.complex64 if cplx else np.float32)
    eps_in = float(np.finfo(W3.dtype).eps)
    keep = max(2, krylov_dim // 2)
    from .kernels.cpu import spectral as kern
    _run_chunks(lambda b0, b1: kern.radius_power(W3, xs, wf_tmpl, tol, max_iter, filter_steps, krylov_dim,
                                                 keep, eps_in, b0, b1, radius, conv, its, res, ritz, path),
                nb)
    return SpectralResult(radius=radius.reshape(batch_shape), converged=conv.reshape(batch_shape),
                          iterations=its.reshape(batch_shape), residual=res.reshape(batch_shape),
                          ritz=ritz.reshape(batch_shape + (n_ritz,)),
                          path=np.asarray(PATHS)[path].reshape(batch_shape), method="power")


def spectral_norm(W, *, tol=DEFAULT_NORM_TOL, max_iter=None, method="power", seed=0, start=0,
                  krylov_dim=NORM_KRYLOV_DIM):
    """Spectral norm ||W||_2 (largest singular value) of each square matrix of W.

    Lanczos on Wᴴ W with full reorthogonalisation, from the stream's start vector of matrix ``start + j``
    (the first START vector, the same one ``spectral_radius`` uses).  Parameters as ``spectral_radius``;
    ``tol`` (default 1e-7) is the relative accuracy aimed at, ``max_iter`` (default 4000) counts
    products with W or Wᴴ; ``method="exact"`` is LAPACK's SVD.
    """
    W3, batch_shape, n = _prepare(W, "spectral_norm")
    nb = W3.shape[0]
    tol = _validate.tolerance(tol)
    method = _validate.spectral_method(method)
    seed, start, max_iter = _common_args(seed, start, nb, max_iter)
    krylov_dim = _validate.integer(krylov_dim, "krylov_dim")
    if krylov_dim < 8:
        raise ValueError(f"krylov_dim must be >= 8, got {krylov_dim}")
    if max_iter is None:
        max_iter = 4000
    if _backend.is_cupy(W3):
        return _norm_cuda(W3, batch_shape, n, tol, max_iter, method, seed, start, krylov_dim)
    if method == "exact":
        return _norm_exact(W3, batch_shape)
    cplx = np.iscomplexobj(W3)
    _validate.memory(min(nb, threads.nthreads()) * (n * n * 16 + (krylov_dim + 2) * n * 16) + nb * n * 16,
                     f"spectral_norm scratch at n={n}")
    x = np.ascontiguousarray(_start_vectors(seed, start, nb, n, 1, cplx)[:, 0])
    norm = np.empty(nb)
    conv = np.empty(nb, dtype=np.bool_)
    its = np.empty(nb, dtype=np.int64)
    res = np.empty(nb)
    tmpl = np.zeros(1, dtype=np.complex128 if cplx else np.float64)
    from .kernels.cpu import spectral as kern
    _run_chunks(lambda b0, b1: kern.norm_lanczos(W3, x, tmpl, tol, max_iter, krylov_dim, b0, b1, norm, conv,
                                                 its, res), nb)
    return NormResult(norm=norm.reshape(batch_shape), converged=conv.reshape(batch_shape),
                      iterations=its.reshape(batch_shape), residual=res.reshape(batch_shape),
                      method="power")


# --- threads: whole matrices per thread, the kernels release the GIL, BLAS single-threaded ----------
def _run_chunks(fn, nb):
    """fn(b0, b1) over [0, nb) in small chunks of whole matrices (dynamic balance: matrices differ in cost;
    no barrier inside one), on threads.nthreads() threads with BLAS single-threaded."""
    with threads.blas_single_thread():
        threads.run_chunks(fn, nb, per_thread=4)


# --- method="exact": LAPACK, one matrix per thread (LAPACK releases the GIL) ------------------------
def _map_matrices(fn, W3):
    with threads.blas_single_thread():
        return threads.run_tasks(fn, W3.shape[0])


def _radius_exact(W3, batch_shape, n_ritz):
    wide = np.complex128 if np.iscomplexobj(W3) else np.float64
    nb = W3.shape[0]
    ritz = np.full((nb, n_ritz), np.nan, dtype=np.complex128)

    def one(b):
        ev = np.linalg.eigvals(W3[b].astype(wide))
        order = np.argsort(-np.abs(ev), kind="stable")[:n_ritz]
        ritz[b, :order.size] = ev[order]
        return float(np.abs(ev[order[0]]))

    radius = np.array(_map_matrices(one, W3), dtype=np.float64)
    return SpectralResult(radius=radius.reshape(batch_shape),
                          converged=np.ones(batch_shape, dtype=np.bool_),
                          iterations=np.zeros(batch_shape, dtype=np.int64),
                          residual=np.zeros(batch_shape), ritz=ritz.reshape(batch_shape + (n_ritz,)),
                          path=np.full(batch_shape, "exact", dtype=np.asarray(PATHS).dtype), method="exact")


def _norm_exact(W3, batch_shape):
    wide = np.complex128 if np.iscomplexobj(W3) else np.float64

    def one(b):
        return float(np.linalg.svd(W3[b].astype(wide), compute_uv=False)[0])

    norm = np.array(_map_matrices(one, W3), dtype=np.float64)
    return NormResult(norm=norm.reshape(batch_shape), converged=np.ones(batch_shape, dtype=np.bool_),
                      iterations=np.zeros(batch_shape, dtype=np.int64), residual=np.zeros(batch_shape),
                      method="exact")


# --- CuPy input: kernels/cuda/spectral.cu through kernels/cuda/spectral_launch.py (docs/cuda.md) -------
def _radius_cuda(W3, batch_shape, n, tol, max_iter, method, seed, start, filter_steps, krylov_dim, n_ritz):
    cp = _backend._cupy()
    from .kernels.cuda import spectral_launch as gpu
    nb = W3.shape[0]
    cplx = np.iscomplexobj(W3)
    if method == "exact":
        ev = gpu.radius_exact(W3)
        if ev is None:                      # no general eigvals in this CuPy: LAPACK on a host copy
            return _to_cupy(_radius_exact(W3.get(), batch_shape, n_ritz), cp)
        ritz = np.full((nb, n_ritz), np.nan, dtype=np.complex128)
        order = np.argsort(-np.abs(ev), axis=1, kind="stable")[:, :n_ritz]
        top = np.take_along_axis(ev, order, axis=1)
        ritz[:, :top.shape[1]] = top
        res = SpectralResult(radius=np.abs(top[:, 0]).reshape(batch_shape),
                             converged=np.ones(batch_shape, dtype=np.bool_),
                             iterations=np.zeros(batch_shape, dtype=np.int64), residual=np.zeros(batch_shape),
                             ritz=ritz.reshape(batch_shape + (n_ritz,)),
                             path=np.full(batch_shape, "exact", dtype=np.asarray(PATHS).dtype), method="exact")
        return _to_cupy(res, cp)
    keep = max(2, krylov_dim // 2)
    m = min(krylov_dim, n)
    item = 16 if cplx else 8
    _validate.memory(nb * n * n * (8 if cplx else 4) + nb * ((m + 1) * n * item + (m + 1) * m * item)
                     + nb * 4 * n * item, f"spectral_radius GPU scratch at n={n}", backend="cuda")
    gpu.check_fits(n, m, min(NORM_KRYLOV_DIM, n), cplx)
    xs = _start_vectors_cuda(seed, start, nb, n, 2, cplx)
    eps_in = float(np.finfo(W3.dtype).eps)
    radius, conv, its, res, ritz, path = gpu.radius_power(W3, xs, tol, max_iter, filter_steps, krylov_dim, keep,
                                                          eps_in, n_ritz)
    return _to_cupy(SpectralResult(radius=radius.reshape(batch_shape), converged=conv.reshape(batch_shape),
                                   iterations=its.reshape(batch_shape), residual=res.reshape(batch_shape),
                                   ritz=ritz.reshape(batch_shape + (n_ritz,)),
                                   path=np.asarray(PATHS)[path].reshape(batch_shape), method="power"), cp)


def _norm_cuda(W3, batch_shape, n, tol, max_iter, method, seed, start, krylov_dim):
    cp = _backend._cupy()
    from .kernels.cuda import spectral_launch as gpu
    nb = W3.shape[0]
    cplx = np.iscomplexobj(W3)
    if method == "exact":
        sv = gpu.norm_exact(W3)
        if sv is None:
            return _to_cupy(_norm_exact(W3.get(), batch_shape), cp)
        return _to_cupy(NormResult(norm=sv.reshape(batch_shape), converged=np.ones(batch_shape, dtype=np.bool_),
                                   iterations=np.zeros(batch_shape, dtype=np.int64),
                                   residual=np.zeros(batch_shape), method="exact"), cp)
    m = min(krylov_dim, n)
    item = 16 if cplx else 8
    _validate.memory(nb * ((m + 1) * n * item + 2 * m * 8 + n * item), f"spectral_norm GPU scratch at n={n}",
                     backend="cuda")
    gpu.check_fits(n, min(KRYLOV_DIM, n), m, cplx)
    x = cp.ascontiguousarray(_start_vectors_cuda(seed, start, nb, n, 1, cplx)[:, 0])
    norm, conv, its, res = gpu.norm_lanczos(W3, x, tol, max_iter, krylov_dim)
    return _to_cupy(NormResult(norm=norm.reshape(batch_shape), converged=conv.reshape(batch_shape),
                               iterations=its.reshape(batch_shape), residual=res.reshape(batch_shape),
                               method="power"), cp)


def _start_vectors_cuda(seed, start, nb, n, nsub, complex_):
    """:func:`_start_vectors` drawn on the device (the same values, bit for bit)."""
    x = normals(seed, Purpose.START, index=start, count=2 * n if complex_ else n, n_index=nb, n_sub=nsub,
                dtype="float64", backend="cuda")
    return x.view(_backend._cupy().complex128) if complex_ else x


def _to_cupy(r, cp):
    """The numeric fields of a result as CuPy arrays (the backend follows W); ``path`` stays NumPy."""
    from dataclasses import replace
    f = {k: cp.asarray(getattr(r, k)) for k in ("radius", "norm", "converged", "iterations", "residual", "ritz")
         if hasattr(r, k)}
    return replace(r, **f)
