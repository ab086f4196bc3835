"""TEMPORARY FALLBACK (delete when issue 4 lands): slow LAPACK stand-ins with the contract of
``rf.spectral_radius`` and ``rf.spectral_norm`` (BRIEF §3), so the study machinery can be built and tested
before the engine's spectral kernels exist."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def spectral_radius(W, *, tol=None, max_iter=None, method="power", seed=0, start=0):
    W = np.asarray(W)
    r = np.abs(np.linalg.eigvals(W.astype(np.complex128 if np.iscomplexobj(W) else np.float64))).max(-1)
    return SimpleNamespace(radius=r, converged=np.ones(r.shape, bool), iterations=np.zeros(r.shape, np.int64))


def spectral_norm(W, *, tol=None, max_iter=None, method="power", seed=0, start=0):
    W = np.asarray(W)
    r = np.linalg.svd(W.astype(np.complex128 if np.iscomplexobj(W) else np.float64), compute_uv=False)[..., 0]
    return SimpleNamespace(radius=r, converged=np.ones(r.shape, bool), iterations=np.zeros(r.shape, np.int64))
