"""Every public output at fixed seeds equals tests/golden/outputs.npz (written by tests/golden/make_golden.py
at 350eaf5, before the kernel layer was rebuilt).

Sampling, the stream and unroll: bit for bit.  Spectral radius and norm, propagate: float64 values to
1e-12 relative, integers, flags and path names exactly.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
import make_golden  # noqa: E402

GOLDEN = np.load(make_golden.PATH, allow_pickle=False)
CASES = make_golden.cases()
EXACT = ("sample/", "rng/", "unroll/")


def test_every_golden_entry_has_a_case():
    keys = {k.split("//")[0] for k in GOLDEN.files}
    assert keys == {k for k, _ in CASES}


@pytest.mark.parametrize("key,thunk", CASES, ids=[k for k, _ in CASES])
def test_golden(key, thunk):
    got = thunk()
    stored = {k.split("//", 1)[1]: k for k in GOLDEN.files if k.split("//")[0] == key}
    assert {s.removesuffix("#sha256") for s in stored} == set(got)
    exact = key.startswith(EXACT)
    for name, a in got.items():
        a = np.asarray(a)
        if name + "#sha256" in stored:
            assert exact, f"{key}: only bit-exact outputs may be stored as digests"
            assert str(make_golden.digest(a)) == str(GOLDEN[stored[name + "#sha256"]]), f"{key}//{name} changed"
            continue
        ref = GOLDEN[stored[name]]
        assert a.shape == ref.shape and a.dtype == ref.dtype, f"{key}//{name}: {a.shape} {a.dtype} vs {ref.shape} {ref.dtype}"
        if exact or not np.issubdtype(a.dtype, np.inexact):
            assert np.array_equal(a, ref, equal_nan=np.issubdtype(a.dtype, np.inexact)), f"{key}//{name} changed"
        else:
            scale = np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
            err = np.where(np.isfinite(ref), np.abs(a - ref) / scale, 0.0)
            assert np.array_equal(np.isfinite(a), np.isfinite(ref)), f"{key}//{name}: finiteness changed"
            assert err.max(initial=0.0) <= 1e-12, f"{key}//{name}: max relative change {err.max():.3g}"
