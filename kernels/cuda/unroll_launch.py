"""Python side of kernels/cuda/unroll.cu: plan the work items, pack the operand, launch.

:func:`unroll` takes the same arguments as the CPU kernel ``kernels/cpu/unroll.py: unroll`` (everything
already validated and prepared by ``rinit_fast.unroll``), as CuPy arrays, and fills the same outputs;
the chunking of the realisations is this module's own business (it never changes a bit).

* The operand ``B = [W^T; U^T]`` is packed per matrix into a ``(batch, n + du, n_pad)`` array
  (``n_pad`` = n rounded up to 4, zero columns), so that a warp reads 16 bytes per thread of one row.
  It costs one extra copy of W on the device (``batch · (n + du) · n_pad`` values).
* Work item = (matrix, chunk of realisations); one thread block per item.  The chunk's state lives in
  shared memory (two transposed buffers, ``_smem_bytes``), so the chunk size is bounded by the
  device's opt-in shared memory per block (227 KiB on an H100); within that, matrices are split into
  enough chunks to give every SM work (``_plan``).  W is copied into shared memory too when it fits.
* Integer parameters travel in a small uint64 array (``plan``; order = ``RF_PLAN_*`` in unroll.cu);
  int64 arrays are passed as uint64 views (same bits).

Overrides, for tests and tuning (none changes a value): ``loader.launch_config(block=..., grid=...)``
or ``RINIT_FAST_CUDA_BLOCK``/``RINIT_FAST_CUDA_GRID`` (block <= 512 here: the kernels are compiled with
``__launch_bounds__(512)``); ``RINIT_FAST_UNROLL_RPB`` (realisations per block) and
``RINIT_FAST_UNROLL_WSMEM`` (0/1: W in shared memory) or the keyword arguments of :func:`unroll`.
"""
from __future__ import annotations

import os

import numpy as np

from . import loader

FILE = "unroll.cu"
MAX_BLOCK = 512           # __launch_bounds__ of the kernels
LANES = 16                # norm lanes (a half-warp per realisation in phase C)
IT = 4                    # rows per thread tile
_RT = {np.dtype(np.float32): 8, np.dtype(np.float64): 4}   # realisations per thread tile (rf_ar<T>::RT)
_DEFAULT_SMEM = 48 * 1024


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


def _env_int(name):
    v = os.environ.get(name)
    return None if v is None or v.strip() == "" else int(v)


def _device_info():
    cp = loader._cupy()
    dev = cp.cuda.Device()
    attrs = dev.attributes
    sms = int(attrs.get("MultiProcessorCount", 1))
    smem = int(attrs.get("MaxSharedMemoryPerBlockOptin", 0)) or _DEFAULT_SMEM
    return sms, smem


def plan(nb, R, n, du, dtype, tangent, *, sms, smem_limit, realizations_per_block=None, w_in_smem=None,
         block=None):
    """(nchunks, Rp, wsmem, block, smem_bytes) for a problem; raises ValueError when one realisation's
    state does not fit in shared memory (n too large for this kernel)."""
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
    if block is None:
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


def unroll(W, UT, bias, xarr, G0, E0, V0, EV0, steps, record_every, input_mode, nonlin, tangent, e_floor, d,
           k0, k1, c2_start, c3_base, input_scale, out_log, out_tlog, out_g, out_e, out_v, out_ev, *,
           realizations_per_block=None, w_in_smem=None):
    """The GPU twin of ``kernels/cpu/unroll.py: unroll`` (without its ``nchunks``): same arguments, as
    C-contiguous CuPy arrays (E0, EV0, out_e, out_ev int64), same outputs, same bits (the records of
    log ||h|| may differ in the last bit or two: CUDA's log; docs/cuda.md)."""
    cp = loader._cupy()
    dt = np.dtype(W.dtype)
    nb, n = int(W.shape[0]), int(W.shape[1])
    R = int(G0.shape[1])
    du = int(UT.shape[0])
    K = n + du
    npad = -(-n // IT) * IT
    tangent = bool(tangent)
    sms, smem_limit = _device_info()
    blk = loader._launch["block"] or loader._env_int("RINIT_FAST_CUDA_BLOCK")
    if blk is not None and not (32 <= blk <= MAX_BLOCK and blk % 32 == 0):
        raise ValueError(f"unroll: the block size must be a multiple of 32 in [32, {MAX_BLOCK}], got {blk}")
    if realizations_per_block is None:
        realizations_per_block = _env_int("RINIT_FAST_UNROLL_RPB")
    if w_in_smem is None:
        ws_env = _env_int("RINIT_FAST_UNROLL_WSMEM")
        w_in_smem = None if ws_env is None else bool(ws_env)
    nchunks, Rp, wsmem, block, smem = plan(nb, R, n, du, dt, tangent, sms=sms, smem_limit=smem_limit,
                                           realizations_per_block=realizations_per_block,
                                           w_in_smem=w_in_smem, block=blk)
    items = nb * nchunks
    grid = loader._launch["grid"] or loader._env_int("RINIT_FAST_CUDA_GRID") or items
    grid = max(1, min(int(grid), items))

    # the packed operand [W^T; U^T], zero-padded to npad columns
    B = cp.zeros((nb, K, npad), dtype=dt)
    B[:, :n, :n] = cp.asarray(W).transpose(0, 2, 1)
    if du:
        B[:, n:, :n] = cp.asarray(UT)[None]

    Bx, Rx = int(xarr.shape[0]), int(xarr.shape[1])
    m64 = (1 << 64) - 1
    plan_arr = np.array([nb, R, n, d, du, npad, steps, record_every, input_mode, nonlin, int(bias.shape[0]),
                         Bx, Rx, int(e_floor) & m64, int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF,
                         int(c2_start) & 0xFFFFFFFF, int(c3_base) & 0xFFFFFFFF, nchunks, Rp, int(wsmem)],
                        dtype=np.uint64)
    kernel = _kernel(dt, tangent)
    if smem > _DEFAULT_SMEM:
        kernel.max_dynamic_shared_size_bytes = int(smem)

    def u64(a):
        return a.view(cp.uint64)
    args = (B, bias, xarr, G0, u64(E0), V0, u64(EV0), out_log, out_tlog, out_g, u64(out_e), out_v,
            u64(out_ev), cp.asarray(plan_arr), dt.type(input_scale))
    kernel((grid,), (block,), args, shared_mem=int(smem))
