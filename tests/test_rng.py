"""The random stream contract (docs/rng.md): Philox known answers, the word → float mappings against the
plain-NumPy reference bit for bit, pinned test vectors, polynomial accuracy, and stream separation."""
import numpy as np
import pytest

import naive
import rinit_fast as rf
from rinit_fast.rng import Purpose

KAT = [  # Random123's kat_vectors (docs/sources.md)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def test_philox_known_answers():
    ctr = np.array([k[0] for k in KAT], np.uint32)
    key = np.array([k[1] for k in KAT], np.uint32)
    out = rf.rng.philox4x32(ctr, key)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, np.array([k[2] for k in KAT], np.uint32))
    # the reference implementation agrees too
    for c, k, want in KAT:
        got = naive.philox4x32_10(*[np.uint64(x) for x in c], *[np.uint64(x) for x in k])
        assert [int(g) for g in got] == list(want)


def test_philox_broadcast_and_errors():
    ctr = np.arange(40, dtype=np.uint32).reshape(2, 5, 4)
    key = np.array([7, 9], np.uint32)
    out = rf.rng.philox4x32(ctr, key)
    assert out.shape == (2, 5, 4)
    ref = naive.philox4x32_10(*[ctr[..., i].astype(np.uint64) for i in range(4)], np.uint64(7), np.uint64(9))
    np.testing.assert_array_equal(out, np.stack(ref, -1).astype(np.uint32))
    with pytest.raises(TypeError, match="counter must be a uint32"):
        rf.rng.philox4x32(ctr.astype(np.int64), key)
    with pytest.raises(ValueError, match="4 words"):
        rf.rng.philox4x32(ctr[..., :3], key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_stream_equals_numpy_reference_bit_for_bit(dtype, kind):
    rng = np.random.default_rng()  # fresh seeds every run: the property holds for all of them
    fn = rf.rng.normals if kind == "normal" else rf.rng.uniforms
    cases = [(0, 0, 0, 0, 1), (2 ** 64 - 1, Purpose.USER, 2 ** 32 - 1, 2 ** 24 - 1, 37)]
    for _ in range(3):
        cases.append((int(rng.integers(0, 2 ** 63)) * 2 + 1, int(rng.choice(list(Purpose))),
                      int(rng.integers(0, 2 ** 32)), int(rng.integers(0, 2 ** 24)),
                      int(rng.integers(1, 5000))))
    for seed, purpose, index, sub, count in cases:
        got = fn(seed, purpose, index=index, sub=sub, count=count, dtype=dtype)[0, 0]
        want = naive.stream(seed, index, naive.c3_word(purpose, sub), count, kind, dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8),
                                      err_msg=f"seed={seed} purpose={purpose} index={index} sub={sub}")


# Pinned test vectors (docs/rng.md): values 0..5 of seed 42, purpose WEIGHTS, index 3, sub 0.
# A change here is a change of the stream and needs a STREAM_VERSION bump.
PINNED = {
    ("float32", "uniform"): [0x3D251A60, 0x3EE42914, 0x3F3918C6, 0x3F19205B, 0x3F05A8DF, 0x3DEC8D88],
    ("float32", "normal"): [0xC018D15D, 0x3F595C0B, 0xBF283174, 0xBEEE7978, 0x3F5A5035, 0x3F41B3B5],
    ("float64", "uniform"): [0x3FA4A34D5C8522A0, 0x3FE72318CA64816F, 0x3FE0B51BE47646C6,
                             0x3FE5362604FEA91B, 0x3FD48A70672C536C, 0x3FE043E1A27A623B],
    ("float64", "normal"): [0xBFDB5953803E23D2, 0xC003FBD02F35D46A, 0xBFE2FDD562CAE2C0,
                            0xBFEF2636DF147B26, 0xBFF816E059935D11, 0xBFB415D6E3FA4E2D],
}


@pytest.mark.parametrize("key", sorted(PINNED))
def test_pinned_vectors(key):
    dtype, kind = key
    fn = rf.rng.normals if kind == "normal" else rf.rng.uniforms
    v = fn(42, Purpose.WEIGHTS, index=3, count=6, dtype=dtype)[0, 0]
    bits = v.view(np.uint32 if dtype == "float32" else np.uint64)
    assert [int(b) for b in bits] == PINNED[key]
    assert rf.rng.STREAM_VERSION == 1
    # and sample() reads exactly this stream
    w = rf.sample("normal" if kind == "normal" else "uniform01", (2, 3), seed=42, start=3, dtype=dtype)
    np.testing.assert_array_equal(w.reshape(-1), v)


def _ulp_err(approx, exact, dtype):
    exact = np.asarray(exact, np.float64)
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(approx.astype(np.float64) - exact) / spacing


def test_polynomials_accuracy():
    rng = np.random.default_rng(0)
    # log on (0, 1] for the dyadic arguments Box-Muller uses, plus a dense sweep near 1 and powers of 2
    k = np.concatenate([rng.integers(1, 2 ** 24 + 1, 200_000), np.arange(2 ** 24 - 5000, 2 ** 24 + 1),
                        2 ** np.arange(25)])
    u32 = k.astype(np.float32) * np.float32(2.0 ** -24)
    err = _ulp_err(naive.log_f32(u32), np.log(u32.astype(np.float64)), np.float32)
    assert err.max() <= 2.0, err.max()
    k53 = rng.integers(1, 2 ** 53, 200_000, dtype=np.int64)
    u64 = k53.astype(np.float64) * 2.0 ** -53
    u64 = np.concatenate([u64, 1.0 - np.arange(1, 5000) * 2.0 ** -53, [1.0]])
    # x86 long double (64-bit mantissa) is exact enough to measure float64 ulps
    ref = np.log(u64.astype(np.longdouble))
    got = naive.log_f64(u64).astype(np.longdouble)
    err64 = np.abs(got - ref) / np.spacing(np.abs(ref).astype(np.float64)).astype(np.longdouble)
    err64 = np.where(u64 == 1.0, 0.0, err64)
    assert np.all(naive.log_f64(np.array([1.0])) == 0.0)
    assert float(err64.max()) <= 1.0, float(err64.max())


def test_sincos_accuracy():
    k = np.concatenate([np.arange(0, 2 ** 24, 97), 2 ** 21 * np.arange(9) - 1, 2 ** 21 * np.arange(8),
                        2 ** 21 * np.arange(8) + 1])
    k = k[(k >= 0) & (k < 2 ** 24)].astype(np.uint64)
    s, c = naive.sincos_2pi_f32(k)
    ang = 2 * np.pi * k.astype(np.float64) / 2 ** 24
    # absolute error in units of float32 epsilon (values in [-1, 1]; near zeros relative ulp is moot)
    assert np.abs(s - np.sin(ang)).max() < 4 * 2.0 ** -24
    assert np.abs(c - np.cos(ang)).max() < 4 * 2.0 ** -24
    k53 = (np.random.default_rng(1).integers(0, 2 ** 53, 100_000, dtype=np.int64)).astype(np.uint64)
    s, c = naive.sincos_2pi_f64(k53)
    ang = 2 * np.pi * (k53.astype(np.float64) / 2 ** 53)
    # float64 angle itself carries ~2**-53 * 2pi rounding: compare with that allowance
    assert np.abs(s - np.sin(ang)).max() < 8 * 2.0 ** -53
    assert np.abs(c - np.cos(ang)).max() < 8 * 2.0 ** -53


def test_uniform_ranges_and_normal_tails():
    u = rf.rng.uniforms(5, Purpose.USER, count=1 << 20, dtype="float32")[0, 0]
    assert u.min() >= 0.0 and u.max() < 1.0
    # float32 normals are bounded by sqrt(-2 log 2**-24) = 5.77 by construction
    z = rf.rng.normals(5, Purpose.USER, count=1 << 20, dtype="float32")[0, 0]
    assert np.abs(z).max() <= np.sqrt(-2 * np.log(2.0 ** -24)) + 1e-5


def _corr(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_stream_overlap(dtype):
    """Matrix 0 vs 1, seed 0 vs 1, purpose A vs B, sub 0 vs 1: uncorrelated (|corr| < 5/sqrt(N)),
    and never equal values.  Also the lag-1 correlation inside one stream."""
    N = 1 << 18
    bound = 5.0 / np.sqrt(N)
    base = rf.rng.normals(0, Purpose.WEIGHTS, index=0, count=N, dtype=dtype)[0, 0]
    others = {
        "matrix 1": rf.rng.normals(0, Purpose.WEIGHTS, index=1, count=N, dtype=dtype)[0, 0],
        "seed 1": rf.rng.normals(1, Purpose.WEIGHTS, index=0, count=N, dtype=dtype)[0, 0],
        "purpose INPUTS": rf.rng.normals(0, Purpose.INPUTS, index=0, count=N, dtype=dtype)[0, 0],
        "sub 1": rf.rng.normals(0, Purpose.WEIGHTS, index=0, sub=1, count=N, dtype=dtype)[0, 0],
        "lag 1": np.roll(base, 1),
    }
    for name, o in others.items():
        r = _corr(base, o)
        assert abs(r) < bound, (name, r, bound)
        if name != "lag 1":
            assert np.count_nonzero(base == o) < 4, name  # equal values only by coincidence
    # the two halves of a Box-Muller pair are uncorrelated too, including in their squares
    zc, zs = base[0::2], base[1::2]
    assert abs(_corr(zc, zs)) < 5.0 / np.sqrt(N // 2)
    assert abs(_corr(zc ** 2, zs ** 2)) < 5.0 / np.sqrt(N // 2)


def test_stream_errors():
    with pytest.raises(ValueError, match="seed must be in"):
        rf.rng.normals(-1, Purpose.WEIGHTS)
    with pytest.raises(ValueError, match="seed must be in"):
        rf.rng.normals(2 ** 64, Purpose.WEIGHTS)
    with pytest.raises(ValueError, match="start \\+ batch"):
        rf.rng.normals(0, Purpose.WEIGHTS, index=2 ** 32 - 1, n_index=2)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        rf.rng.normals(0, Purpose.WEIGHTS, sub=2 ** 24)
    with pytest.raises(TypeError, match="float32 or float64"):
        rf.rng.normals(0, Purpose.WEIGHTS, dtype="float16")
    with pytest.raises(ValueError):
        rf.rng.normals(0, 77)
