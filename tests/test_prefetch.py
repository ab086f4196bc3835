"""Compiling ahead in a helper process (kernels/cpu/_jit.py ``resolve``/``prefetch``; the main job's
``PREFETCH`` list in rinit_fast/studies/reproduce.py)."""
import pytest

from rinit_fast.kernels.cpu import _jit
from rinit_fast.studies.reproduce import PREFETCH


def test_the_main_jobs_list_names_one_signature_per_item():
    # a renamed kernel or a changed signature fails here, instead of leaving the main job compiling it
    pairs = _jit.resolve(PREFETCH)
    assert len(pairs) == len(PREFETCH)
    for (module, name, dtype), (k, i) in zip(PREFETCH, pairs):
        assert (k.module, k.py_func.__name__) == (module, name)


def test_dtype_selects_by_precision_or_first_array():
    both = _jit.resolve([("spectral", "prep", "float32")])  # float32 and complex64 input
    assert len(both) == 2
    c64 = _jit.resolve([("spectral", "prep", "complex64")])
    assert len(c64) == 1 and c64[0] in both
    assert len(_jit.resolve([("spectral", "prep", None)])) == 4


@pytest.mark.parametrize("item", [("spectral", "prepp", None), ("nomodule_", "x", None),
                                  ("unroll", "run_item", "float16")])
def test_an_item_that_matches_nothing_is_named(item):
    if item[0] == "nomodule_":
        with pytest.raises(ModuleNotFoundError):
            _jit.resolve([item])
        return
    with pytest.raises(ValueError, match=item[1]):
        _jit.resolve([item])


def test_the_helper_fills_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("RINIT_FAST_PREFETCH", raising=False)
    helper = _jit.prefetch([("philox", "philox4x32_blocks", None)])
    assert helper is not None
    assert helper.wait(300) == 0
    assert any("philox4x32_blocks" in p.name for p in tmp_path.rglob("*.nbi"))
    assert any("philox4x32_blocks" in p.name for p in tmp_path.rglob("*.nbc"))


def test_stop_ends_the_helper_and_off_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    with _jit.prefetch([("lyapunov", "run_item", None)]) as helper:
        pass
    assert helper.proc.poll() is not None
    monkeypatch.setenv("RINIT_FAST_PREFETCH", "0")
    assert _jit.prefetch([("lyapunov", "run_item", None)]) is None


def test_no_interpreter_means_no_helper(monkeypatch):
    monkeypatch.delenv("RINIT_FAST_PREFETCH", raising=False)
    monkeypatch.setattr(_jit.sys, "executable", "/nonexistent/python-for-rinit-fast-test")
    assert _jit.prefetch([("philox", "philox4x32_blocks", None)]) is None


_HOLD = """
import sys
from rinit_fast.kernels.cpu import _jit
(k, i), = _jit.resolve([("sampling", "_redraw_items", "float32")])
with _jit._compile_lock(k, i):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""
_NEED = """
from rinit_fast.kernels.cpu import _jit
(k, i), = _jit.resolve([("sampling", "_redraw_items", "float32")])
print("start", flush=True)
print(_jit._compile_one(k, i)["status"], flush=True)
"""
_WRITE = """
import numba
from rinit_fast.kernels.cpu import _jit
(k, i), = _jit.resolve([("sampling", "_redraw_items", "float32")])
numba.njit([k.signatures[i]], **k._opts)(k.py_func)    # into the cache, without the lock
"""


def test_a_process_waits_for_anothers_compilation_instead_of_compiling_twice(tmp_path):
    """Process B needs a kernel signature whose lock process H holds (as the helper does while compiling
    it).  While B waits, another process writes that signature into the shared cache; when H lets go, B
    loads it: status "cached".  Without the lock B would have looked into the empty cache at once and
    compiled it itself ("compiled")."""
    import os
    import subprocess
    import sys
    import time
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    run = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    hold = subprocess.Popen([sys.executable, "-P", "-c", _HOLD], **run)
    need = None
    try:
        assert hold.stdout.readline().strip() == "locked"
        need = subprocess.Popen([sys.executable, "-P", "-c", _NEED], **run)
        assert need.stdout.readline().strip() == "start"
        time.sleep(1.0)                       # B is past its imports, at the lock
        subprocess.run([sys.executable, "-P", "-c", _WRITE], env=env, check=True, timeout=300)
        hold.stdin.write("\n")
        hold.stdin.flush()
        assert hold.stdout.readline().strip() == "released"
        out, _ = need.communicate(timeout=300)
        assert out.strip() == "cached"
    finally:
        for p in (hold, need):
            if p is not None and p.poll() is None:
                p.kill()


def test_the_compile_lock_is_per_signature_and_cache(monkeypatch):
    (k, i), = _jit.resolve([("sampling", "_redraw_items", "float32")])
    (k2, j), = _jit.resolve([("sampling", "_redraw_items", "float64")])
    a = _jit._compile_lock(k, i).name
    assert a != _jit._compile_lock(k2, j).name
    monkeypatch.setattr(_jit.numba.config, "CACHE_DIR", "/some/other/cache")
    assert a != _jit._compile_lock(k, i).name
    with _jit._compile_lock(k, i) as lock:    # usable, and released on exit
        assert lock.f is not None
    assert lock.f is None
