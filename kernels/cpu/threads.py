"""The one home for CPU threads: how many, how work is spread over them, and BLAS pinned to one thread.

The CPU kernels release the GIL and are parallelised coarsely (docs/CONVENTIONS.md): whole matrices,
networks or realisation chunks per task, spread over ``nthreads()`` Python threads, with no Numba
parallel region inside a task.  A kernel that calls BLAS/LAPACK from such a task runs inside
``blas_single_thread()``: nested BLAS threads oversubscribe the cores (measured 44 ms instead of about
7 per 500×500 QR; bench/NOTES.md).  Results never depend on which thread runs which task.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

_CONTROLLER = None
_POOL = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()
_WORKER = threading.local()   # .active: this thread is one of the pool's workers


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


def _mark_worker():
    _WORKER.active = True


def _pool(size):
    """The process's persistent pool of ``size`` worker threads (recreated when the size changes): starting
    threads on every call cost more than a small kernel call itself."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != size:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="rinit_fast",
                                       initializer=_mark_worker)
            _POOL_SIZE = size
        return _POOL


def run_tasks(task, n, threads=None):
    """``task(0), ..., task(n-1)`` on ``min(threads, n)`` threads (default ``nthreads()``); returns their
    results in order.  Exceptions propagate.  Runs on the persistent pool; a call made from inside a pool
    task runs its tasks in the calling thread (a nested wait on the same pool could deadlock)."""
    threads = nthreads() if threads is None else threads
    threads = max(1, min(threads, n))
    if threads == 1 or getattr(_WORKER, "active", False):
        return [task(i) for i in range(n)]
    pool = _pool(max(threads, nthreads()))
    if threads >= n:
        return list(pool.map(task, range(n)))
    # at most `threads` tasks in flight: each worker takes the next index when it is done
    counter = iter(range(n))
    lock = threading.Lock()
    results = [None] * n

    def worker(_):
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            results[i] = task(i)
    list(pool.map(worker, range(threads)))
    return results


def run_chunks(fn, n, per_thread=4, threads=None):
    """``fn(i0, i1)`` over [0, n) in contiguous chunks, about ``per_thread`` chunks per thread (dynamic
    balance when items differ in cost), each chunk whole items."""
    threads = nthreads() if threads is None else threads
    threads = max(1, min(threads, n))
    chunk = max(1, n // (per_thread * threads))
    bounds = [(i0, min(n, i0 + chunk)) for i0 in range(0, n, chunk)]
    run_tasks(lambda k: fn(*bounds[k]), len(bounds), threads)
