"""rinit_fast as JAX's initialiser: ``jax.nn.initializers``' names and signatures, drawn from the
rinit_fast stream (docs/integrations.md).

    import rinit_fast.jax as rj
    init = rj.glorot_normal()                       # as jax.nn.initializers.glorot_normal()
    W = init(jax.random.key(7), (256, 128))         # eager, or inside jax.jit; usable as Flax kernel_init

Every factory returns ``init(key, shape, dtype=dtype)``.  The JAX names keep JAX's laws and fan rule
(``in_axis``, ``out_axis``, ``batch_axis``; ``glorot_normal`` is JAX's truncated normal, ``uniform`` is
U[0, scale)); ``half_glorot``, ``rescaled_glorot`` and ``initializer(scheme, ...)`` are rf's schemes.
The values are ``rf.sample(scheme, shape, seed=seed, start=index, layer=layer, fans=jax_fans(...))``,
entry ``i`` of the C-order flattening of ``shape`` being value ``i`` of the stream.

The key: the two 32-bit words ``(w0, w1)`` of a threefry key (``jax.random.key(s)``, or the raw
``jax.random.PRNGKey(s)``) give the seed ``(w0 << 32) | w1``, so ``key(s)`` is seed ``s``; the stream
position is index 0, layer 0 (``index=`` and ``layer=`` of ``initializer`` choose another).  Flax
derives a distinct key per parameter, hence a distinct seed per parameter.

Under ``jax.jit`` (a traced key) the draw runs on the host through ``jax.pure_callback`` and gives the
same bits as the eager call.  Eagerly on the CPU the draw fills a 64-byte-aligned buffer that JAX takes
through DLPack without a copy (bfloat16: ``jax.device_put``, a copy); with a GPU as JAX's default backend
the draw runs on the GPU through CuPy and is handed to JAX by DLPack.  float16/bfloat16 are drawn in
float32 and rounded to nearest-even; float64 needs ``jax_enable_x64`` (otherwise JAX's canonical
float32 is drawn, as JAX does).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _backend, _validate, scheme_table
from .sampling import sample
from .spec.stream import GAUSS_MAX

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised only without jax
    raise ImportError('rinit_fast.jax needs JAX: pip install "rinit_fast[jax]" (a CPU build; see JAX\'s '
                      f"install guide for GPUs); JAX could not be imported: {exc}") from exc

__all__ = ["glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
           "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "variance_scaling",
           "normal", "uniform", "truncated_normal", "constant", "zeros", "ones", "orthogonal",
           "half_glorot", "rescaled_glorot", "initializer", "key_seed"]

_FLOATS = ("float16", "bfloat16", "float32", "float64")
_COMPLEX = ("complex64", "complex128")


def key_seed(key):
    """The rinit_fast seed of a JAX key: ``(w0 << 32) | w1`` of its two threefry words (a concrete key)."""
    return _seed_of_words(np.asarray(_key_words(key)))


def _key_words(key):
    """The uint32[2] words of a typed or raw threefry key (a tracer under jit)."""
    if jnp.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        if "threefry" not in impl:
            raise ValueError(f"rinit_fast.jax maps threefry2x32 keys (JAX's default) to seeds; got a {impl} "
                             f"key.  Use jax.random.key(seed) with the default implementation")
        words = jax.random.key_data(key)
    else:
        words = key
    shape = tuple(getattr(words, "shape", ()))
    dt = getattr(words, "dtype", None)
    if shape != (2,) or dt != np.uint32:
        raise TypeError(f"key must be a single JAX PRNG key (jax.random.key(seed) or "
                        f"jax.random.PRNGKey(seed): two uint32 words), got shape {shape} dtype {dt}; split "
                        f"batched keys before calling")
    return words


def _seed_of_words(w):
    w = np.asarray(w, dtype=np.uint32).reshape(2)
    return (int(w[0]) << 32) | int(w[1])


def _dtype(dtype):
    # None: JAX's default float (float64 under jax_enable_x64, else float32); float64 without x64 -> float32
    dt = jnp.dtype(jax.dtypes.canonicalize_dtype(np.float64 if dtype is None else dtype))
    if dt.name not in _FLOATS + _COMPLEX:
        raise TypeError(f"dtype must be a floating dtype (float16, bfloat16, float32, float64; complex64/128 "
                        f"for 'complex_glorot'), got {dt.name}")
    return dt


def _shape(shape):
    try:
        dims = tuple(shape)
    except TypeError:
        dims = (shape,)
    return tuple(_validate.nonneg_int(d, f"shape[{i}]") for i, d in enumerate(dims))


class _Spec:
    """One initialiser: rf scheme, parameters, fan rule (JAX's axes) or orthogonal column axis."""

    def __init__(self, name, scheme, params=None, gain=1.0, axes=None, column_axis=None, dtype=None,
                 index=0, layer=0):
        self.name, self.scheme, self.params, self.gain = name, scheme, dict(params or {}), float(gain)
        self.axes, self.column_axis, self.dtype = axes, column_axis, dtype
        self.index, self.layer = _validate.stream_position(index, layer)
        self.uses_fans = scheme_table.get(scheme).fans
        if dtype is not None:
            _dtype(dtype)

    def draw(self, words, shape, dt, backend="cpu", aligned=False):
        """The array on ``backend`` (NumPy or CuPy) for key words ``words``; with ``aligned``, a NumPy
        array whose data is 64-byte aligned (JAX then takes it through DLPack without a copy)."""
        seed = _seed_of_words(words)
        real = dt.name in _FLOATS
        draw_dtype = np.dtype(("float64" if dt.name == "float64" else "float32") if real else dt.name)
        xp = _backend.xp(backend)
        common = dict(seed=seed, start=self.index, layer=self.layer, dtype=draw_dtype.name, backend=backend,
                      gain=self.gain, **self.params)
        out = _aligned_empty(shape, dt) if aligned else xp.empty(shape, dt)
        direct = out if draw_dtype == dt else xp.empty(shape, draw_dtype)
        if self.column_axis is not None:  # orthogonal: (prod(other axes), shape[col]), moved back
            col = self.column_axis % len(shape)
            n_cols = shape[col]
            n_rows = math.prod(shape) // n_cols
            q = sample(self.scheme, (n_rows, n_cols), **common)
            q = q.reshape(shape[:col] + shape[col + 1:] + (n_cols,))
            direct[...] = xp.moveaxis(q, -1, col)
        elif len(shape) >= 2 and self.uses_fans:
            fans = scheme_table.jax_fans(shape, *self.axes)
            sample(self.scheme, shape, fans=fans, out=direct, **common)
        else:
            sample(self.scheme, (1, max(1, math.prod(shape))), out=direct.reshape(1, -1), **common)
        if direct is not out:
            out[...] = direct  # float16 / bfloat16 (ml_dtypes): round to nearest-even
        return out

    def check(self, shape, dt):
        if self.column_axis is not None:
            if len(shape) < 2:
                raise ValueError(f"{self.name}: orthogonal initializer requires at least a 2D shape, got "
                                 f"{shape}")
            if not -len(shape) <= self.column_axis < len(shape):
                raise ValueError(f"{self.name}: column_axis={self.column_axis} is out of range for shape "
                                 f"{shape}")
        elif self.uses_fans:
            if len(shape) < 2:
                raise ValueError(f"{self.name}: can't compute input and output sizes of a "
                                 f"{len(shape)}-dimensional weights tensor (as JAX); give a shape of 2 or "
                                 f"more dimensions")
            scheme_table.resolve(self.scheme, *scheme_table.jax_fans(shape, *self.axes), self.gain,
                                 **self.params)
        if dt.name in _COMPLEX and not scheme_table.get(self.scheme).complex:
            raise TypeError(f"{self.name} is real and cannot produce {dt.name}; use a float dtype, or "
                            f"initializer('complex_glorot')")

    def __call__(self, key, shape, dtype=None):
        shape = _shape(shape)
        dt = _dtype(self.dtype if dtype is None else dtype)
        if 0 in shape:  # empty: nothing to draw (JAX's initialisers return an empty array too)
            return jnp.zeros(shape, dt)
        self.check(shape, dt)
        words = _key_words(key)
        if isinstance(words, jax.core.Tracer):
            return jax.pure_callback(lambda w: np.asarray(self.draw(w, shape, dt)),
                                     jax.ShapeDtypeStruct(shape, dt), words, vmap_method="sequential")
        words = np.asarray(words)
        if jax.default_backend() == "gpu":
            return jax.dlpack.from_dlpack(self.draw(words, shape, dt, backend="cuda"))
        if dt.name == "bfloat16":  # NumPy cannot export bfloat16 through DLPack: JAX copies it in
            return jax.device_put(self.draw(words, shape, dt))
        # no copy: JAX's CPU client takes a 64-byte-aligned host buffer through DLPack as it is
        return jax.dlpack.from_dlpack(self.draw(words, shape, dt, aligned=True), copy=False)

    def __repr__(self):
        return f"rinit_fast.jax.{self.name}"


def _aligned_empty(shape, dtype, align=64):
    """An uninitialised C-contiguous NumPy array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = math.prod(shape)
    raw = np.empty(n * dtype.itemsize + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n * dtype.itemsize].view(dtype).reshape(shape)


def _axes(in_axis, out_axis, batch_axis):
    return (in_axis, out_axis, batch_axis)


def variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """As ``jax.nn.initializers.variance_scaling`` (real dtypes): rf's ``variance_scaling`` scheme with
    JAX's fans; ``truncated_normal`` is cut at ±2 std and rescaled by 1/0.8796…, as JAX."""
    return _Spec("variance_scaling", "variance_scaling",
                 {"scale": scale, "mode": mode, "distribution": distribution},
                 axes=_axes(in_axis, out_axis, batch_axis), dtype=dtype)


def _vs(name, scale, mode, distribution):
    def factory(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
        s = variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)
        s.name = name
        return s
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"As ``jax.nn.initializers.{name}``: ``variance_scaling({scale}, {mode!r}, "
                       f"{distribution!r})`` with JAX's fan rule.")
    return factory


glorot_normal = _vs("glorot_normal", 1.0, "fan_avg", "truncated_normal")
glorot_uniform = _vs("glorot_uniform", 1.0, "fan_avg", "uniform")
lecun_normal = _vs("lecun_normal", 1.0, "fan_in", "truncated_normal")
lecun_uniform = _vs("lecun_uniform", 1.0, "fan_in", "uniform")
he_normal = _vs("he_normal", 2.0, "fan_in", "truncated_normal")
he_uniform = _vs("he_uniform", 2.0, "fan_in", "uniform")
xavier_normal, xavier_uniform = glorot_normal, glorot_uniform
kaiming_normal, kaiming_uniform = he_normal, he_uniform


def _real(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    return float(x)


def normal(stddev=1e-2, dtype=None):
    """N(0, stddev²) (``jax.nn.initializers.normal``)."""
    return _Spec("normal", "normal", {"std": _real(stddev, "stddev")}, dtype=dtype)


def uniform(scale=1e-2, dtype=None):
    """U[0, scale) (``jax.nn.initializers.uniform``): rf's ``uniform01`` times scale."""
    return _Spec("uniform", "uniform01", gain=_real(scale, "scale"), dtype=dtype)


def truncated_normal(stddev=1e-2, dtype=None, lower=-2.0, upper=2.0):
    """stddev · N(0, 1) cut to [lower, upper] (``jax.nn.initializers.truncated_normal``).  Supported cuts:
    ±2 (the default), or bounds beyond ±8.6 (no stream value lies beyond: a plain normal)."""
    lower, upper = _real(lower, "lower"), _real(upper, "upper")
    if lower <= -GAUSS_MAX and upper >= GAUSS_MAX:
        return _Spec("truncated_normal", "normal", {"std": _real(stddev, "stddev")}, dtype=dtype)
    if (lower, upper) != (-2.0, 2.0):
        raise ValueError(f"truncated_normal: rinit_fast cuts at lower=-2, upper=2 (the stream's redraw rule) "
                         f"or not at all (beyond ±{GAUSS_MAX}); got lower={lower}, upper={upper}; use "
                         f"jax.nn.initializers.truncated_normal for other bounds")
    return _Spec("truncated_normal", "normal", {"std": _real(stddev, "stddev"), "truncated": True},
                 dtype=dtype)


def constant(value, dtype=None):
    """Every entry = value (a scalar) (``jax.nn.initializers.constant``)."""
    if np.ndim(value) != 0:
        raise ValueError(f"constant: rinit_fast takes a scalar value, got an array of shape "
                         f"{np.shape(value)}; use jax.nn.initializers.constant for arrays")
    return _Spec("constant", "constant", {"value": _real(value, "value")}, dtype=dtype)


def zeros(key, shape, dtype=None):
    """Zeros (as ``jax.nn.initializers.zeros``: an initialiser itself, not a factory)."""
    return jnp.zeros(_shape(shape), _dtype(dtype))


def ones(key, shape, dtype=None):
    """Ones (as ``jax.nn.initializers.ones``)."""
    return jnp.ones(_shape(shape), _dtype(dtype))


def orthogonal(scale=1.0, column_axis=-1, dtype=None):
    """As ``jax.nn.initializers.orthogonal``: the (prod(other axes), shape[column_axis]) matrix is rf's
    ``orthogonal`` (Q·sign(diag R) of the stream's Gaussian matrix, semi-orthogonal when not square),
    times scale, with its columns moved to ``column_axis``."""
    column_axis = _validate.integer(column_axis, "column_axis")
    return _Spec("orthogonal", "orthogonal", gain=_real(scale, "scale"), column_axis=column_axis, dtype=dtype)


def half_glorot(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """rf's ``half_glorot``: N(0, 1/(fan_in + fan_out)) (a plain normal), JAX's fan rule."""
    return _Spec("half_glorot", "half_glorot", axes=_axes(in_axis, out_axis, batch_axis), dtype=dtype)


def rescaled_glorot(c=None, p=None, s=None, in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """rf's ``rescaled_glorot`` (square fans only): N(0, 1/(n·s_n²)), s_n from ``c``, ``p`` or ``s``."""
    return _Spec("rescaled_glorot", "rescaled_glorot", {"c": c, "p": p, "s": s},
                 axes=_axes(in_axis, out_axis, batch_axis), dtype=dtype)


def initializer(scheme, *, in_axis=-2, out_axis=-1, batch_axis=(), dtype=None, gain=1.0, index=0, layer=0,
                **params):
    """Any rf scheme (``rf.schemes()``, rf's laws) as an ``init(key, shape, dtype)``, JAX's fan rule, at
    stream position (``index``, ``layer``) of the key's seed."""
    name = scheme_table.canonical(scheme)
    if name == "orthogonal":
        return _Spec(name, name, params, gain=_real(gain, "gain"), column_axis=-1, dtype=dtype, index=index,
                     layer=layer)
    return _Spec(name, name, params, gain=_real(gain, "gain"), axes=_axes(in_axis, out_axis, batch_axis),
                 dtype=dtype, index=index, layer=layer)
