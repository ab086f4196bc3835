"""A register-blocked GEMM on a right operand packed once: C = A @ B for a B that many products share.

Used by kernels/cpu/unroll.py (B = [Wᵀ; Uᵀ], fixed for all the steps of an unroll) and meant for any
kernel that multiplies many small row blocks by one fixed matrix.  The stable interface:

    panel_width(dtype) -> NR              Python: columns of a packed panel (32 float32 / 16 float64 with
                                          AVX-512, 16 / 8 without)
    pack_panels(B, dtype) -> P            Python (NumPy): B (..., K, N) packed as P (..., ceil(N / NR),
                                          K, NR), P[..., p, k, j] = B[..., k, p·NR + j], zero past column
                                          N - 1 (a stack of matrices packed in one call)
    aligned_empty(shape, dtype) -> C      Python: a 64-byte aligned array (for C: aligned vector stores)
    gemm_packed(A, P, C, kuse, M)         Numba (callable from jitted code and from Python):
                                          C[:M, :npan·NR] = A[:M, :kuse] @ P-packed B[:kuse]; A (>= M,
                                          >= kuse), C (>= M, >= npan·NR), C-contiguous, P's dtype; kuse >= 1

Bits.  Every entry of C is one chain of fused multiply-adds, acc = fma(A[r, k], B[k, j], acc) for
k = 0 .. kuse-1 in order from acc = 0: its bits depend neither on the row blocking, the panel width,
the vector width nor the thread count (the CUDA kernel of unroll.cu runs the same chain).

Why hand-written LLVM IR.  Numba cannot keep a tile of accumulators in registers through the k loop
(20-35 GFLOP/s with the accumulators in memory, when this was written); the micro-kernel below keeps
MR × NV vectors of LANES floats in registers and runs at the FMA rate: 104 GFLOP/s per core at n = 500,
R = 50 (the 1-thread sgemm ceiling of this VM), against 60.5 for a per-step BLAS call, which re-packs B
on every call (bench/NOTES.md "Unroll").  No BLAS call can give the FMA-chain bits either.

The IR is emitted through ``numba.extending.intrinsic`` with llvmlite's IR builder, and touches only
addresses, integers and vectors (no Numba array internals).  It is checked against the Numba and
llvmlite versions it was written and tested for, once, when this module is imported
(:data:`SUPPORTED`): any other version raises ImportError with what to do (docs/unroll.md, "Versions").
"""
from __future__ import annotations

import math
import re

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import _COMMON

# --- the one version guard ---------------------------------------------------------------------------
SUPPORTED = {"numba": ((0, 68, 1), (0, 69, 0)), "llvmlite": ((0, 50, 0), (0, 51, 0))}
"""[lowest, first unsupported) version of each package the micro-kernel's IR is written and tested for
(CI installs numba 0.68.1, llvmlite 0.50.0)."""


def _version(text):
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in m.groups()) if m else (0, 0, 0)


def check_versions(installed=None):
    """Raise ImportError unless the installed Numba and llvmlite are in :data:`SUPPORTED`."""
    installed = installed or {"numba": numba.__version__, "llvmlite": llvmlite.__version__}
    for pkg, (lo, hi) in SUPPORTED.items():
        v = _version(installed[pkg])
        if not lo <= v < hi:
            rng = f">={'.'.join(map(str, lo))},<{'.'.join(map(str, hi))}"
            raise ImportError(
                f"rinit_fast's CPU unroll kernel needs {pkg}{rng} (its matrix micro-kernel is LLVM IR "
                f"written and tested for those versions), but {pkg} {installed[pkg]} is installed. "
                f'Install a supported version: pip install "numba>=0.68.1,<0.69" (it brings llvmlite '
                f"0.50); to support another version, re-run tests/test_unroll.py and tests/test_golden.py "
                f"under it and widen SUPPORTED in kernels/cpu/packed_gemm.py and numba in pyproject.toml")


check_versions()

# --- tile shape (host-dependent; the bits are not) ----------------------------------------------------
WIDE = bool(llvm.get_host_cpu_features().get("avx512f", False))   # 32 vector registers of 16 float32
LANES32 = 16 if WIDE else 8        # float32 lanes of one vector register
NV = 2                             # vectors per tile row: a panel is NR = NV · lanes columns wide
MR_MAX = 12 if WIDE else 6         # rows of a tile: MR·NV accumulators + NV loads + 1 broadcast fit


def panel_width(dtype):
    """NR: the columns of one packed panel for ``dtype`` (float32 or float64)."""
    return NV * (LANES32 if np.dtype(dtype) == np.float32 else LANES32 // 2)


ALIGN = 64
"""Byte alignment of packed panels and product rows: one vector load never straddles two cache lines
(NumPy aligns to 16 bytes, Numba to 32; a 64-byte AVX-512 load at offset 32 spans two lines)."""


def aligned_empty(shape, dtype, align=ALIGN):
    """An uninitialised C-contiguous array whose data address is a multiple of ``align`` bytes."""
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    size = math.prod(shape)
    raw = np.empty(size * dt.itemsize + align, dtype=np.uint8)
    off = -raw.ctypes.data % align
    return raw[off:off + size * dt.itemsize].view(dt).reshape(shape)


def pack_panels(B, dtype=None):
    """B (..., K, N) → P (..., ceil(N / NR), K, NR) C-contiguous and :data:`ALIGN`-aligned (every matrix
    of a stack too), in ``dtype`` (default B's): P[..., p, k, j] = B[..., k, p·NR + j], zero for
    p·NR + j >= N."""
    dt = np.dtype(dtype or B.dtype)
    *lead, K, N = B.shape
    lead = tuple(lead)
    nr = panel_width(dt)
    npan = -(-N // nr)
    P = aligned_empty(lead + (npan, K, nr), dt)
    full = N // nr
    P[..., :full, :, :] = np.swapaxes(B[..., :full * nr].reshape(lead + (K, full, nr)), -3, -2)
    if full < npan:
        P[..., full, :, :] = 0
        P[..., full, :, :N - full * nr] = B[..., full * nr:]
    return P


# --- the micro-kernel: one intrinsic, the MR ladder inside the IR (one call site to type) -------------
def _i64(t):
    return isinstance(t, types.Integer) and t.bitwidth == 64


@intrinsic
def _microkernel(typingctx, like, a, lda, r0, p, ldp, pan, c, ldc, kuse, mr):
    """C[r0:r0+mr, pan·NR:(pan+1)·NR] = A[r0:r0+mr, :kuse] @ panel pan, for 1 <= mr <= MR_MAX.

    ``like``: an array of the dtype (for typing only); ``a``, ``p``, ``c``: data addresses of A, P, C;
    ``lda``, ``ldc``: their row lengths in elements; ``ldp``: elements per panel (K·NR); kuse >= 1."""
    if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
        return None
    ints = (a, lda, r0, p, ldp, pan, c, ldc, kuse, mr)
    if not all(_i64(t) for t in ints):
        return None
    f32 = like.dtype == types.float32
    fty = ir.FloatType() if f32 else ir.DoubleType()
    L = LANES32 if f32 else LANES32 // 2
    NR = L * NV
    sig = types.void(like, *ints)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        _, a_v, lda_v, r0_v, p_v, ldp_v, pan_v, c_v, ldc_v, kuse_v, mr_v = args
        fptr = fty.as_pointer()
        vty = ir.VectorType(fty, L)
        vptr = vty.as_pointer()
        mod = builder.module
        name = f"llvm.fma.v{L}{'f32' if f32 else 'f64'}"
        fma = mod.globals.get(name) or ir.Function(mod, ir.FunctionType(vty, [vty, vty, vty]), name)

        def const(v):
            return ir.Constant(i64, v)
        a_base = builder.gep(builder.inttoptr(a_v, fptr), [builder.mul(r0_v, lda_v)])
        b_base = builder.gep(builder.inttoptr(p_v, fptr), [builder.mul(pan_v, ldp_v)])
        c_base = builder.gep(builder.inttoptr(c_v, fptr),
                             [builder.add(builder.mul(r0_v, ldc_v), builder.mul(pan_v, const(NR)))])
        undef = ir.Constant(vty, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, L), [0] * L)
        zero = ir.Constant(vty, [0.0] * L)
        done = builder.append_basic_block("mk_done")
        switch = builder.switch(mr_v, done)
        for MR in range(1, MR_MAX + 1):
            head = builder.append_basic_block(f"mk{MR}")
            loop = builder.append_basic_block(f"mk{MR}_loop")
            tail = builder.append_basic_block(f"mk{MR}_store")
            switch.add_case(ir.Constant(i64, MR), head)
            builder.position_at_end(head)
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(const(0), head)
            acc = [[builder.phi(vty) for _ in range(NV)] for _ in range(MR)]
            for row in acc:
                for ph in row:
                    ph.add_incoming(zero, head)
            bk = builder.gep(b_base, [builder.mul(k, const(NR))])
            bv = [builder.load(builder.bitcast(builder.gep(bk, [const(v * L)]), vptr), align=4)
                  for v in range(NV)]
            new = []
            for r in range(MR):
                s = builder.load(builder.gep(a_base, [builder.add(builder.mul(const(r), lda_v), k)]))
                s1 = builder.insert_element(undef, s, ir.Constant(i32, 0))
                sv = builder.shuffle_vector(s1, undef, splat)
                new.append([builder.call(fma, [sv, bv[v], acc[r][v]]) for v in range(NV)])
            k1 = builder.add(k, const(1))
            k.add_incoming(k1, loop)
            for r in range(MR):
                for v in range(NV):
                    acc[r][v].add_incoming(new[r][v], loop)
            builder.cbranch(builder.icmp_signed("<", k1, kuse_v), loop, tail)
            builder.position_at_end(tail)
            for r in range(MR):
                crow = builder.gep(c_base, [builder.mul(const(r), ldc_v)])
                for v in range(NV):
                    dst = builder.bitcast(builder.gep(crow, [const(v * L)]), vptr)
                    builder.store(new[r][v], dst, align=4)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return sig, codegen


@numba.njit(**_COMMON)
def gemm_packed(A, P, C, kuse, M):
    """C[:M, :npan·NR] = A[:M, :kuse] @ B[:kuse] with B packed in P (npan, K, NR) by :func:`pack_panels`
    (M <= the rows of A and C).

    Panels outside (a K × NR panel stays in L2 while every row block uses it); rows in blocks of at most
    MR_MAX, as even as possible (25 rows: 9, 8, 8)."""
    if M <= 0:
        return
    nblk = (M + MR_MAX - 1) // MR_MAX
    a = np.int64(A.ctypes.data)
    p = np.int64(P.ctypes.data)
    c = np.int64(C.ctypes.data)
    lda = np.int64(A.shape[1])
    ldc = np.int64(C.shape[1])
    ldp = np.int64(P.shape[1] * P.shape[2])
    k = np.int64(kuse)
    for pan in range(P.shape[0]):
        r = 0
        for blk in range(nblk):
            mr = (M - r) // (nblk - blk)
            _microkernel(A, a, lda, np.int64(r), p, ldp, np.int64(pan), c, ldc, k, np.int64(mr))
            r += mr
