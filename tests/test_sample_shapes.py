"""rf.sample for weights of any rank (issue 12): PyTorch's fan rule, JAX's axes rule through ``fans=``,
values in the C order of the tensor, orthogonal for any rank and for rectangular matrices."""
from __future__ import annotations

import math

import numpy as np
import pytest

import naive
import rinit_fast as rf
from rinit_fast import scheme_table as schemes

FAMILY_SCHEMES = [("glorot_normal", {}), ("he_uniform", {"mode": "fan_out"}), ("lecun_normal", {}),
                  ("variance_scaling", {"mode": "fan_avg", "distribution": "uniform", "scale": 2.0}),
                  ("half_glorot", {}), ("uniform01", {}), ("normal", {"std": 0.3}), ("uniform", {"a": 2.0}),
                  ("constant", {"value": -1.5})]


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,params", FAMILY_SCHEMES)
@pytest.mark.parametrize("shape", [(5, 3, 2), (4, 3, 3, 3), (2, 1, 5, 1, 3), (1, 1, 1)])
def test_any_rank_is_the_c_order_stream(name, params, shape, dtype):
    """Entry i of the C-order flattening is value i of matrix start + j's stream, scaled by the scheme's
    scale for PyTorch's fans, on a fresh seed and odd sizes."""
    seed = 0x5EED_0000 + len(shape)
    got = rf.sample(name, shape, batch=2, seed=seed, start=9, dtype=dtype, gain=1.2, **params)
    assert got.shape == (2, *shape) and got.dtype == np.dtype(dtype)
    fo, fi = schemes.torch_fans(shape)
    d = schemes.resolve(name, fo, fi, 1.2, **params)
    n = math.prod(shape)
    for j in range(2):
        ref = naive.sample(d.family, d.scale, 1, n, seed, 9 + j, dtype)
        np.testing.assert_array_equal(_bits(got[j].reshape(1, n)), _bits(ref), err_msg=f"{name} {shape} j={j}")
    single = rf.sample(name, shape, seed=seed, start=10, dtype=dtype, gain=1.2, **params)
    np.testing.assert_array_equal(_bits(single), _bits(got[1]))


def test_two_dimensional_shapes_are_unchanged_by_the_rank_rule():
    """A 2-D (or int) shape: fans are the shape itself; the result is the 2-D C-order stream (the golden
    file pins the bits; here the rule that a (n, m, 1) shape gives the same values as (n, m))."""
    for name, params in FAMILY_SCHEMES:
        a = rf.sample(name, (6, 7), seed=3, **params)
        b = rf.sample(name, (6, 7, 1), seed=3, **params)
        np.testing.assert_array_equal(_bits(a), _bits(b.reshape(6, 7)))
    assert schemes.torch_fans(5) == (5, 5) and schemes.torch_fans((6, 7)) == (6, 7)


def test_truncated_normal_any_rank_and_the_normal_truncated_parameter():
    shape = (6, 5, 3)
    for dtype in ("float32", "float64"):
        got = rf.sample("variance_scaling", shape, seed=77, start=4, dtype=dtype, mode="fan_out")
        d = schemes.resolve("variance_scaling", *schemes.torch_fans(shape), mode="fan_out")
        ref = naive.truncated(d.scale, 1, math.prod(shape), 77, 4, dtype)
        np.testing.assert_array_equal(_bits(got.reshape(1, -1)), _bits(ref))
        # rf's "normal" with truncated=True: std·z, z cut at ±2 by the same redraw rule
        t = rf.sample("normal", (40, 50), seed=77, start=4, dtype=dtype, std=0.5, truncated=True)
        np.testing.assert_array_equal(_bits(t), _bits(naive.truncated(0.5, 40, 50, 77, 4, dtype)))
        assert np.abs(t).max() <= 1.0
    assert math.isclose(rf.scheme_std("normal", 4, std=0.5, truncated=True), 0.5 * schemes.TRUNC_STD)
    with pytest.raises(TypeError, match="truncated must be True or False"):
        rf.sample("normal", 4, truncated="yes")


@pytest.mark.parametrize("shape,fans", [
    ((8, 4, 3, 3), (72, 36)), ((16, 2, 5), (80, 10)), ((3, 7, 2, 2, 2), (24, 56)), ((9, 4), (9, 4)),
])
def test_torch_fans_and_scheme_std(shape, fans):
    assert schemes.torch_fans(shape) == fans
    fo, fi = fans
    assert math.isclose(rf.scheme_std("he_normal", shape), math.sqrt(2 / fi))
    assert math.isclose(rf.scheme_std("he_uniform", shape, mode="fan_out"), math.sqrt(2 / fo))
    assert math.isclose(rf.scheme_std("glorot_uniform", shape), math.sqrt(2 / (fi + fo)))
    assert math.isclose(rf.scheme_std("variance_scaling", shape, mode="fan_geo_avg", distribution="normal"),
                        math.sqrt(1 / math.sqrt(fi * fo)))
    rows, cols = shape[0], math.prod(shape[1:])
    assert math.isclose(rf.scheme_std("orthogonal", shape), 1 / math.sqrt(max(rows, cols)))


def test_explicit_fans_replace_the_torch_rule():
    """fans=(fan_out, fan_in) (e.g. JAX's layout rule) sets the scale; the values stay the stream's."""
    shape = (3, 3, 16, 32)  # a JAX conv kernel (kh, kw, in, out)
    jf = schemes.jax_fans(shape)
    assert jf == (288, 144)
    a = rf.sample("glorot_normal", shape, seed=5, fans=jf)
    b = rf.sample("normal", shape, seed=5, std=math.sqrt(2 / (288 + 144)))
    np.testing.assert_array_equal(a, b)
    c = rf.sample("he_normal", shape, seed=5, fans=(10, 2.5))  # non-integer fans (JAX's rule allows them)
    np.testing.assert_array_equal(c, rf.sample("normal", shape, seed=5, std=math.sqrt(2 / 2.5)))


def test_jax_fans_rule():
    assert schemes.jax_fans((5, 7)) == (7, 5)
    assert schemes.jax_fans((3, 4, 5, 6), in_axis=(0, 1), out_axis=-1) == (6 * 5, 12 * 5)
    assert schemes.jax_fans((2, 5, 4, 6), in_axis=-2, out_axis=-1, batch_axis=0) == (6 * 5, 4 * 5)
    with pytest.raises(ValueError, match="in_axis=5 is out of range"):
        schemes.jax_fans((3, 4), in_axis=5)
    with pytest.raises(ValueError, match="names axis 1 twice"):
        schemes.jax_fans((3, 4, 5), batch_axis=(1, -2))


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("shape", [(4, 3, 2), (12, 2, 2), (5, 5, 1), (3, 2, 5, 2), (2, 9), (9, 2), (1, 6)])
def test_orthogonal_any_rank_and_rectangular(shape, dtype, tol):
    """torch.nn.init.orthogonal_'s shaping: the (shape[0], prod(shape[1:])) matrix is semi-orthogonal
    (orthonormal rows when wide, columns when tall) and equals Q·sign(diag R) of the QR of the stream's
    Gaussian matrix (of its transpose when wide), checked against NumPy's QR of the same matrix."""
    q = rf.sample("orthogonal", shape, batch=2, seed=21, start=3, dtype=dtype)
    assert q.shape == (2, *shape)
    rows, cols = shape[0], math.prod(shape[1:])
    g = rf.sample("normal", shape, batch=2, seed=21, start=3, dtype=dtype).reshape(2, rows, cols)
    for j in range(2):
        m = q[j].reshape(rows, cols).astype(np.float64)
        gram = m @ m.T if rows < cols else m.T @ m
        assert np.abs(gram - np.eye(min(rows, cols))).max() < 8 * tol
        gg = g[j].astype(np.float64)
        qq, rr = np.linalg.qr(gg.T if rows < cols else gg)
        ref = qq * np.sign(np.diag(rr))
        ref = ref.T if rows < cols else ref
        np.testing.assert_allclose(m, ref, atol=50 * tol)
    q3 = rf.sample("orthogonal", shape, seed=21, start=4, dtype=dtype, gain=2.0)
    np.testing.assert_allclose(q3, 2.0 * q[1], rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)


def test_out_and_complex_for_any_rank():
    buf = np.empty((2, 4, 3, 2), np.float32)
    assert rf.sample("he_normal", (4, 3, 2), batch=2, seed=1, out=buf) is buf
    np.testing.assert_array_equal(buf, rf.sample("he_normal", (4, 3, 2), batch=2, seed=1))
    c = rf.sample("complex_glorot", (4, 4, 3), seed=2)
    assert c.dtype == np.complex64 and c.shape == (4, 4, 3)
    flat = rf.sample("complex_glorot", (4, 4, 3), seed=2).reshape(1, -1)
    np.testing.assert_array_equal(c.reshape(1, -1), flat)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: rf.sample("glorot_normal", (5,)), ValueError, "2 or more dimensions"),
    (lambda: rf.sample("glorot_normal", (5, 3, 0)), ValueError, r"shape\[2\] \(receptive field\) must be >= 1"),
    (lambda: rf.sample("glorot_normal", (5, 3, 2.0)), TypeError, r"shape\[2\] \(receptive field\) must be an integer"),
    (lambda: rf.sample("glorot_normal", (4, 4), fans=(3,)), ValueError, "fans must be a pair"),
    (lambda: rf.sample("glorot_normal", (4, 4), fans=(3, 0)), ValueError, "fan_in must be finite and > 0"),
    (lambda: rf.sample("glorot_normal", (4, 4), fans=(3, "a")), TypeError, "fan_in must be a number"),
    (lambda: rf.sample("rescaled_glorot", (200, 100, 3)), ValueError, "square"),
    (lambda: rf.sample("he_normal", (4, 4, 4), mode="fan_sum"), ValueError, "fan_geo_avg"),
    (lambda: rf.sample("glorot_normal", (4, 3, 2), batch=2, out=np.empty((2, 4, 6), np.float32)),
     ValueError, r"out has shape \(2, 4, 6\), expected \(2, 4, 3, 2\)"),
])
def test_shape_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
