"""``rf.propagate``: signal propagation through depth (sources [2], [3] in docs/sources.md; docs/propagate.md).

A stack ``x_{l+1} = f(W_l x_l + b_l)``, l = 0 .. depth-1, with a fresh matrix per layer: layer ``l`` of
network ``j`` is ``rf.sample(scheme, (width, fan_in), seed=seed, start=j, layer=l)`` (fan_in =
``in_width`` for layer 0, ``width`` after), regenerated inside the kernel and never stored whole.
Validate (rinit_fast/_validate.py) → plan (rinit_fast/spec/propagate.py: path, segments, panels, memory)
→ run the plan on the backend (kernels/cpu/propagate.py, or kernels/cuda/propagate_launch.py with
kernels/cuda/propagate.cu); the two backends read the same plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from . import _backend, _validate, scheme_table as schemes
from .kernels.cpu import threads
from .sampling import sample
from .spec import propagate as spec
from .spec.propagate import STAT_FIELDS

__all__ = ["propagate", "PropagateResult"]


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
    # validate
    name = schemes.canonical(scheme)
    a = _validate.propagate_args(width, depth, activation=activation, batch=batch, samples=samples, seed=seed,
                                 start=start, bias_std=bias_std, dtype=dtype, in_width=in_width,
                                 checkpoint=checkpoint)
    backend = _backend.check(backend)
    draw0 = schemes.resolve(name, a["width"], a["in_width"], gain, **scheme_params)
    draw = schemes.resolve(name, a["width"], a["width"], gain, **scheme_params)
    if draw.complex:
        raise ValueError(f"propagate: scheme {name!r} is complex; propagation is defined for real schemes "
                         f"only (use e.g. 'glorot_normal')")
    # plan
    plan = spec.plan(backend=backend, draw_family=draw.family, scale0=draw0.scale, scale=draw.scale,
                     inflight=threads.nthreads() if backend == "cpu" else 1,
                     free_bytes=_backend.available_memory("cuda") if backend == "cuda" else None, **a)
    _validate.memory(plan.nbytes, f"propagate({name!r}, width={plan.width}, depth={plan.depth}, "
                     f"samples={plan.samples}, checkpoint={plan.seg})"
                     + (" on the GPU" if backend == "cuda" else ""), backend=backend)
    config = dict(scheme=name, width=plan.width, depth=plan.depth, in_width=plan.in_width,
                  activation=a["activation"], batch=plan.batch, samples=plan.samples, seed=a["seed"],
                  start=plan.start, gain=float(gain), bias_std=plan.bias_std, dtype=plan.dtype,
                  params=dict(scheme_params), checkpoint=plan.seg)
    # run on the backend
    stats = np.zeros(plan.stats_shape, dtype=np.float64)
    weights = _layers(name, plan, a["seed"], gain, scheme_params) if plan.path == spec.MATERIALISED else None
    _runner(backend).run(stats, plan, weights)
    return PropagateResult.from_networks(stats, config)


def _layers(name, plan, seed, gain, params):
    """The materialised path's weights: ``weights(c0, nb, layer)`` is layer ``layer`` of networks
    plan.start + c0 .. + nb - 1, drawn by rf.sample on the plan's backend."""
    def weights(c0, nb, layer):
        return sample(name, (plan.width, plan.in_width if layer == 0 else plan.width), batch=nb, seed=seed,
                      start=plan.start + c0, layer=layer, dtype=plan.dtype, gain=gain, backend=plan.backend,
                      **params)
    return weights


def _runner(backend):
    """The module that executes a plan on a backend: kernels/cpu/propagate.py or
    kernels/cuda/propagate_launch.py (both expose ``run(stats, plan, weights)``)."""
    if backend == "cuda":
        from .kernels.cuda import propagate_launch
        return propagate_launch
    from .kernels.cpu import propagate as cpu
    return cpu


def _propagate_materialised(scheme, width, depth, *, activation, batch=1, samples=32, seed=0, start=0,
                            gain=1.0, bias_std=0.0, dtype="float32", in_width=None, **params):
    """The materialised-weights path for any real scheme (for tests: equals the generated path bit for
    bit when BLAS is deterministic)."""
    from .kernels.cpu import propagate as cpu
    name = schemes.canonical(scheme)
    a = _validate.propagate_args(width, depth, activation=activation, batch=batch, samples=samples, seed=seed,
                                 start=start, bias_std=bias_std, dtype=dtype, in_width=in_width, checkpoint=None)
    draw = schemes.resolve(name, a["width"], a["width"], gain, **params)
    plan = spec.plan(backend="cpu", draw_family="orthogonal", scale0=draw.scale, scale=draw.scale, **a)
    stats = np.zeros(plan.stats_shape, dtype=np.float64)
    cpu.run(stats, plan, _layers(name, plan, a["seed"], gain, params))
    return PropagateResult.from_networks(stats)
