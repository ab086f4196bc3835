"""The one home for CPU threads: how many, how work is spread over them, and BLAS pinned to one thread.

The CPU kernels release the GIL and are parallelised coarsely (docs/CONVENTIONS.md): whole matrices,
networks or realisation chunks per task, spread over ``nthreads()`` Python threads, with no Numba
parallel region inside a task.  A kernel that calls BLAS/LAPACK from such a task runs inside
``blas_single_thread()``: nested BLAS threads oversubscribe the cores (measured 44 ms instead of about
7 per 500×500 QR; bench/NOTES.md).  Results never depend on which thread runs which task.  A process
forked from one that has used the pool (``multiprocessing``'s default on Linux) starts a pool of its own
(``_after_fork_in_child``): the parent's workers do not exist in the child.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_CONTROLLER = None
_POOL = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()
_WORKER = threading.local()   # .active: this thread is one of the pool's workers
_BLAS_LOCK = threading.Lock()
_BLAS_LIMITER = None          # threadpoolctl's limiter of the blas_single_thread region that set the limit


def nthreads():
    """Threads the CPU kernels use: Numba's thread count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``)."""
    import numba
    return numba.get_num_threads()


def blas_single_thread():
    """A context in which every loaded BLAS library (OpenBLAS, MKL, ...) runs on one thread.

    Regions of several threads at once share one limit: the region that opens while no limit is set
    sets it, from its own thread, and restores the libraries' setting when it closes; a region that
    opens while the limit is set changes nothing.  (A limiter per region, before, went wrong when two
    threads' regions overlapped: the second captured the first's limit as "the original", and restored
    it last, leaving BLAS on one thread for the rest of the process.)  What remains: a region still open
    after the one that set the limit has closed runs with the libraries' own thread count until it
    ends (threadpoolctl lets one thread at a time control OpenBLAS: the limit cannot be handed over)."""
    return _BlasRegion()


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:  # scan the loaded libraries once (about a millisecond)
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS/LAPACK that Numba and SciPy call)
        import scipy.linalg.cython_lapack  # noqa: F401
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


class _BlasRegion:
    """One ``blas_single_thread()`` region; ``limiter`` is set when this region set the limit."""
    __slots__ = ("limiter",)

    def __enter__(self):
        global _BLAS_LIMITER
        self.limiter = None
        with _BLAS_LOCK:
            if _BLAS_LIMITER is None:
                self.limiter = _controller().limit(limits=1, user_api="blas")
                self.limiter.__enter__()
                _BLAS_LIMITER = self.limiter
        return self

    def __exit__(self, *exc):
        global _BLAS_LIMITER
        if self.limiter is not None:
            with _BLAS_LOCK:
                _BLAS_LIMITER = None
                limiter, self.limiter = self.limiter, None
                limiter.__exit__(None, None, None)
        return False


def _after_fork_in_child():
    """A forked child has only the thread that called fork: the pool's workers are gone (work handed
    to them would wait forever) and a lock another thread held stays held.  Start afresh.  (A fork
    inside a blas_single_thread region leaves the child's BLAS on one thread.)"""
    global _POOL, _POOL_SIZE, _POOL_LOCK, _BLAS_LOCK, _BLAS_LIMITER
    _POOL, _POOL_SIZE, _POOL_LOCK = None, 0, threading.Lock()
    _BLAS_LOCK, _BLAS_LIMITER = threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
