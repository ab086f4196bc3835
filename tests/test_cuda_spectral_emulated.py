"""tests/test_cuda_spectral.py (the GPU tests of the spectral kernels) run on the CPU: the real kernels of
kernels/cuda/spectral.cu (and sampling.cu, which draws the start vectors), compiled as host C++ against
tests/cuda_host/cuda_shim.h in block mode (every thread of a block a coroutine, __syncthreads and the
warp shuffles of the reductions modelled), behind the fake CuPy of tests/cuda_host/fake_cupy.

This exercises the whole path of a CuPy W through rf.spectral_radius / rf.spectral_norm: the shared
validation, the driver of kernels/cuda/spectral_launch.py (active sets, per-matrix Krylov dimensions,
host Rayleigh-Ritz, thick restarts, nilpotency probes), the exact C types of every kernel argument, the
shared-memory layouts (the emulator flags a write past the launch's dynamic shared memory) and the
barriers (a missing one shows up as a wrong answer under the coroutine interleaving).  The tests marked
`large` (n >= 128) are left to the GPU (minutes in the emulation).  What it cannot check: NVRTC's code
generation, CuPy's real semantics (cuSOLVER's eigvals/svd for method="exact": the fake's linalg is
NumPy's), and speed.  Skips without a C++ compiler.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SUBSET = "not large"


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        pytest.skip("no C++ compiler on PATH")
    import importlib.resources as ir
    cuda_dir = str(ir.files("rinit_fast.kernels.cuda"))
    lib = tmp_path_factory.mktemp("emu") / "libemu_spectral.so"
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-w", "-I", cuda_dir,
           "-I", str(HERE / "cuda_host"), str(HERE / "cuda_host" / "emulate_spectral_lib.cpp"),
           "-o", str(lib)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 and "ucontext" in r.stderr:
        pytest.skip("no <ucontext.h> for the warp emulation")
    assert r.returncode == 0, r.stderr
    fake = str(HERE / "cuda_host" / "fake_cupy")
    env = dict(os.environ, RINIT_FAST_EMU_LIB=str(lib),
               PYTHONPATH=os.pathsep.join([fake, os.environ.get("PYTHONPATH", "")]))
    for k in ("RINIT_FAST_CUDA_BLOCK", "RINIT_FAST_CUDA_GRID"):
        env.pop(k, None)
    return env


def test_spectral_gpu_suite_on_the_emulator(fake_env, tmp_path):
    from rinit_fast import spectral
    if not hasattr(spectral, "_radius_cuda"):
        pytest.skip("rinit_fast.spectral does not dispatch CuPy input to the CUDA kernels yet")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        str(HERE / "test_cuda_spectral.py"), "-k", SUBSET, "-W", "ignore", "-rs"],
                       capture_output=True, text=True, env=fake_env, cwd=str(tmp_path), timeout=1500)
    tail = (r.stdout + r.stderr)[-4000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " skipped" not in r.stdout.strip().split("\n")[-1], tail
