"""The spec of ``rf.unroll``: codes, constants, the plan, the output shapes and the planning logic shared
by the API (rinit_fast/unroll.py), the Numba kernel (kernels/cpu/unroll.py) and the CUDA launcher
(kernels/cuda/unroll_launch.py, kernels/cuda/unroll.cu).  docs/unroll.md explains the numbers.

Flow: ``rinit_fast.unroll`` validates the arguments, calls :func:`plan` (everything the kernels need that
is not an array, as a frozen :class:`Plan`), allocates the outputs of :func:`output_shapes` on W's
backend and hands plan and arrays to that backend's ``unroll(plan, W, UT, bias, xarr, G0, E0, V0, EV0,
out)``.  The CPU kernel reads the plan's fields; the CUDA launcher packs them into the int64 plan array
of :data:`PLAN_FIELDS` (:func:`cuda_plan_array`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import activations
from .activations import C_CONSTANTS as _ACT  # noqa: F401  (the nonlinearity codes: spec/activations.py)
from .stream import GAUSS_MAX, POSITION_BITS, Purpose, counter_word3  # noqa: F401  (GAUSS_MAX: |z| < 8.58)

# --- codes ---------------------------------------------------------------------------------------------
NO_INPUT, GAUSSIAN, ARRAY = 0, 1, 2
"""Input modes: ``inputs=None``, ``"gaussian"`` (drawn inside the kernel), an array."""
MODES = {None: NO_INPUT, "gaussian": GAUSSIAN, "array": ARRAY}
NONLINEARITIES = activations.UNROLL
"""The names ``rf.unroll`` accepts; their codes are spec/activations.py's (linear 0, tanh 1, relu 3)."""

# --- the state h = g · 2**e (docs/unroll.md "Log scale") ------------------------------------------------
RENORM_EXP = 20            # renormalise when ||g|| leaves [2**-20, 2**20] ...
RENORM_HI = 2.0 ** (2 * RENORM_EXP)   # ... i.e. when ||g||² leaves [RENORM_LO, RENORM_HI]
RENORM_LO = 2.0 ** (-2 * RENORM_EXP)
LANES = 16                 # partial sums of the squared norm (fixed, so the bits do not depend on the ISA)
NO_FLOOR = -(1 << 62)      # exponent floor of a state that has no inputs or bias to bound it
FLOOR_MIN = {"float32": -100, "float64": -1000}
"""Lowest exponent floor per dtype: inputs smaller than 2**FLOOR_MIN do not lower the floor further."""
LN2 = math.log(2.0)

# float64 exp of the tanh (kernels/cpu/unroll.py tanh_scaled; kernels/cuda/unroll.cu rf_exp_nonpos)
EXP_LOG2E = 1.4426950408889634
EXP_LN2_HI = 6.93147180369123816490e-01
EXP_LN2_LO = 1.90821492927058770002e-10

# --- limits (rinit_fast/_validate.py raises the errors) ------------------------------------------------
MAX_VALUES = 2 ** (POSITION_BITS + 1)
"""Values of one input stream: 2**48 Philox blocks of at least 2 values (steps · d must be below)."""
W_MAX_LOG2 = {"float32": 100, "float64": 400}
"""max|W|·n must be below 2**W_MAX_LOG2[dtype]: one step must not overflow the scaled state or its
float64 squared norm."""
INPUT_HEADROOM_LOG2 = 10
"""The bound on |U x_t + b| must be below the dtype's largest number times 2**-INPUT_HEADROOM_LOG2."""

# --- CPU work split ------------------------------------------------------------------------------------
CHUNK_R = 64
"""At most this many realisations per CPU work item (see :func:`nchunks`)."""
ITEMS_PER_THREAD = 4
"""Matrices per CPU thread from which work items are whole matrices (see :func:`nchunks`)."""
GEN_VALUES = 512
"""Gaussian inputs a CPU work item draws per row and call: several steps at once when d is small (the
bits never depend on it: every value is value (t-1)·d + i of its stream)."""

# --- CUDA ----------------------------------------------------------------------------------------------
CUDA_IT = 4
"""Rows of a CUDA thread's tile (one 16-byte load of B for float32)."""

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

OUTPUTS = ("log_norm", "tangent_log_norm", "final_state", "final_exponent", "final_tangent",
           "final_tangent_exponent")
"""The arrays every backend fills, in this order (shapes: :func:`output_shapes`)."""


# --- planning ------------------------------------------------------------------------------------------
def mode_of(inputs):
    """The input mode code of a validated ``inputs`` argument (None, "gaussian" or an array)."""
    if inputs is None:
        return NO_INPUT
    return GAUSSIAN if isinstance(inputs, str) else ARRAY


def nchunks(R, batch=1, threads=1):
    """CPU work items per matrix.  Many matrices (batch >= ITEMS_PER_THREAD · threads): whole matrices,
    at most CHUNK_R realisations per item (fewer, larger items: each costs ~20 µs of set-up in Python).
    Fewer: 1 for R = 1, else an even number of chunks of at most CHUNK_R, so two cores share a matrix.
    (No bit depends on it: every realisation is computed by the same operations in any chunk.)"""
    if batch >= ITEMS_PER_THREAD * threads:
        return -(-R // CHUNK_R)
    return 1 if R == 1 else 2 * -(-R // (2 * CHUNK_R))


def chunk(R, nch, c):
    """Realisations [r0, r1) of chunk c of nch (as even as possible)."""
    return (c * R) // nch, ((c + 1) * R) // nch


def steps_per_draw(p):
    """CPU: steps of inputs a row stages at once (GEN_VALUES values, at least one step, at most all)."""
    return min(max(1, GEN_VALUES // p.d), p.steps) if p.mode != NO_INPUT else 1


def input_bound(mode, input_scale, xarr=None, UT=None, bias=None):
    """A bound on |U x_t + b| (per component, float64): input_scale · GAUSS_MAX for Gaussian inputs,
    input_scale · max|x| for an array, times the largest absolute row sum of U, plus max|b|.
    Host arrays (NumPy)."""
    if mode == NO_INPUT:
        xmax = 0.0
    elif mode == GAUSSIAN:
        xmax = input_scale * GAUSS_MAX
    else:
        xmax = input_scale * float(np.abs(xarr).max(initial=0.0))
    if UT is not None and UT.shape[0]:
        xmax *= float(np.abs(UT.astype(np.float64)).sum(axis=0).max())
    return xmax + (float(np.abs(bias).max()) if bias is not None and bias.size else 0.0)


def e_floor(bound, dtype):
    """The lowest exponent of the state: ⌈log2 bound⌉ (so the scaled inputs stay <= 1), not below
    FLOOR_MIN[dtype]; NO_FLOOR without inputs or bias (bound 0)."""
    if not bound > 0:
        return NO_FLOOR
    return max(math.frexp(bound)[1], FLOOR_MIN[np.dtype(dtype).name])


@dataclass(frozen=True)
class Plan:
    """Everything a backend needs to run one ``rf.unroll`` call, besides the arrays.

    batch, R, n: matrices, realisations, state size; d: input size (n, or U's columns); du: rows of Uᵀ
    (0 without U); steps, record_every; mode (NO_INPUT/GAUSSIAN/ARRAY), nonlin (activation code),
    tangent; nbias: 0 or n; bx, rx: the batch and R axes of an inputs array (1 when broadcast);
    e_floor (:func:`e_floor`); k0, k1 (the key) and c2_start, c3_base (the input stream's counter
    words: c2 = c2_start + matrix, c3 = c3_base + realisation); input_scale; dtype ("float32"/"float64").
    """

    batch: int
    R: int
    n: int
    d: int
    du: int
    steps: int
    record_every: int
    mode: int
    nonlin: int
    tangent: bool
    nbias: int
    bx: int
    rx: int
    e_floor: int
    k0: int
    k1: int
    c2_start: int
    c3_base: int
    input_scale: float
    dtype: str

    @property
    def records(self):
        """Recorded steps K = steps // record_every."""
        return self.steps // self.record_every


def plan(*, batch, R, n, d, du, steps, record_every, inputs, nonlinearity, tangent, nbias, bx, rx, bound,
         seed, start, input_scale, dtype):
    """The :class:`Plan` of a validated call (``bound``: :func:`input_bound`)."""
    return Plan(batch=int(batch), R=int(R), n=int(n), d=int(d), du=int(du), steps=int(steps),
                record_every=int(record_every), mode=mode_of(inputs),
                nonlin=activations.code(nonlinearity), tangent=bool(tangent), nbias=int(nbias), bx=int(bx),
                rx=int(rx), e_floor=e_floor(bound, dtype), k0=int(seed) & 0xFFFFFFFF, k1=int(seed) >> 32,
                c2_start=int(start), c3_base=counter_word3(Purpose.INPUTS, 0),
                input_scale=float(input_scale), dtype=np.dtype(dtype).name)


def output_shapes(p):
    """{name: (shape, dtype)} of the arrays of :data:`OUTPUTS` for plan ``p`` (batch axis included; the
    tangent's are (1, 1[, 1]) placeholders without ``tangent``)."""
    nb, R, n, K = p.batch, p.R, p.n, p.records
    t = (nb, R) if p.tangent else (1, 1)
    return {"log_norm": ((nb, R, K), "float64"),
            "tangent_log_norm": (t + ((K,) if p.tangent else (1,)), "float64"),
            "final_state": ((nb, R, n), p.dtype), "final_exponent": ((nb, R), "int64"),
            "final_tangent": (t + ((n,) if p.tangent else (1,)), p.dtype),
            "final_tangent_exponent": (t, "int64")}


def record_steps(steps, record_every):
    """The step t of each recorded column: record_every, 2·record_every, ... (int64)."""
    return np.arange(1, steps // record_every + 1, dtype=np.int64) * record_every


def memory_bytes(p, backend="cpu"):
    """Bytes a call needs (outputs, initial states, work buffers); on the GPU also the packed operand
    [Wᵀ; Uᵀ] of every matrix."""
    item = np.dtype(p.dtype).itemsize
    nbytes = (p.batch * p.R * (p.records * 8 * (1 + p.tangent) + (p.n * item + 8) * (3 + 3 * p.tangent))
              + 4 * (p.n + p.d) * p.n * item)
    if backend == "cuda":
        nbytes += p.batch * (p.n + p.d) * (p.n + 4) * item
    return nbytes


def cuda_plan_array(p, *, npad, nchunks, rp, wsmem):
    """The uint64 plan array of kernels/cuda/unroll.cu (order :data:`PLAN_FIELDS`; negative fields as
    their two's complement); ``npad``, ``nchunks``, ``rp``, ``wsmem`` come from the launcher's own
    device plan."""
    m64 = (1 << 64) - 1
    vals = dict(NB=p.batch, R=p.R, N=p.n, D=p.d, DU=p.du, NPAD=npad, STEPS=p.steps, RECORD=p.record_every,
                MODE=p.mode, NONLIN=p.nonlin, NBIAS=p.nbias, BX=p.bx, RX=p.rx, EFLOOR=p.e_floor & m64,
                K0=p.k0, K1=p.k1, C2START=p.c2_start & 0xFFFFFFFF, C3BASE=p.c3_base & 0xFFFFFFFF,
                NCHUNKS=nchunks, RP=rp, WSMEM=int(wsmem))
    assert set(vals) == set(PLAN_FIELDS)
    return np.array([vals[f] for f in PLAN_FIELDS], dtype=np.uint64)
