"""Running a study: chunk planning, the work of one chunk, local and Dask execution, and loading.

A chunk is a contiguous range ``start..stop-1`` of matrix indices of one (scheme, width) cell.  Matrix
``i`` of a cell is matrix ``i`` of the stream for the study's seed; its spectral start vectors, unroll
inputs, initial states and tangent vectors are indexed by ``i`` too (the ``start=`` of the engine's
functions), and the kernels treat every matrix on its own.  So each stored number depends on the
configuration and the matrix index only: never on the chunking, the number of workers, or the order in
which chunks ran, and a resumed study ends bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import inspect
import math
import os
import sys

import numpy as np

from ..calibrate import _host
from . import config as _config
from . import storage

FAIL_ENV = "RINIT_FAST_STUDY_FAIL"
"""Test hook: a comma-separated list of chunk file names whose computation raises (to test resume)."""


class StudyError(RuntimeError):
    """Some chunks failed; the others are stored, and rerunning the study resumes it."""


# --- the engine, through its public contract --------------------------------------------------------

def _accepts(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def spectral(W, what, spec, seed, start):
    """(value float64 (k,), converged bool (k,), iterations int64 (k,)) of the spectral radius or norm."""
    if what == "radius":
        from ..calibrate import radii
        return radii(W, seed=seed, start=start, method=spec["method"], tol=spec["tol"],
                     max_iter=spec["max_iter"])
    from ..spectral import spectral_norm
    kw = {"method": spec["method"], "seed": seed, "start": start}
    for k in ("tol", "max_iter"):
        if spec[k] is not None:
            kw[k] = spec[k]
    r = spectral_norm(W, **kw)
    val = _host(r.norm, np.float64)
    conv = _host(r.converged, bool)
    bad = np.flatnonzero(~conv)
    if spec["method"] != "exact" and bad.size:
        ex = spectral_norm(W[bad.tolist()], method="exact")
        val[bad] = _host(ex.norm, np.float64)
    return val, conv, _host(r.iterations, np.int64)


def unroll_runs(W, spec, seed, start):
    """{array name: float64 (k, R, H)} of the recurrences of ``spec`` at its horizons."""
    from ..unroll import unroll
    if np.iscomplexobj(W):
        W = realify(W)
    hs = spec["horizons"]
    every = math.gcd(*hs)
    idx = np.array([t // every - 1 for t in hs])
    steps = hs[-1]
    common = {"realizations": spec["realizations"], "record_every": every, "seed": seed,
              "start": start}
    out = {}
    for run in spec["runs"]:
        if run == "powers":
            r = unroll(W, steps, inputs=None, **common)
        elif run == "linear":
            r = unroll(W, steps, inputs="gaussian", input_scale=spec["input_scale"], **common)
        else:
            r = unroll(W, steps, inputs="gaussian", input_scale=spec["input_scale"], nonlinearity="tanh",
                       tangent=spec["tangent"], **common)
            if spec["tangent"]:
                out["tanh_tangent_log_norm"] = _host(r.tangent_log_norm, np.float64)[..., idx]
        out[f"{run}_log_norm"] = _host(r.log_norm, np.float64)[..., idx]
    return out


def realify(W):
    """The real (..., 2n, 2n) form [[Re W, -Im W], [Im W, Re W]] of complex matrices: it acts on
    (Re h, Im h) as W acts on h, so norms, powers and recurrences are the same.  rf.unroll is real; a
    complex recurrence runs through this form, its Gaussian inputs and start vectors then being complex
    with independent real and imaginary parts (each N(0, input_scale²))."""
    from .._backend import array_module
    xp = array_module(W)
    A, B = W.real, W.imag
    top = xp.concatenate([A, -B], axis=-1)
    bottom = xp.concatenate([B, A], axis=-1)
    return xp.ascontiguousarray(xp.concatenate([top, bottom], axis=-2))


def expected_arrays(cfg, k):
    """{name: (shape, dtype)} of a chunk of k matrices."""
    out = {}
    for what in ("radius", "norm"):
        if cfg[what]:
            out[what] = ((k,), np.dtype(np.float64))
            out[f"{what}_converged"] = ((k,), np.dtype(bool))
            out[f"{what}_iterations"] = ((k,), np.dtype(np.int64))
    u = cfg["unroll"]
    if u:
        shp = (k, u["realizations"], len(u["horizons"]))
        for run in u["runs"]:
            out[f"{run}_log_norm"] = (shp, np.dtype(np.float64))
        if "tanh" in u["runs"] and u["tangent"]:
            out["tanh_tangent_log_norm"] = (shp, np.dtype(np.float64))
    return out


def compute_chunk(cfg, task):
    """The arrays of one chunk: ``task`` = {"name", "scheme" (index), "width", "start", "stop"}.

    A module-level function of plain-data arguments, so Dask workers can run it."""
    from .. import sampling
    fail = os.environ.get(FAIL_ENV, "")
    if task["name"] in [s.strip() for s in fail.split(",") if s.strip()]:
        raise RuntimeError(f"injected failure in chunk {task['name']} ({FAIL_ENV})")
    s = cfg["schemes"][task["scheme"]]
    n, a, b = task["width"], task["start"], task["stop"]
    seed = cfg["seed"]
    W = sampling.sample(s["scheme"], n, batch=b - a, seed=seed, start=a, dtype=cfg["dtype"],
                        backend=cfg["backend"], gain=s["gain"], **s["params"])
    out = {}
    for what in ("radius", "norm"):
        if cfg[what]:
            v, c, it = spectral(W, what, cfg[what], seed, a)
            out[what], out[f"{what}_converged"], out[f"{what}_iterations"] = v, c, it
    if cfg["unroll"]:
        out.update(unroll_runs(W, cfg["unroll"], seed, a))
    host = {k: np.ascontiguousarray(_host(v)) for k, v in out.items()}
    _check_arrays(host, cfg, b - a, task["name"])
    return host


def _check_arrays(arrays, cfg, k, where):
    exp = expected_arrays(cfg, k)
    if set(arrays) != set(exp):
        raise storage.StudyDirError(f"{where}: arrays {sorted(arrays)} do not match the configuration's "
                                    f"{sorted(exp)}")
    for name, (shape, dt) in exp.items():
        a = arrays[name]
        if a.shape != shape or a.dtype != dt:
            raise storage.StudyDirError(f"{where}: array {name!r} is {a.dtype}{a.shape}, expected "
                                        f"{dt}{shape}")


# --- planning -----------------------------------------------------------------------------------------

def plan(cfg, present, chunk=None):
    """The chunks still to compute, given the chunk files ``present`` ({name: (label, n, a, b)}).

    Chunks already on disk may come from a run with another chunk size: only the ranges that no stored
    chunk covers are planned, split into pieces of ``chunk`` matrices.  Refuses stored chunks that do
    not belong to this configuration or overlap."""
    chunk = cfg["chunk"] if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    labels = {s["label"]: i for i, s in enumerate(cfg["schemes"])}
    covered = {}
    for name, (label, n, a, b) in present.items():
        if label not in labels or n not in cfg["widths"] or not 0 <= a < b <= cfg["samples"]:
            raise storage.StudyDirError(f"chunk {name} does not belong to this study's configuration")
        covered.setdefault((label, n), []).append((a, b, name))
    tasks = []
    for s_i, s in enumerate(cfg["schemes"]):
        for n in cfg["widths"]:
            pos = 0
            gaps = []
            for a, b, name in sorted(covered.get((s["label"], n), [])):
                if a < pos:
                    raise storage.StudyDirError(f"chunk {name} overlaps another chunk of the same cell")
                if a > pos:
                    gaps.append((pos, a))
                pos = b
            if pos < cfg["samples"]:
                gaps.append((pos, cfg["samples"]))
            for g0, g1 in gaps:
                for a in range(g0, g1, chunk):
                    b = min(g1, a + chunk)
                    tasks.append({"name": storage.chunk_name(s["label"], n, a, b), "scheme": s_i,
                                  "width": n, "start": a, "stop": b})
    return tasks


# --- running --------------------------------------------------------------------------------------------

def run_study(config, out, workers=None, scheduler=None, *, chunk=None, progress=False):
    """Run (or resume) a study and return its :class:`StudyResults`.

    Parameters
    ----------
    config : path to a TOML file, or a dict (the TOML's content)
        The grid and the measures: docs/studies.md.
    out : path
        The study directory: created, or resumed when it holds the same configuration; a directory
        holding another configuration's results is refused (``StudyDirError``).
    workers : int, optional
        Start a local Dask cluster of that many single-threaded worker processes.
    scheduler : str or dask.distributed.Client, optional
        The address of an existing Dask scheduler (or a connected Client) to run the chunks on.
    chunk : int, optional
        Matrices per chunk (overrides the configuration's ``chunk``; does not change any result).
    progress : bool
        Show a progress bar (tqdm, if installed) over the matrices.

    Results are bit-identical whatever ``chunk``, ``workers`` or ``scheduler``.  When a chunk fails the
    others are still stored and :class:`StudyError` is raised; rerunning resumes.
    """
    if isinstance(config, (str, os.PathLike)):
        cfg = _config.load_toml(config)
    else:
        cfg = _config.normalize(config)
    if chunk is not None:
        cfg["chunk"] = _config._int(chunk, "chunk", 1)
    if workers is not None and scheduler is not None:
        raise ValueError("give workers (a local Dask cluster) or scheduler (an existing one), not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out = os.fspath(out)
    if cfg["backend"] == "cuda":
        from .. import _backend
        _backend.check("cuda")
    h = storage.prepare(out, cfg)
    present = storage.existing_chunks(out)
    manifest = storage.read_manifest(out)
    for name in present:  # a chunk written just before a crash may be missing from the manifest
        if name not in manifest:
            _check_arrays(storage.load_chunk(os.path.join(out, storage.CHUNKS, name)), cfg,
                          present[name][3] - present[name][2], name)
            manifest[name] = storage.sha256_file(os.path.join(out, storage.CHUNKS, name))
    tasks = plan(cfg, present)
    failures = []
    bar = _bar(sum(t["stop"] - t["start"] for t in tasks), f"study {cfg['name']}", progress)

    def done(task, arrays):
        storage.write_chunk(out, task["name"], arrays, manifest, h)
        if bar is not None:
            bar.update(task["stop"] - task["start"])

    try:
        if tasks and (workers is not None or scheduler is not None):
            _run_dask(cfg, tasks, done, failures, workers, scheduler)
        else:
            for task in tasks:
                try:
                    arrays = compute_chunk(cfg, task)
                except Exception as exc:
                    failures.append((task["name"], exc))
                    break  # sequential: stop at the first failure (a rerun resumes from here)
                done(task, arrays)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        name, exc = failures[0]
        raise StudyError(f"{len(failures)} chunk(s) failed (first: {name}: {type(exc).__name__}: {exc}); "
                         f"the completed chunks are stored in {out}: rerun the same command to resume") \
            from exc
    res = load_study(out)
    storage._atomic_write(os.path.join(out, storage.SUMMARY),
                          lambda f: f.write(res.table_csv().encode()))
    return res


def _run_dask(cfg, tasks, done, failures, workers, scheduler):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise RuntimeError("workers= / scheduler= (--workers / --scheduler) need Dask: pip install "
                           "\"rinit_fast[dask]\"") from exc
    cluster = None
    own_client = True
    if scheduler is not None and not isinstance(scheduler, str):
        client, own_client = scheduler, False
    elif scheduler is not None:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futs = {client.submit(compute_chunk, cfg, t, pure=False): t for t in tasks}
        for fut in as_completed(futs):
            task = futs[fut]
            try:
                arrays = fut.result()
            except Exception as exc:
                failures.append((task["name"], exc))
                continue
            done(task, arrays)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _bar(total, desc, enabled):
    if not enabled or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="matrix", file=sys.stderr)


# --- loading ---------------------------------------------------------------------------------------------

class StudyResults:
    """A study's results as labelled arrays.

    ``res[name]`` is an array with dimensions ``res.dims[name]``: ``("scheme", "width", "sample")`` for
    ``radius``, ``radius_converged``, ``radius_iterations``, ``norm``...; ``("scheme", "width",
    "sample", "realization", "horizon")`` for ``powers_log_norm``, ``linear_log_norm``,
    ``tanh_log_norm``, ``tanh_tangent_log_norm`` (natural log of the 2-norm at each horizon).
    Coordinates: ``res.labels`` (scheme labels), ``res.widths``, ``res.horizons``.  ``res.sel(name,
    scheme=..., width=...)`` picks a cell; ``res.table()`` gives one summary row per cell.
    """

    def __init__(self, path, doc, data, done):
        self.path = path
        self.hash = doc["hash"]
        self.config = doc["config"]
        self.labels = [s["label"] for s in self.config["schemes"]]
        self.widths = list(self.config["widths"])
        self.samples = self.config["samples"]
        u = self.config["unroll"]
        self.horizons = list(u["horizons"]) if u else []
        self.data = data
        self.done = done
        """bool (scheme, width, sample): which matrices are stored (all, unless loaded partial)."""
        self.complete = bool(done.all())
        self.dims = {k: ("scheme", "width", "sample") + (("realization", "horizon") if v.ndim == 5 else ())
                     for k, v in data.items()}

    def __getitem__(self, name):
        return self.data[name]

    def __contains__(self, name):
        return name in self.data

    def keys(self):
        return self.data.keys()

    def __repr__(self):
        return (f"StudyResults({self.path!r}, schemes={self.labels}, widths={self.widths}, "
                f"samples={self.samples}, arrays={sorted(self.data)}, complete={self.complete})")

    def sel(self, name, scheme=None, width=None):
        """``res[name]`` restricted to one scheme label and/or one width."""
        a = self.data[name]
        if scheme is not None:
            a = a[self.labels.index(scheme)]
        if width is not None:
            ax = 0 if scheme is not None else 1
            a = np.take(a, self.widths.index(width), axis=ax)
        return a

    def table(self):
        """One row (a dict) per (scheme, width) cell: the spectral radius and norm laws (P(> 1), mean,
        median, quantiles, unconverged count) and the mean log norm at the last horizon of each run."""
        rows = []
        for i, label in enumerate(self.labels):
            s = self.config["schemes"][i]
            for j, n in enumerate(self.widths):
                m = self.done[i, j]
                row = {"scheme": label, "family": s["scheme"], "width": n, "samples": int(m.sum())}
                for what in ("radius", "norm"):
                    if what in self.data and m.any():
                        x = self.data[what][i, j][m]
                        q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
                        row.update({f"{what}_p_gt_1": float(np.mean(x > 1.0)), f"{what}_mean": float(x.mean()),
                                    f"{what}_q05": q[0], f"{what}_q25": q[1], f"{what}_median": q[2],
                                    f"{what}_q75": q[3], f"{what}_q95": q[4],
                                    f"{what}_unconverged": int((~self.data[f"{what}_converged"][i, j][m]).sum())})
                for run in ("powers", "linear", "tanh", "tanh_tangent"):
                    key = f"{run}_log_norm"
                    if key in self.data and m.any():
                        x = self.data[key][i, j][m][..., -1]
                        row[f"{run}_mean_log_norm_T{self.horizons[-1]}"] = float(np.mean(x))
                rows.append({k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()})
        return rows

    def table_csv(self):
        return storage.csv_text(self.table())


def load_study(path, *, partial=False):
    """The results of the study directory ``path`` as :class:`StudyResults` (labelled arrays).

    Plain data only: config.json through ``json``, chunks through ``np.load(allow_pickle=False)``; a
    chunk whose checksum differs from the manifest, whose arrays do not match the configuration, or
    that holds object arrays is refused.  An incomplete study raises unless ``partial=True`` (missing
    matrices are then NaN, or False/0 for the flags and counts, and ``res.done`` tells which exist).
    """
    path = os.fspath(path)
    doc = storage.read_config(path)
    cfg = _config.normalize(doc["config"])
    S, Wd, N = len(cfg["schemes"]), len(cfg["widths"]), cfg["samples"]
    exp = expected_arrays(cfg, N)
    data = {}
    for name, (shape, dt) in exp.items():
        full = (S, Wd) + shape
        data[name] = (np.full(full, np.nan, dt) if dt.kind == "f" else np.zeros(full, dt))
    done = np.zeros((S, Wd, N), bool)
    labels = {s["label"]: i for i, s in enumerate(cfg["schemes"])}
    manifest = storage.read_manifest(path)
    for name, (label, n, a, b) in storage.existing_chunks(path).items():
        if label not in labels or n not in cfg["widths"] or not 0 <= a < b <= N:
            raise storage.StudyDirError(f"{path}: chunk {name} does not belong to this study")
        fpath = os.path.join(path, storage.CHUNKS, name)
        if name in manifest and storage.sha256_file(fpath) != manifest[name]:
            raise storage.StudyDirError(f"{fpath}: checksum differs from {storage.MANIFEST} (the file was "
                                        f"changed after it was written)")
        arrays = storage.load_chunk(fpath)
        _check_arrays(arrays, cfg, b - a, fpath)
        i, j = labels[label], cfg["widths"].index(n)
        if done[i, j, a:b].any():
            raise storage.StudyDirError(f"{path}: chunk {name} overlaps another chunk")
        done[i, j, a:b] = True
        for k, v in arrays.items():
            data[k][i, j, a:b] = v
    if not partial and not done.all():
        raise storage.StudyDirError(f"{path}: the study is incomplete ({int(done.sum())} of {done.size} "
                                    f"matrices stored); rerun it to resume, or load_study(..., "
                                    f"partial=True)")
    return StudyResults(path, doc, data, done)
