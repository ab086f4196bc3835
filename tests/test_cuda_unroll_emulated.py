"""tests/test_cuda_unroll.py (the GPU tests of rf.unroll's CUDA backend) run on the CPU: the real
kernels of kernels/cuda/unroll.cu, compiled as host C++ against tests/cuda_host/cuda_shim.h in block
mode (every thread of a block a coroutine; __syncthreads and the half-warp shuffles of the norm
modelled), behind the fake CuPy of tests/cuda_host/fake_cupy.

This exercises the whole path of a CuPy W through rf.unroll: the shared validation, the planner and
packing of kernels/cuda/unroll_launch.py, the exact C types of every kernel argument, the shared-memory
layout (the emulator flags any write past the launch's dynamic shared memory), the barriers between
phases (a missing one shows up as wrong bits under the coroutine interleaving) and the arithmetic: the
host build performs the device code's IEEE operations (the helpers' host branches) and uses the host
libm's log, so here every bit, records included, must equal the CPU kernel's.  What it cannot check:
NVRTC's code generation and the hardware (tests/test_cuda_compile.py reads the PTX), CuPy's real
semantics, and speed.  Skips without a C++ compiler.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

from cuda_host.fake_env import fake_cupy_env, run_gpu_suite

# n = 500 is left to the GPU (minutes in the emulation)
SUBSET = "not 500"


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory):
    return fake_cupy_env(tmp_path_factory, "emulate_unroll_lib.cpp",
                         drop=("RINIT_FAST_UNROLL_RPB", "RINIT_FAST_UNROLL_WSMEM"))


@pytest.mark.slow   # about 16-45 s on the 2-core VM (the GPU suite under the emulator)
def test_unroll_gpu_suite_on_the_emulator(fake_env, tmp_path):
    run_gpu_suite(fake_env, tmp_path, "test_cuda_unroll.py", SUBSET)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_unroll_ptx_keeps_ieee_float32(tmp_path):
    """CuPy compiles with -ftz=true: no float32 arithmetic or conversion of unroll.cu may flush
    subnormals (the CPU keeps them), and the only fused operations are the explicit round-to-nearest
    FMAs of the product chain (the CPU's llvm.fma) and the header's exact ones, even with --fmad=true."""
    import importlib.resources as ir
    import re
    d = Path(str(ir.files("rinit_fast.kernels.cuda")))
    out = tmp_path / "u.ptx"
    r = subprocess.run(["nvcc", "-arch=compute_90", "-std=c++17", "-I", str(d), "-ptx", "--fmad=true",
                        "-ftz=true", str(d / "unroll.cu"), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ops = re.findall(r"^\s+((?:fma|mad|mul|add|sub|div|sqrt|neg|abs|cvt)\.[\w.]+)", out.read_text(), re.M)
    flushing = [o for o in ops if ".ftz" in o]
    assert not flushing, sorted(set(flushing))
    fused = {o for o in ops if o.startswith("fma") or (o.startswith("mad") and ".f" in o)}
    assert fused <= {"fma.rn.f32", "fma.rn.f64"}, fused
