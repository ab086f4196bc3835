"""Python side of kernels/cuda/unroll.cu: plan the launch, pack the operand, launch.

:func:`unroll` takes the same arguments as the CPU kernel ``kernels/cpu/unroll.py: unroll`` (the plan of
``rinit_fast.spec.unroll`` and the arrays prepared by ``rinit_fast.unroll``), as CuPy arrays, and fills
the same outputs; the chunking of the realisations is this module's own business (it never changes a bit).

* The operand ``B = [W^T; U^T]`` is packed per matrix into a ``(batch, n + du, n_pad)`` array
  (``n_pad`` = n rounded up to 4, zero columns), so that a warp reads 16 bytes per thread of one row.
  It costs one extra copy of W on the device (``batch · (n + du) · n_pad`` values).
* Work item = (matrix, chunk of realisations); one thread block per item.  The chunk's state lives in
  shared memory (two transposed buffers, ``_smem_bytes``), so the chunk size is bounded by the
  device's opt-in shared memory per block (227 KiB on an H100); within that, matrices are split into
  enough chunks to give every SM work (:func:`plan_launch`).  W is copied into shared memory too when
  it fits.
* Integer parameters travel in a small uint64 array (``spec.unroll.cuda_plan_array``; order
  ``spec.unroll.PLAN_FIELDS`` = ``RF_PLAN_*`` in unroll.cu); int64 arrays are passed as uint64 views
  (same bits).

Overrides, for tests and tuning (none changes a value): ``loader.launch_config(block=..., grid=...)``
or ``RINIT_FAST_CUDA_BLOCK``/``RINIT_FAST_CUDA_GRID`` (block <= 512 here: the kernels are compiled with
``__launch_bounds__(512)``); ``RINIT_FAST_UNROLL_RPB`` (realisations per block) and
``RINIT_FAST_UNROLL_WSMEM`` (0/1: W in shared memory) or the keyword arguments of :func:`unroll`.
"""
from __future__ import annotations

import numpy as np

from rinit_fast.spec import unroll as spec

from . import loader

FILE = "unroll.cu"
MAX_BLOCK = 512           # __launch_bounds__ of the kernels
LANES = spec.LANES        # norm lanes (a half-warp per realisation in phase C)
IT = spec.CUDA_IT         # rows per thread tile
_RT = {np.dtype(np.float32): 8, np.dtype(np.float64): 4}   # realisations per thread tile (rf_ar<T>::RT)


def _a16(x):
    return (x + 15) // 16 * 16


def _smem_bytes(K, n, Rp, npad, itemsize, tangent, wsmem):
    """Dynamic shared memory of a block (the layout of rf_smem_layout in unroll.cu)."""
    o = _a16(K * Rp * itemsize) * 2
    if tangent:
        o += _a16(n * Rp * itemsize) * 2
    if wsmem:
        o += _a16(K * npad * itemsize)
    return o + 8 * 8 * Rp + 16


def plan_launch(nb, R, n, du, dtype, tangent, *, sms, smem_limit, realizations_per_block=None,
                w_in_smem=None):
    """(nchunks, Rp, wsmem, block, smem_bytes) for a problem on a device with ``sms`` multiprocessors and
    ``smem_limit`` bytes of opt-in shared memory per block (``block`` is the default block size; a
    forced one replaces it: loader.block_size); raises ValueError when one realisation's state does
    not fit in shared memory (n too large for this kernel)."""
    dt = np.dtype(dtype)
    RT = _RT[dt]
    K = n + du
    npad = -(-n // IT) * IT

    def smem(Rp, ws):
        return _smem_bytes(K, n, Rp, npad, dt.itemsize, tangent, ws)
    if smem(RT, False) > smem_limit:
        raise ValueError(f"unroll on the GPU: n = {n} (+ {du} input columns) is too large for this kernel "
                         f"({smem(RT, False)} bytes of shared memory for {RT} realisations, the device "
                         f"allows {smem_limit}); use the CPU (a host W) or float32")
    rp_max = RT
    while smem(rp_max + RT, False) <= smem_limit:
        rp_max += RT
    if realizations_per_block is not None:
        rpb = max(1, min(int(realizations_per_block), R, rp_max))   # at most what fits
        nchunks = -(-R // rpb)
    else:
        nchunks = _best_chunks(nb, R, RT, rp_max, sms, not (n <= 256 and smem(RT, True) <= smem_limit), npad)
    Rc = -(-R // nchunks)
    Rp = -(-Rc // RT) * RT
    if Rp > rp_max:
        raise ValueError(f"{Rc} realisations per block do not fit in shared memory (at most {rp_max})")
    ws = smem(Rp, True) <= smem_limit and n <= 256 if w_in_smem is None else bool(w_in_smem)
    if ws and smem(Rp, True) > smem_limit:
        raise ValueError("W does not fit in shared memory beside the state")
    tiles = (Rp // RT) * (npad // IT)
    passes = -(-tiles // MAX_BLOCK)
    per_pass = -(-tiles // passes)
    if tiles > MAX_BLOCK:       # the product dominates: every pass of tiles (nearly) full
        block = -(-per_pass // 32) * 32
    else:                       # one pass; enough threads for the 16 norm lanes of every realisation
        block = min(MAX_BLOCK, max(64, -(-max(tiles, LANES * Rc) // 32) * 32))
    return nchunks, Rp, ws, int(block), smem(Rp, ws)


def _best_chunks(nb, R, RT, rp_max, sms, streamed, npad):
    """Chunks per matrix minimising a simple model of the busiest SM's work per step:
    ceil(blocks / SMs) blocks of max(Rp, R_min) / u realisation-columns each, where R_min = 24 when W
    is streamed from L2 (below that a block's FMAs per byte of W, Rp/2, fall under what L2 can feed an
    SM), RT when W sits in shared memory, and u the lane utilisation of the product's last warp of tiles
    (tiles / whole warps of tiles; small n).  Ties: fewer chunks when W is streamed (less W traffic),
    more when it is in shared memory (more resident blocks hide the per-step barriers and reductions)."""
    rmin = 24 if streamed else RT
    best = None
    for c in range(-(-R // rp_max), min(R, 256) + 1):
        Rp = -(-(-(-R // c)) // RT) * RT
        if Rp > rp_max:
            continue
        tiles = (Rp // RT) * (npad // IT)
        util = 1.0 if tiles >= MAX_BLOCK else tiles / (-(-tiles // 32) * 32)
        cost = -(-(nb * c) // sms) * max(Rp, rmin) / util
        if best is None or cost < best[0] - 1e-9 or (abs(cost - best[0]) <= 1e-9 and not streamed):
            best = (cost, c)
    return best[1]


def _kernel(dt, tangent):
    name = "rf_unroll_" + ("f32" if dt == np.float32 else "f64") + ("_tangent" if tangent else "")
    return loader.get_function(FILE, name)


def unroll(plan, W, UT, bias, xarr, G0, E0, V0, EV0, out, *, realizations_per_block=None, w_in_smem=None):
    """The GPU twin of ``kernels/cpu/unroll.py: unroll``: the same arguments (``plan`` a
    rinit_fast.spec.unroll.Plan, the arrays C-contiguous CuPy arrays, E0, EV0 and the exponents of
    ``out`` int64), the same outputs, the same bits (the records of log ||h|| may differ in the last
    bit or two: CUDA's log; docs/cuda.md).  The keyword arguments override the planner (tests, tuning)."""
    cp = loader.cupy()
    p = plan
    dt = np.dtype(W.dtype)
    nb, n, R, du = p.batch, p.n, p.R, p.du
    K = n + du
    npad = -(-n // IT) * IT
    lim = loader.device_limits()
    if realizations_per_block is None:
        realizations_per_block = loader.env_int("RINIT_FAST_UNROLL_RPB")
    if w_in_smem is None:
        ws_env = loader.env_int("RINIT_FAST_UNROLL_WSMEM")
        w_in_smem = None if ws_env is None else bool(ws_env)
    nchunks, Rp, wsmem, block, smem = plan_launch(nb, R, n, du, dt, p.tangent, sms=lim["sms"],
                                                  smem_limit=lim["smem_per_block_optin"],
                                                  realizations_per_block=realizations_per_block,
                                                  w_in_smem=w_in_smem)
    block = loader.block_size(block, MAX_BLOCK)
    grid = loader.grid_size(nb * nchunks)

    # the packed operand [W^T; U^T], zero-padded to npad columns
    B = cp.zeros((nb, K, npad), dtype=dt)
    B[:, :n, :n] = cp.asarray(W).transpose(0, 2, 1)
    if du:
        B[:, n:, :n] = cp.asarray(UT)[None]

    plan_arr = spec.cuda_plan_array(p, npad=npad, nchunks=nchunks, rp=Rp, wsmem=wsmem)
    kernel = _kernel(dt, p.tangent)
    if smem > loader.DEFAULT_SMEM:
        kernel.max_dynamic_shared_size_bytes = int(smem)

    def u64(a):
        return a.view(cp.uint64)
    o = out
    args = (B, bias, xarr, G0, u64(E0), V0, u64(EV0), o["log_norm"], o["tangent_log_norm"], o["final_state"],
            u64(o["final_exponent"]), o["final_tangent"], u64(o["final_tangent_exponent"]),
            cp.asarray(plan_arr), dt.type(p.input_scale))
    kernel((grid,), (block,), args, shared_mem=int(smem))
