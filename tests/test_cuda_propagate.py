"""rf.propagate on the GPU (kernels/cuda/propagate.cu) against the CPU backend.

What must be bit-identical, and is tested so piece by piece: the layer weights the GEMM kernels generate
in shared memory (== rf.sample(..., layer=l)), the inputs and output gradients (== the PROP_INPUT /
PROP_GRAD streams), the activation, its derivative and the forward statistics given the same
pre-activations (== kernels/cpu/propagate.py ``activate``; float64 tanh/sigmoid excepted on a real GPU:
libdevice, not the host libm), grad_var given the same gradients (== ``grad_stat``).  What is not: the
GEMM's accumulation order (one FMA chain over k in order on the GPU, BLAS's blocking on the CPU), so
whole networks agree with the CPU within tolerances (below), and bit for bit where the products are
exact (width = in_width = 1).  Within the GPU every result is bit-identical under any batch split, grid,
block size and checkpointing.

Skips without CuPy and a GPU (the `cuda` fixture); tests/test_cuda_propagate_emulated.py runs this file
on the CPU through the fake CuPy of tests/cuda_host (the real kernels in emulation), except the tests
with ``gpu_only`` in their name (depth 50 at width 256: half a minute there).
"""
import importlib

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast import scheme_table as schemes
from rinit_fast.rng import Purpose, counter_word3, key_words
from rinit_fast.spec import activations
from rinit_fast.spec import propagate as spec

pytestmark = pytest.mark.gpu

ACTS = ("linear", "tanh", "sigmoid", "relu")
P = importlib.import_module("rinit_fast.propagate")   # the module (rf.propagate is the function)
FIELDS = P.STAT_FIELDS


def _np(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _fake(cp):
    return getattr(cp, "_FAKE", False)


def _bits_equal(a, b, msg):
    a, b = _np(a), _np(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (msg, a.shape, b.shape, a.dtype, b.dtype)
    u = {4: np.uint32, 8: np.uint64}[a.itemsize]
    bad = np.flatnonzero(a.view(u).ravel() != b.view(u).ravel())
    assert bad.size == 0, f"{msg}: {bad.size} of {a.size} differ, first at {bad[:8]}"


def _close(g, c, rtol, atol, msg):
    """Every per-network statistic within rtol relative (atol absolute for values near 0)."""
    a, b = g.network_stats(), c.network_stats()
    assert a.shape == b.shape, msg
    err = np.abs(a - b)
    lim = rtol * np.abs(b) + atol
    bad = err > lim
    assert not bad.any(), (f"{msg}: {bad.sum()} statistics differ; worst rel "
                           f"{(err / np.maximum(np.abs(b), 1e-300)).max():.3g} at {np.argwhere(bad)[:4].tolist()}")


def _both(scheme, width, depth, **kw):
    g = rf.propagate(scheme, width, depth, backend="cuda", **kw)
    c = rf.propagate(scheme, width, depth, backend="cpu", **kw)
    return g, c


# --- the weights, inputs and single steps: bit for bit --------------------------------------------
WEIGHT_CASES = [
    ("glorot_normal", {}), ("he_uniform", {}), ("uniform01", {}), ("lecun_normal", {}),
    ("variance_scaling", {"distribution": "truncated_normal", "scale": 2.0}), ("constant", {"value": 0.25}),
    ("uniform", {"a": 0.5}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme,params", WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
def test_layer_weights_bit_equal_rf_sample(cuda, scheme, params, dtype):
    from rinit_fast.kernels.cuda import propagate_launch as pl
    k0, k1 = key_words(12345678901)
    for (width, fi), layer, start in [((7, 5), 3, 0), ((33, 33), 0, 2), ((1, 1), 5, 9), ((40, 70), 1, 1),
                                      ((5, 3), 2, 2**32 - 3)]:
        draw = schemes.resolve(schemes.canonical(scheme), width, fi, 1.3, **params)
        code, mul, add = spec.family(draw.family)
        nb = 3 if start < 2**32 - 3 else 3
        got = pl.layer_weights(nb, width, fi, k0=int(k0), k1=int(k1), start=start,
                               c3w=int(counter_word3(Purpose.WEIGHTS, layer)), family=code, mul=mul, add=add,
                               scale=draw.scale, dtype=dtype)
        want = rf.sample(scheme, (width, fi), batch=nb, seed=12345678901, start=start, layer=layer, dtype=dtype,
                         gain=1.3, **params)
        _bits_equal(got, want, f"{scheme} {(width, fi)} layer {layer}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inputs_bit_equal_streams(cuda, dtype):
    from rinit_fast.kernels.cuda import propagate_launch as pl
    seed, start, width, in_width, S = 77, 5, 9, 6, 4
    k0, k1 = key_words(seed)
    X, G = pl.draw_inputs(3, width, in_width, S, k0=int(k0), k1=int(k1), start=start,
                          c3x=int(counter_word3(Purpose.PROP_INPUT, 0)), c3g=int(counter_word3(Purpose.PROP_GRAD, 0)),
                          dtype=dtype)
    X, G = _np(X), _np(G)
    for b in range(3):
        x = rf.rng.normals(seed, Purpose.PROP_INPUT, index=start + b, count=in_width, n_sub=S, dtype=dtype)
        g = rf.rng.normals(seed, Purpose.PROP_GRAD, index=start + b, count=width, n_sub=S, dtype=dtype)
        _bits_equal(X[b, :in_width], np.ascontiguousarray(np.asarray(x).reshape(S, in_width).T), f"x_0 of {b}")
        _bits_equal(G[b, :width], np.ascontiguousarray(np.asarray(g).reshape(S, width).T), f"g of {b}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTS)
def test_activation_and_statistics_bit_equal_cpu(cuda, act, dtype):
    """Same pre-activations in, same f(z), f'(z) and forward statistics out (float32 everywhere; float64
    tanh/sigmoid on a real GPU within 2 ulp: libdevice against the host libm)."""
    cp = cuda
    from rinit_fast.kernels.cpu import propagate as kern
    from rinit_fast.kernels.cuda import propagate_launch as pl
    rng = np.random.default_rng(3)
    nb, width, S = 2, 37, 5
    Z = (rng.standard_normal((nb, width, S)) * 3).astype(dtype)
    Z[0, :3, 0] = [0.0, -0.0, 1e-40 if dtype == "float32" else 1e-310]     # zeros and a subnormal
    Z[1, 0, :] = [90.0, -90.0, 0.625, -0.625, 20.0]                        # clamps and branch points
    X, D, st = pl.activate(cp.asarray(Z), activations.code(act))
    exact = dtype == "float32" or act in ("linear", "relu") or _fake(cp)
    for b in range(nb):
        Xc = np.zeros((width, S), dtype)
        Dc = np.zeros((width, S), dtype)
        stc = np.zeros(8)
        kern.activate_step(activations.code(act), Z[b], Xc, Dc, width, stc, np.zeros((spec.NCOL, S)))
        if exact:
            _bits_equal(_np(X)[b], Xc, f"{act} x")
            _bits_equal(_np(D)[b], Dc, f"{act} f'")
            _bits_equal(_np(st)[b, :7], stc[:7], f"{act} stats")
        else:
            np.testing.assert_allclose(_np(X)[b], Xc, rtol=4e-16, atol=1e-300)
            np.testing.assert_allclose(_np(D)[b], Dc, rtol=4e-15, atol=1e-300)
            np.testing.assert_allclose(_np(st)[b, :7], stc[:7], rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grad_stat_bit_equal_cpu(cuda, dtype):
    cp = cuda
    from rinit_fast.kernels.cpu import propagate as kern
    from rinit_fast.kernels.cuda import propagate_launch as pl
    rng = np.random.default_rng(4)
    G2 = rng.standard_normal((3, 41, 6)).astype(dtype)
    got = _np(pl.grad_stat(cp.asarray(G2)))
    for b in range(3):
        st = np.zeros(8)
        kern.grad_stat(G2[b], 41, st, np.zeros(6))
        _bits_equal(got[b:b + 1], st[7:8], "grad_var")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width,fi,S", [(1, 1, 1), (7, 5, 3), (33, 33, 33), (65, 31, 40), (32, 96, 32)])
def test_gemm_within_the_fma_chain_bound(cuda, width, fi, S, dtype):
    """Both GEMM kernels (given weights): every entry within K·u·sum|w x| of the exact product (the bound of
    a K-term FMA chain), at every tile edge."""
    cp = cuda
    from rinit_fast.kernels.cuda import propagate_launch as pl
    rng = np.random.default_rng(width * 1000 + fi)
    nb = 2
    W = rng.standard_normal((nb, width, fi)).astype(dtype)
    A = rng.standard_normal((nb, fi, S)).astype(dtype)
    U = rng.standard_normal((nb, width, S)).astype(dtype)
    Dd = rng.standard_normal((nb, width, S)).astype(dtype)
    u = np.finfo(dtype).eps / 2
    W64, A64 = W.astype(np.float64), A.astype(np.float64)
    z = _np(pl.gemm_given(cp.asarray(W), cp.asarray(A)))
    exact = np.einsum("bik,bks->bis", W64, A64)
    bound = fi * u * np.einsum("bik,bks->bis", np.abs(W64), np.abs(A64)) * 1.01
    assert (np.abs(z - exact) <= bound).all()
    UD = (Dd * U).astype(dtype).astype(np.float64)     # u = d * g rounded once, as in the kernel
    g2 = _np(pl.gemm_given(cp.asarray(W), cp.asarray(U), backward=True, D=cp.asarray(Dd)))
    exact = np.einsum("bik,bis->bks", W64, UD)
    bound = width * u * np.einsum("bik,bis->bks", np.abs(W64), np.abs(UD)) * 1.01
    assert (np.abs(g2 - exact) <= bound).all()
    if width == 1 or fi == 1:
        _bits_equal(z, (W @ A).astype(dtype), "one-term products are exact")


# --- whole networks against the CPU --------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTS)
def test_width_one_is_bit_identical_to_cpu(cuda, act, dtype):
    """width = in_width = 1: every product is one rounding on both backends, so every statistic must be
    the same bits (float64 tanh/sigmoid on a real GPU: within a few ulps)."""
    cp = cuda
    g, c = _both("glorot_normal", 1, 12, activation=act, batch=3, samples=7, seed=5, dtype=dtype, bias_std=0.4)
    if dtype == "float32" or act in ("linear", "relu") or _fake(cp):
        _bits_equal(g.network_stats(), c.network_stats(), f"width 1 {act}")
    else:
        _close(g, c, 1e-13, 1e-300, f"width 1 {act}")


# Tolerances: measured in the emulation (the GPU's arithmetic, FMA for FMA) at most 8e-6 relative in
# float32 (width 33, depth 6, chaotic tanh gain 5/3 included) and 6e-16 in float64, for widths 7..256;
# these bounds leave a margin of >= 10x (the statistics are means over width x samples values, so the
# GEMM's per-entry rounding differences, ~sqrt(K) u, mostly average out).
TOL = {"float32": (1e-4, 1e-7), "float64": (1e-12, 1e-15)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [1, 7, 33])
@pytest.mark.parametrize("act", ACTS)
def test_agrees_with_cpu(cuda, act, width, dtype):
    rtol, atol = TOL[dtype]
    g, c = _both("glorot_normal", width, 6, activation=act, batch=3, samples=5, seed=11, dtype=dtype,
                 bias_std=0.2, gain=rf.gain(act) if act != "sigmoid" else 1.0)
    _close(g, c, rtol, atol, f"{act} width {width}")


SCHEMES = [("he_uniform", {}), ("uniform01", {}), ("variance_scaling", {"distribution": "truncated_normal"}),
           ("constant", {"value": 0.05}), ("normal", {"std": 0.2}), ("orthogonal", {})]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme,params", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_schemes_agree_with_cpu(cuda, scheme, params, dtype):
    rtol, atol = TOL[dtype]
    if scheme == "orthogonal":   # cuSOLVER's QR is not LAPACK's: the weights themselves differ in the last bits
        rtol, atol = (5e-3, 1e-5) if dtype == "float32" else (1e-8, 1e-12)
    g, c = _both(scheme, 20, 5, activation="relu" if scheme == "he_uniform" else "tanh", batch=2, samples=6,
                 seed=2, dtype=dtype, in_width=13, bias_std=0.1, **params)
    _close(g, c, rtol, atol, scheme)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTS)
def test_width_256(cuda, act, dtype):
    rtol, atol = TOL[dtype]
    g, c = _both("glorot_normal", 256, 10, activation=act, batch=4, samples=16, seed=3, dtype=dtype,
                 bias_std=0.1)
    _close(g, c, rtol, atol, f"256 {act}")


def test_issue_claims_width_256_depth_50_gpu_only(cuda):
    """The issue's sizes: relu He keeps the second moment of order one; Glorot halves it; the GPU's
    pooled fields agree with the CPU's (float32 over 50 layers: 1e-2 relative)."""
    for scheme in ("he_normal", "glorot_normal"):
        g, c = _both(scheme, 256, 50, activation="relu", batch=8, samples=32, seed=1)
        for f in ("act_second_moment", "grad_var", "preact_var"):
            np.testing.assert_allclose(getattr(g, f), getattr(c, f), rtol=1e-2, err_msg=f"{scheme} {f}")
    he = rf.propagate("he_normal", 256, 50, activation="relu", batch=8, samples=32, seed=1, backend="cuda")
    assert 0.2 < he.act_second_moment[-1] < 5


# --- invariances within the GPU ------------------------------------------------------------------
def test_batch_split_grid_block_and_checkpoint_change_no_bit(cuda):
    from rinit_fast.kernels.cuda import loader
    kw = dict(activation="tanh", samples=5, seed=9, bias_std=0.3, gain=1.5, in_width=10)
    ref = rf.propagate("glorot_normal", 35, 7, batch=5, backend="cuda", **kw).network_stats()
    a = rf.propagate("glorot_normal", 35, 7, batch=2, start=0, backend="cuda", **kw).network_stats()
    b = rf.propagate("glorot_normal", 35, 7, batch=3, start=2, backend="cuda", **kw).network_stats()
    _bits_equal(np.concatenate([a, b]), ref, "batch split")
    for cfg in [dict(grid=1), dict(grid=3, block=32), dict(block=64)]:
        with loader.launch_config(**cfg):
            got = rf.propagate("glorot_normal", 35, 7, batch=5, backend="cuda", **kw).network_stats()
        _bits_equal(got, ref, f"launch {cfg}")
    for k in (1, 2, 3):
        got = rf.propagate("glorot_normal", 35, 7, batch=5, backend="cuda", checkpoint=k, **kw).network_stats()
        _bits_equal(got, ref, f"checkpoint {k}")


def test_result_is_numpy_with_config(cuda):
    r = rf.propagate("glorot_normal", 8, 3, activation="relu", batch=2, samples=2, backend="cuda")
    assert isinstance(r.act_var, np.ndarray) and type(r.act_var) is np.ndarray and r.act_var.shape == (3,)
    assert r.per_network.grad_var.shape == (2, 3)
    assert r.config["checkpoint"] == 3


def test_bad_input_is_refused_before_any_kernel(cuda):
    with pytest.raises(ValueError):
        rf.propagate("glorot_normal", 0, 3, activation="relu", backend="cuda")
    with pytest.raises(ValueError):
        rf.propagate("glorot_normal", 4, 3, activation="gelu", backend="cuda")
    with pytest.raises(ValueError):
        rf.propagate("complex_glorot", 4, 3, activation="relu", backend="cuda")
