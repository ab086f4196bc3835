"""The rinit-fast command line end to end at tiny settings: the default job, reproduce --quick (figures
are valid PNGs, tables parse, the summary's numbers are the data's), study (run, resume, refusal),
calibrate."""
import csv
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast import cli
from rinit_fast.studies import load_study
from rinit_fast.studies.reproduce import EXCEED, fmt, study_dir

FIGURES = ["radius_hist.png", "powers.png", "linear_rnn.png", "tanh_tangent.png", "propagation.png"]


def _png_ok(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert w > 100 and h > 100
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.shape[0] == h and img.shape[1] == w and np.ptp(img) > 0  # decodes, not blank


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "rep"
    assert cli.main(["reproduce", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_reproduce_files(report):
    for f in FIGURES:
        _png_ok(report / f)
    for t in ["radius_table.csv", "recurrence_table.csv", "propagation_table.csv", "summary.md", "summary.json"]:
        assert (report / t).stat().st_size > 0


def test_reproduce_tables_match_data(report):
    rows = _csv(report / "radius_table.csv")
    summary = json.loads((report / "summary.json").read_text())
    md = (report / "summary.md").read_text()
    assert len(rows) == len(summary["radius"]) and len(rows) >= 8
    assert any(r["scheme"] == "orthogonal" and float(r["p_gt_1"]) == 0.0 for r in rows)  # rho = 1 exactly
    for key in ("radius", "rescaled", "orthogonal"):
        res = load_study(study_dir(report, key, quick=True))
        for i, label in enumerate(res.labels):
            for j, n in enumerate(res.widths):
                x = res["radius"][i, j]
                row = next(r for r in rows if r["scheme"] == label and int(r["width"]) == n)
                assert float(row["p_gt_1"]) == np.mean(x > EXCEED)
                assert float(row["median"]) == np.quantile(x, 0.5)
                assert float(row["q95"]) == np.quantile(x, 0.95)
                # the summary's table line states the same numbers
                line = (f"| {label} | {n} | {x.size} | {fmt(np.mean(x > EXCEED))} ")
                assert line in md, line
                lo, hi = (float(row["median_ci_low"]), float(row["median_ci_high"]))
                assert f"| {fmt(np.quantile(x, 0.5))} [{fmt(lo)}, {fmt(hi)}] |" in md  # with its 95% interval
    # recurrences: mean log norm at the last horizon, from the study data
    rec = load_study(study_dir(report, "recurrence", quick=True))
    rrows = _csv(report / "recurrence_table.csv")
    for i, label in enumerate(rec.labels):
        row = next(r for r in rrows if r["scheme"] == label)
        want = rec["powers_log_norm"][i, 0].reshape(-1, len(rec.horizons)).mean(axis=0)[-1]
        assert float(row["powers_mean_log_norm_T"]) == pytest.approx(want, rel=1e-12)
        assert fmt(want) in md
        if label == "complex_glorot":
            assert row["tanh_tangent_rate_per_step"] == ""  # the tanh RNN is real only
        else:
            tr = load_study(study_dir(report, "tanh", quick=True))
            a = tr["tanh_tangent_log_norm"][tr.labels.index(label), 0]
            m = a.reshape(-1, len(tr.horizons)).mean(axis=0)
            h = len(m) // 2
            rate = (m[-1] - m[h]) / (tr.horizons[-1] - tr.horizons[h])
            assert float(row["tanh_tangent_rate_per_step"]) == pytest.approx(rate, rel=1e-12)
            assert fmt(rate, 5) in md
    for c in summary["calibration"]:
        assert f"n = {c['width']}: s = {fmt(c['scale'])}" in md
    # depth: the table and the summary state what rf.propagate gives, with their intervals
    from rinit_fast.studies.reproduce import PROP_CASES, settings
    ps = settings(True)["prop"]
    prows = _csv(report / "propagation_table.csv")
    assert len(prows) == len(PROP_CASES)
    for (act, scheme, gain, params), row in zip(PROP_CASES[:2], prows):
        r = rf.propagate(scheme, ps["width"], ps["depth"], activation=act, batch=ps["networks"],
                         samples=ps["inputs"], seed=summary["seed"], gain=gain, **params)
        assert float(row["preact_var_last"]) == float(r.preact_var[-1])
        assert float(row["grad_var_first"]) == float(r.grad_var[0])
        assert float(row["preact_var_last_ci_low"]) < float(r.preact_var[-1]) < float(row["preact_var_last_ci_high"])
        assert f"| {float(r.preact_var[-1]):.4g} [{float(row['preact_var_last_ci_low']):.4g}, " in md


def test_reproduce_resumes(report):
    """A second run reuses the stored studies and writes the same tables."""
    before = (report / "radius_table.csv").read_text()
    assert cli.main(["reproduce", "--quick", "--out", str(report), "--no-progress"]) == 0
    assert (report / "radius_table.csv").read_text() == before


def test_reproduce_with_the_compile_helper(report, tmp_path, monkeypatch):
    """The helper (on by default for the full CPU report) changes when kernels compile, never a result,
    and is stopped when the job ends."""
    from rinit_fast.kernels.cpu import _jit
    from rinit_fast.studies.reproduce import reproduce
    monkeypatch.delenv("RINIT_FAST_PREFETCH", raising=False)
    started = []
    real = _jit.prefetch

    def spy(items, **kw):
        started.append(real(items, **kw))
        return started[-1]
    monkeypatch.setattr(_jit, "prefetch", spy)
    reproduce(str(tmp_path / "rep"), quick=True, progress=False, log=lambda m: None, prefetch=True)
    assert len(started) == 1 and started[0] is not None
    assert started[0].proc.poll() is not None                    # stopped (or finished) with the job
    for t in ("radius_table.csv", "recurrence_table.csv", "propagation_table.csv"):
        assert (tmp_path / "rep" / t).read_text() == (report / t).read_text()


def test_default_job_is_reproduce(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "_reproduce", lambda args: seen.update(vars(args)) or 0)  # parser() reads it
    assert cli.main([]) == 0
    assert seen["command"] == "reproduce" and seen["out"] == "rinit-report" and not seen["quick"]


def test_sample_stats(capsys):
    assert cli.main(["sample-stats"]) == 0
    out = capsys.readouterr().out
    for name in rf.schemes():
        assert f"\n{name} " in out
    assert "KS p" in out and "rinit-fast reproduce" in out


def test_study_command(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text('seed = 3\nsamples = 5\nchunk = 2\nwidths = [7]\nschemes = ["glorot_normal", '
                    '{scheme = "normal", label = "n01", std = 0.1}]\n[radius]\nmethod = "exact"\n')
    out = tmp_path / "study"
    assert cli.main(["study", str(toml), "--out", str(out), "--no-progress"]) == 0
    first = capsys.readouterr().out
    rows = list(csv.DictReader(first.splitlines()))
    assert [r["scheme"] for r in rows] == ["glorot_normal", "n01"]
    res = load_study(out)
    assert float(rows[1]["radius_median"]) == np.quantile(res.sel("radius", "n01", 7), 0.5)
    assert cli.main(["study", str(toml), "--out", str(out), "--no-progress", "--chunk", "3"]) == 0
    assert capsys.readouterr().out == first
    toml.write_text(toml.read_text().replace("seed = 3", "seed = 4"))
    assert cli.main(["study", str(toml), "--out", str(out), "--no-progress"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_calibrate_command(capsys):
    assert cli.main(["calibrate", "20", "0.9", "--samples", "60", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    cal = rf.calibrate(20, 0.9, samples=60, seed=1)
    assert f"scale={cal.scale:.6f}" in out


def test_entry_point_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "rinit-fast")
    if not os.path.exists(exe):
        pytest.skip("the rinit-fast script is not installed next to this interpreter")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for sub in ("sample-stats", "reproduce", "study", "plot", "calibrate"):
        assert sub in r.stdout
