"""rf.calibrate: the p-quantile of rho over the engine's matrices, with a distribution-free interval."""
import math

import numpy as np
import pytest
from scipy import stats

import rinit_fast as rf
from rinit_fast.calibrate import quantile_ci


def _rho_lapack(scheme, n, samples, seed, start=0, dtype="float32"):
    W = rf.sample(scheme, n, batch=samples, seed=seed, start=start, dtype=dtype)
    return np.abs(np.linalg.eigvals(W.astype(np.complex128 if np.iscomplexobj(W) else np.float64))).max(-1)


def test_quantile_ci_exact_coverage():
    """The interval's stated coverage is the binomial probability, computed here independently."""
    x = np.arange(1.0, 101.0)  # x_(k) = k
    for p, conf in [(0.9, 0.95), (0.5, 0.9), (0.1, 0.99)]:
        lo, hi, cov = quantile_ci(x, p, conf)
        l, u = int(lo), int(hi)  # 1-based ranks
        want = sum(math.comb(100, k) * p ** k * (1 - p) ** (100 - k) for k in range(l, u))
        assert cov == pytest.approx(want, rel=1e-9) and cov >= conf
        # the smallest interval of that shape: moving either end inwards loses the level
        if l < 100:
            assert sum(math.comb(100, k) * p ** k * (1 - p) ** (100 - k) for k in range(l + 1, u)) < conf
    lo, hi, _ = quantile_ci(np.arange(5.0), 0.99, 0.95)  # too few samples: open-ended
    assert hi == math.inf


def test_quantile_ci_covers_at_the_stated_rate():
    """Monte Carlo of the coverage on a known law (exponential), fixed seed: at least the level, within
    3 binomial standard deviations."""
    rng = np.random.default_rng(123)
    reps, N, p = 2000, 60, 0.9
    q = stats.expon.ppf(p)
    hit = 0
    for _ in range(reps):
        lo, hi, _ = quantile_ci(rng.exponential(size=N), p, 0.95)
        hit += lo <= q <= hi
    assert hit / reps >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / reps)


@pytest.mark.parametrize("scheme", ["glorot_normal", "complex_glorot"])
def test_calibrate_matches_lapack_at_small_n(scheme):
    """Valid at n <= 163 (no asymptotic formula there): the scale is the p-quantile of rho over the
    stream's matrices, as LAPACK computes it independently."""
    n, p, N = 24, 0.8, 80
    cal = rf.calibrate(n, p, samples=N, seed=5, scheme=scheme)
    ref = _rho_lapack(scheme, n, N, 5)
    np.testing.assert_allclose(cal.radii, ref, rtol=1e-4)
    assert cal.scale == pytest.approx(np.quantile(ref, p), rel=1e-4)
    assert cal.ci_low <= cal.scale <= cal.ci_high and cal.coverage >= 0.95 and float(cal) == cal.scale
    # P(rho(W/s) > 1) = 1 - p on the sample: rescaled_glorot with s = scale, same stream (common numbers)
    if scheme == "glorot_normal":
        W = rf.sample("rescaled_glorot", n, batch=N, seed=5, s=cal.scale).astype(np.float64)
        frac = np.mean(np.abs(np.linalg.eigvals(W)).max(-1) > 1.0)
        assert abs(frac - (1 - p)) <= 2.0 / N
        assert cal.prob_exceeds_one() == pytest.approx(frac, abs=1.5 / N)


def test_calibrate_start_and_exact():
    a = rf.calibrate(20, 0.5, samples=30, seed=9, method="exact")
    b = rf.calibrate(20, 0.5, samples=20, seed=9, start=10, method="exact")
    np.testing.assert_array_equal(a.radii[10:], b.radii)  # matrix index, not position in the batch
    assert a.unconverged == 0 and a.method == "exact"


def test_calibrate_errors():
    with pytest.raises(ValueError, match="probability"):
        rf.calibrate(20, 1.5)
    with pytest.raises(ValueError, match="samples"):
        rf.calibrate(20, 0.5, samples=0)
    with pytest.raises(ValueError, match="method"):
        rf.calibrate(20, 0.5, method="arnoldi")
    with pytest.raises(ValueError, match="unknown scheme"):
        rf.calibrate(20, 0.5, scheme="glorot")
    with pytest.raises(TypeError):
        rf.calibrate(20.0, 0.5)
