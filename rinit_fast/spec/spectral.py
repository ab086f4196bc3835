"""The spec of ``rf.spectral_radius`` and ``rf.spectral_norm``: paths, defaults, every constant, and the
whole control flow, written once.

The API (rinit_fast/spectral.py) validates and plans; then :func:`radius` or :func:`norm` below runs the
algorithm of docs/spectral.md against a *backend*: an object with the few primitives of
:class:`Backend` (O(n²) work on the matrices: scans, products, Krylov extensions, restarts).  The CPU
backend is kernels/cpu/spectral.py (small Numba kernels on a thread pool), the GPU backend
kernels/cuda/spectral_launch.py (the kernels of kernels/cuda/spectral.cu).  Everything that is not
arithmetic on the matrices lives here and only here: which matrices take which path, the filter length,
when Rayleigh–Ritz checks happen, the convergence tests, restarts and what they keep, the nilpotency
probes and their confirmation, the isometry acceptance, how the norm's error bound is judged.  So is the
small dense work (eigenproblems of the projected Hessenberg/tridiagonal matrices, Ritz vectors, restart
bases), done in NumPy on stacks of matrices, which is why no LAPACK call is compiled into a kernel.

The driver is *lockstep over a batch*: every primitive call covers all matrices still in play (an index
array), and the decisions between calls are NumPy operations over the batch.  It reproduces, bit for bit
on the CPU, the per-matrix routine it replaced (tests/golden): each small dense operation is the same
LAPACK/BLAS call on the same operands, and the few sums taken here are sequential (``_seq_sum``), as a
scalar loop would take them.

Pure Python and NumPy only (rinit_fast/spec/__init__.py): kernels import this module.
"""
from __future__ import annotations

import math

import numpy as np

# --- paths: how each radius was obtained ---------------------------------------------------------------
PATHS = ("ritz", "triangular", "isometry", "nilpotent", "exact")
PATH_RITZ, PATH_TRIANGULAR, PATH_ISOMETRY, PATH_NILPOTENT, PATH_EXACT = range(5)

# --- defaults of the public functions ------------------------------------------------------------------
DEFAULT_TOL = 1e-4          # radius: relative accuracy aimed at (docs/spectral.md)
DEFAULT_NORM_TOL = 1e-7     # norm: relative accuracy aimed at
KRYLOV_DIM = 40             # radius: largest Krylov dimension m
MIN_KRYLOV_DIM = 8          # smallest krylov_dim accepted (both functions)
N_RITZ = 6                  # Ritz values returned
NORM_KRYLOV_DIM = 48        # norm: Lanczos dimension before an explicit restart
FILTER_PER_SQRT_N = 12      # default filter_steps = round(12 sqrt(n)) (the measured optimum, bench/NOTES.md)
MAX_ITER_AFTER_FILTER = 2000  # default max_iter = filter_steps + 2000
NORM_MAX_ITER = 4000        # default max_iter of the norm (products with W or W^H)

# --- the radius: tests and schedule --------------------------------------------------------------------
RES_FRAC = 1e-2     # converged: relative residual of the top Ritz pair <= RES_FRAC * tol ...
STAB_FRAC = 1e-1    # ... and its modulus moved by <= STAB_FRAC * tol since the previous check ...
SHRINK = 0.5        # ... by at most SHRINK times the previous move ...
NEGLIGIBLE = 1e-3   # ... unless the move is below NEGLIGIBLE * STAB_FRAC * tol outright
CHECK_FIRST = 16    # first Rayleigh–Ritz check at this Krylov dimension (after a restart: keep + CHECK_STEP)
CHECK_STEP = 8      # then every CHECK_STEP Arnoldi steps (and at the full dimension m)
ISO_FRAC = 0.1      # isometry accepted when the defect <= max(ISO_FRAC * tol / sqrt(n), ISO_ULPS * eps)
ISO_ULPS = 32.0
ISO_PRODUCTS = 4    # the isometry probe's products (W x and W^H W x for two vectors)
BREAKDOWN = 1e-13   # Arnoldi/Lanczos breakdown: new direction shorter than BREAKDOWN * ||W||_F (||W||_F^2)
PROBE_AFTER = 2     # an Arnoldi phase still unconverged at its 2nd restart tests for nilpotency
FILTER_SETTLED = 1e-6      # the filter stops once ||W x|| changed by <= this (relative) ...
FILTER_SETTLED_RUN = 4     # ... for this many consecutive steps
TINY = 1e-300       # floor of a denominator (a Ritz value of modulus 0)

# --- the norm ------------------------------------------------------------------------------------------
NORM_CHECK = 6      # Rayleigh–Ritz of the tridiagonal matrix every NORM_CHECK Lanczos steps
NORM_BOUND_FRAC = 0.5   # converged: error bound on the norm <= NORM_BOUND_FRAC * tol and theta moved <= tol

CUDA_MAX_WARPS = 32        # most warps per block (1024 threads)

C_CONSTANTS = {
    "RF_SETTLED": FILTER_SETTLED, "RF_SETTLED_RUN": FILTER_SETTLED_RUN, "RF_SP_MAXW": CUDA_MAX_WARPS,
}


def default_filter_steps(n):
    return int(round(FILTER_PER_SQRT_N * math.sqrt(n)))


def default_keep(krylov_dim):
    """Ritz vectors a thick restart keeps."""
    return max(2, krylov_dim // 2)


def krylov_size(krylov_dim, n):
    """The Krylov dimension actually used (a basis of C^n has at most n vectors)."""
    return min(krylov_dim, n)


def isometry_threshold(tol, n, eps_in):
    return max(ISO_FRAC * tol / math.sqrt(n), ISO_ULPS * eps_in)


# --- the backend primitives ----------------------------------------------------------------------------
class Backend:
    """What a backend provides to :func:`radius` and :func:`norm` (documentation; backends subclass it).

    A backend is made for a stack of ``nb`` matrices W (n x n, real or complex) and their stream start
    vectors; ``items`` arguments are int64 NumPy arrays of matrix indices (0 <= b < nb), counts and flags
    come back as NumPy arrays, one entry per item.  Products use W/s, s the power-of-two scale found by
    ``prep`` (exact), in float64 / complex128 ("high precision") or float32 / complex64 ("low").  The
    Krylov bases and the filtered vectors stay on the backend.
    """

    nb: int
    n: int
    complex: bool

    def prep(self, triangular, low):
        """(scale, fro, tri): the power of two s >= max |w_ij| with max |w_ij| >= s/2 (0.0 for the zero
        matrix), ||W/s||_F, and (when ``triangular``) whether W is upper or lower triangular (then fro
        may be left unset).  The backend prepares whatever its products of W/s need (``low``: products in
        low precision will follow)."""
        raise NotImplementedError

    def diagonal(self, items):
        """The diagonals of the matrices (k, n), in W's dtype, on the host."""
        raise NotImplementedError

    def isometry(self, items):
        """(c2, defect), each (k, 2): for the start vectors x_v, v = 0, 1 (high precision):
        c2 = ||W x||^2 / ||x||^2 and defect = ||W^H W x - c2 x|| / (c2 ||x||)."""
        raise NotImplementedError

    def power(self, items, steps, *, source, low, settle):
        """(done, zero): up to steps[i] normalised products x <- W x / ||W x|| from the unit vector along
        ``source`` ("start": start vector 0; "filtered": the item's filtered vector).  ``zero``: an
        iterate was exactly zero (the loop stopped there; done counts it).  With ``settle``, the loop also
        stops once ||W x|| changed by <= FILTER_SETTLED (relative) for FILTER_SETTLED_RUN steps in a row,
        and the final unit vector (high precision) becomes both the item's filtered vector and the first
        vector of its Krylov basis (unless zero)."""
        raise NotImplementedError

    def start_raw(self, items):
        """Filtered vector and first Krylov vector := the unit vector along start vector 0."""
        raise NotImplementedError

    def arnoldi_init(self, m):
        """Allocate the Arnoldi bases Q ((m+1) x n) and Hessenberg matrices H ((m+1) x m), zero."""
        raise NotImplementedError

    def arnoldi(self, items, j0, j1, brk_tol):
        """(jend, brk): Arnoldi steps j = j0 .. j1-1 (W q_j, two passes of classical Gram–Schmidt against
        q_0..q_j into column j of H, H[j+1, j] = ||w||), stopping after a step whose ||w|| <= brk_tol
        (breakdown), else q_{j+1} = w (1/||w||)."""
        raise NotImplementedError

    def hessenberg(self, items):
        """H of the items, (k, m+1, m), host float64 / complex128."""
        raise NotImplementedError

    def arnoldi_restart(self, items, us, kks, hs):
        """Thick restart of each item: Q[:kk] := U^T Q[:m] (U = us[i], m x kk), Q[kk] := Q[m], the rest of
        Q zero; H := hs[i]."""
        raise NotImplementedError

    def lanczos_init(self, items, m):
        """Allocate the Lanczos bases V ((m+1) x n), alpha, beta (m); V[0] := start vector 0 / its norm."""
        raise NotImplementedError

    def lanczos(self, items, j0, j1, brk_tol):
        """(jend, brk): Lanczos steps on W^H W: u = W v_j, w = W^H u, two passes of classical Gram–Schmidt
        against v_0..v_j, alpha[j] = Re(h_j), beta[j] = ||w||; stop after a step with ||w|| <= brk_tol,
        else v_{j+1} = w / ||w||."""
        raise NotImplementedError

    def tridiagonal(self, items):
        """(alpha, beta) of the items, each (k, m), host float64."""
        raise NotImplementedError

    def lanczos_restart(self, items, coef):
        """Explicit restart: y = sum_i coef[k, i] v_i (coef (k, m) float64), V := 0, V[0] := y / ||y||."""
        raise NotImplementedError


def gather(parts, starts, nb):
    """The host arrays of a driver run over several stacks (matrices starts[i] .. of the batch), as arrays
    over the whole batch."""
    out = [np.empty((nb,) + a.shape[1:], dtype=a.dtype) for a in parts[0]]
    for b0, got in zip(starts, parts):
        for o, a in zip(out, got):
            o[b0:b0 + a.shape[0]] = a
    return out


# --- small dense work (host, NumPy on stacks) ----------------------------------------------------------
def _seq_sum(a):
    """Sum along the last axis in index order (a scalar loop's rounding, not NumPy's pairwise sum)."""
    return np.cumsum(a, axis=-1)[..., -1]


def _abs2(z):
    return z.real * z.real + z.imag * z.imag


def vnorm(x):
    """sqrt(sum |x_i|^2) along the last axis, summed in order."""
    return np.sqrt(_seq_sum(_abs2(x)))


def modulus(z):
    """|z| as C's hypot (what a compiled kernel's abs gives; NumPy's vectorised complex abs can differ in
    the last bit)."""
    z = np.asarray(z)
    return np.hypot(z.real, z.imag) if np.iscomplexobj(z) else np.abs(z)


def order_by_modulus(w):
    """Indices sorting each row of w by decreasing modulus, ties kept in order."""
    return np.argsort(-modulus(w), axis=-1, kind="stable")


def eig_sorted(hs):
    """Eigenvalues (k, j) complex128 and unit right eigenvectors (k, j, j), sorted by decreasing modulus
    (LAPACK geev through NumPy; complex conjugate pairs adjacent, positive imaginary part first).  A matrix
    on which LAPACK fails gets NaN (its estimate is then reported unconverged)."""
    try:
        w, v = np.linalg.eig(hs)
    except np.linalg.LinAlgError:
        w = np.empty(hs.shape[:-1], dtype=np.complex128)
        v = np.empty(hs.shape, dtype=np.complex128)
        for i in range(hs.shape[0]):
            try:
                w[i], v[i] = np.linalg.eig(hs[i])
            except np.linalg.LinAlgError:
                w[i], v[i] = np.nan, np.nan
    w = w.astype(np.complex128, copy=False)
    v = v.astype(np.complex128, copy=False)
    o = order_by_modulus(w)
    r = np.arange(w.shape[0])[:, None]
    return w[r, o], v[r[:, :, None], np.arange(w.shape[1])[None, :, None], o[:, None, :]]


def ritz_check(hs, j):
    """Rayleigh–Ritz on Krylov spaces of dimension j: H (k, >= j+1, >= j).  Returns the Ritz values
    (k, j) by decreasing modulus, their vectors (k, j, j) and the residual ||W y - theta y|| / ||y|| of the
    top pair, |H[j, :j] . z| / ||z|| (the Arnoldi relation; z the top eigenvector)."""
    theta, z = eig_sorted(hs[:, :j, :j])
    z0 = z[:, :, 0]
    rr = _seq_sum(hs[:, j, :j] * z0)
    return theta, z, modulus(rr) / vnorm(z0)


def ritz_basis(z, w, keep, real):
    """A basis (m, kk) of the span of the first ``keep`` Ritz vectors z[:, :keep]; for a real basis a
    conjugate pair contributes its real and imaginary parts (so kk may be keep + 1)."""
    if not real:
        return z[:, :keep].copy()
    cols = []
    i = 0
    while len(cols) < keep and i < z.shape[1]:
        if w[i].imag != 0.0 and i + 1 < z.shape[1] and w[i + 1] == np.conj(w[i]):
            cols += [z[:, i].real, z[:, i].imag]
            i += 2
        else:
            cols.append(z[:, i].real)
            i += 1
    return np.stack(cols, axis=1)


def thick_restart(h, m, keep, theta, z, real):
    """The small half of a thick restart of one Arnoldi relation W Q_m = Q_{m+1} H (h: (m+1) x m):
    U = an orthonormal basis of the top ``keep`` Ritz vectors (real for real W), T = U^H H_m U, the new
    coupling row b = H[m] U.  Returns (U (m, kk), the new H ((m+1) x m: T, then b in row kk), kk, drop),
    drop = ||H_m U - U T||_F, the part of the relation the restart discards (0 up to rounding, as U
    spans an invariant subspace of H_m); it is added to later residuals."""
    ub = ritz_basis(z, theta, keep, real)
    kk = ub.shape[1]
    u = np.ascontiguousarray(np.linalg.qr(ub)[0])
    hu = np.ascontiguousarray(h[:m, :m]) @ u
    t = np.ascontiguousarray(np.conj(u.T)) @ hu
    drop = math.sqrt(float(_seq_sum(_abs2(hu - u @ t).ravel())))
    b = np.ascontiguousarray(h[m, :m]) @ u
    hn = np.zeros_like(h)
    hn[:kk, :kk] = t
    hn[kk, :kk] = b
    return u, hn, kk, drop


def tridiagonal_check(alpha, beta, j):
    """Rayleigh–Ritz of Lanczos on W^H W at dimension j: alpha, beta (k, >= j).  Returns (theta, bound,
    top eigenvector (k, j)): theta the top Ritz value (<= sigma_1^2), bound the a-posteriori relative bound
    min(r, r^2/gap) / theta on its error, r = beta[j-1] |s_{j-1}| the residual and gap the distance to
    the next Ritz value."""
    k = alpha.shape[0]
    t = np.zeros((k, j, j))
    i = np.arange(j)
    t[:, i, i] = alpha[:, :j]
    if j > 1:
        t[:, i[:-1], i[1:]] = beta[:, :j - 1]
        t[:, i[1:], i[:-1]] = beta[:, :j - 1]
    ev, sv = np.linalg.eigh(t)
    theta = ev[:, j - 1]
    r = beta[:, j - 1] * np.abs(sv[:, j - 1, j - 1])
    gap = theta - ev[:, j - 2] if j >= 2 else theta
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(gap > 0.0, np.minimum(r, r * r / gap), r)
    return theta, bound / np.maximum(theta, TINY), np.ascontiguousarray(sv[:, :, j - 1])


# --- the spectral radius -------------------------------------------------------------------------------
def radius(be, *, tol, max_iter, filter_steps, krylov_dim, keep, eps_in, n_ritz):
    """Spectral radius of every matrix of the backend's stack (docs/spectral.md, "Algorithm").

    Returns host arrays (radius, converged, iterations, residual, ritz (nb, n_ritz), path int8)."""
    nb, n = be.nb, be.n
    radius_ = np.zeros(nb)
    conv = np.zeros(nb, dtype=bool)
    its = np.zeros(nb, dtype=np.int64)
    res = np.zeros(nb)
    ritz = np.full((nb, n_ritz), np.nan, dtype=np.complex128)
    path = np.full(nb, PATH_RITZ, dtype=np.int8)
    nr = min(n_ritz, n)

    # 1. zero and triangular matrices: the diagonal, exactly
    scale, fro, tri = be.prep(triangular=True, low=True)
    zero = scale == 0.0
    ritz[zero] = 0.0
    tri = tri & ~zero
    done_ = zero | tri
    if tri.any():
        ti = np.flatnonzero(tri)
        d = be.diagonal(ti)
        top = np.take_along_axis(d, order_by_modulus(d)[:, :nr], axis=1).astype(np.complex128)
        ritz[ti, :nr] = top
        radius_[ti] = modulus(top[:, 0])
    conv[done_] = True
    path[done_] = PATH_TRIANGULAR
    act = np.flatnonzero(~done_)
    if act.size == 0:
        return radius_, conv, its, res, ritz, path
    s = scale[act]

    # 2. isometry probe: c times an isometry has every eigenvalue of modulus c
    thr = isometry_threshold(tol, n, eps_in)
    c2, de = be.isometry(act)
    defect = np.maximum(de[:, 0], de[:, 1])
    isom = ((c2[:, 0] != 0.0) & (c2[:, 1] != 0.0) & (np.abs(c2[:, 1] - c2[:, 0]) <= thr * c2[:, 0])
            & (defect <= thr))
    its[act] = ISO_PRODUCTS
    ib = act[isom]
    radius_[ib] = np.sqrt(0.5 * (c2[isom, 0] + c2[isom, 1])) * s[isom]
    conv[ib] = True
    res[ib] = defect[isom]
    path[ib] = PATH_ISOMETRY
    act, s = act[~isom], s[~isom]
    if act.size == 0:
        return radius_, conv, its, res, ritz, path
    na = act.size

    # 3. power filter in low precision; an exactly zero iterate, confirmed in high precision: nilpotent
    m = krylov_size(krylov_dim, n)
    keep = min(keep, m - 2)
    be.arnoldi_init(m)
    steps = np.full(na, min(filter_steps, max(max_iter - ISO_PRODUCTS - m, 0)), dtype=np.int64)
    done, zf = be.power(act, steps, source="start", low=True, settle=True)
    iters = ISO_PRODUCTS + done
    alive = np.ones(na, dtype=bool)
    found = np.zeros(na, dtype=bool)          # settled as nilpotent
    if zf.any():
        zi = np.flatnonzero(zf)
        d64, z64 = be.power(act[zi], done[zi], source="start", low=False, settle=False)
        nil = zi[z64]
        iters[nil] += d64[z64]
        found[nil] = True
        fake = zi[~z64]                       # an underflow of the low copy faked the zero:
        iters[fake] += done[fake]             # Arnoldi starts from the raw start vector
        if fake.size:
            be.start_raw(act[fake])
    alive &= ~found

    # 4. thick-restart Arnoldi in high precision, Rayleigh–Ritz here between runs of steps
    j = np.zeros(na, dtype=np.int64)
    next_check = np.full(na, min(CHECK_FIRST, m), dtype=np.int64)
    prev = np.full(na, -1.0)
    dprev = np.full(na, np.inf)
    drop = np.zeros(na)
    restarts = np.zeros(na, dtype=np.int64)
    probed = np.zeros(na, dtype=bool)
    top = np.zeros(na)
    rres = np.full(na, np.inf)
    cv = np.zeros(na, dtype=bool)
    theta_out = np.full((na, n_ritz), np.nan, dtype=np.complex128)
    brk_tol = BREAKDOWN * fro[act]
    while alive.any():
        live = np.flatnonzero(alive)
        j1 = np.minimum(next_check[live], j[live] + np.maximum(max_iter - iters[live], 1))
        jend, brk = be.arnoldi(act[live], j[live], j1, brk_tol[live])
        iters[live] += jend - j[live]
        j[live] = jend
        brk |= jend == n                      # the Krylov space is the whole space
        hh = be.hessenberg(act[live])
        probe, probe_steps, restart = [], [], []
        thetas, zs = {}, {}
        for jj in np.unique(jend):
            rows = np.flatnonzero(jend == jj)
            sel = live[rows]
            theta, z, r = ritz_check(hh[rows], int(jj))
            t0 = modulus(theta[:, 0])
            top[sel] = t0
            rres[sel] = (r + drop[sel]) / np.maximum(t0, TINY)
            k = min(n_ritz, int(jj))
            theta_out[sel] = np.nan
            theta_out[sel, :k] = theta[:, :k]
            for i, a in enumerate(sel):
                thetas[a], zs[a] = theta[i], z[i]
        t0 = top[live]
        stop = ~np.isfinite(t0)
        # breakdown: an invariant subspace, exact Ritz values -- up to their conditioning: a nilpotent
        # restriction (W^p x landing in a nilpotent chain) gives eigenvalues ~ eps^(1/j), not 0; settle it
        b_ = brk & ~stop
        cv[live[b_]] = True
        for a in live[b_]:
            if j[a] < n and not probed[a]:
                probed[a] = True
                st = min(n + 1 - done[a], max_iter - iters[a])
                if st > 0:
                    probe.append(a)
                    probe_steps.append(st)
        stop |= b_
        delta = np.where(prev[live] >= 0.0, np.abs(t0 - prev[live]), np.inf)
        with np.errstate(invalid="ignore"):
            ok = ~stop & (rres[live] <= RES_FRAC * tol) & (delta <= STAB_FRAC * tol * t0) & (
                (delta <= SHRINK * dprev[live]) | (delta <= NEGLIGIBLE * STAB_FRAC * tol * t0))
        cv[live[ok]] = True
        stop |= ok
        go = ~stop
        prev[live[go]] = t0[go]
        dprev[live[go]] = delta[go]
        stop |= go & (iters[live] >= max_iter)   # out of budget
        alive[live[stop]] = False
        go = ~stop
        gl = live[go]
        next_check[gl] = np.minimum(j[gl] + CHECK_STEP, m)
        for a in gl[j[gl] == m]:                 # thick restart, after a nilpotency probe at the 2nd
            restarts[a] += 1
            if restarts[a] == PROBE_AFTER and not probed[a]:
                # W may be nilpotent of an index above the filter length (Ritz values of such matrices
                # creep to zero too slowly to converge): continue the filter's powers up to n steps
                probed[a] = True
                st = min(n + 1 - done[a], max_iter - iters[a] - CHECK_STEP)
                if st > 0:
                    probe.append(a)
                    probe_steps.append(st)
            restart.append(a)
        if probe:
            pa = np.array(probe)
            pst = np.array(probe_steps, dtype=np.int64)
            nil = _nilpotent(be, act[pa], pst)
            iters[pa] += np.where(nil > 0, nil, pst)
            hit = pa[nil > 0]
            found[hit] = True
            alive[hit] = False
        restart = [a for a in restart if alive[a]]
        if restart:
            ra = np.array(restart)
            us, kks, hs = [], [], []
            rows = {a: i for i, a in enumerate(live)}
            for a in ra:
                u, hn, kk, d = thick_restart(hh[rows[a]], m, keep, thetas[a], zs[a], not be.complex)
                us.append(u)
                kks.append(kk)
                hs.append(hn)
                drop[a] += d
            be.arnoldi_restart(act[ra], us, np.array(kks), np.stack(hs))
            j[ra] = kks
            next_check[ra] = np.minimum(j[ra] + CHECK_STEP, m)

    ritz_done = ~found
    b = act[ritz_done]
    radius_[b] = top[ritz_done] * s[ritz_done]
    conv[b] = cv[ritz_done]
    res[b] = rres[ritz_done]
    ritz[b] = theta_out[ritz_done] * s[ritz_done, None]
    b = act[found]
    radius_[b] = 0.0
    conv[b] = True
    res[b] = 0.0
    ritz[b] = 0.0
    path[b] = PATH_NILPOTENT
    its[act] = iters
    return radius_, conv, its, res, ritz, path


def _nilpotent(be, items, steps):
    """Products spent when W^p x (x the filtered vector) became exactly zero in low precision within
    ``steps`` and is confirmed in high precision (a low-precision iterate can underflow to zero when the
    entries of W span more than ~40 decades): the sum of both counts; -1 where not."""
    out = np.full(items.size, -1, dtype=np.int64)
    d32, z32 = be.power(items, steps, source="filtered", low=True, settle=False)
    sel = np.flatnonzero(z32)
    if sel.size:
        d64, z64 = be.power(items[sel], steps[sel], source="filtered", low=False, settle=False)
        out[sel[z64]] = d32[sel[z64]] + d64[z64]
    return out


# --- the spectral norm ---------------------------------------------------------------------------------
def norm(be, *, tol, max_iter, krylov_dim):
    """Largest singular value of every matrix of the backend's stack: Lanczos on W^H W with full
    reorthogonalisation, explicit restarts from the top Ritz vector (docs/spectral.md).

    Returns host arrays (norm, converged, iterations, residual)."""
    nb, n = be.nb, be.n
    norm_ = np.zeros(nb)
    conv = np.ones(nb, dtype=bool)
    its = np.zeros(nb, dtype=np.int64)
    res = np.zeros(nb)
    scale, fro, _ = be.prep(triangular=False, low=False)
    act = np.flatnonzero(scale != 0.0)        # the zero matrix: 0, exactly
    if act.size == 0:
        return norm_, conv, its, res
    na = act.size
    m = krylov_size(krylov_dim, n)
    be.lanczos_init(act, m)
    brk_tol = BREAKDOWN * fro[act] * fro[act]
    j = np.zeros(na, dtype=np.int64)
    iters = np.zeros(na, dtype=np.int64)
    prev = np.full(na, -1.0)
    theta = np.zeros(na)
    bound = np.full(na, np.inf)
    cv = np.zeros(na, dtype=bool)
    next_check = np.full(na, min(NORM_CHECK, m), dtype=np.int64)
    alive = np.ones(na, dtype=bool)
    while alive.any():
        live = np.flatnonzero(alive)
        left = max_iter - iters[live] - 2     # steps until the budget test (iters + 2 > max_iter) fires
        j1 = np.minimum(next_check[live], j[live] + np.where(left >= 0, left // 2 + 1, 1))
        jend, brk = be.lanczos(act[live], j[live], j1, brk_tol[live])
        iters[live] += 2 * (jend - j[live])
        j[live] = jend
        al, be_ = be.tridiagonal(act[live])
        restart, coefs = [], []
        for jj in np.unique(jend):
            rows = np.flatnonzero(jend == jj)
            sel = live[rows]
            th, bd, sv = tridiagonal_check(al[rows], be_[rows], int(jj))
            theta[sel] = th
            bound[sel] = bd
            b = brk[rows]
            with np.errstate(invalid="ignore"):
                ok = b | ((prev[sel] >= 0.0) & (bd <= NORM_BOUND_FRAC * tol)
                          & (np.abs(th - prev[sel]) <= tol * th))
            cv[sel[ok]] = True
            go = ~ok
            prev[sel[go]] = th[go]
            stop = ok | (go & (iters[sel] + 2 > max_iter))
            alive[sel[stop]] = False
            gs = sel[~stop]
            next_check[gs] = np.minimum(jj + NORM_CHECK, m)
            if jj == m:
                restart.append(gs)
                coefs.append(sv[~stop])
        if restart:
            ra = np.concatenate(restart)
            if ra.size:
                be.lanczos_restart(act[ra], np.concatenate(coefs))
                j[ra] = 0
                next_check[ra] = min(NORM_CHECK, m)
    # theta approximates the top eigenvalue of (W/s)^H (W/s): sigma = sqrt(theta) s
    norm_[act] = np.sqrt(np.maximum(theta, 0.0)) * scale[act]
    conv[act] = cv
    its[act] = iters
    res[act] = 0.5 * bound
    return norm_, conv, its, res
