"""rinit_fast.jax against the real JAX (CPU build in CI)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import rinit_fast as rf
from rinit_fast import scheme_table as schemes

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax._src.nn.initializers import _compute_fans  # noqa: E402  (JAX's own fan rule, to compare)

import rinit_fast.jax as rj  # noqa: E402

JI = jax.nn.initializers


def _bits(a):
    a = np.ascontiguousarray(np.asarray(a))
    return a.view({4: np.uint32, 8: np.uint64, 2: np.uint16}[a.dtype.itemsize])


LAYOUTS = [  # (shape, in_axis, out_axis, batch_axis): Dense, Conv1D/2D/3D (JAX's HWIO), grouped axes, batch
    ((7, 5), -2, -1, ()), ((3, 4, 6), -2, -1, ()), ((3, 3, 16, 32), -2, -1, ()), ((2, 3, 2, 4, 5), -2, -1, ()),
    ((4, 3, 5), (0, 1), -1, ()), ((6, 4, 5), -2, -1, 0), ((5, 2, 3, 4), 1, (2, 3), ()),
]


@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis", LAYOUTS)
def test_fans_equal_jax(shape, in_axis, out_axis, batch_axis):
    fi, fo = _compute_fans(shape, in_axis, out_axis, batch_axis)
    assert schemes.jax_fans(shape, in_axis, out_axis, batch_axis) == (fo, fi)


VS = [("glorot_normal", 1.0, "fan_avg", "truncated_normal"), ("glorot_uniform", 1.0, "fan_avg", "uniform"),
      ("lecun_normal", 1.0, "fan_in", "truncated_normal"), ("lecun_uniform", 1.0, "fan_in", "uniform"),
      ("he_normal", 2.0, "fan_in", "truncated_normal"), ("he_uniform", 2.0, "fan_in", "uniform"),
      ("xavier_normal", 1.0, "fan_avg", "truncated_normal"), ("kaiming_uniform", 2.0, "fan_in", "uniform")]


@pytest.mark.parametrize("dtype", ["float32"])
@pytest.mark.parametrize("shape,in_axis,out_axis,batch_axis", LAYOUTS[:4] + LAYOUTS[5:6])
@pytest.mark.parametrize("name,scale,mode,dist", VS)
def test_values_equal_rf_sample(name, scale, mode, dist, shape, in_axis, out_axis, batch_axis, dtype):
    """The JAX key (s) is seed s, position (0, 0); JAX's fans; the values are rf.sample's."""
    init = getattr(rj, name)(in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis)
    got = init(jax.random.key(2026), shape, dtype)
    assert got.shape == shape and got.dtype == jnp.dtype(dtype)
    fans = schemes.jax_fans(shape, in_axis, out_axis, batch_axis)
    ref = rf.sample("variance_scaling", shape, seed=2026, fans=fans, scale=scale, mode=mode, distribution=dist,
                    dtype=dtype)
    np.testing.assert_array_equal(_bits(got), _bits(ref))


def test_other_initializers_equal_rf_sample():
    k = jax.random.PRNGKey(31)  # the raw uint32[2] key gives the same seed as jax.random.key(31)
    shape = (9, 4)
    cases = [
        (rj.normal(0.5), "normal", {"std": 0.5}),
        (rj.uniform(3.0), "uniform01", {"gain": 3.0}),
        (rj.truncated_normal(0.2), "normal", {"std": 0.2, "truncated": True}),
        (rj.truncated_normal(0.2, lower=-10.0, upper=10.0), "normal", {"std": 0.2}),
        (rj.constant(-0.25), "constant", {"value": -0.25}),
        (rj.variance_scaling(0.5, "fan_geo_avg", "normal"), "variance_scaling",
         {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "normal", "fans": (4, 9)}),
        (rj.half_glorot(), "half_glorot", {"fans": (4, 9)}),
        (rj.initializer("he_normal", mode="fan_out", gain=2.0, index=5, layer=2), "he_normal",
         {"mode": "fan_out", "gain": 2.0, "start": 5, "layer": 2, "fans": (4, 9)}),
    ]
    for init, scheme, params in cases:
        np.testing.assert_array_equal(_bits(init(k, shape)), _bits(rf.sample(scheme, shape, seed=31, **params)),
                                      err_msg=scheme)
    assert np.array_equal(rj.zeros(k, (2, 3)), np.zeros((2, 3))) and np.array_equal(rj.ones(k, (2,)), np.ones(2))
    r = rj.rescaled_glorot(s=1.2)(k, (30, 30))
    np.testing.assert_array_equal(_bits(r), _bits(rf.sample("rescaled_glorot", 30, seed=31, s=1.2)))
    b = rj.normal(2.0)(k, (7,))  # 1-D: the (1, n) stream
    np.testing.assert_array_equal(_bits(b), _bits(rf.sample("normal", (1, 7), seed=31, std=2.0)[0]))
    c = rj.initializer("complex_glorot")(k, (6, 6), jnp.complex64)
    np.testing.assert_array_equal(np.asarray(c), rf.sample("complex_glorot", 6, seed=31, fans=(6, 6)))


def test_key_to_seed_rule():
    assert rj.key_seed(jax.random.key(42)) == 42 == rj.key_seed(jax.random.PRNGKey(42))
    words = np.array([3, 5], np.uint32)
    assert rj.key_seed(jax.random.wrap_key_data(words)) == (3 << 32) | 5
    a = rj.normal(1.0)(jax.random.wrap_key_data(words), (4, 4))
    np.testing.assert_array_equal(np.asarray(a), rf.sample("normal", 4, seed=(3 << 32) | 5))
    k1, k2 = jax.random.split(jax.random.key(0))
    assert not np.array_equal(rj.normal()(k1, (4,)), rj.normal()(k2, (4,)))


@pytest.mark.parametrize("init", [rj.glorot_normal(), rj.he_uniform(), rj.orthogonal(), rj.truncated_normal(),
                                  rj.initializer("rescaled_glorot", s=1.1)])
def test_jit_equals_eager(init):
    k = jax.random.key(9)
    eager = init(k, (16, 16))
    jitted = jax.jit(lambda key: init(key, (16, 16)))(k)
    np.testing.assert_array_equal(_bits(eager), _bits(jitted))
    # keys derived inside jit (as Flax does): still the same bits as eager on the derived key
    sub = jax.random.fold_in(k, 3)
    inside = jax.jit(lambda key: init(jax.random.fold_in(key, 3), (16, 16)))(k)
    np.testing.assert_array_equal(_bits(init(sub, (16, 16))), _bits(inside))


def test_flax_style_kernel_init_call():
    """Flax calls kernel_init(key, shape, param_dtype) with the shape of its (in, out) kernel."""
    kernel_init = rj.lecun_normal()
    params = {"Dense_0": {"kernel": kernel_init(jax.random.key(1), (12, 7), jnp.float32)}}
    k = params["Dense_0"]["kernel"]
    ref = rf.sample("variance_scaling", (12, 7), seed=1, fans=(7, 12), mode="fan_in")
    np.testing.assert_array_equal(np.asarray(k), ref)


@pytest.mark.parametrize("shape,col", [((6, 4), -1), ((4, 6), -1), ((3, 4, 5), -1), ((3, 4, 5), 0), ((2, 8, 3), 1)])
def test_orthogonal_column_axis(shape, col):
    q = np.asarray(rj.orthogonal(scale=2.0, column_axis=col)(jax.random.key(4), shape)).astype(np.float64)
    m = np.moveaxis(q, col, -1).reshape(-1, shape[col]) / 2.0
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    assert np.abs(gram - np.eye(min(m.shape))).max() < 1e-5
    ref = rf.sample("orthogonal", m.shape, seed=4, gain=2.0)
    np.testing.assert_array_equal(np.moveaxis(q, col, -1).reshape(m.shape), ref.astype(np.float64))


def _ks_two_sample(ours, theirs, alpha=1e-4):
    n, m = ours.size, theirs.size
    d = stats.ks_2samp(ours, theirs).statistic
    crit = math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))
    assert d < crit, (d, crit)


@pytest.mark.parametrize("name,args,shape", [
    ("glorot_normal", (), (300, 200)), ("glorot_uniform", (), (3, 3, 64, 100)), ("he_normal", (), (300, 200)),
    ("lecun_uniform", (), (300, 200)), ("normal", (0.3,), (300, 200)), ("uniform", (2.0,), (300, 200)),
    ("truncated_normal", (1.5,), (300, 200)),
])
def test_law_equals_jax(name, args, shape):
    """Each initialiser draws from the same law as jax.nn.initializers' own: 60,000 values of each
    (fixed keys), two-sample KS at level 1e-4."""
    ours = np.asarray(getattr(rj, name)(*args)(jax.random.key(77), shape)).ravel()[:60000]
    theirs = np.asarray(getattr(JI, name)(*args)(jax.random.key(78), shape)).ravel()[:60000]
    _ks_two_sample(ours.astype(np.float64), theirs.astype(np.float64))


def _bf16_reference(x32):
    u = x32.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def test_float16_bfloat16_round_the_float32_draw():
    k = jax.random.key(12)
    x = np.asarray(rj.he_normal()(k, (40, 30), jnp.float32))
    h = np.asarray(rj.he_normal()(k, (40, 30), jnp.float16))
    np.testing.assert_array_equal(h.view(np.uint16), x.astype(np.float16).view(np.uint16))
    b = rj.he_normal(dtype=jnp.bfloat16)(k, (40, 30))
    assert b.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(b).view(np.uint16), _bf16_reference(x))
    bj = jax.jit(lambda key: rj.he_normal()(key, (40, 30), jnp.bfloat16))(k)
    np.testing.assert_array_equal(np.asarray(bj).view(np.uint16), _bf16_reference(x))


def test_float64_under_x64():
    with jax.enable_x64(True):
        k = jax.random.key(3)
        a = rj.glorot_uniform()(k, (5, 6), jnp.float64)
        assert a.dtype == jnp.float64
        ref = rf.sample("variance_scaling", (5, 6), seed=3, fans=(6, 5), mode="fan_avg", distribution="uniform",
                        dtype="float64")
        np.testing.assert_array_equal(np.asarray(a), ref)
        assert rj.normal()(k, (2, 2)).dtype == jnp.float64  # JAX's default float under x64


@pytest.mark.parametrize("call,exc,match", [
    (lambda k: rj.glorot_normal()(k, (5,)), ValueError, "1-dimensional"),
    (lambda k: rj.orthogonal()(k, (5,)), ValueError, "at least a 2D shape"),
    (lambda k: rj.orthogonal(column_axis=3)(k, (5, 4)), ValueError, "column_axis=3 is out of range"),
    (lambda k: rj.glorot_normal(in_axis=4)(k, (5, 4)), ValueError, "in_axis=4 is out of range"),
    (lambda k: rj.truncated_normal(lower=-1.0)(k, (5, 4)), ValueError, "lower=-2, upper=2"),
    (lambda k: rj.glorot_normal()(k, (5, 4), jnp.int32), TypeError, "floating dtype"),
    (lambda k: rj.glorot_normal()(k, (5, 4), jnp.complex64), TypeError, "cannot produce complex64"),
    (lambda k: rj.variance_scaling(1.0, "fan_max", "normal")(k, (5, 4)), ValueError, "mode must be one of"),
    (lambda k: rj.constant(np.ones(3))(k, (5, 4)), ValueError, "scalar value"),
    (lambda k: rj.normal()(jax.random.split(k, 3), (5, 4)), TypeError, "single JAX PRNG key"),
    (lambda k: rj.normal()(jax.random.key(0, impl="rbg"), (5, 4)), ValueError, "threefry2x32"),
    (lambda k: rj.initializer("glorot"), ValueError, "unknown scheme 'glorot'"),
    (lambda k: rj.rescaled_glorot()(k, (200, 100)), ValueError, "square"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(jax.random.key(0))


def test_zero_sized_shapes():
    z = rj.glorot_normal()(jax.random.key(0), (0, 4))
    assert z.shape == (0, 4)


def test_eager_cpu_draw_is_handed_to_jax_without_a_copy(monkeypatch):
    bufs = []
    real = rj._aligned_empty

    def spy(shape, dtype):
        bufs.append(real(shape, dtype))
        return bufs[-1]

    monkeypatch.setattr(rj, "_aligned_empty", spy)
    y = rj.he_normal()(jax.random.key(5), (33, 20))
    assert bufs[-1].ctypes.data % 64 == 0
    assert y.unsafe_buffer_pointer() == bufs[-1].ctypes.data
    np.testing.assert_array_equal(np.asarray(y), rf.sample("variance_scaling", (33, 20), seed=5, fans=(20, 33),
                                                           scale=2.0))
