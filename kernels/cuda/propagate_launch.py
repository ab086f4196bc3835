"""Python side of kernels/cuda/propagate.cu: run a ``rinit_fast.spec.propagate.Plan`` on the GPU: chunks of
networks, the states, the per-layer kernels (docs/cuda.md "Propagate kernels").

:func:`run` is called by ``rinit_fast.propagate`` with the same plan the CPU kernels get (the spec decides
the path, the segment length, the chunk of networks and the memory), and fills ``stats`` (a host
(batch, depth, NSTAT) float64 array, columns ``STAT_FIELDS``).  Networks run in chunks of ``plan.chunk``
(all of them when they fit): every launch covers the whole chunk, so even ``batch = 1`` spreads over the
GPU by tiles of rows and samples.

Memory on the device, per network of a chunk: ``spec.cuda_network_bytes`` (X, G, G2, Z, f'(z) of a
segment, checkpoints, column sums, statistics).  Weights: never more than one BM×BK tile per resident
block (shared memory), except for orthogonal schemes, whose layer is materialised for the chunk
(nb·width·M values) by the ``weights`` callback (rf.sample(backend="cuda")).

Launch configuration: the GEMM kernels use spec.CUDA_THREADS threads per block (their thread -> entry
map needs it); the others ``loader.block_size`` (``loader.launch_config(block=...)`` /
``RINIT_FAST_CUDA_BLOCK``, default spec.CUDA_ELEMENTWISE_BLOCK).  The grid of every kernel follows
``loader.grid_size`` (``launch_config(grid=...)`` / ``RINIT_FAST_CUDA_GRID``, default a few blocks per
multiprocessor of ``loader.device_limits()``): all kernels loop block-stride or grid-stride over their
items, so no choice changes a bit.
"""
from __future__ import annotations

import numpy as np

from rinit_fast.spec import propagate as spec

from . import loader

FILE = "propagate.cu"
BM, BN, BK = spec.CUDA_BM, spec.CUDA_BN, spec.CUDA_BK
GEMM_THREADS = spec.CUDA_THREADS
NSTAT = spec.NSTAT
NCOL = spec.NCOL
smem_bytes = spec.cuda_smem_bytes


def _sfx(dt):
    return "f32" if np.dtype(dt) == np.float32 else "f64"


def _kernel(name, dt):
    return loader.get_function(FILE, f"{name}_{_sfx(dt)}" if name != "rf_pg_combine" else name)


def _gemm_grid(tiles):
    return loader.grid_size(tiles, loader.device_limits()["sms"] * spec.CUDA_GEMM_BLOCKS_PER_SM)


class _Launcher:
    """The kernels of one dtype with their launch shapes."""

    def __init__(self, dt, nb, width, maxw, samples):
        self.dt = np.dtype(dt)
        self.sms = loader.device_limits()["sms"]
        self.nb, self.width, self.maxw, self.S = nb, width, maxw, samples
        self.blk = loader.block_size(spec.CUDA_ELEMENTWISE_BLOCK)
        self.k = {n: _kernel(n, dt) for n in ("rf_pg_forward", "rf_pg_backward", "rf_pg_activate",
                                              "rf_pg_gradsum", "rf_pg_inputs", "rf_pg_combine")}

    def gemm(self, name, rows, args):
        tiles = self.nb * -(-rows // BM) * -(-self.S // BN)
        kind = "forward" if name == "rf_pg_forward" else "backward"
        self.k[name]((_gemm_grid(tiles),), (GEMM_THREADS,), args, shared_mem=smem_bytes(kind, self.dt.itemsize))

    def elementwise(self, name, n, args):
        g = loader.grid_size(-(-n // self.blk), self.sms * spec.CUDA_ELEMENTWISE_BLOCKS_PER_SM)
        self.k[name]((g,), (self.blk,), args)


def _plan_array(cp, **kw):
    """The uint64 plan array of a chunk (layout: spec.PLAN_FIELDS, the RF_PG_* enum of propagate.cu)."""
    return cp.asarray(np.array(spec.cuda_plan_words(**kw), dtype=np.uint64))


def run(stats, plan, weights=None):
    """Fill ``stats`` (host, plan.stats_shape float64) for networks plan.start .. plan.start+batch-1.

    ``weights(c0, nb, layer)`` -> a CuPy (nb, width, fan_in) array of layer ``layer`` of networks
    plan.start+c0 .. +nb-1 (the materialised path); on the generated path the kernels draw the weights
    (plan.family: spec.NORMAL, UNIFORM, TRUNCATED, CONSTANT).
    """
    cp = loader.cupy()
    dt = np.dtype(plan.dtype)
    T = dt.type
    batch = stats.shape[0]
    width, in_width, depth, S, maxw = plan.width, plan.in_width, plan.depth, plan.samples, plan.maxw
    seg, nseg, chunk = plan.seg, plan.nseg, plan.chunk
    c3w, c3b = plan.c3w, plan.c3b
    mul, add, scale0, scale, bias_std = plan.mul, plan.add, plan.scale0, plan.scale, plan.bias_std
    if plan.path != spec.MATERIALISED:
        weights = None
    u64, u32 = np.uint64, np.uint32
    dummy = cp.zeros(1, dtype=dt)
    for c0 in range(0, batch, chunk):
        nb = min(chunk, batch - c0)
        L = _Launcher(dt, nb, width, maxw, S)
        pa = _plan_array(cp, nb=nb, width=width, in_width=in_width, samples=S, family=plan.family, k0=plan.k0,
                         k1=plan.k1, c2_start=plan.start + c0, act=plan.act, seg=seg, depth=depth, c3x=plan.c3x,
                         c3g=plan.c3g)
        X = cp.zeros((nb, maxw, S), dtype=dt)
        G = cp.zeros((nb, maxw, S), dtype=dt)
        G2 = cp.zeros((nb, maxw, S), dtype=dt)
        Z = cp.zeros((nb, width, S), dtype=dt)
        D = cp.zeros((nb, seg, width, S), dtype=dt)
        ck = cp.zeros((nb, nseg, maxw, S), dtype=dt) if nseg > 1 else None
        cols = cp.zeros((nb, NCOL, S), dtype=np.float64)
        st = cp.zeros((nb, depth, NSTAT), dtype=np.float64)
        L.elementwise("rf_pg_inputs", nb * (in_width + width) * S, (X, G, pa))

        def forward(layer, slot, with_stats):
            fi = in_width if layer == 0 else width
            W = weights(c0, nb, layer) if weights is not None else None
            flags = (1 if W is not None else 0) | (2 if bias_std != 0 else 0)
            sc = scale0 if layer == 0 else scale
            L.gemm("rf_pg_forward", width,
                   (dummy if W is None else W, X, Z, pa, u64(fi), u32(c3w + layer), u32(c3b + layer), u64(flags),
                    T(mul), T(add), T(sc), T(bias_std)))
            L.elementwise("rf_pg_activate", nb * S, (Z, X, D, cols, pa, u64(slot), u64(1 if with_stats else 0)))
            if with_stats:
                L.elementwise("rf_pg_combine", nb, (cols, st, pa, u64(layer), u64(0), u64(fi)))

        for layer in range(depth):
            if nseg > 1 and layer % seg == 0:
                fi = in_width if layer == 0 else width
                ck[:, layer // seg, :fi] = X[:, :fi]
            forward(layer, layer % seg, True)
        for sg in range(nseg - 1, -1, -1):
            l0, l1 = sg * seg, min(depth, (sg + 1) * seg)
            if nseg > 1:
                fi0 = in_width if l0 == 0 else width
                X[:, :fi0] = ck[:, sg, :fi0]
                for layer in range(l0, l1):
                    forward(layer, layer - l0, False)
            for layer in range(l1 - 1, l0 - 1, -1):
                fi = in_width if layer == 0 else width
                W = weights(c0, nb, layer) if weights is not None else None
                sc = scale0 if layer == 0 else scale
                L.gemm("rf_pg_backward", fi,
                       (dummy if W is None else W, D, G, G2, pa, u64(fi), u32(c3w + layer), u64(layer - l0),
                        u64(1 if W is not None else 0), T(mul), T(add), T(sc)))
                L.elementwise("rf_pg_gradsum", nb * S, (G2, cols, pa, u64(fi)))
                L.elementwise("rf_pg_combine", nb, (cols, st, pa, u64(layer), u64(1), u64(fi)))
                G, G2 = G2, G
        stats[c0:c0 + nb] = cp.asnumpy(st) if hasattr(cp, "asnumpy") else st.get()


def layer_weights(nb, width, fi, *, k0, k1, start, c3w, family, mul, add, scale, dtype):
    """W_l of networks start .. start+nb-1 exactly as the GEMM kernels generate them (a CuPy
    (nb, width, fi) array; tests compare it with rf.sample bit for bit)."""
    cp = loader.cupy()
    dt = np.dtype(dtype)
    T = dt.type
    out = cp.zeros((nb, width, fi), dtype=dt)
    plan = _plan_array(cp, nb=nb, width=width, in_width=fi, samples=1, family=family, k0=k0,
                       k1=k1, c2_start=start, act=0, seg=1, depth=1, c3x=0, c3g=0)
    k = _kernel("rf_pg_layer_weights", dt)
    items = nb * -(-width // BM) * -(-fi // BK)
    k((_gemm_grid(items),), (GEMM_THREADS,), (out, plan, np.uint64(fi), np.uint32(c3w), T(mul), T(add),
                                                     T(scale)), shared_mem=smem_bytes("weights", dt.itemsize))
    return out


# --- single steps, for tests (tests/test_cuda_propagate.py compares each with the CPU's helper) ---------
def _test_plan(cp, nb, width, in_width, samples, act=0, seg=1, depth=1, k0=0, k1=0, start=0, c3x=0, c3g=0):
    return _plan_array(cp, nb=nb, width=width, in_width=in_width, samples=samples,
                       family=0, k0=k0, k1=k1, c2_start=start, act=act, seg=seg, depth=depth, c3x=c3x, c3g=c3g)


def draw_inputs(nb, width, in_width, samples, *, k0, k1, start, c3x, c3g, dtype):
    """(X, G) of networks start .. start+nb-1 as rf_pg_inputs draws them: CuPy (nb, maxw, samples)."""
    cp = loader.cupy()
    dt = np.dtype(dtype)
    maxw = max(width, in_width)
    X = cp.zeros((nb, maxw, samples), dtype=dt)
    G = cp.zeros((nb, maxw, samples), dtype=dt)
    L = _Launcher(dt, nb, width, maxw, samples)
    L.elementwise("rf_pg_inputs", nb * (in_width + width) * samples,
                  (X, G, _test_plan(cp, nb, width, in_width, samples, k0=k0, k1=k1, start=start, c3x=c3x, c3g=c3g)))
    return X, G


def activate(Z, act):
    """One forward activation with statistics on CuPy Z (nb, width, S): (X, D, stats (nb, 8)), as
    kernels/cpu/propagate.py ``activate`` computes them (columns 0..6)."""
    cp = loader.cupy()
    dt = np.dtype(Z.dtype)
    nb, width, S = (int(v) for v in Z.shape)
    X = cp.zeros((nb, width, S), dtype=dt)
    D = cp.zeros((nb, 1, width, S), dtype=dt)
    cols = cp.zeros((nb, NCOL, S), dtype=np.float64)
    st = cp.zeros((nb, 1, NSTAT), dtype=np.float64)
    plan = _test_plan(cp, nb, width, width, S, act=act)
    L = _Launcher(dt, nb, width, width, S)
    L.elementwise("rf_pg_activate", nb * S, (Z, X, D, cols, plan, np.uint64(0), np.uint64(1)))
    L.elementwise("rf_pg_combine", nb, (cols, st, plan, np.uint64(0), np.uint64(0), np.uint64(width)))
    return X, D[:, 0], st[:, 0]


def grad_stat(G2):
    """grad_var of CuPy G2 (nb, fi, S) as kernels/cpu/propagate.py ``grad_stat``: (nb,) float64."""
    cp = loader.cupy()
    dt = np.dtype(G2.dtype)
    nb, fi, S = (int(v) for v in G2.shape)
    cols = cp.zeros((nb, NCOL, S), dtype=np.float64)
    st = cp.zeros((nb, 1, NSTAT), dtype=np.float64)
    plan = _test_plan(cp, nb, fi, fi, S)
    L = _Launcher(dt, nb, fi, fi, S)
    L.elementwise("rf_pg_gradsum", nb * S, (G2, cols, plan, np.uint64(fi)))
    L.elementwise("rf_pg_combine", nb, (cols, st, plan, np.uint64(0), np.uint64(1), np.uint64(fi)))
    return st[:, 0, 7]


def gemm_given(W, A, backward=False, D=None):
    """The GEMM kernels on given weights W (nb, width, fi): forward W @ A (A: (nb, fi, S)), or backward
    W^T (D * A) (A, D: (nb, width, S); D defaults to ones).  CuPy result (nb, rows, S)."""
    cp = loader.cupy()
    dt = np.dtype(W.dtype)
    T = dt.type
    nb, width, fi = (int(v) for v in W.shape)
    S = int(A.shape[2])
    maxw = max(width, fi)
    plan = _test_plan(cp, nb, width, fi, S)
    L = _Launcher(dt, nb, width, maxw, S)
    Ap = cp.zeros((nb, maxw, S), dtype=dt)
    out = cp.zeros((nb, maxw, S), dtype=dt)
    one = T(1)
    if not backward:
        Ap[:, :fi] = A
        Z = cp.zeros((nb, width, S), dtype=dt)
        L.gemm("rf_pg_forward", width, (W, Ap, Z, plan, np.uint64(fi), np.uint32(0), np.uint32(0), np.uint64(1),
                                        one, one, one, T(0)))
        return Z
    Ap[:, :width] = A
    Dp = cp.ones((nb, 1, width, S), dtype=dt) if D is None else cp.ascontiguousarray(D.reshape(nb, 1, width, S))
    L.gemm("rf_pg_backward", fi, (W, Dp, Ap, out, plan, np.uint64(fi), np.uint32(0), np.uint64(0), np.uint64(1),
                                  one, one, one))
    return out[:, :fi]
