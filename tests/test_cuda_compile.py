"""The CUDA sources compile, and compile to the arithmetic the stream contract needs, without a GPU.

* every ``.cu`` of ``rinit_fast.kernels.cuda`` compiles with nvcc for sm_90 (skips without nvcc), so a
  syntax error fails the suite even on a machine with no GPU;
* the PTX of sampling.cu contains no fused multiply-add other than the header's deliberate exact ones
  (``rf_fma_exact``), even when the compiler is allowed to contract (``--fmad=true``), and no float32
  arithmetic that flushes subnormals although CuPy compiles with ``-ftz=true``;
* NVRTC (what CuPy uses) compiles the exact source and options the loader builds, and resolves every
  template name expression (skips when libnvrtc is not found; set ``RINIT_FAST_NVRTC`` to its path);
* the loader imports and plans without CuPy.
"""
import ctypes
import glob
import os
import re
import shutil
import site
import subprocess
import tempfile
import sys

import pytest

from rinit_fast.kernels.cuda import loader

CU = loader.sources(".cu")
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")


def test_sources_are_package_data():
    assert "sampling.cu" in CU
    assert "philox.cuh" in loader.sources(".cuh")


@needs_nvcc
@pytest.mark.parametrize("name", CU)
def test_every_cu_compiles_with_nvcc(name, tmp_path):
    d = loader.source_dir()
    cmd = [NVCC, "-arch=sm_90", "--fmad=false", "-std=c++17", "-I", str(d), "-c", str(d / name),
           "-o", str(tmp_path / (name + ".o"))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"


def _ptx(tmp_path, *flags):
    d = loader.source_dir()
    out = tmp_path / "s.ptx"
    cmd = [NVCC, "-arch=compute_90", "-std=c++17", "-I", str(d), "-ptx", *flags, str(d / "sampling.cu"),
           "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out.read_text()


def _ops(ptx):
    return re.findall(r"^\s+((?:fma|mad|mul|add|sub|div|sqrt|neg|abs)\.[\w.]+)", ptx, re.M)


@needs_nvcc
def test_ptx_has_no_contraction_and_no_flush(tmp_path):
    # --fmad=true (the compiler may contract) is the stricter case: the modules use --fmad=false.
    # With the header's exact fusions turned into two operations, no fused operation is left at all,
    # even with CuPy's -ftz=true.
    ops = _ops(_ptx(tmp_path, "--fmad=true", "-ftz=true", "-DRF_CHECK_NO_FMA"))
    fused = [o for o in ops if o.startswith("fma") or (o.startswith("mad") and ".f" in o)]
    assert not fused, sorted(set(fused))
    # as built: only the deliberate exact fusions (3 per float32 and 2 per float64 Box-Muller copy),
    # and no float arithmetic that flushes subnormals
    ops = _ops(_ptx(tmp_path, "--fmad=true", "-ftz=true"))
    fused = [o for o in ops if o.startswith("fma") or (o.startswith("mad") and ".f" in o)]
    assert set(fused) <= {"fma.rn.f32", "fma.rn.f64"}, set(fused)
    assert fused.count("fma.rn.f32") % 3 == 0 and fused.count("fma.rn.f64") % 2 == 0
    flushing = [o for o in ops if ".ftz" in o]
    assert not flushing, sorted(set(flushing))


def _find_nvrtc():
    cands = [os.environ.get("RINIT_FAST_NVRTC")]
    roots = list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path
    for r in roots:
        cands += sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib", "libnvrtc.so*")))
        cands += sorted(glob.glob(os.path.join(r, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
    cands += sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))
    for c in cands:
        if c and os.path.isfile(c) and "builtins" not in os.path.basename(c) and ".alt." not in c:
            return c
    return None


def _load_nvrtc(path):
    # libnvrtc dlopens its builtins by soname: load the one beside it first
    for b in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*"))):
        if ".alt." not in b:
            try:
                ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
    return ctypes.CDLL(path)


NVRTC = _find_nvrtc()


@pytest.mark.skipif(NVRTC is None, reason="libnvrtc not found (set RINIT_FAST_NVRTC)")
@pytest.mark.parametrize("name", CU)
def test_nvrtc_compiles_what_the_loader_builds(name):
    lib = _load_nvrtc(NVRTC)
    prog = ctypes.c_void_p()
    src = loader.source(name)
    assert src.splitlines()[1] == f'#line 1 "{loader.source_dir() / name}"'
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None) == 0
    exprs = loader._SAMPLING_TEMPLATES if name == loader.SAMPLING else ()
    for e in exprs:
        assert lib.nvrtcAddNameExpression(prog, e.encode()) == 0
    opts = [o.encode() for o in loader.options() + ("-ftz=true", "--gpu-architecture=sm_90")]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert rc == 0, log.value.decode()
    for e in exprs:
        low = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(prog, e.encode(), ctypes.byref(low)) == 0, e
        assert low.value.startswith(b"_Z"), (e, low.value)
    size = ctypes.c_size_t()
    assert lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)) == 0 and size.value > 0
    lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_nvrtc_reports_errors_at_the_real_file(tmp_path, monkeypatch):
    """A broken kernel's error names the real .cu path and line (the loader's #line)."""
    if NVRTC is None:
        pytest.skip("libnvrtc not found (set RINIT_FAST_NVRTC)")
    (tmp_path / "broken.cu").write_text('#include "philox.cuh"\n\nextern "C" __global__ void k() { oops; }\n')
    for h in loader.sources(".cuh"):
        (tmp_path / h).write_bytes((loader.source_dir() / h).read_bytes())
    monkeypatch.setattr(loader, "source_dir", lambda: tmp_path)
    lib = _load_nvrtc(NVRTC)
    prog = ctypes.c_void_p()
    lib.nvrtcCreateProgram(ctypes.byref(prog), loader.source("broken.cu").encode(), b"x.cu", 0, None, None)
    opts = [o.encode() for o in loader.options() + ("--gpu-architecture=sm_90",)]
    assert lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)) != 0
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert f"{tmp_path / 'broken.cu'}(3)" in log.value.decode(), log.value.decode()


def test_loader_without_cupy():
    """Importing and planning need no CuPy; options carry the bit-exactness flags."""
    src = loader.source("sampling.cu")
    assert src.startswith("// rinit_fast headers sha1 ")
    opts = loader.options()
    assert "--fmad=false" in opts and "--std=c++17" in opts
    assert any(o.startswith("--include-path=") for o in opts)
    with pytest.raises(ValueError, match="multiple of 32"):
        with loader.launch_config(block=48):
            pass
    with pytest.raises(ValueError, match="grid"):
        with loader.launch_config(grid=0):
            pass
    with loader.launch_config(block=64, grid=3):
        assert loader._launch == {"block": 64, "grid": 3}
    assert loader._launch == {"block": None, "grid": None}
    with pytest.raises(ValueError, match="name_expressions"):
        loader.get_function("sampling.cu", "rf_truncate<float>", name_expressions=("rf_truncate<double>",))
    with pytest.raises(FileNotFoundError, match="no CUDA source"):
        loader.source("nope.cu")
    code = "import sys, rinit_fast.kernels.cuda.loader; assert 'cupy' not in sys.modules"
    # run outside the checkout: from its root, ./rinit_fast (the source tree, without kernels/) would
    # shadow the installed package
    assert subprocess.run([sys.executable, "-c", code], cwd=tempfile.gettempdir()).returncode == 0
