"""The GPU backend of ``rf.spectral_radius`` / ``rf.spectral_norm``: the primitives of
rinit_fast/spec/spectral.py (``Backend``) on the kernels of kernels/cuda/spectral.cu.

The control flow and the small dense work are the spec's, the same code the CPU runs (docs/spectral.md);
what is here is the O(n²) work on the device, batched over the matrices still in play, one thread block
per matrix (docs/cuda.md, "Spectral kernels"): the prep scan (scale, Frobenius norm, triangularity), the
float32 copy, the isometry probe, runs of normalised products (the filter, all its steps in one launch;
the nilpotency probes), runs of Arnoldi or Lanczos steps (CGS2) up to each matrix's next Rayleigh–Ritz
check, and the restarts (``cupy.matmul`` of the spec's small bases with the device basis).  The spec's
Rayleigh–Ritz runs on the host between launches; per check, the projected matrices ((m+1) m values each)
come to the host.

Nothing here is bit-identical to the CPU (the device sums in another order); the estimates obey the same
accuracy contract.  Start vectors are the START stream's (drawn on the device by
``rf.rng.normals(..., backend="cuda")``, bit-identical to the CPU's), so results are reproducible.

Entry points for rinit_fast/spectral.py: :func:`stacks`, :func:`scratch_bytes`, :func:`eigvals`,
:func:`top_singular_values`.
"""
from __future__ import annotations

import numpy as np

from rinit_fast.spec import spectral as spec

from . import loader

FILE = "spectral.cu"
_SUF = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.complex64): "c64",
        np.dtype(np.complex128): "c128"}
MAX_BLOCK = 32 * spec.CUDA_MAX_WARPS
DEFAULT_BLOCK = 512       # 16 warps: 64 row-loads in flight per warp-row pass (docs/cuda.md)
_DEFAULT_SMEM = 48 * 1024


def _cp():
    return loader.cupy()


def _kernel(kind, suf):
    return loader.get_function(FILE, f"rf_spec_{kind}_{suf}")


def _block():
    return loader.block_size(DEFAULT_BLOCK, MAX_BLOCK)


def _grid(items):
    return loader.grid_size(items)


def smem_bytes(kind, n, m, cplx):
    """Dynamic shared memory of one block (the layouts at the top of each kernel body)."""
    s = 16 if cplx else 8                      # float64 / complex128 vectors ...
    if kind == "power32":
        s = 8 if cplx else 4                   # ... float32 / complex64 in the filter
    red = spec.CUDA_MAX_WARPS * 8
    if kind in ("power32", "power64", "iso"):
        return 2 * n * s + red
    if kind == "arnoldi":
        return n * s + 2 * (m + 1) * s + red
    if kind == "lanczos":
        return 2 * n * s + 2 * (m + 1) * s + red
    raise ValueError(kind)


def scratch_bytes(kind, nb, n, cplx, m):
    """Device memory of a call ("radius" or "norm") beyond W and the start vectors: the float32 copy and
    the Krylov bases.  Raises ValueError, before anything runs, when one matrix's vectors do not fit in a
    block's shared memory."""
    item = 16 if cplx else 8
    if kind == "radius":
        need = max(smem_bytes("power64", n, 0, cplx), smem_bytes("arnoldi", n, m, cplx))
        total = nb * n * n * (8 if cplx else 4) + nb * item * ((m + 1) * n + (m + 1) * m + 2 * n)
    else:
        need = smem_bytes("lanczos", n, m, cplx)
        total = nb * ((m + 1) * n * item + 2 * m * 8)
    lim = loader.device_limits()["smem_per_block_optin"]
    if need > lim:
        raise ValueError(f"spectral on the GPU: n = {n} needs {need} bytes of shared memory per block, the "
                         f"device allows {lim}; use the CPU (a host array)")
    return total


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


def _unit(x):
    cp = _cp()
    return x / cp.sqrt(cp.sum(cp.abs(x) ** 2, axis=1, keepdims=True))


# --- launches ---------------------------------------------------------------------------------------------
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
    args = (_rview(W), _u32(midx), _f64(sc), np.uint64(na), np.uint64(n), _rview(out))
    _launch("lowcopy", _SUF[np.dtype(W.dtype)], grid, args, 0)
    return out


def iso(W, midx, sc, xs):
    cp = _cp()
    na, n = int(len(midx)), int(W.shape[-1])
    cplx = np.dtype(W.dtype).kind == "c"
    c2 = cp.empty((na, 2), dtype=cp.float64)
    de = cp.empty((na, 2), dtype=cp.float64)
    args = (_rview(W), _u32(midx), _f64(sc), np.uint64(na), np.uint64(n), _dview(cp.ascontiguousarray(xs)),
            c2, de)
    _launch("iso", _SUF[np.dtype(W.dtype)], _grid(na), args, smem_bytes("iso", n, 0, cplx))
    return c2.get(), de.get()


# --- the backend ------------------------------------------------------------------------------------------
class Stack(spec.Backend):
    """spec.Backend for a C-contiguous CuPy stack W (nb, n, n) and its start vectors xs (nb, nsub, n)
    (float64, or complex128 for complex W).  Per-matrix device state (bases, Hessenberg / tridiagonal
    matrices, filtered vectors) is indexed by the matrix index; kernels get the active items' list."""

    def __init__(self, W, xs):
        cp = _cp()
        self.W = self.W0 = W
        self.xs = xs
        self.nb, self.n = int(W.shape[0]), int(W.shape[1])
        self.complex = np.dtype(W.dtype).kind == "c"
        self.kdt = cp.complex128 if self.complex else cp.float64
        self.suf = _SUF[np.dtype(W.dtype)]
        self.midx = _u32(np.arange(self.nb))
        self.jend = cp.empty(self.nb, dtype=cp.uint32)
        self.brk = cp.empty(self.nb, dtype=cp.uint32)
        self.wf = None                          # the float32 / complex64 copy of the filtered matrices
        self.low_row = np.full(self.nb, -1, dtype=np.int64)

    def prep(self, triangular, low):
        scale, fro, flags = prep(self.W)
        tiny = (scale > 0.0) & (scale < 2.0 ** -1000)
        if tiny.any():   # 1/s would overflow (max |w| subnormal, float64): the kernels read W 2^600 instead
            ti = _cp().asarray(np.flatnonzero(tiny))
            self.W = self.W.copy()
            self.W[ti] = self.W[ti] * 2.0 ** 600
            scale, fro, flags = prep(self.W)
            scale[tiny] *= 2.0 ** -600
            self.sc = np.divide(1.0, scale * np.where(tiny, 2.0 ** 600, 1.0), out=np.zeros(self.nb),
                                where=scale != 0.0)
        else:
            self.sc = np.divide(1.0, scale, out=np.zeros(self.nb), where=scale != 0.0)
        self.sc_d = _f64(self.sc)
        tri = (((flags & 1) == 0) | ((flags & 2) == 0)) if triangular else np.zeros(self.nb, dtype=bool)
        return scale, fro, tri

    def diagonal(self, items):
        cp = _cp()
        return cp.diagonal(self.W0[cp.asarray(items)], axis1=1, axis2=2).get()

    def isometry(self, items):
        cp = _cp()
        return iso(self.W, items, self.sc[items], self.xs[cp.asarray(items)])

    def power(self, items, steps, *, source, low, settle):
        cp = _cp()
        di = cp.asarray(items)
        x0 = self.xs[di, 0] if source == "start" else self.X[di]
        if low:
            if self.wf is None or (self.low_row[items] < 0).any():
                have = np.flatnonzero(self.low_row >= 0)
                new = np.union1d(have, items)
                self.wf = lowcopy(self.W, new, self.sc[new])
                self.low_row[:] = -1
                self.low_row[new] = np.arange(new.size)
            xout, done, zero = power(self.wf, self.low_row[items], np.ones(items.size), x0, steps, settle,
                                     low=True)
        else:
            xout, done, zero = power(self.W, items, self.sc[items], x0, steps, settle, low=False)
        if settle:
            ok = np.flatnonzero(~zero)
            if ok.size:
                dok = cp.asarray(ok)
                self.Q[di[dok], 0] = xout[dok]
                self.X[di[dok]] = xout[dok]
        return done, zero

    def start_raw(self, items):
        cp = _cp()
        di = cp.asarray(items)
        x = _unit(self.xs[di, 0])
        self.Q[di, 0] = x
        self.X[di] = x

    def arnoldi_init(self, m):
        cp = _cp()
        self.m = m
        self.Q = cp.zeros((self.nb, m + 1, self.n), dtype=self.kdt)
        self.H = cp.zeros((self.nb, m + 1, m), dtype=self.kdt)
        self.X = cp.zeros((self.nb, self.n), dtype=self.kdt)

    def _steps(self, kind, items, j0, j1, brk_tol, args):
        j0a = np.zeros(self.nb, dtype=np.int64)
        j1a = np.zeros(self.nb, dtype=np.int64)
        bt = np.zeros(self.nb)
        j0a[items], j1a[items], bt[items] = j0, j1, brk_tol
        _launch(kind, self.suf, _grid(items.size),
                (_rview(self.W), self.midx, self.sc_d, _u32(items), np.uint64(items.size), np.uint64(self.n),
                 np.uint64(self.m), *args, _u32(j0a), _u32(j1a), _f64(bt), self.jend, self.brk),
                smem_bytes(kind, self.n, self.m, self.complex))
        return self.jend.get()[items].astype(np.int64), self.brk.get()[items].astype(bool)

    def arnoldi(self, items, j0, j1, brk_tol):
        return self._steps("arnoldi", items, j0, j1, brk_tol, (_dview(self.Q), _dview(self.H)))

    def hessenberg(self, items):
        return self.H[_cp().asarray(items)].get()

    def arnoldi_restart(self, items, us, kks, hs):
        cp = _cp()
        m = self.m
        kmax = int(max(kks))
        ut = np.zeros((items.size, kmax, m), dtype=hs.dtype)
        for i, u in enumerate(us):
            ut[i, :u.shape[1]] = u.T
        di = cp.asarray(items)
        qr = self.Q[di]
        qn = cp.matmul(cp.asarray(ut), qr[:, :m])
        last = qr[:, m].copy()
        qr[:] = 0
        qr[:, :kmax] = qn
        qr[cp.arange(items.size), cp.asarray(kks)] = last
        self.Q[di] = qr
        self.H[di] = cp.asarray(hs)

    def lanczos_init(self, items, m):
        cp = _cp()
        self.m = m
        self.V = cp.zeros((self.nb, m + 1, self.n), dtype=self.kdt)
        self.alpha = cp.zeros((self.nb, m), dtype=cp.float64)
        self.beta = cp.zeros((self.nb, m), dtype=cp.float64)
        di = cp.asarray(items)
        self.V[di, 0] = _unit(self.xs[di, 0])

    def lanczos(self, items, j0, j1, brk_tol):
        return self._steps("lanczos", items, j0, j1, brk_tol, (_dview(self.V), self.alpha, self.beta))

    def tridiagonal(self, items):
        di = _cp().asarray(items)
        return self.alpha[di].get(), self.beta[di].get()

    def lanczos_restart(self, items, coef):
        cp = _cp()
        di = cp.asarray(items)
        c = cp.asarray(coef.astype(np.complex128 if self.complex else np.float64)[:, None, :])
        y = _unit(cp.matmul(c, self.V[di, :self.m])[:, 0])
        vr = cp.zeros((items.size, self.m + 1, self.n), dtype=self.kdt)
        vr[:, 0] = y
        self.V[di] = vr


def run(driver, W3, xs, m, **params):
    """The spec's ``driver`` (spec.radius or spec.norm) over the whole batch in one lockstep stack (the
    device holds it all).  Returns the driver's host arrays."""
    return driver(Stack(W3, xs), **params)


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


def eigvals(W3):
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


def top_singular_values(W3):
    """Largest singular values (nb,) as a host array: batched cupy.linalg.svd (cuSOLVER gesvdj/gesvd) in
    float64/complex128."""
    cp = _cp()
    wide = cp.complex128 if np.dtype(W3.dtype).kind == "c" else cp.float64
    try:
        sv = cp.linalg.svd(W3.astype(wide), compute_uv=False)
    except Exception:
        return None
    return sv[..., 0].get().astype(np.float64)
