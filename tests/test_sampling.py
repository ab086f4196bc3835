"""rf.sample on the CPU: the stream mapping (against tests/naive.py), batch-split and thread-count
invariance, common random numbers, distributions, orthogonal (Haar) matrices, out=, and errors."""
import math

import numba
import numpy as np
import pytest
from scipy import stats

import naive
import rinit_fast as rf
from rinit_fast import scheme_table as schemes

ALL = rf.schemes()
PARAMS = {"constant": {"value": 0.25}, "rescaled_glorot": {"s": 1.05}}  # s: valid at any n
SQUARE = {"rescaled_glorot"}


def _shape(name, shape):
    return (shape[0], shape[0]) if name in SQUARE else shape


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ALL)
def test_batch_split_invariance(name, dtype):
    seed = int(np.random.default_rng().integers(0, 2 ** 63))  # fresh seed: holds for any seed
    shape = _shape(name, (7, 5))
    p = PARAMS.get(name, {})
    full = rf.sample(name, shape, batch=5, seed=seed, dtype=dtype, **p)
    for j in range(5):
        one = rf.sample(name, shape, batch=1, seed=seed, start=j, dtype=dtype, **p)[0]
        np.testing.assert_array_equal(_bits(full[j]), _bits(one), err_msg=f"{name} j={j} seed={seed}")
    part = rf.sample(name, shape, batch=3, seed=seed, start=2, dtype=dtype, **p)
    np.testing.assert_array_equal(_bits(full[2:]), _bits(part))
    single = rf.sample(name, shape, seed=seed, start=4, dtype=dtype, **p)
    assert single.shape == shape
    np.testing.assert_array_equal(_bits(full[4]), _bits(single))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [n for n in ALL if n not in ("orthogonal", "variance_scaling")])
def test_matches_reference(name, dtype):
    """Every entry equals the plain-NumPy reference of the documented mapping, bit for bit,
    on odd shapes (n = 1, non-multiples of the 4-value Philox block) and a fresh seed."""
    seed = int(np.random.default_rng().integers(0, 2 ** 64, dtype=np.uint64))
    for shape in [(1, 1), (3, 5), (33, 7), (2, 513)]:
        shape = _shape(name, shape)
        p = PARAMS.get(name, {})
        got = rf.sample(name, shape, batch=2, seed=seed, start=11, dtype=dtype, **p)
        d = schemes.resolve(name, shape[0], shape[1], 1.0, **p)
        for j in range(2):
            if d.complex:
                ref = naive.sample("normal", d.scale, shape[0], 2 * shape[1], seed, 11 + j, dtype)
                ref = ref.view(np.complex64 if dtype == "float32" else np.complex128)
            else:
                ref = naive.sample(d.family, d.scale, shape[0], shape[1], seed, 11 + j, dtype)
            np.testing.assert_array_equal(_bits(got[j]), _bits(ref), err_msg=f"{name} {shape} j={j}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_truncated_normal_matches_reference(dtype):
    seed = 1234
    got = rf.sample("variance_scaling", (37, 29), batch=3, seed=seed, start=5, dtype=dtype)
    std = math.sqrt(1.0 / 29) / schemes.TRUNC_STD
    for j in range(3):
        ref = naive.truncated(std, 37, 29, seed, 5 + j, dtype)
        np.testing.assert_array_equal(_bits(got[j]), _bits(ref))


@pytest.mark.parametrize("name", ALL)
def test_thread_count_invariance(name):
    shape = _shape(name, (200, 200))
    p = PARAMS.get(name, {})
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = rf.sample(name, shape, batch=3, seed=99, **p)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = rf.sample(name, shape, batch=3, seed=99, **p)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(_bits(a), _bits(b))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_common_random_numbers(dtype):
    n = 300
    tol = 4 * np.finfo(dtype).eps
    g = rf.sample("glorot_normal", n, batch=2, seed=5, dtype=dtype).astype(np.float64)
    he = rf.sample("he_normal", n, batch=2, seed=5, dtype=dtype).astype(np.float64)
    np.testing.assert_allclose(he, g * math.sqrt(2.0), rtol=tol, atol=0)
    half = rf.sample("half_glorot", n, batch=2, seed=5, dtype=dtype).astype(np.float64)
    np.testing.assert_allclose(half, g / math.sqrt(2.0), rtol=tol, atol=0)
    s_n = rf.theory.rescale_factor(n)
    res = rf.sample("rescaled_glorot", n, batch=2, seed=5, dtype=dtype).astype(np.float64)
    np.testing.assert_allclose(res, g / s_n, rtol=tol, atol=0)
    # the same normals underlie the orthogonal draw and, doubled up, complex Glorot
    cg = rf.sample("complex_glorot", n, batch=1, seed=5, dtype=dtype)[0]
    z = rf.sample("normal", (n, 2 * n), seed=5, dtype=dtype).astype(np.float64)
    np.testing.assert_allclose(cg.real, z[:, 0::2] / math.sqrt(2 * n), rtol=tol)
    np.testing.assert_allclose(cg.imag, z[:, 1::2] / math.sqrt(2 * n), rtol=tol)


def _moment_bounds(x, mean, std, law):
    """Mean within 5 standard errors; variance within 5 standard errors of the sample variance
    (Var(s²) ≈ (mu4 - sigma⁴)/N with mu4 from the exact law)."""
    N = x.size
    assert abs(x.mean() - mean) <= 5 * std / math.sqrt(N) + 1e-12, (x.mean(), mean)
    mu4 = law.moment(4) if law is not None else 3 * std ** 4
    mu4 = law.expect(lambda v: (v - mean) ** 4) if law is not None else mu4
    se_var = math.sqrt(max(mu4 - std ** 4, 0.0) / N)
    assert abs(x.var() - std ** 2) <= 5 * se_var, (x.var(), std ** 2, se_var)


DIST_CASES = [
    ("uniform01", {}), ("normal", {"std": 0.5}), ("uniform", {"a": 3.0}),
    ("glorot_uniform", {}), ("glorot_normal", {}), ("lecun_uniform", {}), ("lecun_normal", {}),
    ("he_uniform", {"mode": "fan_out"}), ("he_normal", {}), ("variance_scaling", {}),
    ("variance_scaling", {"distribution": "uniform", "mode": "fan_avg", "scale": 2.0}),
    ("variance_scaling", {"distribution": "normal", "mode": "fan_out"}),
    ("half_glorot", {}), ("complex_glorot", {}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,params", DIST_CASES)
def test_distribution(name, params, dtype):
    shape = (300, 200)
    gain = 1.7
    w = rf.sample(name, shape, batch=4, seed=2026, dtype=dtype, gain=gain, **params)
    std = rf.scheme_std(name, shape, gain=gain, **params)
    mean = rf.scheme_mean(name, shape, gain=gain, **params)
    law = rf.scheme_law(name, shape, gain=gain, **params)
    if np.iscomplexobj(w):
        assert w.dtype == (np.complex64 if dtype == "float32" else np.complex128)
        x = np.concatenate([w.real.ravel(), w.imag.ravel()]).astype(np.float64)
        assert abs(np.mean(np.abs(w.astype(np.complex128)) ** 2) - std ** 2) < 5 * std ** 2 * math.sqrt(2 / w.size)
        std_part = std / math.sqrt(2)
        _moment_bounds(x, 0.0, std_part, law)
    else:
        x = w.ravel().astype(np.float64)
        _moment_bounds(x, mean, std, law)
    # support: never outside the law's bounds
    lo, hi = law.support()
    assert x.min() >= lo and x.max() <= hi
    if law.dist.name == "uniform":
        assert x.max() < hi  # half-open [lo, hi)
    # KS against the exact law on a thinned sample; under H0 the p-value is uniform, so a fixed
    # seed fails with probability 1e-4.
    p = stats.kstest(x[::7], law.cdf).pvalue
    assert p > 1e-4, p


def test_constant_and_zeros():
    w = rf.sample("constant", (3, 4), batch=2, value=0.25, gain=2.0)
    assert np.all(w == 0.5) and w.shape == (2, 3, 4)
    assert np.all(rf.sample("zeros", 5, dtype="float64") == 0.0)
    assert rf.scheme_std("constant", 3, value=1.0) == 0.0


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (64, 64), (257, 257), (9, 4), (4, 9)])
def test_orthogonal_is_orthogonal(shape, dtype, tol):
    q = rf.sample("orthogonal", shape, batch=3, seed=8, dtype=dtype).astype(np.float64)
    fo, fi = shape
    gram = q.transpose(0, 2, 1) @ q if fo >= fi else q @ q.transpose(0, 2, 1)
    eye = np.eye(min(fo, fi))
    assert np.abs(gram - eye).max() < tol
    q2 = rf.sample("orthogonal", shape, batch=1, seed=8, dtype=dtype, gain=3.0)[0].astype(np.float64)
    np.testing.assert_allclose(q2, 3.0 * q[0], rtol=10 * np.finfo(dtype).eps, atol=10 * np.finfo(dtype).eps)


def test_orthogonal_is_haar():
    """Tr(Q) of a Haar orthogonal matrix has mean 0 and variance 1 (n >= 2; Diaconis–Shahshahani).
    M samples: the mean has standard error 1/sqrt(M); Var(Tr²) -> 2, so the variance has standard
    error about sqrt(2/M).  The same test rejects Q from LAPACK without the sign correction."""
    M, n = 4000, 12
    q = rf.sample("orthogonal", n, batch=M, seed=31, dtype="float64")
    tr = np.trace(q, axis1=1, axis2=2)
    assert abs(tr.mean()) < 5 / math.sqrt(M), tr.mean()
    assert abs(tr.var() - 1.0) < 5 * math.sqrt(2.0 / M), tr.var()
    g = rf.sample("normal", n, batch=M, seed=31, dtype="float64")
    raw = np.linalg.qr(g)[0]
    tr_raw = np.trace(raw, axis1=1, axis2=2)
    assert abs(tr_raw.mean()) > 5 / math.sqrt(M) or abs(tr_raw.var() - 1.0) > 5 * math.sqrt(2.0 / M)
    # and it is the QR of the stream's Gaussian matrices: Q^T G is upper triangular with a positive diagonal
    r = q.transpose(0, 2, 1) @ g
    assert np.abs(np.tril(r, -1)).max() < 1e-10
    assert np.all(np.diagonal(r, axis1=1, axis2=2) > 0)


def test_out_numpy_and_torch_without_copy():
    buf = np.empty((3, 10, 6), np.float32)
    got = rf.sample("he_uniform", (10, 6), batch=3, seed=4, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, rf.sample("he_uniform", (10, 6), batch=3, seed=4))
    torch = pytest.importorskip("torch")
    t = torch.empty((3, 10, 6), dtype=torch.float64)
    ptr = t.data_ptr()
    res = rf.sample("glorot_normal", (10, 6), batch=3, seed=4, dtype="float64", out=t)
    assert res is t and t.data_ptr() == ptr
    np.testing.assert_array_equal(t.numpy(), rf.sample("glorot_normal", (10, 6), batch=3, seed=4,
                                                       dtype="float64"))
    tc = torch.empty((5, 5), dtype=torch.complex64)
    rf.sample("complex_glorot", 5, out=tc)
    np.testing.assert_array_equal(tc.numpy(), rf.sample("complex_glorot", 5))


def test_out_errors():
    with pytest.raises(ValueError, match="out has shape"):
        rf.sample("glorot_normal", 4, batch=2, out=np.empty((2, 4, 5), np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        rf.sample("glorot_normal", 4, out=np.empty((4, 4), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        rf.sample("glorot_normal", 4, out=np.empty((4, 8), np.float32)[:, ::2])
    ro = np.empty((4, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        rf.sample("glorot_normal", 4, out=ro)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: rf.sample("glorot", 4), ValueError, "unknown scheme 'glorot'; valid schemes: uniform01"),
    (lambda: rf.sample("glorot_normal", 0), ValueError, "shape must be >= 1"),
    (lambda: rf.sample("glorot_normal", (5,)), ValueError, "2 or more dimensions"),
    (lambda: rf.sample("glorot_normal", (2, -3)), ValueError, "fan_in"),
    (lambda: rf.sample("glorot_normal", 2.5), TypeError, "shape must be"),
    (lambda: rf.sample("glorot_normal", 4, dtype="float16"), TypeError, "dtype must be"),
    (lambda: rf.sample("glorot_normal", 4, dtype="complex64"), TypeError, "cannot produce complex64"),
    (lambda: rf.sample("complex_glorot", 4, dtype="int32"), TypeError, "complex64 or complex128"),
    (lambda: rf.sample("glorot_normal", 4, batch=-1), ValueError, "batch must be >= 0"),
    (lambda: rf.sample("glorot_normal", 4, start=-2), ValueError, "start must be >= 0"),
    (lambda: rf.sample("glorot_normal", 4, seed=-1), ValueError, "seed must be in \\[0, 2\\*\\*64\\)"),
    (lambda: rf.sample("glorot_normal", 4, seed=2 ** 64), ValueError, "seed must be in"),
    (lambda: rf.sample("glorot_normal", 4, seed=1.5), TypeError, "seed must be an integer"),
    (lambda: rf.sample("glorot_normal", 4, start=2 ** 32), ValueError, "start \\+ batch"),
    (lambda: rf.sample("rescaled_glorot", 100), ValueError, "valid n are >= 164"),
    (lambda: rf.sample("rescaled_glorot", (200, 100)), ValueError, "square"),
    (lambda: rf.sample("rescaled_glorot", 200, c=1.0, p=0.9), ValueError, "at most one of c, p, s"),
    (lambda: rf.sample("constant", 4), TypeError, "needs parameter\\(s\\) value"),
    (lambda: rf.sample("glorot_normal", 4, std=2.0), TypeError, "unknown parameter\\(s\\) std"),
    (lambda: rf.sample("he_normal", 4, mode="fan_sideways"), ValueError, "mode must be one of"),
    (lambda: rf.sample("variance_scaling", 4, distribution="cauchy"), ValueError, "distribution must be"),
    (lambda: rf.sample("glorot_normal", 4, gain=float("nan")), ValueError, "gain must be finite"),
    (lambda: rf.sample("glorot_normal", 4, backend="tpu"), ValueError, "backend must be one of"),
    (lambda: rf.sample("glorot_normal", 100_000, batch=100_000), MemoryError, "smaller batch"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_cuda_backend_without_gpu_is_a_clear_error():
    from rinit_fast import _backend
    if _backend.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match='backend="cuda"'):
        rf.sample("glorot_normal", 4, backend="cuda")


def test_rescaled_at_small_n_with_explicit_scale_and_batch_edge_cases():
    w = rf.sample("rescaled_glorot", 50, seed=1, s=1.1)
    g = rf.sample("glorot_normal", 50, seed=1)
    np.testing.assert_allclose(w, g / np.float32(1.1), rtol=4e-7)
    assert rf.sample("glorot_normal", 3, batch=0).shape == (0, 3, 3)
    assert rf.sample("xavier_uniform", (4, 2)).shape == (4, 2)  # alias


def test_scheme_std_and_gain_values():
    fo, fi = 256, 128
    assert math.isclose(rf.scheme_std("glorot_uniform", (fo, fi)), math.sqrt(2 / (fo + fi)))
    assert math.isclose(rf.scheme_std("xavier_normal", (fo, fi), gain=2), 2 * math.sqrt(2 / (fo + fi)))
    assert math.isclose(rf.scheme_std("he_normal", (fo, fi)), math.sqrt(2 / fi))
    assert math.isclose(rf.scheme_std("kaiming_uniform", (fo, fi), mode="fan_out"), math.sqrt(2 / fo))
    assert math.isclose(rf.scheme_std("lecun_normal", (fo, fi)), math.sqrt(1 / fi))
    assert math.isclose(rf.scheme_std("orthogonal", (fo, fi)), math.sqrt(1 / fo))
    assert math.isclose(rf.scheme_std("complex_glorot", 500), math.sqrt(1 / 500))
    assert math.isclose(rf.scheme_std("half_glorot", 500), math.sqrt(1 / 1000))
    assert math.isclose(rf.scheme_std("uniform01", 3), math.sqrt(1 / 12))
    assert math.isclose(rf.scheme_std("variance_scaling", (fo, fi), scale=2.0, mode="fan_avg"),
                        math.sqrt(2.0 / 192))
    assert rf.gain("linear") == 1 and rf.gain("sigmoid") == 1
    assert math.isclose(rf.gain("tanh"), 5 / 3) and math.isclose(rf.gain("relu"), math.sqrt(2))
    assert math.isclose(rf.gain("leaky_relu"), math.sqrt(2 / (1 + 0.01 ** 2)))
    assert math.isclose(rf.gain("leaky_relu", 0.2), math.sqrt(2 / 1.04))
    assert rf.gain("selu") == 0.75
    assert rf.gain("sigmoid", convention="glorot") == 4
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        rf.gain("swish")
    torch = pytest.importorskip("torch")
    for nl in ("linear", "sigmoid", "tanh", "relu", "selu"):
        assert math.isclose(rf.gain(nl), torch.nn.init.calculate_gain(nl))
