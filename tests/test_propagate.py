"""rf.propagate (signal propagation through depth) and rf.theory.mean_field.

Exactness: the weights the kernel regenerates are rf.sample's bit for bit; the statistics equal a float64
NumPy reference that materialises every layer (tests/naive_propagate.py); the per-network results do not
depend on the thread count, the batch split, the checkpointing or on whether the weights are generated or
materialised.

Science (the claims of sources [0], [2], [3] in docs/sources.md as numbers; width 256, depth 50 unless stated).

How the tolerances are derived (``_tolerance`` below).  A pooled statistic of layer l is the mean of B
per-network values, and networks are independent by construction (each has its own counters), so its
statistical error is estimated from the sample itself: se = sd over networks / sqrt(B), and we allow
Z = 5 standard errors.  The mean field is the infinite-width limit; at width N the expectation differs from
it by a finite-width bias, which the delta method (linear-noise approximation of the layer-to-layer map
q -> g(q) = weight_var · E f(√q z)²) bounds: the relative fluctuation r_l of the pre-activation
variance obeys r_{l+1} = e_l r_l + ½ c_l r_l² + η_l, with e_l = d ln g / d ln q (<= 1 here), c_l =
q² g''/g, and η_l of mean 0 and variance κ_l / N, κ_l = Var f² / (E f²)² (the average of N i.i.d.
units); so V_{l+1} = e_l² V_l + κ_l/N and the bias b_{l+1} = e_l b_l + ½ c_l V_l, starting from
V_0 = 2/N_in (the input's norm) and b_0 = 0.  We allow 2|b_l| + 1/N (the next order).  For the
gradient, grad_var[l] = Π_{m>=l} chi_m; a relative error r_m of q_m moves ln chi_m by ε_m r_m (ε =
d ln chi / d ln q), so the second-order bias of ln grad_var is bounded by Σ|ε_m||b_m| + (Σ|ε_m| √V_m)²;
the next order adds (L - l) / N.
"""
from __future__ import annotations

import importlib
import math

import numba
import numpy as np
import pytest

import naive_propagate as ref
import rinit_fast as rf
from rinit_fast import scheme_table as schemes
from rinit_fast._meanfield import activation_fn, gauss_hermite_nodes, gaussian_nodes
from rinit_fast.theory import mean_field
from rinit_fast.kernels.cpu import propagate as kern
from rinit_fast.rng import Purpose, counter_word3, key_words
from rinit_fast.spec import propagate as spec

P = importlib.import_module("rinit_fast.propagate")  # the module (rf.propagate is the function)

N, L = 256, 50
Z = 5.0


# --- the finite-width error model (module docstring) ----------------------------------------------
def _e_f2(act, q):
    f, _ = activation_fn(act)
    z, w = gaussian_nodes(q)
    return float(w @ f(math.sqrt(q) * z) ** 2)


def _chi(act, wv, q):
    _, df = activation_fn(act)
    z, w = gaussian_nodes(q)
    return wv * float(w @ df(math.sqrt(q) * z) ** 2)


def _kappa(act, q):
    f, _ = activation_fn(act)
    z, w = gaussian_nodes(q)
    f2 = f(math.sqrt(q) * z) ** 2
    return float(w @ (f2 * f2)) / float(w @ f2) ** 2 - 1.0


def _error_model(act, wv, width, depth, in_width=None):
    """Mean field, the relative variance V_l of the pre-activation variance, its bias bound, and the
    bias bound of ln grad_var, per layer (module docstring)."""
    in_width = in_width or width
    mf = mean_field(act, wv, 0.0, depth)
    h = 1e-3

    def g(q):
        return wv * _e_f2(act, q)

    def lnchi(q):
        return math.log(_chi(act, wv, q))

    V = np.empty(depth)
    b = np.empty(depth)
    e = np.empty(depth)
    eps = np.empty(depth)
    eps2 = np.empty(depth)
    noise = np.empty(depth)            # variance of the fluctuation added on the way into layer m
    v, bb = 2.0 / in_width, 0.0
    noise[0] = v
    for m, q in enumerate(mf.preact_var):
        V[m], b[m] = v, bb
        gp, g0, gm = g(q * (1 + h)), g(q), g(q * (1 - h))
        e[m] = (gp - gm) / (2 * h * g0)                    # d ln g / d ln q  (<= 1)
        c = (gp - 2 * g0 + gm) / (h * h * g0)               # q² g'' / g
        lp, l0, lm = lnchi(q * (1 + h)), lnchi(q), lnchi(q * (1 - h))
        eps[m] = (lp - lm) / (2 * h)                        # d ln chi / d ln q
        eps2[m] = (lp - 2 * l0 + lm) / (h * h) + eps[m]     # d² ln chi / d (ln q)²
        k = _kappa(act, q) / width
        if m + 1 < depth:
            noise[m + 1] = k
        v, bb = e[m] * e[m] * v + k, e[m] * bb + 0.5 * c * v
    # ln grad_var[l] - ln(mean field) ≈ X_l = Σ_{m>=l} (ε_m r_m + ½ ε2_m r_m²) (+ backward noise of mean 0
    # in linear space); ln E exp X ≈ E X + ½ Var X, with r_m = Σ_{k<=m} (Π_{k<j<=m} e_j) η_k.
    bias_g = np.empty(depth)
    for l in range(depth):
        var = 0.0
        for k in range(depth):
            coef, prod = 0.0, 1.0
            for m in range(k, depth):
                if m > k:
                    prod *= e[m - 1]
                if m >= l:
                    coef += eps[m] * prod
            var += noise[k] * coef * coef
        bias_g[l] = (np.sum(np.abs(eps[l:] * b[l:])) + 0.5 * np.sum(np.abs(eps2[l:]) * V[l:]) + 0.5 * var
                     + (depth - l) / width)
    return mf, V, 2 * np.abs(b) + 1.0 / width, bias_g


def _se(per_network):
    """Standard error of the mean over networks (axis 0)."""
    return per_network.std(axis=0, ddof=1) / math.sqrt(per_network.shape[0])


def _check_preact(r, mf, bias):
    rel = r.preact_var / mf.preact_var - 1.0
    tol = Z * _se(r.per_network.preact_var / mf.preact_var) + bias
    assert np.all(np.abs(rel) <= tol), (np.argmax(np.abs(rel) - tol), rel, tol)


def _check_grad(r, mf, bias_g):
    lg = np.log(r.grad_var / mf.grad_var)
    # delta method: se of ln(mean) = se(mean) / mean
    tol = Z * _se(r.per_network.grad_var) / r.grad_var + bias_g
    assert np.all(np.abs(lg) <= tol), (np.argmax(np.abs(lg) - tol), lg, tol)


# --- mean field -------------------------------------------------------------------------------------
def test_mean_field_closed_forms_and_quadrature():
    m = mean_field("linear", 1.5, 0.25, 6, q0=2.0)
    q = [1.5 * 2.0 + 0.25]
    for _ in range(5):
        q.append(1.5 * q[-1] + 0.25)
    np.testing.assert_allclose(m.preact_var, q, rtol=1e-14)
    np.testing.assert_allclose(m.grad_var, 1.5 ** np.arange(6, 0, -1), rtol=1e-14)
    r = mean_field("relu", 1.0, 0.0, 50)
    np.testing.assert_allclose(r.preact_var, 0.5 ** np.arange(50), rtol=1e-14)
    np.testing.assert_allclose(r.chi, 0.5)
    np.testing.assert_allclose(r.act_mean, np.sqrt(r.preact_var / (2 * np.pi)), rtol=1e-14)
    # the composite rule equals Gauss–Hermite where GH is exact enough (smooth, unsaturated) and closed
    # forms elsewhere
    zh, wh = gauss_hermite_nodes(200)
    for q in (0.01, 0.3, 1.0):
        for act in ("tanh", "sigmoid"):
            f, df = activation_fn(act)
            z, w = gaussian_nodes(q)
            for h in (lambda u: f(u) ** 2, lambda u: df(u) ** 2, f):
                assert abs(w @ h(math.sqrt(q) * z) - wh @ h(math.sqrt(q) * zh)) < 1e-12
    for q in (1e-3, 1.0, 256.0, 1e6):
        z, w = gaussian_nodes(q)
        assert abs(w.sum() - 1.0) < 1e-13
        assert abs(w @ np.abs(math.sqrt(q) * z) - math.sqrt(2 * q / math.pi)) < 1e-11 * math.sqrt(q)
        assert abs(w @ np.maximum(math.sqrt(q) * z, 0) ** 2 - q / 2) < 1e-12 * q
    # tanh, gain 5/3: a non-zero fixed point q* = weight_var · E tanh²(√q* z), with chi > 1 there
    t = mean_field("tanh", (5 / 3) ** 2, 0.0, 200)
    qs = t.preact_var[-1]
    assert abs(qs - (5 / 3) ** 2 * _e_f2("tanh", qs)) < 1e-10 and qs > 1.0 and t.chi[-1] > 1.1


def test_mean_field_errors():
    with pytest.raises(ValueError, match="activation"):
        mean_field("gelu", 1.0, 0.0, 3)
    with pytest.raises(ValueError, match="weight_var"):
        mean_field("tanh", -1.0, 0.0, 3)
    with pytest.raises(ValueError, match="depth"):
        mean_field("tanh", 1.0, 0.0, 0)
    with pytest.raises(TypeError, match="q0"):
        mean_field("tanh", 1.0, 0.0, 3, q0="1")


def test_float32_tanh_and_exp_polynomials_are_accurate():
    """The vectorising float32 activations (kernels/cpu/propagate.py): tanh within 2 ulp, exp within 1 ulp,
    and saturation without overflow."""
    x = np.concatenate([np.linspace(-12, 12, 4001), np.geomspace(1e-30, 20, 2000),
                        -np.geomspace(1e-30, 20, 2000)]).astype(np.float32)
    t = np.array([kern.tanh_f32(v) for v in x], dtype=np.float32)
    want = np.tanh(x.astype(np.float64))
    assert np.all(np.abs(t - want) <= 2 * np.spacing(np.abs(want).astype(np.float32)))
    xe = np.linspace(-87, 88, 4001).astype(np.float32)
    e = np.array([kern.exp_f32(v) for v in xe], dtype=np.float32)
    we = np.exp(xe.astype(np.float64))
    assert np.all(np.abs(e - we) <= np.spacing(we.astype(np.float32)))
    assert kern.tanh_f32(np.float32(1e4)) == 1 and kern.tanh_f32(np.float32(-1e4)) == -1
    assert np.isfinite(kern.exp_f32(np.float32(1e4))) and kern.exp_f32(np.float32(-1e4)) > 0


# --- exactness --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,params", [("glorot_normal", {}), ("glorot_uniform", {}), ("uniform01", {}),
                                         ("variance_scaling", {}), ("constant", {"value": 0.3})])
def test_regenerated_weights_equal_rf_sample_bit_for_bit(name, params, dtype):
    """Layer l of network j as the kernel generates it, panel by panel (odd sizes, panels not aligned to
    Philox blocks), is rf.sample(scheme, (width, fan_in), seed, start=j, layer=l)."""
    typ = np.dtype(dtype).type
    k0, k1 = key_words(11)
    for width, fan_in, pr in [(7, 5, 3), (6, 13, 4), (9, 9, 9), (5, 3, 1), (1, 1, 1)]:
        d = schemes.resolve(name, width, fan_in, 1.3, **params)
        code, mul, add = spec.family(d.family)
        got = np.empty((3, width, fan_in), dtype)
        kern.layer_weights(got, k0, k1, np.uint64(4), counter_word3(Purpose.WEIGHTS, 2), code, typ(mul),
                           typ(add), typ(d.scale), pr)
        want = rf.sample(name, (width, fan_in), batch=3, seed=11, start=4, layer=2, dtype=dtype, gain=1.3,
                         **params)
        assert got.tobytes() == want.tobytes(), (width, fan_in, pr)


_REF_CASES = ([("glorot_normal", {}, act, dt) for act in ("linear", "tanh", "sigmoid", "relu")
               for dt in ("float32", "float64")]
              + [(s, p, "tanh", "float64") for s, p in (("glorot_uniform", {}), ("uniform01", {}),
                                                        ("variance_scaling", {}), ("constant", {"value": 0.3}),
                                                        ("orthogonal", {}), ("he_normal", {"mode": "fan_out"}))]
              + [("orthogonal", {}, "relu", "float32")])


@pytest.mark.parametrize("name,params,act,dtype", _REF_CASES)
def test_matches_float64_reference(name, params, act, dtype):
    """Odd sizes, a wider input than the layers' fan-in, biases, start > 0: per-network statistics equal
    the float64 reference to the dtype's rounding (float64: the same numbers summed in another order)."""
    kw = dict(gain=1.2, bias_std=0.3, dtype=dtype, in_width=3)
    r = rf.propagate(name, 6, 4, activation=act, batch=2, samples=3, seed=5, start=7, **kw, **params)
    want = ref.propagate(name, 6, 4, act, 2, 3, seed=5, start=7, **kw, **params)
    rtol = 1e-11 if dtype == "float64" else 2e-5
    atol = 1e-13 * np.abs(want).max()
    np.testing.assert_allclose(r.network_stats(), want, rtol=rtol, atol=atol)
    for k, v in ref.pool(want).items():
        np.testing.assert_allclose(getattr(r, k), v, rtol=rtol, atol=atol, err_msg=k)
    assert r.config["scheme"] == schemes.canonical(name) and r.grad_var.shape == (4,)


def test_generated_equals_materialised_and_checkpointing_changes_nothing():
    for name, dtype in (("glorot_normal", "float32"), ("he_uniform", "float64")):
        kw = dict(activation="tanh", samples=5, seed=3, dtype=dtype, bias_std=0.1, in_width=37)
        a = rf.propagate(name, 70, 9, batch=3, **kw)
        b = P._propagate_materialised(name, 70, 9, batch=3, **kw)
        assert np.array_equal(a.network_stats(), b.network_stats())
        for ck in (1, 2, 4):
            c = rf.propagate(name, 70, 9, batch=3, checkpoint=ck, **kw)
            assert c.config["checkpoint"] == ck
            assert np.array_equal(a.network_stats(), c.network_stats())


def test_thread_count_and_batch_split_invariance():
    kw = dict(activation="relu", samples=6, seed=9, bias_std=0.2)
    a = rf.propagate("he_normal", 40, 7, batch=5, **kw)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = rf.propagate("he_normal", 40, 7, batch=5, **kw)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a.network_stats(), one.network_stats())
    parts = [rf.propagate("he_normal", 40, 7, batch=nb, start=s, **kw) for s, nb in ((0, 2), (2, 1), (3, 2))]
    both = rf.PropagateResult.combine(parts)
    assert np.array_equal(a.network_stats(), both.network_stats())
    for f in ref.FIELDS:
        assert np.array_equal(getattr(a, f), getattr(both, f)), f
    other = rf.propagate("he_normal", 40, 7, batch=1, start=5, **dict(kw, seed=10))
    with pytest.raises(ValueError, match="different configurations"):
        rf.PropagateResult.combine([a, other])


# --- the science ------------------------------------------------------------------------------------
def test_tanh_glorot_decays_like_mean_field_and_gradients_shrink_toward_the_input():
    r = rf.propagate("glorot_normal", N, L, activation="tanh", batch=32, samples=8, seed=1)
    mf, V, bias, bias_g = _error_model("tanh", 1.0, N, L)
    _check_preact(r, mf, bias)
    _check_grad(r, mf, bias_g)
    # the recursion's activation variance decays slowly toward 0, like 1/(2l)
    lay = np.arange(1, L + 1)
    assert np.all(np.abs(mf.act_var[19:] * 2 * lay[19:] - 1) < 0.06)
    tol = Z * _se(r.per_network.act_var) + bias * r.act_var
    assert np.all(np.abs(r.act_var - mf.act_var) <= tol)
    assert np.all(np.diff(r.act_var) < 0)
    # gradients shrink toward the input: chi < 1 at every layer, grad_var[0] ≈ 1.5% of grad_var[-1]
    assert np.all(mf.chi < 1) and r.grad_var[0] < 0.03 * r.grad_var[-1]


def test_tanh_gain_5_3_reaches_the_fixed_point_and_gradients_grow_toward_the_input():
    gain = rf.gain("tanh")
    r = rf.propagate("glorot_normal", N, L, activation="tanh", batch=32, samples=8, seed=2, gain=gain)
    mf, V, bias, bias_g = _error_model("tanh", gain ** 2, N, L)
    _check_preact(r, mf, bias)
    _check_grad(r, mf, bias_g)
    # mean field: settled at the non-zero fixed point after ~10 layers
    qstar = mean_field("tanh", gain ** 2, 0.0, 500).preact_var[-1]
    assert np.all(np.abs(mf.preact_var[15:] / qstar - 1) < 1e-3) and 1.1 < qstar < 1.3
    tol = Z * _se(r.per_network.act_var[:, 15:]) + bias[15:] * r.act_var[15:]
    assert np.all(np.abs(r.act_var[15:] - mf.act_var[-1]) <= tol)
    # chi > 1: gradients grow toward the input, by ~6e3 over 50 layers
    assert np.all(mf.chi[15:] > 1.15)
    assert r.grad_var[0] > 1e3 * r.grad_var[-1]


def test_relu_glorot_halves_the_second_moment_and_he_keeps_it():
    for name, wv in (("glorot_normal", 1.0), ("he_normal", 2.0)):
        r = rf.propagate(name, N, L, activation="relu", batch=32, samples=8, seed=3)
        mf, V, bias, bias_g = _error_model("relu", wv, N, L)
        assert np.all(bias <= 1.5 / N)      # relu (like linear) is unbiased at any width: c = 0
        np.testing.assert_allclose(mf.preact_var, wv * (wv / 2) ** np.arange(L), rtol=1e-13)
        _check_preact(r, mf, bias)
        _check_grad(r, mf, bias_g)
        m2 = r.preact_second_moment
        if name == "glorot_normal":
            # halved at every layer: the mean ratio over 49 layers is 1/2 within the end-point errors
            assert abs(math.log(m2[-1] / m2[0]) / (L - 1) - math.log(0.5)) < 0.02
        else:
            assert np.all((m2 > 1.0) & (m2 < 4.0))   # of order one (2 in theory) over 50 layers


@pytest.mark.parametrize("name", ["uniform01", "normal"])
def test_tanh_with_unscaled_weights_saturates_at_once(name):
    r = rf.propagate(name, N, L, activation="tanh", batch=4, samples=8, seed=4)
    # pre-activation variance of order width from layer 0 on: E z_0² = N·E[w²] = N/3 (uniform01), N (normal)
    assert np.all(r.preact_var >= N / 10)
    e0 = N / 3 if name == "uniform01" else N
    assert abs(r.preact_var[0] / e0 - 1) <= Z * _se(r.per_network.preact_var[:, 0] / e0) + 2 / N
    # |tanh| near 1 everywhere: mean field at q = N (normal) gives 0.965, at q = N/3 0.940
    assert np.all(r.act_abs_mean > 0.9)
    if name == "normal":
        mf = mean_field("tanh", float(N), 0.0, L)
        np.testing.assert_allclose(r.act_abs_mean, mf.act_abs_mean, atol=Z * _se(r.per_network.act_abs_mean).max()
                                   + 2 / N)


def test_constant_init_makes_every_unit_of_a_layer_identical():
    for act in ("tanh", "relu"):
        r = rf.propagate("constant", 64, 10, activation=act, batch=2, samples=6, seed=5, value=1 / 64)
        assert np.all(r.preact_var > 0) and np.all(r.act_var > 0)      # inputs differ ...
        assert np.all(r.preact_unit_var <= 1e-10 * r.preact_var)        # ... units do not
        assert np.all(r.act_unit_var <= 1e-10 * r.act_var)
    ctrl = rf.propagate("glorot_normal", 64, 10, activation="tanh", batch=2, samples=6, seed=5)
    assert np.all(ctrl.act_unit_var > 0.5 * ctrl.act_var)
    z = rf.propagate("zeros", 64, 10, activation="tanh", batch=2, samples=6, seed=5)
    for f in ("preact_var", "act_var", "act_abs_mean", "grad_var"):
        assert np.all(getattr(z, f) == 0), f


def test_sigmoid_glorot_factor_4_keeps_gradients_orders_of_magnitude_larger():
    assert rf.gain("sigmoid", convention="glorot") == 4.0
    out = {}
    for gain in (1.0, 4.0):
        r = rf.propagate("glorot_normal", N, L, activation="sigmoid", batch=16, samples=8, seed=6, gain=gain)
        mf, V, bias, bias_g = _error_model("sigmoid", gain ** 2, N, L)
        _check_grad(r, mf, bias_g)
        out[gain] = (r, mf)
    # mean field: 6.7e-21 against 1.6e-63 at the input
    assert math.log10(out[4.0][1].grad_var[0] / out[1.0][1].grad_var[0]) > 40
    assert math.log10(out[4.0][0].grad_var[0] / out[1.0][0].grad_var[0]) > 35


@pytest.mark.slow
@pytest.mark.parametrize("act,name,wv", [("linear", "glorot_normal", 1.0), ("tanh", "glorot_normal", 1.0),
                                         ("relu", "he_normal", 2.0)])
def test_monte_carlo_matches_mean_field_at_width_1024(act, name, wv):
    r = rf.propagate(name, 1024, L, activation=act, batch=12, samples=4, seed=7)
    mf, V, bias, bias_g = _error_model(act, wv, 1024, L)
    _check_preact(r, mf, bias)
    _check_grad(r, mf, bias_g)


# --- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(width=0), ValueError, "width"),
    (dict(depth=0), ValueError, "depth"),
    (dict(depth=-3), ValueError, "depth"),
    (dict(width=2.5), TypeError, "width"),
    (dict(activation="gelu"), ValueError, "activation"),
    (dict(activation=None), TypeError, "activation"),
    (dict(samples=0), ValueError, "samples"),
    (dict(samples=2 ** 24 + 1), ValueError, "samples"),
    (dict(batch=0), ValueError, "batch"),
    (dict(in_width=0), ValueError, "in_width"),
    (dict(bias_std=-1.0), ValueError, "bias_std"),
    (dict(bias_std=float("nan")), ValueError, "bias_std"),
    (dict(checkpoint=0), ValueError, "checkpoint"),
    (dict(dtype="float16"), TypeError, "dtype"),
    (dict(scheme="complex_glorot"), ValueError, "complex"),
    (dict(scheme="nope"), ValueError, "unknown scheme"),
    (dict(scheme="constant"), TypeError, "value"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(start=2 ** 32), ValueError, "start"),
    (dict(depth=2 ** 24 + 1), ValueError, "depth"),
    (dict(backend="tpu"), ValueError, "backend"),
])
def test_errors(kwargs, exc, match):
    args = dict(scheme="glorot_normal", width=8, depth=3, activation="tanh")
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        rf.propagate(args.pop("scheme"), args.pop("width"), args.pop("depth"), **args)


def test_memory_is_checked_before_running():
    with pytest.raises(MemoryError, match="propagate"):
        rf.propagate("glorot_normal", 2 ** 20, 3, activation="tanh", samples=2 ** 20, checkpoint=3)


# --- the spec: planning, and the pieces every backend shares ----------------------------------------
def test_spec_families_panels_segments():
    assert spec.family("normal") == (spec.NORMAL, 1.0, 0.0)
    assert spec.family("uniform") == (spec.UNIFORM, 2.0, -1.0)        # U[-1, 1) = 2u - 1
    assert spec.family("uniform01") == (spec.UNIFORM, 1.0, 0.0)
    assert spec.family("truncated")[0] == spec.TRUNCATED and spec.family("constant")[0] == spec.CONSTANT
    assert spec.family("orthogonal") is None
    for name in rf.schemes():              # every real scheme's draw family is known to the spec
        d = schemes.resolve(name, 256, 256, **({"value": 1.0} if name == "constant" else {}))
        if not d.complex:
            assert d.family == "orthogonal" or spec.family(d.family) is not None, name
    # panels: 16 Ki values, at least 64 rows (never more than the layer), at most 2**20 values
    assert spec.panel_rows(256, 256) == 64 and spec.panel_rows(64, 64) == 64 and spec.panel_rows(29, 11) == 29
    assert spec.panel_rows(100, 16) == 100 and spec.panel_rows(4096, 4096) == 64
    assert spec.panel_rows(2 ** 15, 2 ** 15) == 32 and spec.panel_rows(8, 2 ** 21) == 1
    # segments: all layers stored within the budget, else ceil(sqrt(depth)); an explicit checkpoint wins
    assert spec.segment_length(50, spec.STORE_BUDGET) == 50
    assert spec.segment_length(50, spec.STORE_BUDGET + 1) == 8 and spec.segment_length(49, 2 ** 40) == 7
    assert spec.segment_length(1, 2 ** 40) == 1
    assert spec.segment_length(50, 0, checkpoint=7) == 7 and spec.segment_length(5, 0, checkpoint=9) == 5


def test_spec_plan_decides_path_memory_and_streams():
    kw = dict(batch=5, start=3, width=40, in_width=24, depth=9, samples=6, activation="relu",
              scale0=0.2, scale=0.25, bias_std=0.1, dtype="float64", seed=2 ** 40 + 7)
    p = spec.plan(backend="cpu", draw_family="uniform", inflight=2, **kw)
    assert (p.path, p.family, p.mul, p.add, p.act) == (spec.GENERATED, spec.UNIFORM, 2.0, -1.0, 3)
    assert (p.k0, p.k1) == (7, 2 ** 8) and (p.k0, p.k1) == tuple(int(k) for k in key_words(2 ** 40 + 7))
    assert (p.c3w, p.c3b, p.c3x, p.c3g) == tuple(counter_word3(q, 0) for q in (
        Purpose.WEIGHTS, Purpose.PROP_BIAS, Purpose.PROP_INPUT, Purpose.PROP_GRAD))
    assert p.seg == 9 and p.nseg == 1 and p.chunk == 2 and p.maxw == 40 and p.stats_shape == (5, 9, spec.NSTAT)
    per = spec.cpu_network_bytes(40, 24, 9, 6, 9, p.pr, 8)
    assert p.nbytes == 2 * per + 8 * spec.NSTAT * 5 * 9
    # the bytes of one network: its arrays, counted from what the kernel allocates
    assert per == 8 * (6 * (3 * 40 + 40 + 9 * 40) + 40 + p.pr * 40) + 8 * spec.NCOL * 6
    o = spec.plan(backend="cpu", draw_family="orthogonal", **kw)
    assert o.path == spec.MATERIALISED and o.seg == 9 and o.chunk == 5
    c = spec.plan(backend="cuda", draw_family="normal", checkpoint=2, free_bytes=10 ** 9, **kw)
    assert c.seg == 2 and c.nseg == 5 and c.chunk == 5
    tight = spec.plan(backend="cuda", draw_family="normal", free_bytes=3 * spec.cuda_network_bytes(40, 24, 9, 6, 9, 8),
                      **kw)
    assert tight.chunk == 1            # at most half the free device memory per chunk
    words = spec.cuda_plan_words(nb=2, width=40, in_width=24, samples=6, family=1, k0=7, k1=256, c2_start=3, act=3,
                                 seg=9, depth=9, c3x=5, c3g=6)
    assert words[spec.PLAN["MAXW"]] == 40 and words[spec.PLAN["C2START"]] == 3 and len(words) == len(spec.PLAN_FIELDS)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blas_gemm_binding_matches_numpy(dtype):
    """The panel GEMMs (SciPy's cython_blas gemm called from jitted code) against float64 NumPy, at odd
    sizes, with and without accumulation (beta = 1)."""
    rng = np.random.default_rng(8)
    tol = 1e-5 if dtype == "float32" else 1e-13
    for nr, fi, S in [(1, 1, 1), (7, 5, 3), (13, 64, 1), (64, 256, 33)]:
        W = rng.standard_normal((nr, fi)).astype(dtype)
        X = rng.standard_normal((fi + 2, S)).astype(dtype)          # rows past fi are not read
        Z = np.full((nr + 3, S), np.nan, dtype)
        kern.mm_forward(W.ctypes.data, X, Z, 2, nr, fi)               # Z[2:2+nr] = W @ X[:fi]
        want = W.astype(np.float64) @ X[:fi].astype(np.float64)
        np.testing.assert_allclose(Z[2:2 + nr], want, rtol=tol, atol=tol * np.abs(want).max())
        assert np.isnan(Z[:2]).all() and np.isnan(Z[2 + nr:]).all()
        U = rng.standard_normal((nr + 4, S)).astype(dtype)
        G2 = rng.standard_normal((fi, S)).astype(dtype)
        g0 = G2.astype(np.float64)
        kern.mm_backward(W.ctypes.data, U, G2, 4, nr, fi, True)       # G2 += W^T @ U[4:4+nr]
        want = g0 + W.astype(np.float64).T @ U[4:4 + nr].astype(np.float64)
        np.testing.assert_allclose(G2, want, rtol=tol, atol=tol * np.abs(want).max())
        kern.mm_backward(W.ctypes.data, U, G2, 4, nr, fi, False)      # G2 = W^T @ U[4:4+nr]
        want = W.astype(np.float64).T @ U[4:4 + nr].astype(np.float64)
        np.testing.assert_allclose(G2, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.slow
def test_first_call_compiles_only_what_it_uses(tmp_path):
    """A float32 tanh run with Glorot normal weights, in a fresh process with an empty Numba cache, compiles
    its own network kernel and activation for float32 only: no other family's fill, no other activation,
    no float64, no materialised-path kernel; a second process loads it all from the cache."""
    import os
    import subprocess
    import sys
    code = (
        "import rinit_fast as rf\n"
        "from rinit_fast.kernels.cpu import propagate as k, stream\n"
        "rf.propagate('glorot_normal', 12, 3, activation='tanh', batch=2, samples=3)\n"
        "net = [(f, a, len(v._by_sig)) for (f, a), v in k.NETWORKS.items() if v._by_sig]\n"
        "acts = [n for n, d in k.ACTIVATE.items() if d.signatures]\n"
        "given = [g for g in [k.given_inputs_k, k.given_backward_k, *k.GIVEN_FORWARD.values()] if g._by_sig]\n"
        "fills = [f.__name__ for f in (stream.fill_uniform_f32, stream.fill_truncated_f32, stream.fill_normal_f64)\n"
        "         if f.signatures]\n"
        "hits = sum(sum(v.stats.cache_hits.values()) for v in k.NETWORKS[(0, 1)]._by_sig.values())\n"
        "print(net, acts, len(given), fills, hits)\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split() == ["[(0,", "1,", "1)]", "[1]", "0", "[]", "0"], first.stdout
    again = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, check=True)
    assert again.stdout.split()[-1] == "1", again.stdout        # loaded from the cache
