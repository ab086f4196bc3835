"""rinit_fast.torch against the real PyTorch (CPU build in CI; CUDA tests skip without a GPU)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

import rinit_fast as rf
from rinit_fast import scheme_table as schemes

torch = pytest.importorskip("torch")
import rinit_fast.torch as rt  # noqa: E402
from torch import nn  # noqa: E402


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64, 2: np.uint16}[a.dtype.itemsize])


# (function, kwargs, rf scheme, rf params) — the documented mapping
CASES = [
    (rt.xavier_uniform_, {"gain": 1.3}, "glorot_uniform", {"gain": 1.3}),
    (rt.xavier_normal_, {}, "glorot_normal", {}),
    (rt.kaiming_uniform_, {"a": math.sqrt(5)}, "he_uniform",
     {"gain": rf.gain("leaky_relu", math.sqrt(5)) / math.sqrt(2)}),
    (rt.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "relu"}, "he_normal",
     {"mode": "fan_out", "gain": 1.0}),
    (rt.normal_, {"std": 0.02}, "normal", {"std": 0.02}),
    (rt.uniform_, {"a": -0.25, "b": 0.25}, "uniform", {"a": 0.25}),
    (rt.trunc_normal_, {}, "normal", {"truncated": True}),
    (rt.trunc_normal_, {"std": 0.02}, "normal", {"std": 0.02}),  # torch's a=-2, b=2 = ±100 std: no cut
    (rt.half_glorot_, {}, "half_glorot", {}),
    (rt.constant_, {"val": 0.7}, "constant", {"value": 0.7}),
    (rt.zeros_, {}, "zeros", {}),
    (rt.ones_, {}, "constant", {"value": 1.0}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7, 5), (8, 3, 3, 2), (4, 6, 5)])
@pytest.mark.parametrize("fn,kw,scheme,params", CASES, ids=[f"{c[0].__name__}{i}" for i, c in enumerate(CASES)])
def test_values_equal_rf_sample(fn, kw, scheme, params, shape, dtype):
    t = torch.empty(shape, dtype=dtype)
    ptr = t.data_ptr()
    out = fn(t, **kw, seed=1234, index=77, layer=5)
    assert out is t and t.data_ptr() == ptr
    ref = rf.sample(scheme, shape, seed=1234, start=77, layer=5, dtype=str(dtype)[6:], **params)
    np.testing.assert_array_equal(_bits(t.numpy()), _bits(ref))


def test_orthogonal_and_rescaled_equal_rf_sample():
    for shape in [(6, 10), (10, 6), (4, 3, 2, 2)]:
        t = torch.empty(shape)
        rt.orthogonal_(t, gain=2.0, seed=3, index=4)
        np.testing.assert_array_equal(t.numpy(), rf.sample("orthogonal", shape, seed=3, start=4, gain=2.0))
        m = t.reshape(shape[0], -1).double()
        gram = m @ m.T if m.shape[0] < m.shape[1] else m.T @ m
        assert torch.allclose(gram, 4 * torch.eye(min(m.shape), dtype=torch.float64), atol=1e-5)
    t = torch.empty(200, 200, dtype=torch.float64)
    rt.rescaled_glorot_(t, seed=2)
    np.testing.assert_array_equal(t.numpy(), rf.sample("rescaled_glorot", 200, seed=2, dtype="float64"))
    rt.init_(t, "rescaled_glorot", s=1.1, seed=2)
    np.testing.assert_array_equal(t.numpy(), rf.sample("rescaled_glorot", 200, seed=2, s=1.1, dtype="float64"))


def test_init_generic_and_one_dimensional_tensors():
    t = torch.empty(9, 4, 3)
    rt.init_(t, "variance_scaling", seed=8, index=2, mode="fan_avg", distribution="uniform", gain=0.5)
    np.testing.assert_array_equal(t.numpy(), rf.sample("variance_scaling", (9, 4, 3), seed=8, start=2, gain=0.5,
                                                       mode="fan_avg", distribution="uniform"))
    rt.init_(t, "kaiming_normal_", seed=8, nonlinearity="tanh")
    ref = torch.empty(9, 4, 3)
    rt.kaiming_normal_(ref, nonlinearity="tanh", seed=8)
    assert torch.equal(t, ref)
    b = torch.empty(11)  # 1-D: the (1, n) stream, for schemes without fans
    rt.uniform_(b, -1, 1, seed=4, index=6)
    np.testing.assert_array_equal(b.numpy(), rf.sample("uniform", (1, 11), seed=4, start=6)[0])
    s = torch.empty(())
    rt.normal_(s, 2.0, 0.5, seed=4)
    assert s.item() == np.float32(rf.sample("normal", (1, 1), seed=4, std=0.5)[0, 0]) + np.float32(2.0)


def test_fans_equal_torch_for_linear_and_conv_weights():
    mods = [nn.Linear(7, 3), nn.Conv1d(4, 6, 5), nn.Conv2d(3, 8, (3, 2)), nn.Conv3d(2, 5, (2, 3, 4)),
            nn.ConvTranspose2d(3, 4, 3), nn.Conv2d(4, 8, 3, groups=2), nn.Bilinear(3, 4, 5)]
    for m in mods:
        fi, fo = nn.init._calculate_fan_in_and_fan_out(m.weight)
        assert schemes.torch_fans(tuple(m.weight.shape)) == (fo, fi), type(m).__name__


# --- laws: two-sample Kolmogorov–Smirnov against torch's own draws ---------------------------------------
def _ks_two_sample(ours, theirs, alpha=1e-4):
    """Reject equality of laws at level alpha: D > c(alpha)·sqrt((n+m)/(n·m)), c = sqrt(-ln(alpha/2)/2)."""
    n, m = ours.size, theirs.size
    d = stats.ks_2samp(ours, theirs).statistic
    crit = math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))
    assert d < crit, (d, crit)


LAW_CASES = [
    ("xavier_uniform_", {"gain": 1.7}, (300, 200)),
    ("xavier_normal_", {}, (300, 200)),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, (64, 32, 3, 3)),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, (64, 32, 3, 3)),
    ("kaiming_normal_", {"a": 0.2}, (256, 300)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "tanh"}, (20, 30, 5, 5)),
    ("trunc_normal_", {"std": 0.5, "a": -1.0, "b": 1.0}, (300, 200)),
    ("trunc_normal_", {"mean": 1.0, "std": 0.02}, (300, 200)),
    ("normal_", {"mean": -3.0, "std": 2.0}, (300, 200)),
    ("uniform_", {"a": -0.5, "b": 2.0}, (300, 200)),
]


@pytest.mark.parametrize("name,kw,shape", LAW_CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(LAW_CASES)])
def test_law_equals_torch(name, kw, shape):
    """Each function draws from the same law as torch.nn.init's: 60,000 of ours against 60,000 of torch's
    (fixed seeds), two-sample KS at level 1e-4."""
    ours = torch.empty(shape)
    getattr(rt, name)(ours, **kw, seed=20261204)
    gen = torch.Generator().manual_seed(20261204)
    theirs = torch.empty(shape)
    getattr(nn.init, name)(theirs, **kw, generator=gen)
    _ks_two_sample(ours.numpy().ravel()[:60000].astype(np.float64), theirs.numpy().ravel()[:60000].astype(np.float64))


def test_orthogonal_law_equals_torch():
    """The law of two entries of a 6x10 (semi-)orthogonal draw: 3,000 of ours vs 3,000 of torch's.
    Ours as one batch: rt.orthogonal_(t, seed=5, index=j) is matrix j of it (test_values_equal_rf_sample)."""
    ours = torch.from_numpy(rf.sample("orthogonal", (6, 10), batch=3000, seed=5))
    one = torch.empty(6, 10)
    rt.orthogonal_(one, seed=5, index=17)
    assert torch.equal(one, ours[17])
    gen = torch.Generator().manual_seed(5)
    theirs = torch.empty(3000, 6, 10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 3,000 tiny QRs: one thread is 7x faster on this 2-core VM
    try:
        for j in range(3000):
            nn.init.orthogonal_(theirs[j], generator=gen)
    finally:
        torch.set_num_threads(threads)
    for r, c in ((0, 0), (5, 9)):
        _ks_two_sample(ours[:, r, c].double().numpy(), theirs[:, r, c].double().numpy())


# --- dtypes, layouts, autograd ------------------------------------------------------------------------
def _bf16_reference(x32):
    """float32 -> bfloat16 bits, round to nearest-even (finite values)."""
    u = x32.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("name,kw", [("normal_", {"std": 3.0}), ("kaiming_uniform_", {}),
                                     ("trunc_normal_", {}), ("uniform_", {"a": 1.0, "b": 1.001})])
def test_float16_and_bfloat16_round_the_float32_draw_to_nearest_even(name, kw):
    shape = (64, 48)
    f32 = torch.empty(shape)
    getattr(rt, name)(f32, **kw, seed=6, index=1)
    x = f32.numpy()
    h = torch.empty(shape, dtype=torch.float16)
    getattr(rt, name)(h, **kw, seed=6, index=1)
    np.testing.assert_array_equal(h.view(torch.int16).numpy().view(np.uint16), x.astype(np.float16).view(np.uint16))
    b = torch.empty(shape, dtype=torch.bfloat16)
    getattr(rt, name)(b, **kw, seed=6, index=1)
    got = b.view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(got, _bf16_reference(x))
    # the rounding is to nearest: |bf16 - f32| <= half an ulp of bfloat16 (8 significant bits)
    back = b.float().numpy()
    assert np.all(np.abs(back - x) <= np.abs(x) * 2.0 ** -8 + 1e-30)


def test_contiguous_float_tensors_are_filled_without_a_copy(monkeypatch):
    seen = []
    real_sample = rt.sample

    def spy(*args, out=None, **kw):
        seen.append(out)
        return real_sample(*args, out=out, **kw)

    monkeypatch.setattr(rt, "sample", spy)
    t = torch.empty(10, 6, dtype=torch.float64)
    rt.xavier_normal_(t, seed=1)
    assert isinstance(seen[-1], np.ndarray) and seen[-1].ctypes.data == t.data_ptr()
    v = torch.empty(6, 10).t()  # a non-contiguous view: drawn into a buffer, copied in logical C order
    rt.xavier_normal_(v, seed=1)
    assert seen[-1].ctypes.data != v.data_ptr()
    np.testing.assert_array_equal(v.numpy(), rf.sample("glorot_normal", (10, 6), seed=1))
    cl = torch.empty(8, 3, 4, 5).to(memory_format=torch.channels_last)
    rt.kaiming_normal_(cl, seed=2)
    assert not cl.is_contiguous()
    np.testing.assert_array_equal(cl.numpy(), rf.sample("he_normal", (8, 3, 4, 5), seed=2,
                                                        gain=rf.gain("leaky_relu", 0) / math.sqrt(2)))


def test_no_autograd_history():
    lin = nn.Linear(5, 4)
    w = lin.weight
    rt.kaiming_uniform_(w, seed=1)
    assert w.is_leaf and w.grad_fn is None and w.requires_grad
    y = (w * 2.0).sum()
    y.backward()
    assert torch.equal(w.grad, torch.full_like(w, 2.0))
    with torch.enable_grad():
        rt.normal_(w, seed=2)
    assert w.grad_fn is None


@pytest.mark.parametrize("call,exc,match", [
    (lambda: rt.normal_(torch.empty(3, 3, dtype=torch.int64)), TypeError, "dtype torch.int64"),
    (lambda: rt.normal_(torch.empty(3, dtype=torch.bool)), TypeError, "floating tensors"),
    (lambda: rt.normal_(torch.empty(3, 3, device="meta")), ValueError, "meta device"),
    (lambda: rt.normal_(np.empty((3, 3))), TypeError, "must be a torch.Tensor"),
    (lambda: rt.normal_(torch.empty(3, 3), generator=torch.Generator()), TypeError, "generator must be None"),
    (lambda: rt.xavier_normal_(torch.empty(5)), ValueError, "fewer than 2 dimensions"),
    (lambda: rt.orthogonal_(torch.empty(5)), ValueError, "fewer than 2 dimensions"),
    (lambda: rt.trunc_normal_(torch.empty(3, 3), a=-1.0, b=2.0), ValueError, "mean ± 2·std"),
    (lambda: rt.trunc_normal_(torch.empty(3, 3), std=0.0), ValueError, "std must be > 0"),
    (lambda: rt.uniform_(torch.empty(3, 3), 1.0, 0.0), ValueError, "a must be <= b"),
    (lambda: rt.normal_(torch.empty(3, 3), std=-1.0), ValueError, "std must be >= 0"),
    (lambda: rt.kaiming_normal_(torch.empty(3, 3), mode="fan_avg"), ValueError, "'fan_in' or 'fan_out'"),
    (lambda: rt.kaiming_normal_(torch.empty(3, 3), nonlinearity="gelu"), ValueError, "unsupported nonlinearity"),
    (lambda: rt.xavier_normal_(torch.empty(3, 3, dtype=torch.complex64)), TypeError, "cannot produce complex64"),
    (lambda: rt.rescaled_glorot_(torch.empty(200, 100)), ValueError, "square"),
    (lambda: rt.normal_(torch.empty(3, 3), seed=-1), ValueError, "seed must be in"),
    (lambda: rt.normal_(torch.empty(3, 3), index=2 ** 32), ValueError, "index must be < 2\\*\\*32"),
    (lambda: rt.normal_(torch.empty(3, 3), layer=2 ** 24), ValueError, "layer must be < 2\\*\\*24"),
    (lambda: rt.init_(torch.empty(3, 3), "glorot"), ValueError, "unknown scheme 'glorot'"),
    (lambda: rt.init_(torch.empty(3, 3), "normal", mean=1.0), TypeError, "unknown parameter\\(s\\) mean"),
    (lambda: rt.init_(torch.empty(3, 3), "glorot_normal_"), ValueError, "unknown function 'glorot_normal_'"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_complex_tensor_with_the_complex_scheme_and_zero_element_tensors():
    c = torch.empty(6, 6, dtype=torch.complex64)
    rt.init_(c, "complex_glorot", seed=3)
    np.testing.assert_array_equal(c.numpy(), rf.sample("complex_glorot", 6, seed=3))
    e = torch.empty(0, 4)
    assert rt.xavier_normal_(e) is e


# --- initialize(model) ----------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self, extra=False):
        super().__init__()
        self.embed = nn.Embedding(20, 8, padding_idx=3)
        self.conv = nn.Conv1d(8, 12, 3)
        if extra:
            self.inserted = nn.Linear(12, 12)
        self.rnn = nn.LSTM(12, 16, num_layers=2)
        self.norm = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 4, add_bias_kv=True)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5))
        self.bn = nn.BatchNorm1d(5)


def _params(m):
    return {k: v.detach().clone() for k, v in m.named_parameters()}


def test_initialize_draws_each_parameter_at_its_name_position():
    m = Net()
    man = rt.initialize(m, seed=99)
    json.dumps(man)
    assert set(man) == {k for k, _ in m.named_parameters()}
    for name, p in m.named_parameters():
        e = man[name]
        assert e["shape"] == list(p.shape) and e["dtype"] == "float32"
        idx, layer = rt.stream_position(name)
        if e["scheme"] in ("constant", "zeros"):
            continue
        assert e["position"] == {"seed": 99, "purpose": "WEIGHTS", "index": idx, "layer": layer,
                                 "stream_version": rf.rng.STREAM_VERSION}
        ref = rf.sample(e["scheme"], e["sample_shape"], seed=99, start=idx, layer=layer, **e["params"])
        ref = ref.reshape(p.shape) + np.float32(e["shift"]) if e["shift"] else ref.reshape(p.shape)
        for r in e.get("zero_rows", []):
            ref[r] = 0
        np.testing.assert_array_equal(p.detach().numpy(), ref, err_msg=name)
    w = m.embed.weight.detach()
    assert torch.all(w[3] == 0) and man["embed.weight"]["zero_rows"] == [3]
    assert torch.all(m.norm.weight == 1) and torch.all(m.norm.bias == 0) and torch.all(m.bn.weight == 1)
    assert torch.all(m.attn.in_proj_bias == 0) and torch.all(m.attn.out_proj.bias == 0)


def test_default_rules_are_torchs_own_distributions():
    """Manifest std equals the std of torch's own reset_parameters law, and each weight's sample law
    matches torch's (two-sample KS on the bigger tensors)."""
    m = Net()
    ref = Net()  # torch's own initialisation, at construction
    man = rt.initialize(m, seed=5)
    expect = {
        "conv.weight": 1 / math.sqrt(8 * 3) / math.sqrt(3), "conv.bias": 1 / math.sqrt(24) / math.sqrt(3),
        "rnn.weight_hh_l1": 0.25 / math.sqrt(3), "rnn.bias_ih_l0": 0.25 / math.sqrt(3),
        "embed.weight": 1.0, "head.0.weight": 0.25 / math.sqrt(3), "head.2.bias": 1 / math.sqrt(32) / math.sqrt(3),
        "attn.in_proj_weight": math.sqrt(2 / (16 + 48)), "attn.bias_k": math.sqrt(2 / 32),
        "attn.out_proj.weight": 0.25 / math.sqrt(3), "norm.weight": 0.0,
    }
    for k, v in expect.items():
        assert math.isclose(man[k]["std"], v, rel_tol=1e-12), k
    for k in ("rnn.weight_ih_l0", "rnn.weight_hh_l1", "head.0.weight", "attn.in_proj_weight", "embed.weight"):
        a = dict(m.named_parameters())[k].detach().double().numpy().ravel()
        b = dict(ref.named_parameters())[k].detach().double().numpy().ravel()
        _ks_two_sample(a, b)


def test_inserting_or_appending_a_layer_leaves_every_other_parameter_unchanged():
    a, b = Net(), Net(extra=True)
    rt.initialize(a, seed=11)
    rt.initialize(b, seed=11)
    pa, pb = _params(a), _params(b)
    assert set(pb) - set(pa) == {"inserted.weight", "inserted.bias"}
    for k, v in pa.items():
        assert torch.equal(v, pb[k]), k
    s1 = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    s2 = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2), nn.Linear(2, 2))
    rt.initialize(s1, seed=1)
    rt.initialize(s2, seed=1)
    for k, v in _params(s1).items():
        assert torch.equal(v, _params(s2)[k]), k


def test_meta_built_model_equals_eager_and_dtypes():
    eager = Net()
    rt.initialize(eager, seed=21)
    with torch.device("meta"):
        lazy = Net()
    with pytest.raises(ValueError, match="meta device"):
        rt.initialize(lazy, seed=21)
    lazy = lazy.to_empty(device="cpu")
    rt.initialize(lazy, seed=21)
    for k, v in _params(eager).items():
        assert torch.equal(v, _params(lazy)[k]), k
    d64 = Net().double()
    man = rt.initialize(d64, seed=21)
    assert man["conv.weight"]["dtype"] == "float64"
    np.testing.assert_array_equal(d64.conv.weight.detach().numpy(),
                                  rf.sample("he_uniform", (12, 8, 3), seed=21, dtype="float64",
                                            start=man["conv.weight"]["position"]["index"],
                                            layer=man["conv.weight"]["position"]["layer"],
                                            **man["conv.weight"]["params"]))
    h = Net().to(torch.bfloat16)
    rt.initialize(h, seed=21)
    np.testing.assert_array_equal(h.conv.weight.view(torch.int16).numpy().view(np.uint16),
                                  _bf16_reference(eager.conv.weight.detach().numpy()))


def test_rules_first_match_wins_and_fall_back_to_the_defaults():
    m = Net()
    man = rt.initialize(m, seed=3, rules=[
        ("head.*.bias", "zeros_"),
        ("*.bias", ("normal_", {"std": 0.01})),
        (nn.LSTM, {"weight_hh_*": "orthogonal", "bias_*": None}),
        (nn.Linear, ("xavier_uniform_", {"gain": 2.0})),
        ("embed.weight", ("trunc_normal_", {"std": 0.02})),
    ])
    assert torch.all(m.head[0].bias == 0) and man["head.0.bias"]["rule"] == "rules[0] 'head.*.bias'"
    assert man["conv.bias"]["call"] == "normal_(mean=0.0, std=0.01)"
    assert man["rnn.weight_hh_l0"]["scheme"] == "orthogonal"
    assert man["rnn.bias_hh_l1"]["scheme"] is None and man["rnn.bias_hh_l1"]["position"] is None
    assert man["rnn.weight_ih_l0"]["rule"] == "default LSTM.*"  # not in the LSTM dict: falls through
    assert man["head.2.weight"]["scheme"] == "glorot_uniform" and man["head.2.weight"]["params"] == {"gain": 2.0}
    assert man["attn.out_proj.weight"]["scheme"] == "glorot_uniform"
    assert man["conv.weight"]["rule"] == "default Conv1d.weight"
    assert man["embed.weight"]["scheme"] == "normal" and "zero_rows" not in man["embed.weight"]
    q = m.rnn.weight_hh_l0.detach().double()  # (64, 16): orthonormal columns
    assert torch.allclose(q.T @ q, torch.eye(16, dtype=torch.float64), atol=1e-5)
    with torch.no_grad():
        before = m.rnn.bias_hh_l1.clone()
    rt.initialize(m, seed=4, rules={nn.LSTM: {"bias_*": None}})
    assert torch.equal(m.rnn.bias_hh_l1, before)


def test_callable_rules_and_tied_parameters():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.emb.weight
            self.scale = nn.Parameter(torch.empty(4))

    m = Tied()
    with pytest.raises(ValueError, match="no rule matches 1 parameter\\(s\\): 'scale' \\(Tied, shape "
                                         "\\(4,\\)\\); add rules, e.g. rules={'scale': 'zeros_'}"):
        rt.initialize(m, seed=1)
    man = rt.initialize(m, seed=1, rules={"scale": lambda mod, name, p: ("constant_", {"val": p.shape[0]})})
    assert torch.all(m.scale == 4.0)
    assert set(man) == {"emb.weight", "scale"} and man["emb.weight"]["tied"] == ["out.weight"]


def test_initialize_refuses_colliding_positions_before_writing(monkeypatch):
    m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    before = _params(m)
    monkeypatch.setattr(rt, "stream_position", lambda name: (7, 7))
    with pytest.raises(RuntimeError, match="'0.weight' and '0.bias' hash to the same stream position"):
        rt.initialize(m, seed=1)
    for k, v in before.items():
        assert torch.equal(v, _params(m)[k])


def test_stream_positions_are_the_documented_hash_and_distinct():
    import hashlib
    h = int.from_bytes(hashlib.blake2b(b"encoder.layers.0.weight", digest_size=7).digest(), "big")
    assert rt.stream_position("encoder.layers.0.weight") == (h >> 24, h & 0xFFFFFF)
    names = [f"h.{i}.{p}.{w}" for i in range(200) for p in ("attn", "mlp", "ln") for w in ("weight", "bias")]
    assert len({rt.stream_position(n) for n in names}) == len(names)


class _IntParam(nn.Module):
    def __init__(self):
        super().__init__()
        self.count = nn.Parameter(torch.zeros(3, dtype=torch.int16), requires_grad=False)


@pytest.mark.parametrize("call,exc,match", [
    (lambda m: rt.initialize(m, seed=1, rules=[("x", "zeros_", 1)]), TypeError, "must be a \\(key, scheme\\) pair"),
    (lambda m: rt.initialize(m, seed=1, rules={3: "zeros_"}), TypeError, "glob pattern"),
    (lambda m: rt.initialize(m, seed=1, rules={"*": {"weight": "zeros_"}}), TypeError, "module-class key"),
    (lambda m: rt.initialize(m, seed=1, rules={"*": ("normal_", {"sd": 1})}), TypeError,
     "parameter '0.weight': normal_: unknown argument\\(s\\) sd; its arguments are mean, std"),
    (lambda m: rt.initialize(m, seed=1, rules={"*": "constant_"}), TypeError,
     "constant_: missing argument\\(s\\) val"),
    (lambda m: rt.initialize(m, seed=1, rules={"*": "rescaled_glorot"}), ValueError,
     "initialize: parameter '0.weight'.*square"),
    (lambda m: rt.initialize(m, seed=1, rules={"*": 3.0}), TypeError, "a scheme must be a name"),
    (lambda m: rt.initialize(m, seed=None), TypeError, "seed must be an integer"),
    (lambda m: rt.initialize("model", seed=1), TypeError, "must be a torch.nn.Module"),
    (lambda m: rt.initialize(_IntParam(), seed=1), TypeError, "parameter 'count' has dtype torch.int16"),
])
def test_initialize_errors(call, exc, match):
    m = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(exc, match=match):
        call(m)


def test_import_rinit_fast_imports_neither_framework_and_missing_ones_name_the_extra():
    code = ("import sys, rinit_fast as rf; rf.sample('glorot_normal', 4); "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-P", "-c", code], check=True)
    for mod, extra in (("torch", "rinit_fast[torch]"), ("jax", "rinit_fast[jax]")):
        code = (f"import sys; sys.modules[{mod!r}] = None\n"
                f"try:\n    import rinit_fast.{mod}\nexcept ImportError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-P", "-c", code], check=True, capture_output=True, text=True).stdout
        assert extra in out, out


# --- CUDA (skips without a GPU) ---------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_bits_on_cpu_and_cuda(cuda, dtype):
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    cpu = Net().to(dtype)
    gpu = Net().to(dtype).cuda()
    rt.initialize(cpu, seed=77)
    rt.initialize(gpu, seed=77)
    torch.cuda.synchronize()
    for k, v in _params(cpu).items():
        assert torch.equal(v, _params(gpu)[k].cpu()), k
    h = torch.empty(33, 17, dtype=torch.bfloat16, device="cuda")
    rt.normal_(h, seed=1)
    c = torch.empty(33, 17, dtype=torch.bfloat16)
    rt.normal_(c, seed=1)
    assert torch.equal(h.cpu(), c)
