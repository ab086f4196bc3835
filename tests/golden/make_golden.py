"""Write tests/golden/outputs.npz: the public outputs of rinit_fast at fixed seeds.

Run once, at a commit whose outputs are the reference (the golden file was first written at 350eaf5,
before the kernel layer was rebuilt; issue 11).  tests/test_golden.py recomputes every entry with the
same calls and compares: sampling, the stream and unroll bit for bit, float64 statistics (spectral
radius and norm, propagate) to 1e-12 relative.  Regenerate only with a stream version bump
(docs/rng.md), and say so in the commit.

    python tests/golden/make_golden.py            # rewrite the file
"""
from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "outputs.npz")


def cases():
    """(key, thunk) pairs; each thunk returns a dict of arrays.  The key names the call."""
    import rinit_fast as rf
    from rinit_fast.rng import Purpose

    out = []

    # --- sampling: every scheme, both dtypes, a rectangular shape, a shape past one parallel chunk ----
    params = {
        "constant": dict(value=0.37),
        "uniform": dict(a=0.5),
        "normal": dict(std=2.5),
        "rescaled_glorot": dict(s=1.05),
    }
    for name in rf.schemes():
        for dt in ("float32", "float64"):
            p = params.get(name, {})
            shape = 9 if name == "rescaled_glorot" else (7, 5)
            out.append((f"sample/{name}/{dt}",
                        lambda name=name, dt=dt, p=p, shape=shape:
                        {"W": rf.sample(name, shape, batch=3, seed=123, start=5, dtype=dt, gain=1.3, **p)}))
            if name in ("glorot_normal", "glorot_uniform", "variance_scaling", "orthogonal", "complex_glorot"):
                out.append((f"sample/{name}/{dt}/big",
                            lambda name=name, dt=dt: {"W": rf.sample(name, (131, 67), batch=2, seed=9, start=2**31,
                                                                     dtype=dt)}))
    for dist in ("normal", "uniform", "truncated_normal"):
        for mode in ("fan_in", "fan_out", "fan_avg"):
            out.append((f"sample/variance_scaling/{dist}/{mode}",
                        lambda dist=dist, mode=mode: {"W": rf.sample("variance_scaling", (11, 3), batch=2, seed=4,
                                                                     dtype="float64", scale=2.0, mode=mode,
                                                                     distribution=dist)}))
    out.append(("sample/he_normal/fan_out", lambda: {"W": rf.sample("he_normal", (6, 9), seed=2**64 - 1,
                                                                  mode="fan_out")}))
    out.append(("sample/orthogonal/wide", lambda: {"W": rf.sample("orthogonal", (5, 12), batch=2, seed=3,
                                                                dtype="float64")}))
    out.append(("sample/rescaled_glorot/c", lambda: {"W": rf.sample("rescaled_glorot", 173, seed=8, c=1.86)}))
    out.append(("sample/layer", lambda: {"W": rf.sample("glorot_normal", 9, batch=2, seed=3, layer=17)}))

    # --- the stream itself ----------------------------------------------------------------------------
    for dt in ("float32", "float64"):
        for purpose in (Purpose.INPUTS, Purpose.START, Purpose.PROP_BIAS):
            out.append((f"rng/normals/{purpose.name}/{dt}",
                        lambda purpose=purpose, dt=dt: {"x": rf.rng.normals(11, purpose, index=7, count=37, n_index=2,
                                                                            sub=3, n_sub=2, dtype=dt)}))
        out.append((f"rng/uniforms/{dt}", lambda dt=dt: {"x": rf.rng.uniforms(11, Purpose.USER, index=1, count=29,
                                                                               n_index=2, n_sub=3, dtype=dt)}))

    # --- spectral radius and norm -----------------------------------------------------------------------
    def spectral_inputs():
        A = {}
        for dt in ("float32", "float64"):
            A[f"glorot37/{dt}"] = rf.sample("glorot_normal", 37, batch=3, seed=21, dtype=dt)
            A[f"glorot130/{dt}"] = rf.sample("glorot_normal", 130, batch=2, seed=22, dtype=dt)
            A[f"complex40/{dt}"] = rf.sample("complex_glorot", 40, batch=2, seed=23, dtype=dt)
            A[f"ortho30/{dt}"] = rf.sample("orthogonal", 30, batch=2, seed=24, dtype=dt)
            t = rf.sample("glorot_normal", 25, batch=2, seed=25, dtype=dt)
            A[f"triu25/{dt}"] = np.ascontiguousarray(np.triu(t))
            A[f"nilpotent25/{dt}"] = np.ascontiguousarray(np.triu(t, 1))
        A["one/float64"] = np.array([[[-2.5]], [[0.0]]])
        return A

    for key, W in spectral_inputs().items():
        def radius(W=W):
            r = rf.spectral_radius(W, seed=5, start=3)
            return {"radius": r.radius, "converged": r.converged, "iterations": r.iterations,
                    "residual": r.residual, "ritz": r.ritz, "path": r.path.astype("U16")}

        def norm(W=W):
            s = rf.spectral_norm(W, seed=5, start=3)
            return {"norm": s.norm, "converged": s.converged, "iterations": s.iterations, "residual": s.residual}
        out.append((f"spectral_radius/{key}", radius))
        out.append((f"spectral_norm/{key}", norm))

    # --- unroll: every input mode, nonlinearity, tangent, U, b, h0, record_every, both dtypes ----------
    for dt in ("float32", "float64"):
        W = rf.sample("glorot_normal", 33, batch=2, seed=31, dtype=dt)
        U = rf.sample("glorot_normal", (33, 5), seed=32, dtype=dt)
        b = rf.sample("normal", (1, 33), seed=33, dtype=dt)[0] * 0.1
        h0 = rf.sample("normal", (3, 33), seed=34, dtype=dt)
        xs = rf.sample("normal", (40, 5), batch=3, seed=35, dtype=dt)
        for nl in ("linear", "tanh", "relu"):
            for tangent in (False, True):
                kw = dict(nonlinearity=nl, tangent=tangent, seed=36, start=4)
                out.append((f"unroll/gaussian/{nl}/{int(tangent)}/{dt}",
                            lambda W=W, kw=kw: _unroll(rf.unroll(W, 150, realizations=3, **kw))))
                out.append((f"unroll/none/{nl}/{int(tangent)}/{dt}",
                            lambda W=W, kw=kw: _unroll(rf.unroll(W[0], 120, inputs=None, record_every=7, **kw))))
                out.append((f"unroll/array_U_b_h0/{nl}/{int(tangent)}/{dt}",
                            lambda W=W, kw=kw, U=U, b=b, h0=h0, xs=xs:
                            _unroll(rf.unroll(W, 40, realizations=3, inputs=xs, U=U, b=b, h0=h0, input_scale=0.7,
                                              record_every=3, **kw))))
        out.append((f"unroll/long_R/{dt}", lambda W=W: _unroll(rf.unroll(W, 30, realizations=130, tangent=True,
                                                                         nonlinearity="tanh", seed=2))))

    # --- propagate: every activation, with and without bias, both dtypes, orthogonal, checkpointing ----
    for dt in ("float32", "float64"):
        for act in ("linear", "tanh", "sigmoid", "relu"):
            for bias in (0.0, 0.3):
                out.append((f"propagate/{act}/{bias}/{dt}",
                            lambda act=act, bias=bias, dt=dt:
                            _prop(rf.propagate("glorot_normal", 29, 6, activation=act, batch=3, samples=5, seed=41,
                                               start=2, bias_std=bias, dtype=dt, in_width=11))))
        out.append((f"propagate/orthogonal/{dt}", lambda dt=dt: _prop(rf.propagate(
            "orthogonal", 24, 5, activation="tanh", batch=2, samples=4, seed=42, dtype=dt, bias_std=0.1))))
        out.append((f"propagate/uniform_ckpt/{dt}", lambda dt=dt: _prop(rf.propagate(
            "he_uniform", 31, 9, activation="relu", batch=2, samples=3, seed=43, dtype=dt, checkpoint=2))))
        out.append((f"propagate/truncated/{dt}", lambda dt=dt: _prop(rf.propagate(
            "variance_scaling", 20, 4, activation="tanh", batch=2, samples=3, seed=44, dtype=dt))))
    return out


def _unroll(u):
    d = {"log_norm": u.log_norm, "steps_recorded": u.steps_recorded, "final_state": u.final_state,
         "final_exponent": u.final_exponent}
    if u.tangent_log_norm is not None:
        d.update(tangent_log_norm=u.tangent_log_norm, final_tangent=u.final_tangent,
                 final_tangent_exponent=u.final_tangent_exponent)
    return d


def _prop(p):
    return {"network_stats": p.network_stats()}


BIG = 16384  # bytes: larger arrays are stored as a SHA-256 of their bytes (and dtype, shape)


def digest(a):
    import hashlib
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return np.array(h.hexdigest())


def compute():
    """{name: array} of every case; arrays over BIG bytes replaced by their digest (name + '#sha256')."""
    arrays = {}
    for key, thunk in cases():
        for name, a in thunk().items():
            a = np.asarray(a)
            if a.nbytes > BIG:
                arrays[f"{key}//{name}#sha256"] = digest(a)
            else:
                arrays[f"{key}//{name}"] = a
    return arrays


def main():
    arrays = compute()
    np.savez_compressed(PATH, **arrays)
    print(f"wrote {len(arrays)} arrays to {PATH} ({os.path.getsize(PATH) / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
