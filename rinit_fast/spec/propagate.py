"""The spec of ``rf.propagate``: codes, constants and the launch plan layout shared by the API
(rinit_fast/propagate.py), the Numba kernels (kernels/cpu/propagate.py) and the CUDA launcher
(kernels/cuda/propagate_launch.py, kernels/cuda/propagate.cu)."""
from __future__ import annotations

STAT_FIELDS = ("preact_mean", "preact_var", "preact_unit_var", "act_mean", "act_var", "act_unit_var",
               "act_abs_mean", "grad_var")
"""Columns of the per-network statistics array (batch, depth, NSTAT)."""
NSTAT = len(STAT_FIELDS)

FAMILIES = {"normal": 0, "uniform": 1, "truncated": 2, "constant": 3}
"""Weight families generated inside the kernels (orthogonal weights are materialised instead)."""

# CUDA GEMM tiles (kernels/cuda/propagate.cu)
CUDA_BM = CUDA_BN = CUDA_BK = 32
CUDA_THREADS = 256
CUDA_TM = 4
CUDA_NCOL = 5

PLAN_FIELDS = ("NB", "WIDTH", "INW", "MAXW", "S", "FAMILY", "K0", "K1", "C2START", "ACT", "SEG", "DEPTH",
               "C3X", "C3G")
"""The int64 plan array of the CUDA kernels: field f is at index PLAN_FIELDS.index(f)."""
PLAN = {f: i for i, f in enumerate(PLAN_FIELDS)}

C_CONSTANTS = {
    "RF_PG_BM": CUDA_BM, "RF_PG_BN": CUDA_BN, "RF_PG_BK": CUDA_BK, "RF_PG_THREADS": CUDA_THREADS,
    "RF_PG_TM": CUDA_TM, "RF_PG_NSTAT": NSTAT, "RF_PG_NCOL": CUDA_NCOL,
    **{f"RF_PG_{f}": i for i, f in enumerate(PLAN_FIELDS)}, "RF_PG_COUNT": len(PLAN_FIELDS),
}
