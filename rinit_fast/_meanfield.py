"""Mean-field (infinite-width) theory of signal propagation through depth, for comparing the Monte Carlo
of ``rf.propagate`` with theory (docs/propagate.md).

For a stack ``x_{l+1} = f(W_l x_l + b_l)`` of square layers with i.i.d. zero-mean weights of variance
``weight_var / width`` and biases of variance ``bias_var``, the pre-activations of layer ``l`` are, as
the width grows, Gaussian with variance ``q_l`` (Poole et al. 2016; Schoenholz et al. 2017):

    q_0     = weight_var · q0 + bias_var                 (q0 = E[x_0²], 1 for N(0, I) inputs)
    q_{l+1} = weight_var · E[f(√q_l z)²] + bias_var       (z ~ N(0, 1))
    chi_l   = weight_var · E[f'(√q_l z)²]

and the mean square of the gradient of ``L = <g, x_depth>`` (``E[g²] = 1``) with respect to the input
``x_l`` of layer ``l`` is ``grad_var[l] = chi_l · chi_{l+1} ··· chi_{depth-1}``.

The Gaussian expectations are computed by quadrature.  Plain Gauss–Hermite is exact for the smooth,
unsaturated cases but fails where the integrand has features much narrower than the Gaussian: the
kink of relu and |f| at 0, and tanh/sigmoid at large q (``tanh(√q z)`` switches over a width 1/√q;
measured with 256 nodes: error 2.5e-2 in E[tanh²] at q = 256, 1.3e-3 in E|tanh| at q = 1).  So the
expectations use composite Gauss–Legendre panels in z on [-12, 12] (the mass outside is 2e-33) whose
breakpoints are 0, every 0.5 (the Gaussian's scale) and ±2^k/√q, k = -4..6 (the activation's scale at
this q): every panel holds a smooth, resolved piece of the integrand, so the rule is accurate to about
1e-13 for every activation and every q up to ~1e8 (tests/test_propagate.py checks it against closed
forms and Gauss–Hermite).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate

ACTIVATIONS = _validate.ACTIVATIONS

_GL_POINTS = 16
_Z_MAX = 12.0


def _expit(u):
    # 1 / (1 + e^-u) without overflow warnings
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def activation_fn(name):
    """(f, f') of an activation as float64 NumPy functions (f'(0) = 0 for relu, as PyTorch)."""
    if name == "linear":
        return (lambda u: np.asarray(u, dtype=np.float64)), (lambda u: np.ones_like(u, dtype=np.float64))
    if name == "tanh":
        def dtanh(u):
            t = np.tanh(u)
            return 1.0 - t * t
        return np.tanh, dtanh
    if name == "sigmoid":
        def dsig(u):
            s = _expit(u)
            return s * (1.0 - s)
        return _expit, dsig
    if name == "relu":
        return (lambda u: np.maximum(u, 0.0)), (lambda u: (np.asarray(u) > 0).astype(np.float64))
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def gaussian_nodes(q):
    """Nodes z and weights w with sum(w · h(z)) ≈ E[h(z)], z ~ N(0, 1), for integrands h(z) =
    F(√q z) whose features sit at |√q z| ≲ 1 (see the module docstring)."""
    s = math.sqrt(q) if q > 0 else 0.0
    bps = [0.0] + [0.5 * k for k in range(1, int(2 * _Z_MAX) + 1)]
    if s > 0.0:
        bps += [2.0 ** k / s for k in range(-4, 7)]
    bps = np.unique(np.clip(np.array(bps), 0.0, _Z_MAX))
    bps = np.concatenate([-bps[:0:-1], bps])
    x, wx = np.polynomial.legendre.leggauss(_GL_POINTS)
    a, b = bps[:-1, None], bps[1:, None]
    z = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * wx).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z, w


def gauss_hermite_nodes(n=64):
    """Probabilists' Gauss–Hermite nodes and weights normalised to E over N(0, 1) (exact for
    polynomials of degree < 2n)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class MeanField:
    """Infinite-width predictions, each of shape (depth,), indexed like ``rf.propagate``'s fields.

    ``preact_var[l]`` is q_l, the variance of the pre-activations of layer l; ``act_mean``,
    ``act_var`` (= E f² - (E f)²), ``act_abs_mean`` describe the layer's output x_{l+1} = f(z_l);
    ``act_second_moment`` is E f²; ``chi[l]`` = weight_var · E[f'(√q_l z)²]; ``grad_var[l]`` = chi_l ···
    chi_{depth-1}, the mean square of ∂L/∂x_l (the gradient at the layer's input) for E[g²] = 1.
    """

    activation: str
    weight_var: float
    bias_var: float
    q0: float
    preact_var: np.ndarray
    act_mean: np.ndarray
    act_var: np.ndarray
    act_abs_mean: np.ndarray
    act_second_moment: np.ndarray
    chi: np.ndarray
    grad_var: np.ndarray


def _moments(activation, q):
    """E f, E f², E|f|, E f'² at pre-activation variance q."""
    if q <= 0.0:  # a deterministic zero pre-activation
        f, df = activation_fn(activation)
        v = float(f(np.zeros(1))[0])
        d = float(df(np.zeros(1))[0]) if activation != "relu" else 0.0
        return v, v * v, abs(v), d * d
    if activation == "linear":   # closed forms
        return 0.0, q, math.sqrt(2.0 * q / math.pi), 1.0
    if activation == "relu":
        m = math.sqrt(q / (2.0 * math.pi))
        return m, 0.5 * q, m, 0.5
    f, df = activation_fn(activation)
    z, w = gaussian_nodes(q)
    u = math.sqrt(q) * z
    fu = f(u)
    d = df(u)
    return float(w @ fu), float(w @ (fu * fu)), float(w @ np.abs(fu)), float(w @ (d * d))


def mean_field(activation, weight_var, bias_var=0.0, depth=1, q0=1.0):
    """The infinite-width recursion for ``depth`` square layers (see the module docstring).

    ``weight_var`` is width × Var(W_ij) (1 for Glorot at gain 1 on square layers, 2 for He, gain²
    times these in general), ``bias_var`` the variance of each bias, ``q0`` = E[x_0²] the mean square of
    the network input (1 for ``rf.propagate``'s N(0, I) inputs).  Returns a :class:`MeanField`.
    """
    activation = _validate.activation(activation)
    weight_var = _validate.nonneg_finite(weight_var, "weight_var")
    bias_var = _validate.nonneg_finite(bias_var, "bias_var")
    q0 = _validate.nonneg_finite(q0, "q0")
    depth = _validate.positive_int(depth, "depth")
    q = np.empty(depth)
    out = np.empty((depth, 4))
    ql = weight_var * q0 + bias_var
    for layer in range(depth):
        q[layer] = ql
        out[layer] = _moments(activation, ql)
        ql = weight_var * out[layer, 1] + bias_var
        if not math.isfinite(ql):
            raise ValueError(f"mean_field: the pre-activation variance overflows after layer {layer} "
                             f"(weight_var={weight_var}); use fewer layers")
    chi = weight_var * out[:, 3]
    grad = np.cumprod(chi[::-1])[::-1].copy()
    return MeanField(activation, weight_var, bias_var, q0, q, out[:, 0].copy(),
                     np.maximum(out[:, 1] - out[:, 0] ** 2, 0.0), out[:, 2].copy(), out[:, 1].copy(),
                     chi, grad)
