"""Python side of kernels/cuda/spectral.cu: the GPU backend of ``rf.spectral_radius`` / ``rf.spectral_norm``.

The algorithm is the CPU kernel's (kernels/cpu/spectral.py, docs/spectral.md), step for step and with the
same constants; what differs is how the work is spread (docs/cuda.md, "Spectral kernels"):

* every O(n^2) step runs on the device, batched over the matrices still in play, one thread block per
  matrix: the prep scan (scale, Frobenius norm, triangularity), the float32 copy, the isometry probe,
  the power filter (all its steps in one launch), the nilpotency probes, and runs of Arnoldi or Lanczos
  steps (CGS2) up to each matrix's next Rayleigh-Ritz check;
* the small projected problems (Hessenberg <= 40 x 40, tridiagonal <= 48 x 48) are solved on the host
  with NumPy's batched LAPACK (one ``eig``/``eigh`` call per distinct Krylov dimension), between
  launches; so are the restart bases (a QR of m x 20), applied to the device basis by a batched
  ``matmul``.  The host copies per check are small (the projected matrices, (m+1) m float64 each).

Nothing here is bit-identical to the CPU (sums are reduced in a different order); the estimates obey the
same accuracy contract.  Start vectors are the START stream's values (drawn on the device by
``rf.rng.normals(..., backend="cuda")``, bit-identical to the CPU's), so results are reproducible.

Entry points, called by rinit_fast/spectral.py after the shared validation:
:func:`radius_power`, :func:`norm_lanczos`, :func:`radius_exact`, :func:`norm_exact`.
"""
from __future__ import annotations

import math

import numpy as np

from . import loader

FILE = "spectral.cu"
_SUF = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.complex64): "c64",
        np.dtype(np.complex128): "c128"}
MAX_BLOCK = 1024
DEFAULT_BLOCK = 512       # 16 warps: 64 row-loads in flight per warp-row pass (docs/cuda.md)
_DEFAULT_SMEM = 48 * 1024

# the CPU kernel's constants (kernels/cpu/spectral.py): the same tests, the same meaning of `converged`
PATH_RITZ, PATH_TRIANGULAR, PATH_ISOMETRY, PATH_NILPOTENT = 0, 1, 2, 3
RES_FRAC = 1e-2
STAB_FRAC = 1e-1
CHECK_FIRST = 16
CHECK_STEP = 8
ISO_FRAC = 0.1
ISO_ULPS = 32.0
BREAKDOWN = 1e-13
PROBE_AFTER = 2
NORM_CHECK = 6


def _cp():
    return loader._cupy()


def _kernel(kind, suf):
    return loader.get_function(FILE, f"rf_spec_{kind}_{suf}")


def _block():
    blk = loader._launch["block"] or loader._env_int("RINIT_FAST_CUDA_BLOCK") or DEFAULT_BLOCK
    if not (32 <= blk <= MAX_BLOCK and blk % 32 == 0):
        raise ValueError(f"spectral: the block size must be a multiple of 32 in [32, {MAX_BLOCK}], got {blk}")
    return int(blk)


def _grid(items):
    g = loader._launch["grid"] or loader._env_int("RINIT_FAST_CUDA_GRID") or items
    return max(1, min(int(g), int(items)))


def _smem_limit():
    cp = _cp()
    attrs = cp.cuda.Device().attributes
    return int(attrs.get("MaxSharedMemoryPerBlockOptin", 0)) or _DEFAULT_SMEM


def smem_bytes(kind, n, m, cplx):
    """Dynamic shared memory of one block (the layouts at the top of each kernel body)."""
    s = 16 if cplx else 8                      # float64 / complex128 vectors ...
    if kind == "power32":
        s = 8 if cplx else 4                   # ... float32 / complex64 in the filter
    red = 32 * 8
    if kind in ("power32", "power64", "iso"):
        return 2 * n * s + red
    if kind == "arnoldi":
        return n * s + 2 * (m + 1) * s + red
    if kind == "lanczos":
        return 2 * n * s + 2 * (m + 1) * s + red
    raise ValueError(kind)


def check_fits(n, m_radius, m_norm, cplx):
    """Raise ValueError, before anything runs, when one matrix's vectors do not fit in shared memory."""
    need = max(smem_bytes("power64", n, 0, cplx), smem_bytes("arnoldi", n, m_radius, cplx),
               smem_bytes("lanczos", n, m_norm, cplx))
    lim = _smem_limit()
    if need > lim:
        raise ValueError(f"spectral on the GPU: n = {n} needs {need} bytes of shared memory per block, the "
                         f"device allows {lim}; use the CPU (a host array)")


def _launch(kind, suf, grid, args, smem):
    k = _kernel(kind, suf)
    if smem > _DEFAULT_SMEM:
        k.max_dynamic_shared_size_bytes = int(smem)
    k((int(grid),), (_block(),), args, shared_mem=int(smem))


def _u32(a):
    return _cp().asarray(np.ascontiguousarray(a, dtype=np.uint32))


def _f64(a):
    return _cp().asarray(np.ascontiguousarray(a, dtype=np.float64))


def _dview(a):
    """A float64 view of a C-contiguous float64 / complex128 CuPy array."""
    return a.view(_cp().float64)


def _rview(W):
    """W (float32/float64/complex64/complex128) as its real storage (interleaved for complex)."""
    cp = _cp()
    if W.dtype == np.complex64:
        return W.view(cp.float32)
    if W.dtype == np.complex128:
        return W.view(cp.float64)
    return W


# --- per-batch building blocks ----------------------------------------------------------------------
def prep(W3):
    """(scale, fro of W/scale, flags) as host arrays; flags bit 0: nonzero below the diagonal, bit 1:
    above."""
    cp = _cp()
    nb, n = int(W3.shape[0]), int(W3.shape[1])
    scale = cp.empty(nb, dtype=cp.float64)
    fro = cp.empty(nb, dtype=cp.float64)
    flags = cp.empty(nb, dtype=cp.uint32)
    _launch("prep", _SUF[np.dtype(W3.dtype)], _grid(nb), (_rview(W3), np.uint64(nb), np.uint64(n), scale, fro,
                                                          flags), 0)
    return scale.get(), fro.get(), flags.get()


def power(W, midx, sc, x0, steps, settle, *, low):
    """Normalised products (kernels rf_spec_power*): returns (unit vectors (na, n) device, done, zero)."""
    cp = _cp()
    na = int(len(midx))
    n = int(W.shape[-1])
    cplx = np.dtype(W.dtype).kind == "c"
    xout = cp.empty((na, n), dtype=cp.complex128 if cplx else cp.float64)
    done = cp.empty(na, dtype=cp.uint32)
    zero = cp.empty(na, dtype=cp.uint32)
    if low:
        kind, suf, kern = "power32", ("c64" if cplx else "f32"), "power"
    else:
        kind, suf, kern = "power64", _SUF[np.dtype(W.dtype)], "power64"
    x0 = cp.ascontiguousarray(x0)
    _launch(kern, suf, _grid(na), (_rview(W), _u32(midx), _f64(sc), np.uint64(na), np.uint64(n), _dview(x0),
                                   _u32(steps), np.uint32(1 if settle else 0), _dview(xout), done, zero),
            smem_bytes(kind, n, 0, cplx))
    return xout, done.get().astype(np.int64), zero.get().astype(bool)


def lowcopy(W, midx, sc):
    cp = _cp()
    na, n = int(len(midx)), int(W.shape[-1])
    cplx = np.dtype(W.dtype).kind == "c"
    out = cp.empty((na, n, n), dtype=cp.complex64 if cplx else cp.float32)
    total = na * n * n * (2 if cplx else 1)
    grid = _grid(max(1, min(-(-total // _block()), 65535)))
    _launch("lowcopy", _SUF[np.dtype(W.dtype)], grid, (_rview(W), _u32(midx), _f64(sc), np.uint64(na),
                                                        np.uint64(n), _rview(out)), 0)
    return out


def iso(W, midx, sc, xs):
    cp = _cp()
    na, n = int(len(midx)), int(W.shape[-1])
    cplx = np.dtype(W.dtype).kind == "c"
    c2 = cp.empty((na, 2), dtype=cp.float64)
    de = cp.empty((na, 2), dtype=cp.float64)
    _launch("iso", _SUF[np.dtype(W.dtype)], _grid(na), (_rview(W), _u32(midx), _f64(sc), np.uint64(na),
                                                         np.uint64(n), _dview(cp.ascontiguousarray(xs)), c2,
                                                         de), smem_bytes("iso", n, 0, cplx))
    return c2.get(), de.get()


def _nilpotent(W, wf, midx_w, midx_f, sc, x0, steps):
    """kernels/cpu/spectral.py: _nilpotent, batched: the products spent when W^p x0 is exactly zero in
    float32 and confirmed in float64 (the sum of both counts), or -1."""
    na = len(midx_w)
    out = np.full(na, -1, dtype=np.int64)
    if na == 0:
        return out
    _, d32, z32 = power(wf, midx_f, np.ones(na), x0, steps, False, low=True)
    sel = np.flatnonzero(z32)
    if sel.size:
        _, d64, z64 = power(W, midx_w[sel], sc[sel], x0[_cp().asarray(sel)], steps[sel], False, low=False)
        ok = z64
        out[sel[ok]] = d32[sel[ok]] + d64[ok]
    return out


def _order(w):
    """Indices by decreasing modulus, ties in order (the CPU's stable insertion sort)."""
    return np.argsort(-np.abs(w), kind="stable")


def _eig_stack(hs):
    """Eigenvalues and vectors of a stack of small matrices, each sorted by decreasing modulus; NaN for a
    matrix on which LAPACK fails (the CPU reports NaN too: unconverged)."""
    try:
        w, v = np.linalg.eig(hs)
    except np.linalg.LinAlgError:
        w = np.empty(hs.shape[:2], dtype=np.complex128)
        v = np.empty(hs.shape, dtype=np.complex128)
        for i in range(hs.shape[0]):
            try:
                w[i], v[i] = np.linalg.eig(hs[i])
            except np.linalg.LinAlgError:
                w[i], v[i] = np.nan, np.nan
    w = w.astype(np.complex128)
    v = v.astype(np.complex128)
    for i in range(hs.shape[0]):
        o = _order(w[i])
        w[i] = w[i][o]
        v[i] = v[i][:, o]
    return w, v


def _ritz_basis(z, w, kk, real):
    """kernels/cpu/spectral.py: ritz_basis: a basis of the first kk Ritz vectors (closing a conjugate pair
    for real W), as an (m, k) array."""
    if not real:
        return z[:, :kk].copy()
    cols = []
    i = 0
    while len(cols) < kk and i < z.shape[1]:
        if w[i].imag != 0.0 and i + 1 < z.shape[1] and w[i + 1] == np.conj(w[i]):
            cols += [z[:, i].real, z[:, i].imag]
            i += 2
        else:
            cols.append(z[:, i].real)
            i += 1
    return np.stack(cols, axis=1)


def _thick_restart(hh, m, keep, theta, z, real):
    """The small half of kernels/cpu/spectral.py: _thick_restart: (U (m, kk), new H ((m+1) x m), kk, drop)."""
    ub = _ritz_basis(z, theta, keep, real)
    kk = ub.shape[1]
    u, _r = np.linalg.qr(ub)
    hm = hh[:m, :m]
    hu = hm @ u
    t = np.conj(u.T) @ hu
    drop = float(np.sqrt(np.sum(np.abs(hu - u @ t) ** 2)))
    b = hh[m, :m] @ u
    hn = np.zeros_like(hh)
    hn[:kk, :kk] = t
    hn[kk, :kk] = b
    return u, hn, kk, drop


# --- spectral radius -----------------------------------------------------------------------------------
def radius_power(W3, xs, tol, max_iter, p0, m, keep, eps_in, n_ritz):
    """The GPU twin of kernels/cpu/spectral.py: radius_power over the whole batch.

    W3: (nb, n, n) C-contiguous CuPy array; xs: (nb, 2, n) float64/complex128 CuPy start vectors.
    Returns host arrays (radius, converged, iterations, residual, ritz (nb, n_ritz), path int8)."""
    cp = _cp()
    nb, n = int(W3.shape[0]), int(W3.shape[1])
    cplx = np.dtype(W3.dtype).kind == "c"
    radius = np.zeros(nb)
    conv = np.zeros(nb, dtype=bool)
    its = np.zeros(nb, dtype=np.int64)
    res = np.zeros(nb)
    ritz = np.full((nb, n_ritz), np.nan, dtype=np.complex128)
    path = np.zeros(nb, dtype=np.int8)

    scale, fro, flags = prep(W3)
    # 1. zero and triangular matrices: the diagonal, exactly
    zero = scale == 0.0
    ritz[zero] = 0.0
    path[zero] = PATH_TRIANGULAR
    conv[zero] = True
    tri = ~zero & (((flags & 1) == 0) | ((flags & 2) == 0))
    if tri.any():
        ti = np.flatnonzero(tri)
        diag = cp.diagonal(W3[cp.asarray(ti)], axis1=1, axis2=2).get().astype(np.complex128)
        for r, b in enumerate(ti):
            o = _order(diag[r])[:n_ritz]
            ritz[b, :o.size] = diag[r][o]
            radius[b] = abs(ritz[b, 0])
        conv[tri] = True
        path[tri] = PATH_TRIANGULAR
    act = np.flatnonzero(~zero & ~tri)
    if act.size == 0:
        return radius, conv, its, res, ritz, path
    s = scale[act]
    sc = 1.0 / s
    mm = min(m, n)
    kp = min(keep, mm - 2)

    # 2. isometry probe (4 products)
    thr = max(ISO_FRAC * tol / math.sqrt(n), ISO_ULPS * eps_in)
    c2, de = iso(W3, act, sc, xs[cp.asarray(act)])
    ok = (c2[:, 0] != 0.0) & (c2[:, 1] != 0.0) & (np.abs(c2[:, 1] - c2[:, 0]) <= thr * c2[:, 0])
    defect = np.max(de, axis=1)
    isom = ok & (defect <= thr)
    its[act] = 4
    ib = act[isom]
    radius[ib] = np.sqrt(0.5 * (c2[isom, 0] + c2[isom, 1])) * s[isom]
    conv[ib] = True
    res[ib] = defect[isom]
    path[ib] = PATH_ISOMETRY
    keepi = ~isom
    act, s, sc = act[keepi], s[keepi], sc[keepi]
    if act.size == 0:
        return radius, conv, its, res, ritz, path
    na = act.size

    # 3. power filter on the float32 copy
    wf = lowcopy(W3, act, sc)
    fidx = np.arange(na)
    x0 = cp.ascontiguousarray(xs[cp.asarray(act), 0])
    steps = np.full(na, min(p0, max(max_iter - 4 - mm, 0)), dtype=np.int64)
    q0, done, zf = power(wf, fidx, np.ones(na), x0, steps, True, low=True)
    iters = np.full(na, 4, dtype=np.int64) + done
    alive = np.ones(na, dtype=bool)
    if zf.any():
        zi = np.flatnonzero(zf)
        _, d64, z64 = power(W3, act[zi], sc[zi], x0[cp.asarray(zi)], done[zi], False, low=False)
        nil = zi[z64]
        for a, p in zip(nil, d64[z64]):
            b = act[a]
            radius[b], conv[b], its[b], res[b], path[b] = 0.0, True, iters[a] + p, 0.0, PATH_NILPOTENT
            ritz[b] = 0.0
            alive[a] = False
        fake = zi[~z64]                       # float32 underflow faked the zero: the raw start vector
        if fake.size:
            iters[fake] += done[fake]
            xf = x0[cp.asarray(fake)]
            q0[cp.asarray(fake)] = xf / cp.sqrt(cp.sum(cp.abs(xf) ** 2, axis=1, keepdims=True))

    # 4. thick-restart Arnoldi (float64 / complex128), Rayleigh-Ritz on the host
    dt = cp.complex128 if cplx else cp.float64
    Q = cp.zeros((na, mm + 1, n), dtype=dt)
    Q[:, 0] = q0
    H = cp.zeros((na, mm + 1, mm), dtype=dt)
    xfilt = q0.copy()
    j = np.zeros(na, dtype=np.int64)
    next_check = np.full(na, min(CHECK_FIRST, mm), dtype=np.int64)
    prev = np.full(na, -1.0)
    dprev = np.full(na, np.inf)
    drop = np.zeros(na)
    restarts = np.zeros(na, dtype=np.int64)
    probed = np.zeros(na, dtype=bool)
    top = np.zeros(na)
    rres = np.full(na, np.inf)
    cv = np.zeros(na, dtype=bool)
    theta_last = [None] * na
    brk_tol = BREAKDOWN * fro[act]            # fro is ||W/s||_F already (the CPU's _frobenius(wk))
    suf = _SUF[np.dtype(W3.dtype)]
    midx_d = _u32(act)
    sc_d = _f64(sc)
    btol_d = _f64(brk_tol)
    jend_d = cp.empty(na, dtype=cp.uint32)
    brk_d = cp.empty(na, dtype=cp.uint32)
    smem = smem_bytes("arnoldi", n, mm, cplx)
    done_f = done.copy()                      # filter products (the nilpotency probes continue them)
    while alive.any():
        live = np.flatnonzero(alive)
        j1 = np.minimum(next_check[live], j[live] + np.maximum(max_iter - iters[live], 1))
        j0a = j.copy()
        j1a = j.copy()
        j1a[live] = j1
        _launch("arnoldi", suf, _grid(live.size),
                (_rview(W3), midx_d, sc_d, _u32(live), np.uint64(live.size), np.uint64(n), np.uint64(mm),
                 _dview(Q), _dview(H), _u32(j0a), _u32(j1a), btol_d, jend_d, brk_d), smem)
        jend = jend_d.get().astype(np.int64)
        brk_all = brk_d.get().astype(bool)
        Hh = H[cp.asarray(live)].get()
        iters[live] += jend[live] - j[live]
        j[live] = jend[live]
        # Rayleigh-Ritz at each live matrix's current dimension, batched by dimension
        thetas, zs = {}, {}
        for jj in np.unique(j[live]):
            sel = live[j[live] == jj]
            rows = np.searchsorted(live, sel)
            w, v = _eig_stack(Hh[rows, :jj, :jj])
            for r, a in enumerate(sel):
                thetas[a], zs[a] = w[r], v[r]
        restart, probe = [], []
        for r, a in enumerate(live):
            jj = int(j[a])
            brk = bool(brk_all[a]) or jj == n
            oob = iters[a] >= max_iter
            theta, z = thetas[a], zs[a]
            hh = Hh[r]
            rr = abs(np.dot(hh[jj, :jj], z[:, 0]))
            t0 = abs(theta[0])
            top[a] = t0
            rres[a] = (rr / np.linalg.norm(z[:, 0]) + drop[a]) / max(t0, 1e-300)
            theta_last[a] = theta
            if not np.isfinite(t0):
                alive[a] = False
                continue
            if brk:
                cv[a] = True
                alive[a] = False
                if jj < n and not probed[a]:
                    probed[a] = True
                    st = min(n + 1 - done_f[a], max_iter - iters[a])
                    if st > 0:
                        probe.append((a, st))
                continue
            delta = abs(t0 - prev[a]) if prev[a] >= 0.0 else np.inf
            if (rres[a] <= RES_FRAC * tol and delta <= STAB_FRAC * tol * t0
                    and (delta <= 0.5 * dprev[a] or delta <= 1e-3 * STAB_FRAC * tol * t0)):
                cv[a] = True
                alive[a] = False
                continue
            prev[a] = t0
            dprev[a] = delta
            if oob:
                alive[a] = False
                continue
            next_check[a] = min(jj + CHECK_STEP, mm)
            if jj == mm:
                restarts[a] += 1
                if restarts[a] == PROBE_AFTER and not probed[a]:
                    probed[a] = True
                    st = min(n + 1 - done_f[a], max_iter - iters[a] - CHECK_STEP)
                    if st > 0:
                        probe.append((a, st))
                restart.append((a, r))
        if probe:
            pa = np.array([p[0] for p in probe])
            pst = np.array([p[1] for p in probe], dtype=np.int64)
            got = _nilpotent(W3, wf, act[pa], pa, sc[pa], xfilt[cp.asarray(pa)], pst)
            for a, st, p in zip(pa, pst, got):
                if p > 0:
                    b = act[a]
                    radius[b], conv[b], its[b], res[b], path[b] = 0.0, True, iters[a] + p, 0.0, PATH_NILPOTENT
                    ritz[b] = 0.0
                    alive[a] = False
                    theta_last[a] = None
                else:
                    iters[a] += st
        restart = [(a, r) for a, r in restart if alive[a]]
        if restart:
            ra = np.array([a for a, _ in restart])
            us, kks = [], []
            Hn = np.zeros((ra.size, mm + 1, mm), dtype=Hh.dtype)
            for i, (a, r) in enumerate(restart):
                u, hn, kk, d = _thick_restart(Hh[r], mm, kp, thetas[a], zs[a], not cplx)
                us.append(u)
                kks.append(kk)
                Hn[i] = hn
                drop[a] += d
                j[a] = kk
                next_check[a] = min(kk + CHECK_STEP, mm)
            kmax = max(kks)
            Ut = np.zeros((ra.size, kmax, mm), dtype=Hh.dtype)
            for i, u in enumerate(us):
                Ut[i, :u.shape[1]] = u.T
            rd = cp.asarray(ra)
            Qr = Q[rd]
            Qn = cp.matmul(cp.asarray(Ut), Qr[:, :mm])
            last = Qr[:, mm].copy()
            Qr[:] = 0
            Qr[:, :kmax] = Qn
            Qr[cp.arange(ra.size), cp.asarray(np.array(kks))] = last
            Q[rd] = Qr
            H[rd] = cp.asarray(Hn)
    fin = np.flatnonzero(np.array([t is not None for t in theta_last]))
    for a in fin:
        b = act[a]
        th = theta_last[a]
        k = min(n_ritz, th.shape[0])
        ritz[b, :k] = th[:k] * s[a]
        radius[b] = top[a] * s[a]
        conv[b] = bool(cv[a])
        its[b] = iters[a]
        res[b] = rres[a]
        path[b] = PATH_RITZ
    return radius, conv, its, res, ritz, path


# --- spectral norm -------------------------------------------------------------------------------------
def norm_lanczos(W3, x, tol, max_iter, m):
    """The GPU twin of kernels/cpu/spectral.py: norm_lanczos (Lanczos on Wᴴ W with full
    reorthogonalisation, explicit restarts from the top Ritz vector).  x: (nb, n) start vectors.
    Returns host arrays (norm, converged, iterations, residual)."""
    cp = _cp()
    nb, n = int(W3.shape[0]), int(W3.shape[1])
    cplx = np.dtype(W3.dtype).kind == "c"
    norm = np.zeros(nb)
    conv = np.ones(nb, dtype=bool)
    its = np.zeros(nb, dtype=np.int64)
    res = np.zeros(nb)
    scale, fro, _ = prep(W3)
    act = np.flatnonzero(scale != 0.0)
    if act.size == 0:
        return norm, conv, its, res
    na = act.size
    s = scale[act]
    mm = min(m, n)
    dt = cp.complex128 if cplx else cp.float64
    V = cp.zeros((na, mm + 1, n), dtype=dt)
    xa = x[cp.asarray(act)]
    V[:, 0] = xa / cp.sqrt(cp.sum(cp.abs(xa) ** 2, axis=1, keepdims=True))
    alpha = cp.zeros((na, mm), dtype=cp.float64)
    beta = cp.zeros((na, mm), dtype=cp.float64)
    midx_d = _u32(act)
    sc_d = _f64(1.0 / s)
    btol_d = _f64(BREAKDOWN * fro[act] * fro[act])
    jend_d = cp.empty(na, dtype=cp.uint32)
    brk_d = cp.empty(na, dtype=cp.uint32)
    suf = _SUF[np.dtype(W3.dtype)]
    smem = smem_bytes("lanczos", n, mm, cplx)
    j = np.zeros(na, dtype=np.int64)
    iters = np.zeros(na, dtype=np.int64)
    prev = np.full(na, -1.0)
    theta = np.zeros(na)
    bound = np.full(na, np.inf)
    cv = np.zeros(na, dtype=bool)
    next_check = np.full(na, min(NORM_CHECK, mm), dtype=np.int64)
    alive = np.ones(na, dtype=bool)
    while alive.any():
        live = np.flatnonzero(alive)
        # steps until the budget test (iters + 2 > max_iter after a step) fires
        kb = np.where(max_iter - iters[live] - 2 >= 0, (max_iter - iters[live] - 2) // 2 + 1, 1)
        j1 = np.minimum(next_check[live], j[live] + kb)
        j1a = j.copy()
        j1a[live] = j1
        _launch("lanczos", suf, _grid(live.size),
                (_rview(W3), midx_d, sc_d, _u32(live), np.uint64(live.size), np.uint64(n), np.uint64(mm),
                 _dview(V), alpha, beta, _u32(j), _u32(j1a), btol_d, jend_d, brk_d), smem)
        jend = jend_d.get().astype(np.int64)
        brk_all = brk_d.get().astype(bool)
        al = alpha[cp.asarray(live)].get()
        be = beta[cp.asarray(live)].get()
        iters[live] += 2 * (jend[live] - j[live])
        j[live] = jend[live]
        restart = []
        svecs = {}
        for jj in np.unique(j[live]):
            sel = live[j[live] == jj]
            rows = np.searchsorted(live, sel)
            T = np.zeros((sel.size, jj, jj))
            ii = np.arange(jj)
            T[:, ii, ii] = al[rows, :jj]
            if jj > 1:
                T[:, ii[:-1], ii[1:]] = be[rows, :jj - 1]
                T[:, ii[1:], ii[:-1]] = be[rows, :jj - 1]
            ev, sv = np.linalg.eigh(T)
            for r, a in enumerate(sel):
                row = rows[r]
                th = ev[r, jj - 1]
                rr = be[row, jj - 1] * abs(sv[r, jj - 1, jj - 1])
                gap = th - ev[r, jj - 2] if jj >= 2 else th
                bd = rr
                if gap > 0.0:
                    bd = min(rr, rr * rr / gap)
                bound[a] = bd / max(th, 1e-300)
                theta[a] = th
                brk = bool(brk_all[a])
                oob = iters[a] + 2 > max_iter
                if brk:
                    cv[a] = True
                    alive[a] = False
                    continue
                if prev[a] >= 0.0 and bound[a] <= 0.5 * tol and abs(th - prev[a]) <= tol * th:
                    cv[a] = True
                    alive[a] = False
                    continue
                prev[a] = th
                if oob:
                    alive[a] = False
                    continue
                next_check[a] = min(jj + NORM_CHECK, mm)
                if jj == mm:
                    restart.append(a)
                    svecs[a] = sv[r, :, jj - 1]
        if restart:
            ra = np.array(restart)
            rd = cp.asarray(ra)
            coef = cp.asarray(np.stack([svecs[a] for a in restart])[:, None, :].astype(
                np.complex128 if cplx else np.float64))
            y = cp.matmul(coef, V[rd, :mm])[:, 0]
            y = y / cp.sqrt(cp.sum(cp.abs(y) ** 2, axis=1, keepdims=True))
            Vr = cp.zeros((ra.size, mm + 1, n), dtype=dt)
            Vr[:, 0] = y
            V[rd] = Vr
            j[ra] = 0
            next_check[ra] = min(NORM_CHECK, mm)
    norm[act] = np.sqrt(np.maximum(theta, 0.0)) * s
    conv[act] = cv
    its[act] = iters
    res[act] = 0.5 * bound
    return norm, conv, its, res


# --- method="exact" ------------------------------------------------------------------------------------
def _geev_on_device():
    """True when this CuPy has a general (non-symmetric) eigvals: cupy.linalg.eigvals backed by cuSOLVER
    Xgeev (CuPy >= 14).  Checked on a 2 x 2 rotation whose eigenvalues are +-i (a symmetric-only solver
    would read the lower triangle and return real values)."""
    cp = _cp()
    f = getattr(cp.linalg, "eigvals", None)
    if f is None:
        return False
    try:
        w = f(cp.asarray([[0.0, -1.0], [1.0, 0.0]])).get()
    except Exception:
        return False
    return bool(np.allclose(np.sort_complex(w.astype(np.complex128)), [-1j, 1j], atol=1e-12))


_GEEV = None


def radius_exact(W3):
    """All eigenvalues (nb, n) complex128 as a host array: cuSOLVER geev through cupy.linalg.eigvals when
    this CuPy has it (float64/complex128), else host LAPACK on a host copy."""
    global _GEEV
    cp = _cp()
    if _GEEV is None:
        _GEEV = _geev_on_device()
    wide = cp.complex128 if np.dtype(W3.dtype).kind == "c" else cp.float64
    if _GEEV:
        return cp.linalg.eigvals(W3.astype(wide)).get().astype(np.complex128)
    return None


def norm_exact(W3):
    """Largest singular values (nb,) as a host array: batched cupy.linalg.svd (cuSOLVER gesvdj/gesvd) in
    float64/complex128."""
    cp = _cp()
    wide = cp.complex128 if np.dtype(W3.dtype).kind == "c" else cp.float64
    try:
        sv = cp.linalg.svd(W3.astype(wide), compute_uv=False)
    except Exception:
        return None
    return sv[..., 0].get().astype(np.float64)
