"""rf.open_study / StudyResults.to_xarray: named dimensions and coordinates, lazy dask-backed arrays equal to
the stored results, partial studies, refusal of tampered or pickled chunks without running code, and a
study of more than 1 GiB reduced with a small, bounded peak memory."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.studies import StudyDirError, run_study
from rinit_fast.studies import config as cfgmod
from rinit_fast.studies import execute, storage

xr = pytest.importorskip("xarray")
da = pytest.importorskip("dask.array")

CFG = {"seed": 3, "samples": 5, "chunk": 2, "widths": [6, 9], "schemes": ["glorot_normal", "half_glorot"],
       "sweep": {"gain": [0.5, 1.5]}, "radius": {},
       "unroll": {"horizons": [2, 4], "realizations": 3, "runs": ["powers", "linear"]}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return run_study(CFG, tmp_path_factory.mktemp("x") / "s")


def test_dataset_dims_coords_values(study):
    ds = rf.open_study(study.path)
    assert dict(ds.sizes) == {"scheme": 2, "width": 2, "gain": 2, "sample": 5, "realization": 3, "horizon": 2}
    assert list(ds["scheme"].values) == ["glorot_normal", "half_glorot"]
    assert list(ds["family"].values) == ["glorot_normal", "half_glorot"]
    assert list(ds["width"].values) == [6, 9] and list(ds["gain"].values) == [0.5, 1.5]
    assert list(ds["horizon"].values) == [2, 4]
    assert ds["linear_log_norm"].dims == ("scheme", "width", "gain", "sample", "realization", "horizon")
    assert ds["radius"].dims == ("scheme", "width", "gain", "sample")
    for name in study.keys():
        assert isinstance(ds[name].data, da.Array), name  # lazy
        got = ds[name].values
        assert got.dtype == study[name].dtype and np.array_equal(got, study[name]), name
    # labelled selection is the same number as the StudyResults' positional one
    sel = ds["radius"].sel(scheme="half_glorot", width=9, gain=1.5).values
    assert np.array_equal(sel, study.sel("radius", "half_glorot", 9, gain=1.5))
    assert json.loads(ds.attrs["config"]) == cfgmod.normalize(CFG) and ds.attrs["hash"] == study.hash
    # the in-memory conversion gives the same dataset
    mem = study.to_xarray()
    assert isinstance(mem["radius"].data, np.ndarray)
    xr.testing.assert_identical(mem.compute(), ds.compute())
    xr.testing.assert_identical(study.to_xarray(lazy=True).compute(), ds.compute())


def test_reductions_are_lazy_and_right(study):
    ds = rf.open_study(study.path)
    red = ds["linear_log_norm"].isel(horizon=-1).mean(["sample", "realization"])
    assert isinstance(red.data, da.Array)
    want = study["linear_log_norm"][..., -1].mean(axis=(3, 4))
    np.testing.assert_allclose(red.values, want, rtol=1e-13)


def test_partial_and_refusals(tmp_path, monkeypatch, study):
    out = tmp_path / "p"
    monkeypatch.setenv(execute.FAIL_ENV, storage.chunk_name("half_glorot", 9, 2, 4, (1,)))
    with pytest.raises(Exception, match="resume"):
        run_study(CFG, out)
    monkeypatch.delenv(execute.FAIL_ENV)
    with pytest.raises(StudyDirError, match="incomplete"):
        rf.open_study(out)
    ds = rf.open_study(out, partial=True)
    done = ds["done"].values
    assert not done.all() and done.any()
    assert np.isnan(ds["radius"].values[~done]).all() and not np.isnan(ds["radius"].values[done]).any()
    # a chunk changed after it was written: refused at opening
    d = tmp_path / "t"
    import shutil
    shutil.copytree(study.path, d)
    name = sorted(os.listdir(d / "chunks"))[0]
    arrays = dict(np.load(d / "chunks" / name, allow_pickle=False))
    arrays["radius"] = arrays["radius"] + 1.0
    with open(d / "chunks" / name, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(StudyDirError, match="checksum"):
        rf.open_study(d)
    # a pickled object array (and no manifest entry to catch it): refused from its header, never unpickled
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays["radius"] = np.array([Evil()] * len(arrays["radius"]), dtype=object)
    with open(d / "chunks" / name, "wb") as f:
        np.savez(f, **arrays)
    m = json.loads((d / "manifest.json").read_text())
    del m["chunks"][name]
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StudyDirError, match="refused"):
        rf.open_study(d)
    assert not marker.exists()


def test_propagate_dataset(tmp_path):
    cfg = {"seed": 1, "samples": 3, "widths": [8], "schemes": ["glorot_normal"], "sweep": {"bias_std": [0.0, 0.2]},
           "propagate": {"activations": ["tanh", "relu"], "depth": 4, "inputs": 2}}
    res = run_study(cfg, tmp_path / "p")
    ds = rf.open_study(tmp_path / "p")
    assert ds["propagate_grad_var"].dims == ("scheme", "width", "bias_std", "sample", "activation", "layer")
    assert ds["meanfield_chi"].dims == ("scheme", "width", "bias_std", "activation", "layer")
    assert list(ds["activation"].values) == ["tanh", "relu"] and list(ds["layer"].values) == [0, 1, 2, 3]
    np.testing.assert_array_equal(ds["meanfield_chi"].values, res["meanfield_chi"])
    np.testing.assert_array_equal(ds["propagate_grad_var"].values, res["propagate_grad_var"])


BIG = {"name": "big", "seed": 1, "samples": 128, "chunk": 2, "widths": [2], "schemes": ["glorot_normal"],
       "unroll": {"horizons": {"every": 1, "stop": 8192}, "realizations": 64, "runs": ["powers", "linear"]}}
"""1.07 GiB of float64 results: 2 arrays x 128 matrices x 64 realisations x 8192 horizons."""


REDUCE = r"""
import resource, sys
import dask
dask.config.set(scheduler="threads", num_workers=2)
import numpy as np
import rinit_fast as rf
ds = rf.open_study(sys.argv[1])
nbytes = sum(v.nbytes for v in ds.data_vars.values())
m = ds["linear_log_norm"].mean(["sample", "realization"]).compute()
s = ds["powers_log_norm"].isel(horizon=-1).std("realization").compute()
try:  # this process's own peak (VmHWM, KiB): ru_maxrss would also count the parent's memory at the spawn
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except OSError:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS: an overestimate there)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(nbytes, float(m.values[0, 0, 0]), float(m.values[0, 0, -1]), float(s.values[0, 0, 7, ]), peak)
"""


@pytest.mark.slow
def test_open_and_reduce_a_study_larger_than_1_gib_in_bounded_memory(tmp_path):
    """The chunks are written through the study's own storage layer (atomic chunk writes and manifest)
    with synthetic values, since computing 1 GiB of results takes minutes here; the test is about opening
    and reducing.  A fresh interpreter opens the study (verifying every checksum), reduces both arrays
    over samples and realisations with 2 dask threads, and reports its peak resident memory: the
    interpreter with rinit_fast, xarray and dask imported (~110 MiB here), plus a few chunk arrays
    in flight (8 MiB each), against 1 GiB if the study were loaded."""
    cfg = cfgmod.normalize(BIG)
    out = tmp_path / "big"
    h = storage.prepare(str(out), cfg)
    manifest = storage.read_manifest(str(out))
    tasks = execute.plan(cfg, {})
    rows = np.arange(64 * 8192, dtype=np.float64).reshape(64, 8192) * 1e-6
    for t in tasks:
        k = t["stop"] - t["start"]
        a = np.ascontiguousarray(np.broadcast_to(rows, (k, 64, 8192)) + np.arange(t["start"], t["stop"])[:, None, None])
        storage.write_chunk(str(out), t["name"], {"powers_log_norm": a, "linear_log_norm": -a}, manifest, h)
    total = sum(os.path.getsize(out / "chunks" / f) for f in os.listdir(out / "chunks"))
    assert total >= 2 ** 30
    r = subprocess.run([sys.executable, "-P", "-c", REDUCE, str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    nbytes, m0, m_last, s7, peak_kib = r.stdout.split()
    assert int(nbytes) >= 2 ** 30
    # the reduction is right: mean over samples of -(row + sample index), std over realisations
    assert float(m0) == pytest.approx(-(rows[:, 0].mean() + 63.5), rel=1e-12)
    assert float(m_last) == pytest.approx(-(rows[:, -1].mean() + 63.5), rel=1e-12)
    assert float(s7) == pytest.approx(rows[:, -1].std(), rel=1e-9)
    assert int(peak_kib) / 1024 < 300, f"peak resident memory {int(peak_kib) / 1024:.0f} MiB"
