"""``rf.spectral_radius`` and ``rf.spectral_norm``: validate, plan, run on the array's backend.

The algorithm is written once, in rinit_fast/spec/spectral.py: its paths, constants, control flow
(filter, Rayleigh–Ritz checks, convergence, restarts, nilpotency probes) and small dense work.  It runs
against the backend the array lives on: kernels/cpu/spectral.py for a NumPy array (small Numba kernels
for the O(n²) work, on a thread pool), kernels/cuda/spectral_launch.py for a CuPy array (the kernels of
kernels/cuda/spectral.cu).  docs/spectral.md describes the algorithm, its measured accuracy and speed,
and the exact meaning of ``converged``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import _backend, _validate
from .rng import Purpose, normals
from .spec import spectral as spec
from .spec.spectral import (DEFAULT_NORM_TOL, DEFAULT_TOL, KRYLOV_DIM, N_RITZ,  # noqa: F401  (public)
                            NORM_KRYLOV_DIM, PATHS)


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
        How each answer was obtained, one of :data:`PATHS`: ``"ritz"`` (thick-restart Arnoldi after a
        power filter; ``converged`` is its test), ``"triangular"`` (W is triangular or zero: max |W_ii|,
        exactly), ``"isometry"`` (W is c times an isometry, measured on two random probes at rounding
        level: every eigenvalue has modulus c), ``"nilpotent"`` (an iterate W^p x of the random start
        vector became exactly zero: radius 0), ``"exact"`` (``method="exact"``).
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


def spectral_radius(W, *, tol=DEFAULT_TOL, max_iter=None, method="power", seed=0, start=0,
                    filter_steps=None, krylov_dim=KRYLOV_DIM, n_ritz=N_RITZ):
    """Spectral radius max |lambda_i| of each square matrix of W, with an honest convergence flag.

    Parameters
    ----------
    W : array (..., n, n)
        float32, float64, complex64 or complex128; a NumPy array runs on the CPU, a CuPy array on the
        GPU (the results are then CuPy arrays, ``path`` a NumPy array).  All entries must be finite.
    tol : float in (0, 1)
        Relative accuracy aimed at (default 1e-4).  See docs/spectral.md for the measured error.
    max_iter : int, optional
        Most products of W with a vector per matrix (default ``filter_steps + 2000``); a matrix that runs
        out is returned with ``converged=False``.
    method : "power" or "exact"
        ``"exact"``: LAPACK ``geev`` in float64/complex128 (the reference; ~10-20x slower at n = 500), or
        cuSOLVER's for a CuPy array where CuPy has it.
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
    krylov_dim = _validate.krylov_dim(krylov_dim)
    if filter_steps is None:
        filter_steps = spec.default_filter_steps(n)
    filter_steps = _validate.nonneg_int(filter_steps, "filter_steps")
    if max_iter is None:
        max_iter = filter_steps + spec.MAX_ITER_AFTER_FILTER
    kern, backend = _kernels(W3)
    if method == "exact":
        return _wrap(_radius_from_eigvals(_eigvals(kern, W3), batch_shape, n_ritz), backend)
    cplx = np.iscomplexobj(W3)
    m = spec.krylov_size(krylov_dim, n)
    _validate.memory(kern.scratch_bytes("radius", nb, n, cplx, m) + nb * 2 * n * 16,
                     f"spectral_radius scratch at n={n}", backend=backend)
    xs = _start_vectors(seed, start, nb, n, 2, cplx, backend)
    radius, conv, its, res, ritz, path = kern.run(
        spec.radius, W3, xs, m, tol=tol, max_iter=max_iter, filter_steps=filter_steps,
        krylov_dim=krylov_dim, keep=spec.default_keep(krylov_dim), eps_in=float(np.finfo(W3.dtype).eps),
        n_ritz=n_ritz)
    return _wrap(SpectralResult(radius=radius.reshape(batch_shape), converged=conv.reshape(batch_shape),
                                iterations=its.reshape(batch_shape), residual=res.reshape(batch_shape),
                                ritz=ritz.reshape(batch_shape + (n_ritz,)),
                                path=np.asarray(PATHS)[path].reshape(batch_shape), method="power"), backend)


def spectral_norm(W, *, tol=DEFAULT_NORM_TOL, max_iter=None, method="power", seed=0, start=0,
                  krylov_dim=NORM_KRYLOV_DIM):
    """Spectral norm ||W||_2 (largest singular value) of each square matrix of W.

    Lanczos on Wᴴ W with full reorthogonalisation, from the stream's start vector of matrix ``start + j``
    (the first START vector, the same one ``spectral_radius`` uses).  Parameters as ``spectral_radius``;
    ``tol`` (default 1e-7) is the relative accuracy aimed at, ``max_iter`` (default 4000) counts
    products with W or Wᴴ; ``method="exact"`` is LAPACK's SVD (cuSOLVER's for a CuPy array).
    """
    W3, batch_shape, n = _prepare(W, "spectral_norm")
    nb = W3.shape[0]
    tol = _validate.tolerance(tol)
    method = _validate.spectral_method(method)
    seed, start, max_iter = _common_args(seed, start, nb, max_iter)
    krylov_dim = _validate.krylov_dim(krylov_dim)
    if max_iter is None:
        max_iter = spec.NORM_MAX_ITER
    kern, backend = _kernels(W3)
    if method == "exact":
        sv = kern.top_singular_values(W3)
        if sv is None:                      # no batched SVD in this CuPy: LAPACK on a host copy
            from .kernels.cpu import spectral as cpu
            sv = cpu.top_singular_values(W3.get())
        one = np.ones(batch_shape, dtype=np.bool_)
        return _wrap(NormResult(norm=sv.reshape(batch_shape), converged=one,
                                iterations=np.zeros(batch_shape, dtype=np.int64),
                                residual=np.zeros(batch_shape), method="exact"), backend)
    cplx = np.iscomplexobj(W3)
    m = spec.krylov_size(krylov_dim, n)
    _validate.memory(kern.scratch_bytes("norm", nb, n, cplx, m) + nb * n * 16,
                     f"spectral_norm scratch at n={n}", backend=backend)
    x = _start_vectors(seed, start, nb, n, 1, cplx, backend)
    norm, conv, its, res = kern.run(spec.norm, W3, x, m, tol=tol, max_iter=max_iter, krylov_dim=krylov_dim)
    return _wrap(NormResult(norm=norm.reshape(batch_shape), converged=conv.reshape(batch_shape),
                            iterations=its.reshape(batch_shape), residual=res.reshape(batch_shape),
                            method="power"), backend)


# --- validate and plan ------------------------------------------------------------------------------
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
            raise TypeError(f"{name}: W must be a NumPy or CuPy array, got {type(W).__name__}: "
                            f"{exc}") from exc
    batch_shape, n = _validate.square_stack(W, "W")
    _validate.finite(W, "W")
    return np.ascontiguousarray(W.reshape((-1, n, n))), batch_shape, n


def _common_args(seed, start, nb, max_iter):
    seed = _validate.seed(seed)
    start, nb, _, _ = _validate.stream_range(start, nb)
    if max_iter is not None:
        max_iter = _validate.positive_int(max_iter, "max_iter")
    return seed, start, max_iter


def _kernels(W3):
    """The backend module of the array (the spec's primitives and the exact methods) and its name."""
    if _backend.is_cupy(W3):
        from .kernels.cuda import spectral_launch
        return spectral_launch, "cuda"
    from .kernels.cpu import spectral
    return spectral, "cpu"


def _start_vectors(seed, start, nb, n, nsub, complex_, backend):
    """Start vectors of matrices start..start+nb-1 (stream purpose START, sub-index = vector): (nb, nsub, n)
    float64, or complex128 whose real and imaginary parts are values 2i and 2i+1 of the stream; on the
    backend (the same values, bit for bit)."""
    x = normals(seed, Purpose.START, index=start, count=2 * n if complex_ else n, n_index=nb, n_sub=nsub,
                dtype="float64", backend=backend)
    return x.view(np.complex128) if complex_ else x


def _wrap(r, backend):
    """The numeric fields of a result as arrays of W's backend (CuPy for "cuda"); ``path`` stays NumPy."""
    if backend != "cuda":
        return r
    cp = _backend._cupy()
    fields = ("radius", "norm", "converged", "iterations", "residual", "ritz")
    f = {k: cp.asarray(getattr(r, k)) for k in fields if hasattr(r, k)}
    return replace(r, **f)


# --- method="exact" ---------------------------------------------------------------------------------
def _eigvals(kern, W3):
    ev = kern.eigvals(W3)
    if ev is None:                          # no general eigvals in this CuPy: LAPACK on a host copy
        from .kernels.cpu import spectral as cpu
        ev = cpu.eigvals(W3.get())
    return ev


def _radius_from_eigvals(ev, batch_shape, n_ritz):
    nb = ev.shape[0]
    ritz = np.full((nb, n_ritz), np.nan, dtype=np.complex128)
    top = np.take_along_axis(ev, spec.order_by_modulus(ev)[:, :n_ritz], axis=1)
    ritz[:, :top.shape[1]] = top
    return SpectralResult(radius=spec.modulus(top[:, 0]).reshape(batch_shape),
                          converged=np.ones(batch_shape, dtype=np.bool_),
                          iterations=np.zeros(batch_shape, dtype=np.int64), residual=np.zeros(batch_shape),
                          ritz=ritz.reshape(batch_shape + (n_ritz,)),
                          path=np.full(batch_shape, "exact", dtype=np.asarray(PATHS).dtype), method="exact")
