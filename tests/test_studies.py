"""Studies: config validation and identity, chunking invariance, resume after a failure, refusal of
another configuration's directory, no pickle anywhere, and a 2-worker Dask cluster bit for bit."""
import json
import os
import shutil

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast.studies import ConfigError, StudyDirError, StudyError, load_study, run_study
from rinit_fast.studies import config as cfgmod
from rinit_fast.studies import execute, storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CFG = {"seed": 11, "samples": 6, "chunk": 4, "widths": [6, 9],
       "schemes": ["glorot_normal", {"scheme": "rescaled_glorot", "label": "resc", "s": 1.2},
                   "orthogonal"],
       "radius": {}, "norm": {},
       "unroll": {"horizons": [2, 4, 6], "realizations": 2, "runs": ["powers", "linear", "tanh"]}}


def _same(a, b):
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        x, y = a[k], b[k]
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert np.array_equal(np.ascontiguousarray(x).view(np.uint8), np.ascontiguousarray(y).view(np.uint8)), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "study"
    return run_study(CFG, d, chunk=6)


def test_layout_and_labels(reference):
    r = reference
    assert r.complete and r.labels == ["glorot_normal", "resc", "orthogonal"] and r.widths == [6, 9]
    assert r["radius"].shape == (3, 2, 6) and r.dims["radius"] == ("scheme", "width", "sample")
    assert r["tanh_tangent_log_norm"].shape == (3, 2, 6, 2, 3)
    assert r.dims["powers_log_norm"] == ("scheme", "width", "sample", "realization", "horizon")
    assert r.horizons == [2, 4, 6]
    # the stored radius is the spectral radius of matrix i of the stream (LAPACK within 1e-4)
    W = rf.sample("glorot_normal", 9, batch=6, seed=11, dtype="float32").astype(np.float64)
    ref = np.abs(np.linalg.eigvals(W)).max(-1)
    np.testing.assert_allclose(r.sel("radius", scheme="glorot_normal", width=9), ref, rtol=1e-4)
    # common random numbers: rescaled = glorot / (sqrt(n) std)... radius scales exactly by the std ratio
    ratio = rf.scheme_std("rescaled_glorot", 9, s=1.2) / rf.scheme_std("glorot_normal", 9)
    np.testing.assert_allclose(r.sel("radius", "resc", 9), ref * ratio, rtol=2e-4)
    rows = r.table()
    assert len(rows) == 6 and rows[0]["scheme"] == "glorot_normal" and rows[0]["samples"] == 6
    x = r.sel("radius", "glorot_normal", 6)
    assert rows[0]["radius_p_gt_1"] == np.mean(x > 1 + 1e-5) and rows[0]["radius_median"] == np.quantile(x, 0.5)
    assert rows[0]["radius_median_ci_low"] <= rows[0]["radius_median"] <= rows[0]["radius_median_ci_high"]
    assert os.path.exists(os.path.join(r.path, "summary.csv"))


def test_chunking_invariance(tmp_path, reference):
    _same(reference, run_study(CFG, tmp_path / "a", chunk=1))
    _same(reference, run_study(CFG, tmp_path / "b", chunk=4))


def test_later_chunks_of_a_cell_draw_into_the_first_ones_buffer(tmp_path, reference, monkeypatch):
    """The sequential loop reuses one sample buffer per cell (execute._reuse_samples): the matrices and
    every result are those of fresh arrays; outside run_study nothing is kept."""
    from rinit_fast import sampling
    calls = []
    real = sampling.sample

    def spy(*args, out=None, **kw):
        calls.append(out is not None)
        r = real(*args, out=out, **kw)
        assert np.array_equal(r, real(*args, **kw))
        return r
    monkeypatch.setattr(sampling, "sample", spy)
    _same(reference, run_study(CFG, tmp_path / "c", chunk=2))
    assert any(calls) and not all(calls)       # 3 chunks per cell: the 2nd and 3rd reuse the 1st's buffer
    assert getattr(execute._REUSE, "last", None) is None


def test_interrupt_and_resume(tmp_path, monkeypatch, reference):
    out = tmp_path / "s"
    bad = storage.chunk_name("resc", 9, 4, 6)
    monkeypatch.setenv(execute.FAIL_ENV, bad)
    with pytest.raises(StudyError, match="resume"):
        run_study(CFG, out, chunk=2)
    part = load_study(out, partial=True)
    assert not part.complete and part.done.sum() > 0
    with pytest.raises(StudyDirError, match="incomplete"):
        load_study(out)
    monkeypatch.delenv(execute.FAIL_ENV)
    # a leftover temporary file of an interrupted write is ignored and cleaned
    (out / "chunks" / ".tmp-junk.part").write_bytes(b"partial")
    _same(reference, run_study(CFG, out, chunk=3))  # resumed with another chunk size
    assert not (out / "chunks" / ".tmp-junk.part").exists()
    _same(reference, load_study(out))


def test_refuses_another_configuration(tmp_path, reference):
    other = dict(CFG, seed=12)
    with pytest.raises(StudyDirError, match="another configuration"):
        run_study(other, reference.path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StudyDirError, match="not a study directory"):
        run_study(CFG, tmp_path)
    # chunk and name do not change the identity; everything else does
    base = cfgmod.normalize(CFG)
    assert cfgmod.config_hash(base) == cfgmod.config_hash(cfgmod.normalize(dict(CFG, chunk=1, name="x")))
    for change in [{"seed": 1}, {"samples": 5}, {"dtype": "float64"}, {"widths": [6]},
                   {"unroll": dict(CFG["unroll"], realizations=3)}]:
        assert cfgmod.config_hash(cfgmod.normalize(dict(CFG, **change))) != cfgmod.config_hash(base)


def test_no_pickle(tmp_path, reference):
    d = tmp_path / "s"
    shutil.copytree(reference.path, d)
    name = sorted(os.listdir(d / "chunks"))[0]
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = dict(np.load(d / "chunks" / name))
    arrays["radius"] = np.array([Evil()] * 6, dtype=object)
    with open(d / "chunks" / name, "wb") as f:
        np.savez(f, **arrays)  # a pickled object array, as someone might send
    with pytest.raises(StudyDirError, match="refused|checksum"):
        load_study(d)
    # even with the manifest entry removed (no checksum to catch it), it is refused, never unpickled
    m = json.loads((d / "manifest.json").read_text())
    del m["chunks"][name]
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StudyDirError, match="refused"):
        load_study(d)
    assert not marker.exists()
    # and no module of the package calls pickle
    for root, _, files in os.walk(os.path.join(ROOT, "rinit_fast", "studies")):
        for f in files:
            if f.endswith(".py"):
                src = open(os.path.join(root, f)).read()
                assert "import pickle" not in src and "allow_pickle=True" not in src


def test_tampered_chunk_refused(tmp_path, reference):
    d = tmp_path / "s"
    shutil.copytree(reference.path, d)
    name = sorted(os.listdir(d / "chunks"))[0]
    arrays = dict(np.load(d / "chunks" / name, allow_pickle=False))
    arrays["radius"] = arrays["radius"] + 1.0
    with open(d / "chunks" / name, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(StudyDirError, match="checksum"):
        load_study(d)


def test_config_errors():
    good = dict(CFG)
    with pytest.raises(ConfigError, match="unknown key"):
        cfgmod.normalize(dict(good, sample=3))
    with pytest.raises(ConfigError, match="samples"):
        cfgmod.normalize({k: v for k, v in good.items() if k != "samples"})
    with pytest.raises(ConfigError, match="width 100.*calibrate"):
        cfgmod.normalize(dict(good, widths=[100], schemes=["rescaled_glorot"]))
    with pytest.raises(ConfigError, match="unknown scheme"):
        cfgmod.normalize(dict(good, schemes=["glorot"]))
    with pytest.raises(ConfigError, match="distinct"):
        cfgmod.normalize(dict(good, schemes=["glorot_normal", "xavier_normal"]))
    with pytest.raises(ConfigError, match="increasing"):
        cfgmod.normalize(dict(good, unroll={"horizons": [5, 3]}))
    with pytest.raises(ConfigError, match="nothing to measure"):
        cfgmod.normalize({k: v for k, v in good.items() if k not in ("radius", "norm", "unroll")})
    with pytest.raises(ConfigError, match="runs"):
        cfgmod.normalize(dict(good, unroll={"horizons": [1], "runs": ["relu"]}))
    n = cfgmod.normalize(good)
    assert cfgmod.normalize(n) == n  # normalising is idempotent (config.json round-trips)


def test_example_config_and_toml(tmp_path):
    cfg = cfgmod.load_toml(os.path.join(ROOT, "examples", "study.toml"))
    assert [s["label"] for s in cfg["schemes"]][:3] == ["glorot_normal", "half_glorot", "complex_glorot"]
    assert cfg["unroll"]["horizons"][:2] == [50, 100] and cfg["unroll"]["horizons"][-1] == 2000
    p = tmp_path / "bad.toml"
    p.write_text("samples = [")
    with pytest.raises(ConfigError, match="TOML"):
        cfgmod.load_toml(p)


@pytest.mark.slow
def test_dask_two_workers_bit_identical(tmp_path, reference):
    pytest.importorskip("dask.distributed")
    res = run_study(CFG, tmp_path / "dask", workers=2, chunk=2)
    _same(reference, res)
    # an existing cluster, by its scheduler's address (as --scheduler ADDRESS)
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        _same(reference, run_study(CFG, tmp_path / "sched", scheduler=cluster.scheduler_address, chunk=5))


def test_tanh_refused_for_complex():
    with pytest.raises(ConfigError, match="complex tanh"):
        cfgmod.normalize(dict(CFG, schemes=["complex_glorot"], unroll={"horizons": [1], "runs": ["tanh"]}))


def test_complex_scheme_study(tmp_path):
    cfg = dict(CFG, schemes=["complex_glorot"], samples=3,
               unroll={"horizons": [2, 4], "realizations": 2, "runs": ["powers", "linear"]})
    a = run_study(cfg, tmp_path / "a", chunk=1)
    W = rf.sample("complex_glorot", 9, batch=3, seed=11).astype(np.complex128)
    np.testing.assert_allclose(a.sel("radius", "complex_glorot", 9), np.abs(np.linalg.eigvals(W)).max(-1),
                               rtol=1e-4)
    _same(a, run_study(cfg, tmp_path / "b", chunk=3))
    # complex recurrences run through the real form: ||W^k h0|| with h0 = (Re, Im) from the H0 stream
    h0 = rf.rng.normals(11, rf.rng.Purpose.H0, index=2, count=18, n_sub=2, dtype="float32")[0]
    h = h0[:, :9].astype(np.complex128) + 1j * h0[:, 9:]
    for k in range(4):
        h = h @ W[2].T
        if k + 1 in (2, 4):
            want = np.log(np.linalg.norm(h, axis=-1))
            got = a["powers_log_norm"][0, 1, 2, :, (k + 1) // 2 - 1]
            np.testing.assert_allclose(got, want, rtol=1e-4)
