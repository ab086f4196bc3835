"""rf.lyapunov: the checks that cannot be tuned (issue 14, point 3), the float64 reference
(tests/naive_lyapunov.py) on fresh inputs, the stream, invariance to batch split and thread count,
bounded numbers at any size, the spec's schedule and summaries, and the errors (point 2).

Tolerances.  u is the unit roundoff of the dtype.  One Householder QR step perturbs each log|R_cc| by
O(n·u) (backward stability: the computed R is the exact R of A + ΔA with ||ΔA|| <= γ_{cn}||A||); the
exponents average these errors over the steps, so two correct computations of the same trajectory agree
to a small multiple of n·u, as long as the trajectory itself does not amplify rounding differences:
the comparisons with other implementations use contracting recurrences (spectral norm of W below 1, or
a short horizon), where rounding differences in the state stay O(u).  ``TOL = 64·n·u`` below: 64 for the
constant c of γ_{cn} (LAPACK's and ours, a few n·u each) and the conditioning of the frames (< 10 here).
"""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.lyapunov import LyapunovResult, lyapunov, measure
from rinit_fast.rng import Purpose
from rinit_fast.spec import lyapunov as spec

from naive_lyapunov import lyapunov_ref

U_ROUND = {np.float32: 2.0 ** -24, np.float64: 2.0 ** -53}


def tol(n, dt):
    return 64 * max(n, 4) * U_ROUND[dt]


def _orthogonal(n, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _nonneg(n, rng):
    """0.6·P1 + 0.3·P2 (random permutations): non-negative, norm <= 0.9, invertible (P1 (0.6 I + 0.3 P1^T P2)
    has eigenvalues 0.6 + 0.3·(roots of unity)), condition number <= 3."""
    return 0.6 * np.eye(n)[rng.permutation(n)] + 0.3 * np.eye(n)[rng.permutation(n)]


def _frame(seed, n, k, dt, index=0, sub=0):
    """The Gaussian matrix whose Householder Q is the starting frame of (index, sub): column c holds
    values c·n .. c·n + n - 1 of stream Purpose.V0 (docs/lyapunov.md)."""
    z = rf.rng.normals(seed, Purpose.V0, index, count=k * n, sub=sub, dtype=dt)[0, 0]
    return z.reshape(k, n).T.astype(np.float64)


# --- the float64 reference, fresh inputs -----------------------------------------------------------------
CASES = [  # n, k, nonlinearity, reortho_every, record_every, use U
    (1, 1, "linear", 1, None, False), (1, 1, "tanh", 1, 5, False), (1, 1, "relu", 2, None, False),
    (7, 7, "linear", 1, 10, False), (7, 7, "tanh", 3, 10, True), (7, 4, "relu", 1, None, False),
    (33, 33, "tanh", 1, 25, False), (33, 5, "linear", 4, None, True), (33, 12, "relu", 2, 50, True),
    (64, 64, "tanh", 1, None, False), (64, 64, "linear", 2, 40, False), (64, 17, "relu", 1, None, True),
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,nonlinearity,every,rec,use_u", CASES)
def test_matches_reference(dt, n, k, nonlinearity, every, rec, use_u):
    """Exponents, running estimates and the volume rate equal the float64 reference (QR by LAPACK every
    re-orthonormalisation step) on fresh random inputs.  Contracting recurrences (||W|| = 0.9; relu
    with a bias that keeps every unit active, so no sign can flip by rounding)."""
    rng = np.random.default_rng([n, k, len(nonlinearity), every, np.dtype(dt).itemsize])
    steps, warmup, seed = 200, 20, 11
    d = n + 3 if use_u else n
    if nonlinearity == "relu":     # non-negative, norm 0.9: with the bias below no unit is ever inactive
        W = _nonneg(n, rng).astype(dt)
    else:
        W = (0.9 * _orthogonal(n, rng)).astype(dt)
    U = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(dt) if use_u else None
    b = ((3.0 if nonlinearity == "relu" else 0.0) + 0.3 * rng.standard_normal(n)).astype(dt)
    x = (0.5 * rng.standard_normal((steps, d))).astype(dt)
    h0 = (0.5 * rng.standard_normal(n)).astype(dt)
    res = lyapunov(W, k, steps=steps, warmup=warmup, nonlinearity=nonlinearity, inputs=x, U=U, b=b, h0=h0,
                   reortho_every=every, record_every=rec, seed=seed)
    assert isinstance(res, LyapunovResult)
    assert res.exponents.shape == (1, k) and res.exponents.dtype == np.float64
    ref = lyapunov_ref(W, _frame(seed, n, k, dt), steps, warmup=warmup, x=x, U=U, b=b, h0=h0,
                       nonlinearity=nonlinearity, reortho_every=every, record_every=rec)
    if nonlinearity == "relu":
        assert ref["min_preact"] > 1e-3             # every unit active, no sign within rounding of 0
    t = tol(n, dt)
    np.testing.assert_allclose(res.exponents[0], ref["exponents"], rtol=0, atol=t)
    assert np.all(np.diff(res.exponents[0]) <= 0)
    L = steps - warmup
    logabsdet = np.linalg.slogdet(W.astype(np.float64))[1]
    np.testing.assert_allclose(res.volume_rate[0], ref["logdet"] / L + logabsdet, rtol=0, atol=t)
    if rec is None:
        assert res.running is None and res.steps_recorded.shape == (0,)
    else:
        K = L // rec
        np.testing.assert_array_equal(res.steps_recorded, warmup + rec * np.arange(1, K + 1))
        assert res.running.shape == (1, K, k)
        np.testing.assert_allclose(np.sort(res.running[0], axis=-1), np.sort(ref["running"], axis=-1),
                                   rtol=0, atol=t)
        if L % rec == 0:     # the last record is the final estimate
            np.testing.assert_allclose(res.running[0, -1], res.exponents[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("n,k,dt", [(256, 256, np.float64), (200, 130, np.float64), (97, 50, np.float32)])
def test_large_sizes_match_reference(n, k, dt):
    """Many 16-column blocks and panels (odd sizes, the two-block update path), a short tanh run."""
    rng = np.random.default_rng(n)
    W = (0.9 * _orthogonal(n, rng)).astype(dt)
    x = (0.5 * rng.standard_normal((30, n))).astype(dt)
    res = lyapunov(W, k, steps=30, warmup=5, nonlinearity="tanh", inputs=x, seed=3)
    from rinit_fast.kernels.cpu import threads
    with threads.blas_single_thread():          # threaded BLAS on small products: slow on a busy machine
        ref = lyapunov_ref(W, _frame(3, n, k, dt), 30, warmup=5, x=x, nonlinearity="tanh")
    np.testing.assert_allclose(res.exponents[0], ref["exponents"], rtol=0, atol=tol(n, dt))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_chaotic_short_horizon_matches_reference(dt):
    """A chaotic tanh network (gain 2.5): over a horizon short enough that rounding differences of the
    state (amplified by e^{lambda_1 t}) stay far below the tolerance, the reference agrees."""
    rng = np.random.default_rng(3)
    n, steps, seed = 33, 12, 4
    W = (2.5 * rng.standard_normal((n, n)) / np.sqrt(n)).astype(dt)
    h0 = rng.standard_normal(n).astype(dt)
    res = lyapunov(W, steps=steps, warmup=0, nonlinearity="tanh", h0=h0, seed=seed)
    ref = lyapunov_ref(W, _frame(seed, n, n, dt), steps, h0=h0, nonlinearity="tanh")
    np.testing.assert_allclose(res.exponents[0], ref["exponents"], rtol=0,
                               atol=tol(n, dt) * math.e ** (0.5 * steps) / steps)


# --- the checks that cannot be tuned -------------------------------------------------------------------
def _normal_matrix(blocks, rng):
    """W = V S V^T with S block diagonal (1x1 blocks r, 2x2 blocks r·rotation): a normal matrix whose
    eigenvalue moduli are the r's, with multiplicity (2 for each rotation block)."""
    n = sum(1 if kind == "real" else 2 for kind, _ in blocks)
    S = np.zeros((n, n))
    i = 0
    moduli = []
    for kind, r in blocks:
        if kind == "real":
            S[i, i] = r
            moduli.append(abs(r))
            i += 1
        else:
            th = rng.uniform(0.3, 2.8)
            S[i:i + 2, i:i + 2] = abs(r) * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
            moduli += [abs(r), abs(r)]
            i += 2
    V = _orthogonal(n, rng)
    return V @ S @ V.T, V, np.array(moduli)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_linear_normal_matrix_exact_bounds(dt):
    """Linear recurrence, normal W = V S V^T: the QR method's column partial sums P_j = log vol_j(W^T Q0_j)
    satisfy exactly  T·sum_{i<=j} log r_i + log|det(U_j^T Q0_j)| <= P_j <= T·sum_{i<=j} log r_i  at every j
    that ends a group of equal moduli (U_j: an orthonormal basis of the top-j invariant subspace, the
    first j columns of V·(block order)).  So the exponents converge to the log-moduli of the eigenvalues
    (LAPACK), with multiplicity: a rotation block gives two equal exponents."""
    rng = np.random.default_rng(8)
    blocks = [("rot", 1.3), ("real", -1.1), ("real", 0.9), ("rot", 0.7), ("real", 0.55), ("rot", 0.4)]
    W, V, moduli = _normal_matrix(blocks, rng)
    n = W.shape[0]
    seed, T = 2, 3000
    res = lyapunov(W.astype(dt), steps=T, warmup=0, seed=seed)
    lam = res.exponents[0]
    Q0, _ = np.linalg.qr(_frame(seed, n, n, dt))
    logr = np.log(moduli)
    ends = np.cumsum([1 if kind == "real" else 2 for kind, _ in blocks])
    rounding = T * tol(n, dt)                       # rounding of T steps, on the sum of logs
    eig = np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]        # LAPACK's moduli, with multiplicity
    np.testing.assert_allclose(np.sort(logr)[::-1], eig, atol=1e-12)
    for j in ends:
        lower_gap = math.log(abs(np.linalg.det(V[:, :j].T @ Q0[:, :j])))
        P = T * lam[:j].sum()
        top = T * logr[:j].sum()
        assert top + lower_gap - rounding <= P <= top + rounding, (j, P - top, lower_gap)
    # individual exponents: within the bounds of their group
    start = 0
    for j in ends:
        lo = (math.log(abs(np.linalg.det(V[:, :j].T @ Q0[:, :j]))) if j < n else 0.0)
        lo_prev = math.log(abs(np.linalg.det(V[:, :start].T @ Q0[:, :start]))) if start else 0.0
        width = (abs(lo) + abs(lo_prev)) / T + 2 * tol(n, dt)
        np.testing.assert_allclose(lam[start:j], logr[start:j], rtol=0, atol=width)
        start = j


def _bounds_nonnormal(W, Q0, T):
    """For diagonalisable W = V Λ V^{-1} (eigenvalues sorted by modulus, descending), the column partial
    sums of the QR method over T steps satisfy  lo_j <= P_j / T - sum_{i<=j} log|λ_i| <= hi_j  with
    hi_j = log(prod of the j largest singular values of V^{-T} and of V^T) / T and
    lo_j = (log(prod of the j smallest singular values of V^{-T}) + log|det((V^T Q0)[:j, :j])|) / T
    (Cauchy–Binet: vol_j(M) >= any j x j minor; ||∧^j M|| = product of the j largest singular values)."""
    lam, V = np.linalg.eig(W)
    order = np.argsort(-np.abs(lam), kind="stable")
    lam, V = lam[order], V[:, order]
    Vinv_T = np.linalg.inv(V).T
    sv_a = np.linalg.svd(Vinv_T, compute_uv=False)
    sv_b = np.linalg.svd(V.T, compute_uv=False)
    Y = V.T @ Q0
    n = W.shape[0]
    hi, lo = [], []
    for j in range(1, n + 1):
        hi.append((np.log(sv_a[:j]).sum() + np.log(sv_b[:j]).sum()) / T)
        lo.append((np.log(sv_a[n - j:]).sum() + math.log(abs(np.linalg.det(Y[:j, :j])))) / T)
    return np.log(np.abs(lam)), np.array(lo), np.array(hi)


@pytest.mark.parametrize("n", [7, 33])
def test_linear_glorot_converges_to_log_moduli(n):
    """Glorot W (non-normal, complex pairs): at every j where the bounds of _bounds_nonnormal separate
    the first j columns from the rest (so the sorted exponents' partial sums are the column partial
    sums), the partial sums lie within the bounds, which shrink as 1/T: convergence to LAPACK's
    log-moduli, with multiplicity."""
    W = rf.sample("glorot_normal", n, seed=5, dtype="float64")
    seed = 9
    Q0, _ = np.linalg.qr(_frame(seed, n, n, np.float64))
    errs = []
    for T in (400, 6400):
        logr, lo, hi = _bounds_nonnormal(W, Q0, T)
        lam = lyapunov(W, steps=T, warmup=0, seed=seed).exponents[0]
        P = np.cumsum(lam)
        top = np.cumsum(logr)
        slack = 2 * tol(n, np.float64)
        ok = 0
        for j in range(1, n + 1):
            # separation: every column beyond j grows slower than every column up to j (from the bounds)
            if j < n and logr[j - 1] + lo[j - 1] - (hi[j - 2] if j > 1 else 0) <= logr[j] + hi[j] - lo[j - 1]:
                continue
            ok += 1
            assert top[j - 1] + lo[j - 1] - slack <= P[j - 1] <= top[j - 1] + hi[j - 1] + slack, (T, j)
        assert ok >= 2                                      # j = n and at least one more
        errs.append(np.abs(lam - logr).max())
    assert errs[1] < errs[0]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n,k", [(1, 1), (7, 7), (33, 10), (64, 64)])
def test_orthogonal_all_zero(dt, n, k):
    """Orthogonal W, linear: every step maps the frame to an orthonormal frame, |R_cc| = 1 up to rounding,
    so every exponent is 0 to the per-step rounding (n·u), with or without re-orthonormalising each step."""
    W = rf.sample("orthogonal", n, seed=n, dtype=dt)
    for every in (1, 7):
        lam = lyapunov(W, k, steps=500, reortho_every=every, seed=1).exponents
        assert np.abs(lam).max() <= tol(n, dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["linear", "tanh", "relu"])
def test_sum_equals_log_det_along_trajectory(dt, nonlinearity):
    """k = n: (steps - warmup)·sum of the exponents = sum over the window of log|det(D_t W)| on the same
    trajectory (the product of the R's diagonals is the determinant of the product of the D_t W): the
    kernel's QR sums against its own sum of log f'(z_i) (volume_rate), per trajectory and realisation.

    Householder QR gives the R of A + ΔA with columnwise ||Δa_j|| <= γ||a_j||, so log|det R| is exact to
    about γ·κ(A) per step: the tolerance is 2·tol·(mean condition number of D_t W F_{t-1} along the
    float64 reference trajectory, which this contracting recurrence shares with the kernel's)."""
    rng = np.random.default_rng(21)
    n, steps, warmup, seed = 33, 300, 30, 3
    if nonlinearity == "relu":
        W = _nonneg(n, rng).astype(dt)
        b = np.full(n, 3.0, dt)
    else:
        W = (0.9 * _orthogonal(n, rng) if nonlinearity == "tanh" else
             rf.sample("glorot_normal", n, seed=1, dtype="float64")).astype(dt)
        b = None
    x = (0.3 * rng.standard_normal((2, steps, n))).astype(dt)
    res = lyapunov(W, steps=steps, warmup=warmup, nonlinearity=nonlinearity, inputs=x, b=b, realizations=2,
                   seed=seed)
    assert res.exponents.shape == (2, n)
    for r in range(2):
        ref = lyapunov_ref(W, _frame(seed, n, n, dt, sub=r), steps, warmup=warmup, x=x[r], b=b,
                           nonlinearity=nonlinearity, conds=True)
        if nonlinearity == "relu":
            assert ref["min_preact"] > 1e-3
        kappa = ref["cond"][warmup:].mean()
        np.testing.assert_allclose(res.exponents[r].sum(), res.volume_rate[r], rtol=0,
                                   atol=2 * tol(n, dt) * kappa)
        np.testing.assert_allclose(res.volume_rate[r], ref["logdet"] / (steps - warmup)
                                   + np.linalg.slogdet(W.astype(np.float64))[1], rtol=0, atol=tol(n, dt))


def test_sum_identity_chaotic_float64():
    """The same identity in a chaotic regime (tanh, gain 1.5), where no reference can follow the
    trajectory: the kernel's two sums agree to 1e-9 relative (u·κ with κ ~ 1e4-1e6 for these frames)."""
    n = 33
    W = rf.sample("glorot_normal", n, batch=2, seed=4, dtype="float64") * 1.5
    res = lyapunov(W, steps=400, warmup=40, nonlinearity="tanh", inputs="gaussian", realizations=3, seed=3)
    np.testing.assert_allclose(res.exponents.sum(-1), res.volume_rate, rtol=1e-9)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_scaling_shifts_linear_exponents(dt):
    """W -> cW shifts every linear exponent by log c: exactly (to the last bits of the float64 logs) for
    c = 2**m, whose products are exact; to the per-step rounding for c = 1.7."""
    n = 20
    W = rf.sample("glorot_normal", n, seed=3, dtype=dt)
    base = lyapunov(W, steps=300, seed=1).exponents
    for c, t in ((2.0 ** 5, 1e-12), (2.0 ** -7, 1e-12), (1.7, tol(n, dt))):
        lam = lyapunov((W * dt(c)).astype(dt), steps=300, seed=1).exponents
        np.testing.assert_allclose(lam - base, math.log(dt(c)), rtol=0, atol=t)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity,gain", [("linear", 1.2), ("tanh", 0.9), ("relu", 0.9)])
def test_top_exponent_is_unroll_tangent_growth(dt, nonlinearity, gain):
    """k = 1: the frame's only column starts at rf.unroll's default tangent v0 (Purpose.V0 values 0..n-1)
    on the same trajectory (same seed, start, inputs), so (steps - warmup)·lambda_1 is
    log||v_steps|| - log||v_warmup|| of rf.unroll(..., tangent=True), to rounding."""
    rng = np.random.default_rng(5)
    n, steps, warmup, seed, start = 24, 300, 30, 17, 4
    W = (gain * _orthogonal(n, rng)).astype(dt) if nonlinearity != "linear" else \
        (gain * rng.standard_normal((n, n)) / np.sqrt(n)).astype(dt)
    b = np.full(n, 3.0, dt) if nonlinearity == "relu" else None
    kw = dict(inputs="gaussian", input_scale=0.5, b=b, nonlinearity=nonlinearity, seed=seed, start=start)
    lam = lyapunov(W, 1, steps=steps, warmup=warmup, **kw).exponents[0, 0]
    u = rf.unroll(W, steps, tangent=True, **kw).tangent_log_norm[0]
    growth = u[steps - 1] - u[warmup - 1]
    np.testing.assert_allclose(lam * (steps - warmup), growth, rtol=0, atol=(steps - warmup) * tol(n, dt))


# --- stream, batch, threads -------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gaussian_inputs_are_the_stream(dt):
    """inputs="gaussian" are rf.unroll's: input_scale · values (t-1)·d .. t·d-1 of Purpose.INPUTS, index
    start + j, sub r; an array made of those numbers gives the same bits."""
    rng = np.random.default_rng(2)
    n, d, R, steps, seed, start, sigma = 9, 5, 3, 40, 77, 6, 0.7
    W = (0.9 * np.stack([_orthogonal(n, rng) for _ in range(2)])).astype(dt)
    U = (rng.standard_normal((n, d)) / 2).astype(dt)
    z = rf.rng.normals(seed, Purpose.INPUTS, index=start, count=steps * d, n_index=2, n_sub=R, dtype=dt)
    x = (dt(sigma) * z).reshape(2, R, steps, d)
    kw = dict(steps=steps, warmup=5, nonlinearity="tanh", U=U, realizations=R, seed=seed, start=start)
    a = lyapunov(W, inputs="gaussian", input_scale=sigma, **kw)
    b = lyapunov(W, inputs=x, **kw)
    np.testing.assert_array_equal(a.exponents, b.exponents)
    np.testing.assert_array_equal(a.volume_rate, b.volume_rate)


def test_independent_of_batch_split_and_threads():
    """Matrix j of a batch is stream index start + j: computed alone (start + j) it gives the same bits;
    and the bits do not depend on the thread count."""
    W = rf.sample("glorot_normal", 16, batch=3, seed=1, dtype="float32") * 1.6
    kw = dict(steps=150, nonlinearity="tanh", inputs="gaussian", realizations=2, record_every=15, seed=4,
              start=10)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = lyapunov(W, 8, **kw)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = lyapunov(W, 8, **kw)
    finally:
        numba.set_num_threads(old)
    for f in ("exponents", "stderr", "running", "volume_rate", "kaplan_yorke_dimension"):
        np.testing.assert_array_equal(getattr(one, f), getattr(two, f))
    kw.pop("start")
    alone = lyapunov(W[2], 8, start=12, **kw)
    np.testing.assert_array_equal(alone.exponents, one.exponents[2])
    np.testing.assert_array_equal(alone.running, one.running[2])
    # realisations are independent trajectories: different numbers
    assert not np.array_equal(one.exponents[0, 0], one.exponents[0, 1])


# --- nothing overflows --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_no_overflow_at_any_size(dt):
    """Linear W = 2**30·orthogonal re-orthonormalised only every 50 steps (the frame grows by 2**1500
    between QRs), and a relu state growing like 1.5**t for 2000 steps (far past float64): finite,
    exact exponents."""
    n = 12
    Q = rf.sample("orthogonal", n, seed=2, dtype=dt)
    lam = lyapunov((Q * dt(2.0 ** 30)).astype(dt), steps=1000, reortho_every=50, seed=1).exponents
    np.testing.assert_allclose(lam, 30 * math.log(2.0), rtol=0, atol=tol(n, dt))
    P = np.eye(n, dtype=dt)[np.random.default_rng(0).permutation(n)]
    res = lyapunov((1.5 * P).astype(dt), steps=2000, nonlinearity="relu", inputs="gaussian", input_scale=0.1,
                   b=np.full(n, 1.0, dt), seed=1)
    # the state grows like 1.5**t: every unit stays active, D_t = I, all exponents log 1.5
    np.testing.assert_allclose(res.exponents, math.log(1.5), rtol=0, atol=tol(n, dt))
    assert np.isfinite(res.volume_rate).all()


def test_vanishing_tanh_state_and_dead_relu_units():
    """tanh, 0.5·orthogonal, no input: the state decays to 0 (and underflows), D_t -> I, every exponent
    -> log 0.5; relu units that are never active annihilate their directions: with k = n the smallest
    exponents are -inf or at the rounding floor, the others log 0.5 (W = 0.5·I)."""
    n = 10
    Q = rf.sample("orthogonal", n, seed=4, dtype="float64")
    lam = lyapunov(0.5 * Q, steps=3000, warmup=1500, nonlinearity="tanh").exponents
    np.testing.assert_allclose(lam, math.log(0.5), rtol=0, atol=1e-12)
    b = np.full(n, 3.0)
    b[:3] = -1e3                                                      # three units always off, 7 always on
    res = lyapunov(0.5 * np.eye(n), steps=200, nonlinearity="relu", inputs="gaussian", input_scale=0.1, b=b)
    np.testing.assert_allclose(res.exponents[0, :7], math.log(0.5), rtol=0, atol=1e-12)
    assert (res.exponents[0, 7:] < math.log(1e3 * 2.0 ** -53)).all()      # -inf, or the rounding floor
    assert res.volume_rate[0] == -math.inf


@pytest.mark.slow
def test_long_run_bounded_memory():
    """10**5 steps in memory O(n·k): only the records grow (here none)."""
    import resource
    W = rf.sample("glorot_normal", 32, seed=1, dtype="float32")
    lyapunov(W, 8, steps=100, nonlinearity="tanh", inputs="gaussian")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = lyapunov(W, 8, steps=100_000, nonlinearity="tanh", inputs="gaussian")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert np.isfinite(res.exponents).all()
    assert after - before < 20_000            # kB: a stored trajectory would be 100_000·32·4 B = 12.8 MB


# --- summaries and the spec ------------------------------------------------------------------------------
def test_kaplan_yorke_and_entropy():
    lam = np.array([[0.3, 0.1, -0.2, -0.5], [-0.1, -0.2, -0.3, -0.4], [0.5, 0.4, 0.3, 0.2],
                    [0.2, -0.2, -0.4, -0.5]])
    # j = 3 (0.3 + 0.1 - 0.2 = 0.2 >= 0; - 0.5 < 0): 3 + 0.2/0.5; none positive: 0; all: 4; exactly 0 at j=2
    np.testing.assert_allclose(spec.kaplan_yorke(lam), [3.4, 0.0, 4.0, 2.0])
    np.testing.assert_allclose(spec.entropy_rate(lam), [0.4, 0.0, 1.4, 0.2])
    np.testing.assert_array_equal(spec.truncated(lam, 6), [False, False, True, False])
    np.testing.assert_array_equal(spec.truncated(lam, 4), [False] * 4)
    res = lyapunov(rf.sample("glorot_normal", 16, seed=2, dtype="float64") * 2.0, steps=300,
                   nonlinearity="tanh", inputs="gaussian")
    np.testing.assert_allclose(res.kaplan_yorke_dimension, spec.kaplan_yorke(res.exponents))
    np.testing.assert_allclose(res.entropy_rate, np.where(res.exponents > 0, res.exponents, 0).sum(-1))


def _schedule_brute(steps, warmup, every, record):
    """QR steps, record steps and blocks, by the words of docs/lyapunov.md (an independent loop)."""
    qr, recs = [], []
    for t in range(1, steps + 1):
        if t <= warmup:
            due = t % every == 0 or t == warmup
        else:
            u = t - warmup
            due = u % every == 0 or t == steps or (record > 0 and u % record == 0)
            if record > 0 and u % record == 0:
                recs.append(t)
        if due:
            qr.append(t)
    return qr, recs


@pytest.mark.parametrize("steps,warmup,every,record", [(100, 10, 1, 0), (100, 0, 7, 0), (101, 13, 5, 9),
                                                       (57, 56, 3, 1), (1000, 100, 13, 100), (9, 0, 20, 0)])
def test_schedule_and_blocks(steps, warmup, every, record):
    qr, recs = _schedule_brute(steps, warmup, every, record)
    assert [t for t in range(1, steps + 1) if spec.qr_due(t, steps, warmup, every, record)] == qr
    got = [t for t in range(1, steps + 1) if spec.record_index(t, warmup, record) >= 0]
    assert got == recs and list(spec.recorded_steps(steps, warmup, record)) == recs
    # block lengths: the intervals between consecutive QRs past the warm-up, summed per block
    lens = np.zeros(spec.NBLOCKS, dtype=np.int64)
    prev = warmup
    for t in qr:
        if t > warmup:
            lens[spec.block_of(t, steps, warmup, spec.NBLOCKS)] += t - prev
            prev = t
    np.testing.assert_array_equal(spec.block_lengths(steps, warmup, every, record), lens)
    assert lens.sum() == steps - warmup


def test_stderr_matches_spread_between_realisations():
    """The batch-means standard error of lambda_1 along one trajectory estimates the spread of lambda_1
    between independent trajectories of the same ergodic network (R = 48; driven by Gaussian inputs: the
    autonomous network has several attractors, between which lambda_1 differs far more than the stderr
    of one trajectory says).  With 10 blocks the estimate
    has chi-square(9) noise (relative sd 0.24, so 0.035 for the mean of 48), the empirical sd has relative
    sd 1/sqrt(2·47) = 0.10: their ratio is 1 within 3·sqrt(0.035² + 0.10²) + 0.1 (block correlation)
    = 0.42."""
    W = rf.sample("glorot_normal", 24, seed=6, dtype="float64") * 2.0
    res = lyapunov(W, 1, steps=3000, warmup=300, nonlinearity="tanh", realizations=48, seed=2,
                   inputs="gaussian", input_scale=0.5)
    ratio = res.stderr[:, 0].mean() / res.exponents[:, 0].std(ddof=1)
    assert abs(ratio - 1) < 0.42, ratio


def test_measure_for_studies():
    W = rf.sample("glorot_normal", 12, batch=2, seed=1, dtype="float32")
    out = measure(W, k=4, steps=100, nonlinearity="tanh", realizations=2, inputs="gaussian")
    r = lyapunov(W, 4, steps=100, nonlinearity="tanh", realizations=2, inputs="gaussian")
    assert set(out) == {"lyap_exponents", "lyap_stderr", "lyap_max", "lyap_kaplan_yorke", "lyap_entropy_rate",
                        "lyap_volume_rate"}
    np.testing.assert_array_equal(out["lyap_exponents"], r.exponents)
    np.testing.assert_array_equal(out["lyap_max"], r.exponents[..., 0])
    assert out["lyap_kaplan_yorke"].shape == (2, 2)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n,k", [(37, 5), (64, 13), (20, 20), (70, 33), (9, 1)])
def test_frame_product_routes_agree_bit_for_bit(dt, n, k):
    """The kernel's two ways of forming W F (W times the frame in panels; the transposed frame times the
    packed Wᵀ, for frames narrower than a panel) give the same bits: one chain of fused multiply-adds over
    each row of W, in order (kernels/cpu/packed_gemm.py), so the route never changes a result."""
    from rinit_fast.kernels.cpu import lyapunov as K
    from rinit_fast.kernels.cpu.packed_gemm import aligned_empty, gemm_packed, pack_panels, panel_width
    rng = np.random.default_rng([n, k])
    nr, kw = panel_width(dt), K.frame_width(k, dt)
    W = rng.standard_normal((n, n)).astype(dt)
    F = np.zeros((n, kw), dt)
    F[:, :k] = rng.standard_normal((n, k))
    P = aligned_empty((kw // nr, n, nr), dt)
    K.pack_frame(F, P)
    C = aligned_empty((n, kw), dt)
    gemm_packed(W, P, C, n, n)
    PW = pack_panels(np.ascontiguousarray(W.T), dt)
    CT = aligned_empty((k, PW.shape[0] * nr), dt)
    gemm_packed(np.ascontiguousarray(F[:, :k].T), PW, CT, n, k)
    np.testing.assert_array_equal(C[:, :k], CT[:, :n].T)
    np.testing.assert_array_equal(C[:, k:], 0)
    np.testing.assert_allclose(C[:, :k], W.astype(np.float64) @ F[:, :k], rtol=0, atol=4 * n * U_ROUND[dt]
                               * (np.abs(W).astype(np.float64) @ np.abs(F[:, :k])).max())


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("use_u", [False, True])
def test_state_is_unroll_state_bit_for_bit(dt, nonlinearity, use_u):
    """The kernel's state step (kernels/cpu/lyapunov.py ``state_step``) is rf.unroll's: replayed from the
    same initial split h0 = g·2**e, with the same inputs, U and b, it ends on rf.unroll's final_state and
    final_exponent bit for bit (a growing relu state included: the exponent moves)."""
    from rinit_fast.kernels.cpu import lyapunov as K
    from rinit_fast.kernels.cpu.packed_gemm import aligned_empty, pack_panels, panel_width
    from rinit_fast.spec import activations
    from rinit_fast.spec import unroll as uspec
    from rinit_fast.unroll import _split_scale
    rng = np.random.default_rng([len(nonlinearity), int(use_u), np.dtype(dt).itemsize])
    n, steps, scale = 23, 200, 0.7
    d = 7 if use_u else n
    W = (1.3 * rng.standard_normal((n, n)) / np.sqrt(n)).astype(dt)
    U = rng.standard_normal((n, d)).astype(dt) if use_u else None
    b = (0.2 * rng.standard_normal(n)).astype(dt)
    x = rng.standard_normal((steps, d)).astype(dt)
    h0 = (5 * rng.standard_normal(n)).astype(dt)
    u = rf.unroll(W, steps, inputs=x, input_scale=scale, U=U, b=b, h0=h0, nonlinearity=nonlinearity)
    UT = np.zeros((0, n), dt) if U is None else np.ascontiguousarray(U.T)
    e_floor = uspec.e_floor(uspec.input_bound(uspec.ARRAY, scale, x, UT, b), dt)
    G0, E0 = _split_scale(h0[None, None], e_floor)
    PW = pack_panels(np.concatenate([W.T, UT]), dt)
    A = aligned_empty((1, n + UT.shape[0]), dt)
    A[:] = 0
    A[0, :n] = G0[0, 0]
    Z = aligned_empty((1, -(-n // panel_width(dt)) * panel_width(dt)), dt)
    E = E0[0].copy()
    XB = x.reshape(-1).copy()
    for t in range(steps):
        K.state_step(PW, A, Z, E, XB, t * d, b, activations.code(nonlinearity), True, n, UT.shape[0],
                     float(dt(scale)), e_floor, np.zeros(n, dt), np.zeros(uspec.LANES), np.zeros((1, 1)))
    np.testing.assert_array_equal(A[0, :n], u.final_state[0])
    assert E[0] == u.final_exponent[0]


# --- errors -----------------------------------------------------------------------------------------------
def test_errors():
    W = np.eye(5, dtype=np.float32)
    with pytest.raises(ValueError, match="k must be in 1..n"):
        lyapunov(W, 6, steps=10)
    with pytest.raises(ValueError, match="k must be in 1..n"):
        lyapunov(W, 0, steps=10)
    with pytest.raises(TypeError, match="k must be an integer"):
        lyapunov(W, 2.0, steps=10)
    with pytest.raises(TypeError, match="W must be real"):
        lyapunov(W.astype(np.complex64), steps=10)
    with pytest.raises(TypeError, match="float32 or float64"):
        lyapunov(W.astype(np.int32), steps=10)
    bad = W.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        lyapunov(bad, steps=10)
    with pytest.raises(ValueError, match="reortho_every must be >= 1"):
        lyapunov(W, steps=10, reortho_every=0)
    with pytest.raises(ValueError, match="warmup must be < steps"):
        lyapunov(W, steps=10, warmup=10)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        lyapunov(W, steps=0)
    with pytest.raises(ValueError, match="record_every must be None or in"):
        lyapunov(W, steps=10, warmup=2, record_every=9)
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        lyapunov(W, steps=10, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="W must have shape"):
        lyapunov(np.ones((2, 2, 3, 3), np.float32), steps=10)
    with pytest.raises(ValueError, match="square"):
        lyapunov(np.ones((3, 4), np.float32), steps=10)
    with pytest.raises(ValueError, match="h0 has 2 rows but realizations=3"):
        lyapunov(W, steps=10, h0=np.zeros((2, 5)), realizations=3)
    with pytest.raises(ValueError, match="inputs must have shape"):
        lyapunov(W, steps=10, inputs=np.zeros((9, 5)))
    with pytest.raises(ValueError, match="U must have shape"):
        lyapunov(W, steps=10, inputs="gaussian", U=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="b must have shape"):
        lyapunov(W, steps=10, b=np.zeros(4))
    with pytest.raises(ValueError, match="inputs has a batch axis"):
        lyapunov(W, steps=10, inputs=np.zeros((1, 1, 10, 5)))
    with pytest.raises(ValueError, match='inputs must be "gaussian"'):
        lyapunov(W, steps=10, inputs="uniform")
    with pytest.raises(ValueError, match="seed"):
        lyapunov(W, steps=10, seed=-1)
    with pytest.raises(ValueError, match="inputs are too large for float32"):     # rf.unroll's bound
        lyapunov(W, steps=10, inputs="gaussian", input_scale=1e37)
    with pytest.raises(ValueError, match="steps·d"):
        lyapunov(W, steps=2 ** 48, inputs="gaussian", U=np.ones((5, 4)))


def test_edge_of_chaos_report(tmp_path):
    """The reproduce section (quick settings): figures and table written, summary lines with the table."""
    from rinit_fast.studies.lyapunov_report import edge_of_chaos, settings
    lines, figs = edge_of_chaos(str(tmp_path), quick=True)
    assert [p.rsplit("/", 1)[-1] for p in figs] == ["lyapunov_edge.png", "lyapunov_spectrum.png"]
    for p in figs + [str(tmp_path / "lyapunov_table.csv")]:
        assert (tmp_path / p.rsplit("/", 1)[-1]).stat().st_size > 0
    st = settings(True)
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| g ")]
    assert len(rows) == len(st["gains"])
    assert any("Kaplan–Yorke" in ln for ln in lines)
    table = (tmp_path / "lyapunov_table.csv").read_text().splitlines()
    assert len(table) == 1 + len(st["gains"]) * st["matrices"] + st["lin_matrices"] * st["n"]


def test_edge_of_chaos_computed_apart_from_writing(tmp_path):
    """compute() writes nothing; write() of its numbers gives edge_of_chaos's lines and table; the main
    job's background thread (reproduce._Background) hands over the value, or the error."""
    from rinit_fast.studies import reproduce
    from rinit_fast.studies.lyapunov_report import compute, edge_of_chaos, write
    bg = reproduce._Background(compute, quick=True, seed=7)
    data = bg.result()
    assert not any(tmp_path.iterdir())
    lines, _ = write(str(tmp_path / "a"), data)
    lines2, _ = edge_of_chaos(str(tmp_path / "b"), quick=True, seed=7)
    assert lines == lines2
    table = [(tmp_path / d / "lyapunov_table.csv").read_text() for d in ("a", "b")]
    assert table[0] == table[1]

    def boom():
        raise KeyError("from the background")
    with pytest.raises(KeyError, match="from the background"):
        reproduce._Background(boom).result()
