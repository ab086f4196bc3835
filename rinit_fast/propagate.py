"""``rf.propagate``: signal propagation through depth (BRIEF §2 "Depth instead of time"; docs/propagate.md).

A stack ``x_{l+1} = f(W_l x_l + b_l)``, l = 0 .. depth-1, with a fresh matrix per layer: layer ``l`` of
network ``j`` is ``rf.sample(scheme, (width, fan_in), seed=seed, start=j, layer=l)`` (fan_in =
``in_width`` for layer 0, ``width`` after), regenerated inside the kernel and never stored whole.
Validate → plan → call the kernel of kernels/cpu/propagate.py (or, backend="cuda", kernels/cuda/propagate.cu
through kernels/cuda/propagate_launch.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .kernels.cpu import threads
from . import _backend, _validate, scheme_table as schemes
from .rng import Purpose, counter_word3, key_words
from .spec import activations

__all__ = ["propagate", "PropagateResult"]

STAT_FIELDS = ("preact_mean", "preact_var", "preact_unit_var", "act_mean", "act_var", "act_unit_var",
               "act_abs_mean", "grad_var")
_PANEL_VALUES = 16384          # weights per generated panel (kernels/cpu/propagate.py): 64 KiB in float32,
_PANEL_MIN_ROWS = 64           # but at least 64 rows (thinner GEMMs run slower: docs/propagate.md),
_PANEL_MAX_VALUES = 1 << 20    # unless that would exceed 2**20 values
_STORE_BUDGET = 1 << 30        # bytes of stored derivatives (all networks in flight) before checkpointing
_ORTHO_CHUNK = 8               # networks per materialised layer for orthogonal schemes
MAX_DEPTH = 2 ** 24            # layers are sub-indices of the weights stream


@dataclass(frozen=True, eq=False)
class PropagateResult:
    """Statistics of a propagation, one value per layer ``l`` = 0 .. depth-1 (docs/propagate.md).

    Forward fields describe layer ``l``: its pre-activations ``z_l = W_l x_l + b_l`` (``preact_*``) and
    its output ``x_{l+1} = f(z_l)`` (``act_*``), pooled over units, inputs and networks.  ``*_unit_var``
    is the variance across the units of one input, averaged over inputs and networks (0 when every unit
    of the layer is identical).  ``grad_var[l]`` is the mean over units, inputs and networks of
    ``(∂L/∂x_l)²``, the gradient of ``L = <g, x_depth>`` at the *input* of layer ``l`` (so
    ``grad_var[0]`` is at the network input).

    ``per_network`` holds the same fields with shape (batch, depth), one row per network (pooled over
    its units and inputs); ``config`` the call's parameters.
    """

    preact_mean: np.ndarray
    preact_var: np.ndarray
    preact_unit_var: np.ndarray
    act_mean: np.ndarray
    act_var: np.ndarray
    act_unit_var: np.ndarray
    act_abs_mean: np.ndarray
    act_second_moment: np.ndarray
    grad_var: np.ndarray
    per_network: "PropagateResult | None" = field(default=None, repr=False)
    config: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_networks(cls, stats, config=None):
        """Pool per-network statistics ``stats`` (batch, depth, 8: columns ``STAT_FIELDS``).

        Every network has the same number of units and inputs, so the pooled mean is the mean of the
        networks' means and the pooled variance is the mean of their variances plus the variance of
        their means (exact, no cancellation).
        """
        stats = np.asarray(stats, dtype=np.float64)
        per = {name: np.ascontiguousarray(stats[:, :, c]) for c, name in enumerate(STAT_FIELDS)}
        per["act_second_moment"] = per["act_var"] + per["act_mean"] ** 2
        pooled = {}
        for kind in ("preact", "act"):
            m = per[f"{kind}_mean"]
            mean = m.mean(axis=0)
            pooled[f"{kind}_mean"] = mean
            pooled[f"{kind}_var"] = per[f"{kind}_var"].mean(axis=0) + ((m - mean) ** 2).mean(axis=0)
            pooled[f"{kind}_unit_var"] = per[f"{kind}_unit_var"].mean(axis=0)
        pooled["act_abs_mean"] = per["act_abs_mean"].mean(axis=0)
        pooled["act_second_moment"] = per["act_second_moment"].mean(axis=0)
        pooled["grad_var"] = per["grad_var"].mean(axis=0)
        per_net = cls(**per, config=dict(config or {}))
        return cls(**pooled, per_network=per_net, config=dict(config or {}))

    @property
    def preact_second_moment(self):
        """Mean square of the pre-activations, preact_var + preact_mean²."""
        return self.preact_var + self.preact_mean ** 2

    def network_stats(self):
        """The per-network statistics as one (batch, depth, 8) array, columns ``STAT_FIELDS``."""
        src = self.per_network if self.per_network is not None else self
        return np.stack([getattr(src, name) for name in STAT_FIELDS], axis=-1)

    @classmethod
    def combine(cls, results):
        """Pool results computed for different networks (e.g. batches start=0 and start=batch) as if
        they had been computed in one call."""
        results = list(results)
        if not results:
            raise ValueError("combine needs at least one PropagateResult")
        same = ("scheme", "width", "depth", "in_width", "activation", "samples", "seed", "gain", "bias_std",
                "dtype", "params")
        key = [{k: r.config.get(k) for k in same} for r in results]
        if any(k != key[0] for k in key[1:]):
            raise ValueError("combine: the results come from different configurations (scheme, sizes, "
                             "activation, samples, seed, gain, bias, dtype must agree; only start and batch "
                             "may differ)")
        stats = np.concatenate([r.network_stats() for r in results], axis=0)
        cfg = dict(results[0].config)
        cfg["batch"] = stats.shape[0]
        return cls.from_networks(stats, cfg)

    def as_dict(self):
        """The pooled fields as a dict of arrays (plain data)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("per_network", "config")}


def _family(draw, name):
    """(kernel family code, mul, add) of a Draw, or None for orthogonal (materialised)."""
    f = draw.family
    if f == "normal":
        return 0, 1.0, 0.0
    if f == "uniform01":
        return 1, 1.0, 0.0
    if f == "uniform":
        return 1, 2.0, -1.0
    if f == "truncated":
        return 2, 1.0, 0.0
    if f == "constant":
        return 3, 1.0, 0.0
    if f == "orthogonal":
        return None
    raise AssertionError(f"{name}: family {f}")  # pragma: no cover


def _panel_rows(width, in_width):
    fi = max(width, in_width)
    return max(1, min(width, max(_PANEL_VALUES // fi, min(_PANEL_MIN_ROWS, _PANEL_MAX_VALUES // fi))))


def propagate(scheme, width, depth, *, activation, batch=1, samples=32, seed=0, start=0, backend="cpu",
              gain=1.0, bias_std=0.0, dtype="float32", in_width=None, checkpoint=None, **scheme_params):
    """Propagate random inputs through ``batch`` random networks of ``depth`` layers and return the
    per-layer statistics (a :class:`PropagateResult`).

    Parameters
    ----------
    scheme : str
        An initialisation scheme of ``rf.schemes()`` (real schemes only).
    width : int
        Units per layer: every layer is (width, width), except layer 0, which is (width, in_width).
    depth : int
        Number of layers.
    activation : "linear", "tanh", "sigmoid" or "relu"
    batch : int
        Number of networks; network ``b`` of the call is network ``start + b`` of the stream.
    samples : int
        Inputs x_0 ~ N(0, I) per network (value k of the PROP_INPUT stream (network, sample)); all of
        them go through the network together, so each generated weight serves ``samples`` inputs.
    seed, start : int
        The stream's key and the first network index.
    backend : "cpu" or "cuda" (kernels/cuda/propagate.cu; the statistics come back as NumPy arrays
        either way; docs/cuda.md "Propagate kernels").
    gain : float
        Multiplies the scheme's standard deviation (or bound, or constant).
    bias_std : float
        Biases b_l ~ N(0, bias_std²) (PROP_BIAS stream: network, layer; value i = unit i); 0 = no bias.
    dtype : "float32" or "float64"
        Weights, states and arithmetic; statistics are accumulated in float64.
    in_width : int, optional
        Input width (fan-in of layer 0); default ``width``.
    checkpoint : int, optional
        Layers per recomputed segment of the backward pass.  Default: store f'(z) of every layer
        (memory depth · width · samples per network in flight) when that fits in 1 GiB, else segments of
        ceil(sqrt(depth)) layers (memory (2·sqrt(depth) + 4) · width · samples, one more forward pass).
        The results do not depend on it.
    **scheme_params
        The scheme's parameters (``std``, ``a``, ``value``, ...).
    """
    name = schemes.canonical(scheme)
    width = _validate.positive_int(width, "width")
    depth = _validate.positive_int(depth, "depth")
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be <= 2**24 (layers are sub-indices of the weights stream), got {depth}")
    in_width = width if in_width is None else _validate.positive_int(in_width, "in_width")
    act = _validate.activation(activation)
    batch = _validate.positive_int(batch, "batch")
    samples = _validate.positive_int(samples, "samples")
    if samples > _validate.MAX_SUB:
        raise ValueError(f"samples must be <= 2**24 (inputs are sub-indices of the PROP_INPUT stream), got "
                         f"{samples}")
    seed = _validate.seed(seed)
    start, batch, _, _ = _validate.stream_range(start, batch)
    backend = _backend.check(backend)
    bias_std = _validate.nonneg_finite(bias_std, "bias_std")
    draw0 = schemes.resolve(name, width, in_width, gain, **scheme_params)
    draw = schemes.resolve(name, width, width, gain, **scheme_params)
    if draw.complex:
        raise ValueError(f"propagate: scheme {name!r} is complex; propagation is defined for real schemes "
                         f"only (use e.g. 'glorot_normal')")
    dt = _validate.real_dtype(dtype, "dtype")
    if checkpoint is not None:
        checkpoint = _validate.positive_int(checkpoint, "checkpoint")
    fam = _family(draw, name)
    maxw = max(width, in_width)
    pr = _panel_rows(width, in_width)
    isz = dt.itemsize
    inflight = min(batch, threads.nthreads())
    config = dict(scheme=name, width=width, depth=depth, in_width=in_width, activation=act, batch=batch,
                  samples=samples, seed=seed, start=start, gain=float(gain), bias_std=bias_std,
                  dtype=dt.name, params=dict(scheme_params))
    stats = np.zeros((batch, depth, len(STAT_FIELDS)), dtype=np.float64)
    k0, k1 = key_words(seed)
    c3 = {p: counter_word3(p, 0) for p in (Purpose.WEIGHTS, Purpose.PROP_BIAS, Purpose.PROP_INPUT,
                                           Purpose.PROP_GRAD)}

    if backend == "cuda":
        _propagate_cuda(stats, config, fam, draw0, draw, checkpoint, scheme_params)
        return PropagateResult.from_networks(stats, config)

    if fam is None:  # orthogonal: materialise each layer (QR), layer-major over chunks of networks
        chunk = min(batch, _ORTHO_CHUNK)
        nbytes = chunk * isz * (samples * (depth * width + 4 * maxw + width) + 2 * width * maxw)
        _validate.memory(nbytes + stats.nbytes, f"propagate({name!r}, width={width}, depth={depth}, "
                         f"samples={samples})")
        config["checkpoint"] = depth
        _propagate_given(stats, name, width, in_width, depth, samples, act, seed, start, gain, bias_std, dt,
                         pr, chunk, scheme_params)
        return PropagateResult.from_networks(stats, config)

    def per_network(seg):
        nseg = -(-depth // seg)
        ck = nseg if nseg > 1 else 0
        return isz * (samples * (4 * maxw + width + seg * width + ck * maxw) + pr * maxw)

    if checkpoint is None:
        store = inflight * isz * samples * depth * width
        seg = depth if store <= _STORE_BUDGET else max(1, math.isqrt(depth - 1) + 1)
    else:
        seg = min(checkpoint, depth)
    _validate.memory(inflight * per_network(seg) + stats.nbytes,
                     f"propagate({name!r}, width={width}, depth={depth}, samples={samples}, checkpoint={seg})")
    config["checkpoint"] = seg
    code, mul, add = fam
    typ = dt.type
    from .kernels.cpu import propagate as kern
    fn = kern.compiled(kern.network_f32 if dt == np.float32 else kern.network_f64)
    args = (k0, k1, c3[Purpose.WEIGHTS], c3[Purpose.PROP_BIAS], c3[Purpose.PROP_INPUT], c3[Purpose.PROP_GRAD],
            code, typ(mul), typ(add), typ(draw0.scale), typ(draw.scale), typ(bias_std), width, in_width,
            samples, activations.code(act), seg, pr, np.empty((0, 0), dt))

    def task(b):
        fn(stats[b], args[0], args[1], np.uint64(start + b), *args[2:])

    with threads.blas_single_thread():
        threads.run_tasks(task, batch)
    return PropagateResult.from_networks(stats, config)


def _propagate_cuda(stats, config, fam, draw0, draw, checkpoint, params):
    """backend="cuda": kernels/cuda/propagate.cu through kernels/cuda/propagate_launch.py (docs/cuda.md,
    "Propagate kernels").  Same streams, same statistics; the statistics come back as NumPy arrays."""
    from .kernels.cuda import propagate_launch as pl
    name, width, depth, in_width = config["scheme"], config["width"], config["depth"], config["in_width"]
    batch, samples, seed, start = config["batch"], config["samples"], config["seed"], config["start"]
    dt = np.dtype(config["dtype"])
    isz = dt.itemsize
    maxw = max(width, in_width)
    if checkpoint is None:
        store = batch * isz * samples * depth * width
        seg = depth if store <= _STORE_BUDGET else max(1, math.isqrt(depth - 1) + 1)
    else:
        seg = min(checkpoint, depth)
    per = pl.bytes_per_network(width, in_width, depth, samples, seg, isz)
    if fam is None:  # orthogonal: one materialised layer per network of the chunk (+ cuSOLVER's float64 QR)
        per += 4 * 8 * width * maxw
        chunk = min(batch, _ORTHO_CHUNK)
    else:
        free = _backend.available_memory("cuda")
        chunk = max(1, min(batch, int(0.5 * free) // max(1, per)))
    _validate.memory(chunk * per + stats.nbytes, f"propagate({name!r}, width={width}, depth={depth}, "
                     f"samples={samples}, checkpoint={seg}) on the GPU", backend="cuda")
    config["checkpoint"] = seg
    k0, k1 = key_words(seed)
    weights = None
    code, mul, add = (0, 1.0, 0.0) if fam is None else fam
    if fam is None:
        from .sampling import sample

        def weights(c0, nb, layer):
            fi = in_width if layer == 0 else width
            return sample(name, (width, fi), batch=nb, seed=seed, start=start + c0, layer=layer, dtype=dt,
                          gain=config["gain"], backend="cuda", **params)
    pl.propagate(stats, width=width, in_width=in_width, depth=depth, samples=samples,
                 act=activations.code(config["activation"]), k0=int(k0), k1=int(k1), start=start,
                 c3w=int(counter_word3(Purpose.WEIGHTS, 0)), c3b=int(counter_word3(Purpose.PROP_BIAS, 0)),
                 c3x=int(counter_word3(Purpose.PROP_INPUT, 0)), c3g=int(counter_word3(Purpose.PROP_GRAD, 0)),
                 family=code, mul=mul, add=add, scale0=draw0.scale, scale=draw.scale,
                 bias_std=config["bias_std"], dtype=dt, seg=seg, chunk=chunk, weights=weights)


def _propagate_given(stats, name, width, in_width, depth, samples, act, seed, start, gain, bias_std, dt, pr,
                     chunk, params):
    """Materialised weights: each layer of a chunk of networks drawn by rf.sample (once forward, once
    backward), then the same layer steps as the generated path (kernels/cpu/propagate.py ``given_*``)."""
    from .kernels.cpu import propagate as kern
    from .sampling import sample
    k0, k1 = key_words(seed)
    c3b = counter_word3(Purpose.PROP_BIAS, 0)
    c3x = counter_word3(Purpose.PROP_INPUT, 0)
    c3g = counter_word3(Purpose.PROP_GRAD, 0)
    maxw = max(width, in_width)
    code = activations.code(act)
    typ = dt.type
    f32 = dt == np.float32
    k_in, k_fw, k_bw = kern.compiled(*((kern.given_inputs_f32, kern.given_forward_f32, kern.given_backward_f32)
                                       if f32 else
                                       (kern.given_inputs_f64, kern.given_forward_f64, kern.given_backward_f64)))
    nthreads = threads.nthreads()
    for c0 in range(0, stats.shape[0], chunk):
        nb = min(chunk, stats.shape[0] - c0)
        st = stats[c0:c0 + nb]
        X3 = np.zeros((nb, maxw, samples), dt)
        G3 = [np.zeros((maxw, samples), dt) for _ in range(nb)]
        G3b = [np.zeros((maxw, samples), dt) for _ in range(nb)]
        Z3 = np.zeros((nb, width, samples), dt)
        D4 = np.zeros((nb, depth, width, samples), dt)
        c2 = [np.uint64(start + c0 + b) for b in range(nb)]
        for b in range(nb):
            k_in(X3[b], G3[b], k0, k1, c2[b], c3x, c3g, in_width, width)
        for layer in range(depth):
            fi = in_width if layer == 0 else width
            W3 = sample(name, (width, fi), batch=nb, seed=seed, start=start + c0, layer=layer, dtype=dt,
                        gain=gain, **params)

            def fwd(b, W3=W3, layer=layer):
                k_fw(W3[b], X3[b], Z3[b], D4[b, layer], st[b, layer], k0, k1, c2[b], c3b + np.uint64(layer),
                     typ(bias_std), code, pr)
            with threads.blas_single_thread():
                threads.run_tasks(fwd, nb, nthreads)
        for layer in range(depth - 1, -1, -1):
            fi = in_width if layer == 0 else width
            W3 = sample(name, (width, fi), batch=nb, seed=seed, start=start + c0, layer=layer, dtype=dt,
                        gain=gain, **params)

            def bwd(b, W3=W3, layer=layer):
                k_bw(W3[b], D4[b, layer], G3[b], G3b[b], st[b, layer], pr)
                G3[b], G3b[b] = G3b[b], G3[b]
            with threads.blas_single_thread():
                threads.run_tasks(bwd, nb, nthreads)


def _propagate_materialised(scheme, width, depth, *, activation, batch=1, samples=32, seed=0, start=0,
                            gain=1.0, bias_std=0.0, dtype="float32", in_width=None, **params):
    """The materialised-weights path for any real scheme (for tests: equals the generated path bit for
    bit when BLAS is deterministic)."""
    name = schemes.canonical(scheme)
    in_width = width if in_width is None else in_width
    dt = np.dtype(dtype)
    stats = np.zeros((batch, depth, len(STAT_FIELDS)), dtype=np.float64)
    _propagate_given(stats, name, width, in_width, depth, samples, _validate.activation(activation), seed,
                     start, gain, bias_std, dt, _panel_rows(width, in_width), min(batch, _ORTHO_CHUNK), params)
    return PropagateResult.from_networks(stats)
