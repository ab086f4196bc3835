"""Numba CPU kernels.  Every module compiles through :func:`._jit.kernel` (one home for options)."""
