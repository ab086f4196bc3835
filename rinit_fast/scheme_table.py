"""The scheme table: the one home of every initialisation scheme's name, family, scale formula, fan
rule, parameters and aliases (docs/sources.md).

Layout follows PyTorch: a weight has shape (fan_out, fan_in) and ``y = W x``.  ``gain`` multiplies the
standard deviation (or the bound, or the constant) of every scheme.

A scheme resolves, for a shape and its parameters, to a :class:`Draw`: what the kernels must produce.

Fans of a shape of any rank (the fan rule, one home): ``torch_fans`` is PyTorch's
``_calculate_fan_in_and_fan_out`` for ``(fan_out, fan_in, *receptive_field)``; ``jax_fans`` is JAX's
``_compute_fans`` with ``in_axis``, ``out_axis``, ``batch_axis``.  ``orthogonal`` ignores fans: it
flattens a shape to ``(shape[0], prod(shape[1:]))`` as ``torch.nn.init.orthogonal_`` does
(``orthogonal_matrix``).

==================  =============================================================================
family              the kernels draw
==================  =============================================================================
``uniform01``       U[0, scale)                            (float uniform stream × scale)
``uniform``         U[-scale, scale)                       ((2u - 1) × scale, exact up to the last ×)
``normal``          N(0, scale²)                           (normal stream × scale)
``truncated``       N(0, 1) truncated to [-2, 2], × scale  (redraws, docs/rng.md)
``constant``        scale everywhere                       (no randomness)
``orthogonal``      Haar (semi-)orthogonal × scale         (QR of the normal stream, sign-corrected)
==================  =============================================================================

Schemes of one family read the same stream values for the same (seed, matrix): ``glorot_normal``,
``he_normal``, ``lecun_normal``, ``half_glorot``, ``rescaled_glorot`` and ``normal`` differ by a scale
only (common random numbers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import theory

REQUIRED = object()
TRUNC_STD = 0.87962566103423978
"""Standard deviation of N(0, 1) truncated to [-2, 2] (JAX's variance_scaling constant)."""

FAN_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")


@dataclass(frozen=True)
class Draw:
    """What the kernels produce for one scheme, shape and parameter set."""

    family: str
    scale: float          # bound, std or value the kernels apply; for complex draws, per part
    complex: bool = False
    entry_std: float | None = None  # when the std is not a function of scale alone (orthogonal)

    @property
    def std(self):
        """Standard deviation of one entry (for complex entries: sqrt(E|w|²))."""
        if self.entry_std is not None:
            return self.entry_std
        f, s = self.family, abs(self.scale)
        if f == "uniform01":
            return s / math.sqrt(12.0)
        if f == "uniform":
            return s / math.sqrt(3.0)
        if f == "truncated":
            return s * TRUNC_STD
        if f == "constant":
            return 0.0
        return s * math.sqrt(2.0) if self.complex else s  # normal

    @property
    def mean(self):
        if self.family == "uniform01":
            return self.scale / 2.0
        if self.family == "constant":
            return self.scale
        return 0.0


@dataclass(frozen=True)
class Scheme:
    name: str
    summary: str
    params: dict = field(default_factory=dict)
    aliases: tuple = ()
    square_only: bool = False
    complex: bool = False
    fans: bool = True     # False: the draw does not depend on the shape (normal, uniform, constant, ...)


def _fan(mode, fan_out, fan_in):
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    if mode == "fan_geo_avg":
        return math.sqrt(fan_in * fan_out)
    raise ValueError(f"mode must be one of {FAN_MODES}, got {mode!r}")


# --- the fan rule -------------------------------------------------------------------------------
def torch_fans(shape):
    """(fan_out, fan_in) of a weight ``(out, in, *receptive_field)`` by PyTorch's rule:
    ``fan_in = in · prod(receptive)``, ``fan_out = out · prod(receptive)``
    (``torch.nn.init._calculate_fan_in_and_fan_out``).  ``n`` means (n, n)."""
    from ._validate import weight_shape
    dims = weight_shape(shape)
    rf = math.prod(dims[2:])
    return dims[0] * rf, dims[1] * rf


def jax_fans(shape, in_axis=-2, out_axis=-1, batch_axis=()):
    """(fan_out, fan_in) of a shape by JAX's rule (``jax.nn.initializers`` ``_compute_fans``): the sizes
    of ``in_axis`` and ``out_axis`` (products when sequences) times the receptive field
    ``prod(shape) / in / out / batch``; ``batch_axis`` sizes are left out.  Integers when exact."""
    from ._validate import axes, weight_shape
    dims = weight_shape(shape)
    nd = len(dims)
    ins = axes(in_axis, nd, "in_axis")
    outs = axes(out_axis, nd, "out_axis")
    batch = axes(batch_axis, nd, "batch_axis")
    in_size = math.prod(dims[a] for a in ins)
    out_size = math.prod(dims[a] for a in outs)
    b_size = math.prod(dims[a] for a in batch)
    receptive = math.prod(dims) / in_size / out_size / b_size
    fo, fi = out_size * receptive, in_size * receptive
    return tuple(int(f) if float(f).is_integer() else float(f) for f in (fo, fi))


def orthogonal_matrix(shape):
    """The (rows, cols) matrix an orthogonal draw of ``shape`` is: ``(shape[0], prod(shape[1:]))``,
    the tensor being its C-order reshape (as ``torch.nn.init.orthogonal_``)."""
    from ._validate import weight_shape
    dims = weight_shape(shape)
    return dims[0], math.prod(dims[1:])


def _glorot_var(fan_out, fan_in):
    return 2.0 / (fan_in + fan_out)


# name -> (Scheme, resolver(fan_out, fan_in, gain, params) -> Draw)
_TABLE = {}


def _register(name, summary, resolver, params=None, aliases=(), square_only=False, complex=False,
              fans=True):
    sch = Scheme(name, summary, dict(params or {}), tuple(aliases), square_only, complex, fans)
    _TABLE[name] = (sch, resolver)


def _normal(var):
    return lambda fo, fi, g, p: Draw("normal", g * math.sqrt(var(fo, fi, p)))


def _uniform(var):
    return lambda fo, fi, g, p: Draw("uniform", g * math.sqrt(3.0 * var(fo, fi, p)))


_register("uniform01", "U[0, 1): the naive baseline of [0] (docs/sources.md)",
          lambda fo, fi, g, p: Draw("uniform01", g), fans=False)


def _normal_std(fo, fi, g, p):
    trunc = p["truncated"]
    if not isinstance(trunc, bool):
        raise TypeError(f"normal: truncated must be True or False, got {trunc!r}")
    return Draw("truncated" if trunc else "normal", g * float(p["std"]))


_register("normal", "N(0, std²), default std 1: the unscaled baseline of [2] (docs/sources.md); truncated=True cuts "
          "it at ±2·std (out-of-range values redrawn: JAX's truncated_normal)",
          _normal_std, {"std": 1.0, "truncated": False}, fans=False)
_register("uniform", "U[-a, a)", lambda fo, fi, g, p: Draw("uniform", g * float(p["a"])), {"a": 1.0},
          fans=False)
_register("constant", "every entry = value", lambda fo, fi, g, p: Draw("constant", g * float(p["value"])),
          {"value": REQUIRED}, fans=False)
_register("zeros", "every entry 0: the symmetry-breaking failure of [2] (docs/sources.md)",
          lambda fo, fi, g, p: Draw("constant", 0.0), fans=False)
_register("glorot_uniform", "U[-a, a), a = gain·sqrt(6/(fan_in+fan_out))",
          _uniform(lambda fo, fi, p: _glorot_var(fo, fi)), aliases=("xavier_uniform",))
_register("glorot_normal", "N(0, gain²·2/(fan_in+fan_out))",
          _normal(lambda fo, fi, p: _glorot_var(fo, fi)), aliases=("xavier_normal",))
_register("lecun_uniform", "uniform with variance gain²/fan_in", _uniform(lambda fo, fi, p: 1.0 / fi))
_register("lecun_normal", "N(0, gain²/fan_in) (plain normal, not truncated)",
          _normal(lambda fo, fi, p: 1.0 / fi))
_register("he_uniform", "uniform with variance gain²·2/fan (mode fan_in or fan_out)",
          _uniform(lambda fo, fi, p: 2.0 / _fan(p["mode"], fo, fi)), {"mode": "fan_in"},
          aliases=("kaiming_uniform",))
_register("he_normal", "N(0, gain²·2/fan) (mode fan_in or fan_out)",
          _normal(lambda fo, fi, p: 2.0 / _fan(p["mode"], fo, fi)), {"mode": "fan_in"},
          aliases=("kaiming_normal",))


def _variance_scaling(fo, fi, g, p):
    scale = float(p["scale"])
    if not scale > 0.0:
        raise ValueError(f"variance_scaling: scale must be > 0, got {scale}")
    var = scale / _fan(p["mode"], fo, fi)
    dist = p["distribution"]
    if dist == "normal":
        return Draw("normal", g * math.sqrt(var))
    if dist == "uniform":
        return Draw("uniform", g * math.sqrt(3.0 * var))
    if dist == "truncated_normal":
        return Draw("truncated", g * math.sqrt(var) / TRUNC_STD)
    raise ValueError("variance_scaling: distribution must be one of ('normal', 'truncated_normal', "
                     f"'uniform'), got {dist!r}")


_register("variance_scaling", "as jax.nn.initializers.variance_scaling (fans from (fan_out, fan_in))",
          _variance_scaling, {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"})


def _orthogonal(fo, fi, g, p):
    return Draw("orthogonal", g, entry_std=abs(g) / math.sqrt(max(fo, fi)))


_register("orthogonal", "Haar (semi-)orthogonal: Q·sign(diag R) of a Gaussian matrix (Mezzadri 2007)",
          _orthogonal)
_register("complex_glorot", "complex Ginibre: real and imaginary parts each N(0, 1/(fan_in+fan_out))",
          lambda fo, fi, g, p: Draw("normal", g * math.sqrt(_glorot_var(fo, fi) / 2.0), complex=True),
          complex=True)
_register("half_glorot", "N(0, 1/(fan_in+fan_out)), i.e. N(0, 1/(2n)) when square ([1] (docs/sources.md))",
          _normal(lambda fo, fi, p: 1.0 / (fo + fi)))


def rescaled_std(n, c=None, p=None, s=None):
    """Entry std of rescaled Glorot at width n: 1/(sqrt(n)·s_n)."""
    given = [k for k, v in (("c", c), ("p", p), ("s", s)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"rescaled_glorot: give at most one of c, p, s; got {given}")
    if s is not None:
        s = float(s)
        if not (math.isfinite(s) and s > 0.0):
            raise ValueError(f"rescaled_glorot: s must be a finite positive scale, got {s}")
    else:
        s = theory.rescale_factor(n, c=c, p=p)
    return 1.0 / (math.sqrt(n) * s)


_register("rescaled_glorot", "N(0, 1/(n·s_n²)): Glorot / s_n (Bar et al., [1] (docs/sources.md)); params c, p or s",
          lambda fo, fi, g, p: Draw("normal", g * rescaled_std(fo, p["c"], p["p"], p["s"])),
          {"c": None, "p": None, "s": None}, square_only=True)

_ALIASES = {alias: name for name, (sch, _) in _TABLE.items() for alias in sch.aliases}


def schemes(aliases=False):
    """The scheme names (with their aliases too when ``aliases=True``)."""
    names = list(_TABLE)
    return names + sorted(_ALIASES) if aliases else names


def canonical(name):
    """The canonical name of a scheme or alias, or ValueError listing the valid names."""
    if isinstance(name, str):
        if name in _TABLE:
            return name
        if name in _ALIASES:
            return _ALIASES[name]
    raise ValueError(f"unknown scheme {name!r}; valid schemes: {', '.join(schemes())} "
                     f"(aliases: {', '.join(f'{a}={n}' for a, n in sorted(_ALIASES.items()))})")


def get(name):
    return _TABLE[canonical(name)][0]


def resolve(name, fan_out, fan_in, gain=1.0, **params):
    """The :class:`Draw` of a scheme for a (fan_out, fan_in) shape, with parameters checked."""
    name = canonical(name)
    sch, resolver = _TABLE[name]
    unknown = sorted(set(params) - set(sch.params))
    if unknown:
        valid = ", ".join(sch.params) or "none"
        raise TypeError(f"scheme {name!r} got unknown parameter(s) {', '.join(unknown)}; "
                        f"its parameters are: {valid}")
    full = dict(sch.params)
    full.update(params)
    missing = [k for k, v in full.items() if v is REQUIRED]
    if missing:
        raise TypeError(f"scheme {name!r} needs parameter(s) {', '.join(missing)}, "
                        f"e.g. rf.sample({name!r}, shape, {missing[0]}=0.5)")
    if sch.square_only and fan_in != fan_out:
        raise ValueError(f"scheme {name!r} is defined for square (n, n) matrices only, got shape "
                         f"({fan_out}, {fan_in})")
    gain = float(gain)
    if not math.isfinite(gain):
        raise ValueError(f"gain must be finite, got {gain}")
    draw = resolver(fan_out, fan_in, gain, full)
    if not math.isfinite(draw.scale):
        raise ValueError(f"scheme {name!r} with these parameters gives a non-finite scale {draw.scale}")
    return draw


def resolve_shape(name, shape, gain=1.0, fans=None, **params):
    """The :class:`Draw` of a scheme for a shape of any rank: fans by PyTorch's rule (``torch_fans``)
    unless ``fans=(fan_out, fan_in)`` is given (e.g. ``jax_fans``); an orthogonal draw's entry std is
    that of its ``orthogonal_matrix`` (1/sqrt(max(rows, cols)), times |gain|)."""
    from ._validate import fans as check_fans, weight_shape
    dims = weight_shape(shape)
    fo, fi = torch_fans(dims) if fans is None else check_fans(fans)
    draw = resolve(name, fo, fi, gain, **params)
    if draw.family == "orthogonal":
        rows, cols = orthogonal_matrix(dims)
        draw = Draw("orthogonal", draw.scale, entry_std=abs(draw.scale) / math.sqrt(max(rows, cols)))
    return draw


def scheme_std(scheme, shape, gain=1.0, **params):
    """The theoretical standard deviation of one entry (sqrt(E|w|²) for complex schemes); ``shape`` of
    any rank, fans by PyTorch's rule."""
    return resolve_shape(scheme, shape, gain, **params).std


def scheme_mean(scheme, shape, gain=1.0, **params):
    """The theoretical mean of one entry."""
    return resolve_shape(scheme, shape, gain, **params).mean


def scheme_law(scheme, shape, gain=1.0, **params):
    """The exact law of one real entry (of the real or imaginary part for complex schemes) as a
    frozen ``scipy.stats`` distribution; None for constant and orthogonal schemes."""
    from scipy import stats

    d = resolve_shape(scheme, shape, gain, **params)
    s = d.scale
    if d.family == "uniform01":
        return stats.uniform(loc=min(0.0, s), scale=abs(s))
    if d.family == "uniform":
        return stats.uniform(loc=-abs(s), scale=2.0 * abs(s))
    if d.family == "normal":
        return stats.norm(scale=abs(s))  # per part for complex draws
    if d.family == "truncated":
        return stats.truncnorm(-2.0, 2.0, scale=abs(s))
    return None


# --- gains -------------------------------------------------------------------------------------
_LINEAR = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
           "conv_transpose2d", "conv_transpose3d")


def gain(nonlinearity, param=None, *, convention="pytorch"):
    """The recommended gain for a nonlinearity.

    ``convention="pytorch"`` (default) follows ``torch.nn.init.calculate_gain``: linear/conv/sigmoid
    1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2/(1+slope²)) (slope ``param``, default 0.01), selu 3/4.
    ``convention="glorot"`` is Glorot & Bengio's linearisation argument ([3] (docs/sources.md)): gain = 1/f'(0),
    so sigmoid 4 and tanh and linear 1; it is defined for those three only.
    """
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity must be a string, got {type(nonlinearity).__name__}")
    nl = nonlinearity.lower()
    if convention == "glorot":
        table = {"sigmoid": 4.0, "tanh": 1.0, "linear": 1.0, "identity": 1.0}
        if nl not in table:
            raise ValueError(f"convention='glorot' defines gains for {sorted(table)} only, "
                             f"got {nonlinearity!r}; use convention='pytorch'")
        return table[nl]
    if convention != "pytorch":
        raise ValueError(f"convention must be 'pytorch' or 'glorot', got {convention!r}")
    if nl in _LINEAR or nl == "sigmoid":
        return 1.0
    if nl == "tanh":
        return 5.0 / 3.0
    if nl == "relu":
        return math.sqrt(2.0)
    if nl == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"leaky_relu slope must be a number, got {slope!r}")
        return math.sqrt(2.0 / (1.0 + float(slope) ** 2))
    if nl == "selu":
        return 0.75
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; valid: "
                     f"{', '.join(_LINEAR + ('sigmoid', 'tanh', 'relu', 'leaky_relu', 'selu'))}")
