"""The spec of ``rf.spectral_radius`` and ``rf.spectral_norm``: paths, constants and control rules shared
by the API (rinit_fast/spectral.py), the Numba kernels (kernels/cpu/spectral.py) and the CUDA launcher
(kernels/cuda/spectral_launch.py, kernels/cuda/spectral.cu).  docs/spectral.md explains each rule."""
from __future__ import annotations

PATHS = ("ritz", "triangular", "isometry", "nilpotent", "exact")
PATH_RITZ, PATH_TRIANGULAR, PATH_ISOMETRY, PATH_NILPOTENT, PATH_EXACT = range(5)

FILTER_SETTLED = 1e-6      # the power filter stops once ||W x|| changed by <= this (relative) ...
FILTER_SETTLED_RUN = 4     # ... for this many consecutive steps

CUDA_MAX_WARPS = 32        # most warps per block (1024 threads)

C_CONSTANTS = {
    "RF_SETTLED": FILTER_SETTLED, "RF_SETTLED_RUN": FILTER_SETTLED_RUN, "RF_SP_MAXW": CUDA_MAX_WARPS,
}
