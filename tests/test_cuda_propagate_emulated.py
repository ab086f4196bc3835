"""tests/test_cuda_propagate.py (the GPU tests of rf.propagate's CUDA backend) run on the CPU: the real
kernels of kernels/cuda/propagate.cu (and sampling.cu, for the orthogonal layers rf.sample draws),
compiled as host C++ against tests/cuda_host/cuda_shim.h (the GEMM kernels in block mode: every thread
of a block a coroutine, so a missing __syncthreads shows up as wrong values), behind the fake CuPy of
tests/cuda_host/fake_cupy.

This exercises the whole backend="cuda" path of rf.propagate: the shared validation and planning in
rinit_fast/propagate.py, kernels/cuda/propagate_launch.py, the exact C types of every kernel argument,
the shared-memory sizes (the emulator flags a write past the launch's dynamic shared memory), the tile
edges, and the arithmetic (the host build performs the device code's IEEE operations; FMAs are the C
library's correctly rounded fma, as the GPU's; float64 tanh/exp are the host libm's, as the CPU
backend's, so here even those match bit for bit).  What it cannot check: NVRTC's code generation and the
hardware (tests/test_cuda_compile.py compiles the file and reads the PTX), CuPy's real semantics, and
speed.  Skips without a C++ compiler.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

from cuda_host.fake_env import fake_cupy_env, run_gpu_suite

SUBSET = "not gpu_only"     # depth 50 at width 256 is left to the GPU (half a minute here)


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory):
    return fake_cupy_env(tmp_path_factory, "emulate_propagate_lib.cpp")


@pytest.mark.slow   # about 40 s on the 2-core VM (host C++ build of the kernels, then the suite)
def test_propagate_gpu_suite_on_the_emulator(fake_env, tmp_path):
    run_gpu_suite(fake_env, tmp_path, "test_cuda_propagate.py", SUBSET)


def test_propagate_ptx_keeps_ieee_float32(tmp_path):
    """PTX of propagate.cu with the compiler free to contract and flush (--fmad=true -ftz=true): the
    float32 kernels and rf_pg_combine have no flushing float operation and no fused one other than the
    deliberate fma.rn (the GEMM chains); the float64 kernels' only .ftz float32 instructions are
    libdevice's own inside tanh/exp (rf_pg_activate_f64).  Skips without nvcc."""
    import re
    nvcc = shutil.which("nvcc")
    if not nvcc:
        pytest.skip("no nvcc")
    import importlib.resources as ir
    d = Path(str(ir.files("rinit_fast.kernels.cuda")))
    out = tmp_path / "p.ptx"
    r = subprocess.run([nvcc, "-arch=compute_90", "-std=c++17", "-I", str(d), "-ptx", "--fmad=true", "-ftz=true",
                        str(d / "propagate.cu"), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ptx = out.read_text()
    entries = re.split(r"^\.visible \.entry ", ptx, flags=re.M)[1:]
    assert len(entries) == 13
    for e in entries:
        name = e.split("(", 1)[0].strip()
        ops = re.findall(r"^\s+((?:fma|mad|mul|add|sub|div|sqrt|neg|abs|cvt|min|max)\.[\w.]+)", e, re.M)
        fused = {o for o in ops if o.startswith("fma") or (o.startswith("mad") and ".f" in o)}
        assert fused <= {"fma.rn.f32", "fma.rn.f64"}, (name, fused)
        ftz = {o for o in ops if ".ftz" in o}
        if name == "rf_pg_activate_f64":
            # libdevice's float64 tanh/exp use float32 helpers internally (our code there is all float64)
            assert ftz <= {"mul.ftz.f32", "abs.ftz.f32", "cvt.ftz.f64.f32", "cvt.rn.ftz.f32.f64"}, (name, ftz)
        else:
            assert not ftz, (name, ftz)
