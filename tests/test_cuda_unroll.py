"""rf.unroll on the GPU (kernels/cuda/unroll.cu) against the CPU kernel: the same bits.

States (final_state, final_exponent, the tangent's) must be bit-identical; the records of log ||h||
may differ from the CPU's in the last bit or two (CUDA's log() against the host libm's, docs/cuda.md
"Unroll kernel"), so they are compared to 2 ulps (and exactly for -inf).  Skips without CuPy and a GPU
(the `cuda` fixture); tests/test_cuda_unroll_emulated.py runs a subset of this file on the CPU through
the fake CuPy of tests/cuda_host, where the host build's log is the libm's and every bit must match.
"""
import numpy as np
import pytest

import rinit_fast as rf

pytestmark = pytest.mark.gpu

FIELDS = ("final_state", "final_exponent", "final_tangent", "final_tangent_exponent")


def _np(a):
    return None if a is None else (a.get() if hasattr(a, "get") else np.asarray(a))


def _same_log(got, want, msg, exact=False):
    got, want = _np(got), _np(want)
    assert got.shape == want.shape, msg
    fin = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), fin, err_msg=msg)
    np.testing.assert_array_equal(got[~fin], want[~fin], err_msg=msg)
    if exact:
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64), err_msg=msg)
    tol = 2 * np.spacing(np.abs(want[fin]))
    bad = np.abs(got[fin] - want[fin]) > tol
    assert not bad.any(), f"{msg}: {bad.sum()} records differ by more than 2 ulps"


def _same_result(g, c, msg, exact_log=False):
    _same_log(g.log_norm, c.log_norm, msg + " log_norm", exact_log)
    if c.tangent_log_norm is None:
        assert g.tangent_log_norm is None
    else:
        _same_log(g.tangent_log_norm, c.tangent_log_norm, msg + " tangent_log_norm", exact_log)
    np.testing.assert_array_equal(_np(g.steps_recorded), c.steps_recorded)
    for f in FIELDS:
        a, b = _np(getattr(g, f)), getattr(c, f)
        if b is None:
            assert a is None, f
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, (msg, f)
        u = {4: np.uint32, 8: np.uint64}[a.itemsize]
        bad = np.flatnonzero(a.view(u).ravel() != b.view(u).ravel())
        assert bad.size == 0, f"{msg} {f}: {bad.size} of {a.size} differ, first at {bad[:8]}"


def _exact_log(cp):
    """The fake CuPy (CPU emulation) uses the host libm's log: there the records match exactly too."""
    return getattr(cp, "_FAKE", False)


def _both(cp, W, **kw):
    c = rf.unroll(W, **kw)
    gkw = dict(kw)
    for name in ("U", "b", "h0", "v0"):
        if gkw.get(name) is not None:
            gkw[name] = cp.asarray(gkw[name])
    if gkw.get("inputs") is not None and not isinstance(gkw["inputs"], str):
        gkw["inputs"] = cp.asarray(gkw["inputs"])
    g = rf.unroll(cp.asarray(W), **gkw)
    return g, c


def _glorot(rng, shape, dt, scale=1.0):
    n = shape[-1]
    return (rng.standard_normal(shape) * scale / np.sqrt(n)).astype(dt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 33, 64])
def test_bit_equality_every_nonlinearity(cuda, n, dtype):
    cp = cuda
    rng = np.random.default_rng(n)
    W = _glorot(rng, (2, n, n), dtype, 1.4)
    for nl in ("linear", "tanh", "relu"):
        g, c = _both(cp, W, steps=12, realizations=5, nonlinearity=nl, seed=11, tangent=True)
        _same_result(g, c, f"n={n} {nl}", _exact_log(cp))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_equality_with_U_bias_and_record_every(cuda, dtype):
    cp = cuda
    rng = np.random.default_rng(3)
    n, d = 33, 5
    W = _glorot(rng, (3, n, n), dtype, 1.2)
    U = rng.standard_normal((n, d)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    for nl in ("linear", "tanh", "relu"):
        g, c = _both(cp, W, steps=10, realizations=4, nonlinearity=nl, U=U, b=b, tangent=True,
                     record_every=3, seed=5, input_scale=0.7)
        _same_result(g, c, f"U b {nl}", _exact_log(cp))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_equality_inputs_none_and_array(cuda, dtype):
    cp = cuda
    rng = np.random.default_rng(4)
    n, R, T = 7, 3, 9
    W = _glorot(rng, (2, n, n), dtype, 1.5)
    g, c = _both(cp, W, steps=T, realizations=R, inputs=None, tangent=True, nonlinearity="relu")
    _same_result(g, c, "inputs None", _exact_log(cp))
    for shape in [(T, n), (R, T, n), (2, R, T, n)]:
        x = rng.standard_normal(shape).astype(dtype)
        g, c = _both(cp, W, steps=T, realizations=R, inputs=x, input_scale=0.5, nonlinearity="tanh",
                     b=rng.standard_normal(n).astype(dtype))
        _same_result(g, c, f"inputs array {shape}", _exact_log(cp))
    U = rng.standard_normal((n, 3)).astype(dtype)
    x = rng.standard_normal((R, T, 3)).astype(dtype)
    g, c = _both(cp, W, steps=T, realizations=R, inputs=x, U=U, h0=rng.standard_normal(n).astype(dtype))
    _same_result(g, c, "inputs array with U and h0", _exact_log(cp))


def test_single_matrix_and_results_on_the_device(cuda):
    cp = cuda
    rng = np.random.default_rng(5)
    W = _glorot(rng, (9, 9), np.float32)
    g, c = _both(cp, W, steps=5, realizations=2)
    assert isinstance(g.log_norm, cp.ndarray) and isinstance(g.final_state, cp.ndarray)
    assert g.log_norm.shape == (2, 5) and g.final_state.shape == (2, 9)
    _same_result(g, c, "single W", _exact_log(cp))


def test_renormalisation_far_past_overflow(cuda):
    """rho = 1.5 and 0.5 orthogonal multiples: the state leaves float range many times over."""
    cp = cuda
    rng = np.random.default_rng(6)
    Q = np.linalg.qr(rng.standard_normal((2, 20, 20)))[0]
    for rho, dt, nl in [(1.5, np.float32, "linear"), (0.5, np.float64, "tanh"), (1.5, np.float64, "relu")]:
        g, c = _both(cp, (rho * Q).astype(dt), steps=600, realizations=2, inputs=None, tangent=True,
                     nonlinearity=nl)
        _same_result(g, c, f"rho={rho} {nl}", _exact_log(cp))
        assert abs(_np(c.final_exponent)).max() > 60 or nl == "tanh"    # far outside float range


def test_launch_configuration_changes_no_bit(cuda):
    """Block size, grid size, realisations per block and W in shared memory or not: same bits."""
    cp = cuda
    from rinit_fast.kernels.cuda import loader, unroll_launch
    rng = np.random.default_rng(7)
    n, R = 37, 10
    W = _glorot(rng, (3, n, n), np.float32, 1.3)
    kw = dict(steps=15, realizations=R, nonlinearity="tanh", tangent=True, record_every=2, seed=9,
              b=rng.standard_normal(n).astype(np.float32))
    c = rf.unroll(W, **kw)
    Wd = cp.asarray(W)
    configs = [(None, None, None, None), (32, 1, 3, 0), (64, 2, 10, 1), (512, 5, 4, None),
               (96, 7, 1, 0), (128, 100, 7, 1)]
    for block, grid, rpb, ws in configs:
        orig = unroll_launch.unroll

        def forced(*a, **k):
            return orig(*a, realizations_per_block=rpb, w_in_smem=ws, **k)
        unroll_launch.unroll = forced
        try:
            with loader.launch_config(block=block, grid=grid):
                g = rf.unroll(Wd, **kw)
        finally:
            unroll_launch.unroll = orig
        _same_result(g, c, f"block {block} grid {grid} rpb {rpb} wsmem {ws}", _exact_log(cp))


@pytest.mark.parametrize("n", [100, 500])
def test_bit_equality_large_n(cuda, n):
    cp = cuda
    if _exact_log(cp) and n > 100:
        pytest.skip("too slow in the CPU emulation")
    rng = np.random.default_rng(n)
    for dt in (np.float32, np.float64):
        W = _glorot(rng, (2, n, n), dt, 1.1)
        for nl, tangent in (("linear", False), ("tanh", True)):
            g, c = _both(cp, W, steps=8, realizations=50, nonlinearity=nl, tangent=tangent, seed=2)
            _same_result(g, c, f"n={n} {dt.__name__} {nl}", _exact_log(cp))


def test_plan_respects_shared_memory():
    """The planner (no GPU needed): chunks fit the device's shared memory, every SM gets work."""
    from rinit_fast.kernels.cuda import unroll_launch as ul
    for (nb, R, n, du, dt, tan) in [(100, 50, 500, 0, np.float32, False), (100, 50, 64, 0, np.float32, False),
                                    (1, 50, 500, 0, np.float64, True), (3, 7, 1, 0, np.float32, True)]:
        nch, Rp, ws, block, smem = ul.plan_launch(nb, R, n, du, dt, tan, sms=132, smem_limit=232448)
        assert smem <= 232448 and block % 32 == 0 and 32 <= block <= 512
        assert Rp >= -(-R // nch) and Rp % ul._RT[np.dtype(dt)] == 0
    nch, Rp, ws, block, smem = ul.plan_launch(100, 50, 500, 0, np.float32, False, sms=132, smem_limit=232448)
    assert nch == 1 and Rp == 56 and not ws           # one block per matrix, W streamed from L2
    nch, Rp, ws, block, smem = ul.plan_launch(100, 50, 64, 0, np.float32, False, sms=132, smem_limit=232448)
    assert nch > 1 and ws                            # several blocks per SM, W in shared memory
    with pytest.raises(ValueError, match="too large"):
        ul.plan_launch(1, 1, 5000, 0, np.float64, True, sms=132, smem_limit=232448)
