"""The spec of ``rf.propagate``: codes, constants, output shapes, memory model and the plan of a run, shared
by the API (rinit_fast/propagate.py), the Numba kernels (kernels/cpu/propagate.py) and the CUDA launcher
(kernels/cuda/propagate_launch.py, kernels/cuda/propagate.cu).  docs/propagate.md explains each rule.

Everything here is decided once, in :func:`plan`, from validated inputs: which path runs (weights
generated inside the kernels, or layers materialised by ``rf.sample`` for the orthogonal family), the
kernel family code of the scheme's draw, how many layers of f'(z) the forward pass stores (``seg``), the
rows of a generated weight panel on the CPU, the networks per chunk, and the memory the run needs.  The
backends receive a :class:`Plan` and only execute it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import activations as _act
from . import stream as _stream

# --- output ------------------------------------------------------------------------------------------
STAT_FIELDS = ("preact_mean", "preact_var", "preact_unit_var", "act_mean", "act_var", "act_unit_var",
               "act_abs_mean", "grad_var")
"""Columns of the per-network statistics array (batch, depth, NSTAT)."""
NSTAT = len(STAT_FIELDS)
NCOL = 5
"""Per-sample float64 column sums of one layer's statistics (sum z, sum (z - m)², sum x, sum |x|,
sum (x - m)²): the scratch of both backends."""


def stats_shape(batch, depth):
    """Shape of the per-network statistics every backend fills (float64)."""
    return (batch, depth, NSTAT)


# --- weight families ---------------------------------------------------------------------------------
NORMAL, UNIFORM, TRUNCATED, CONSTANT = 0, 1, 2, 3
FAMILIES = {"normal": NORMAL, "uniform": UNIFORM, "truncated": TRUNCATED, "constant": CONSTANT}
"""Weight families generated inside the kernels (orthogonal weights are materialised instead)."""
FAMILY_NAMES = {v: k for k, v in FAMILIES.items()}

GENERATED, MATERIALISED = "generated", "materialised"
"""The two paths: weights regenerated panel by panel inside the kernels (never stored whole), or each
layer materialised by rf.sample for a chunk of networks (orthogonal: a QR needs the whole matrix)."""

TRUNC_BOUND = _stream.TRUNC_BOUND   # truncated family: |z| <= 2 (redraws: docs/rng.md)

# scheme draw family (rinit_fast/scheme_table.py) -> (kernel family, mul, add): value = (u·mul + add)·scale
_DRAWS = {
    "normal": (NORMAL, 1.0, 0.0),
    "uniform01": (UNIFORM, 1.0, 0.0),
    "uniform": (UNIFORM, 2.0, -1.0),
    "truncated": (TRUNCATED, 1.0, 0.0),
    "constant": (CONSTANT, 1.0, 0.0),
}


def family(draw_family):
    """(kernel family code, mul, add) of a scheme's draw family, or None when its layers are materialised
    (orthogonal)."""
    if draw_family == "orthogonal":
        return None
    return _DRAWS[draw_family]


# --- limits ------------------------------------------------------------------------------------------
MAX_DEPTH = _stream.MAX_SUB     # layers are sub-indices of the weights and bias streams
MAX_SAMPLES = _stream.MAX_SUB   # inputs are sub-indices of the PROP_INPUT / PROP_GRAD streams

# --- CPU: generated panels, threads ------------------------------------------------------------------
PANEL_VALUES = 16384            # weights per generated panel: 64 KiB in float32 ...
PANEL_MIN_ROWS = 64             # ... but at least 64 rows (thinner GEMMs run slower: docs/propagate.md) ...
PANEL_MAX_VALUES = 1 << 20      # ... unless that exceeds 2**20 values
STORE_BUDGET = 1 << 30          # bytes of stored f'(z) (all networks in flight) before checkpointing
ORTHO_CHUNK = 8                 # networks per materialised layer (orthogonal schemes)


def panel_rows(width, in_width):
    """Rows of W_l generated per panel on the CPU (the same for every layer of a network)."""
    fi = max(width, in_width)
    return max(1, min(width, max(PANEL_VALUES // fi, min(PANEL_MIN_ROWS, PANEL_MAX_VALUES // fi))))


def segment_length(depth, store_bytes, checkpoint=None):
    """Layers per backward segment: ``checkpoint`` when given (at most depth), else every layer's f'(z)
    stored (``depth``) when that takes at most STORE_BUDGET bytes, else ceil(sqrt(depth)) (checkpoints:
    one more forward pass, memory O(sqrt(depth)))."""
    if checkpoint is not None:
        return min(int(checkpoint), depth)
    if store_bytes <= STORE_BUDGET:
        return depth
    return max(1, math.isqrt(depth - 1) + 1)


def n_segments(depth, seg):
    return -(-depth // seg)


def cpu_network_bytes(width, in_width, depth, samples, seg, pr, itemsize):
    """Bytes one network in flight holds on the CPU (kernels/cpu/propagate.py ``network``): X, G, G2
    (maxw·S each), Z (width·S), f'(z) of a segment (seg·width·S), checkpoints ((depth/seg)·maxw·S when
    seg < depth), the input/bias row (maxw), one weight panel (pr·maxw) and NCOL·S float64 sums."""
    maxw = max(width, in_width)
    nseg = n_segments(depth, seg)
    ck = nseg if nseg > 1 else 0
    return (itemsize * (samples * (3 * maxw + width + seg * width + ck * maxw) + maxw + pr * maxw)
            + 8 * NCOL * samples)


def cpu_materialised_bytes(chunk, width, in_width, depth, samples, itemsize):
    """Bytes of the CPU's materialised path for ``chunk`` networks: their states, f'(z) of every layer,
    and two layers of weights (the one in use and rf.sample's next)."""
    maxw = max(width, in_width)
    return chunk * itemsize * (samples * (depth * width + 3 * maxw + width) + 2 * width * maxw)


def cuda_network_bytes(width, in_width, depth, samples, seg, itemsize):
    """Device bytes one network of a GPU chunk needs (kernels/cuda/propagate_launch.py): X, G, G2 (M·S
    each), Z (width·S), f'(z) of a segment (seg·width·S), checkpoints ((depth/seg)·M·S when seg < depth),
    NCOL·S float64 column sums and depth·NSTAT float64 statistics."""
    maxw = max(width, in_width)
    nseg = n_segments(depth, seg)
    ck = nseg if nseg > 1 else 0
    return (itemsize * samples * (3 * maxw + width + seg * width + ck * maxw)
            + 8 * NCOL * samples + 8 * NSTAT * depth)


CUDA_ORTHO_EXTRA = 4 * 8   # per network and weight: the materialised layer plus cuSOLVER's float64 QR
CUDA_FREE_FRACTION = 0.5   # GPU chunks use at most this fraction of the free device memory


@dataclass(frozen=True)
class Plan:
    """One run of ``rf.propagate``, decided by :func:`plan` and executed by a backend.

    ``family``, ``mul``, ``add``: the generated weights are ``(raw · mul + add) · scale`` for the uniform
    family, ``raw · scale`` otherwise (``scale0`` for layer 0, whose fan-in is ``in_width``); unused on the
    materialised path.  ``c3w``, ``c3b``, ``c3x``, ``c3g``: counter word 3 of the weights, bias, input and
    output-gradient streams at sub-index 0 (the layer or sample is added).  ``seg``: layers of f'(z) the
    forward pass stores per backward segment (``seg >= depth``: all).  ``pr``: rows per generated panel
    (CPU).  ``chunk``: networks per chunk (materialised layers; GPU chunks).  ``nbytes``: the memory the
    run needs, checked before it starts.
    """

    path: str
    backend: str
    batch: int
    start: int
    width: int
    in_width: int
    depth: int
    samples: int
    act: int
    family: int
    mul: float
    add: float
    scale0: float
    scale: float
    bias_std: float
    dtype: str
    k0: int
    k1: int
    c3w: int
    c3b: int
    c3x: int
    c3g: int
    seg: int
    pr: int
    chunk: int
    nbytes: int

    @property
    def maxw(self):
        return max(self.width, self.in_width)

    @property
    def nseg(self):
        return n_segments(self.depth, self.seg)

    @property
    def stats_shape(self):
        return stats_shape(self.batch, self.depth)

    @property
    def itemsize(self):
        return 4 if self.dtype == "float32" else 8


def plan(*, backend, batch, start, width, in_width, depth, samples, activation, draw_family, scale0, scale,
         bias_std, dtype, seed, checkpoint=None, inflight=1, free_bytes=None):
    """The :class:`Plan` of a validated call.

    ``activation``: a name of ``activations.PROPAGATE``; ``draw_family``, ``scale0``, ``scale``: the
    scheme's draw (rinit_fast/scheme_table.py) at (width, in_width) and (width, width); ``inflight``:
    networks running at once on the CPU (one per thread); ``free_bytes``: free device memory (GPU).
    """
    fam = family(draw_family)
    path = GENERATED if fam is not None else MATERIALISED
    code, mul, add = fam if fam is not None else (NORMAL, 1.0, 0.0)
    itemsize = 4 if dtype == "float32" else 8
    pr = panel_rows(width, in_width)
    stats_bytes = 8 * NSTAT * batch * depth
    if backend == "cuda":
        seg = segment_length(depth, batch * itemsize * samples * depth * width, checkpoint)
        per = cuda_network_bytes(width, in_width, depth, samples, seg, itemsize)
        if path == MATERIALISED:
            per += CUDA_ORTHO_EXTRA * width * max(width, in_width)
            chunk = min(batch, ORTHO_CHUNK)
        else:
            chunk = max(1, min(batch, int(CUDA_FREE_FRACTION * (free_bytes or 0)) // max(1, per)))
        nbytes = chunk * per + stats_bytes
    elif path == MATERIALISED:
        seg = depth                     # the CPU's materialised path stores f'(z) of every layer
        chunk = min(batch, ORTHO_CHUNK)
        nbytes = cpu_materialised_bytes(chunk, width, in_width, depth, samples, itemsize) + stats_bytes
    else:
        inflight = max(1, min(batch, inflight))
        seg = segment_length(depth, inflight * itemsize * samples * depth * width, checkpoint)
        chunk = inflight
        nbytes = inflight * cpu_network_bytes(width, in_width, depth, samples, seg, pr, itemsize) + stats_bytes
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    c3 = {p: _stream.counter_word3(p, 0) for p in _stream.Purpose}
    return Plan(path=path, backend=backend, batch=batch, start=start, width=width, in_width=in_width,
                depth=depth, samples=samples, act=_act.code(activation), family=code, mul=float(mul),
                add=float(add), scale0=float(scale0), scale=float(scale), bias_std=float(bias_std),
                dtype=dtype, k0=k0, k1=k1, c3w=c3[_stream.Purpose.WEIGHTS], c3b=c3[_stream.Purpose.PROP_BIAS],
                c3x=c3[_stream.Purpose.PROP_INPUT], c3g=c3[_stream.Purpose.PROP_GRAD], seg=seg, pr=pr,
                chunk=chunk, nbytes=int(nbytes))


# --- CUDA: GEMM tiles and the plan array (kernels/cuda/propagate.cu) ------------------------------------
CUDA_BM = CUDA_BN = CUDA_BK = 32    # output rows, samples, reduction chunk of a GEMM tile
CUDA_THREADS = 256                  # GEMM block size (the thread -> entry map depends on it)
CUDA_TM = 4                         # rows per thread: 8 row groups x 4 rows = BM
CUDA_ELEMENTWISE_BLOCK = 128        # default block of the other kernels (RINIT_FAST_CUDA_BLOCK overrides)
CUDA_GEMM_BLOCKS_PER_SM = 8         # default grid: this many GEMM blocks per multiprocessor ...
CUDA_ELEMENTWISE_BLOCKS_PER_SM = 16  # ... and elementwise blocks

PLAN_FIELDS = ("NB", "WIDTH", "INW", "MAXW", "S", "FAMILY", "K0", "K1", "C2START", "ACT", "SEG", "DEPTH",
               "C3X", "C3G")
"""The uint64 plan array of the CUDA kernels: field f is at index PLAN_FIELDS.index(f)."""
PLAN = {f: i for i, f in enumerate(PLAN_FIELDS)}


def cuda_plan_words(*, nb, width, in_width, samples, family, k0, k1, c2_start, act, seg, depth, c3x, c3g):
    """The plan array's values (PLAN_FIELDS order) for a chunk of ``nb`` networks from ``c2_start``."""
    vals = dict(NB=nb, WIDTH=width, INW=in_width, MAXW=max(width, in_width), S=samples, FAMILY=family, K0=k0,
                K1=k1, C2START=c2_start, ACT=act, SEG=seg, DEPTH=depth, C3X=c3x, C3G=c3g)
    return [int(vals[f]) & ((1 << 64) - 1) for f in PLAN_FIELDS]


def cuda_smem_bytes(kind, itemsize):
    """Dynamic shared memory of a GEMM-type kernel of propagate.cu (its tile layouts)."""
    if kind == "forward":
        return (CUDA_BM * CUDA_BK + CUDA_BK * CUDA_BN + CUDA_BM) * itemsize
    if kind == "backward":
        return (CUDA_BK * CUDA_BM + CUDA_BK * CUDA_BN) * itemsize
    return CUDA_BM * CUDA_BK * itemsize


C_CONSTANTS = {
    "RF_PG_BM": CUDA_BM, "RF_PG_BN": CUDA_BN, "RF_PG_BK": CUDA_BK, "RF_PG_THREADS": CUDA_THREADS,
    "RF_PG_TM": CUDA_TM, "RF_PG_NSTAT": NSTAT, "RF_PG_NCOL": NCOL,
    "RF_PG_NORMAL": NORMAL, "RF_PG_UNIFORM": UNIFORM, "RF_PG_TRUNCATED": TRUNCATED, "RF_PG_CONSTANT": CONSTANT,
    "RF_PG_TRUNC_BOUND": TRUNC_BOUND,
    **{f"RF_PG_{f}": i for i, f in enumerate(PLAN_FIELDS)}, "RF_PG_COUNT": len(PLAN_FIELDS),
}
