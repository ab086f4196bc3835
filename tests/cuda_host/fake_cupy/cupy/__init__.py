"""A fake CuPy for running the CUDA path of rinit_fast on a machine without a GPU (tests only).

Arrays are NumPy arrays of a subclass named ``cupy.ndarray`` (so ``rinit_fast._backend.is_cupy`` sees
them as device arrays); ``RawModule``/``RawKernel`` run the real kernels of kernels/cuda/sampling.cu
through the CPU emulation library built from tests/cuda_host/emulate_lib.cpp (path in the environment
variable ``RINIT_FAST_EMU_LIB``).  Kernel arguments are checked against the kernels' C parameter types
exactly, as a GPU would need them (CuPy passes a Python int as a 64-bit integer and a Python float as a
double).  ``linalg.qr`` is NumPy's.  Only what rinit_fast's CUDA path uses is here.
"""
import ctypes
import os
import types

import numpy as _np

__version__ = "0.0-fake"
_FAKE = True


class ndarray(_np.ndarray):
    """A NumPy array that claims to live on GPU 0."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def get(self):
        return _np.array(self).view(_np.ndarray)

    def __array_finalize__(self, obj):
        pass


def _wrap(x):
    if isinstance(x, _np.ndarray) and not isinstance(x, ndarray):
        return x.view(ndarray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    return x


def _wrapped(fn):
    def f(*a, **k):
        return _wrap(fn(*a, **k))
    f.__name__ = getattr(fn, "__name__", "f")
    return f


def asarray(x, dtype=None):
    if isinstance(x, ndarray) and (dtype is None or x.dtype == dtype):
        return x
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError("the fake CuPy cannot wrap foreign GPU memory")
    return _np.array(x, dtype=dtype).view(ndarray)


def from_dlpack(x):
    dev = x.__dlpack_device__()
    if dev[0] != 2:  # kDLCUDA
        raise RuntimeError(f"from_dlpack: not a CUDA buffer (device {dev})")
    raise TypeError("the fake CuPy cannot wrap foreign GPU memory")


def __getattr__(name):
    obj = getattr(_np, name)
    if callable(obj) and not isinstance(obj, type):
        return _wrapped(obj)
    return obj


linalg = types.SimpleNamespace(qr=_wrapped(_np.linalg.qr))


# --- cuda ---------------------------------------------------------------------------------------
class _Device:
    def __init__(self, i=0):
        self.id = int(i)
        self.attributes = {"MultiProcessorCount": 2}

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _occupancy(func, block, smem):
    return max(1, min(4, 2048 // block))


class _Event:
    """Host-clock stand-in for a CUDA event (the fake runs everything synchronously)."""

    def record(self, stream=None):
        import time
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def _elapsed_ms(a, b):
    return (b.t - a.t) * 1e3


def _memcpy_async(dst, src, size, kind, stream=0):
    ctypes.memmove(dst, src, size)


_stream = types.SimpleNamespace(synchronize=lambda: None, ptr=0)

cuda = types.SimpleNamespace(
    Device=_Device,
    Event=_Event,
    get_elapsed_time=_elapsed_ms,
    get_current_stream=lambda: _stream,
    runtime=types.SimpleNamespace(
        getDeviceCount=lambda: 1, memGetInfo=lambda: (8 << 30, 16 << 30), memcpyAsync=_memcpy_async,
        getDeviceProperties=lambda i: {"name": b"fake GPU (CPU emulation)", "multiProcessorCount": 2,
                                       "memoryBusWidth": 0, "totalGlobalMem": 16 << 30},
        runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0),
    driver=types.SimpleNamespace(occupancyMaxActiveBlocksPerMultiprocessor=_occupancy),
)


class _Generator:
    def __init__(self, seed):
        self._g = _np.random.default_rng(seed)

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        return _wrap(self._g.standard_normal(size, dtype=dtype, out=out))

    def random(self, size=None, dtype=_np.float64, out=None):
        return _wrap(self._g.random(size, dtype=dtype, out=out))


random = types.SimpleNamespace(default_rng=_Generator)


def get_default_memory_pool():
    return types.SimpleNamespace(free_all_blocks=lambda: None)


_LIB = None


def _lib():
    global _LIB
    if _LIB is None:
        _LIB = ctypes.CDLL(os.environ["RINIT_FAST_EMU_LIB"])
        _LIB.rf_emu_name.restype = ctypes.c_char_p
        _LIB.rf_emu_sig.restype = ctypes.c_char_p
        _LIB.rf_emu_launch.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                                       ctypes.POINTER(ctypes.c_void_p)]
        _LIB.table = {_LIB.rf_emu_name(i).decode(): (i, _LIB.rf_emu_sig(i).decode())
                      for i in range(_LIB.rf_emu_count())}
    return _LIB


_SCALAR = {"f": _np.float32, "d": _np.float64, "I": _np.uint32, "Q": _np.uint64}
launches = []   # (name, grid, block, shared_mem) of every launch, for tests


def _parse_sig(sig):
    out, i = [], 0
    while i < len(sig):
        if sig[i] == "P":
            out.append(("P", sig[i + 1]))
            i += 2
        else:
            out.append((sig[i], None))
            i += 1
    return out


class _WriteOnly:
    """bench/compare_sampling_cuda.py's write-only kernel, in NumPy."""

    def __call__(self, grid, block, args, shared_mem=0):
        out, n4 = args
        v = _np.arange(int(n4), dtype=_np.uint32).astype(_np.float32)
        out[: 4 * int(n4)].reshape(-1, 4)[:] = v[:, None] + _np.arange(4, dtype=_np.float32)


class RawKernel:
    def __new__(cls, code_or_name, name=None, *a, **k):
        if name == "write_only_f4":
            return _WriteOnly()
        return super().__new__(cls)

    def __init__(self, code_or_name, name=None, *a, **k):
        name = code_or_name if name is None else name
        lib = _lib()
        if name not in lib.table:
            raise KeyError(f"fake CuPy: no kernel {name!r} (have {sorted(lib.table)})")
        self.name = name
        self._index, self._sig = lib.table[name]
        self.kernel = types.SimpleNamespace(ptr=self._index + 1)
        self.num_regs = 40
        self.max_threads_per_block = 1024

    def __call__(self, grid, block, args, shared_mem=0):
        params = _parse_sig(self._sig)
        if len(args) != len(params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(params)} parameters")
        keep, ptrs = [], []
        for k, (a, (code, elem)) in enumerate(zip(args, params)):
            if code == "P":
                if not isinstance(a, ndarray) or a.dtype != _SCALAR[elem]:
                    raise TypeError(f"{self.name} argument {k}: expected a {_np.dtype(_SCALAR[elem])} "
                                    f"device array, got {type(a).__name__} {getattr(a, 'dtype', '')}")
                c = ctypes.c_void_p(a.__array_interface__["data"][0])
            else:
                if type(a) is not _SCALAR[code]:
                    raise TypeError(f"{self.name} argument {k}: expected numpy.{_SCALAR[code].__name__}, "
                                    f"got {type(a).__name__} {a!r} (CuPy would pass the wrong bytes)")
                c = (ctypes.c_uint8 * a.itemsize).from_buffer_copy(a.tobytes())
            keep.append(c)
            ptrs.append(ctypes.cast(ctypes.pointer(c), ctypes.c_void_p))
        (g,), (b,) = tuple(grid), tuple(block)
        launches.append((self.name, int(g), int(b), int(shared_mem)))
        arr = (ctypes.c_void_p * len(ptrs))(*[p.value for p in ptrs])
        if _lib().rf_emu_launch(self._index, int(g), int(b), int(shared_mem), arr):
            raise RuntimeError(f"{self.name}: wrote past its {shared_mem} bytes of shared memory")


class RawModule:
    def __init__(self, code=None, options=(), name_expressions=None, **kw):
        assert isinstance(options, tuple), "CuPy wants the options as a tuple"
        assert "--fmad=false" in options, options
        assert '#line 1 "' in code
        self.code, self.options, self.name_expressions = code, options, name_expressions

    def get_function(self, name):
        if "<" in name and name not in (self.name_expressions or ()):
            raise KeyError(f"{name} is not among the module's name expressions")
        return RawKernel(name)
