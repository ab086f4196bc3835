"""The spec of ``rf.unroll``: codes, constants and the launch plan layout shared by the API
(rinit_fast/unroll.py), the Numba kernel (kernels/cpu/unroll.py) and the CUDA launcher
(kernels/cuda/unroll_launch.py, kernels/cuda/unroll.cu)."""
from __future__ import annotations

import math

from .activations import C_CONSTANTS as _ACT  # noqa: F401  (the nonlinearity codes: spec/activations.py)

# input modes
NO_INPUT, GAUSSIAN, ARRAY = 0, 1, 2
MODES = {None: NO_INPUT, "gaussian": GAUSSIAN, "array": ARRAY}

NO_FLOOR = -(1 << 62)      # exponent floor of a state that has no inputs to bound it
LANES = 16                 # partial sums of the norm (fixed, so the bits do not depend on the ISA)
RENORM_EXP = 20            # renormalise when ||g|| leaves [2**-20, 2**20]
LN2 = math.log(2.0)

# float64 exp (kernels/cpu/unroll.py exp_nonpos; kernels/cuda/unroll.cu rf_exp_nonpos)
EXP_LOG2E = 1.4426950408889634
EXP_LN2_HI = 6.93147180369123816490e-01
EXP_LN2_LO = 1.90821492927058770002e-10

# CUDA: rows of a thread's tile (one 16-byte load of B for float32)
CUDA_IT = 4

PLAN_FIELDS = ("NB", "R", "N", "D", "DU", "NPAD", "STEPS", "RECORD", "MODE", "NONLIN", "NBIAS", "BX", "RX",
               "EFLOOR", "K0", "K1", "C2START", "C3BASE", "NCHUNKS", "RP", "WSMEM")
"""The int64 plan array of the CUDA kernel: field f is at index PLAN_FIELDS.index(f)."""
PLAN = {f: i for i, f in enumerate(PLAN_FIELDS)}

C_CONSTANTS = {
    "RF_NO_INPUT": NO_INPUT, "RF_GAUSSIAN": GAUSSIAN, "RF_ARRAY": ARRAY,
    "RF_NO_FLOOR": NO_FLOOR, "RF_LANES": LANES, "RF_IT": CUDA_IT, "RF_LN2": LN2,
    "RF_EXP_LOG2E": EXP_LOG2E, "RF_EXP_LN2_HI": EXP_LN2_HI, "RF_EXP_LN2_LO": EXP_LN2_LO,
    **{f"RF_PLAN_{f}": i for i, f in enumerate(PLAN_FIELDS)}, "RF_PLAN_COUNT": len(PLAN_FIELDS),
}
