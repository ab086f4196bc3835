"""Slow, obviously-right float64 references for the spectral kernels, and the special matrices the
tests feed them.

The references are LAPACK through NumPy, matrix by matrix, in float64/complex128: ``eigvals`` for the
radius, the largest singular value for the norm.  ``power_growth`` is the textbook estimate
``||W^k x||^(1/k)`` that the benchmarks compare against (it is biased: anchors.md).
"""
from __future__ import annotations

import numpy as np


def wide(W):
    """float64 (real) or complex128 (complex) copy of W."""
    W = np.asarray(W)
    return W.astype(np.complex128 if np.iscomplexobj(W) else np.float64)


def eigvals(W):
    """Eigenvalues of each matrix of W (..., n, n), LAPACK in float64/complex128: (..., n) complex."""
    W = wide(W)
    out = np.empty(W.shape[:-1], dtype=np.complex128)
    flat_w = W.reshape((-1,) + W.shape[-2:])
    flat_o = out.reshape((-1, W.shape[-1]))
    for b in range(flat_w.shape[0]):
        flat_o[b] = np.linalg.eigvals(flat_w[b])
    return out


def spectral_radius(W):
    """max |lambda_i| of each matrix of W, float64 (...)."""
    return np.abs(eigvals(W)).max(axis=-1)


def spectral_norm(W):
    """Largest singular value of each matrix of W, float64 (...)."""
    W = wide(W)
    return np.linalg.svd(W, compute_uv=False)[..., 0]


def power_growth(W, steps, x0):
    """The naive estimate ||W^steps x0||^(1/steps) (renormalising every step), one matrix."""
    W = wide(W)
    x = np.asarray(x0, dtype=W.dtype)
    x = x / np.linalg.norm(x)
    log_growth = 0.0
    for _ in range(steps):
        x = W @ x
        nx = np.linalg.norm(x)
        if nx == 0.0:
            return 0.0
        log_growth += np.log(nx)
        x /= nx
    return float(np.exp(log_growth / steps))


def rel_error(estimate, exact):
    """|estimate - exact| / exact, with 0/0 = 0 and absolute error where exact == 0."""
    estimate = np.asarray(estimate, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    den = np.where(exact == 0.0, 1.0, exact)
    return np.abs(estimate - exact) / den


# --- special matrices --------------------------------------------------------------------------------
def jordan_block(n, lam):
    """lam * I + the shift (ones on the superdiagonal): one eigenvalue lam, defective (one eigenvector)."""
    return lam * np.eye(n) + np.diag(np.ones(n - 1), 1)


def strictly_upper(n, rng):
    """A random strictly upper-triangular matrix (entries N(0, 1/n)): nilpotent, radius 0."""
    return np.triu(rng.standard_normal((n, n)) / np.sqrt(n), 1)


def permute(W, rng):
    """P W Pᵀ for a random permutation P: same eigenvalues, no longer triangular."""
    p = rng.permutation(W.shape[-1])
    return W[np.ix_(p, p)]


def embedded_jordan(n, lam, size, rng, bulk=0.5):
    """Q (J ⊕ bulk·G) Qᵀ: a Jordan block of ``size`` with eigenvalue lam (the dominant one, defective),
    hidden by a random orthogonal similarity, over a Ginibre bulk of radius about ``bulk``."""
    B = np.zeros((n, n))
    B[:size, :size] = jordan_block(size, lam)
    B[size:, size:] = bulk * rng.standard_normal((n - size, n - size)) / np.sqrt(n - size)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q @ B @ Q.T
