"""TEMPORARY FALLBACK (delete when issues 4 and 5 land): slow NumPy stand-ins with the contract of
``rf.spectral_radius``, ``rf.spectral_norm`` and ``rf.unroll`` (BRIEF §3), so the study machinery can be
built and tested before the engine's kernels exist.  Random inputs are drawn from the engine's stream
with the documented purposes, indexed by the global matrix index ``start + j``."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import rng


def spectral_radius(W, *, tol=None, max_iter=None, method="power", seed=0, start=0):
    W = np.asarray(W)
    r = np.abs(np.linalg.eigvals(W.astype(np.complex128 if np.iscomplexobj(W) else np.float64))).max(-1)
    return SimpleNamespace(radius=r, converged=np.ones(r.shape, bool), iterations=np.zeros(r.shape, np.int64))


def spectral_norm(W, *, tol=None, max_iter=None, method="power", seed=0, start=0):
    W = np.asarray(W)
    r = np.linalg.svd(W.astype(np.complex128 if np.iscomplexobj(W) else np.float64), compute_uv=False)[..., 0]
    return SimpleNamespace(radius=r, converged=np.ones(r.shape, bool), iterations=np.zeros(r.shape, np.int64))


def unroll(W, steps, *, realizations=1, inputs="gaussian", input_scale=1.0, nonlinearity="linear",
           record_every=1, tangent=False, seed=0, start=0):
    W = np.asarray(W)
    single = W.ndim == 2
    W3 = W[None] if single else W
    B, n, _ = W3.shape
    R = realizations
    K = steps // record_every
    ln = np.empty((B, R, K))
    tl = np.empty((B, R, K))
    for b in range(B):
        i = start + b
        Wb = W3[b].astype(np.complex128 if np.iscomplexobj(W3) else np.float64)
        if inputs is None:
            h = rng.normals(seed, rng.Purpose.H0, index=i, count=n, n_sub=R)[0]
            X = None
        else:
            h = np.zeros((R, n))
            X = rng.normals(seed, rng.Purpose.INPUTS, index=i, count=steps * n, n_sub=R)[0]
            X = X.reshape(R, steps, n) * input_scale
        v = rng.normals(seed, rng.Purpose.V0, index=i, count=n, n_sub=R)[0] if tangent else None
        for t in range(steps):
            pre = h @ Wb.T + (X[:, t] if X is not None else 0.0)
            if nonlinearity == "tanh":
                h = np.tanh(pre)
                if tangent:
                    v = (1.0 - h ** 2) * (v @ Wb.T)
            else:
                h = pre
                if tangent:
                    v = v @ Wb.T
            if (t + 1) % record_every == 0:
                k = (t + 1) // record_every - 1
                with np.errstate(divide="ignore"):
                    ln[b, :, k] = np.log(np.linalg.norm(h, axis=-1))
                    if tangent:
                        tl[b, :, k] = np.log(np.linalg.norm(v, axis=-1))
    res = SimpleNamespace(log_norm=ln[0] if single else ln)
    if tangent:
        res.tangent_log_norm = tl[0] if single else tl
    return res
