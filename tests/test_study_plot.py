"""rinit-fast plot / rf.plot_study: on a tiny study of each kind (spectral, recurrences, depth; without
sweeps, along one sweep, over two) it writes the expected figures, as valid PNG, SVG or PDF files."""
import struct
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import rinit_fast as rf
from rinit_fast import cli
from rinit_fast.studies import StudyDirError, StudyError, run_study
from rinit_fast.studies import execute, storage

pytest.importorskip("matplotlib")


def _png_ok(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    w, h = struct.unpack(">II", data[16:24])
    assert w > 100 and h > 100
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.shape[:2] == (h, w) and np.ptp(img) > 0  # decodes, not blank


def _svg_ok(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 50


def _pdf_ok(path):
    data = open(path, "rb").read()
    assert data[:5] == b"%PDF-" and b"%%EOF" in data[-32:] and len(data) > 1000


CHECK = {"png": _png_ok, "svg": _svg_ok, "pdf": _pdf_ok}

SPECTRAL = {"seed": 1, "samples": 12, "widths": [170], "schemes": ["glorot_normal", "orthogonal"],
            "radius": {}, "norm": {}}
UNROLL = {"seed": 1, "samples": 3, "widths": [8], "schemes": ["glorot_normal", "half_glorot"],
          "unroll": {"horizons": [2, 4, 6], "realizations": 2, "runs": ["powers", "tanh"]}}
PROP = {"seed": 1, "samples": 3, "widths": [8], "schemes": ["glorot_normal"],
        "propagate": {"activations": ["tanh", "relu"], "depth": 6, "inputs": 2}}


@pytest.mark.parametrize("cfg, sweep, expect", [
    (SPECTRAL, None, ["radius_histograms", "norm_histograms"]),
    (UNROLL, None, ["unroll_powers_log_norm_n8", "unroll_tanh_log_norm_n8", "unroll_tanh_tangent_log_norm_n8"]),
    (PROP, None, ["propagate_tanh_profiles", "propagate_relu_profiles"]),
    (dict(SPECTRAL, samples=6), {"gain": [0.9, 1.1]}, ["radius_sweep_gain", "norm_sweep_gain"]),
    (UNROLL, {"gain": [0.5, 1.0], "input_scale": [0.5, 2.0]},
     ["unroll_powers_log_norm_heatmap_glorot_normal_n8", "unroll_tanh_tangent_log_norm_heatmap_half_glorot_n8"]),
    (PROP, {"bias_std": [0.0, 0.2, 0.4]}, ["propagate_tanh_sweep_bias_std", "propagate_relu_sweep_bias_std"]),
    (PROP, {"gain": [0.5, 1.0, 2.0], "bias_std": [0.0, 0.3]},
     ["propagate_tanh_heatmap_glorot_normal_n8", "propagate_relu_heatmap_glorot_normal_n8"]),
])
def test_plot_each_kind(tmp_path, cfg, sweep, expect):
    cfg = dict(cfg, sweep=sweep) if sweep else cfg
    if sweep and "input_scale" in sweep:
        cfg = dict(cfg, unroll=dict(cfg["unroll"], runs=["powers", "linear", "tanh"]))
    run_study(cfg, tmp_path / "s")
    files = rf.plot_study(tmp_path / "s")
    names = sorted(p.split("/")[-1] for p in files)
    for e in expect:
        assert e + ".png" in names, (e, names)
    for f in files:
        assert f.startswith(str(tmp_path / "s" / "figures"))
        _png_ok(f)


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_plot_command_formats(tmp_path, capsys, fmt):
    cfg = dict(PROP, sweep={"gain": [0.5, 2.0], "bias_std": [0.0, 0.3]})
    run_study(cfg, tmp_path / "s")
    assert cli.main(["plot", str(tmp_path / "s"), "--out", str(tmp_path / "figs"), "--format", fmt]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2
    for f in printed:
        assert f.endswith("." + fmt) and f.startswith(str(tmp_path / "figs"))
        CHECK[fmt](f)


def test_plot_errors(tmp_path, monkeypatch, capsys):
    run_study(PROP, tmp_path / "s")
    with pytest.raises(ValueError, match="format must be one of png, svg, pdf"):
        rf.plot_study(tmp_path / "s", format="gif")
    assert cli.main(["plot", str(tmp_path / "nothing")]) == 2
    assert "not a study directory" in capsys.readouterr().err
    monkeypatch.setenv(execute.FAIL_ENV, storage.chunk_name("glorot_normal", 8, 0, 3))
    with pytest.raises(StudyError):
        run_study(dict(PROP, seed=2), tmp_path / "p")
    with pytest.raises(StudyDirError, match="incomplete"):
        rf.plot_study(tmp_path / "p")
