"""The [lyapunov] study measure: every cell equals a direct rf.lyapunov call on the same stream positions
(the cell's matrices drawn by rf.sample at the study's seed and sample index), a gain sweep uses common
random numbers, and configuration errors come before any work."""
import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.studies import ConfigError, run_study

CFG = {"seed": 3, "samples": 3, "chunk": 2, "widths": [9, 6], "dtype": "float64",
       "schemes": ["glorot_normal"], "sweep": {"gain": [0.8, 2.0]},
       "lyapunov": {"k": 4, "steps": 60, "warmup": 10, "nonlinearity": "tanh", "realizations": 2}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return run_study(CFG, tmp_path_factory.mktemp("lyap") / "s")


def test_cells_equal_direct_calls(study):
    r = study
    assert r.dims["lyap_exponents"] == ("scheme", "width", "gain", "sample", "lyap_realization", "exponent")
    assert r["lyap_exponents"].shape == (1, 2, 2, 3, 2, 4)
    for cell in r.cells():
        W = rf.sample("glorot_normal", cell.width, batch=3, seed=3, dtype="float64", gain=cell.values["gain"])
        d = rf.lyapunov(W, 4, steps=60, warmup=10, nonlinearity="tanh", realizations=2, seed=3)
        np.testing.assert_array_equal(r.sel("lyap_exponents", cell.label, cell.width, **cell.values), d.exponents)
        np.testing.assert_array_equal(r.sel("lyap_kaplan_yorke", cell.label, cell.width, **cell.values),
                                      d.kaplan_yorke_dimension)


def test_gain_sweep_shifts_linear_exponents_by_log_ratio(tmp_path):
    """Common random numbers: the linear recurrence's exponents at gains g1, g2 differ by exactly
    log(g2/g1) (to rounding), since both cells read the same underlying variates."""
    cfg = dict(CFG, widths=[8], sweep={"gain": [0.5, 1.5]},
               lyapunov={"k": 8, "steps": 40, "warmup": 5, "nonlinearity": "linear"})
    r = run_study(cfg, tmp_path / "s")
    e = r["lyap_exponents"][0, 0]       # (gain, sample, realization, exponent)
    np.testing.assert_allclose(e[1] - e[0], np.log(3.0), atol=1e-9)


@pytest.mark.parametrize("table,match", [
    ({"k": 4}, "needs steps"),
    ({"steps": 10, "warmup": 10}, "warmup must be <"),
    ({"steps": 10, "k": 50}, "smallest width"),
    ({"steps": 10, "nonlinearity": "sigmoid"}, "nonlinearity"),
    ({"steps": 10, "inputs": "uniform"}, "inputs"),
    ({"steps": 10, "bogus": 1}, "bogus"),
])
def test_config_errors_before_any_work(tmp_path, table, match):
    with pytest.raises(ConfigError, match=match):
        run_study(dict(CFG, lyapunov=table), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_complex_schemes_refused(tmp_path):
    with pytest.raises(ConfigError, match="complex"):
        run_study(dict(CFG, schemes=["complex_glorot"], sweep={}), tmp_path / "s")
