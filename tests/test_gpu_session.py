"""bench/gpu_session.sh, the prepared device run of docs/cuda.md, runs end to end where there is no GPU
(its GPU tests skip, its timings say so) and leaves its logs under $OUT: a GPU session then spends its
minutes on the GPU, not on fixing the script."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_session_script_runs_without_a_gpu(tmp_path):
    pytest.importorskip("setuptools")  # the script installs the project offline (--no-build-isolation)
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    p = subprocess.run(["bash", "bench/gpu_session.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    names = {f.name for f in tmp_path.iterdir()}
    assert {"env.txt", "tests_sampling.txt", "tests_kernels.txt", "timings.txt"} <= names
    assert len(names) <= 8                                   # what a device run can bring back
    env_txt = (tmp_path / "env.txt").read_text()
    assert "numba " in env_txt and "rinit_fast from" in env_txt
    assert str(ROOT / "rinit_fast") not in env_txt           # the installed package, not the source tree
    for name in ("tests_sampling.txt", "tests_kernels.txt"):
        last = (tmp_path / name).read_text().strip().splitlines()[-1]   # pytest's summary line
        assert ("passed" in last or "skipped" in last) and "failed" not in last and "error" not in last, last
