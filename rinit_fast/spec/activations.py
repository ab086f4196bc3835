"""One code table for the nonlinearities of every operation (unroll, propagate, lyapunov, ...).

The codes are what the Numba kernels and the CUDA kernels receive; the names are what users pass.
Each operation accepts a subset (``UNROLL``, ``PROPAGATE``); ``rinit_fast._validate`` checks a name
against the operation's subset and names the valid ones in its error.
"""
from __future__ import annotations

LINEAR = 0
TANH = 1
SIGMOID = 2
RELU = 3

CODES = {"linear": LINEAR, "tanh": TANH, "sigmoid": SIGMOID, "relu": RELU}
NAMES = {v: k for k, v in CODES.items()}

UNROLL = ("linear", "tanh", "relu")              # rf.unroll (and rf.lyapunov): f of h_t = f(W h + U x + b)
PROPAGATE = ("linear", "tanh", "sigmoid", "relu")  # rf.propagate: x_{l+1} = f(W_l x_l + b_l)


def code(name):
    """The integer code of an activation name (a validated name: see rinit_fast._validate)."""
    return CODES[name]


C_CONSTANTS = {
    # kernels/cuda/unroll.cu, propagate.cu
    "RF_LINEAR": LINEAR,
    "RF_TANH": TANH,
    "RF_SIGMOID": SIGMOID,   # propagate.cu only
    "RF_RELU": RELU,
}
