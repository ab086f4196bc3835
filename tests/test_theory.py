"""rf.theory against independent computation: closed forms written out here with math, not scipy."""
import math

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast import theory

NS = [164, 200, 256, 500, 1000, 10 ** 5]


def _gamma(n):
    return math.log(n / (2 * math.pi * math.log(n) ** 2))


@pytest.mark.parametrize("n", NS)
def test_gamma_and_edge(n):
    assert theory.gamma_n(n) == pytest.approx(_gamma(n), rel=1e-14)
    centre, width = theory.edge_location(n)
    assert centre == pytest.approx(1 + math.sqrt(_gamma(n) / (4 * n)), rel=1e-14)
    assert width == pytest.approx(1 / math.sqrt(4 * n * _gamma(n)), rel=1e-14)


def test_gamma_array_and_sign():
    g = theory.gamma_n(np.array([163, 164]))
    assert g[0] <= 0 < g[1]
    assert theory.MIN_N == 164


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("field", ["real", "complex"])
def test_radius_law_cdf(n, field):
    """complex: P(rho <= centre + width x) = exp(-e^{-x}); real: exp(-½ e^{-x}) (Rider & Sinclair)."""
    centre, width = theory.edge_location(n)
    law = theory.radius_law(n, field)
    k = 0.5 if field == "real" else 1.0
    for x in [-2.0, -0.5, 0.0, 0.3665, 1.0, 3.0]:
        assert law.cdf(centre + width * x) == pytest.approx(math.exp(-k * math.exp(-x)), rel=1e-12)
    # the median: -log(-log ½) for the complex law, shifted by -log 2 for the real one
    med = -math.log(math.log(2)) + (-math.log(2) if field == "real" else 0.0)
    assert law.median() == pytest.approx(centre + width * med, rel=1e-12)


@pytest.mark.parametrize("field", ["real", "complex"])
def test_prob_exceeds_one(field):
    k = 0.5 if field == "real" else 1.0
    for n in NS:
        centre, width = theory.edge_location(n)
        for s in [1.0, 1.05, theory.rescale_factor(n)]:
            x = (s - centre) / width
            assert theory.prob_exceeds_one(n, field, s) == pytest.approx(1 - math.exp(-k * math.exp(-x)),
                                                                          rel=1e-10, abs=1e-15)
    # the figure of source [1] (docs/sources.md): the complex law predicts about 87% at n = 500
    assert theory.prob_exceeds_one(500, "complex") == pytest.approx(0.8726, abs=1e-3)


def test_rescale_factor():
    c = 0.5772156649015329 + math.pi / math.sqrt(6)
    assert theory.C_DEFAULT == pytest.approx(c, rel=1e-15) and round(c, 3) == 1.860
    for n in NS:
        g = _gamma(n)
        want = 1 + math.sqrt(g / (4 * n)) + c / math.sqrt(4 * g * n)
        assert theory.rescale_factor(n) == pytest.approx(want, rel=1e-14)
        assert theory.rescale_factor(n, c=0.3) == pytest.approx(
            1 + math.sqrt(g / (4 * n)) + 0.3 / math.sqrt(4 * g * n), rel=1e-14)
        for p in [0.5, 0.9, 0.99]:
            cp = -math.log(-math.log(p))
            assert theory.rescale_factor(n, p=p) == pytest.approx(theory.rescale_factor(n, c=cp), rel=1e-14)
            # the p-quantile of the law of each field: P(rho(W/s) > 1) = 1 - p under that law
            for field in ("real", "complex"):
                s = theory.rescale_factor(n, p=p, field=field)
                assert theory.prob_exceeds_one(n, field, s) == pytest.approx(1 - p, rel=1e-9)
    # the scheme uses it: rescaled_glorot std = 1/(sqrt(n) s_n)
    assert rf.scheme_std("rescaled_glorot", 500) == pytest.approx(1 / (math.sqrt(500) *
                                                                        theory.rescale_factor(500)))


@pytest.mark.parametrize("fn", [
    lambda n: theory.rescale_factor(n), lambda n: theory.radius_law(n), lambda n: theory.prob_exceeds_one(n),
    lambda n: theory.edge_location(n), lambda n: theory.rescale_factor(n, p=0.9, field="real")])
@pytest.mark.parametrize("n", [2, 100, 163])
def test_undefined_below_164_raises_never_nan(fn, n):
    with pytest.raises(ValueError, match="calibrate"):
        fn(n)


def test_errors():
    with pytest.raises(ValueError, match="c or p"):
        theory.rescale_factor(500, c=1.0, p=0.9)
    with pytest.raises(ValueError, match="probability"):
        theory.rescale_factor(500, p=1.0)
    with pytest.raises(ValueError, match="field"):
        theory.radius_law(500, "quaternion")
    with pytest.raises(ValueError, match="finite"):
        theory.rescale_factor(500, c=float("nan"))
    with pytest.raises(ValueError, match="positive"):
        theory.prob_exceeds_one(500, s=0.0)
    with pytest.raises(TypeError):
        theory.radius_law(500.5)
