"""The one home for CPU threads: how many, how work is spread over them, and BLAS pinned to one thread.

The CPU kernels release the GIL and are parallelised coarsely (docs/CONVENTIONS.md): whole matrices,
networks or realisation chunks per task, spread over ``nthreads()`` Python threads, with no Numba
parallel region inside a task.  A kernel that calls BLAS/LAPACK from such a task runs inside
``blas_single_thread()``: nested BLAS threads oversubscribe the cores (measured 44 ms instead of about
7 per 500×500 QR; bench/NOTES.md).  Results never depend on which thread runs which task.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

_CONTROLLER = None


def nthreads():
    """Threads the CPU kernels use: Numba's thread count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``)."""
    import numba
    return numba.get_num_threads()


def blas_single_thread():
    """A context in which every loaded BLAS library (OpenBLAS, MKL, ...) runs on one thread."""
    global _CONTROLLER
    if _CONTROLLER is None:  # scan the loaded libraries once (about a millisecond)
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS/LAPACK that Numba and SciPy call)
        import scipy.linalg.cython_lapack  # noqa: F401
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def run_tasks(task, n, threads=None):
    """``task(0), ..., task(n-1)`` on ``min(threads, n)`` threads (default ``nthreads()``); returns their
    results in order.  Exceptions propagate."""
    threads = nthreads() if threads is None else threads
    threads = max(1, min(threads, n))
    if threads == 1:
        return [task(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(task, range(n)))


def run_chunks(fn, n, per_thread=4, threads=None):
    """``fn(i0, i1)`` over [0, n) in contiguous chunks, about ``per_thread`` chunks per thread (dynamic
    balance when items differ in cost), each chunk whole items."""
    threads = nthreads() if threads is None else threads
    threads = max(1, min(threads, n))
    chunk = max(1, n // (per_thread * threads))
    bounds = [(i0, min(n, i0 + chunk)) for i0 in range(0, n, chunk)]
    run_tasks(lambda k: fn(*bounds[k]), len(bounds), threads)
