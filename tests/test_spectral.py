"""rf.spectral_radius and rf.spectral_norm on the CPU against LAPACK (tests/naive_spectral.py).

The accuracy claim (docs/spectral.md): relative error <= 1e-4 for at least 99.5% of Glorot matrices with
the default settings, and every miss flagged ``converged=False``.  The default run checks ~800 fresh
real Glorot matrices (n = 64 ... 1024) plus complex ones; bench/compare_spectral.py --validate runs the
larger sweep recorded in bench/NOTES.md.  Seeds are fixed.
"""
import numpy as np
import pytest

import naive_spectral as naive
import rinit_fast as rf
from rinit_fast.spectral import NormResult, SpectralResult

TOL = 1e-4


def _check_radius(W, r, tol=TOL, allowed_miss=0.005):
    """Every error above tol is flagged; at most ``allowed_miss`` of the matrices miss."""
    exact = naive.spectral_radius(W)
    err = naive.rel_error(r.radius, exact)
    miss = err > tol
    silent = miss & r.converged
    assert not silent.any(), (f"silently wrong: errors {err[silent]} at {np.flatnonzero(silent)} "
                              f"(radius {r.radius[silent]}, exact {exact[silent]})")
    assert miss.mean() <= allowed_miss, f"{miss.sum()} of {miss.size} misses (max error {err.max():.2e})"
    return err


# --- accuracy on Glorot matrices -------------------------------------------------------------------
@pytest.mark.parametrize("scheme, n, batch, dtype, seed", [
    ("glorot_normal", 64, 400, "float32", 11),
    ("glorot_uniform", 100, 200, "float64", 12),
    ("glorot_normal", 256, 150, "float32", 13),
    ("glorot_normal", 500, 8, "float64", 14),
    ("glorot_uniform", 500, 8, "float32", 15),
    ("glorot_normal", 1024, 3, "float32", 16),
])
def test_glorot_accuracy(scheme, n, batch, dtype, seed):
    W = rf.sample(scheme, n, batch=batch, seed=seed, dtype=dtype)
    r = rf.spectral_radius(W, seed=seed)
    assert isinstance(r, SpectralResult)
    assert r.radius.shape == r.converged.shape == r.iterations.shape == r.residual.shape == (batch,)
    assert r.radius.dtype == np.float64 and r.converged.dtype == np.bool_ and r.iterations.dtype == np.int64
    err = _check_radius(W, r)
    # measured (docs/spectral.md): errors are orders of magnitude below tol and nothing is flagged
    assert r.converged.mean() >= 0.99
    assert np.median(err) < 1e-6
    assert set(r.path) == {"ritz"}
    # the top Ritz value is the answer
    np.testing.assert_allclose(np.abs(r.ritz[:, 0]), r.radius, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("n, batch", [(64, 60), (200, 20)])
def test_complex_glorot_accuracy(dtype, n, batch):
    W = rf.sample("complex_glorot", n, batch=batch, seed=21, dtype=dtype)
    r = rf.spectral_radius(W, seed=3)
    _check_radius(W, r)
    assert r.converged.mean() >= 0.99


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 33])
def test_odd_sizes(n, dtype):
    scheme = "complex_glorot" if dtype.startswith("complex") else "glorot_normal"
    W = rf.sample(scheme, n, batch=20, seed=n, dtype=dtype)
    r = rf.spectral_radius(W)
    err = _check_radius(W, r, allowed_miss=0.0)
    assert r.converged.all()
    assert err.max() < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tol_is_honoured(dtype):
    """Looser and tighter tolerances: every error above tol is flagged."""
    W = rf.sample("glorot_normal", 128, batch=60, seed=5, dtype=dtype)
    for tol in (1e-2, 1e-3, 1e-6):
        _check_radius(W, rf.spectral_radius(W, tol=tol), tol=tol)


def test_budget_exhausted_is_flagged():
    """A budget too small to converge gives converged=False (never a silent wrong value)."""
    W = rf.sample("glorot_normal", 256, batch=20, seed=6, dtype="float64")
    r = rf.spectral_radius(W, max_iter=40, filter_steps=10)
    _check_radius(W, r, allowed_miss=1.0)
    assert not r.converged.all()
    assert (r.iterations <= 40).all()


# --- matrices with structure -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [64, 500])
def test_orthogonal_is_exactly_one(n, dtype):
    """Every eigenvalue of an orthogonal matrix has modulus 1 (all tied): Ritz values under-read it, the
    growth of the iterates does not."""
    W = rf.sample("orthogonal", n, batch=4, seed=7, dtype=dtype)
    r = rf.spectral_radius(W)
    np.testing.assert_allclose(r.radius, 1.0, rtol=1e-6 if dtype == "float32" else 1e-12, atol=0)
    assert r.converged.all() and set(r.path) == {"isometry"}
    W = rf.sample("orthogonal", n, batch=2, seed=8, dtype=dtype, gain=2.5)
    np.testing.assert_allclose(rf.spectral_radius(W).radius, 2.5, rtol=1e-6)


def test_uniform01_large_real_eigenvalue():
    for n, dtype in [(100, "float32"), (333, "float64")]:
        W = rf.sample("uniform01", n, batch=5, seed=9, dtype=dtype)
        r = rf.spectral_radius(W)
        _check_radius(W, r, tol=1e-10, allowed_miss=0.0)
        assert r.converged.all()
        assert np.all(np.abs(r.radius / (n / 2) - 1) < 0.05)       # Perron root ~ n/2
        assert np.allclose(r.ritz[:, 0].imag, 0.0)                  # a real eigenvalue


def test_nilpotent_is_zero():
    """Nilpotent matrices have radius exactly 0.  Triangular ones are read off the diagonal; a permuted
    one is certified by an iterate W^p x of the random start that becomes exactly zero (p <= n)."""
    rng = np.random.default_rng(10)
    for n in (5, 64, 200):
        N = naive.strictly_upper(n, rng)
        r = rf.spectral_radius(N)
        assert r.radius == 0.0 and r.converged and r.path == "triangular"
        P = naive.permute(N, rng)
        for dtype in (np.float32, np.float64):
            r = rf.spectral_radius(P.astype(dtype))
            assert r.radius == 0.0 and r.converged
            if n > 5:  # (a permutation of a 5 x 5 triangular matrix may still be triangular)
                assert r.path == "nilpotent", (n, dtype, r)
                assert 1 <= r.iterations <= 2 * n + 50
    S = naive.permute(naive.jordan_block(150, 0.0), rng)           # the shift: nilpotent of index n
    r = rf.spectral_radius(S)
    assert r.radius == 0.0 and r.converged


def test_jordan_block():
    """Defective matrices: a Jordan block (exact, triangular) and a dominant Jordan block hidden by an
    orthogonal similarity (ill-conditioned: LAPACK itself is only eps^(1/size) accurate)."""
    J = naive.jordan_block(64, 0.9)
    r = rf.spectral_radius(J)
    assert r.radius == 0.9 and r.converged
    rng = np.random.default_rng(11)
    for size in (2, 3):
        W = naive.embedded_jordan(150, 1.2, size, rng)
        r = rf.spectral_radius(W)
        exact = naive.spectral_radius(W)
        assert (abs(r.radius - exact) / exact <= TOL) or not r.converged
        assert abs(r.radius - 1.2) <= 1e-3


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_extreme_scales(dtype):
    """Entries from subnormal (max |w| ~ 1e-310: 1/s overflows, the copy scales in two exact steps) to
    1e300: the same answers as at unit scale, scaled."""
    scheme = "complex_glorot" if dtype.startswith("complex") else "glorot_normal"
    W = rf.sample(scheme, 40, batch=3, seed=17, dtype=dtype)
    r1, s1 = rf.spectral_radius(W), rf.spectral_norm(W)
    for c in (1e-310, 1e300):
        r, s = rf.spectral_radius(W * c), rf.spectral_norm(W * c)
        assert r.converged.all() and s.converged.all()
        np.testing.assert_allclose(r.radius, naive.spectral_radius(W * c), rtol=1e-8)
        np.testing.assert_allclose(r.radius / c, r1.radius, rtol=1e-8)
        np.testing.assert_allclose(s.norm / c, s1.norm, rtol=1e-8)


def test_zero_and_batch_shapes():
    z = rf.spectral_radius(np.zeros((3, 4, 4), dtype=np.float32))
    assert np.all(z.radius == 0.0) and z.converged.all() and z.radius.shape == (3,)
    W = rf.sample("glorot_normal", 24, batch=6, seed=12, dtype="float64").reshape(2, 3, 24, 24)
    r = rf.spectral_radius(W, n_ritz=4)
    assert r.radius.shape == (2, 3) and r.ritz.shape == (2, 3, 4) and r.path.shape == (2, 3)
    np.testing.assert_allclose(r.radius, naive.spectral_radius(W), rtol=1e-8)
    one = rf.spectral_radius(W[1, 2], start=5)   # matrix (1, 2) is matrix 5 of the flat batch
    assert one.radius.shape == () and one.ritz.shape == (6,)
    assert one.radius == r.radius[1, 2]
    # non-contiguous input
    Wt = np.swapaxes(W, -1, -2)
    np.testing.assert_allclose(rf.spectral_radius(Wt).radius, r.radius, rtol=1e-8)


def test_reproducible_and_chunk_invariant():
    """Matrix j of W uses start vectors of stream index start + j: any chunking gives the same bits."""
    W = rf.sample("glorot_normal", 80, batch=10, seed=13, dtype="float32")
    full = rf.spectral_radius(W, seed=4)
    again = rf.spectral_radius(W, seed=4)
    np.testing.assert_array_equal(full.radius, again.radius)
    part = rf.spectral_radius(W[6:], seed=4, start=6)
    np.testing.assert_array_equal(full.radius[6:], part.radius)
    np.testing.assert_array_equal(full.iterations[6:], part.iterations)
    other = rf.spectral_radius(W, seed=5)
    assert not np.array_equal(full.radius, other.radius)           # other start vectors ...
    np.testing.assert_allclose(full.radius, other.radius, rtol=1e-6)   # ... same answer


def test_method_exact():
    W = rf.sample("glorot_normal", 50, batch=4, seed=14, dtype="float32")
    r = rf.spectral_radius(W, method="exact")
    ev = naive.eigvals(W)
    np.testing.assert_allclose(r.radius, np.abs(ev).max(-1), rtol=1e-12)
    assert r.converged.all() and set(r.path) == {"exact"} and r.method == "exact"
    np.testing.assert_allclose(np.abs(r.ritz[:, 0]), r.radius, rtol=1e-12)
    p = rf.spectral_radius(W)
    np.testing.assert_allclose(p.radius, r.radius, rtol=1e-6)
    # the leading Ritz values are the leading eigenvalues (up to conjugation order)
    np.testing.assert_allclose(np.sort(np.abs(p.ritz[:, :2]), axis=1), np.sort(np.abs(r.ritz[:, :2]), axis=1),
                               rtol=1e-5)


# --- spectral norm ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme, dtype", [("glorot_normal", "float32"), ("glorot_uniform", "float64"),
                                           ("complex_glorot", "complex64"), ("complex_glorot", "complex128"),
                                           ("uniform01", "float32"), ("he_normal", "float64")])
def test_norm_matches_svd(scheme, dtype):
    for n, batch in [(1, 3), (7, 10), (64, 40), (300, 6)]:
        W = rf.sample(scheme, n, batch=batch, seed=n, dtype=dtype)
        s = rf.spectral_norm(W)
        assert isinstance(s, NormResult)
        exact = naive.spectral_norm(W)
        err = naive.rel_error(s.norm, exact)
        assert err.max() <= 1e-6, (scheme, n, err.max())
        assert s.converged.all()


def test_norm_special_and_exact():
    W = rf.sample("orthogonal", 200, batch=3, seed=2, dtype="float64")
    np.testing.assert_allclose(rf.spectral_norm(W).norm, 1.0, rtol=1e-12)
    assert rf.spectral_norm(np.zeros((2, 5, 5))).norm.tolist() == [0.0, 0.0]
    J = naive.jordan_block(30, 0.5)
    np.testing.assert_allclose(rf.spectral_norm(J).norm, np.linalg.norm(J, 2), rtol=1e-6)
    W = rf.sample("glorot_normal", 40, batch=6, seed=3, dtype="float32").reshape(3, 2, 40, 40)
    s = rf.spectral_norm(W)
    e = rf.spectral_norm(W, method="exact")
    assert s.norm.shape == e.norm.shape == (3, 2)
    np.testing.assert_allclose(s.norm, e.norm, rtol=1e-6)
    np.testing.assert_allclose(e.norm, naive.spectral_norm(W), rtol=1e-12)
    # the norm bounds the radius
    assert np.all(rf.spectral_radius(W).radius <= s.norm * (1 + 1e-9))


# --- errors before any kernel runs -------------------------------------------------------------------
@pytest.mark.parametrize("fn", [rf.spectral_radius, rf.spectral_norm])
def test_errors(fn):
    good = np.eye(3)
    bad = [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN or infinite"),
        (np.array([[1.0, np.inf], [0.0, 1.0]], dtype=np.float32), ValueError, "NaN or infinite"),
        (np.ones((3, 4)), ValueError, "square"),
        (np.ones((2, 3, 4)), ValueError, "square"),
        (np.ones(5), ValueError, r"\(\.\.\., n, n\)"),
        (np.ones((0, 0)), ValueError, "empty"),
        (np.ones((0, 3, 3)), ValueError, "empty"),
        (np.ones((3, 3), dtype=np.int64), TypeError, "float32, float64, complex64 or complex128"),
        (np.ones((3, 3), dtype=np.float16), TypeError, "float32, float64"),
    ]
    for W, exc, match in bad:
        with pytest.raises(exc, match=match):
            fn(W)
    for kw, exc, match in [({"method": "lapack"}, ValueError, "method must be one of"),
                           ({"tol": 0.0}, ValueError, r"tol must be in \(0, 1\)"),
                           ({"tol": "1e-4"}, TypeError, "tol must be a real number"),
                           ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
                           ({"max_iter": 10.5}, TypeError, "max_iter must be an integer"),
                           ({"seed": -1}, ValueError, "seed must be in"),
                           ({"start": 2 ** 32}, ValueError, "start \\+ batch"),
                           ({"krylov_dim": 4}, ValueError, "krylov_dim must be >= 8")]:
        with pytest.raises(exc, match=match):
            fn(good, **kw)


# --- the spec's driver and the CPU primitives against the textbook backend (naive_spectral.Backend) ------
def _xs(W, nsub=2, seed=0):
    from rinit_fast.spectral import _start_vectors
    return _start_vectors(seed, 0, W.shape[0], W.shape[1], nsub, np.iscomplexobj(W), "cpu")


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_cpu_primitives_match_the_textbook(dtype):
    """Each primitive of kernels/cpu/spectral.py against naive_spectral.Backend on the same state."""
    from rinit_fast.kernels.cpu import spectral as kern
    scheme = "complex_glorot" if dtype.startswith("complex") else "glorot_normal"
    n, m = 37, 12
    W = rf.sample(scheme, n, batch=5, seed=61, dtype=dtype) * 3.7
    W[3] = np.triu(W[3])                                    # triangular: no copy, flagged
    W[4] *= np.finfo(W.dtype).tiny * 2.0 ** -10             # max |w| subnormal: the scale read off its bits
    xs = _xs(W)
    cpu, ref = kern.Stack(np.ascontiguousarray(W), xs), naive.Backend(W, xs)
    s1, f1, t1 = cpu.prep(True, True)
    s2, f2, t2 = ref.prep(True, True)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(t1, t2)
    assert t1.tolist() == [False, False, False, True, False]
    items = np.array([0, 1, 2, 4])
    np.testing.assert_allclose(f1[items], f2[items], rtol=1e-13)
    assert np.array_equal(cpu.wk[items], ref.Wk[items])      # W/s exactly (a power of two)
    c1, d1 = cpu.isometry(items)
    c2, d2 = ref.isometry(items)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)
    np.testing.assert_allclose(d1, d2, rtol=1e-9)
    for be in (cpu, ref):
        be.arnoldi_init(m)
    steps = np.array([0, 5, 40, 7])
    r1 = cpu.power(items, steps, source="start", low=True, settle=True)
    r2 = ref.power(items, steps, source="start", low=True, settle=True)
    np.testing.assert_array_equal(r1[0], steps)
    np.testing.assert_array_equal(r1[0], r2[0])
    assert not r1[1].any() and not r2[1].any()
    np.testing.assert_allclose(cpu.Q[items, 0], ref.Q[items, 0], atol=1e-4)   # the filter runs in float32
    ref.Q[:] = cpu.Q                                         # continue from the same vectors
    ref.X[:] = cpu.X
    j0 = np.zeros(4, dtype=np.int64)
    j1 = np.array([1, 6, m, 9])
    bt = np.zeros(4)
    e1 = cpu.arnoldi(items, j0, j1, bt)
    e2 = ref.arnoldi(items, j0, j1, bt)
    np.testing.assert_array_equal(e1[0], j1)
    np.testing.assert_array_equal(e1[0], e2[0])
    np.testing.assert_allclose(cpu.H[items], ref.H[items], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cpu.Q[items], ref.Q[items], rtol=1e-9, atol=1e-12)
    for k, b in enumerate(items):                            # the Arnoldi relation, orthonormality
        j = j1[k]
        q = cpu.Q[b, :j + 1]
        np.testing.assert_allclose(q.conj() @ q.T, np.eye(j + 1), atol=1e-12)
        np.testing.assert_allclose(cpu.wk[b] @ q[:j].T, q.T @ cpu.H[b, :j + 1, :j], atol=1e-12)
    cpu.lanczos_init(items, m)
    ref.lanczos_init(items, m)
    e1 = cpu.lanczos(items, j0, j1, bt)
    e2 = ref.lanczos(items, j0, j1, bt)
    np.testing.assert_array_equal(e1[0], e2[0])
    a1, b1 = cpu.tridiagonal(items)
    a2, b2 = ref.tridiagonal(items)
    np.testing.assert_allclose(a1, a2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b1, b2, rtol=1e-9, atol=1e-12)


def test_cpu_power_zero_and_settle():
    """The nilpotency probe stops at the zero iterate (index p of a permuted strictly triangular matrix);
    the filter stops early once ||W x|| settles on a dominant real eigenvalue (uniform01)."""
    from rinit_fast.kernels.cpu import spectral as kern
    rng = np.random.default_rng(62)
    n = 30
    N = naive.permute(naive.strictly_upper(n, rng), rng)
    p = next(k for k in range(1, n + 1) if not np.linalg.matrix_power(N, k).any())
    U = rf.sample("uniform01", n, seed=63)
    W = np.stack([N, U.astype(np.float64)])
    xs = _xs(W)
    for be in (kern.Stack(W, xs), naive.Backend(W, xs)):
        be.prep(False, False)
        be.arnoldi_init(8)
        for low in (True, False):
            done, zero = be.power(np.array([0]), np.array([n + 5]), source="start", low=low, settle=False)
            assert zero[0] and done[0] <= p
        done, zero = be.power(np.array([1]), np.array([500]), source="start", low=True, settle=True)
        assert not zero[0] and 4 <= done[0] < 100


@pytest.mark.parametrize("dtype", ["float32", "complex128"])
def test_spec_driver_on_the_textbook_backend(dtype):
    """The whole algorithm with no compiled code (the spec's driver on naive_spectral.Backend) is right,
    and the CPU kernels follow it: the same paths and flags, radii to rounding, iterations within a check."""
    from rinit_fast.spec import spectral as spec
    scheme = "complex_glorot" if dtype.startswith("complex") else "glorot_normal"
    W = rf.sample(scheme, 48, batch=6, seed=64, dtype=dtype)
    W[1] = rf.sample("orthogonal", 48, seed=65, dtype="float64").astype(dtype)
    W[2] = np.triu(W[2])
    rng = np.random.default_rng(66)
    W[3] = naive.permute(naive.strictly_upper(48, rng), rng).astype(dtype)
    xs = _xs(W, seed=3)
    p0 = spec.default_filter_steps(48)
    kw = dict(tol=1e-4, max_iter=p0 + 2000, filter_steps=p0, krylov_dim=16, keep=spec.default_keep(16),
              eps_in=float(np.finfo(W.dtype).eps), n_ritz=6)
    radius, conv, its, res, ritz, path = spec.radius(naive.Backend(W, xs), **kw)
    exact = naive.spectral_radius(W)
    err = naive.rel_error(radius, exact)
    assert conv.all() and err.max() <= 1e-6, err
    assert [spec.PATHS[p] for p in path] == ["ritz", "isometry", "triangular", "nilpotent", "ritz", "ritz"]
    r = rf.spectral_radius(W, seed=3, krylov_dim=16)
    np.testing.assert_array_equal(r.path, np.asarray(spec.PATHS)[path])
    np.testing.assert_array_equal(r.converged, conv)
    np.testing.assert_allclose(r.radius, radius, rtol=1e-9)
    assert np.all(np.abs(r.iterations - its) <= spec.CHECK_STEP)
    norm, nconv, nits, nres = spec.norm(naive.Backend(W, xs[:, :1]), tol=1e-7, max_iter=4000, krylov_dim=16)
    assert nconv.all()
    np.testing.assert_allclose(norm, naive.spectral_norm(W), rtol=1e-6)
    np.testing.assert_allclose(rf.spectral_norm(W, seed=3, krylov_dim=16).norm, norm, rtol=1e-9)


def test_waves_and_threads_change_no_bit(monkeypatch):
    """The CPU runs a batch as waves on threads: any wave size and thread count gives the same bits."""
    import numba
    from rinit_fast.kernels.cpu import spectral as kern
    W = rf.sample("glorot_normal", 70, batch=9, seed=67, dtype="float32")
    ref = rf.spectral_radius(W, filter_steps=0)              # restarts too
    nref = rf.spectral_norm(W)
    old = numba.get_num_threads()
    try:
        for threads, wave_bytes in [(1, kern.WAVE_BYTES), (2, 1), (2, 3 * 2 ** 20)]:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            monkeypatch.setattr(kern, "WAVE_BYTES", wave_bytes)
            r = rf.spectral_radius(W, filter_steps=0)
            for f in ("radius", "iterations", "residual", "ritz", "converged"):
                np.testing.assert_array_equal(getattr(r, f), getattr(ref, f))
            np.testing.assert_array_equal(rf.spectral_norm(W).norm, nref.norm)
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_finiteness_check_finds_every_non_finite_entry(dtype):
    """_validate.finite (min/max of the real and imaginary parts) against isfinite().all(): a NaN or an
    infinity anywhere, in either part, in contiguous and strided arrays; empty arrays pass."""
    from rinit_fast import _validate
    rng = np.random.default_rng(5)
    cplx = np.dtype(dtype).kind == "c"
    bad = [np.nan, np.inf, -np.inf] + ([complex(0, np.nan), complex(1, -np.inf)] if cplx else [])
    for v in bad:
        for _ in range(4):
            a = rng.standard_normal((3, 7, 5)).astype(dtype)
            a[tuple(rng.integers(0, s) for s in a.shape)] = v
            for view in (a, a[:, ::2], a.transpose(0, 2, 1), a[..., 1:]):
                expect = bool(np.isfinite(view).all())
                if expect:
                    _validate.finite(view, "W")
                else:
                    with pytest.raises(ValueError, match="W contains NaN or infinite"):
                        _validate.finite(view, "W")
    _validate.finite(np.zeros((0, 4), dtype), "W")
    _validate.finite(np.full((2, 2), np.finfo(np.float32).max, dtype), "W")
