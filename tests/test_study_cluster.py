"""A real cluster: ``rinit-fast study --scheduler tcp://127.0.0.1:PORT`` against a ``dask scheduler`` and two
``dask worker`` processes started here on the loopback address, one of them killed with SIGKILL in the
middle of the study; and the worker warm-up after which tasks compile nothing."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from rinit_fast import cli
from rinit_fast.studies import execute, load_study, run_study, storage
from rinit_fast.studies import config as cfgmod

CFG_TOML = """
name = "cluster"
seed = 21
samples = 16
chunk = 1
widths = [160]
schemes = ["glorot_normal", { scheme = "he_normal", label = "he" }]

[radius]
[unroll]
horizons = [500, 1000]
realizations = 4
runs = ["powers", "linear"]
"""

DEADLINE_S = 240  # the whole test, processes included


def _same(a, b):
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x.view(np.uint8), y.view(np.uint8)), k


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers (no nanny: a killed worker stays dead), each a separate
    `python -m dask ...` process bound to 127.0.0.1 on ports the OS chooses; killed in teardown."""
    pytest.importorskip("distributed")
    procs = {}
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    sfile = tmp_path / "scheduler.json"
    logs = {}

    def start(name, args):
        logs[name] = open(tmp_path / f"{name}.log", "w")
        procs[name] = subprocess.Popen([sys.executable, "-m", "dask"] + args, cwd=tmp_path, env=env,
                                       stdout=logs[name], stderr=subprocess.STDOUT)

    try:
        start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                            "--scheduler-file", str(sfile)])
        t0 = time.monotonic()
        while not sfile.exists():
            assert procs["scheduler"].poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() - t0 < 60, "the scheduler did not start in 60 s"
            time.sleep(0.1)
        for w in ("worker-a", "worker-b"):
            start(w, ["worker", "--scheduler-file", str(sfile), "--host", "127.0.0.1", "--nthreads", "1",
                      "--no-nanny", "--no-dashboard", "--name", w])
        from dask.distributed import Client
        import json
        addr = json.loads(sfile.read_text())["address"]
        assert addr.startswith("tcp://127.0.0.1:")
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=90)
            pids = c.run(os.getpid)
        yield addr, procs, pids
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)  # only the processes this fixture started, by their pid
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        for f in logs.values():
            f.close()


@pytest.mark.slow
def test_sigkill_a_worker_mid_study(tmp_path, monkeypatch, cluster):
    addr, procs, pids = cluster
    t_start = time.monotonic()
    toml = tmp_path / "study.toml"
    toml.write_text(CFG_TOML)
    out = tmp_path / "out"
    writes = []
    real_write = storage.write_chunk

    def counting_write(path, name, arrays, manifest, h):
        writes.append(name)
        return real_write(path, name, arrays, manifest, h)
    monkeypatch.setattr(storage, "write_chunk", counting_write)

    victim = procs["worker-a"]
    assert victim.pid in pids.values()  # the process we kill is a worker of the cluster
    killed = {}

    def killer():  # SIGKILL worker A once a few chunks are stored, while most are still to compute
        while time.monotonic() - t_start < DEADLINE_S:
            if len(writes) >= 3:
                killed["at"] = len(writes)
                os.kill(victim.pid, signal.SIGKILL)
                return
            time.sleep(0.01)
    th = threading.Thread(target=killer, daemon=True)
    th.start()
    rc = cli.main(["study", str(toml), "--out", str(out), "--scheduler", addr, "--no-progress"])
    th.join(timeout=5)
    assert rc == 0
    total = 2 * 16
    assert "at" in killed and killed["at"] < total, "the worker was not killed mid-study"
    assert victim.wait(timeout=30) == -signal.SIGKILL
    # every chunk written exactly once, none half: the directory holds exactly the manifest's chunks,
    # each matching its checksum, and no temporary file is left
    assert len(writes) == total and len(set(writes)) == total
    files = sorted(os.listdir(out / "chunks"))
    manifest = storage.read_manifest(str(out))["chunks"]
    assert files == sorted(writes) == sorted(manifest)
    for f in files:
        assert storage.sha256_file(str(out / "chunks" / f)) == manifest[f]
    # bit-identical to a one-process run
    monkeypatch.setattr(storage, "write_chunk", real_write)
    ref = run_study(cfgmod.load_toml(toml), tmp_path / "ref")
    _same(ref, load_study(out))
    assert (out / "summary.csv").read_text() == (tmp_path / "ref" / "summary.csv").read_text()
    assert time.monotonic() - t_start < DEADLINE_S


WARM_CHECK = r"""
import json, sys
import numba.core.event as ev
from rinit_fast.studies import config, execute
cfg = config.normalize(json.loads(sys.argv[1]))
execute.warm(cfg)
# every Numba compilation, and every load of a compiled kernel from the on-disk cache, holds the compiler
# lock: recording its events catches both (a bare "numba:compile" misses cache loads)
with ev.install_recorder("numba:compiler_lock") as rec:
    for task in execute.plan(cfg, {}):
        execute.compute_chunk(cfg, task)
print(len(rec.buffer))
"""


@pytest.mark.slow
def test_after_warm_up_tasks_compile_nothing():
    """A fresh process runs the warm-up (what every Dask worker does once, before its tasks), then every
    chunk of a study with every measure: Numba neither compiles nor loads a kernel during the chunks (without
    the warm-up, the same check records hundreds of compiler-lock events)."""
    import json
    cfg = {"seed": 2, "samples": 3, "chunk": 1, "widths": [5, 9], "dtype": "float64",
           "schemes": ["glorot_uniform", "orthogonal", {"scheme": "variance_scaling", "label": "vs"}],
           "sweep": {"gain": [1.0, 2.0]}, "radius": {}, "norm": {},
           "unroll": {"horizons": [3, 6], "realizations": 2, "runs": ["powers", "linear", "tanh"]}}
    prop = {"seed": 2, "samples": 2, "widths": [6], "schemes": ["he_normal", "orthogonal"],
            "propagate": {"activations": ["tanh", "relu"], "depth": 5, "inputs": 2, "in_width": 4}}
    for c in (cfg, prop):
        r = subprocess.run([sys.executable, "-P", "-c", WARM_CHECK, json.dumps(c)], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-1] == "0", r.stdout


@pytest.mark.slow
def test_warm_plugin_is_registered(tmp_path):
    """run_study(workers=...) registers the warm-up plugin on the cluster before submitting any chunk."""
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster
    cfg = {"seed": 1, "samples": 2, "chunk": 1, "widths": [6], "schemes": ["glorot_normal"], "radius": {}}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            Client(lc) as client:
        run_study(cfg, tmp_path / "s", scheduler=client)
        plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
        name = f"rinit-fast-warm-{cfgmod.config_hash(cfgmod.normalize(cfg))[:16]}"
        assert all(name in p for p in plugins.values())
    assert execute.plan(cfgmod.normalize(cfg), storage.existing_chunks(str(tmp_path / "s"))) == []
