"""rf.spectral_radius / rf.spectral_norm with a CuPy W (kernels/cuda/spectral.cu through
kernels/cuda/spectral_launch.py): the accuracy contract against float64 LAPACK, the structured
matrices, and agreement with the CPU kernel.

Not bit-exact with the CPU (sums are reduced in another order); the estimates obey the same contract:
relative error <= 1e-4 on converged Glorot matrices (every miss flagged), orthogonal / uniform01 /
nilpotent / zero / n = 1 right, the norm within 1e-6 of numpy.linalg.norm(W, 2).  Skips without CuPy and
a GPU (the `cuda` fixture); tests/test_cuda_spectral_emulated.py runs the tests not marked `large` on the
CPU through the fake CuPy of tests/cuda_host.
"""
import numpy as np
import pytest

import naive_spectral as naive
import rinit_fast as rf

pytestmark = pytest.mark.gpu

TOL = 1e-4


def _np(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _radius_ok(W, r, tol=TOL, min_conv=0.95):
    """Every converged estimate within tol of LAPACK; at least min_conv of them converged."""
    exact = naive.spectral_radius(W)
    rad, conv = _np(r.radius), _np(r.converged)
    err = naive.rel_error(rad, exact)
    bad = conv & (err > tol)
    assert not bad.any(), f"converged but wrong: err {err[bad]}"
    assert conv.mean() >= min_conv, f"only {conv.mean():.3f} converged"
    return err


def _gpu(cp, W):
    return cp.asarray(W)


# --- the accuracy contract -------------------------------------------------------------------------
@pytest.mark.parametrize("n,batch", [(24, 3), (64, 3), pytest.param(128, 16, id="large-128"),
                                     pytest.param(256, 16, id="large-256"),
                                     pytest.param(500, 20, id="large-500"),
                                     pytest.param(1024, 4, id="large-1024")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_glorot_accuracy(cuda, n, batch, dtype):
    W = rf.sample("glorot_normal", n, batch=batch, seed=31, dtype=dtype)
    r = rf.spectral_radius(_gpu(cuda, W))
    assert isinstance(r.radius, cuda.ndarray) and r.radius.dtype == np.float64
    _radius_ok(W, r)
    assert set(r.path) == {"ritz"}


@pytest.mark.parametrize("n,batch", [(40, 2), pytest.param(300, 8, id="large-300")])
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_glorot_accuracy(cuda, n, batch, dtype):
    W = rf.sample("complex_glorot", n, batch=batch, seed=32, dtype=dtype)
    assert W.dtype == dtype
    _radius_ok(W, rf.spectral_radius(_gpu(cuda, W)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_orthogonal_is_one(cuda, dtype):
    for n in (33, 64):
        W = rf.sample("orthogonal", n, batch=2, seed=33, dtype=dtype)
        r = rf.spectral_radius(_gpu(cuda, W))
        np.testing.assert_allclose(_np(r.radius), 1.0, rtol=1e-6 if dtype == "float32" else 1e-12)
        assert _np(r.converged).all() and set(r.path) == {"isometry"}
    W = rf.sample("orthogonal", 20, batch=1, seed=34, dtype=dtype, gain=2.5)
    np.testing.assert_allclose(_np(rf.spectral_radius(_gpu(cuda, W)).radius), 2.5, rtol=1e-6)


def test_uniform01(cuda):
    for n, dtype in [(50, "float32"), (64, "float64")]:
        W = rf.sample("uniform01", n, batch=2, seed=35, dtype=dtype)
        r = rf.spectral_radius(_gpu(cuda, W))
        _radius_ok(W, r, tol=1e-10, min_conv=1.0)
        assert np.allclose(_np(r.ritz)[:, 0].imag, 0.0)


def test_nilpotent_jordan_zero_and_n1(cuda):
    rng = np.random.default_rng(36)
    N = naive.strictly_upper(48, rng)
    r = rf.spectral_radius(_gpu(cuda, N))
    assert float(r.radius) == 0.0 and bool(r.converged) and r.path == "triangular"
    P = naive.permute(N, rng)
    for dtype in (np.float32, np.float64):
        r = rf.spectral_radius(_gpu(cuda, P.astype(dtype)))
        assert float(r.radius) == 0.0 and bool(r.converged) and r.path == "nilpotent", r
    J = naive.jordan_block(40, 0.9)
    r = rf.spectral_radius(_gpu(cuda, J))
    assert float(r.radius) == 0.9 and bool(r.converged) and r.path == "triangular"
    W = naive.embedded_jordan(60, 1.2, 2, rng)
    r = rf.spectral_radius(_gpu(cuda, W))
    exact = naive.spectral_radius(W)
    assert abs(float(r.radius) - exact) / exact <= TOL or not bool(r.converged)
    assert abs(float(r.radius) - 1.2) <= 1e-3
    z = rf.spectral_radius(cuda.zeros((3, 5, 5), dtype=cuda.float32))
    assert np.all(_np(z.radius) == 0.0) and _np(z.converged).all()
    for dtype in ("float32", "float64", "complex64", "complex128"):
        one = np.array([[-3.0 + (1j if dtype.startswith("c") else 0)]], dtype=dtype)
        r = rf.spectral_radius(_gpu(cuda, one))
        assert float(r.radius) == abs(one[0, 0]) and bool(r.converged)
        s = rf.spectral_norm(_gpu(cuda, one))
        assert abs(float(s.norm) - abs(one[0, 0])) <= 1e-12


def test_extreme_scales(cuda):
    """max |w| subnormal (float64: 1/s overflows, the launcher scales W by 2^600 first) and 1e300."""
    W = rf.sample("glorot_normal", 20, batch=2, seed=47, dtype="float64")
    for c in (1e-310, 1e300):
        r = rf.spectral_radius(_gpu(cuda, W * c))
        np.testing.assert_allclose(_np(r.radius), naive.spectral_radius(W * c), rtol=1e-8)
        s = rf.spectral_norm(_gpu(cuda, W * c))
        np.testing.assert_allclose(_np(s.norm), naive.spectral_norm(W * c), rtol=1e-8)
    T = np.triu(W[0]) * 1e-310
    assert float(rf.spectral_radius(_gpu(cuda, T)).radius) == np.abs(np.diag(T)).max()


def test_small_sizes_all_dtypes(cuda):
    for n in (2, 3, 7):
        for dtype in ("float32", "float64", "complex64", "complex128"):
            scheme = "complex_glorot" if dtype.startswith("c") else "glorot_normal"
            W = rf.sample(scheme, n, batch=2, seed=37 + n, dtype=dtype)
            r = rf.spectral_radius(_gpu(cuda, W))
            np.testing.assert_allclose(_np(r.radius), naive.spectral_radius(W), rtol=1e-10)
            assert _np(r.converged).all()


def test_budget_exhausted_is_flagged(cuda):
    """Tied moduli that are not an isometry (restarts, then max_iter): flagged, as on the CPU."""
    Q = rf.sample("orthogonal", 64, batch=1, seed=38, dtype="float64")
    W = Q + 1e-3 * rf.sample("glorot_normal", 64, batch=1, seed=39, dtype="float64")
    g = rf.spectral_radius(_gpu(cuda, W), max_iter=150, filter_steps=20)
    c = rf.spectral_radius(W, max_iter=150, filter_steps=20)
    assert not bool(_np(g.converged)[0]) and int(_np(g.iterations)[0]) == 150
    np.testing.assert_allclose(_np(g.radius), c.radius, rtol=1e-6)


def test_restarts_without_filter(cuda):
    """filter_steps=0: Arnoldi from the raw start vector, through thick restarts."""
    W = rf.sample("glorot_normal", 100, batch=2, seed=40, dtype="float64")
    g = rf.spectral_radius(_gpu(cuda, W), filter_steps=0)
    c = rf.spectral_radius(W, filter_steps=0)
    _radius_ok(W, g, min_conv=1.0)
    assert np.all(np.abs(_np(g.iterations) - c.iterations) <= 16)


# --- agreement with the CPU, reproducibility ---------------------------------------------------------
@pytest.mark.parametrize("scheme,dtype", [("glorot_normal", "float32"), ("complex_glorot", "complex128"),
                                          ("he_uniform", "float64")])
def test_cpu_gpu_agree(cuda, scheme, dtype):
    W = rf.sample(scheme, 48, batch=3, seed=41, dtype=dtype)
    g = rf.spectral_radius(_gpu(cuda, W), seed=3, start=7)
    c = rf.spectral_radius(W, seed=3, start=7)
    np.testing.assert_allclose(_np(g.radius), c.radius, rtol=1e-7)
    np.testing.assert_array_equal(_np(g.converged), c.converged)
    np.testing.assert_array_equal(g.path, c.path)
    assert np.all(np.abs(_np(g.iterations) - c.iterations) <= 8)
    np.testing.assert_allclose(_np(g.ritz)[:, :2], c.ritz[:, :2], rtol=1e-6, atol=1e-6)
    gs = rf.spectral_norm(_gpu(cuda, W), seed=3, start=7)
    cs = rf.spectral_norm(W, seed=3, start=7)
    np.testing.assert_allclose(_np(gs.norm), cs.norm, rtol=1e-9)


def test_batch_invariance_and_shapes(cuda):
    """A matrix gives the same bits alone and in a batch (one block per matrix; the host eig per matrix)."""
    W = rf.sample("glorot_normal", 32, batch=4, seed=42, dtype="float64").reshape(2, 2, 32, 32)
    r = rf.spectral_radius(_gpu(cuda, W), n_ritz=3)
    assert r.radius.shape == (2, 2) and r.ritz.shape == (2, 2, 3) and r.path.shape == (2, 2)
    one = rf.spectral_radius(_gpu(cuda, W[1, 0]), start=2, n_ritz=3)
    assert one.radius.shape == ()
    assert float(one.radius) == float(r.radius[1, 0])
    s = rf.spectral_norm(_gpu(cuda, W))
    assert s.norm.shape == (2, 2)
    nc = rf.spectral_radius(_gpu(cuda, W)[:, :, ::-1, ::-1])         # non-contiguous input
    np.testing.assert_allclose(_np(nc.radius), naive.spectral_radius(W[:, :, ::-1, ::-1]), rtol=1e-8)


def test_launch_config_changes_no_answer(cuda):
    from rinit_fast.kernels.cuda import loader
    W = rf.sample("glorot_normal", 40, batch=3, seed=43, dtype="float32")
    ref = rf.spectral_radius(_gpu(cuda, W))
    with loader.launch_config(block=64, grid=2):
        r = rf.spectral_radius(_gpu(cuda, W))
    np.testing.assert_allclose(_np(r.radius), _np(ref.radius), rtol=1e-9)


# --- the norm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme,dtype,n", [("glorot_normal", "float32", 40),
                                            ("glorot_normal", "float64", 64),
                                            ("complex_glorot", "complex64", 30), ("uniform01", "float64", 50),
                                            ("orthogonal", "float64", 30),
                                            pytest.param("glorot_normal", "float32", 500, id="large-norm")])
def test_norm_matches_svd(cuda, scheme, dtype, n):
    W = rf.sample(scheme, n, batch=2, seed=44, dtype=dtype)
    s = rf.spectral_norm(_gpu(cuda, W))
    assert isinstance(s.norm, cuda.ndarray)
    exact = np.linalg.norm(W.astype(np.complex128 if dtype.startswith("c") else np.float64), 2, axis=(1, 2))
    assert np.all(naive.rel_error(_np(s.norm), exact) <= 1e-6)
    assert _np(s.converged).all()


def test_norm_zero_and_jordan(cuda):
    z = rf.spectral_norm(cuda.zeros((2, 6, 6)))
    assert np.all(_np(z.norm) == 0.0) and _np(z.converged).all()
    J = naive.jordan_block(30, 0.5)
    s = rf.spectral_norm(_gpu(cuda, J))
    assert abs(float(s.norm) - np.linalg.norm(J, 2)) <= 1e-6 * np.linalg.norm(J, 2)


# --- method="exact" ---------------------------------------------------------------------------------
def test_method_exact(cuda):
    W = rf.sample("glorot_normal", 30, batch=2, seed=45, dtype="float32")
    r = rf.spectral_radius(_gpu(cuda, W), method="exact")
    np.testing.assert_allclose(_np(r.radius), naive.spectral_radius(W), rtol=1e-10)
    assert set(r.path) == {"exact"} and _np(r.converged).all()
    s = rf.spectral_norm(_gpu(cuda, W), method="exact")
    np.testing.assert_allclose(_np(s.norm), naive.spectral_norm(W), rtol=1e-10)
    C = rf.sample("complex_glorot", 20, batch=1, seed=46, dtype="complex128")
    np.testing.assert_allclose(_np(rf.spectral_radius(_gpu(cuda, C), method="exact").radius),
                               naive.spectral_radius(C), rtol=1e-10)


# --- errors before any kernel ------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [rf.spectral_radius, rf.spectral_norm])
def test_errors(cuda, fn):
    W = cuda.zeros((2, 4, 4))
    W[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fn(W)
    with pytest.raises(ValueError, match="square"):
        fn(cuda.zeros((3, 4)))
    with pytest.raises(ValueError, match="empty"):
        fn(cuda.zeros((0, 4, 4)))
    with pytest.raises(TypeError):
        fn(cuda.zeros((4, 4), dtype=cuda.int32))


# --- the GPU primitives against the textbook backend (naive_spectral.Backend) --------------------------
@pytest.mark.parametrize("dtype", ["float32", "complex128"])
def test_gpu_primitives_match_the_textbook(cuda, dtype):
    from rinit_fast.kernels.cuda import spectral_launch as gpu
    from rinit_fast.spectral import _start_vectors
    scheme = "complex_glorot" if dtype.startswith("complex") else "glorot_normal"
    n, m = 24, 10
    W = rf.sample(scheme, n, batch=3, seed=71, dtype=dtype) * 3.7
    W[1] = np.triu(W[1])
    xs = _start_vectors(0, 0, 3, n, 2, dtype.startswith("complex"), "cpu")
    dev, ref = gpu.Stack(cuda.asarray(W), cuda.asarray(xs)), naive.Backend(W, xs)
    s1, f1, t1 = dev.prep(True, True)
    s2, f2, t2 = ref.prep(True, True)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(t1, t2)
    items = np.array([0, 2])
    np.testing.assert_allclose(f1[items], f2[items], rtol=1e-13)
    np.testing.assert_array_equal(dev.diagonal(np.array([1])), ref.diagonal(np.array([1])))
    c1, d1 = dev.isometry(items)
    c2, d2 = ref.isometry(items)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)
    np.testing.assert_allclose(d1, d2, rtol=1e-8)
    for be in (dev, ref):
        be.arnoldi_init(m)
    steps = np.array([6, 30])
    r1 = dev.power(items, steps, source="start", low=True, settle=True)
    r2 = ref.power(items, steps, source="start", low=True, settle=True)
    np.testing.assert_array_equal(r1[0], r2[0])
    np.testing.assert_allclose(_np(dev.Q[cuda.asarray(items), 0]), ref.Q[items, 0], atol=1e-4)
    ref.Q[:] = _np(dev.Q)
    ref.X[:] = _np(dev.X)
    j0, j1, bt = np.zeros(2, dtype=np.int64), np.array([4, m]), np.zeros(2)
    e1 = dev.arnoldi(items, j0, j1, bt)
    e2 = ref.arnoldi(items, j0, j1, bt)
    np.testing.assert_array_equal(e1[0], e2[0])
    np.testing.assert_allclose(dev.hessenberg(items), ref.hessenberg(items), rtol=1e-9, atol=1e-12)
    dev.lanczos_init(items, m)
    ref.lanczos_init(items, m)
    e1 = dev.lanczos(items, j0, j1, bt)
    e2 = ref.lanczos(items, j0, j1, bt)
    np.testing.assert_array_equal(e1[0], e2[0])
    for a, b in zip(dev.tridiagonal(items), ref.tridiagonal(items)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
