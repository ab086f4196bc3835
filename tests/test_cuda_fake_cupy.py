"""The GPU tests of tests/test_cuda_sampling.py, run on the CPU against a fake CuPy whose RawKernel runs the
real kernels of kernels/cuda/sampling.cu in the CPU emulation (tests/cuda_host/fake_cupy,
tests/cuda_host/emulate_lib.cpp).

This exercises the whole backend="cuda" path of rf.sample and rf.rng without a GPU: the loader's
wrappers and the exact C types of every kernel argument (the fake refuses, say, a Python int where the
kernel takes a uint32, which a GPU would silently misread), the aligned/unaligned path choice, the launch
configuration and shared-memory sizes, qr_haar's sign correction (NumPy's QR standing in for
cuSOLVER's), and the GPU tests themselves.  A fast subset runs here; tests that need real CuPy semantics
(out= buffers, which the fake's NumPy subclass cannot model) or take long in emulation are left to the
GPU.  Skips without a C++ compiler.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from cuda_host.fake_env import fake_cupy_env, run_gpu_suite

HERE = Path(__file__).resolve().parent
SUBSET = ("bit_equality or batch_split or stream_functions or loader_fills or philox "
          "or orthogonal or truncated_normal or environment_overrides")


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory):
    """Environment that makes `import cupy` load the fake, with the emulation library built."""
    return fake_cupy_env(tmp_path_factory, "emulate_lib.cpp")


def test_gpu_suite_on_the_emulator(fake_env, tmp_path):
    run_gpu_suite(fake_env, tmp_path, "test_cuda_sampling.py", SUBSET, timeout=900, report=())


def test_bench_script_runs_on_the_emulator(fake_env, tmp_path):
    """bench/compare_sampling_cuda.py end to end on a tiny size (its numbers mean nothing here): catches
    a broken benchmark before a GPU session spends its time on it."""
    script = HERE.parent / "bench" / "compare_sampling_cuda.py"
    if not script.is_file():
        pytest.skip("bench/ not in this tree")
    r = subprocess.run([sys.executable, str(script), "--values", "2**12", "--repeat", "1", "--warmup", "0",
                        "--skip", "torch", "--json", str(tmp_path / "b.json")],
                       capture_output=True, text=True, env=fake_env, cwd=str(tmp_path), timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "bits == CPU" in r.stdout and "BITS DIFFER" not in r.stdout, r.stdout[-3000:]
    assert (tmp_path / "b.json").is_file()
