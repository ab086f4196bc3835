"""tests/test_cuda_spectral.py (the GPU tests of the spectral kernels) run on the CPU: the real kernels of
kernels/cuda/spectral.cu (and sampling.cu, which draws the start vectors), compiled as host C++ against
tests/cuda_host/cuda_shim.h in block mode (every thread of a block a coroutine, __syncthreads and the
warp shuffles of the reductions modelled), behind the fake CuPy of tests/cuda_host/fake_cupy.

This exercises the whole path of a CuPy W through rf.spectral_radius / rf.spectral_norm: the shared
validation, the spec's driver (rinit_fast/spec/spectral.py: active sets, per-matrix Krylov dimensions,
host Rayleigh-Ritz, thick restarts, nilpotency probes) on the GPU backend of
kernels/cuda/spectral_launch.py, the exact C types of every kernel argument, the
shared-memory layouts (the emulator flags a write past the launch's dynamic shared memory) and the
barriers (a missing one shows up as a wrong answer under the coroutine interleaving).  The tests marked
`large` (n >= 128) are left to the GPU (minutes in the emulation).  What it cannot check: NVRTC's code
generation, CuPy's real semantics (cuSOLVER's eigvals/svd for method="exact": the fake's linalg is
NumPy's), and speed.  Skips without a C++ compiler.
"""
import pytest

from cuda_host.fake_env import fake_cupy_env, run_gpu_suite

SUBSET = "not large"


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory):
    return fake_cupy_env(tmp_path_factory, "emulate_spectral_lib.cpp")


@pytest.mark.slow   # about 85 s on the 2-core VM (the GPU suite under the emulator)
def test_spectral_gpu_suite_on_the_emulator(fake_env, tmp_path):
    run_gpu_suite(fake_env, tmp_path, "test_cuda_spectral.py", SUBSET)
