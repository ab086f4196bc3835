"""Spectral radius and spectral norm of batches of square matrices (Numba, CPU).

The kernels are serial and release the GIL; the API layer runs one matrix at a time on each of its
threads (coarse parallelism: no barrier inside a matrix) with every BLAS call single-threaded.  A
``prange`` kernel was measured to cost ~15 s of extra LLVM time per signature (its gufunc re-optimises
the linked per-matrix code) for no run-time gain at this granularity.  The
algorithm and the meaning of every output are written down in docs/spectral.md; in short:

``radius_power`` (per matrix, in this order, each step ending the work when it settles the answer)

1. *Zero and triangular matrices*: an O(n²) scan; the eigenvalues of a triangular matrix are its
   diagonal, so the radius is exact (covers the zero matrix, n = 1, Jordan blocks, strictly triangular
   nilpotent matrices).
2. *Isometry probe* ("growth of the iterates"): for two start vectors x, ``c² = ||Wx||²/||x||²`` and the
   defect ``||Wᴴ W x - c² x|| / (c² ||x||)``.  When both defects are at rounding level the matrix is
   c times an isometry (every singular value equals c), so every eigenvalue has modulus c: radius = c
   exactly.  A Rayleigh–Ritz estimate alone under-reads such matrices (orthogonal, unitary).
3. *Power filter*: ``filter_steps`` normalised products with a low-precision (float32/complex64) copy
   of W damp the bulk of the spectrum in the start vector (cheap GEMVs, no orthogonalisation).  An
   iterate that becomes exactly zero proves (with probability one over the random start) that W is
   nilpotent: radius 0.
4. *Thick-restart Arnoldi* in float64/complex128 on the filtered vector: Rayleigh–Ritz on a Krylov
   space of dimension ``m``; restarts keep the ``keep`` largest Ritz vectors (a real basis of them for
   real W).  Converged when the largest-modulus Ritz value has relative residual <= ``RES_FRAC * tol``
   and moved by <= ``STAB_FRAC * tol`` (relative) since the previous check.

``norm_lanczos``: Lanczos on Wᴴ W with full reorthogonalisation and explicit restarts from the top
Ritz vector; converged when the a-posteriori bound ``min(r, r²/gap)`` on the top Ritz value (r its
residual) is <= ``tol`` relative and the value is stable.

Inputs are scaled by a power of two (exact) so that no float32 copy overflows or underflows.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload
from numba.np.linalg import _LAPACK, ensure_lapack

from ._jit import _COMMON, device, kernel

ensure_lapack()
_RGEEV = _LAPACK().numba_ez_rgeev(types.float64)  # LAPACK dgeev through Numba's own (cacheable) wrapper

# Paths (how each answer was obtained), also listed in rinit_fast.spectral.PATHS.
PATH_RITZ = 0
PATH_TRIANGULAR = 1
PATH_ISOMETRY = 2
PATH_NILPOTENT = 3

RES_FRAC = 1e-2     # converged: relative residual of the top Ritz pair <= RES_FRAC * tol ...
STAB_FRAC = 1e-1    # ... and its modulus moved by <= STAB_FRAC * tol since the previous check
CHECK_FIRST = 16    # first Rayleigh–Ritz check at this Krylov dimension (after a restart: keep + CHECK_STEP)
CHECK_STEP = 8      # then every CHECK_STEP Arnoldi steps (and at the full dimension m)
ISO_FRAC = 0.1      # isometry accepted when the defect <= max(ISO_FRAC * tol / sqrt(n), ISO_ULPS * eps)
ISO_ULPS = 32.0
BREAKDOWN = 1e-13   # Arnoldi/Lanczos breakdown: new direction shorter than BREAKDOWN * ||W||_F
PROBE_AFTER = 2           # an Arnoldi phase still unconverged at its 2nd restart tests for nilpotency
FILTER_SETTLED = 1e-6      # the filter stops once ||W x|| changed by <= this (relative) ...
FILTER_SETTLED_RUN = 4     # ... for this many consecutive steps


# The per-matrix routines are large and called once per matrix: compiled with the project's options but
# not inlined (``device`` always inlines, which only pays for small helpers inside vectorised loops).
_per_matrix = numba.njit(**_COMMON)


@device
def _order_by_modulus(w):
    """Indices sorting w by decreasing modulus, ties kept in order (stable insertion sort: the arrays
    are small, and a library sort costs seconds of compile time per dtype)."""
    n = w.shape[0]
    a = np.empty(n)
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        a[i] = abs(w[i])
        order[i] = i
    for i in range(1, n):
        k = order[i]
        v = a[k]
        j = i - 1
        while j >= 0 and a[order[j]] < v:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = k
    return order


# --- small dense eigenproblems: real (LAPACK dgeev, complex eigenvalues) and complex -------------------
def eig_small(h):
    """Eigenvalues (complex128, sorted by decreasing modulus, conjugate pairs adjacent) and unit right
    eigenvectors (complex128 columns, same order) of a small square float64/complex128 matrix."""
    raise NotImplementedError  # pragma: no cover - only the Numba overload below is ever called


@overload(eig_small)
def _eig_small_ol(h):
    if isinstance(h.dtype, types.Complex):
        def impl(h):
            w, v = np.linalg.eig(h)
            order = _order_by_modulus(w)
            return w[order], np.ascontiguousarray(v[:, order])
        return impl

    def impl_real(h):
        n = h.shape[0]
        a = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                a[j, i] = h[i, j]          # C-order a == Fortran-order h
        wr = np.empty(n)
        wi = np.empty(n)
        vl = np.empty((n, 1))
        vr = np.empty((n, n))              # row i of vr = column i of LAPACK's VR (Fortran order)
        info = _RGEEV(ord("d"), ord("N"), ord("V"), n, a.ctypes, n, wr.ctypes, wi.ctypes, vl.ctypes,
                      1, vr.ctypes, n)
        w = np.empty(n, dtype=np.complex128)
        v = np.empty((n, n), dtype=np.complex128)
        if info != 0:                      # QR failed to converge: report NaN (treated as unconverged)
            w[:] = np.nan
            v[:] = np.nan
            return w, v
        i = 0
        while i < n:
            if wi[i] == 0.0 or i == n - 1:
                w[i] = complex(wr[i], 0.0)
                for r in range(n):
                    v[r, i] = complex(vr[i, r], 0.0)
                i += 1
            else:
                w[i] = complex(wr[i], wi[i])
                w[i + 1] = complex(wr[i + 1], wi[i + 1])
                for r in range(n):
                    v[r, i] = complex(vr[i, r], vr[i + 1, r])
                    v[r, i + 1] = complex(vr[i, r], -vr[i + 1, r])
                i += 2
        order = _order_by_modulus(w)
        return w[order], np.ascontiguousarray(v[:, order])
    return impl_real


def ritz_basis(z, w, kk, out):
    """Fill columns of ``out`` (m, >= kk+1), dtype of the Krylov basis, with a basis of the span of the
    first ``kk`` Ritz vectors ``z[:, :kk]`` (extended to close a conjugate pair for real bases); returns
    the number of columns written."""
    raise NotImplementedError  # pragma: no cover


@overload(ritz_basis)
def _ritz_basis_ol(z, w, kk, out):
    if isinstance(out.dtype, types.Complex):
        def impl(z, w, kk, out):
            for c in range(kk):
                for r in range(z.shape[0]):
                    out[r, c] = z[r, c]
            return kk
        return impl

    def impl_real(z, w, kk, out):
        m = z.shape[0]
        c = 0
        i = 0
        while c < kk and i < z.shape[1]:
            if w[i].imag != 0.0 and i + 1 < z.shape[1] and w[i + 1] == np.conj(w[i]):
                for r in range(m):
                    out[r, c] = z[r, i].real
                    out[r, c + 1] = z[r, i].imag
                c += 2
                i += 2
            else:
                for r in range(m):
                    out[r, c] = z[r, i].real
                c += 1
                i += 1
        return c
    return impl_real


# --- helpers ---------------------------------------------------------------------------------------
@device
def _vnorm(x):
    s = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        s += v.real * v.real + v.imag * v.imag
    return math.sqrt(s)


@device
def _adjoint_dot(a, y):
    """Aᴴ y for a square C-contiguous A (the conjugations are no-ops for real arrays)."""
    return np.conj(np.dot(a.T, np.conj(y)))


@device
def _gram_schmidt(q, j, w, hcol):
    """Orthogonalise w against rows q[:j] twice (CGS2), accumulating the coefficients in hcol[:j]."""
    n = w.shape[0]
    for _ in range(2):
        h = np.conj(np.dot(q[:j], np.conj(w)))
        d = np.dot(h, q[:j])
        for k in range(n):                 # explicit loops: array expressions pull in Numba's
            w[k] -= d[k]                   # broadcasting error machinery (~7 s of compile time)
        for i in range(j):
            hcol[i] += h[i]


@device
def _scale_of(a):
    """A power of two close to max |a_ij| (0.0 for the zero matrix)."""
    amax = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            v = abs(a[i, j])
            if v > amax:
                amax = v
    if amax == 0.0:
        return 0.0
    mant, ex = math.frexp(amax)
    return math.ldexp(1.0, ex)


@device
def _triangular(a):
    """1 if upper triangular, 2 if lower triangular (diagonal counts as upper), 0 otherwise."""
    n = a.shape[0]
    upper = True
    for i in range(1, n):
        for j in range(i):
            if a[i, j] != 0:
                upper = False
                break
        if not upper:
            break
    if upper:
        return 1
    for i in range(n - 1):
        for j in range(i + 1, n):
            if a[i, j] != 0:
                return 0
    return 2


@device
def _copy_scaled(a, inv_s, out):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = a[i, j] * inv_s


@device
def _fill_nan(x):
    for i in range(x.shape[0]):
        x[i] = np.nan


# --- spectral radius ------------------------------------------------------------------------------
@_per_matrix
def _radius_exact_cases(w_in, ritz_out):
    """Zero and triangular matrices, exactly: (done, radius, power-of-two scale of W)."""
    n = w_in.shape[0]
    _fill_nan(ritz_out)
    s = _scale_of(w_in)
    if s == 0.0:                                            # the zero matrix
        for i in range(ritz_out.shape[0]):
            ritz_out[i] = 0.0
        return True, 0.0, s
    if _triangular(w_in) != 0:                              # eigenvalues = diagonal, exactly
        nr = min(ritz_out.shape[0], n)
        taken = np.zeros(n, dtype=np.bool_)
        for r in range(nr):                                  # the nr largest by modulus, first wins ties
            best = -1
            for i in range(n):
                if not taken[i] and (best < 0 or abs(w_in[i, i]) > abs(w_in[best, best])):
                    best = i
            taken[best] = True
            ritz_out[r] = w_in[best, best]
        return True, abs(ritz_out[0]), s
    return False, 0.0, s


@_per_matrix
def _frobenius(a):
    f = 0.0
    for i in range(a.shape[0]):
        f += _vnorm(a[i]) ** 2
    return math.sqrt(f)


@_per_matrix
def _isometry_probe(wk, xs, thr):
    """(is c times an isometry, c, defect) from the probes xs[0], xs[1]: c² = ||Wx||²/||x||² and the defect
    ||Wᴴ W x - c² x|| / (c² ||x||), both probes agreeing on c² within ``thr``."""
    c2sum = 0.0
    c2first = 0.0
    defect = 0.0
    ok = True
    for v in range(2):
        x = xs[v]
        nx2 = _vnorm(x) ** 2
        y = np.dot(wk, x)
        z = _adjoint_dot(wk, y)
        c2 = _vnorm(y) ** 2 / nx2
        if c2 == 0.0:
            return False, 0.0, np.inf
        e2 = 0.0
        for i in range(x.shape[0]):
            d = z[i] - c2 * x[i]
            e2 += d.real * d.real + d.imag * d.imag
        defect = max(defect, math.sqrt(e2) / (c2 * math.sqrt(nx2)))
        if v == 0:
            c2first = c2
        elif abs(c2 - c2first) > thr * c2first:
            ok = False
        c2sum += c2
    return ok and defect <= thr, math.sqrt(0.5 * c2sum), defect


@_per_matrix
def _power_filter(wf, x0, steps, out):
    """Up to ``steps`` normalised products x <- W x / ||W x|| in the precision of ``wf``, from x0; writes the
    final unit vector into ``out`` (Krylov precision).  Returns the number of products, negated when the
    last iterate was exactly zero.  Stops early once the growth ||W x|| has been constant (relative change
    <= FILTER_SETTLED) for FILTER_SETTLED_RUN steps: the iterate has converged to a dominant real
    eigenvector (a dominant complex pair makes the growth oscillate instead).  Stopping early only
    shortens the preconditioning; the Arnoldi phase still has to pass its own test."""
    n = wf.shape[0]
    xf = np.empty(n, dtype=wf.dtype)
    nx = _vnorm(x0)
    for i in range(n):
        xf[i] = x0[i] / nx
    done = 0
    run = 0
    gprev = -1.0
    while done < steps:
        yf = np.dot(wf, xf)
        done += 1
        ny = _vnorm(yf)
        if ny == 0.0:
            return -done
        inv = 1.0 / ny
        for i in range(n):
            xf[i] = yf[i] * inv
        if abs(ny - gprev) <= FILTER_SETTLED * ny:
            run += 1
            if run >= FILTER_SETTLED_RUN:
                break
        else:
            run = 0
        gprev = ny
    nx = _vnorm(xf)
    for i in range(n):
        out[i] = xf[i] / nx
    return done


@_per_matrix
def _nilpotent_probe(wf, x0, steps):
    """The number of products after which W^p x0 is exactly zero, or -1 if it is not within ``steps``
    (for a random x0 this happens, with probability one, exactly when W is nilpotent)."""
    n = wf.shape[0]
    xf = np.empty(n, dtype=wf.dtype)
    nx = _vnorm(x0)
    for i in range(n):
        xf[i] = x0[i] / nx
    for p in range(steps):
        yf = np.dot(wf, xf)
        ny = _vnorm(yf)
        if ny == 0.0:
            return p + 1
        inv = 1.0 / ny
        for i in range(n):
            xf[i] = yf[i] * inv
    return -1


@_per_matrix
def _nilpotent(wf, wk, x0, steps):
    """:func:`_nilpotent_probe` in the filter precision, confirmed in float64/complex128 (a float32
    iterate can underflow to zero when the entries of W span more than ~40 decades): the number of
    products spent (both precisions) when the zero is confirmed, or -1."""
    p = _nilpotent_probe(wf, x0, steps)
    if p < 0:
        return -1
    p64 = _nilpotent_probe(wk, x0, steps)
    return p + p64 if p64 > 0 else -1


@_per_matrix
def _arnoldi_step(wk, q, hh, j, brk_tol):
    """Extend the Arnoldi basis by q[j+1] (CGS2); returns True on breakdown (invariant subspace)."""
    wv = np.dot(wk, q[j])
    _gram_schmidt(q, j + 1, wv, hh[:, j])
    beta = _vnorm(wv)
    hh[j + 1, j] = beta
    if beta <= brk_tol:
        return True
    inv = 1.0 / beta
    for i in range(wv.shape[0]):
        q[j + 1, i] = wv[i] * inv
    return False


@_per_matrix
def _ritz_check(hh, j):
    """Ritz values of the Krylov space of dimension j (decreasing modulus), their vectors, and the
    residual ||W y - theta y|| / ||y|| of the top one (from the coupling row hh[j, :j])."""
    theta, z = eig_small(np.ascontiguousarray(hh[:j, :j]))
    rr = 0.0 * z[0, 0]
    for i in range(j):
        rr += hh[j, i] * z[i, 0]
    return theta, z, abs(rr) / _vnorm(z[:, 0])


@_per_matrix
def _thick_restart(q, hh, ub, m, keep, theta, z):
    """Keep an orthonormal basis of the top ``keep`` Ritz vectors (a real basis for real W) and the
    last Arnoldi vector: W Q_k = Q_k T + q_{k+1} bᵀ.  Returns (k, ||H U - U T||_F), the second being the
    part of the Krylov relation the restart drops (0 up to rounding: U spans an invariant subspace)."""
    kk = ritz_basis(z, theta, keep, ub)
    u0, _r = np.linalg.qr(np.ascontiguousarray(ub[:m, :kk]))
    u = np.ascontiguousarray(u0)
    hu = np.dot(np.ascontiguousarray(hh[:m, :m]), u)
    t = np.dot(np.ascontiguousarray(np.conj(u.T)), hu)
    ut = np.dot(u, t)
    e2 = 0.0
    for i in range(m):
        for k in range(kk):
            d = hu[i, k] - ut[i, k]
            e2 += d.real * d.real + d.imag * d.imag
    drop = math.sqrt(e2)
    b = np.dot(np.ascontiguousarray(hh[m, :m]), u)
    qn = np.dot(np.ascontiguousarray(u.T), q[:m])
    n = q.shape[1]
    for i in range(n):
        q[kk, i] = q[m, i]
    for r in range(kk + 1, m + 1):
        for i in range(n):
            q[r, i] = 0.0
    for r in range(kk):
        for i in range(n):
            q[r, i] = qn[r, i]
    hh[:, :] = 0.0
    for r in range(kk):
        for c in range(kk):
            hh[r, c] = t[r, c]
        hh[kk, r] = b[r]
    return kk, drop


@_per_matrix
def _radius_one(wk, wf, xs, tol, max_iter, p0, m, keep, eps_in, ritz_out):
    """(radius, converged, iterations, residual, path) of one matrix given its scaled copies ``wk``
    (float64/complex128) and ``wf`` (float32/complex64); fills ritz_out (scaled)."""
    n = wk.shape[0]
    nr = ritz_out.shape[0]
    fro = _frobenius(wk)

    # 2. isometry probe on the two start vectors (4 products)
    iso, c, defect = _isometry_probe(wk, xs, max(ISO_FRAC * tol / math.sqrt(n), ISO_ULPS * eps_in))
    iters = 4
    if iso:
        return c, True, iters, defect, PATH_ISOMETRY

    # 3. power filter in low precision
    m = min(m, n)
    keep = min(keep, m - 2)
    q = np.zeros((m + 1, n), dtype=xs.dtype)
    done = _power_filter(wf, xs[0], min(p0, max(max_iter - iters - m, 0)), q[0])
    if done < 0:                                            # W^p x = 0 in float32 ...
        iters -= done
        p = _nilpotent_probe(wk, xs[0], -done)              # ... and in float64: nilpotent
        if p > 0:
            for i in range(nr):
                ritz_out[i] = 0.0
            return 0.0, True, iters + p, 0.0, PATH_NILPOTENT
        iters += -done                                      # float32 underflow faked the zero:
        nx = _vnorm(xs[0])                                  # start Arnoldi from the raw vector
        for i in range(n):
            q[0, i] = xs[0][i] / nx
        done = -done
    else:
        iters += done

    # 4. thick-restart Arnoldi in Krylov precision
    xfilt = q[0].copy()
    probed = False
    restarts = 0
    hh = np.zeros((m + 1, m), dtype=xs.dtype)
    ub = np.zeros((m, m + 1), dtype=xs.dtype)
    j = 0
    next_check = min(CHECK_FIRST, m)
    prev = -1.0
    top = 0.0
    res = np.inf
    drop = 0.0                                              # accumulated restart (invariance) error
    dprev = np.inf                                          # change of |theta_1| at the previous check
    converged = False
    theta = np.empty(0, dtype=np.complex128)
    while True:
        brk = _arnoldi_step(wk, q, hh, j, BREAKDOWN * fro)
        iters += 1
        j += 1
        brk = brk or j == n                                 # the Krylov space is the whole space
        out_of_budget = iters >= max_iter
        if j == next_check or j == m or brk or out_of_budget:
            theta, z, r = _ritz_check(hh, j)
            top = abs(theta[0])
            res = (r + drop) / max(top, 1e-300)
            if not np.isfinite(top):
                break
            if brk:                                         # invariant subspace: Ritz values are exact
                converged = True
                if j < n and not probed:
                    # ... up to the conditioning of its eigenvalues: a nilpotent restriction (W^p x lands in
                    # a nilpotent chain) gives eigenvalues ~ eps^(1/j) instead of 0.  Settle it exactly.
                    probed = True
                    steps = min(n + 1 - done, max_iter - iters)
                    if steps > 0:
                        p = _nilpotent(wf, wk, xfilt, steps)
                        if p > 0:
                            for i in range(nr):
                                ritz_out[i] = 0.0
                            return 0.0, True, iters + p, 0.0, PATH_NILPOTENT
                        iters += steps
                break
            delta = abs(top - prev) if prev >= 0.0 else np.inf
            # the change must be small and shrinking (err ~ delta q / (1 - q) for a ratio q per check),
            # unless it is negligible outright
            if (res <= RES_FRAC * tol and delta <= STAB_FRAC * tol * top
                    and (delta <= 0.5 * dprev or delta <= 1e-3 * STAB_FRAC * tol * top)):
                converged = True
                break
            prev = top
            dprev = delta
            if out_of_budget:
                break
            next_check = min(j + CHECK_STEP, m)
            if j == m:                                      # thick restart: keep the top Ritz vectors
                restarts += 1
                if restarts == PROBE_AFTER and not probed:
                    # W may be nilpotent of an index above the filter length (Ritz values of such matrices
                    # creep to zero too slowly to converge): continue the filter's powers up to n steps
                    probed = True
                    steps = min(n + 1 - done, max_iter - iters - CHECK_STEP)
                    if steps > 0:
                        p = _nilpotent(wf, wk, xfilt, steps)
                        if p > 0:
                            for i in range(nr):
                                ritz_out[i] = 0.0
                            return 0.0, True, iters + p, 0.0, PATH_NILPOTENT
                        iters += steps
                j, d = _thick_restart(q, hh, ub, m, keep, theta, z)
                drop += d
                next_check = min(j + CHECK_STEP, m)
    for i in range(min(nr, theta.shape[0])):
        ritz_out[i] = theta[i]
    return top, converged, iters, res, PATH_RITZ


@_per_matrix
def _radius_matrix(w, xs, wf_tmpl, tol, max_iter, p0, m, keep, eps_in, ritz_out):
    """One matrix of any input dtype: exact cases, then the scaled copies and :func:`_radius_one`."""
    done, r, s = _radius_exact_cases(w, ritz_out)
    if done:
        return r, True, 0, 0.0, PATH_TRIANGULAR
    n = w.shape[0]
    wk = np.empty((n, n), dtype=xs.dtype)                    # Krylov precision: float64 / complex128
    _copy_scaled(w, 1.0 / s, wk)
    wf = np.empty((n, n), dtype=wf_tmpl.dtype)               # filter precision: float32 / complex64
    _copy_scaled(w, 1.0 / s, wf)
    r, c, it, res, p = _radius_one(wk, wf, xs, tol, max_iter, p0, m, keep, eps_in, ritz_out)
    for i in range(ritz_out.shape[0]):
        ritz_out[i] = ritz_out[i] * s
    return r * s, c, it, res, p


def _radius_sig(win, kdt, fdt):
    return types.void(win[:, :, ::1], kdt[:, :, ::1], fdt[::1], types.float64, types.int64, types.int64,
                      types.int64, types.int64, types.float64, types.int64, types.int64,
                      types.float64[::1], types.boolean[::1],
                      types.int64[::1], types.float64[::1], types.complex128[:, ::1], types.int8[::1])


_f32, _f64, _c64, _c128 = types.float32, types.float64, types.complex64, types.complex128


@kernel([_radius_sig(_f32, _f64, _f32), _radius_sig(_f64, _f64, _f32),
         _radius_sig(_c64, _c128, _c64), _radius_sig(_c128, _c128, _c64)])
def radius_power(w3, x3, wf_tmpl, tol, max_iter, filter_steps, m, keep, eps_in, b0, b1,
                 radius, converged, iterations, residual, ritz, path):
    """Spectral radius of w3[b] for b0 <= b < b1 (see the module docstring): start vectors x3[b] (2, n) in
    the Krylov precision (float64 / complex128); ``wf_tmpl`` only carries the filter dtype (float32 /
    complex64).  Serial and GIL-free: the caller runs chunks of matrices on its threads (see below)."""
    for b in range(b0, b1):
        r, c, it, res, p = _radius_matrix(w3[b], x3[b], wf_tmpl, tol, max_iter, filter_steps, m, keep,
                                          eps_in, ritz[b])
        radius[b] = r
        converged[b] = c
        iterations[b] = it
        residual[b] = res
        path[b] = p


# --- spectral norm ---------------------------------------------------------------------------------
@_per_matrix
def _norm_one(wk, x, tol, max_iter, m):
    """(norm, converged, iterations (products with W or Wᴴ), relative error bound) of one scaled matrix."""
    n = wk.shape[0]
    fro = _frobenius(wk)
    m = min(m, n)
    v = np.zeros((m + 1, n), dtype=wk.dtype)
    alpha = np.zeros(m)
    beta = np.zeros(m)
    hcol = np.zeros(m + 1, dtype=wk.dtype)
    nx = _vnorm(x)
    for i in range(n):
        v[0, i] = x[i] / nx
    j = 0
    iters = 0
    prev = -1.0
    theta = 0.0
    bound = np.inf
    converged = False
    next_check = min(6, m)
    while True:
        u = np.dot(wk, v[j])
        wv = _adjoint_dot(wk, u)
        iters += 2
        hcol[:] = 0
        _gram_schmidt(v, j + 1, wv, hcol)
        alpha[j] = hcol[j].real
        bj = _vnorm(wv)
        beta[j] = bj
        brk = bj <= BREAKDOWN * fro * fro
        if not brk:
            for i in range(n):
                v[j + 1, i] = wv[i] / bj
        j += 1
        out_of_budget = iters + 2 > max_iter
        if j == next_check or j == m or brk or out_of_budget:
            t = np.zeros((j, j))
            for i in range(j):
                t[i, i] = alpha[i]
                if i + 1 < j:
                    t[i, i + 1] = beta[i]
                    t[i + 1, i] = beta[i]
            ev, sv = np.linalg.eigh(t)
            theta = ev[j - 1]
            r = beta[j - 1] * abs(sv[j - 1, j - 1])
            gap = theta - ev[j - 2] if j >= 2 else theta
            bound = r
            if gap > 0.0:
                bound = min(r, r * r / gap)
            bound = bound / max(theta, 1e-300)
            if brk:
                converged = True
                break
            if prev >= 0.0 and bound <= 0.5 * tol and abs(theta - prev) <= tol * theta:
                converged = True
                break
            prev = theta
            if out_of_budget:
                break
            next_check = min(j + 6, m)
            if j == m:                                      # explicit restart from the top Ritz vector
                y = np.dot(np.ascontiguousarray(sv[:, j - 1]).astype(wk.dtype), v[:m])
                ny = _vnorm(y)
                v[:] = 0
                for i in range(n):
                    v[0, i] = y[i] / ny
                j = 0
                next_check = min(6, m)
    # theta approximates the top eigenvalue of Wᴴ W (scaled): sigma = sqrt(theta)
    return math.sqrt(max(theta, 0.0)), converged, iters, 0.5 * bound


@_per_matrix
def _norm_matrix(w, x, wk_tmpl, tol, max_iter, m):
    s = _scale_of(w)
    if s == 0.0:
        return 0.0, True, 0, 0.0
    n = w.shape[0]
    wk = np.empty((n, n), dtype=wk_tmpl.dtype)
    _copy_scaled(w, 1.0 / s, wk)
    r, c, it, res = _norm_one(wk, x, tol, max_iter, m)
    return r * s, c, it, res


def _norm_sig(win, kdt):
    return types.void(win[:, :, ::1], kdt[:, ::1], kdt[::1], types.float64, types.int64, types.int64,
                      types.int64, types.int64,
                      types.float64[::1], types.boolean[::1], types.int64[::1], types.float64[::1])


@kernel([_norm_sig(_f32, _f64), _norm_sig(_f64, _f64), _norm_sig(_c64, _c128), _norm_sig(_c128, _c128)])
def norm_lanczos(w3, x2, wk_tmpl, tol, max_iter, m, b0, b1, norm, converged, iterations, residual):
    """Largest singular value of w3[b], b0 <= b < b1: Lanczos on Wᴴ W from the start vector x2[b]."""
    for b in range(b0, b1):
        r, c, it, res = _norm_matrix(w3[b], x2[b], wk_tmpl, tol, max_iter, m)
        norm[b] = r
        converged[b] = c
        iterations[b] = it
        residual[b] = res
