"""rinit_fast as PyTorch's initialiser: ``torch.nn.init``'s functions drawn from the rinit_fast stream,
and ``initialize(model, seed=...)`` for a whole ``nn.Module`` (docs/integrations.md).

    import rinit_fast.torch as rt
    rt.kaiming_uniform_(layer.weight, a=math.sqrt(5), seed=7, index=3)
    manifest = rt.initialize(model, seed=7)          # every parameter, position from its name

Every function fills its tensor in place and returns it, with ``torch.nn.init``'s name, argument names
and defaults, plus keyword-only ``seed`` (the Philox key) and ``index``, ``layer`` (the stream position:
matrix index and sub-index of the weights stream).  The values are exactly
``rf.sample(scheme, tensor.shape, seed=seed, start=index, layer=layer, ...)`` for the scheme the function
maps to (``TORCH_FUNCTIONS``), in the C order of the tensor's shape, so the same seed gives the same
bits on every device.  ``generator=`` is accepted for signature compatibility and must be None.

dtypes: float32 and float64 tensors are filled from the float32 / float64 stream; float16 and bfloat16
tensors from the float32 stream, each value rounded to nearest-even into the tensor's dtype (PyTorch's
own conversion, the same on CPU and CUDA); complex64/complex128 only for the complex scheme.  Integer and
bool tensors are refused.  Contiguous float32/float64 CPU tensors are filled in place through DLPack (no
copy); other layouts (non-contiguous views, channels_last) and float16/bfloat16 are drawn into a
contiguous buffer and copied in (``tensor.copy_``).  CUDA tensors go through CuPy (the ``cuda`` extra).
Nothing is recorded by autograd.
"""
from __future__ import annotations

import fnmatch
import hashlib
import inspect
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import _backend, _validate, scheme_table
from .sampling import sample
from .spec.stream import GAUSS_MAX, STREAM_VERSION, Purpose

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError('rinit_fast.torch needs PyTorch: pip install "rinit_fast[torch]" (or any torch '
                      f'>= 2.1); PyTorch could not be imported: {exc}') from exc

__all__ = ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
           "trunc_normal_", "normal_", "uniform_", "constant_", "zeros_", "ones_", "rescaled_glorot_",
           "half_glorot_", "init_", "calculate_gain", "initialize", "stream_position", "DEFAULT_RULES",
           "TORCH_FUNCTIONS"]

calculate_gain = scheme_table.gain  # torch.nn.init.calculate_gain's table (rf.gain)

_REAL = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float32",
         torch.bfloat16: "float32"}
_COMPLEX = {torch.complex64: "complex64", torch.complex128: "complex128"}


@dataclass(frozen=True)
class Plan:
    """What one call draws: ``rf.sample(scheme, shape, gain=gain, **params)``, then ``+ shift``."""

    scheme: str | None            # canonical rf scheme; None: leave the tensor as it is
    params: dict = field(default_factory=dict)
    gain: float = 1.0
    shift: float = 0.0
    call: str = ""                # the torch-style call it came from, e.g. "kaiming_uniform_(a=2.236)"
    zero_rows: tuple = ()         # rows set to 0 after the draw (Embedding's padding_idx)


# --- torch.nn.init's functions as plans ------------------------------------------------------------
def _number(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _call(name, **kw):
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"


def _kaiming(scheme, name, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    g = scheme_table.gain(nonlinearity, a)
    # torch: std = gain / sqrt(fan); rf's he_* has variance gain_rf² · 2 / fan, so gain_rf = gain / sqrt 2
    return Plan(scheme, {"mode": mode}, g / math.sqrt(2.0),
                call=_call(name, a=a, mode=mode, nonlinearity=nonlinearity))


def _plan_xavier_uniform_(gain=1.0):
    return Plan("glorot_uniform", {}, _number(gain, "gain"), call=_call("xavier_uniform_", gain=gain))


def _plan_xavier_normal_(gain=1.0):
    return Plan("glorot_normal", {}, _number(gain, "gain"), call=_call("xavier_normal_", gain=gain))


def _plan_kaiming_uniform_(a=0, mode="fan_in", nonlinearity="leaky_relu"):
    return _kaiming("he_uniform", "kaiming_uniform_", a, mode, nonlinearity)


def _plan_kaiming_normal_(a=0, mode="fan_in", nonlinearity="leaky_relu"):
    return _kaiming("he_normal", "kaiming_normal_", a, mode, nonlinearity)


def _plan_orthogonal_(gain=1):
    return Plan("orthogonal", {}, _number(gain, "gain"), call=_call("orthogonal_", gain=gain))


def _plan_normal_(mean=0.0, std=1.0):
    mean, std = _number(mean, "mean"), _number(std, "std")
    if std < 0.0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return Plan("normal", {"std": std}, 1.0, mean, call=_call("normal_", mean=mean, std=std))


def _plan_trunc_normal_(mean=0.0, std=1.0, a=-2.0, b=2.0):
    mean, std, a, b = (_number(v, n) for v, n in ((mean, "mean"), (std, "std"), (a, "a"), (b, "b")))
    call = _call("trunc_normal_", mean=mean, std=std, a=a, b=b)
    if not std > 0.0:
        raise ValueError(f"trunc_normal_: std must be > 0, got {std}")
    if not a < b:
        raise ValueError(f"trunc_normal_: a must be < b, got a={a}, b={b}")
    lo, hi = (a - mean) / std, (b - mean) / std
    if lo <= -GAUSS_MAX and hi >= GAUSS_MAX:
        # the stream's normals all lie within ±8.58: this cut removes nothing, the draw is N(mean, std²)
        return Plan("normal", {"std": std}, 1.0, mean, call=call)
    if math.isclose(lo, -2.0, rel_tol=1e-9) and math.isclose(hi, 2.0, rel_tol=1e-9):
        return Plan("normal", {"std": std, "truncated": True}, 1.0, mean, call=call)
    raise ValueError(f"trunc_normal_: rinit_fast cuts normals at mean ± 2·std (the stream's redraw rule, "
                     f"the same on every device) or not at all (a and b at least {GAUSS_MAX}·std from the "
                     f"mean, beyond every value the stream produces); got a={a}, b={b}, i.e. "
                     f"mean + ({lo:.4g}, {hi:.4g})·std.  Use a = mean - 2*std, b = mean + 2*std, or "
                     f"torch.nn.init.trunc_normal_ for other bounds")


def _plan_uniform_(a=0.0, b=1.0):
    a, b = _number(a, "a"), _number(b, "b")
    if a > b:
        raise ValueError(f"uniform_: a must be <= b (the range is [a, b)), got a={a}, b={b}")
    half, mid = (b - a) / 2.0, (a + b) / 2.0
    # U[a, b) = mid + (2u - 1) · half: rf's "uniform" family, then + mid (skipped when mid == 0)
    return Plan("uniform", {"a": half}, 1.0, mid, call=_call("uniform_", a=a, b=b))


def _plan_constant_(val):
    return Plan("constant", {"value": _number(val, "val")}, 1.0, call=_call("constant_", val=val))


def _plan_zeros_():
    return Plan("zeros", {}, 1.0, call="zeros_()")


def _plan_ones_():
    return Plan("constant", {"value": 1.0}, 1.0, call="ones_()")


def _plan_rescaled_glorot_(c=None, p=None, s=None, gain=1.0):
    params = {k: v for k, v in (("c", c), ("p", p), ("s", s)) if v is not None}
    return Plan("rescaled_glorot", params, _number(gain, "gain"),
                call=_call("rescaled_glorot_", **params, gain=gain))


def _plan_half_glorot_(gain=1.0):
    return Plan("half_glorot", {}, _number(gain, "gain"), call=_call("half_glorot_", gain=gain))


TORCH_FUNCTIONS = {
    "xavier_uniform_": _plan_xavier_uniform_, "xavier_normal_": _plan_xavier_normal_,
    "kaiming_uniform_": _plan_kaiming_uniform_, "kaiming_normal_": _plan_kaiming_normal_,
    "orthogonal_": _plan_orthogonal_, "trunc_normal_": _plan_trunc_normal_, "normal_": _plan_normal_,
    "uniform_": _plan_uniform_, "constant_": _plan_constant_, "zeros_": _plan_zeros_, "ones_": _plan_ones_,
    "rescaled_glorot_": _plan_rescaled_glorot_, "half_glorot_": _plan_half_glorot_,
}
"""Function name → plan factory (the function's own arguments, torch's defaults)."""
_SIGNATURES = {k: inspect.signature(f).parameters for k, f in TORCH_FUNCTIONS.items()}


def plan(spec, params=None):
    """A :class:`Plan` from a function name of this module (``"kaiming_uniform_"``, with torch's
    arguments) or an rf scheme name (``"orthogonal"``, with rf's parameters and ``gain``)."""
    params = dict(params or {})
    if not isinstance(spec, str):
        raise TypeError(f"a scheme must be a name (an rf scheme such as 'glorot_normal' or a function of "
                        f"rinit_fast.torch such as 'kaiming_uniform_'), got {type(spec).__name__} {spec!r}")
    if spec in TORCH_FUNCTIONS:
        sig = _SIGNATURES[spec]
        unknown = sorted(set(params) - set(sig))
        missing = [k for k, v in sig.items() if v.default is inspect.Parameter.empty and k not in params]
        if unknown or missing:
            what = (f"unknown argument(s) {', '.join(unknown)}" if unknown else
                    f"missing argument(s) {', '.join(missing)}")
            raise TypeError(f"{spec}: {what}; its arguments are {', '.join(sig) or 'none'}")
        return TORCH_FUNCTIONS[spec](**params)
    if spec.endswith("_"):
        raise ValueError(f"unknown function {spec!r}; functions: {', '.join(TORCH_FUNCTIONS)} (or an rf "
                         f"scheme name without the underscore: {', '.join(scheme_table.schemes())})")
    name = scheme_table.canonical(spec)
    gain = _number(params.pop("gain", 1.0), "gain")
    return Plan(name, params, gain, call=_call(name, **params, **({"gain": gain} if gain != 1.0 else {})))


# --- filling one tensor --------------------------------------------------------------------------
def _stream_args(seed, index, layer):
    seed = _validate.seed(seed)
    index, layer = _validate.stream_position(index, layer)
    return seed, index, layer


def _check_tensor(tensor, what="tensor"):
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.is_meta:
        raise ValueError(f"{what} is on the meta device and has no storage to fill: materialise it first "
                         f"(model.to_empty(device='cpu') or device='cuda'), then initialise")
    if tensor.dtype not in _REAL and tensor.dtype not in _COMPLEX:
        raise TypeError(f"{what} has dtype {tensor.dtype}; rinit_fast fills floating tensors (float16, "
                        f"bfloat16, float32, float64; complex64/complex128 with the 'complex_glorot' "
                        f"scheme).  Convert it, e.g. tensor.float()")
    if tensor.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{what} is on device {tensor.device}; rinit_fast fills CPU and CUDA tensors")
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise TypeError(f"{what} has layout {tensor.layout}; rinit_fast fills dense (strided) tensors")
    return tensor


def _draw_shape(tensor, p, what):
    shape = tuple(tensor.shape)
    if len(shape) >= 2:
        return shape
    if scheme_table.get(p.scheme).fans:
        raise ValueError(f"{p.call or p.scheme}: {what} has shape {shape}: fan in and fan out cannot be "
                         f"computed for a tensor with fewer than 2 dimensions (as torch.nn.init); use a "
                         f"scheme without fans (normal_, uniform_, constant_, zeros_, trunc_normal_)")
    return (1, max(1, math.prod(shape)))  # values in C order, as a (1, n) matrix


class _Device:
    """The CuPy device and stream of a CUDA tensor (a no-op context for CPU tensors)."""

    def __init__(self, tensor):
        self.cuda = tensor.device.type == "cuda"
        self.tensor = tensor
        self.ctx = []

    def __enter__(self):
        if self.cuda:
            cp = _backend.xp("cuda")
            dev = self.tensor.device.index
            dev = torch.cuda.current_device() if dev is None else dev
            stream = torch.cuda.current_stream(dev)
            self.ctx = [cp.cuda.Device(dev), cp.cuda.ExternalStream(stream.cuda_stream, dev)]
            for c in self.ctx:
                c.__enter__()
        return self

    def __exit__(self, *exc):
        for c in reversed(self.ctx):
            c.__exit__(*exc)
        return False


def _array_view(t):
    """A NumPy/CuPy array sharing the tensor's memory (contiguous, no lazy conj/neg bits)."""
    if t.device.type == "cpu":
        return np.from_dlpack(t)
    return _backend.xp("cuda").from_dlpack(t)


def _fill(tensor, p, seed, index, layer, what="tensor"):
    """Fill ``tensor`` in place with plan ``p`` at stream position (seed, index, layer)."""
    t = _check_tensor(tensor, what)
    if p.scheme is None or t.numel() == 0:
        return tensor
    dims = _draw_shape(t, p, what)
    backend = "cpu" if t.device.type == "cpu" else "cuda"
    dtype = _REAL.get(t.dtype) or _COMPLEX[t.dtype]
    direct = (t.dtype in (torch.float32, torch.float64) or t.dtype in _COMPLEX) and t.is_contiguous() \
        and not t.is_conj() and not t.is_neg()
    with torch.no_grad(), _Device(t):
        d = t.detach()
        if direct:
            buf = _array_view(d).reshape(dims)
        else:
            buf = _backend.xp(backend).empty(dims, dtype=dtype)
        sample(p.scheme, dims, seed=seed, start=index, layer=layer, dtype=dtype, backend=backend,
               gain=p.gain, out=buf, **p.params)
        if p.shift != 0.0:
            buf += buf.real.dtype.type(p.shift)  # one IEEE add in the stream's dtype, on every device
        if p.zero_rows:
            buf.reshape(t.shape[0], -1)[list(p.zero_rows)] = 0
        if not direct:
            src = torch.from_numpy(buf) if backend == "cpu" else torch.from_dlpack(buf)
            d.copy_(src.reshape(t.shape))  # float16/bfloat16: round to nearest-even (torch's conversion)
    return tensor


def _apply(fn_name, tensor, generator, seed, index, layer, **kw):
    if generator is not None:
        raise TypeError(f"{fn_name}: generator must be None: rinit_fast draws from its own counter-based "
                        f"stream; choose it with seed= and index= (and layer=)")
    seed, index, layer = _stream_args(seed, index, layer)
    return _fill(tensor, TORCH_FUNCTIONS[fn_name](**kw), seed, index, layer)


# --- the public functions: torch.nn.init's names, arguments and defaults ------------------------------
def xavier_uniform_(tensor, gain=1.0, generator=None, *, seed=0, index=0, layer=0):
    """U(-a, a), a = gain·sqrt(6/(fan_in + fan_out)) (rf scheme ``glorot_uniform``)."""
    return _apply("xavier_uniform_", tensor, generator, seed, index, layer, gain=gain)


def xavier_normal_(tensor, gain=1.0, generator=None, *, seed=0, index=0, layer=0):
    """N(0, gain²·2/(fan_in + fan_out)) (rf scheme ``glorot_normal``)."""
    return _apply("xavier_normal_", tensor, generator, seed, index, layer, gain=gain)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=0,
                     index=0, layer=0):
    """U(-b, b), b = gain·sqrt(3/fan), gain = calculate_gain(nonlinearity, a) (rf ``he_uniform`` with
    gain/sqrt 2)."""
    return _apply("kaiming_uniform_", tensor, generator, seed, index, layer, a=a, mode=mode,
                  nonlinearity=nonlinearity)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=0,
                    index=0, layer=0):
    """N(0, gain²/fan), gain = calculate_gain(nonlinearity, a) (rf ``he_normal`` with gain/sqrt 2)."""
    return _apply("kaiming_normal_", tensor, generator, seed, index, layer, a=a, mode=mode,
                  nonlinearity=nonlinearity)


def orthogonal_(tensor, gain=1, generator=None, *, seed=0, index=0, layer=0):
    """(Semi-)orthogonal: the (shape[0], numel/shape[0]) matrix Q·sign(diag R) of the QR of the stream's
    Gaussian matrix, reshaped, times gain (rf ``orthogonal``).  The QR is LAPACK (CPU) or cuSOLVER
    (CUDA): the Gaussian draw is the same on both, Q agrees to rounding, not bit for bit."""
    return _apply("orthogonal_", tensor, generator, seed, index, layer, gain=gain)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *, seed=0, index=0, layer=0):
    """N(mean, std²) cut to [a, b] by redrawing.  Supported cuts: a = mean - 2·std, b = mean + 2·std, or
    bounds at least 8.6·std from the mean (no value of the stream lies beyond: a plain normal, e.g. the
    common ``trunc_normal_(w, std=0.02)`` with torch's default a=-2, b=2)."""
    return _apply("trunc_normal_", tensor, generator, seed, index, layer, mean=mean, std=std, a=a, b=b)


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, seed=0, index=0, layer=0):
    """N(mean, std²): the stream's normal times std, plus mean (rf ``normal``)."""
    return _apply("normal_", tensor, generator, seed, index, layer, mean=mean, std=std)


def uniform_(tensor, a=0.0, b=1.0, generator=None, *, seed=0, index=0, layer=0):
    """U[a, b): (a+b)/2 + (2u - 1)·(b-a)/2 (rf ``uniform`` with a=(b-a)/2, shifted)."""
    return _apply("uniform_", tensor, generator, seed, index, layer, a=a, b=b)


def constant_(tensor, val, *, seed=0, index=0, layer=0):
    """Every entry = val (no draw; seed and index accepted for uniformity)."""
    return _apply("constant_", tensor, None, seed, index, layer, val=val)


def zeros_(tensor, *, seed=0, index=0, layer=0):
    """Every entry 0."""
    return _apply("zeros_", tensor, None, seed, index, layer)


def ones_(tensor, *, seed=0, index=0, layer=0):
    """Every entry 1."""
    return _apply("ones_", tensor, None, seed, index, layer)


def rescaled_glorot_(tensor, c=None, p=None, s=None, gain=1.0, *, seed=0, index=0, layer=0):
    """Rescaled Glorot (Bar et al., [1] (docs/sources.md)) of a square (n, n) recurrent matrix: N(0, 1/(n·s_n²)),
    s_n from the calibration ``c`` (default γ_E + π/√6), a probability ``p``, or an explicit scale ``s``
    (e.g. ``rf.calibrate(n, p).scale``, for n <= 163)."""
    return _apply("rescaled_glorot_", tensor, None, seed, index, layer, c=c, p=p, s=s, gain=gain)


def half_glorot_(tensor, gain=1.0, *, seed=0, index=0, layer=0):
    """N(0, gain²/(fan_in + fan_out)): Glorot's variance halved (1/(2n) when square)."""
    return _apply("half_glorot_", tensor, None, seed, index, layer, gain=gain)


def init_(tensor, scheme, *, seed=0, index=0, layer=0, gain=1.0, **params):
    """Any rf scheme (``rf.schemes()``) with its parameters: ``rf.sample(scheme, tensor.shape, seed=seed,
    start=index, layer=layer, gain=gain, **params)`` written into the tensor.  A function name of this
    module (``"kaiming_normal_"``) is accepted too, with that function's arguments."""
    seed, index, layer = _stream_args(seed, index, layer)
    if isinstance(scheme, str) and scheme in TORCH_FUNCTIONS:
        if gain != 1.0:
            params["gain"] = gain
        return _fill(tensor, plan(scheme, params), seed, index, layer)
    return _fill(tensor, plan(scheme, {**params, "gain": gain}), seed, index, layer)


# --- initialize(model) -----------------------------------------------------------------------------
POSITION_DIGEST_BYTES = 7  # 56 bits: index (32) and layer (24)


def stream_position(name):
    """The stream position of a parameter from its qualified name (``model.named_parameters()``):
    ``h = int.from_bytes(blake2b(name.encode("utf-8"), digest_size=7).digest(), "big")``, then
    ``index = h >> 24`` (c2, 32 bits) and ``layer = h & 0xFFFFFF`` (the sub-index, 24 bits) of the
    weights stream.  It depends on nothing but the name (docs/rng.md)."""
    if not isinstance(name, str):
        raise TypeError(f"a parameter name must be a string, got {type(name).__name__}")
    h = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=POSITION_DIGEST_BYTES).digest(),
                       "big")
    return h >> 24, h & 0xFFFFFF


def _fan_in(weight):
    return scheme_table.torch_fans(tuple(weight.shape))[1] if weight.dim() >= 2 and weight.numel() else 0


def _default_bias(module, name, param):
    """torch's bias of Linear/ConvNd: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in of the module's weight."""
    fan_in = _fan_in(module.weight)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return "uniform_", {"a": -bound, "b": bound}


def _default_bilinear(module, name, param):
    bound = 1.0 / math.sqrt(module.weight.size(1))
    return "uniform_", {"a": -bound, "b": bound}


def _default_rnn(module, name, param):
    """torch's RNN/LSTM/GRU (and cells): every parameter U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
    stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    return "uniform_", {"a": -stdv, "b": stdv}


def _default_embedding(module, name, param):
    """torch's Embedding/EmbeddingBag: N(0, 1), the padding_idx row set to 0."""
    pad = getattr(module, "padding_idx", None)
    return "normal_", {}, (() if pad is None else (int(pad) % param.shape[0],))


def _default_prelu(module, name, param):
    return "constant_", {"val": float(module.init)}


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM = tuple(c for c in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
                          nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm,
                          getattr(nn, "RMSNorm", None)) if c is not None)
_MHA_OUT = getattr(nn.modules.linear, "NonDynamicallyQuantizableLinear", None)

DEFAULT_RULES = [
    (nn.MultiheadAttention, {"in_proj_weight": "xavier_uniform_", "q_proj_weight": "xavier_uniform_",
                             "k_proj_weight": "xavier_uniform_", "v_proj_weight": "xavier_uniform_",
                             "in_proj_bias": "zeros_", "bias_k": "xavier_normal_",
                             "bias_v": "xavier_normal_"}),
    *([(_MHA_OUT, {"bias": "zeros_"})] if _MHA_OUT is not None else []),  # MultiheadAttention.out_proj
    ((nn.Linear, *_CONV), {"weight": ("kaiming_uniform_", {"a": math.sqrt(5)}), "bias": _default_bias}),
    (nn.Bilinear, _default_bilinear),
    ((nn.RNNBase, nn.RNNCellBase), _default_rnn),
    ((nn.Embedding, nn.EmbeddingBag), {"weight": _default_embedding}),
    (_NORM, {"weight": "ones_", "bias": "zeros_"}),
    (nn.PReLU, {"weight": _default_prelu}),
]
"""PyTorch's own default distributions (its ``reset_parameters``), drawn from the rinit_fast stream:
Linear and ConvNd weights ``kaiming_uniform_(a=sqrt 5)`` and biases U(±1/sqrt(fan_in)); Bilinear
U(±1/sqrt(in1_features)); RNN/LSTM/GRU and their cells U(±1/sqrt(hidden_size)); Embedding N(0, 1) with a
zero padding row; norm layers weight 1, bias 0; PReLU its ``init``; MultiheadAttention as its
``_reset_parameters`` (xavier_uniform_ projections, zero biases, xavier_normal_ bias_k/bias_v)."""


def _check_rules(rules):
    if rules is None:
        return []
    items = list(rules.items()) if isinstance(rules, dict) else list(rules)
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"rules[{i}] must be a (key, scheme) pair, got {item!r}; rules is a dict or a "
                            f"list of pairs")
        key, spec = item
        types = key if isinstance(key, tuple) else (key,)
        if not isinstance(key, str) and not all(isinstance(k, type) and issubclass(k, nn.Module)
                                                for k in types):
            raise TypeError(f"rules[{i}]: a key must be a glob pattern of parameter names (str) or an "
                            f"nn.Module class (or a tuple of classes), got {key!r}")
        if isinstance(spec, dict) and isinstance(key, str):
            raise TypeError(f"rules[{i}]: a dict of per-parameter schemes needs a module-class key, got the "
                            f"pattern {key!r}; write one rule per pattern instead")
        out.append((f"rules[{i}]", key, spec))
    return out


def _match(rules, qualname, local, module):
    """The first (rule label, spec) whose key matches the parameter, or None.  Labels read
    ``rules[2] '*.bias'``, ``rules[0] Linear.weight`` or ``default LSTM.*``."""
    for where, key, spec in rules:
        if isinstance(key, str):
            if fnmatch.fnmatchcase(qualname, key):
                return f"{where} {key!r}", spec
            continue
        if not isinstance(module, key):
            continue
        if isinstance(spec, dict):
            for pat, sub in spec.items():
                if fnmatch.fnmatchcase(local, pat):
                    return f"{where} {type(module).__name__}.{pat}", sub
            continue
        return f"{where} {type(module).__name__}.*", spec
    return None


def _resolve_spec(spec, module, local, param, qualname):
    """A rule's value → Plan (None: leave the parameter as it is)."""
    if callable(spec) and not isinstance(spec, (str, type)):
        spec = spec(module, local, param)
    zero_rows = ()
    if spec is None:
        return Plan(None, call="None (left as it is)")
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, tuple) and len(spec) in (2, 3) and isinstance(spec[0], str):
        name, params = spec[0], spec[1]
        zero_rows = spec[2] if len(spec) == 3 else ()
        if not isinstance(params, dict):
            raise TypeError(f"rule for {qualname!r}: the parameters of {name!r} must be a dict, got "
                            f"{params!r}")
    else:
        raise TypeError(f"rule for {qualname!r}: a scheme must be a name, a (name, {{params}}) pair, None, "
                        f"or a callable(module, name, param) returning one; got {spec!r}")
    try:
        p = plan(name, params)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"rule for parameter {qualname!r}: {exc}") from None
    if zero_rows:
        p = Plan(p.scheme, p.params, p.gain, p.shift, p.call, tuple(zero_rows))
    return p


def _plain(x):
    if isinstance(x, (bool, str)) or x is None:
        return x
    if isinstance(x, (numbers.Integral, np.integer)):
        return int(x)
    if isinstance(x, (numbers.Real, np.floating)):
        return float(x)
    if isinstance(x, (tuple, list)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return repr(x)


def _fill_all(fills):
    """Run ``_fill(*f)`` for every f.  Coarse parallelism (docs/CONVENTIONS.md): the CPU tensors, largest
    first, are spread over ``nthreads()`` Python threads, one tensor per task, each task's kernels on its
    own thread (``numba.set_num_threads`` is thread-local).  One parallel region per tensor would cost a
    thread wake-up per tensor; on this shared 2-core VM under load that was ~20 ms per call
    (bench/NOTES.md, "Frameworks").  The values do not depend on which thread draws which tensor.  CUDA
    tensors are filled in order, in this thread."""
    import numba

    from .kernels.cpu import threads
    for f in fills:
        if f[0].device.type != "cpu":
            _fill(*f)
    rest = sorted((f for f in fills if f[0].device.type == "cpu"), key=lambda f: -f[0].numel())
    # concurrent kernel calls need a thread-safe Numba threading layer (omp or tbb, not workqueue); the
    # layer is known once a parallel kernel has run in this process: if none has, the first tensor runs
    # alone, with the kernels' own threads
    for attempt in range(2):
        try:
            safe = numba.threading_layer() in ("omp", "tbb")
            break
        except ValueError:
            safe = False
            if attempt == 0 and rest:
                _fill(*rest.pop(0))
    n = min(threads.nthreads(), len(rest)) if safe else 1

    def task(k):
        if n > 1:
            numba.set_num_threads(1)
        _fill(*rest[k])

    threads.run_tasks(task, len(rest), n)


def initialize(model, *, seed, rules=None):
    """Initialise every parameter of ``model`` in place from the rinit_fast stream; return a manifest.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters must have storage (a ``meta``-built model: ``model.to_empty(device=...)`` first).
    seed : int in [0, 2**64)
        The Philox key.
    rules : dict or list of (key, scheme) pairs, optional
        Tried in order before ``DEFAULT_RULES``; the first match wins.  A key is a glob pattern of
        qualified parameter names (``"encoder.*.weight"``, ``"*.bias"``) or an ``nn.Module`` class (or a
        tuple of classes) owning the parameter.  A scheme is a name (an rf scheme such as
        ``"orthogonal"``, or a function of this module such as ``"kaiming_normal_"``), a
        ``(name, {params})`` pair, ``None`` (leave the parameter as it is), or, under a class key, a dict
        mapping the module's own parameter names (globs) to schemes; a callable
        ``(module, local_name, param) -> scheme`` is allowed anywhere a scheme is.

    The parameter named ``q`` (as ``model.named_parameters()`` names it) is drawn at stream position
    ``stream_position(q)`` of ``seed``: it depends on its name only, so adding, removing or reordering
    other layers never changes it (in an ``nn.Sequential`` the name holds the index: inserting a layer
    renames the later ones).  Distinct parameters get distinct positions, hence disjoint counters
    (checked: a collision is an error before anything is written).  A tied parameter is initialised
    once, under its first name.

    Returns ``{name: {"shape", "dtype", "device", "rule", "call", "scheme", "params", "shift",
    "sample_shape", "std", "mean", "position": {"seed", "purpose", "index", "layer", "stream_version"},
    "tied"}}`` as plain data (``json.dumps`` accepts it).  For a float32/float64 parameter,
    ``rf.sample(e["scheme"], e["sample_shape"], seed=seed, start=index, layer=layer, dtype=...,
    **e["params"]) + e["shift"]`` reproduces it (``sample_shape`` is ``(1, n)`` for a 1-D parameter).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seed = _validate.seed(seed)
    all_rules = _check_rules(rules) + [("default", key, spec) for key, spec in DEFAULT_RULES]
    modules = dict(model.named_modules(remove_duplicate=False))
    tied = {}
    for qn, prm in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(prm), []).append(qn)

    jobs, seen, missing = [], {}, []
    for qn, prm in model.named_parameters():
        mod_name, _, local = qn.rpartition(".")
        module = modules[mod_name]
        _check_tensor(prm, f"parameter {qn!r}")
        hit = _match(all_rules, qn, local, module)
        if hit is None:
            missing.append((qn, f"{qn!r} ({type(module).__name__}, shape {tuple(prm.shape)})"))
            continue
        rule, spec = hit
        p = _resolve_spec(spec, module, local, prm, qn)
        pos = stream_position(qn)
        if p.scheme is not None and pos in seen:
            raise RuntimeError(f"initialize: parameters {seen[pos]!r} and {qn!r} hash to the same stream "
                               f"position (index {pos[0]}, layer {pos[1]}), so they would share stream "
                               f"values; nothing was written.  Rename one of them (a 56-bit hash collision: "
                               f"about one pair in 7e16)")
        seen[pos] = qn
        draw = None
        if p.scheme is not None and prm.numel():
            try:  # every scheme parameter and fan condition checked before anything is written
                draw = scheme_table.resolve_shape(p.scheme, _draw_shape(prm, p, f"parameter {qn!r}"), p.gain,
                                                  **p.params)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"initialize: parameter {qn!r} (rule {rule!r}): {exc}") from None
        jobs.append((qn, prm, rule, p, pos, draw))
    if missing:
        raise ValueError(f"initialize: no rule matches {len(missing)} parameter(s): "
                         f"{', '.join(m for _, m in missing[:8])}{' ...' if len(missing) > 8 else ''}; add "
                         f"rules, e.g. rules={{{missing[0][0]!r}: 'zeros_'}}, or map it to None to leave it "
                         f"as it is")

    _fill_all([(prm, p, seed, pos[0], pos[1], f"parameter {qn!r}") for qn, prm, rule, p, pos, draw in jobs
               if draw is not None])
    manifest = {}
    for qn, prm, rule, p, pos, draw in jobs:
        entry = {"shape": list(prm.shape), "dtype": str(prm.dtype).removeprefix("torch."),
                 "device": str(prm.device), "rule": rule, "call": p.call, "scheme": p.scheme,
                 "params": _plain({**p.params, **({"gain": p.gain} if p.gain != 1.0 else {})}),
                 "shift": float(p.shift), "std": None, "mean": None, "position": None,
                 "tied": tied[id(prm)][1:]}
        if draw is not None:
            entry["sample_shape"] = list(_draw_shape(prm, p, qn))
            entry["std"] = float(draw.std)
            entry["mean"] = float(draw.mean + p.shift)
            entry["position"] = {"seed": seed, "purpose": Purpose.WEIGHTS.name, "index": pos[0],
                                 "layer": pos[1], "stream_version": STREAM_VERSION}
            if p.zero_rows:
                entry["zero_rows"] = list(p.zero_rows)
        manifest[qn] = entry
    return manifest
