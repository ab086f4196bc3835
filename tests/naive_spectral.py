"""Slow, obviously-right float64 references for the spectral kernels, and the special matrices the
tests feed them.

The references are LAPACK through NumPy, matrix by matrix, in float64/complex128: ``eigvals`` for the
radius, the largest singular value for the norm.  ``power_growth`` is the textbook estimate
``||W^k x||^(1/k)`` that the benchmarks compare against (it is biased: anchors.md).

``Backend`` is the textbook version of every primitive of rinit_fast/spec/spectral.py (``spec.Backend``):
plain NumPy, matrix by matrix, one step at a time, the low precision by ``astype``.  The tests run the
spec's driver on it (the algorithm without any compiled code) and compare the CPU and GPU kernels'
primitives with it.
"""
from __future__ import annotations

import numpy as np

from rinit_fast.spec import spectral as spec


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


# --- the spec's primitives, textbook NumPy ------------------------------------------------------------
class Backend(spec.Backend):
    """spec.Backend for a stack W (nb, n, n) and start vectors xs (nb, nsub, n), in plain NumPy."""

    def __init__(self, W, xs):
        self.W = np.asarray(W)
        self.xs = np.asarray(xs)
        self.nb, self.n = self.W.shape[0], self.W.shape[1]
        self.complex = np.iscomplexobj(self.W)
        self.kdt = np.complex128 if self.complex else np.float64
        self.ldt = np.complex64 if self.complex else np.float32

    def prep(self, triangular, low):
        amax = np.abs(self.W.astype(self.kdt)).max(axis=(1, 2))
        scale = np.where(amax > 0, 2.0 ** np.frexp(amax)[1], 0.0)
        self.s = np.where(scale > 0, scale, 1.0)
        wide = np.ascontiguousarray(self.W.astype(self.kdt))
        self.Wk = (wide.view(np.float64) / self.s[:, None, None]).view(self.kdt)   # each part, exactly
        fro = np.linalg.norm(self.Wk, axis=(1, 2))
        tri = np.array([np.all(np.tril(w, -1) == 0) or np.all(np.triu(w, 1) == 0) for w in self.W])
        return scale, fro, tri & bool(triangular)

    def diagonal(self, items):
        return np.diagonal(self.W[items], axis1=1, axis2=2)

    def isometry(self, items):
        c2 = np.empty((items.size, 2))
        de = np.empty((items.size, 2))
        for k, b in enumerate(items):
            w = self.Wk[b]
            for v in range(2):
                x = self.xs[b, v]
                y = w @ x
                c2[k, v] = np.vdot(y, y).real / np.vdot(x, x).real
                de[k, v] = (np.linalg.norm(w.conj().T @ y - c2[k, v] * x) / (c2[k, v] * np.linalg.norm(x))
                            if c2[k, v] else np.inf)
        return c2, de

    def power(self, items, steps, *, source, low, settle):
        dt = self.ldt if low else self.kdt
        done = np.zeros(items.size, dtype=np.int64)
        zero = np.zeros(items.size, dtype=bool)
        for k, b in enumerate(items):
            w = self.Wk[b].astype(dt)
            x0 = self.xs[b, 0] if source == "start" else self.X[b]
            x = (x0 / np.linalg.norm(x0)).astype(dt)
            run, gprev = 0, -1.0
            while done[k] < steps[k]:
                y = w @ x
                done[k] += 1
                ny = float(np.linalg.norm(y.astype(self.kdt)))
                if ny == 0.0:
                    zero[k] = True
                    break
                x = (y.astype(self.kdt) / ny).astype(dt)
                if settle:
                    run = run + 1 if abs(ny - gprev) <= spec.FILTER_SETTLED * ny else 0
                    gprev = ny
                    if run >= spec.FILTER_SETTLED_RUN:
                        break
            if settle and not zero[k]:
                xk = x.astype(self.kdt)
                self.Q[b, 0] = self.X[b] = xk / np.linalg.norm(xk)
        return done, zero

    def start_raw(self, items):
        for b in items:
            x = self.xs[b, 0]
            self.Q[b, 0] = self.X[b] = x / np.linalg.norm(x)

    def arnoldi_init(self, m):
        self.m = m
        self.Q = np.zeros((self.nb, m + 1, self.n), dtype=self.kdt)
        self.H = np.zeros((self.nb, m + 1, m), dtype=self.kdt)
        self.X = np.zeros((self.nb, self.n), dtype=self.kdt)

    def arnoldi(self, items, j0, j1, brk_tol):
        jend = np.array(j0, dtype=np.int64)
        brk = np.zeros(items.size, dtype=bool)
        for k, b in enumerate(items):
            q, h = self.Q[b], self.H[b]
            while jend[k] < j1[k]:
                j = jend[k]
                w = self.Wk[b] @ q[j]
                for _ in range(2):                     # classical Gram-Schmidt, twice
                    c = q[:j + 1].conj() @ w
                    w = w - c @ q[:j + 1]
                    h[:j + 1, j] += c
                h[j + 1, j] = np.linalg.norm(w)
                jend[k] += 1
                if h[j + 1, j].real <= brk_tol[k]:
                    brk[k] = True
                    break
                q[j + 1] = w / h[j + 1, j].real
        return jend, brk

    def hessenberg(self, items):
        return self.H[items].copy()

    def arnoldi_restart(self, items, us, kks, hs):
        for b, u, kk, h in zip(items, us, kks, hs):
            q = self.Q[b]
            qn = u.T @ q[:self.m]
            q[kk] = q[self.m]
            q[kk + 1:] = 0
            q[:kk] = qn
            self.H[b] = h

    def lanczos_init(self, items, m):
        self.m = m
        self.V = np.zeros((self.nb, m + 1, self.n), dtype=self.kdt)
        self.alpha = np.zeros((self.nb, m))
        self.beta = np.zeros((self.nb, m))
        for b in items:
            self.V[b, 0] = self.xs[b, 0] / np.linalg.norm(self.xs[b, 0])

    def lanczos(self, items, j0, j1, brk_tol):
        jend = np.array(j0, dtype=np.int64)
        brk = np.zeros(items.size, dtype=bool)
        for k, b in enumerate(items):
            v, wk = self.V[b], self.Wk[b]
            while jend[k] < j1[k]:
                j = jend[k]
                w = wk.conj().T @ (wk @ v[j])
                a = 0.0
                for _ in range(2):
                    c = v[:j + 1].conj() @ w
                    w = w - c @ v[:j + 1]
                    a += c[j].real
                self.alpha[b, j] = a
                self.beta[b, j] = np.linalg.norm(w)
                jend[k] += 1
                if self.beta[b, j] <= brk_tol[k]:
                    brk[k] = True
                    break
                v[j + 1] = w / self.beta[b, j]
        return jend, brk

    def tridiagonal(self, items):
        return self.alpha[items].copy(), self.beta[items].copy()

    def lanczos_restart(self, items, coef):
        for b, c in zip(items, coef):
            y = c @ self.V[b, :self.m]
            self.V[b] = 0
            self.V[b, 0] = y / np.linalg.norm(y)
