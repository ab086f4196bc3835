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
