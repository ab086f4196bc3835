"""kernels/cpu/blas.py: gemv from jitted code, bit for bit the call Numba's np.dot makes; gemm against
NumPy."""
import numba
import numpy as np
import pytest

from rinit_fast.kernels.cpu import blas


@numba.njit(cache=False)
def _mv_rows(a, x, j):
    return blas.mv(a[:j], x), np.dot(a[:j], x)


@numba.njit(cache=False)
def _vm_rows(v, a, j):
    return blas.vm(v, a[:j]), np.dot(v, a[:j])


@numba.njit(cache=False)
def _mv(a, x):
    return blas.mv(a, x), np.dot(a, x)


@numba.njit(cache=False)
def _vm(v, a):
    return blas.vm(v, a), np.dot(v, a)


def _draw(rng, shape, dtype):
    a = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _same_bits(x, y):
    assert x.dtype == y.dtype and x.shape == y.shape
    assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_mv_and_vm_are_np_dot_bit_for_bit(dtype):
    rng = np.random.default_rng(17)
    for rows, cols in [(1, 1), (3, 7), (7, 3), (33, 33), (64, 130), (257, 31)]:
        a = _draw(rng, (rows, cols), dtype)
        x, v = _draw(rng, cols, dtype), _draw(rng, rows, dtype)
        for got, want in (_mv(a, x), _vm(v, a)):
            _same_bits(got, want)
        # and right, against long double: |error| <= n eps sum |a_ij x_j| (plus the complex products' own)
        wide = a.astype(np.clongdouble)
        for got, exact, bound in ((_mv(a, x)[0], wide @ x.astype(np.clongdouble), np.abs(a) @ np.abs(x)),
                                  (_vm(v, a)[0], v.astype(np.clongdouble) @ wide, np.abs(v) @ np.abs(a))):
            tol = 4 * (max(rows, cols) + 2) * np.finfo(dtype).eps * bound.astype(np.float64)
            assert np.all(np.abs(got - exact) <= tol)
    # the leading rows of a basis (Gram–Schmidt's q[:j]), down to none
    q = _draw(rng, (9, 20), dtype)
    for j in (0, 1, 4, 9):
        _same_bits(*_mv_rows(q, _draw(rng, 20, dtype), j))
        _same_bits(*_vm_rows(_draw(rng, j, dtype), q, j))
    e = np.zeros((0, 5), dtype)
    assert _mv(e, np.ones(5, dtype))[0].shape == (0,)
    assert np.array_equal(_vm(np.ones(0, dtype), e)[0], np.zeros(5, dtype))
