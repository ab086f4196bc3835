"""The CPU backend of ``rf.spectral_radius`` / ``rf.spectral_norm``: the primitives of
rinit_fast/spec/spectral.py (``Backend``) as small Numba kernels on a thread pool.

The control flow (paths, filter, checks, convergence, restarts, nilpotency probes) and the small dense
work (Rayleigh–Ritz, restart bases) are the spec's, shared with the GPU; what is here is the O(n²) work:

* ``prep``       the power-of-two scale s of each matrix, the triangularity scan, the float64/complex128
                 copy W/s that every high-precision product reads, ||W/s||_F;
* ``isometry``   W x and W^H W x for the two start vectors;
* ``power``      runs of normalised products in float32/complex64 (the filter, the nilpotency probes) or
                 float64/complex128 (their confirmation), on a copy of W/s in that precision;
* ``arnoldi``    Arnoldi steps (W q, two passes of classical Gram–Schmidt) up to each matrix's next check;
* ``lanczos``    Lanczos steps on W^H W, the same way.

Every product is a BLAS GEMV (kernels/cpu/blas.py ``mv``/``vm``: the call ``np.dot`` makes, without
compiling ``np.dot``); the arithmetic of each step is unchanged from the
per-matrix routine these kernels replaced (tests/golden holds its outputs).  Restarts, which apply the
spec's small matrices to a basis, are NumPy matmuls here (the same BLAS calls).

Threads: a batch is cut into *waves* (:func:`wave_size` matrices, at least ``WAVES_PER_THREAD`` per
thread, the waves in flight within ``WAVE_BYTES``), and :func:`run` spreads the waves over
``threads.nthreads()`` threads (``threads.run_tasks``: dynamic balance, no barrier inside a wave).  Each
wave is an independent lockstep stack for the spec's driver, driven by its thread, whose kernels run
inline on that thread and release the GIL; BLAS is single-threaded (``threads.blas_single_thread()``).
The Python of one wave's driver (Rayleigh–Ritz, tests) overlaps the other threads' kernels.  Results
never depend on the wave split or the thread count (every matrix is computed on its own).

Compilation: only ``prep`` depends on W's own dtype (four signatures, one per input dtype); the products
run in the Krylov precision (float64/complex128) or the filter's (float32/complex64) whatever W's dtype,
so they are single-signature kernels, one per precision (``isometry_real``/``_complex``,
``power_f32``/``_c64``/``_f64``/``_c128``, ``arnoldi_*``, ``lanczos_*``, thin wrappers of one inlined
body each): every input precision uses them (``rinit-fast compile --dtype float32`` must include them).
Each compiles lazily on first use (``_jit.kernel``).  A float32 radius compiles ``prep[float32]``,
``isometry_real``, ``power_f32`` and ``arnoldi_real`` (``power_f64`` only when a probe meets a zero
iterate); a float64 radius then adds only ``prep[float64]``.  No LAPACK call is compiled.
"""
from __future__ import annotations

import math
import threading

import numpy as np
from numba import types

from rinit_fast.spec import spectral as spec

from . import threads
from ._jit import device, kernel
from .blas import mv, vm

WAVE_ENTRIES = 2 ** 20
"""A wave holds about this many matrix entries (4 matrices at n = 500, 64 at n = 128, one from n = 1024).
A wave's matrices take turns through each round (the isometry probe, the filter, each run of Arnoldi
steps), so the larger the wave the colder each matrix's copy of W/s is when its turn comes back; the
smaller, the more the rounds' Python (~0.3-0.5 ms per wave on this machine) costs per matrix.
bench/NOTES.md, "Spectral (issue 11)", has the sweep."""
WAVE_BYTES = 64 * 2 ** 20
"""The waves in flight (one per thread) hold at most this many bytes in all (but a wave has at least one
matrix)."""
WAVES_PER_THREAD = 4
"""A batch is cut into at least this many waves per thread (dynamic balance: waves differ in cost)."""

_TWO600 = 2.0 ** 600
FILTER_SETTLED = spec.FILTER_SETTLED
FILTER_SETTLED_RUN = spec.FILTER_SETTLED_RUN


# --- helpers (inlined) -------------------------------------------------------------------------------
@device
def _vnorm(x):
    s = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        s += v.real * v.real + v.imag * v.imag
    return math.sqrt(s)


@device
def _conj(x):
    """The conjugate of a vector, as a new array (a loop: ``np.conj`` of an array compiles Numba's ufunc
    machinery, ~0.7 s per kernel; for real x this is a copy)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = x[i].conjugate()
    return out


@device
def _adjoint_dot(a, y):
    """Aᴴ y for a square C-contiguous A (the conjugations are no-ops for real arrays), as conj(conj(y)ᵀ A):
    the same BLAS call as ``np.dot(a.T, ...)`` (same bits), through the vector-times-matrix product
    Gram–Schmidt uses too."""
    return _conj(vm(_conj(y), a))


@device
def _gram_schmidt(q, j, w, hcol):
    """Orthogonalise w against rows q[:j] twice (CGS2), accumulating the coefficients in hcol[:j]."""
    n = w.shape[0]
    for _ in range(2):
        h = _conj(mv(q[:j], _conj(w)))
        d = vm(h, q[:j])
        for k in range(n):                 # explicit loops: array expressions pull in Numba's
            w[k] -= d[k]                   # broadcasting error machinery (seconds of compile time)
        for i in range(j):
            hcol[i] += h[i]


@device
def _scale_of(a):
    """The power of two s with s/2 <= max |a_ij| < s (0.0 for the zero matrix), for complex a."""
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
def _scale_of_bits(b, consts, bias):
    """:func:`_scale_of` of a real matrix given as its IEEE bits b (uint32 or uint64; consts = [mask of
    the sign bit's complement, mantissa bits, 1] in b's type; bias the exponent bias): the largest
    |a_ij| is the largest bit pattern with the sign bit cleared (the order of finite non-negative floats is
    the order of their bits), an integer max that vectorises (5x faster than comparing floats), and
    s = 2^(its exponent + 1) is read off the bits (the value frexp gives)."""
    mask, mbits, one = consts[0], consts[1], consts[2]
    m = consts[0] ^ consts[0]
    for i in range(b.shape[0]):
        for j in range(b.shape[1]):
            m = max(m, b[i, j] & mask)
    if m == 0:
        return 0.0
    e = np.int64(m >> mbits)
    nm = np.int64(mbits)
    if e == 0:                                            # subnormal: 2^(bit length - mbits - bias + 1)
        k = 0
        while m != 0:
            m = m >> one
            k += 1
        return math.ldexp(1.0, k - nm - bias + 1)
    return math.ldexp(1.0, e - bias + 1)


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
def _scale_row(a, i, inv, inv1, out, o):
    """out[o, :] = a[i, :] / s for a power of two s, exactly: a * inv (inv = 1/s), or in two exact steps,
    (a * inv1) * 2^600, when 1/s would overflow (max |a| subnormal in float64; then inv1 > 0)."""
    if inv1 == 0.0:
        for j in range(a.shape[1]):
            out[o, j] = a[i, j] * inv
    else:
        for j in range(a.shape[1]):
            out[o, j] = (a[i, j] * inv1) * _TWO600


@device
def _scaled_copies(a, s, wk, wl, b, low):
    """wk = a / s and, when ``low``, wl[b] = a / s (exactly, :func:`_scale_row`); returns ||wk||_F, the sum
    of the squared row norms in row order.  One pass, row by row: a row of a is read once for both copies
    and the norm reads the row just written, from cache (before: a separate pass per copy and one for the
    norm, five matrix-sized streams where three remain; the same operations, the same bits; measured in
    bench/NOTES.md, "The main job, paired")."""
    inv = 1.0 / s
    inv1 = 0.0
    if inv > 1e300:                        # s = 2^(e-1): 1/s = 2^(1-e-600) * 2^600
        inv1 = math.ldexp(1.0, 1 - math.frexp(s)[1] - 600)
    f = 0.0
    for i in range(a.shape[0]):
        _scale_row(a, i, inv, inv1, wk, i)
        if low:
            _scale_row(a, i, inv, inv1, wl[b], i)
        f += _vnorm(wk[i]) ** 2
    return math.sqrt(f)


@device
def _arnoldi_step(wk, q, hh, j, brk_tol):
    """Extend the Arnoldi basis by q[j+1] (CGS2); returns True on breakdown (invariant subspace)."""
    wv = mv(wk, q[j])
    _gram_schmidt(q, j + 1, wv, hh[:, j])
    beta = _vnorm(wv)
    hh[j + 1, j] = beta
    if beta <= brk_tol:
        return True
    inv = 1.0 / beta
    for i in range(wv.shape[0]):
        q[j + 1, i] = wv[i] * inv
    return False


# --- kernels: each handles items[i0:i1] (matrix indices); per-item outputs are indexed by position ------
_f32, _f64, _c64, _c128 = types.float32, types.float64, types.complex64, types.complex128
_i64v, _f64v, _bv = types.int64[::1], types.float64[::1], types.boolean[::1]
_I = types.int64


def _prep_sig(win, bits, kdt, ldt):
    return types.void(win[:, :, ::1], bits[:, :, ::1], bits[::1], _i64v, _I, _I, types.boolean,
                      kdt[:, :, ::1], ldt[:, :, ::1], _f64v, _f64v, _bv)


_u32, _u64 = types.uint32, types.uint64


@kernel([_prep_sig(_f32, _u32, _f64, _f32), _prep_sig(_f64, _u64, _f64, _f32),
         _prep_sig(_c64, _u32, _c128, _c64), _prep_sig(_c128, _u64, _c128, _c64)])
def prep(w3, bits3, consts, items, i0, i1, tri_test, wk, wl, scale, fro, tri):
    """scale[b] = the power of two of max |w_ij| (0 for the zero matrix); tri[b] when ``tri_test`` and W is
    triangular; otherwise wk[b] = W/s in the Krylov precision, fro[b] = ||W/s||_F and, when wl holds
    matrices, wl[b] = W/s in the filter precision (both copies made while W is in cache).  bits3: W's
    IEEE bits for real W (the fast scale scan, with ``consts`` for :func:`_scale_of_bits`), empty for
    complex W."""
    low = wl.shape[0] > 0
    real = bits3.shape[0] > 0
    bias = 127 if consts[1] == 23 else 1023
    for k in range(i0, i1):
        b = items[k]
        s = _scale_of_bits(bits3[b], consts, bias) if real else _scale_of(w3[b])
        scale[b] = s
        if s == 0.0:
            continue
        if tri_test and _triangular(w3[b]) != 0:
            tri[b] = True
            continue
        fro[b] = _scaled_copies(w3[b], s, wk[b], wl, b, low)


def _iso_sig(kdt):
    return types.void(kdt[:, :, ::1], kdt[:, :, ::1], _i64v, _I, _I, types.float64[:, ::1],
                      types.float64[:, ::1])


@device
def _isometry(wk, xs, items, i0, i1, c2, defect):
    """c2[k, v] = ||W x||² / ||x||², defect[k, v] = ||Wᴴ W x - c2 x|| / (c2 ||x||) (inf if c2 = 0) for the
    start vectors x = xs[b, v], v = 0, 1."""
    for k in range(i0, i1):
        b = items[k]
        a = wk[b]
        for v in range(2):
            x = xs[b, v]
            nx2 = _vnorm(x) ** 2
            y = mv(a, x)
            z = _adjoint_dot(a, y)
            c = _vnorm(y) ** 2 / nx2
            c2[k, v] = c
            if c == 0.0:
                defect[k, v] = np.inf
                continue
            e2 = 0.0
            for i in range(x.shape[0]):
                d = z[i] - c * x[i]
                e2 += d.real * d.real + d.imag * d.imag
            defect[k, v] = math.sqrt(e2) / (c * math.sqrt(nx2))


@kernel(_iso_sig(_f64))
def isometry_real(wk, xs, items, i0, i1, c2, defect):
    _isometry(wk, xs, items, i0, i1, c2, defect)


@kernel(_iso_sig(_c128))
def isometry_complex(wk, xs, items, i0, i1, c2, defect):
    _isometry(wk, xs, items, i0, i1, c2, defect)


def _power_sig(pdt):
    return types.void(pdt[:, :, ::1], types.complex128[:, ::1] if isinstance(pdt, types.Complex)
                      else types.float64[:, ::1], _i64v, _I, _I, _i64v, types.boolean,
                      types.complex128[:, ::1] if isinstance(pdt, types.Complex) else types.float64[:, ::1],
                      _i64v, _bv)


@device
def _power(w3, x0, items, i0, i1, steps, settle, xout, done, zero):
    """Up to steps[k] products x <- W x / ||W x|| with w3[b] (W/s in the precision of the products: the
    filter's low copy or the Krylov copy) from x0[k] / ||x0[k]||; done[k] = products made, zero[k] = an
    iterate was exactly zero (stopped there).  With ``settle`` the loop also stops once ||W x|| changed
    by <= FILTER_SETTLED (relative) for FILTER_SETTLED_RUN steps in a row (a dominant real eigenvector; a
    dominant complex pair makes the growth oscillate instead).  xout[k] = the final unit vector in the
    Krylov precision (unless zero)."""
    n = w3.shape[1]
    xf = np.empty(n, dtype=w3.dtype)
    for k in range(i0, i1):
        wf = w3[items[k]]
        nx = _vnorm(x0[k])
        for i in range(n):
            xf[i] = x0[k, i] / nx
        cnt = 0
        run = 0
        gprev = -1.0
        z = False
        while cnt < steps[k]:
            yf = mv(wf, xf)
            cnt += 1
            ny = _vnorm(yf)
            if ny == 0.0:
                z = True
                break
            inv = 1.0 / ny
            for i in range(n):
                xf[i] = yf[i] * inv
            if settle:
                if abs(ny - gprev) <= FILTER_SETTLED * ny:
                    run += 1
                    if run >= FILTER_SETTLED_RUN:
                        break
                else:
                    run = 0
                gprev = ny
        done[k] = cnt
        zero[k] = z
        if not z:
            nf = _vnorm(xf)
            for i in range(n):
                xout[k, i] = xf[i] / nf


@kernel(_power_sig(_f32))
def power_f32(w3, x0, items, i0, i1, steps, settle, xout, done, zero):
    _power(w3, x0, items, i0, i1, steps, settle, xout, done, zero)


@kernel(_power_sig(_c64))
def power_c64(w3, x0, items, i0, i1, steps, settle, xout, done, zero):
    _power(w3, x0, items, i0, i1, steps, settle, xout, done, zero)


@kernel(_power_sig(_f64))
def power_f64(w3, x0, items, i0, i1, steps, settle, xout, done, zero):
    _power(w3, x0, items, i0, i1, steps, settle, xout, done, zero)


@kernel(_power_sig(_c128))
def power_c128(w3, x0, items, i0, i1, steps, settle, xout, done, zero):
    _power(w3, x0, items, i0, i1, steps, settle, xout, done, zero)


def _arnoldi_sig(kdt):
    return types.void(kdt[:, :, ::1], kdt[:, :, ::1], kdt[:, :, ::1], _i64v, _I, _I, _i64v, _i64v, _f64v,
                      _i64v, _bv)


@device
def _arnoldi(wk, q3, h3, items, i0, i1, j0, j1, brk_tol, jend, brk):
    """Arnoldi steps j0[k] .. j1[k]-1 on the basis q3[b] and Hessenberg matrix h3[b], stopping at a
    breakdown (the new direction shorter than brk_tol[k]); jend[k] = the dimension reached."""
    for k in range(i0, i1):
        b = items[k]
        j = j0[k]
        br = False
        while j < j1[k]:
            br = _arnoldi_step(wk[b], q3[b], h3[b], j, brk_tol[k])
            j += 1
            if br:
                break
        jend[k] = j
        brk[k] = br


@kernel(_arnoldi_sig(_f64))
def arnoldi_real(wk, q3, h3, items, i0, i1, j0, j1, brk_tol, jend, brk):
    _arnoldi(wk, q3, h3, items, i0, i1, j0, j1, brk_tol, jend, brk)


@kernel(_arnoldi_sig(_c128))
def arnoldi_complex(wk, q3, h3, items, i0, i1, j0, j1, brk_tol, jend, brk):
    _arnoldi(wk, q3, h3, items, i0, i1, j0, j1, brk_tol, jend, brk)


def _lanczos_sig(kdt):
    return types.void(kdt[:, :, ::1], kdt[:, :, ::1], types.float64[:, ::1], types.float64[:, ::1], _i64v, _I,
                      _I, _i64v, _i64v, _f64v, _i64v, _bv)


@device
def _lanczos(wk, v3, alpha, beta, items, i0, i1, j0, j1, brk_tol, jend, brk):
    """Lanczos steps j0[k] .. j1[k]-1 on Wᴴ W (u = W v_j, w = Wᴴ u, CGS2 against v_0..v_j), stopping at a
    breakdown (||w|| <= brk_tol[k])."""
    hcol = np.zeros(v3.shape[1], dtype=v3.dtype)
    n = v3.shape[2]
    for k in range(i0, i1):
        b = items[k]
        a = wk[b]
        v = v3[b]
        j = j0[k]
        br = False
        while j < j1[k]:
            u = mv(a, v[j])
            wv = _adjoint_dot(a, u)
            for i in range(hcol.shape[0]):
                hcol[i] = 0.0
            _gram_schmidt(v, j + 1, wv, hcol)
            alpha[b, j] = hcol[j].real
            bj = _vnorm(wv)
            beta[b, j] = bj
            br = bj <= brk_tol[k]
            if not br:
                for i in range(n):
                    v[j + 1, i] = wv[i] / bj
            j += 1
            if br:
                break
        jend[k] = j
        brk[k] = br


@kernel(_lanczos_sig(_f64))
def lanczos_real(wk, v3, alpha, beta, items, i0, i1, j0, j1, brk_tol, jend, brk):
    _lanczos(wk, v3, alpha, beta, items, i0, i1, j0, j1, brk_tol, jend, brk)


@kernel(_lanczos_sig(_c128))
def lanczos_complex(wk, v3, alpha, beta, items, i0, i1, j0, j1, brk_tol, jend, brk):
    _lanczos(wk, v3, alpha, beta, items, i0, i1, j0, j1, brk_tol, jend, brk)


_POWER = {np.dtype(np.float32): power_f32, np.dtype(np.complex64): power_c64, np.dtype(np.float64): power_f64,
          np.dtype(np.complex128): power_c128}


# --- the backend ----------------------------------------------------------------------------------------
def _unit(x):
    """x / ||x|| row by row (k, n), C-contiguous x: the norm summed in order, each real component divided
    by it (what the kernels' complex-by-real divisions compute)."""
    nx = spec.vnorm(x)
    if np.iscomplexobj(x):
        return (x.view(np.float64) / nx[:, None]).view(x.dtype)
    return x / nx[:, None]


def _per_matrix_bytes(n, cplx, m):
    """The two copies of W/s, the Krylov basis and Hessenberg matrix, the vectors."""
    return (16 if cplx else 8) * (n * n + (m + 1) * (n + m) + 2 * n) + (8 if cplx else 4) * n * n


def wave_size(nb, n, cplx, m):
    """Matrices per wave: about WAVE_ENTRIES entries, at least WAVES_PER_THREAD waves per thread, the
    waves in flight within WAVE_BYTES; at least one."""
    t = threads.nthreads()
    g = min(-(-WAVE_ENTRIES // (n * n)), -(-nb // (t * WAVES_PER_THREAD)),
            WAVE_BYTES // (t * _per_matrix_bytes(n, cplx, m)))
    return int(max(1, min(nb, g)))


def scratch_bytes(kind, nb, n, cplx, m):
    """Host memory of a call ("radius" or "norm") beyond W and the start vectors: the waves in flight
    (copies of W/s and bases) and their low-precision copies (the API checks it before anything runs)."""
    return min(threads.nthreads(), nb) * wave_size(nb, n, cplx, m) * _per_matrix_bytes(n, cplx, m)


_DISPATCH = {}


class _Arena:
    """Memory for a wave's arrays, carved out of one block that the next wave reuses, and the next call
    (:data:`_ARENAS`): fresh memory costs a page fault per 4 KiB on first touch and cache misses on every
    write (measured: +0.4 ms per 500 x 500 float64 copy, about 8% of a matrix's time)."""

    def __init__(self, nbytes):
        self.block = np.empty(nbytes + 64, dtype=np.uint8)
        self.base = self.block.ctypes.data
        self.used = 0

    def take(self, shape, dtype, zero=False):
        dtype = np.dtype(dtype)
        size = int(np.prod(shape)) * dtype.itemsize
        start = -(-(self.base + self.used) // 64) * 64 - self.base     # 64-byte aligned addresses
        if start + size > self.block.size:            # (never, for the sizes :func:`run` plans)
            a = np.empty(shape, dtype=dtype)
        else:
            self.used = start + size
            a = self.block[start:start + size].view(dtype).reshape(shape)
        if zero:
            a[...] = 0
        return a


class Stack(spec.Backend):
    """spec.Backend for a C-contiguous NumPy stack W (nb, n, n) and its start vectors xs (nb, 2, n)
    (float64, or complex128 for complex W); its arrays live in ``arena`` (a fresh one by default)."""

    def __init__(self, W, xs, arena=None):
        self.W = W
        self.xs = xs
        self.nb, self.n = int(W.shape[0]), int(W.shape[1])
        self.complex = np.iscomplexobj(W)
        self.kdt = np.dtype(np.complex128 if self.complex else np.float64)
        self.ldt = np.dtype(np.complex64 if self.complex else np.float32)
        self.arena = arena if arena is not None else _Arena(0)
        self.wk = self.arena.take((self.nb, self.n, self.n), self.kdt)

    @staticmethod
    def _each(kern, items, head, tail):
        """kern(*head, items, 0, len(items), *tail) on this thread (the waves run on the threads).  The
        signature is selected by the dtypes of the ``head`` arguments (W's or its copy's, and the
        product precision): resolved once per process, not per call (``dispatcher_for`` types every
        argument)."""
        key = (kern.py_func.__name__,) + tuple(a.dtype for a in head)
        d = _DISPATCH.get(key)
        if d is None:
            d = _DISPATCH[key] = kern.dispatcher_for(*head, items, 0, 0, *tail)
        d(*head, items, 0, items.size, *tail)

    def prep(self, triangular, low):
        items = np.arange(self.nb, dtype=np.int64)
        scale = np.zeros(self.nb)
        fro = np.zeros(self.nb)
        tri = np.zeros(self.nb, dtype=np.bool_)
        self.tri_test = bool(triangular)
        self.wl = self.arena.take((self.nb if low else 0, self.n, self.n), self.ldt)
        ut = np.dtype(np.uint32 if self.W.dtype in (np.float32, np.complex64) else np.uint64)
        bits = np.zeros((0, 0, 0), dtype=ut) if self.complex else self.W.view(ut)
        consts = np.array([2 ** (8 * ut.itemsize - 1) - 1, 23 if ut.itemsize == 4 else 52, 1], dtype=ut)
        self._each(prep, items, (self.W, bits, consts),
                   (bool(triangular), self.wk, self.wl, scale, fro, tri))
        return scale, fro, tri

    def diagonal(self, items):
        return np.diagonal(self.W[items], axis1=1, axis2=2)

    def isometry(self, items):
        c2 = np.empty((items.size, 2))
        de = np.empty((items.size, 2))
        self._each(isometry_complex if self.complex else isometry_real, items, (self.wk, self.xs), (c2, de))
        return c2, de

    def power(self, items, steps, *, source, low, settle):
        if low and self.wl.shape[0] != self.nb:          # prep(low=False) made no low copy: make it now
            self.prep(self.tri_test, True)
        x0 = np.ascontiguousarray(self.xs[items, 0] if source == "start" else self.X[items])
        xout = np.empty_like(x0)
        done = np.empty(items.size, dtype=np.int64)
        zero = np.empty(items.size, dtype=np.bool_)
        w = self.wl if low else self.wk
        self._each(_POWER[w.dtype], items, (w, x0),
                   (np.ascontiguousarray(steps, dtype=np.int64), bool(settle), xout, done, zero))
        if settle:
            ok = ~zero
            self.Q[items[ok], 0] = xout[ok]
            self.X[items[ok]] = xout[ok]
        return done, zero

    def start_raw(self, items):
        x = _unit(self.xs[items, 0])
        self.Q[items, 0] = x
        self.X[items] = x

    def arnoldi_init(self, m):
        self.m = m
        self.Q = self.arena.take((self.nb, m + 1, self.n), self.kdt, zero=True)
        self.H = self.arena.take((self.nb, m + 1, m), self.kdt, zero=True)
        self.X = self.arena.take((self.nb, self.n), self.kdt, zero=True)

    def arnoldi(self, items, j0, j1, brk_tol):
        jend = np.empty(items.size, dtype=np.int64)
        brk = np.empty(items.size, dtype=np.bool_)
        self._each(arnoldi_complex if self.complex else arnoldi_real, items, (self.wk, self.Q, self.H),
                   (np.ascontiguousarray(j0), np.ascontiguousarray(j1, dtype=np.int64),
                    np.ascontiguousarray(brk_tol), jend, brk))
        return jend, brk

    def hessenberg(self, items):
        return self.H[items]

    def arnoldi_restart(self, items, us, kks, hs):
        m = self.m
        for b, u, kk, h in zip(items, us, kks, hs):
            q = self.Q[b]
            qn = np.ascontiguousarray(u.T) @ q[:m]
            q[kk] = q[m]
            q[kk + 1:] = 0.0
            q[:kk] = qn
            self.H[b] = h

    def lanczos_init(self, items, m):
        self.m = m
        self.V = self.arena.take((self.nb, m + 1, self.n), self.kdt, zero=True)
        self.alpha = self.arena.take((self.nb, m), np.float64, zero=True)
        self.beta = self.arena.take((self.nb, m), np.float64, zero=True)
        self.V[items, 0] = _unit(self.xs[items, 0])

    def lanczos(self, items, j0, j1, brk_tol):
        jend = np.empty(items.size, dtype=np.int64)
        brk = np.empty(items.size, dtype=np.bool_)
        self._each(lanczos_complex if self.complex else lanczos_real, items,
                   (self.wk, self.V, self.alpha, self.beta),
                   (np.ascontiguousarray(j0), np.ascontiguousarray(j1, dtype=np.int64),
                    np.ascontiguousarray(brk_tol), jend, brk))
        return jend, brk

    def tridiagonal(self, items):
        return self.alpha[items], self.beta[items]

    def lanczos_restart(self, items, coef):
        m = self.m
        y = np.stack([np.ascontiguousarray(c.astype(self.kdt)) @ self.V[b, :m] for b, c in zip(items, coef)])
        self.V[items] = 0.0
        self.V[items, 0] = _unit(y)


def run(driver, W3, xs, m, **params):
    """The spec's ``driver`` (spec.radius or spec.norm) over the batch W3 with start vectors xs: waves of
    :func:`wave_size` matrices, each an independent lockstep stack, spread over the threads (each wave's
    kernels run on the thread that drives it).  Returns the driver's host arrays for the whole batch."""
    nb, n = int(W3.shape[0]), int(W3.shape[1])
    cplx = np.iscomplexobj(W3)
    g = wave_size(nb, n, cplx, m)
    bounds = [(b0, min(nb, b0 + g)) for b0 in range(0, nb, g)]
    need = g * (_per_matrix_bytes(n, cplx, m) + 64 * 16)

    def wave(i):
        b0, b1 = bounds[i]
        with _ARENA_LOCK:
            arena = _ARENAS.pop() if _ARENAS else None
        if arena is None or arena.block.size < need:
            arena = _Arena(need)
        arena.used = 0
        out = driver(Stack(W3[b0:b1], xs[b0:b1], arena), **params)
        with _ARENA_LOCK:
            if len(_ARENAS) < threads.nthreads() and need <= WAVE_BYTES:
                _ARENAS.append(arena)
        return out
    with threads.blas_single_thread():
        parts = threads.run_tasks(wave, len(bounds))
    return spec.gather(parts, [b for b, _ in bounds], nb)


_ARENAS = []
"""Arenas of finished waves, kept for the next waves and calls: at most one per thread, each at most
WAVE_BYTES (32 MB in all at n = 500 with the default wave of 4 matrices on 2 threads)."""
_ARENA_LOCK = threading.Lock()


# --- method="exact": LAPACK, one matrix per thread (LAPACK releases the GIL) --------------------------
def eigvals(W3):
    """All eigenvalues (nb, n) complex128 (LAPACK geev in float64 / complex128, matrix by matrix)."""
    wide = np.complex128 if np.iscomplexobj(W3) else np.float64
    out = np.empty(W3.shape[:2], dtype=np.complex128)

    def one(b):
        out[b] = np.linalg.eigvals(W3[b].astype(wide))
    with threads.blas_single_thread():
        threads.run_tasks(one, W3.shape[0])
    return out


def top_singular_values(W3):
    """The largest singular value of each matrix (nb,) (LAPACK SVD in float64 / complex128)."""
    wide = np.complex128 if np.iscomplexobj(W3) else np.float64
    with threads.blas_single_thread():
        return np.array(threads.run_tasks(
            lambda b: float(np.linalg.svd(W3[b].astype(wide), compute_uv=False)[0]), W3.shape[0]))
