"""Sweeps and the [propagate] measure: every cell equals direct API calls on the same stream positions,
a sweep uses common random numbers, the mean field is stored beside the Monte Carlo, chunking and
resuming do not change a bit, and configuration errors are clear and come before any work."""
import math
import os

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.calibrate import radii
from rinit_fast.studies import ConfigError, StudyError, run_study
from rinit_fast.studies import config as cfgmod
from rinit_fast.studies import execute, storage
from rinit_fast.studies import uncertainty as U
from rinit_fast.studies.measures import PROP_FIELDS, rate_layers

PROP = {"seed": 5, "samples": 5, "chunk": 2, "widths": [12, 7],
        "schemes": ["glorot_normal", {"scheme": "normal", "label": "n", "std": 0.2}],
        "sweep": {"gain": [0.5, 1.0, 2.5], "bias_std": [0.0, 0.3]},
        "propagate": {"activations": ["tanh", "relu"], "depth": 5, "inputs": 3}}


def _same(a, b):
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), k


@pytest.fixture(scope="module")
def prop(tmp_path_factory):
    return run_study(PROP, tmp_path_factory.mktemp("prop") / "s", chunk=5)


def test_propagate_cells_equal_direct_calls(prop):
    r = prop
    assert r.dims["propagate_grad_var"] == ("scheme", "width", "gain", "bias_std", "sample", "activation", "layer")
    assert r["propagate_grad_var"].shape == (2, 2, 3, 2, 5, 2, 5)
    assert r.sweeps == {"gain": [0.5, 1.0, 2.5], "bias_std": [0.0, 0.3]}
    for cell in r.cells():
        for a, act in enumerate(["tanh", "relu"]):
            d = rf.propagate(cell.entry["scheme"], cell.width, 5, activation=act, batch=5, samples=3, seed=5,
                             gain=cell.values["gain"], bias_std=cell.values["bias_std"], **cell.entry["params"])
            for f in PROP_FIELDS:
                got = r.sel(f"propagate_{f}", cell.label, cell.width, **cell.values)[:, a]
                assert np.array_equal(got, getattr(d.per_network, f)), (cell, act, f)


def test_propagate_meanfield_beside(prop):
    r = prop
    for cell in r.cells():
        std = rf.scheme_std(cell.entry["scheme"], cell.width, cell.gain, **cell.entry["params"])
        for a, act in enumerate(["tanh", "relu"]):
            mf = rf.theory.mean_field(act, cell.width * std ** 2, cell.values["bias_std"] ** 2, 5)
            for f in ("preact_var", "act_var", "chi", "grad_var"):
                np.testing.assert_allclose(r.sel(f"meanfield_{f}", cell.label, cell.width, **cell.values)[a],
                                           getattr(mf, f), rtol=1e-12)
    assert r.dims["meanfield_chi"] == ("scheme", "width", "gain", "bias_std", "activation", "layer")


def test_propagate_in_width_and_nonzero_mean(tmp_path):
    cfg = {"seed": 2, "samples": 3, "widths": [10], "schemes": ["glorot_normal", "uniform01"],
           "propagate": {"activations": ["tanh"], "depth": 4, "inputs": 2, "in_width": 6, "dtype": "float64"}}
    r = run_study(cfg, tmp_path / "s")
    d = rf.propagate("glorot_normal", 10, 4, activation="tanh", batch=3, samples=2, seed=2, in_width=6,
                     dtype="float64")
    assert np.array_equal(r.sel("propagate_grad_var", "glorot_normal", 10)[:, 0], d.per_network.grad_var)
    # the mean field with a (10, 6) first layer: q_0 = in_width * std_0^2, chi_0 = width * std_0^2 * E f'^2
    s0, s = rf.scheme_std("glorot_normal", (10, 6)), rf.scheme_std("glorot_normal", 10)
    mf = rf.theory.mean_field("tanh", 10 * s * s, 0.0, 4, q0=6 * s0 * s0 / (10 * s * s))
    got = r.sel("meanfield_preact_var", "glorot_normal", 10)[0]
    np.testing.assert_allclose(got, mf.preact_var, rtol=1e-12)
    assert math.isclose(got[0], 6 * s0 * s0, rel_tol=1e-12)
    g = r.sel("meanfield_grad_var", "glorot_normal", 10)[0]
    np.testing.assert_allclose(g[1:], mf.grad_var[1:], rtol=1e-12)
    np.testing.assert_allclose(g[0], mf.grad_var[0] * (s0 / s) ** 2, rtol=1e-12)
    # uniform01 has weights of non-zero mean: the mean field does not apply (NaN), the Monte Carlo does
    assert np.isnan(r.sel("meanfield_chi", "uniform01", 10)).all()
    assert np.isfinite(r.sel("propagate_grad_var", "uniform01", 10)).all()


@pytest.mark.slow
def test_chunking_and_resume_with_sweeps(tmp_path, monkeypatch, prop):
    _same(prop, run_study(PROP, tmp_path / "a", chunk=1))
    bad = storage.chunk_name("n", 7, 2, 4, (1, 0))
    assert bad == "n__n7__s1.0__0000000002-0000000004.npz"
    monkeypatch.setenv(execute.FAIL_ENV, bad)
    with pytest.raises(StudyError, match="resume"):
        run_study(PROP, tmp_path / "b", chunk=2)
    monkeypatch.delenv(execute.FAIL_ENV)
    _same(prop, run_study(PROP, tmp_path / "b", chunk=3))


def test_gain_sweep_common_random_numbers(tmp_path):
    """Every value of a sweep reads the same stream positions: the Glorot matrices of a gain sweep are
    one set of underlying variates times the gain, so their radii scale exactly with it."""
    cfg = {"seed": 9, "samples": 4, "widths": [16], "schemes": ["glorot_normal"], "sweep": {"gain": [1.0, 0.5, 3.0]},
           "radius": {"method": "exact"}, "norm": {"method": "exact"}}
    r = run_study(cfg, tmp_path / "s", chunk=3)
    base = rf.sample("glorot_normal", 16, batch=4, seed=9)
    for g in (0.5, 3.0):
        W = rf.sample("glorot_normal", 16, batch=4, seed=9, gain=g)
        # the same normals: W_g / (g std) == W_1 / std up to one float32 rounding of the scale
        # (4 float32 roundings at most: each scale and each product, u = 2**-24)
        np.testing.assert_allclose(W.astype(np.float64) / g, base.astype(np.float64), rtol=4 * 2.0 ** -24 + 1e-15,
                                   atol=0)
        np.testing.assert_allclose(r.sel("radius", gain=g)[0, 0], g * r.sel("radius", gain=1.0)[0, 0], rtol=1e-5)
        np.testing.assert_allclose(r.sel("norm", gain=g)[0, 0], g * r.sel("norm", gain=1.0)[0, 0], rtol=1e-5)
        # and each stored number is the engine's on those matrices
        assert np.array_equal(r.sel("radius", gain=g)[0, 0], radii(W, seed=9, method="exact")[0])
    # a linear stack without bias scales exactly too: preact_var of layer l ~ g^(2(l+1))
    cfg = {"seed": 9, "samples": 3, "widths": [16], "schemes": ["glorot_normal"], "sweep": {"gain": [1.0, 2.0]},
           "propagate": {"activations": ["linear"], "depth": 3, "inputs": 2, "dtype": "float64"}}
    p = run_study(cfg, tmp_path / "p")
    v1, v2 = p.sel("propagate_preact_var", gain=1.0)[0, 0, :, 0], p.sel("propagate_preact_var", gain=2.0)[0, 0, :, 0]
    np.testing.assert_allclose(v2, v1 * 4.0 ** np.arange(1, 4), rtol=1e-12)


def test_scheme_parameter_and_input_scale_sweeps(tmp_path):
    cfg = {"seed": 4, "samples": 3, "widths": [200], "schemes": [{"scheme": "rescaled_glorot", "label": "r"}],
           "sweep": {"c": [0.0, 1.86, 3.0]}, "radius": {}}
    r = run_study(cfg, tmp_path / "c")
    for c in (0.0, 1.86, 3.0):
        W = rf.sample("rescaled_glorot", 200, batch=3, seed=4, c=c)
        assert np.array_equal(r.sel("radius", "r", 200, c=c), radii(W, seed=4)[0])
    cfg = {"seed": 4, "samples": 2, "widths": [6], "schemes": ["glorot_normal"], "sweep": {"input_scale": [0.5, 2.0]},
           "unroll": {"horizons": [2, 4], "realizations": 2, "runs": ["linear", "tanh"]}}
    u = run_study(cfg, tmp_path / "u")
    W = rf.sample("glorot_normal", 6, batch=2, seed=4)
    for s in (0.5, 2.0):
        d = rf.unroll(W, 4, realizations=2, input_scale=s, seed=4, record_every=2)
        assert np.array_equal(u.sel("linear_log_norm", input_scale=s)[0, 0], d.log_norm.astype(np.float64))
        t = rf.unroll(W, 4, realizations=2, input_scale=s, seed=4, record_every=2, nonlinearity="tanh", tangent=True)
        assert np.array_equal(u.sel("tanh_tangent_log_norm", input_scale=s)[0, 0],
                              t.tangent_log_norm.astype(np.float64))


def test_table_intervals(prop):
    rows = prop.table()
    assert len(rows) == 2 * 2 * 3 * 2 * 2  # cells x activations
    row = next(r for r in rows if r["scheme"] == "n" and r["width"] == 12 and r["gain"] == 2.5
               and r["bias_std"] == 0.3 and r["activation"] == "relu")
    gv = prop.sel("propagate_grad_var", "n", 12, gain=2.5, bias_std=0.3)[:, 1]
    assert row["propagate_grad_var_first"] == pytest.approx(gv[:, 0].mean(), rel=1e-14)
    # the jackknife interval of a mean over networks, computed on the log scale
    loo = np.log((gv[:, 0].sum() - gv[:, 0]) / 4)
    se = math.sqrt(4 / 5 * ((loo - loo.mean()) ** 2).sum())
    t = U.t_quantile(5)
    assert row["propagate_grad_var_first_ci_low"] == pytest.approx(math.exp(math.log(gv[:, 0].mean()) - t * se))
    assert row["propagate_grad_var_first_ci_high"] == pytest.approx(math.exp(math.log(gv[:, 0].mean()) + t * se))
    l0, l1 = rate_layers(5)
    want = (math.log(gv[:, l0].mean()) - math.log(gv[:, l1].mean())) / (l1 - l0)
    assert row["propagate_grad_rate"] == pytest.approx(want, rel=1e-12)
    assert row["propagate_grad_rate_ci_low"] < want < row["propagate_grad_rate_ci_high"]
    assert "meanfield_grad_rate" in row and "meanfield_log_chi_last" in row


def test_radius_table_intervals(tmp_path):
    r = run_study({"seed": 1, "samples": 30, "widths": [8], "schemes": ["glorot_normal"], "radius": {"method": "exact"},
                   "unroll": {"horizons": [3], "realizations": 2}}, tmp_path / "s")
    row = r.table()[0]
    x = r.sel("radius", "glorot_normal", 8)
    k = int(np.sum(x > 1.0 + 1e-5))
    assert row["radius_p_gt_1"] == k / 30
    assert (row["radius_p_gt_1_ci_low"], row["radius_p_gt_1_ci_high"]) == U.clopper_pearson(k, 30)
    m, se, lo, hi = U.mean_ci(x)
    assert row["radius_mean_ci_low"] == pytest.approx(x.mean() - U.t_quantile(30) * x.std(ddof=1) / math.sqrt(30))
    assert row["radius_median_ci_low"] <= row["radius_median"] <= row["radius_median_ci_high"]
    per = r.sel("powers_log_norm", "glorot_normal", 8)[..., -1].mean(axis=1)
    assert row["powers_mean_log_norm_T3"] == pytest.approx(per.mean(), rel=1e-14)
    assert row["powers_mean_log_norm_T3_ci_low"] < per.mean() < row["powers_mean_log_norm_T3_ci_high"]


@pytest.mark.parametrize("change, match", [
    ({"sweep": {"gain": []}}, r"sweep.gain is empty"),
    ({"schemes": ["normal", "glorot_normal"], "sweep": {"std": [0.1, 0.2]}}, r"sweep.std: scheme 'glorot_normal' \(glorot_normal\) does not take the parameter 'std'"),
    ({"sweep": {"bogus": [1.0]}}, r"sweep.bogus: nothing in this study takes a parameter 'bogus'"),
    ({"propagate": {"depth": 3, "bias_std": -0.1}}, r"propagate.bias_std must be >= 0"),
    ({"sweep": {"bias_std": [0.1, -0.2]}}, r"bias_std"),
    ({"propagate": {"depth": 3, "bias_std": [0.0, 0.1]}}, r"propagate.bias_std must be a number.*\[sweep\]"),
    ({"schemes": [{"scheme": "glorot_normal", "gain": [1, 2]}]}, r"gain.*\[sweep\]"),
    ({"schemes": [{"scheme": "glorot_normal", "gain": 2.0}], "sweep": {"gain": [1.0, 2.0]}}, r"given .* and swept"),
    ({"sweep": {"gain": [1.0, 1.0]}}, r"distinct"),
    ({"sweep": {"layer": [1.0]}}, r"dimensions already"),
    ({"radius": {}}, r"sweep.bias_std varies only \[propagate\]"),
    ({"propagate": {"depth": 3, "activations": ["softplus"]}}, r"unknown activation 'softplus'"),
    ({"schemes": ["complex_glorot"]}, r"real schemes only"),
    ({"sweep": {"gain": {"start": 0, "stop": 1}}}, r"needs num"),
])
def test_config_errors_before_any_work(tmp_path, change, match):
    base = {"seed": 1, "samples": 2, "widths": [8], "schemes": ["glorot_normal", "he_normal"],
            "sweep": {"bias_std": [0.0, 0.1]}, "propagate": {"depth": 3}}
    cfg = dict(base, **change)
    if "radius" in change:
        cfg["propagate"] = base["propagate"]
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=match):
        run_study(cfg, out)
    assert not out.exists()  # refused before the directory (or any kernel) was touched


def test_negative_sweep_value_is_refused_per_cell(tmp_path):
    cfg = {"seed": 1, "samples": 2, "widths": [8], "schemes": ["glorot_normal"], "sweep": {"bias_std": [0.0, -0.2]},
           "propagate": {"depth": 3}}
    with pytest.raises(ConfigError, match=r"bias_std.*-0.2"):
        run_study(cfg, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_sweep_normal_form_and_linspace():
    cfg = cfgmod.normalize({"samples": 1, "widths": [8], "schemes": ["lecun_normal"], "propagate": {"depth": 2},
                            "sweep": {"gain": {"start": 0.5, "stop": 3.0, "num": 6}, "bias_std": [0, 0.1]}})
    assert cfg["sweep"][0] == {"name": "gain", "values": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}
    assert cfg["sweep"][1] == {"name": "bias_std", "values": [0.0, 0.1]}
    assert cfg["schemes"][0]["gain"] is None and cfg["propagate"]["bias_std"] is None
    assert cfgmod.normalize(cfg) == cfg
    assert cfgmod.grid_shape(cfg) == (1, 1, 6, 2)
    # a study without sweeps or [propagate] keeps the identity (and hash) it had before they existed
    old = cfgmod.normalize({"samples": 1, "widths": [8], "schemes": ["glorot_normal"], "radius": {}})
    assert "sweep" not in cfgmod.identity(old) and "propagate" not in cfgmod.identity(old)


def test_example_phase_diagram_config():
    cfg = cfgmod.load_toml(os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples",
                                        "phase_diagram.toml"))
    sw = {s["name"]: s["values"] for s in cfg["sweep"]}
    assert sw["gain"][0] == 0.5 and sw["gain"][-1] == 3.0
    assert sw["bias_std"][0] == 0.0 and sw["bias_std"][-1] == pytest.approx(0.3)
    assert cfg["propagate"]["depth"] >= 100 and cfg["propagate"]["activations"] == ["tanh"]
    assert rf.scheme_std(cfg["schemes"][0]["scheme"], 128, 2.0) == pytest.approx(2.0 / math.sqrt(128))


@pytest.mark.slow
def test_phase_diagram_agrees_with_mean_field_away_from_the_boundary(tmp_path):
    """A few cells of the example far from chi_1 = 1, with its own sizes: the measured per-layer growth rate
    of the gradient variance is within 4 standard errors (jackknife across networks) of the mean field's
    (a 4-sigma band: a false alarm has probability ~1e-4 per cell if the interval is right)."""
    cfg = cfgmod.load_toml(os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples",
                                        "phase_diagram.toml"))
    cfg["sweep"] = [{"name": "gain", "values": [0.5, 0.75, 2.0, 3.0]}, {"name": "bias_std", "values": [0.0, 0.3]}]
    r = run_study(cfg, tmp_path / "pd")
    n = r.samples
    for row in r.table():
        half = (row["propagate_grad_rate_ci_high"] - row["propagate_grad_rate_ci_low"]) / 2
        se = half / U.t_quantile(n)
        assert abs(row["propagate_grad_rate"] - row["meanfield_grad_rate"]) <= 4 * se, row
        # ordered (rate < 0) below the boundary, chaotic (> 0) above it, as the mean field says
        assert np.sign(row["propagate_grad_rate"]) == np.sign(row["meanfield_log_chi_last"])
