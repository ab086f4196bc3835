"""rf.sample / rf.rng on the GPU (backend="cuda"): the same bits as the CPU for every scheme, dtype, seed,
start, odd shape and batch split; launch-configuration invariance; Philox known answers on CuPy arrays;
out= into CuPy arrays and torch CUDA tensors; errors.  Every test needs CuPy and a GPU (the ``cuda``
fixture skips otherwise).  The CPU-only checks of the CUDA code are in test_cuda_header_host.py,
test_cuda_emulated.py and test_cuda_compile.py."""
import math

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.kernels.cuda import loader
from rinit_fast.rng import Purpose

pytestmark = pytest.mark.gpu

ALL = rf.schemes()
PARAMS = {"constant": {"value": 0.25}, "rescaled_glorot": {"s": 1.05}}
SQUARE = {"rescaled_glorot"}
REAL_DRAWN = [n for n in ALL if n not in ("orthogonal", "constant", "zeros")]


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8)


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _shape(name, shape):
    return (shape[0], shape[0]) if name in SQUARE else shape


def _both(name, shape, **kw):
    p = PARAMS.get(name, {})
    cpu = rf.sample(name, shape, backend="cpu", **p, **kw)
    gpu = rf.sample(name, shape, backend="cuda", **p, **kw)
    return cpu, gpu


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [n for n in ALL if n != "orthogonal"])
def test_cpu_gpu_bit_equality(cuda, name, dtype):
    """Every scheme (complex_glorot as complex64/complex128), odd and rectangular shapes, fresh seeds."""
    rng = np.random.default_rng()
    for shape in [(1, 1), (7, 7), (33, 33), (3, 5), (33, 7), (2, 513), (7, 1025)]:
        shape = _shape(name, shape)
        seed = int(rng.integers(0, 2 ** 64, dtype=np.uint64))
        start = int(rng.integers(0, 2 ** 31))
        cpu, gpu = _both(name, shape, batch=3, seed=seed, start=start, dtype=dtype)
        assert isinstance(gpu, cuda.ndarray) and gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
        np.testing.assert_array_equal(_bits(_host(gpu)), _bits(cpu),
                                      err_msg=f"{name} {shape} seed={seed} start={start}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 33, 500, 1025])
def test_square_sizes(cuda, n, dtype):
    """n = 1, 7, 33, 500, 1025 (n² odd, even, a multiple of 4 or not) for the three kernel families."""
    for name in ("glorot_normal", "he_uniform", "variance_scaling"):
        cpu, gpu = _both(name, n, batch=2, seed=n, start=5, dtype=dtype)
        np.testing.assert_array_equal(_bits(_host(gpu)), _bits(cpu), err_msg=f"{name} n={n}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["normal", "uniform", "variance_scaling", "complex_glorot"])
def test_batch_split_invariance(cuda, name, dtype):
    seed = int(np.random.default_rng().integers(0, 2 ** 63))
    shape = (9, 7)
    full = _host(rf.sample(name, shape, batch=6, seed=seed, dtype=dtype, backend="cuda"))
    for j0, j1 in [(0, 1), (1, 4), (4, 6), (5, 6)]:
        part = _host(rf.sample(name, shape, batch=j1 - j0, seed=seed, start=j0, dtype=dtype, backend="cuda"))
        np.testing.assert_array_equal(_bits(full[j0:j1]), _bits(part))
    single = _host(rf.sample(name, shape, seed=seed, start=2, dtype=dtype, backend="cuda"))
    np.testing.assert_array_equal(_bits(full[2]), _bits(single))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_stream_functions_with_subs(cuda, kind, dtype):
    """rf.rng.normals/uniforms with several indices and sub-indices (the kernels' S > 1 path)."""
    fn = rf.rng.normals if kind == "normal" else rf.rng.uniforms
    for count in (1, 3, 8, 37, 1024, 4097):
        kw = dict(index=2 ** 32 - 4, count=count, n_index=3, sub=2 ** 24 - 6, n_sub=5, dtype=dtype)
        cpu = fn(12345, Purpose.USER, **kw)
        gpu = fn(12345, Purpose.USER, backend="cuda", **kw)
        np.testing.assert_array_equal(_bits(_host(gpu)), _bits(cpu), err_msg=f"count={count}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_launch_configuration_changes_no_bit(cuda, dtype):
    """Grid and block sizes (forced through loader.launch_config) never change a value, on the aligned
    path (n² a multiple of 4) and the warp-staged one, and for the truncation kernel."""
    results = {}
    configs = [dict(), dict(block=32, grid=1), dict(block=1024, grid=3), dict(block=96, grid=7),
               dict(block=256, grid=10_000)]
    for i, cfg in enumerate(configs):
        with loader.launch_config(**cfg):
            results[i] = [_host(rf.sample(name, shape, batch=3, seed=7, dtype=dtype, backend="cuda"))
                          for name, shape in [("glorot_normal", (64, 64)), ("glorot_normal", (33, 31)),
                                              ("he_uniform", (5, 3)), ("variance_scaling", (33, 33))]]
    for i in range(1, len(configs)):
        for a, b in zip(results[0], results[i]):
            np.testing.assert_array_equal(_bits(a), _bits(b), err_msg=str(configs[i]))
    cpu = rf.sample("glorot_normal", (33, 31), batch=3, seed=7, dtype=dtype)
    np.testing.assert_array_equal(_bits(results[0][1]), _bits(cpu))


def test_environment_overrides_launch(cuda, monkeypatch):
    monkeypatch.setenv("RINIT_FAST_CUDA_BLOCK", "64")
    monkeypatch.setenv("RINIT_FAST_CUDA_GRID", "2")
    a = _host(rf.sample("glorot_normal", 45, batch=2, seed=3, backend="cuda"))
    np.testing.assert_array_equal(_bits(a), _bits(rf.sample("glorot_normal", 45, batch=2, seed=3)))
    monkeypatch.setenv("RINIT_FAST_CUDA_BLOCK", "48")
    with pytest.raises(ValueError, match="multiple of 32"):
        rf.sample("glorot_normal", 45, backend="cuda")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_misaligned_buffer(cuda, dtype):
    """A buffer that starts inside a 16-byte group (a view at an odd element offset) is filled right."""
    n = 6
    flat = cuda.full(3 * n * n + 1, cuda.nan, dtype=dtype)
    for off in (1, 0):
        view = flat[off:off + 3 * n * n].reshape(3, n, n)
        assert view.flags.c_contiguous
        rf.sample("glorot_normal", n, batch=3, seed=1, dtype=dtype, backend="cuda", out=view)
        np.testing.assert_array_equal(_bits(_host(view)), _bits(rf.sample("glorot_normal", n, batch=3, seed=1,
                                                                            dtype=dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loader_fills_views_at_every_offset(cuda, dtype):
    """The wrappers on (A, S, N) views that start 0..3 elements past an allocation (16-byte aligned or
    not), for every kernel, against the CPU kernels; the elements around the view stay untouched."""
    from rinit_fast.kernels.cpu import sampling as cpu
    A, S, N = 3, 2, 37
    k0, k1, c2, c3 = np.uint64(5), np.uint64(6), np.uint64(2 ** 32 - A), np.uint64((1 << 24) | 9)
    t = np.dtype(dtype).type
    calls = [("normal_f", (t(0.5),)), ("uniform_f", (t(2.0), t(-1.0), t(3.0)))]
    for off in range(4):
        for name, sc in calls:
            bits = "32" if dtype == np.float32 else "64"
            gname = name + bits + ("_fill" if name.startswith("uniform") else "")
            want = np.empty((A, S, N), dtype)
            getattr(cpu, gname)(want, k0, k1, c2, c3, *sc)
            flat = cuda.full(A * S * N + 8, cuda.nan, dtype=dtype)
            view = flat[off:off + A * S * N].reshape(A, S, N)
            getattr(loader, gname)(view, k0, k1, c2, c3, *sc)
            np.testing.assert_array_equal(_bits(_host(view)), _bits(want), err_msg=f"{gname} off={off}")
            rest = np.concatenate([_host(flat[:off]), _host(flat[off + A * S * N:])])
            assert np.isnan(rest).all()
        want = np.empty((A, S, N), dtype)
        (cpu.normal_f32 if dtype == np.float32 else cpu.normal_f64)(want, k0, k1, c2, c3, t(1.0))
        (cpu.truncate_f32 if dtype == np.float32 else cpu.truncate_f64)(want, k0, k1, c2, c3, t(0.5), t(2.0))
        flat = cuda.full(A * S * N + 8, cuda.nan, dtype=dtype)
        view = flat[off:off + A * S * N].reshape(A, S, N)
        (loader.normal_f32 if dtype == np.float32 else loader.normal_f64)(view, k0, k1, c2, c3, t(1.0))
        (loader.truncate_f32 if dtype == np.float32 else loader.truncate_f64)(view, k0, k1, c2, c3, t(0.5),
                                                                              t(2.0))
        np.testing.assert_array_equal(_bits(_host(view)), _bits(want), err_msg=f"truncate off={off}")


def test_philox_known_answers_on_cupy(cuda):
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    ctr = cuda.asarray(np.array([k[0] for k in kat], np.uint32))
    key = cuda.asarray(np.array([k[1] for k in kat], np.uint32))
    out = rf.rng.philox4x32(ctr, key)
    assert isinstance(out, cuda.ndarray) and out.dtype == np.uint32
    np.testing.assert_array_equal(_host(out), np.array([k[2] for k in kat], np.uint32))
    rng = np.random.default_rng()
    c = rng.integers(0, 2 ** 32, (4, 1000, 4), dtype=np.uint64).astype(np.uint32)
    k = rng.integers(0, 2 ** 32, (1000, 2), dtype=np.uint64).astype(np.uint32)
    np.testing.assert_array_equal(_host(rf.rng.philox4x32(cuda.asarray(c), cuda.asarray(k))),
                                  rf.rng.philox4x32(c, k))


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (33, 33), (9, 4), (4, 9), (100, 100)])
def test_orthogonal(cuda, shape, dtype, tol):
    """Q from cuSOLVER's QR equals the CPU's LAPACK Q up to rounding, is orthogonal, and is the
    sign-corrected QR of exactly the stream's Gaussian matrices (common random numbers)."""
    cpu, gpu = _both("orthogonal", shape, batch=4, seed=11, dtype=dtype)
    q = _host(gpu).astype(np.float64)
    np.testing.assert_allclose(q, cpu.astype(np.float64), atol=tol, rtol=0)
    fo, fi = shape
    gram = q.transpose(0, 2, 1) @ q if fo >= fi else q @ q.transpose(0, 2, 1)
    assert np.abs(gram - np.eye(min(fo, fi))).max() < (1e-5 if dtype == "float32" else 1e-12)
    g = rf.sample("normal", shape, batch=4, seed=11, dtype=dtype).astype(np.float64)
    if fo < fi:
        g, q = g.transpose(0, 2, 1), q.transpose(0, 2, 1)
    r = q.transpose(0, 2, 1) @ g
    scale = np.abs(g).max()
    assert np.abs(np.tril(r, -1)).max() < 1e-4 * scale
    assert np.all(np.diagonal(r, axis1=1, axis2=2) > 0)


def test_out_cupy_in_place(cuda):
    buf = cuda.empty((3, 10, 6), cuda.float32)
    ptr = buf.data.ptr
    got = rf.sample("he_uniform", (10, 6), batch=3, seed=4, out=buf, backend="cuda")
    assert got is buf and buf.data.ptr == ptr
    np.testing.assert_array_equal(_host(buf), rf.sample("he_uniform", (10, 6), batch=3, seed=4))
    c = cuda.empty((5, 5), cuda.complex128)
    rf.sample("complex_glorot", 5, out=c, dtype="float64", backend="cuda")
    np.testing.assert_array_equal(_host(c), rf.sample("complex_glorot", 5, dtype="float64"))


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    return torch


class _DLPackOnly:
    """A foreign GPU buffer that offers only DLPack (no __cuda_array_interface__)."""

    def __init__(self, t):
        self._t = t

    def __dlpack__(self, **kw):
        return self._t.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._t.__dlpack_device__()


def test_out_torch_cuda_tensor(cuda):
    torch = _torch_cuda()
    t = torch.empty((3, 10, 6), dtype=torch.float64, device="cuda")
    ptr = t.data_ptr()
    res = rf.sample("glorot_normal", (10, 6), batch=3, seed=4, dtype="float64", out=t, backend="cuda")
    assert res is t and t.data_ptr() == ptr
    torch.cuda.synchronize()
    np.testing.assert_array_equal(t.cpu().numpy(), rf.sample("glorot_normal", (10, 6), batch=3, seed=4,
                                                             dtype="float64"))
    t32 = torch.empty((7, 7), dtype=torch.float32, device="cuda")
    rf.sample("variance_scaling", 7, seed=9, out=_DLPackOnly(t32), backend="cuda")
    torch.cuda.synchronize()
    np.testing.assert_array_equal(t32.cpu().numpy(), rf.sample("variance_scaling", 7, seed=9))
    tc = torch.empty((5, 5), dtype=torch.complex64, device="cuda")
    rf.sample("complex_glorot", 5, out=tc, backend="cuda")
    torch.cuda.synchronize()
    np.testing.assert_array_equal(tc.cpu().numpy(), rf.sample("complex_glorot", 5))


def test_out_errors(cuda):
    with pytest.raises(ValueError, match="host \\(NumPy\\) array"):
        rf.sample("glorot_normal", 4, out=np.empty((4, 4), np.float32), backend="cuda")
    with pytest.raises(ValueError, match="GPU buffer"):
        rf.sample("glorot_normal", 4, out=cuda.empty((4, 4), cuda.float32), backend="cpu")
    with pytest.raises(ValueError, match="out has shape"):
        rf.sample("glorot_normal", 4, batch=2, out=cuda.empty((2, 4, 5), cuda.float32), backend="cuda")
    with pytest.raises(TypeError, match="out has dtype"):
        rf.sample("glorot_normal", 4, out=cuda.empty((4, 4), cuda.float64), backend="cuda")
    with pytest.raises(ValueError, match="C-contiguous"):
        rf.sample("glorot_normal", 4, out=cuda.empty((4, 8), cuda.float32)[:, ::2], backend="cuda")
    with pytest.raises(ValueError, match="GPU buffer"):
        rf.sample("glorot_normal", 4, out=[[0.0] * 4] * 4, backend="cuda")
    try:
        import torch
    except ImportError:
        return
    with pytest.raises(ValueError):  # a host tensor for the GPU backend
        rf.sample("glorot_normal", 4, out=torch.empty((4, 4)), backend="cuda")


def test_out_on_another_gpu_is_an_error(cuda):
    if cuda.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    with cuda.cuda.Device(1):
        other = cuda.empty((4, 4), cuda.float32)
    with pytest.raises(ValueError, match="current device"):
        rf.sample("glorot_normal", 4, out=other, backend="cuda")


def test_truncated_normal_bounds_and_moments(cuda):
    w = _host(rf.sample("variance_scaling", (300, 200), batch=4, seed=2026, backend="cuda"))
    std = rf.scheme_std("variance_scaling", (300, 200))
    bound = 2.0 * std / 0.87962566103423978
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert abs(w.std() - std) < 5 * std / math.sqrt(w.size) * 2
    np.testing.assert_array_equal(_bits(w), _bits(rf.sample("variance_scaling", (300, 200), batch=4, seed=2026)))


def test_large_row_crosses_every_block_boundary(cuda):
    """One stream longer than a whole grid step (rows that wrap in the grid-stride loop)."""
    for dtype in ("float32", "float64"):
        cpu = rf.rng.normals(77, Purpose.WEIGHTS, count=3_000_001, dtype=dtype)
        gpu = rf.rng.normals(77, Purpose.WEIGHTS, count=3_000_001, dtype=dtype, backend="cuda")
        np.testing.assert_array_equal(_bits(_host(gpu)), _bits(cpu))
