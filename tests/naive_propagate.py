"""Slow, obviously-right float64 reference of ``rf.propagate``.

Every layer is materialised with ``rf.sample`` (that is the contract: layer ``l`` of network ``j`` is
``rf.sample(scheme, (width, fan_in), seed=seed, start=j, layer=l)``), inputs, output gradients and
biases come from the pure-NumPy stream of tests/naive.py, and the whole network runs in float64 NumPy,
storing everything.  The statistics follow docs/propagate.md literally.
"""
from __future__ import annotations

import numpy as np

import naive
import rinit_fast as rf
from rinit_fast.rng import Purpose

FIELDS = ("preact_mean", "preact_var", "preact_unit_var", "act_mean", "act_var", "act_unit_var",
          "act_abs_mean", "grad_var")


def activation(name):
    """(f, f') in float64; f'(0) = 0 for relu."""
    if name == "linear":
        return (lambda z: z), (lambda z: np.ones_like(z))
    if name == "tanh":
        return np.tanh, (lambda z: 1.0 - np.tanh(z) ** 2)
    if name == "sigmoid":
        def sig(z):
            return 1.0 / (1.0 + np.exp(-z))
        return sig, (lambda z: sig(z) * (1.0 - sig(z)))
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(np.float64))
    raise ValueError(name)


def _normals(seed, purpose, index, sub, count, dtype):
    return naive.stream(seed, index, naive.c3_word(int(purpose), sub), count, "normal", dtype)


def network(scheme, width, depth, activation_name, samples, seed, j, gain=1.0, bias_std=0.0,
            dtype="float32", in_width=None, **params):
    """Statistics (depth, 8) of network j, columns FIELDS, and the weights used."""
    in_width = width if in_width is None else in_width
    dt = np.dtype(dtype).type
    f, df = activation(activation_name)
    x = np.stack([_normals(seed, Purpose.PROP_INPUT, j, s, in_width, dtype) for s in range(samples)],
                 axis=1).astype(np.float64)                                    # (in_width, samples)
    g = np.stack([_normals(seed, Purpose.PROP_GRAD, j, s, width, dtype) for s in range(samples)],
                 axis=1).astype(np.float64)
    out = np.zeros((depth, len(FIELDS)))
    weights, derivs = [], []
    for layer in range(depth):
        fan_in = in_width if layer == 0 else width
        w = rf.sample(scheme, (width, fan_in), seed=seed, start=j, layer=layer, dtype=dtype, gain=gain,
                      **params).astype(np.float64)
        weights.append(w)
        z = w @ x
        if bias_std != 0.0:
            b = (_normals(seed, Purpose.PROP_BIAS, j, layer, width, dtype) * dt(bias_std)).astype(np.float64)
            z = z + b[:, None]
        x = f(z)
        derivs.append(df(z))
        out[layer, 0] = z.mean()
        out[layer, 1] = z.var()
        out[layer, 2] = z.var(axis=0).mean()
        out[layer, 3] = x.mean()
        out[layer, 4] = x.var()
        out[layer, 5] = x.var(axis=0).mean()
        out[layer, 6] = np.abs(x).mean()
    delta = g
    for layer in range(depth - 1, -1, -1):
        delta = weights[layer].T @ (derivs[layer] * delta)
        out[layer, 7] = (delta ** 2).mean()
    return out, weights


def propagate(scheme, width, depth, activation_name, batch, samples, seed=0, start=0, **kw):
    """Per-network statistics (batch, depth, 8) of networks start .. start+batch-1."""
    return np.stack([network(scheme, width, depth, activation_name, samples, seed, start + b, **kw)[0]
                     for b in range(batch)])


def pool(stats):
    """Pooled statistics over networks, straight from the definitions (equal counts per network)."""
    m = stats[:, :, 0]
    a = stats[:, :, 3]
    return {
        "preact_mean": m.mean(0),
        "preact_var": (stats[:, :, 1] + m ** 2).mean(0) - m.mean(0) ** 2,
        "preact_unit_var": stats[:, :, 2].mean(0),
        "act_mean": a.mean(0),
        "act_var": (stats[:, :, 4] + a ** 2).mean(0) - a.mean(0) ** 2,
        "act_unit_var": stats[:, :, 5].mean(0),
        "act_abs_mean": stats[:, :, 6].mean(0),
        "grad_var": stats[:, :, 7].mean(0),
    }
