"""The one memoised loader of the CUDA kernels, and the Python wrappers of the sampling kernels.

Every ``.cu`` file of this folder (installed as package data of ``rinit_fast.kernels.cuda``) is compiled
by ``cupy.RawModule`` (NVRTC) through :func:`module` / :func:`get_function`:

* the source is read with ``importlib.resources`` and prefixed with ``#line 1 "<real path>"`` so that
  compiler errors point at the real file and line;
* this folder is on the include path (``#include "philox.cuh"``), and a hash of every ``.cuh`` here is
  written into the source's first line, because CuPy's on-disk kernel cache keys on the source text
  only (an edited header must not hit a stale cached binary);
* options :data:`OPTIONS`: ``--std=c++17`` and ``--fmad=false`` (no fused multiply-add contraction:
  the stream must be bit-identical to the CPU's, docs/cuda.md), ``-DNDEBUG``;
* kernels are asked for by name.  Two kinds exist: the sampling kernels of ``sampling.cu`` are C++
  templates, instantiated through NVRTC name expressions (``"rf_normal_fill<float, true>"``, the whole
  list :data:`_SAMPLING_TEMPLATES` passed each time so the file compiles once); every other kernel
  (``rf_philox4x32_blocks``, and all of ``spectral.cu``, ``unroll.cu``, ``propagate.cu``) is an
  ``extern "C"`` function, one per dtype (``rf_spec_power64_f32``, ...), asked for by its plain name with
  no name expression;
* modules are memoised per (file, options, name expressions), kernels per name.

Nothing here imports CuPy at module import time: importing this module on a machine without CuPy
works, and only calling into the CUDA path needs it.

Launch configuration: every kernel here uses grid-stride loops, so the grid and the block size never
change a value.  :func:`launch_config` (or the environment variables ``RINIT_FAST_CUDA_BLOCK`` and
``RINIT_FAST_CUDA_GRID``) forces them, for tests and tuning.  The launchers of the other families
(``*_launch.py``) get their block, grid and device limits through the public :func:`block_size`,
:func:`grid_size`, :func:`forced_grid`, :func:`device_limits` and :func:`env_int`, never through this
module's private state.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import os
import threading
from pathlib import Path

import numpy as np

OPTIONS = ("--std=c++17", "--fmad=false", "-DNDEBUG")
"""NVRTC options of every module (CuPy appends -ftz=true after them; the kernels do not depend on it)."""

DEFAULT_BLOCK = 256

_lock = threading.Lock()
_launch = {"block": None, "grid": None}


# --- sources -----------------------------------------------------------------------------------
def source_dir() -> Path:
    """The folder holding the installed ``.cu``/``.cuh`` files (this package's data)."""
    try:
        return Path(str(importlib.resources.files(__package__ or "rinit_fast.kernels.cuda")))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - loaded outside its package
        return Path(__file__).resolve().parent


def sources(suffix=".cu"):
    """Names of the CUDA files of this folder with the given suffix, sorted."""
    return sorted(p.name for p in source_dir().iterdir() if p.name.endswith(suffix))


def _headers_digest() -> str:
    h = hashlib.sha1()
    for name in sources(".cuh"):
        h.update(name.encode())
        h.update((source_dir() / name).read_bytes())
    return h.hexdigest()


def source(filename: str) -> str:
    """The code given to NVRTC for ``filename``: a header-hash comment, ``#line``, the file."""
    path = source_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"no CUDA source {filename!r} in {source_dir()} (have {sources()})")
    text = path.read_text(encoding="utf-8")
    posix = str(path).replace("\\", "/").replace('"', '\\"')
    return f"// rinit_fast headers sha1 {_headers_digest()}\n#line 1 \"{posix}\"\n{text}"


def options(extra=()) -> tuple:
    """The NVRTC options: :data:`OPTIONS`, this folder on the include path, then ``extra``."""
    return OPTIONS + (f"--include-path={source_dir()}",) + tuple(extra)


# --- modules and kernels -------------------------------------------------------------------------
def cupy():
    """The cupy module, or a clear error naming the extra to install."""
    try:
        import cupy as cp
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        raise RuntimeError(f"the CUDA kernels need CuPy (pip install 'rinit_fast[cuda]'): {exc}") from exc
    return cp


_cupy = cupy  # the name the wrappers below use


@functools.lru_cache(maxsize=None)
def module(filename: str, name_expressions: tuple = (), extra_options: tuple = ()):
    """The ``cupy.RawModule`` of ``filename`` (memoised; compiled on first use of a kernel).

    ``name_expressions``: every template instantiation you will ask for, e.g.
    ``("rf_normal_fill<float, true>",)``; pass the same tuple each time so that one module serves them
    all (non-template ``extern "C"`` kernels need no expression).
    """
    cp = _cupy()
    kw = {}
    if name_expressions:
        kw["name_expressions"] = tuple(name_expressions)
    return cp.RawModule(code=source(filename), options=options(extra_options), **kw)


_kernels = {}


def get_function(filename: str, name: str, *, name_expressions=None, extra_options=()):
    """A kernel of ``filename`` by name (a template instantiation by its expression), memoised.

    ``name_expressions`` defaults to ``(name,)`` for a template name (one containing ``<``); give the
    file's full list when you use several instantiations of one file, to compile it once.
    """
    if name_expressions is None:
        name_expressions = (name,) if "<" in name else ()
    name_expressions = tuple(name_expressions)
    if "<" in name and name not in name_expressions:
        raise ValueError(f"{name!r} is a template instantiation: list it in name_expressions")
    key = (filename, name, name_expressions, tuple(extra_options))
    k = _kernels.get(key)
    if k is None:
        with _lock:
            k = _kernels.get(key)
            if k is None:
                k = module(filename, name_expressions, tuple(extra_options)).get_function(name)
                _kernels[key] = k
    return k


# --- launch configuration ----------------------------------------------------------------------------
def _env_int(name):
    v = os.environ.get(name)
    if v is None or v.strip() == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {v!r}") from None


@contextlib.contextmanager
def launch_config(block=None, grid=None):
    """Force the block size (a multiple of 32, at most 1024) and/or the grid size of the kernels
    launched inside the ``with`` block.  Values never depend on them; tests use this to show it."""
    if block is not None and (int(block) % 32 or not 32 <= int(block) <= 1024):
        raise ValueError(f"block must be a multiple of 32 in [32, 1024], got {block}")
    if grid is not None and int(grid) < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    with _lock:
        old = dict(_launch)
        _launch.update(block=None if block is None else int(block), grid=None if grid is None else int(grid))
    try:
        yield
    finally:
        with _lock:
            _launch.update(old)


def block_size(default=DEFAULT_BLOCK, maximum=1024):
    """The block size a launcher should use: the one forced by :func:`launch_config` or
    ``RINIT_FAST_CUDA_BLOCK``, else ``default``; validated (a multiple of 32 in [32, maximum])."""
    block = _launch["block"] or _env_int("RINIT_FAST_CUDA_BLOCK") or default
    if block % 32 or not 32 <= block <= maximum:
        raise ValueError(f"CUDA block size must be a multiple of 32 in [32, {maximum}], got {block}")
    return int(block)


def grid_size(items, default=None):
    """The grid a launcher should use for ``items`` blocks' worth of work: the one forced by
    :func:`launch_config` or ``RINIT_FAST_CUDA_GRID``, else ``default`` (else ``items``), at most ``items``."""
    g = _launch["grid"] or _env_int("RINIT_FAST_CUDA_GRID") or default or items
    return max(1, min(int(g), int(items)))


def forced_grid():
    """The grid forced by :func:`launch_config` or ``RINIT_FAST_CUDA_GRID``, or None."""
    return _launch["grid"] or _env_int("RINIT_FAST_CUDA_GRID")


def env_int(name):
    """An integer tuning variable from the environment (None when unset), or a clear error."""
    return _env_int(name)


DEFAULT_SMEM = 48 * 1024


@functools.lru_cache(maxsize=None)
def _device_limits(device_id):
    attrs = cupy().cuda.Device(device_id).attributes
    return {"sms": int(attrs.get("MultiProcessorCount", 1)) or 1,
            "smem_per_block_optin": int(attrs.get("MaxSharedMemoryPerBlockOptin", 0)) or DEFAULT_SMEM,
            "max_threads_per_block": int(attrs.get("MaxThreadsPerBlock", 1024)) or 1024}


def device_limits():
    """Limits of the current device that launchers plan with: ``sms`` (multiprocessors),
    ``smem_per_block_optin`` (bytes of dynamic shared memory a block may opt into),
    ``max_threads_per_block``.  Memoised per device."""
    return dict(_device_limits(cupy().cuda.Device().id))


def _device_sms(device_id):
    return _device_limits(device_id)["sms"]


_occupancy = {}
_max_threads = {}


def _blocks_per_sm(kernel, block, smem):
    key = (id(kernel), block, smem, _cupy().cuda.Device().id)
    n = _occupancy.get(key)
    if n is None:
        n = _occupancy[key] = _blocks_per_sm_query(kernel, block, smem)
    return n


def _blocks_per_sm_query(kernel, block, smem):
    cp = _cupy()
    try:
        n = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(kernel.kernel.ptr, block, smem)
        if n >= 1:
            return int(n)
    except Exception:  # older CuPy without the binding: a conservative estimate
        pass
    regs = max(1, int(kernel.num_regs))
    return max(1, min(32, 2048 // block, 65536 // (regs * block)))


def _config(kernel, items, smem_per_warp=0):
    """(grid, block, shared_mem) for ``items`` work items of a grid-stride kernel."""
    block = block_size()
    limit = _max_threads.get(id(kernel))
    if limit is None:
        limit = _max_threads[id(kernel)] = int(kernel.max_threads_per_block)
    if block > limit:
        raise ValueError(f"block size {block} exceeds this kernel's limit of {limit} threads")
    smem = (block // 32) * smem_per_warp
    grid = forced_grid()
    if grid is None:
        cp = _cupy()
        resident = _device_sms(cp.cuda.Device().id) * _blocks_per_sm(kernel, block, smem)
        grid = max(1, min(-(-items // block), resident))
    return int(grid), int(block), int(smem)


def _launch_kernel(kernel, items, args, smem_per_warp=0):
    grid, block, smem = _config(kernel, items, smem_per_warp)
    kernel((grid,), (block,), args, shared_mem=smem)


# --- wrappers called by rinit_fast.rng / rinit_fast.sampling -------------------------------------------
SAMPLING = "sampling.cu"
_SAMPLING_TEMPLATES = tuple(
    [f"rf_normal_fill<{t}, {a}>" for t in ("float", "double") for a in ("true", "false")]
    + [f"rf_uniform_fill<{t}, {a}>" for t in ("float", "double") for a in ("true", "false")]
    + [f"rf_truncate<{t}>" for t in ("float", "double")])
_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _sampling_kernel(name):
    return get_function(SAMPLING, name, name_expressions=_SAMPLING_TEMPLATES)


def _check_out3(out3, dtype):
    cp = _cupy()
    if not isinstance(out3, cp.ndarray):
        raise TypeError(f"expected a CuPy array, got {type(out3).__name__}")
    if out3.dtype != dtype or out3.ndim != 3 or not out3.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous 3-D {np.dtype(dtype).name} CuPy array, got "
                         f"{out3.dtype} shape {out3.shape} (c_contiguous={out3.flags.c_contiguous})")
    if out3.data.ptr % out3.itemsize:
        raise ValueError("the output buffer is not aligned to its element size")


def _words(k0, k1, c2_start, c3_base):
    return (np.uint32(int(k0) & 0xFFFFFFFF), np.uint32(int(k1) & 0xFFFFFFFF),
            np.uint32(int(c2_start) & 0xFFFFFFFF), np.uint32(int(c3_base) & 0xFFFFFFFF))


def _fill(kind, out3, dtype, k0, k1, c2_start, c3_base, scalars):
    _check_out3(out3, dtype)
    if out3.size == 0:
        return out3
    A, S, N = out3.shape
    V = 4 if out3.dtype == np.float32 else 2
    aligned = N % V == 0 and out3.data.ptr % 16 == 0
    name = f"rf_{kind}_fill<{_CTYPE[out3.dtype]}, {'true' if aligned else 'false'}>"
    kernel = _sampling_kernel(name)
    items = A * S * (-(-N // V))
    t = out3.dtype.type
    args = (out3, np.uint64(A), np.uint32(S), np.uint64(N), *_words(k0, k1, c2_start, c3_base),
            *[t(s) for s in scalars])
    _launch_kernel(kernel, items, args, smem_per_warp=0 if aligned else 33 * 16)
    return out3


def normal_f32(out3, k0, k1, c2_start, c3_base, std):
    """out3[a, s, i] = std * value i of the float32 normal stream (c2_start + a, c3_base + s)."""
    return _fill("normal", out3, np.float32, k0, k1, c2_start, c3_base, (std,))


def normal_f64(out3, k0, k1, c2_start, c3_base, std):
    """float64 twin of :func:`normal_f32` (2 values per Philox block)."""
    return _fill("normal", out3, np.float64, k0, k1, c2_start, c3_base, (std,))


def uniform_f32_fill(out3, k0, k1, c2_start, c3_base, mul, add, scale):
    """out3[a, s, i] = (u * mul + add) * scale, u the float32 uniform value i (4 per block)."""
    return _fill("uniform", out3, np.float32, k0, k1, c2_start, c3_base, (mul, add, scale))


def uniform_f64_fill(out3, k0, k1, c2_start, c3_base, mul, add, scale):
    """float64 twin of :func:`uniform_f32_fill` (2 values per block)."""
    return _fill("uniform", out3, np.float64, k0, k1, c2_start, c3_base, (mul, add, scale))


def truncated_f32(out3, k0, k1, c2_start, c3_base, bound, std):
    """out3[a, s, i] = std * value i of the truncated float32 normal stream: the normal fill, then the
    redraw kernel (the CPU does both per chunk: kernels/cpu/sampling.py)."""
    normal_f32(out3, k0, k1, c2_start, c3_base, 1.0)
    return truncate_f32(out3, k0, k1, c2_start, c3_base, bound, std)


def truncated_f64(out3, k0, k1, c2_start, c3_base, bound, std):
    """float64 twin of :func:`truncated_f32`."""
    normal_f64(out3, k0, k1, c2_start, c3_base, 1.0)
    return truncate_f64(out3, k0, k1, c2_start, c3_base, bound, std)


def _truncate(out3, dtype, k0, k1, c2_start, c3_base, bound, std):
    _check_out3(out3, dtype)
    if out3.size == 0:
        return out3
    A, S, N = out3.shape
    kernel = _sampling_kernel(f"rf_truncate<{_CTYPE[out3.dtype]}>")
    t = out3.dtype.type
    args = (out3, np.uint64(A), np.uint32(S), np.uint64(N), *_words(k0, k1, c2_start, c3_base),
            t(bound), t(std))
    _launch_kernel(kernel, A * S * N, args)
    return out3


def truncate_f32(out3, k0, k1, c2_start, c3_base, bound, std):
    """Given out3 = N(0, 1) draws (normal_f32 with std 1): redraw |z| > bound (attempt a reads value
    (a << 50) | i of the same stream), then multiply by std."""
    return _truncate(out3, np.float32, k0, k1, c2_start, c3_base, bound, std)


def truncate_f64(out3, k0, k1, c2_start, c3_base, bound, std):
    """float64 twin of :func:`truncate_f32` (attempt a reads value (a << 49) | i)."""
    return _truncate(out3, np.float64, k0, k1, c2_start, c3_base, bound, std)


def philox4x32_blocks(ctr, key, out):
    """out[i] = Philox4x32-10(ctr[i], key[i]) on the GPU: C-contiguous uint32 CuPy arrays (n, 4),
    (n, 2), (n, 4)."""
    cp = _cupy()
    for nm, a, w in (("ctr", ctr, 4), ("key", key, 2), ("out", out, 4)):
        if not isinstance(a, cp.ndarray) or a.dtype != np.uint32 or a.ndim != 2 or a.shape[1] != w \
                or not a.flags.c_contiguous:
            raise ValueError(f"philox4x32_blocks: {nm} must be a C-contiguous uint32 CuPy array (n, {w})")
    n = ctr.shape[0]
    if key.shape[0] != n or out.shape[0] != n:
        raise ValueError("philox4x32_blocks: ctr, key and out must have the same number of rows")
    if n:
        _launch_kernel(get_function(SAMPLING, "rf_philox4x32_blocks", name_expressions=_SAMPLING_TEMPLATES),
                       n, (ctr, key, out, np.uint64(n)))
    return out


def qr_haar(g64):
    """Q · sign(diag R) of the batched float64 QR of g64 (B, M, N), M >= N (Mezzadri 2007), through
    CuPy's batched ``linalg.qr`` (cuSOLVER).  Returns a C-contiguous (B, M, N) float64 array."""
    cp = _cupy()
    q, r = cp.linalg.qr(g64, mode="reduced")
    d = cp.diagonal(r, axis1=-2, axis2=-1)
    q = q * cp.where(d < 0, -1.0, 1.0)[..., None, :]    # as the CPU: only negative diagonals flip
    return cp.ascontiguousarray(q)
