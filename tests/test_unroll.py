"""rf.unroll: the float64 NumPy reference (tests/naive_unroll.py), the input stream, log scale past
overflow and underflow, 10**6 steps in bounded memory, thread-count invariance, errors."""
from __future__ import annotations

import resource

import numba
import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.kernels.cpu import packed_gemm
from rinit_fast.rng import Purpose
from rinit_fast.spec import activations
from rinit_fast.spec import unroll as spec
from rinit_fast.unroll import UnrollResult, unroll

from naive_unroll import unroll_ref

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def _orthogonal(n, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _case(n, dt, rng, *, batch, R, d, steps, scale=0.8):
    """Fresh random W (spectral norm `scale`: errors neither grow nor shrink), U, b, x, h0, v0."""
    W = np.stack([scale * _orthogonal(n, rng) for _ in range(batch or 1)]).astype(dt)
    U = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(dt)
    b = (0.3 * rng.standard_normal(n)).astype(dt)
    x = rng.standard_normal((batch or 1, R, steps, d)).astype(dt)
    h0 = (0.5 * rng.standard_normal((batch or 1, R, n))).astype(dt)
    v0 = rng.standard_normal((batch or 1, R, n)).astype(dt)
    return W, U, b, x, h0, v0


# --- equality with the float64 reference on fresh inputs ----------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["linear", "tanh", "relu"])
@pytest.mark.parametrize("n,batch,R,use_u", [(1, None, 1, False), (3, 2, 3, True), (7, None, 5, True),
                                             (33, 2, 2, False), (33, None, 1, True), (40, None, 30, True)])
def test_matches_reference(dt, nonlinearity, n, batch, R, use_u):
    rng = np.random.default_rng([n, R, len(nonlinearity), np.dtype(dt).itemsize])
    steps, rec = 30, 3
    d = n + 2 if use_u else n
    W, U, b, x, h0, v0 = _case(n, dt, rng, batch=batch, R=R, d=d, steps=steps)
    args = dict(realizations=R, inputs=x if batch else x[0], U=U if use_u else None, b=b,
                h0=h0 if batch else h0[0], v0=v0 if batch else v0[0], nonlinearity=nonlinearity,
                record_every=rec, tangent=True, input_scale=0.7)
    res = unroll(W if batch else W[0], steps, **args)
    assert isinstance(res, UnrollResult)
    lead = (batch, R) if batch else (R,)
    assert res.log_norm.shape == lead + (steps // rec,) and res.log_norm.dtype == np.float64
    assert res.tangent_log_norm.shape == res.log_norm.shape
    assert res.final_state.shape == lead + (n,) and res.final_state.dtype == dt
    np.testing.assert_array_equal(res.steps_recorded, np.arange(rec, steps + 1, rec))
    tol = RTOL[dt]
    for j in range(batch or 1):
        sel = (j,) if batch else ()
        ref = unroll_ref(W[j], steps, (dt(0.7) * x[j]).astype(np.float64), U=U if use_u else None, b=b,
                         h0=h0[j], v0=v0[j], nonlinearity=nonlinearity, record_every=rec, tangent=True)
        if nonlinearity == "relu":   # well posed: rounding cannot flip the sign of a pre-activation
            assert ref["min_abs_preact"] > 100 * np.finfo(dt).eps
        np.testing.assert_allclose(res.log_norm[sel], ref["log_norm"], rtol=0, atol=30 * tol)
        np.testing.assert_allclose(res.tangent_log_norm[sel], ref["tangent_log_norm"], rtol=0,
                                   atol=30 * tol)
        np.testing.assert_allclose(res.final_h()[sel], ref["h"], rtol=30 * tol, atol=30 * tol)
        np.testing.assert_allclose(res.final_v()[sel], ref["v"], rtol=30 * tol, atol=30 * tol)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["linear", "relu"])
def test_growing_state_matches_plain_computation(dt, nonlinearity):
    """rho = 1.5 with inputs and bias: the state is renormalised several times (2**±20 thresholds) and
    still equals the unscaled float64 loop to rounding, up to ||h|| ~ 1e18.  (relu: a permutation times
    1.5 and positive inputs, so the state stays positive and grows.)"""
    rng = np.random.default_rng(5)
    n, R, steps = 9, 3, 100
    Q = np.eye(n)[rng.permutation(n)] if nonlinearity == "relu" else _orthogonal(n, rng)
    W = (1.5 * Q).astype(dt)
    x = rng.standard_normal((R, steps, n)).astype(dt)
    if nonlinearity == "relu":
        x = np.abs(x)
    res = unroll(W, steps, realizations=R, inputs=x, nonlinearity=nonlinearity, b=np.ones(n, dt),
                 tangent=True, v0=np.ones(n, dt))
    ref = unroll_ref(W, steps, x, b=np.ones(n), h0=None, v0=np.ones((R, n)), nonlinearity=nonlinearity,
                     tangent=True)
    assert ref["log_norm"].max() > 35                       # > 2**50: several renormalisations
    assert res.final_exponent.min() > 40
    tol = 100 * RTOL[dt]
    np.testing.assert_allclose(res.log_norm, ref["log_norm"], rtol=0, atol=tol)
    np.testing.assert_allclose(res.tangent_log_norm, ref["tangent_log_norm"], rtol=0, atol=tol)
    np.testing.assert_allclose(res.final_h(), ref["h"], rtol=tol)


# --- the input stream -----------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("d", [None, 7, 301])
def test_gaussian_inputs_are_the_stream(dt, d):
    """inputs="gaussian" uses exactly input_scale * rf.rng.normals(seed, INPUTS, index=start+j, sub=r):
    the array path fed with those numbers gives the same bits.  (d = 301: one draw per step, each
    starting inside a Philox block; d = 5, 7: all steps in one draw.)"""
    rng = np.random.default_rng(11)
    n, batch, R, steps, seed, start, sigma = 5, 3, 4, 13, 1234, 17, 0.3
    dd = d or n
    W = (0.9 * np.stack([_orthogonal(n, rng) for _ in range(batch)])).astype(dt)
    U = None if d is None else (rng.standard_normal((n, d)) / 3).astype(dt)
    z = rf.rng.normals(seed, Purpose.INPUTS, index=start, count=steps * dd, n_index=batch, n_sub=R,
                       dtype=dt)
    x = (dt(sigma) * z).reshape(batch, R, steps, dd)
    kw = dict(realizations=R, U=U, tangent=True, nonlinearity="tanh", seed=seed)
    a = unroll(W, steps, inputs="gaussian", input_scale=sigma, start=start, **kw)
    b = unroll(W, steps, inputs=x, start=start, **kw)          # start: the same v0
    np.testing.assert_array_equal(a.log_norm, b.log_norm)
    np.testing.assert_array_equal(a.final_h(), b.final_h())
    np.testing.assert_array_equal(a.tangent_log_norm, b.tangent_log_norm)   # v0 from the same stream
    # matrix j of a batch is matrix start + j: the same bits computed alone
    c = unroll(W[1], steps, inputs="gaussian", input_scale=sigma, start=start + 1, **kw)
    np.testing.assert_array_equal(a.log_norm[1], c.log_norm)


def test_default_h0_v0_are_the_stream():
    rng = np.random.default_rng(3)
    n, R, seed = 6, 3, 99
    W = _orthogonal(n, rng).astype(np.float32)
    h0 = rf.rng.normals(seed, Purpose.H0, index=4, count=n, n_sub=R, dtype="float32")[0]
    v0 = rf.rng.normals(seed, Purpose.V0, index=4, count=n, n_sub=R, dtype="float32")[0]
    a = unroll(W, 5, realizations=R, inputs=None, tangent=True, seed=seed, start=4)
    b = unroll(W, 5, realizations=R, inputs=None, tangent=True, h0=h0, v0=v0)
    np.testing.assert_array_equal(a.log_norm, b.log_norm)
    np.testing.assert_array_equal(a.tangent_log_norm, b.tangent_log_norm)
    # W orthogonal, linear: ||W^k h0|| = ||h0||
    np.testing.assert_allclose(a.log_norm, np.log(np.linalg.norm(h0.astype(np.float64), axis=1))[:, None]
                               * np.ones(5), atol=1e-5)


# --- log scale: exact far past overflow and underflow --------------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["linear", "relu"])
@pytest.mark.parametrize("rho", [1.5, 0.5])
def test_log_norm_exact_past_overflow(dt, nonlinearity, rho):
    """W = rho·Q (Q orthogonal; for relu Q is a permutation, which keeps h >= 0): ||W^k h0|| =
    rho^k ||h0|| exactly, far beyond 1e308 (and below 1e-308)."""
    rng = np.random.default_rng(21)
    n, R, steps = 8, 3, 2000                      # 1.5**2000 = e**811 > 1e308 > 3e38
    Q = np.eye(n)[rng.permutation(n)] if nonlinearity == "relu" else _orthogonal(n, rng)
    W = (rho * Q).astype(dt)
    h0 = np.abs(rng.standard_normal((R, n))).astype(dt)
    res = unroll(W, steps, realizations=R, inputs=None, h0=h0, nonlinearity=nonlinearity,
                 record_every=100, tangent=True, v0=h0)
    k = res.steps_recorded
    wd = np.linalg.norm(W.astype(np.float64), 2)                  # rho to float32 rounding
    expect = k * np.log(wd) + np.log(np.linalg.norm(h0.astype(np.float64), axis=1))[:, None]
    assert abs(expect).max() > 800                               # past float64 overflow/underflow
    # the only error is the dtype's rounding of the product at each step: k·eps relative growth
    tol = steps * 4 * np.finfo(dt).eps
    np.testing.assert_allclose(res.log_norm, expect, rtol=0, atol=tol)
    np.testing.assert_allclose(res.tangent_log_norm, expect, rtol=0, atol=tol)
    assert np.all(np.isfinite(res.final_state)) and np.all(np.abs(res.final_exponent) > 1000)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_growth_rate_with_inputs(dt):
    """A linear RNN with Gaussian inputs and known spectrum (diagonal, rho = 1.2): log||h_t||/t → log rho,
    and the increments between late records equal log rho (to rounding) long after overflow."""
    R = 4
    W = np.diag([1.2, -1.1, 0.9, 0.5, -0.3, 1.0]).astype(dt)
    res = unroll(W, 6000, realizations=R, record_every=500, seed=5)
    L = res.log_norm
    assert L[:, -1].min() > 1000                                   # ||h|| > e**1000 > 1e308
    rate = np.diff(L[:, 4:], axis=1) / 500
    # inputs are negligible by then: each step multiplies by dt(1.2), rounded (relative error <= eps/2)
    # (plus the rounding of the two logs, about 1000 each)
    tol = np.finfo(dt).eps + 4 * np.spacing(L.max()) / 500
    np.testing.assert_allclose(rate, np.log(np.float64(dt(1.2))), rtol=0, atol=tol)
    np.testing.assert_allclose(L[:, -1] / 6000, np.log(1.2), rtol=2e-3)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_tanh_vanishing_state_keeps_precision(dt):
    """tanh with a contracting W and no input: h_k → 0 like 0.5**k and underflows in plain arithmetic;
    the scaled tanh (tanh(y)/y series for tiny y) keeps the exact decay rate and the tangent's."""
    rng = np.random.default_rng(8)
    n, R = 5, 2
    W = (0.5 * _orthogonal(n, rng)).astype(dt)
    res = unroll(W, 3000, realizations=R, inputs=None, nonlinearity="tanh", record_every=100,
                 tangent=True)
    wd = np.log(np.linalg.norm(W.astype(np.float64), 2))
    assert res.log_norm[:, -1].max() < -2000                      # below 1e-868
    np.testing.assert_allclose(np.diff(res.log_norm[:, 5:], axis=1) / 100, wd, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.diff(res.tangent_log_norm[:, 5:], axis=1) / 100, wd, rtol=0,
                               atol=1e-6)


def test_zero_state_is_minus_inf():
    n = 4
    W = np.eye(n, dtype=np.float32)
    res = unroll(W, 6, realizations=2, inputs=None, h0=np.zeros(n), tangent=True, v0=np.ones(n))
    assert np.all(res.log_norm == -np.inf)
    np.testing.assert_allclose(res.tangent_log_norm, np.log(2.0))
    assert np.all(res.final_h() == 0)
    # relu kills a negative state exactly
    res = unroll(W, 3, inputs=None, h0=-np.ones(n), nonlinearity="relu", tangent=True)
    assert np.all(res.log_norm == -np.inf) and np.all(res.tangent_log_norm == -np.inf)
    # W = 0: zero after one step
    res = unroll(np.zeros((n, n)), 3, inputs=None)
    assert np.all(res.log_norm == -np.inf)


def _reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_million_steps_bounded_memory():
    """10**6 steps with Gaussian inputs: storing states or inputs would take 128 MB; the call needs
    O(R·n) plus the records."""
    n, R, steps = 16, 2, 10 ** 6
    W = (1.0005 * _orthogonal(n, np.random.default_rng(2))).astype(np.float32)
    unroll(W, 10, realizations=R)                                 # compiled / loaded beforehand
    _reset_peak_rss()
    before = _peak_rss_bytes()
    res = unroll(W, steps, realizations=R, record_every=10 ** 5, tangent=True)
    grown = _peak_rss_bytes() - before
    assert grown < 32 * 2 ** 20, grown
    assert res.log_norm.shape == (R, 10)
    # ||h_t|| grows like 1.0005**t: log about 500 at the end (past float32's 88)
    assert np.all(res.log_norm[:, -1] > 400) and np.all(np.isfinite(res.log_norm))
    np.testing.assert_allclose(res.tangent_log_norm[:, -1] - res.tangent_log_norm[:, 0],
                               9e5 * np.log(np.linalg.norm(W.astype(np.float64), 2)), rtol=0, atol=0.1)


def test_thread_count_invariance():
    rng = np.random.default_rng(4)
    W = (0.9 * np.stack([_orthogonal(24, rng) for _ in range(3)])).astype(np.float32)
    kw = dict(realizations=50, tangent=True, nonlinearity="tanh", record_every=2, seed=3)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = unroll(W, 40, **kw)
        numba.set_num_threads(max(2, old) if numba.config.NUMBA_NUM_THREADS >= 2 else 1)
        b = unroll(W, 40, **kw)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a.log_norm, b.log_norm)
    np.testing.assert_array_equal(a.tangent_log_norm, b.tangent_log_norm)
    np.testing.assert_array_equal(a.final_state, b.final_state)
    # and neither does the batch composition, nor how the realisations are chunked (R = 1 or 130)
    c = unroll(W[2], 40, start=2, **kw)
    np.testing.assert_array_equal(a.log_norm[2], c.log_norm)
    kw.pop("realizations")
    one = unroll(W[0], 40, realizations=1, **kw)
    many = unroll(W[0], 40, realizations=130, **kw)
    np.testing.assert_array_equal(one.log_norm[0], a.log_norm[0, 0])
    np.testing.assert_array_equal(many.log_norm[:50], a.log_norm[0])


def test_whole_matrix_items_same_bits():
    """A batch large enough for whole-matrix work items (spec.unroll.nchunks) gives each matrix the bits
    it has alone (two chunks of realisations)."""
    rng = np.random.default_rng(12)
    nb = spec.ITEMS_PER_THREAD * max(2, numba.get_num_threads())
    W = (0.95 * np.stack([_orthogonal(9, rng) for _ in range(nb)])).astype(np.float32)
    assert spec.nchunks(70, nb, numba.get_num_threads()) == 2 and spec.nchunks(70, 1, 2) == 2
    assert spec.nchunks(50, nb, numba.get_num_threads()) == 1 and spec.nchunks(50, 1, 2) == 2
    kw = dict(realizations=50, tangent=True, nonlinearity="relu", seed=8, b=np.full(9, 0.1, np.float32))
    a = unroll(W, 12, **kw)
    for j in (0, nb - 1):
        c = unroll(W[j], 12, start=j, **kw)
        np.testing.assert_array_equal(a.log_norm[j], c.log_norm)
        np.testing.assert_array_equal(a.tangent_log_norm[j], c.tangent_log_norm)
        np.testing.assert_array_equal(a.final_state[j], c.final_state)


def test_exported():
    assert rf.unroll is unroll and rf.UnrollResult is UnrollResult


# --- the spec (rinit_fast/spec/unroll.py) ---------------------------------------------------------
def test_spec_chunks_cover_the_realisations():
    for R in list(range(1, 140)) + [1000, 12345]:
        for batch, threads in [(1, 1), (1, 2), (3, 2), (8, 2), (100, 8)]:
            nch = spec.nchunks(R, batch, threads)
            bounds = [spec.chunk(R, nch, c) for c in range(nch)]
            assert bounds[0][0] == 0 and bounds[-1][1] == R
            assert all(b[1] == nb[0] for b, nb in zip(bounds, bounds[1:]))
            assert all(0 < r1 - r0 <= spec.CHUNK_R for r0, r1 in bounds)
            if batch < spec.ITEMS_PER_THREAD * threads and R > 1:
                assert nch % 2 == 0                                  # two cores share one matrix


def test_spec_floor_and_bound():
    assert spec.e_floor(0.0, "float32") == spec.NO_FLOOR
    for dt in ("float32", "float64"):
        for bound in (1e-300, 1e-40, 0.3, 0.5, 1.0, 8.6, 1e5):
            e = spec.e_floor(bound, dt)
            assert bound <= 2.0 ** e                                 # scaled inputs stay <= 1
            assert e == spec.FLOOR_MIN[dt] or bound >= 2.0 ** (e - 1)     # the least such power
    UT = np.array([[1.0, -2.0], [0.5, 0.5]])                         # U = UT.T: row sums 1.5 and 2.5
    b = np.array([0.0, -0.25])
    x = np.array([[[[3.0, -4.0]]]])
    assert spec.input_bound(spec.GAUSSIAN, 2.0) == 2.0 * spec.GAUSS_MAX
    assert spec.input_bound(spec.ARRAY, 0.5, x) == 2.0
    assert spec.input_bound(spec.ARRAY, 0.5, x, UT, b) == 2.0 * 2.5 + 0.25
    assert spec.input_bound(spec.NO_INPUT, 1.0, None, UT, b) == 0.25


def test_spec_plan_shapes_and_cuda_layout():
    p = spec.plan(batch=3, R=5, n=7, d=4, du=4, steps=20, record_every=3, inputs="gaussian",
                  nonlinearity="tanh", tangent=True, nbias=7, bx=1, rx=1, bound=0.3, seed=2 ** 40 + 9,
                  start=11, input_scale=0.5, dtype=np.float32)
    assert p.records == 6 and p.mode == spec.GAUSSIAN and p.nonlin == activations.TANH
    assert (p.k0, p.k1) == (9, 2 ** 8) and p.e_floor == -1
    shapes = spec.output_shapes(p)
    assert tuple(shapes) == spec.OUTPUTS
    assert shapes["log_norm"] == ((3, 5, 6), "float64") and shapes["final_tangent"] == ((3, 5, 7), "float32")
    arr = spec.cuda_plan_array(p, npad=8, nchunks=2, rp=8, wsmem=True)
    assert arr.dtype == np.uint64 and arr.shape == (len(spec.PLAN_FIELDS),)
    want = dict(NB=3, R=5, N=7, D=4, DU=4, NPAD=8, STEPS=20, RECORD=3, MODE=spec.GAUSSIAN,
                NONLIN=p.nonlin, NBIAS=7, BX=1, RX=1, EFLOOR=(-1) % 2 ** 64, K0=9, K1=2 ** 8, C2START=11,
                C3BASE=p.c3_base, NCHUNKS=2, RP=8, WSMEM=1)
    assert {f: int(arr[spec.PLAN[f]]) for f in spec.PLAN_FIELDS} == want
    q = spec.plan(batch=1, R=2, n=7, d=7, du=0, steps=20, record_every=20, inputs=None, nonlinearity="linear",
                  tangent=False, nbias=0, bx=1, rx=1, bound=0.0, seed=0, start=0, input_scale=1.0,
                  dtype="float64")
    assert q.e_floor == spec.NO_FLOOR and spec.output_shapes(q)["tangent_log_norm"] == ((1, 1, 1), "float64")
    assert spec.memory_bytes(q, "cuda") > spec.memory_bytes(q, "cpu") > 0
    assert spec.steps_per_draw(q) == 1 and spec.steps_per_draw(p) == 20


# --- the matrix product (kernels/cpu/packed_gemm.py) ----------------------------------------------
def test_version_guard():
    packed_gemm.check_versions()                                     # the installed versions pass
    ok = {"numba": "0.68.1", "llvmlite": "0.50.0"}
    for bad in ({"numba": "0.69.0"}, {"numba": "0.67.2"}, {"numba": "0.68.0"}, {"llvmlite": "0.51.0rc1"},
                {"llvmlite": "0.49.0"}):
        pkg = next(iter(bad))
        with pytest.raises(ImportError, match=f"needs {pkg}>=.*installed.*pip install"):
            packed_gemm.check_versions({**ok, **bad})
    packed_gemm.check_versions({"numba": "0.68.9", "llvmlite": "0.50.3"})


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_packed_gemm_matches_reference(dt):
    rng = np.random.default_rng(3)
    for M, K, N, kuse in [(1, 1, 1, 1), (5, 3, 40, 2), (13, 37, 33, 37), (30, 64, 64, 50), (12, 9, 100, 9)]:
        A = rng.standard_normal((M + 2, K + 3)).astype(dt)
        B = rng.standard_normal((K, N)).astype(dt)
        P = packed_gemm.pack_panels(B)
        assert P.shape[-1] == packed_gemm.panel_width(dt) and P.ctypes.data % packed_gemm.ALIGN == 0
        C = np.full((M + 2, P.shape[0] * P.shape[2] + 5), np.nan, dt)
        packed_gemm.gemm_packed(A, P, C, kuse, M)
        ref = A[:M, :kuse].astype(np.float64) @ B[:kuse].astype(np.float64)
        scale = np.abs(A[:M, :kuse]).astype(np.float64) @ np.abs(B[:kuse]).astype(np.float64)
        assert np.all(np.abs(C[:M, :N] - ref) <= 4 * kuse * np.finfo(dt).eps * scale)
        assert np.all(C[:M, N:P.shape[0] * P.shape[2]] == 0)           # zero-padded columns
        assert np.all(np.isnan(C[M:])) and np.all(np.isnan(C[:, P.shape[0] * P.shape[2]:]))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_packed_gemm_bits_do_not_depend_on_the_blocking(dt):
    """Each entry is one FMA chain over k in order: rows computed alone (1-row tiles) or in any number
    of rows (tiles of up to MR_MAX, as even as possible) give the same bits."""
    rng = np.random.default_rng(4)
    K, N = 45, 70
    B = rng.standard_normal((K, N)).astype(dt)
    P = packed_gemm.pack_panels(B)
    ncol = P.shape[0] * P.shape[2]
    A = rng.standard_normal((40, K)).astype(dt)
    alone = np.empty((40, ncol), dt)
    for i in range(40):
        packed_gemm.gemm_packed(A[i:i + 1], P, alone[i:i + 1], K, 1)
    for M in range(1, 41):
        C = np.empty((M, ncol), dt)
        packed_gemm.gemm_packed(A[:M], P, C, K, M)
        np.testing.assert_array_equal(C, alone[:M])


# --- errors before any kernel runs ----------------------------------------------------------------
@pytest.fixture
def no_kernel(monkeypatch):
    from rinit_fast.kernels.cpu import unroll as kern

    def boom(*a, **k):
        raise AssertionError("the kernel ran")
    monkeypatch.setattr(kern, "unroll", boom)


W4 = np.eye(4, dtype=np.float32) * 0.5


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=-3), ValueError, "steps"),
    (dict(steps=2.5), TypeError, "steps"),
    (dict(record_every=0), ValueError, "record_every"),
    (dict(record_every=11), ValueError, "record_every"),
    (dict(realizations=0), ValueError, "realizations"),
    (dict(realizations=-1), ValueError, "realizations"),
    (dict(realizations=2 ** 24 + 1), ValueError, "sub-indices"),
    (dict(U=np.ones((3, 2))), ValueError, "U must have shape"),
    (dict(U=np.ones(4)), ValueError, "U must have shape"),
    (dict(h0=np.ones(5)), ValueError, "h0 must have shape"),
    (dict(h0=np.ones((3, 4)), realizations=2), ValueError, "realizations"),
    (dict(h0=np.ones((1, 2, 4)), realizations=2), ValueError, "batch axis"),
    (dict(v0=np.ones(4)), ValueError, "tangent=False"),
    (dict(v0=np.ones(3), tangent=True), ValueError, "v0 must have shape"),
    (dict(b=np.ones(3)), ValueError, "b must have shape"),
    (dict(inputs=np.ones((10, 3))), ValueError, "inputs must have shape"),
    (dict(inputs=np.ones((9, 4))), ValueError, "inputs must have shape"),
    (dict(inputs=np.ones((3, 10, 4)), realizations=2), ValueError, "realizations"),
    (dict(inputs=np.ones((10, 2)), U=np.ones((4, 3))), ValueError, "inputs must have shape"),
    (dict(inputs="uniform"), ValueError, "inputs must be"),
    (dict(inputs=np.full((10, 4), np.nan)), ValueError, "inputs contains NaN"),
    (dict(nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (dict(tangent=1), TypeError, "tangent"),
    (dict(input_scale=-1.0), ValueError, "input_scale"),
    (dict(input_scale=float("inf")), ValueError, "input_scale"),
    (dict(input_scale=1e38), ValueError, "too large"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(start=2 ** 32), ValueError, "start"),
    (dict(b=np.array([1.0, np.inf, 0, 0])), ValueError, "b contains NaN"),
    (dict(steps=2 ** 48), ValueError, "values of one input stream"),
    (dict(steps=10 ** 12), MemoryError, "GiB"),
])
def test_errors(no_kernel, kwargs, exc, match):
    kw = dict(steps=10)
    kw.update(kwargs)
    steps = kw.pop("steps")
    with pytest.raises(exc, match=match):
        unroll(W4, steps, **kw)


@pytest.mark.parametrize("W,exc,match", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "W contains NaN"),
    (np.array([[1.0, np.inf], [0.0, 1.0]], dtype=np.float32), ValueError, "W contains NaN"),
    (np.ones((2, 3)), ValueError, "square"),
    (np.ones(3), ValueError, "shape"),
    (np.ones((2, 2, 2, 2)), ValueError, "shape"),
    (np.ones((0, 2, 2)), ValueError, "square"),
    (np.ones((2, 2), dtype=np.complex64), TypeError, "float32 or float64"),
    (np.ones((2, 2), dtype=np.int64), TypeError, "float32 or float64"),
    (np.full((2, 2), 1e30, dtype=np.float32), ValueError, "max"),
])
def test_bad_W(no_kernel, W, exc, match):
    with pytest.raises(exc, match=match):
        unroll(W, 5)
