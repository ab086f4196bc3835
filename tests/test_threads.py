"""kernels/cpu/threads.py: the shared pool and the BLAS limit, under the two things that broke them: a
fork after the pool was started (the child waited forever for the parent's workers) and
``blas_single_thread`` regions of two threads overlapping (BLAS left on one thread for good)."""
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from rinit_fast.kernels.cpu import threads


_FORK_CHILD = textwrap.dedent("""
    import os, sys, threading, time
    import numpy as np
    import rinit_fast as rf
    from rinit_fast.kernels.cpu import _jit
    W = rf.sample("glorot_normal", 48, batch=4, seed=1)
    r = rf.spectral_radius(W).radius            # the pool's workers and BLAS limit are in use now
    k = _jit.REGISTRY[0]
    held, release = threading.Event(), threading.Event()
    def hold():                                 # another thread holds a kernel's lock across the fork
        with k._lock:
            held.set()
            release.wait()
    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            same = np.array_equal(rf.spectral_radius(W).radius, r)
            with k._lock:                       # not the parent's held lock
                pass
            code = 0 if same else 3
        finally:
            os._exit(code)
    release.set()
    t.join()
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            sys.exit(os.waitstatus_to_exitcode(status))
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("the forked child hung")
            sys.exit(2)
        time.sleep(0.05)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_kernels_the_parent_used(tmp_path):
    """Fork after rf.spectral_radius (the pool started) while another thread holds a kernel's lock: the
    child computes the same radii and takes that lock (before: it waited forever in pool.map).  -P and
    a working directory outside the checkout: the installed package, not the source tree's rinit_fast/."""
    p = subprocess.run([sys.executable, "-P", "-c", _FORK_CHILD], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def _blas_threads():
    from threadpoolctl import threadpool_info
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})


def _overlap(first_out):
    """Regions of threads A and B overlapping; ``first_out`` ("A" or "B") closes first.  Returns the BLAS
    thread counts seen with both inside, after the first close, and after both."""
    seen = {}
    enter = {n: threading.Event() for n in "AB"}
    leave = {n: threading.Event() for n in "AB"}
    inside = {n: threading.Event() for n in "AB"}

    def region(name):
        enter[name].wait()
        with threads.blas_single_thread():
            inside[name].set()
            leave[name].wait()

    ts = {n: threading.Thread(target=region, args=(n,)) for n in "AB"}
    for t in ts.values():
        t.start()
    for n in "AB":
        enter[n].set()
        inside[n].wait()
    seen["both"] = _blas_threads()
    second = "A" if first_out == "B" else "B"
    leave[first_out].set()
    ts[first_out].join()
    seen["one"] = _blas_threads()
    leave[second].set()
    ts[second].join()
    seen["none"] = _blas_threads()
    return seen


@pytest.mark.parametrize("first_out", ["A", "B"])
def test_overlapping_blas_regions_of_two_threads_restore_the_setting(first_out):
    start = _blas_threads()
    if not start or max(start) < 2:
        pytest.skip("BLAS runs on one thread here already: a limit to one cannot be told from none")
    seen = _overlap(first_out)
    assert seen["both"] == [1]
    if first_out == "B":                         # A set the limit and is still inside
        assert seen["one"] == [1]
    assert seen["none"] == start                 # before: [1] for good when A closed first
    assert _blas_threads() == start


def test_nested_regions_in_one_thread():
    start = _blas_threads()
    with threads.blas_single_thread():
        with threads.blas_single_thread():
            inner = _blas_threads()
        after_inner = _blas_threads()
    assert inner == [1] and after_inner == [1]
    assert _blas_threads() == start


def test_pool_results_in_order_from_two_threads_at_once():
    """Two threads submitting to the one pool at once each get their own results, in order."""
    out = {}

    def caller(name, base):
        out[name] = threads.run_tasks(lambda i: base + i * i, 37)

    ts = [threading.Thread(target=caller, args=(n, b)) for n, b in (("a", 0), ("b", 1000))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out["a"] == [i * i for i in range(37)]
    assert out["b"] == [1000 + i * i for i in range(37)]


def test_public_calls_from_two_threads_at_once_equal_sequential_ones():
    """The claim of docs/api.md: rf functions called from two threads at once give the results they give
    one after the other (shared pool, BLAS regions overlapping)."""
    import numpy as np
    import rinit_fast as rf

    def work(seed):
        W = rf.sample("glorot_normal", 40, batch=6, seed=seed)
        Q = rf.sample("orthogonal", 24, batch=3, seed=seed)     # LAPACK inside blas_single_thread
        return W, rf.spectral_radius(W).radius, rf.spectral_norm(W).norm, Q

    want = {s: work(s) for s in (3, 4)}
    got = {}
    ts = [threading.Thread(target=lambda s=s: got.__setitem__(s, [work(s) for _ in range(3)])) for s in (3, 4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in (3, 4):
        for rep in got[s]:
            for a, b in zip(rep, want[s]):
                np.testing.assert_array_equal(a, b)
