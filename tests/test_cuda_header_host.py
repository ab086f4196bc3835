"""kernels/cuda/philox.cuh built for the host and compared with kernels/cpu/philox.py bit for bit.

No GPU needed: the header's functions are __host__ __device__, so a host build (tests/cuda_host/
stream_host.cpp, compiled by a plain C++ compiler and, when nvcc is on PATH, by nvcc as CUDA source)
runs the same expressions, constants and operation order as the CUDA kernels.  Only the one-operation
IEEE helpers (rf_fmul, ...) differ between the host and device branches, and each is a single correctly
rounded operation on both (docs/cuda.md).  What this proves: the GPU arithmetic of the stream matches
the CPU's, exhaustively for the float32 log (every u the stream can produce), sqrt and sin/cos (every
angle), on random and edge inputs for float64, and on whole streams end to end.  Skips without a compiler.
"""
import os
import shutil
import subprocess
from pathlib import Path

import numba
import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.kernels.cpu import philox as P

HERE = Path(__file__).resolve().parent
SRC = HERE / "cuda_host" / "stream_host.cpp"


def _cuda_dir():
    import importlib.resources as ir
    return Path(str(ir.files("rinit_fast.kernels.cuda")))


def _compilers():
    out = []
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx:
        out.append("cxx")
    if shutil.which("nvcc"):
        out.append("nvcc")
    return out


@pytest.fixture(scope="module", params=_compilers() or [pytest.param("none", marks=pytest.mark.skip(
    reason="no C++ compiler or nvcc on PATH"))])
def host(request, tmp_path_factory):
    """Path of the host program built by one compiler."""
    d = tmp_path_factory.mktemp(f"host_{request.param}")
    exe = d / "stream_host"
    inc = str(_cuda_dir())
    if request.param == "cxx":
        cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
        cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-I", inc, str(SRC), "-o", str(exe)]
    else:
        cmd = ["nvcc", "-x", "cu", "-std=c++17", "--fmad=false", "-O2", "-Xcompiler", "-ffp-contract=off",
               "-I", inc, str(SRC), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return exe


def _run(exe, *args):
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _same_bits(got, want, what):
    got = np.ascontiguousarray(got)
    want = np.ascontiguousarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    u = np.uint32 if got.dtype.itemsize == 4 else np.uint64
    bad = np.flatnonzero(got.view(u) != want.view(u))
    assert bad.size == 0, (f"{what}: {bad.size} of {got.size} differ; first at {bad[:5]}: "
                           f"got {got[bad[:5]]} want {want[bad[:5]]}")


# --- the CPU side: Numba wrappers of kernels/cpu/philox.py ----------------------------------------
@numba.njit(cache=False)
def _cpu_log32_all(out):
    n = 1 << 24
    for k in range(1, n + 1):
        u = np.float32(np.int32(k)) * P.F32_2M24
        lg = P.log_f32(u)
        out[k - 1] = lg
        out[n + k - 1] = np.sqrt(np.float32(-2.0) * lg)


@numba.njit(cache=False)
def _cpu_sincos32_all(out):
    n = 1 << 24
    for k in range(n):
        s, c = P.sincos_2pi_f32(np.uint64(k))
        out[k] = s
        out[n + k] = c


@numba.njit(cache=False)
def _cpu_log64(u, out):
    for i in range(u.shape[0]):
        lg = P.log_f64(u[i])
        out[2 * i] = lg
        out[2 * i + 1] = np.sqrt(-2.0 * lg)


@numba.njit(cache=False)
def _cpu_sincos64(k, out):
    for i in range(k.shape[0]):
        s, c = P.sincos_2pi_f64(k[i])
        out[2 * i] = s
        out[2 * i + 1] = c


@numba.njit(cache=False)
def _cpu_bm32(w, out):
    for i in range(0, w.shape[0] - 1, 2):
        a, b = P.box_muller_f32(np.uint64(w[i]), np.uint64(w[i + 1]))
        out[i] = a
        out[i + 1] = b


@numba.njit(cache=False)
def _cpu_bm64(w, out):
    for i in range(0, w.shape[0] - 3, 4):
        a, b = P.box_muller_f64(np.uint64(w[i]), np.uint64(w[i + 1]), np.uint64(w[i + 2]),
                                np.uint64(w[i + 3]))
        out[i // 2] = a
        out[i // 2 + 1] = b


@numba.njit(cache=False)
def _cpu_at(rows, out):
    for r in range(rows.shape[0]):
        i, c2, c3, k0, k1 = rows[r, 0], rows[r, 1], rows[r, 2], rows[r, 3], rows[r, 4]
        out[r, 0] = np.float64(P.normal_at_f32(i, c2, c3, k0, k1))
        out[r, 1] = P.normal_at_f64(i, c2, c3, k0, k1)


# --- tests -------------------------------------------------------------------------------------------
def test_philox_blocks(host, tmp_path):
    rng = np.random.default_rng()
    rows = rng.integers(0, 2 ** 32, (20_000, 6), dtype=np.uint64).astype(np.uint32)
    rows[:3] = [[0, 0, 0, 0, 0, 0], [0xFFFFFFFF] * 6,
                [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0]]
    rows.tofile(tmp_path / "in")
    _run(host, "philox", tmp_path / "in", tmp_path / "out")
    got = np.fromfile(tmp_path / "out", np.uint32).reshape(-1, 4)
    want = rf.rng.philox4x32(rows[:, :4].copy(), rows[:, 4:].copy())
    np.testing.assert_array_equal(got, want)
    assert got[0].tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]  # Random123 KAT


def test_log_f32_and_radius_exhaustive(host, tmp_path):
    """Every u = k 2^-24, k = 1 .. 2^24, that Box-Muller can feed to log_f32, and r = sqrt(-2 log u)."""
    _run(host, "log32", tmp_path / "out")
    got = np.fromfile(tmp_path / "out", np.float32)
    want = np.empty(2 << 24, np.float32)
    _cpu_log32_all(want)
    _same_bits(got[: 1 << 24], want[: 1 << 24], "log_f32")
    _same_bits(got[1 << 24:], want[1 << 24:], "sqrt(-2 log_f32)")


def test_sincos_2pi_f32_exhaustive(host, tmp_path):
    """Every 24-bit angle, so every octant boundary and reflection."""
    _run(host, "sincos32", tmp_path / "out")
    got = np.fromfile(tmp_path / "out", np.float32)
    want = np.empty(2 << 24, np.float32)
    _cpu_sincos32_all(want)
    _same_bits(got[: 1 << 24], want[: 1 << 24], "sin 2 pi k/2^24")
    _same_bits(got[1 << 24:], want[1 << 24:], "cos 2 pi k/2^24")


def _k53_edges():
    o = np.arange(9, dtype=np.uint64) << np.uint64(50)
    d = np.arange(-40, 41, dtype=np.int64)
    e = (o[:, None].astype(np.int64) + d[None, :]).ravel()
    e = e[(e >= 0) & (e < 2 ** 53)].astype(np.uint64)
    return np.concatenate([e, np.arange(0, 1000, dtype=np.uint64),
                           (np.uint64(2 ** 53) - np.arange(1, 1000, dtype=np.uint64))])


def test_log_f64_edges_and_random(host, tmp_path):
    rng = np.random.default_rng()
    k = np.concatenate([rng.integers(1, 2 ** 53 + 1, 2_000_000, dtype=np.int64),
                        np.arange(1, 5000), 2 ** 53 - np.arange(0, 5000),
                        2 ** np.arange(0, 54, dtype=np.int64)])
    # around m = sqrt(2) (the halving switch) at every exponent the stream reaches
    s2 = np.float64(1.4142135623730951)
    near = np.concatenate([np.nextafter(s2, 0) * 2.0 ** -np.arange(0, 53), s2 * 2.0 ** -np.arange(0, 53),
                           np.nextafter(s2, 2) * 2.0 ** -np.arange(0, 53)])
    u = np.concatenate([k.astype(np.float64) * 2.0 ** -53, near[near <= 1.0]])
    u.tofile(tmp_path / "in")
    _run(host, "log64", tmp_path / "in", tmp_path / "out")
    got = np.fromfile(tmp_path / "out", np.float64)
    want = np.empty(2 * u.size, np.float64)
    _cpu_log64(u, want)
    _same_bits(got, want, "log_f64 / sqrt(-2 log)")


def test_sincos_2pi_f64_edges_and_random(host, tmp_path):
    rng = np.random.default_rng()
    k = np.concatenate([rng.integers(0, 2 ** 53, 2_000_000, dtype=np.int64).astype(np.uint64), _k53_edges()])
    k.tofile(tmp_path / "in")
    _run(host, "sincos64", tmp_path / "in", tmp_path / "out")
    got = np.fromfile(tmp_path / "out", np.float64)
    want = np.empty(2 * k.size, np.float64)
    _cpu_sincos64(k, want)
    _same_bits(got, want, "sincos_2pi_f64")


def test_box_muller_words(host, tmp_path):
    """Random words plus the extremes of u (0xFFFFFF.. -> u = 1, r = 0; 0 -> u = 2^-24) and angles."""
    rng = np.random.default_rng()
    w = rng.integers(0, 2 ** 32, 4_000_000, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0, 0xFF, 0x100, 0xFFFFFFFF, 0xFFFFFF00, 0x80000000, 0x7FFFFFFF, 0x20000000,
                      0x1FFFFFFF, 0x60000000, 0xA0000000, 0xE0000000, 0xC0000000, 0x40000000], np.uint32)
    pairs = np.stack(np.meshgrid(edges, edges), -1).reshape(-1)
    w = np.concatenate([pairs, pairs, w])  # a multiple of 4 words
    w.tofile(tmp_path / "in")
    _run(host, "bm32", tmp_path / "in", tmp_path / "out32")
    got = np.fromfile(tmp_path / "out32", np.float32)
    want = np.empty(w.size, np.float32)
    _cpu_bm32(w, want)
    _same_bits(got, want, "box_muller_f32")
    _run(host, "bm64", tmp_path / "in", tmp_path / "out64")
    got = np.fromfile(tmp_path / "out64", np.float64)
    want = np.empty(w.size // 2, np.float64)
    _cpu_bm64(w, want)
    _same_bits(got, want, "box_muller_f64")


@pytest.mark.parametrize("seed,c2,c3,count", [
    (0, 0, 0, 1), (42, 3, 0, 6), (2 ** 64 - 1, 2 ** 32 - 1, (255 << 24) | (2 ** 24 - 1), 1025),
    (0xDEADBEEFCAFEF00D, 12345, (1 << 24) | 7, 1 << 20)])
def test_streams_end_to_end(host, tmp_path, seed, c2, c3, count):
    """Values 0..count-1 of whole streams, block by block as sampling.cu computes them, against the
    public CPU API (rf.rng.uniforms / rf.rng.normals), which tests/test_rng.py pins to docs/rng.md."""
    _run(host, "stream", seed, c2, c3, count, tmp_path / "out")
    raw = np.fromfile(tmp_path / "out", np.uint8)
    u32 = raw[: 4 * count].view(np.float32)
    n32 = raw[4 * count: 8 * count].view(np.float32)
    u64 = raw[8 * count: 16 * count].view(np.float64)
    n64 = raw[16 * count:].view(np.float64)
    purpose, sub = c3 >> 24, c3 & (2 ** 24 - 1)
    kw = dict(index=c2, count=count, sub=sub)
    _same_bits(u32, rf.rng.uniforms(seed, purpose, dtype="float32", **kw)[0, 0], "uniform f32")
    _same_bits(n32, rf.rng.normals(seed, purpose, dtype="float32", **kw)[0, 0], "normal f32")
    _same_bits(u64, rf.rng.uniforms(seed, purpose, dtype="float64", **kw)[0, 0], "uniform f64")
    _same_bits(n64, rf.rng.normals(seed, purpose, dtype="float64", **kw)[0, 0], "normal f64")


def test_normal_at_truncation_indices(host, tmp_path):
    """normal_at with the redraw indices of the truncated normal ((a << 50) | i, (a << 49) | i)."""
    rng = np.random.default_rng()
    n = 50_000
    a = rng.integers(1, 2 ** 14, n, dtype=np.uint64)
    i = rng.integers(0, 2 ** 30, n, dtype=np.uint64)
    idx = np.where(rng.random(n) < 0.5, (a << np.uint64(50)) | i, (a << np.uint64(49)) | i)
    rows = np.stack([idx, rng.integers(0, 2 ** 32, n, dtype=np.uint64),
                     rng.integers(0, 2 ** 32, n, dtype=np.uint64),
                     rng.integers(0, 2 ** 32, n, dtype=np.uint64),
                     rng.integers(0, 2 ** 32, n, dtype=np.uint64)], 1)
    rows.tofile(tmp_path / "in")
    _run(host, "at", tmp_path / "in", tmp_path / "out")
    got = np.fromfile(tmp_path / "out", np.float64).reshape(-1, 2)
    want = np.empty((n, 2), np.float64)
    _cpu_at(rows, want)
    _same_bits(got, want, "normal_at_f32 / normal_at_f64")
