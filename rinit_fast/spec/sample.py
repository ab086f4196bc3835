"""The spec of ``rf.sample``: the families the kernels draw, and how a scheme's draw maps onto the
stream (kernels/cpu/sampling.py, kernels/cuda/sampling.cu)."""
from __future__ import annotations

FAMILIES = ("normal", "uniform01", "uniform", "truncated", "constant", "orthogonal")
ORTHO_CHUNK = 32           # matrices per QR batch (bounds the float64 workspace)

C_CONSTANTS = {}
