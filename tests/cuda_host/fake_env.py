"""Shared set-up of the emulated CUDA tests (tests/test_cuda_emulated.py, tests/test_cuda_fake_cupy.py,
tests/test_cuda_*_emulated.py): find a C++ compiler, build one of the emulation sources of this folder
against the installed kernels (importlib.resources of rinit_fast.kernels.cuda, so the tests also run
from the repository root after a non-editable `pip install .`), point `import cupy` at the fake CuPy of
fake_cupy/, and run a GPU test file in a pytest subprocess under it.

The test files import it as `cuda_host.fake_env` (pytest puts tests/ on sys.path, as for naive.py).
"""
import importlib.resources as ir
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HOST = Path(__file__).resolve().parent        # tests/cuda_host
TESTS = HOST.parent                           # tests/
# Launch settings the tests must not inherit (they would change what the suites check).
LAUNCH_OVERRIDES = ("RINIT_FAST_CUDA_BLOCK", "RINIT_FAST_CUDA_GRID")


def cuda_dir():
    """The installed kernels/cuda folder (rinit_fast.kernels.cuda)."""
    return Path(str(ir.files("rinit_fast.kernels.cuda")))


def build(source, out, shared=True):
    """Compile tests/cuda_host/`source` against cuda_shim.h and the kernels into `out` (a shared library
    for the fake CuPy, or an executable with shared=False); skips without a C++ compiler or
    <ucontext.h>."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        pytest.skip("no C++ compiler on PATH")
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", *(["-fPIC", "-shared"] if shared else []), "-w",
           "-I", str(cuda_dir()), "-I", str(HOST), str(HOST / source), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 and "ucontext" in r.stderr:
        pytest.skip(f"no <ucontext.h> for the warp emulation: {r.stderr[:200]}")
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


def fake_cupy_env(tmp_path_factory, source, drop=()):
    """Environment that makes `import cupy` load the fake, with the emulation library built from
    tests/cuda_host/`source`; the launch overrides and the variables in `drop` removed."""
    lib = build(source, tmp_path_factory.mktemp("emu") / f"lib{Path(source).stem}.so")
    env = dict(os.environ, RINIT_FAST_EMU_LIB=str(lib),
               PYTHONPATH=os.pathsep.join([str(HOST / "fake_cupy"), os.environ.get("PYTHONPATH", "")]))
    for k in (*LAUNCH_OVERRIDES, *drop):
        env.pop(k, None)
    return env


def run_gpu_suite(env, cwd, test_file, subset, timeout=1500, report=("-rs",)):
    """Run the tests of tests/`test_file` selected by `subset` (-k) in a pytest subprocess under the
    fake CuPy; asserts that they pass and that none was skipped."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        str(TESTS / test_file), "-k", subset, "-W", "ignore", *report],
                       capture_output=True, text=True, env=env, cwd=str(cwd), timeout=timeout)
    tail = (r.stdout + r.stderr)[-4000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and "skipped" not in r.stdout.strip().split("\n")[-1], tail
