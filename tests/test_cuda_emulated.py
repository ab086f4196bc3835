"""The real kernels of kernels/cuda/sampling.cu, run on the CPU under a small CUDA execution model
(tests/cuda_host/cuda_shim.h: warps of 32 coroutine lanes that meet in __shfl_sync, __ballot_sync and
__syncwarp), compared bit for bit with the CPU kernels of kernels/cpu/sampling.py.

No GPU needed.  This checks what the header test (tests/test_cuda_header_host.py) cannot: the kernels'
indexing (the grid-stride cursor over (matrix, sub, block), tails, the aligned 16-byte path, the
warp-staged path for rows that start inside a 16-byte group), that every output element is written
once and nothing outside it, the truncated-normal redraws, and that grid and block sizes change no
value.  What it cannot check: the device code generation (tests/test_cuda_compile.py covers the PTX)
and real GPU timing or memory behaviour.  Skips without a C++ compiler.
"""
import subprocess

import numpy as np
import pytest

from rinit_fast.kernels.cpu import sampling as cpu
from rinit_fast.kernels.cpu import philox as cpu_philox

from cuda_host.fake_env import build


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    return build("emulate.cpp", tmp_path_factory.mktemp("emu") / "emulate", shared=False)


def _cpu_fill(kind, dt, A, S, N, seed, c2, c3, p):
    out = np.empty((A, S, N), dt)
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    f32 = dt == np.float32
    t = dt.type
    args = (out, k0, k1, np.uint64(c2), np.uint64(c3))
    if kind == "normal":
        (cpu.normal_f32 if f32 else cpu.normal_f64)(*args, t(p[0]))
    elif kind == "uniform":
        (cpu.uniform_f32_fill if f32 else cpu.uniform_f64_fill)(*args, t(p[0]), t(p[1]), t(p[2]))
    else:
        (cpu.normal_f32 if f32 else cpu.normal_f64)(*args, t(1.0))
        (cpu.truncate_f32 if f32 else cpu.truncate_f64)(*args, t(p[0]), t(p[1]))
    return out


def _emu_fill(emu, tmp_path, kind, dt, A, S, N, seed, c2, c3, grid, block, mis, path, p):
    outf = tmp_path / f"out_{kind}_{A}_{S}_{N}_{grid}_{block}_{mis}_{path}.bin"
    p = list(p) + [0.0] * (3 - len(p))
    cmd = [str(emu), "fill", kind, "f32" if dt == np.float32 else "f64", A, S, N, seed, c2, c3, grid,
           block, mis, path, *[repr(float(x)) for x in p], outf]
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr)
    return np.fromfile(outf, dt).reshape(A, S, N), r.stdout.strip()


def _same(got, want, msg):
    u = np.uint32 if got.dtype == np.float32 else np.uint64
    bad = np.flatnonzero(got.view(u).ravel() != want.view(u).ravel())
    assert bad.size == 0, f"{msg}: {bad.size} of {got.size} differ, first at {bad[:8]}"


# (A, S, N): single values, tails of every length, sub-indices (S > 1), rows shorter and longer than a
# grid step (rows move every step / only on a wrap), exact multiples of the 4-value block
SHAPES = [(1, 1, 1), (1, 1, 7), (2, 1, 7), (3, 2, 5), (2, 3, 33), (1, 1, 500), (2, 1, 1025), (4, 1, 4),
          (1, 1, 1024), (5, 1, 12), (2, 3, 8), (7, 1, 3), (1, 2, 130)]
LAUNCH = [(1, 32), (3, 64), (2, 96), (5, 32), (1, 256)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["normal", "uniform", "truncate"])
def test_kernels_match_cpu_bit_for_bit(emu, tmp_path, kind, dtype):
    dt = np.dtype(dtype)
    V = 4 if dt == np.float32 else 2
    rng = np.random.default_rng()
    params = {"normal": (0.37,), "uniform": (2.0, -1.0, 0.125), "truncate": (2.0, 0.5)}[kind]
    for n, (A, S, N) in enumerate(SHAPES):
        seed = int(rng.integers(0, 2 ** 64, dtype=np.uint64))
        c2 = int(rng.integers(0, 2 ** 32 - A))
        c3 = (int(rng.integers(0, 256)) << 24) | int(rng.integers(0, 2 ** 24 - S))
        want = _cpu_fill(kind, dt, A, S, N, seed, c2, c3, params)
        grid, block = LAUNCH[n % len(LAUNCH)]
        mis = n % V
        for path in ("auto", "general"):
            got, used = _emu_fill(emu, tmp_path, kind, dt, A, S, N, seed, c2, c3, grid, block, mis, path,
                                  params)
            _same(got, want, f"{kind} {dt} shape {(A, S, N)} grid {grid} block {block} mis {mis} {used}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_launch_configuration_changes_no_bit(emu, tmp_path, dtype):
    """Same output for every grid and block size, on both store paths, aligned and not."""
    dt = np.dtype(dtype)
    A, S, N = 3, 2, 37
    seed, c2, c3 = 0xDEADBEEFCAFEF00D, 2 ** 32 - 3, (5 << 24) | 11
    want = _cpu_fill("normal", dt, A, S, N, seed, c2, c3, (1.5,))
    for grid, block in [(1, 32), (1, 1024), (2, 64), (9, 32), (64, 32), (4, 160)]:
        for mis in (0, 1):
            got, used = _emu_fill(emu, tmp_path, "normal", dt, A, S, N, seed, c2, c3, grid, block, mis,
                                  "auto", (1.5,))
            _same(got, want, f"grid {grid} block {block} mis {mis} {used}")
    # the aligned path: N a multiple of the block's values, 16-byte aligned buffer
    N = 40
    want = _cpu_fill("uniform", dt, A, S, N, seed, c2, c3, (2.0, -1.0, 3.0))
    for grid, block in [(1, 32), (3, 64), (100, 32)]:
        got, used = _emu_fill(emu, tmp_path, "uniform", dt, A, S, N, seed, c2, c3, grid, block, 0, "auto",
                              (2.0, -1.0, 3.0))
        assert used == "aligned"
        _same(got, want, f"aligned grid {grid} block {block}")


def test_truncation_with_many_redraws(emu, tmp_path):
    """A tight bound forces several attempts per value (a = 1, 2, ...), all on the documented counters."""
    for dt in (np.dtype(np.float32), np.dtype(np.float64)):
        A, S, N = 2, 1, 301
        want = _cpu_fill("truncate", dt, A, S, N, 99, 7, 0, (0.05, 3.0))
        got, _ = _emu_fill(emu, tmp_path, "truncate", dt, A, S, N, 99, 7, 0, 3, 64, 1, "auto", (0.05, 3.0))
        _same(got, want, f"truncate {dt}")
        assert np.abs(got).max() <= 0.05 * 3.0


def test_philox_blocks_kernel(emu, tmp_path):
    rng = np.random.default_rng()
    rows = rng.integers(0, 2 ** 32, (777, 6), dtype=np.uint64).astype(np.uint32)
    rows.tofile(tmp_path / "in")
    r = subprocess.run([str(emu), "philox", str(tmp_path / "in"), str(tmp_path / "out"), "3", "64"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.fromfile(tmp_path / "out", np.uint32).reshape(-1, 4)
    want = np.empty_like(got)
    cpu_philox.philox4x32_blocks(np.ascontiguousarray(rows[:, :4]), np.ascontiguousarray(rows[:, 4:]), want)
    np.testing.assert_array_equal(got, want)
