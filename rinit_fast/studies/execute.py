"""Running a study: chunk planning, the work of one chunk, local and Dask execution, and loading.

A chunk is a contiguous range ``start..stop-1`` of sample indices of one cell (a scheme, a width and one
value of every sweep).  Matrix ``i`` of a cell is matrix ``i`` of the stream for the study's seed; its
spectral start vectors, unroll inputs, initial states and tangent vectors are indexed by ``i`` too (the
``start=`` of the engine's functions), and network ``i`` of [propagate] is network ``i`` of
``rf.propagate``'s streams; the kernels treat every sample on its own.  So each stored number depends on
the configuration, the cell and the sample index only: never on the chunking, the number of workers, or
the order in which chunks ran, and a resumed study ends bit-identical to an uninterrupted one.  Every
value of a sweep reads the same stream positions (common random numbers).
"""
from __future__ import annotations

import copy
import math
import os
import sys
import threading

import numpy as np

from ..calibrate import _host
from . import config as _config
from . import storage

FAIL_ENV = "RINIT_FAST_STUDY_FAIL"
"""Test hook: a comma-separated list of chunk file names whose computation raises (to test resume)."""


class StudyError(RuntimeError):
    """Some chunks failed; the others are stored, and rerunning the study resumes it."""


# --- the engine, through its public contract --------------------------------------------------------

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


# --- the arrays of a study, from its measures ------------------------------------------------------------

def _active(cfg):
    from .measures import MEASURES
    return [(MEASURES[m], cfg[m]) for m in MEASURES if cfg.get(m)]


def sample_arrays(cfg):
    """{name: (dims after "sample", dtype)} of every array a sample of a cell stores."""
    out = {}
    for meas, spec in _active(cfg):
        out.update(meas.arrays(spec))
    return out


def derived_arrays(cfg):
    """{name: (dims after the cell's, dtype)} of the per-cell arrays of derived.npz."""
    out = {}
    for meas, spec in _active(cfg):
        out.update(meas.derived_arrays(spec))
    return out


def measure_coords(cfg):
    """{dim: coordinate values} of the measures' own dimensions (realization, horizon, activation, layer)."""
    out = {}
    for meas, spec in _active(cfg):
        for d, v in meas.dims(spec).items():
            if d in out and out[d] != v:
                raise _config.ConfigError(f"dimension {d!r} has different coordinates in two measures")
            out[d] = v
    return out


def expected_arrays(cfg, k):
    """{name: (shape, dtype)} of a chunk of k samples."""
    coords = measure_coords(cfg)
    return {name: ((k,) + tuple(len(coords[d]) for d in dims), dt)
            for name, (dims, dt) in sample_arrays(cfg).items()}


_REUSE = threading.local()
"""``_REUSE.last`` (inside :class:`_reuse_samples`): (key, array) of the previous chunk's sample batch on this
thread, whose memory the next chunk of the same cell and size draws into."""


class _reuse_samples:
    """Within this context, consecutive chunks of one cell on this thread draw their matrices into one
    buffer (``rf.sample(out=...)``) instead of a fresh array each.  A fresh batch of tens of megabytes is
    fresh pages, which the kernel zeroes on first touch: measured 12% of the time of a chunk of 50
    complex 500 x 500 matrices and their spectral radii (bench/NOTES.md, "The main job's chunks").  The
    buffer lives as long as the context (``run_study``'s sequential loop): measures use ``work.W``
    within their chunk and return new arrays, never a view of it."""

    def __enter__(self):
        self.outer = getattr(_REUSE, "last", None)
        _REUSE.last = (None, None)
        return self

    def __exit__(self, *exc):
        _REUSE.last = self.outer
        return False


class Work:
    """What a measure computes on: samples ``start .. stop-1`` of ``cell``; ``W`` samples the cell's
    matrices (once, shared by every measure that uses them)."""

    def __init__(self, cfg, cell, start, stop):
        self.cfg, self.cell, self.start, self.stop = cfg, cell, start, stop
        self.seed, self.backend = cfg["seed"], cfg["backend"]
        self._W = None

    @property
    def W(self):
        if self._W is None:
            from .. import sampling
            c = self.cell
            kw = dict(batch=self.stop - self.start, seed=self.seed, start=self.start, dtype=self.cfg["dtype"],
                      backend=self.backend, gain=c.gain, **c.params)
            last = getattr(_REUSE, "last", None)
            if last is None or self.backend != "cpu":
                self._W = sampling.sample(c.entry["scheme"], c.width, **kw)
                return self._W
            # the same scheme, parameters, width, batch and dtype: the same shape and dtype of result
            key = (c.entry["scheme"], repr(sorted(c.params.items())), c.width, kw["batch"], kw["dtype"])
            if last[0] == key:
                self._W = sampling.sample(c.entry["scheme"], c.width, out=last[1], **kw)
            else:
                _REUSE.last = (None, None)           # let the previous buffer go before drawing a new one
                self._W = sampling.sample(c.entry["scheme"], c.width, **kw)
                _REUSE.last = (key, self._W)
        return self._W


def cell_of(cfg, index):
    """The :class:`~config.Cell` at grid index (scheme index, width index, *sweep indices)."""
    index = tuple(int(i) for i in index)
    values = {s["name"]: s["values"][i] for s, i in zip(cfg["sweep"], index[2:])}
    return _config.Cell(index, cfg["schemes"][index[0]], cfg["widths"][index[1]], values)


def compute_chunk(cfg, task):
    """The arrays of one chunk: ``task`` = {"name", "index" (the cell's grid index), "start", "stop"}.

    A module-level function of plain-data arguments, so Dask workers can run it."""
    fail = os.environ.get(FAIL_ENV, "")
    if task["name"] in [s.strip() for s in fail.split(",") if s.strip()]:
        raise RuntimeError(f"injected failure in chunk {task['name']} ({FAIL_ENV})")
    work = Work(cfg, cell_of(cfg, task["index"]), task["start"], task["stop"])
    out = {}
    for meas, spec in _active(cfg):
        out.update(meas.compute(spec, work))
    host = {k: np.ascontiguousarray(_host(v)) for k, v in out.items()}
    _check_arrays(host, cfg, task["stop"] - task["start"], task["name"])
    return host


def compute_derived(cfg):
    """{name: array (*grid shape, *dims)} of every measure's per-cell derived arrays (None if none)."""
    spec_of = derived_arrays(cfg)
    if not spec_of:
        return None
    coords = measure_coords(cfg)
    grid = _config.grid_shape(cfg)
    out = {name: np.full(grid + tuple(len(coords[d]) for d in dims), np.nan, dt)
           for name, (dims, dt) in spec_of.items()}
    for cell in _config.cells(cfg):
        for meas, spec in _active(cfg):
            for name, a in meas.derived(spec, cell).items():
                out[name][cell.index] = a
    return out


def warm(cfg):
    """Compile (or load from the on-disk Numba cache) every kernel the study's chunks call, by running
    one sample of every scheme at the study's smallest width with the shortest horizon and depth 2:
    the kernels' signatures depend on dtypes and array ranks only, never on sizes, so the chunks that
    follow compile nothing.  Serialised per machine by a file lock, so that worker processes sharing a
    Numba cache compile once and the others load the cache (docs/studies.md, "Dask")."""
    tiny = copy.deepcopy(cfg)
    tiny["samples"] = 1
    tiny["widths"] = [min(cfg["widths"])]
    tiny["sweep"] = [{"name": s["name"], "values": s["values"][:1]} for s in cfg["sweep"]]
    if tiny.get("unroll"):
        every = math.gcd(*tiny["unroll"]["horizons"])
        tiny["unroll"].update(horizons=[every], realizations=1)
    if tiny.get("propagate"):
        tiny["propagate"].update(depth=min(2, tiny["propagate"]["depth"]), inputs=1)
    if tiny.get("lyapunov"):
        tiny["lyapunov"].update(steps=2, warmup=1, realizations=1)
    with _machine_lock():
        for i in range(len(tiny["schemes"])):
            index = (i, 0) + (0,) * len(tiny["sweep"])
            compute_chunk(tiny, {"name": "warm-up", "index": index, "start": 0, "stop": 1})


class _machine_lock:
    """An exclusive lock shared by the processes of this machine and user (a file lock in the temporary
    directory); a no-op where ``fcntl`` does not exist."""

    def __enter__(self):
        import tempfile
        try:
            import fcntl
        except ImportError:  # pragma: no cover (Windows)
            self.f = None
            return self
        path = os.path.join(tempfile.gettempdir(), f"rinit-fast-warm-{os.getuid()}.lock")
        self.f = open(path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            import fcntl
            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()
        return False


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

def _cell_keys(cfg):
    """{(label, width, point): grid index} of every cell."""
    return {(c.label, c.width, c.index[2:]): c.index for c in _config.cells(cfg)}


def plan(cfg, present, chunk=None):
    """The chunks still to compute, given the chunk files ``present`` ({name: (label, n, point, a, b)}).

    Chunks already on disk may come from a run with another chunk size: only the ranges that no stored
    chunk covers are planned, split into pieces of ``chunk`` samples.  Refuses stored chunks that do
    not belong to this configuration or overlap."""
    chunk = cfg["chunk"] if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    keys = _cell_keys(cfg)
    covered = {}
    for name, (label, n, point, a, b) in present.items():
        if (label, n, point) not in keys or not 0 <= a < b <= cfg["samples"]:
            raise storage.StudyDirError(f"chunk {name} does not belong to this study's configuration")
        covered.setdefault((label, n, point), []).append((a, b, name))
    tasks = []
    for key, index in keys.items():
        pos = 0
        gaps = []
        for a, b, name in sorted(covered.get(key, [])):
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
                tasks.append({"name": storage.chunk_name(key[0], key[1], a, b, key[2]), "index": list(index),
                              "start": a, "stop": b})
    return tasks


# --- running --------------------------------------------------------------------------------------------

def run_study(config, out, workers=None, scheduler=None, *, chunk=None, progress=False, load=True):
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
        Samples per chunk (overrides the configuration's ``chunk``; does not change any result).
    progress : bool
        Show a progress bar (tqdm, if installed) over the samples.
    load : bool
        Return the results loaded in memory (a :class:`StudyResults`); ``load=False`` returns None (for a
        study larger than memory: open it with ``rf.open_study``).  summary.csv is written either way,
        one cell at a time.

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
    for name, info in present.items():  # a chunk written just before a crash may be missing from the manifest
        if name not in manifest["chunks"]:
            _check_arrays(storage.load_chunk(os.path.join(out, storage.CHUNKS, name)), cfg, info[4] - info[3],
                          name)
            manifest["chunks"][name] = storage.sha256_file(os.path.join(out, storage.CHUNKS, name))
    if derived_arrays(cfg) and storage.DERIVED not in manifest["derived"]:
        storage.write_derived(out, compute_derived(cfg), manifest, h)
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
            with _reuse_samples():
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
    text = storage.csv_text(summary_rows(out, cfg))
    storage._atomic_write(os.path.join(out, storage.SUMMARY), lambda f: f.write(text.encode()))
    return load_study(out) if load else None


def _warm_plugin(cfg):
    """A Dask WorkerPlugin that runs :func:`warm` once in every worker process, before its tasks (also in
    workers that join later), in a thread so that the worker keeps answering the scheduler."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class WarmKernels(WorkerPlugin):
        idempotent = True

        def __init__(self, cfg):
            self.cfg = cfg
            self.name = f"rinit-fast-warm-{_config.config_hash(cfg)[:16]}"

        async def setup(self, worker):
            import asyncio
            await asyncio.get_running_loop().run_in_executor(None, warm, self.cfg)

    return WarmKernels(cfg)


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
        client.register_plugin(_warm_plugin(cfg))
        futs = {client.submit(compute_chunk, cfg, t, pure=False): t for t in tasks}
        for fut in as_completed(futs):
            task = futs[fut]
            try:
                arrays = fut.result()
            except Exception as exc:
                failures.append((task["name"], exc))
                continue
            done(task, arrays)
            fut.release()
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
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr)


# --- loading ---------------------------------------------------------------------------------------------

class StudyResults:
    """A study's results as labelled arrays (in memory; ``rf.open_study`` opens them lazily as xarray).

    ``res[name]`` is an array with dimensions ``res.dims[name]``: ``("scheme", "width", *sweeps,
    "sample")`` then the measure's own dimensions: none for ``radius``, ``radius_converged``,
    ``radius_iterations``, ``norm``...; ``("realization", "horizon")`` for ``powers_log_norm``,
    ``linear_log_norm``, ``tanh_log_norm``, ``tanh_tangent_log_norm`` (natural log of the 2-norm at each
    horizon); ``("activation", "layer")`` for ``propagate_<statistic>`` (one row per network).  The
    mean field beside [propagate] is ``res["meanfield_<field>"]`` with dims ``("scheme", "width",
    *sweeps, "activation", "layer")``.  Coordinates: ``res.labels`` (scheme labels), ``res.widths``,
    ``res.sweeps`` ({name: values}), ``res.coords`` (every dimension's).  ``res.sel(name, scheme=...,
    width=...)`` picks a cell; ``res.table()`` gives one summary row per cell (with Monte Carlo
    intervals); ``res.to_xarray()`` an ``xarray.Dataset``.
    """

    def __init__(self, path, doc, data, done, derived=None):
        self.path = path
        self.hash = doc["hash"]
        self.config = _config.normalize(doc["config"])
        cfg = self.config
        self.labels = [s["label"] for s in cfg["schemes"]]
        self.widths = list(cfg["widths"])
        self.samples = cfg["samples"]
        self.sweeps = {s["name"]: list(s["values"]) for s in cfg["sweep"]}
        mc = measure_coords(cfg)
        self.horizons = list(mc.get("horizon", []))
        self.coords = {"scheme": self.labels, "width": self.widths, **self.sweeps,
                       "sample": list(range(self.samples)), **mc}
        self.data = dict(data)
        self.data.update(derived or {})
        self.done = done
        """bool (scheme, width, *sweeps, sample): which samples are stored (all, unless loaded partial)."""
        self.complete = bool(done.all())
        lead = ("scheme", "width") + tuple(self.sweeps)
        self.dims = {k: lead + ("sample",) + d for k, (d, _) in sample_arrays(cfg).items()}
        self.dims.update({k: lead + d for k, (d, _) in derived_arrays(cfg).items()})

    def __getitem__(self, name):
        return self.data[name]

    def __contains__(self, name):
        return name in self.data

    def keys(self):
        return self.data.keys()

    def __repr__(self):
        return (f"StudyResults({self.path!r}, schemes={self.labels}, widths={self.widths}, "
                f"sweeps={ {k: len(v) for k, v in self.sweeps.items()} }, samples={self.samples}, "
                f"arrays={sorted(self.data)}, complete={self.complete})")

    def sel(self, name, scheme=None, width=None, **sweeps):
        """``res[name]`` restricted to one scheme label, one width and/or one value of sweeps."""
        a = self.data[name]
        idx = [slice(None)] * a.ndim
        if scheme is not None:
            idx[0] = self.labels.index(scheme)
        if width is not None:
            idx[1] = self.widths.index(width)
        for k, v in sweeps.items():
            if k not in self.sweeps:
                raise KeyError(f"{k!r} is not a sweep of this study (sweeps: {list(self.sweeps)})")
            idx[2 + list(self.sweeps).index(k)] = self.sweeps[k].index(v)
        return a[tuple(idx)]

    def cells(self):
        return _config.cells(self.config)

    def table(self):
        """One row (a dict) per cell (and per activation with [propagate]): the cell's coordinates, then
        every measure's statistics, each with its 95% Monte Carlo interval (``*_ci_low``,
        ``*_ci_high``; uncertainty.py says how each is computed)."""
        rows = []
        sample_names = set(sample_arrays(self.config))
        for cell in self.cells():
            m = self.done[cell.index]

            def get(name, cell=cell, m=m):
                a = self.data[name][cell.index]
                return a[m] if name in sample_names else a
            rows += cell_rows(self.config, cell, get, int(m.sum()))
        return rows

    def table_csv(self):
        return storage.csv_text(self.table())

    def to_xarray(self, lazy=False):
        """The results as an ``xarray.Dataset`` (labelled.py): from the arrays in memory, or with
        ``lazy=True`` opened again from the directory, backed by dask arrays (``rf.open_study``)."""
        from . import labelled
        if lazy:
            return labelled.open_study(self.path, partial=not self.complete)
        return labelled.dataset(self.config, self.data, self.done, self.hash, self.path)


def cell_rows(cfg, cell, get, k):
    """The summary rows of one cell, given ``get(name)``: its array (stored samples only) and ``k`` samples."""
    base = {"scheme": cell.label, "family": cell.entry["scheme"], "width": cell.width, **cell.values,
            "samples": k}
    parts = [({}, {})]
    if k:
        for meas, spec in _active(cfg):
            got = meas.summarize(spec, get, cell)
            if got:
                parts = [({**k0, **k1}, {**v0, **v1}) for k0, v0 in parts for k1, v1 in got]
    return [{k2: (float(v) if isinstance(v, np.floating) else v) for k2, v in {**base, **keys, **vals}.items()}
            for keys, vals in parts]


class _CellArray:
    """One stored array of one cell, read chunk by chunk: indexing is recorded (every index keeps axis 0,
    the samples) and applied to each chunk's array as it is loaded, so ``np.asarray(a[:, 3][..., -1])``
    holds one chunk's array and the small result, whatever the size of the cell."""

    def __init__(self, parts, name, index=()):
        self.parts, self.name, self.index = parts, name, index

    def __getitem__(self, idx):
        return _CellArray(self.parts, self.name, self.index + (idx,))

    def __array__(self, dtype=None, copy=None):
        out = []
        for _, _, fpath in self.parts:
            a = storage.load_member(fpath, self.name)
            for idx in self.index:
                a = a[idx]
            out.append(np.ascontiguousarray(a))
        a = np.concatenate(out, axis=0)
        return a if dtype is None else a.astype(dtype)


def summary_rows(path, cfg=None):
    """The rows of ``StudyResults.table()`` computed from the directory one chunk at a time: each statistic
    reads only the slices it needs, so the memory is one chunk's array whatever the size of the study
    (how ``run_study`` writes summary.csv)."""
    path = os.fspath(path)
    cfg = _config.normalize(storage.read_config(path)["config"]) if cfg is None else cfg
    manifest = storage.read_manifest(path)
    by_cell = {}
    for fpath, index, a, b in chunk_files(path, cfg, manifest, verify=False):
        by_cell.setdefault(index, []).append((a, b, fpath))
    derived = read_derived(path, cfg, manifest)
    rows = []
    for cell in _config.cells(cfg):
        parts = sorted(by_cell.get(cell.index, []))

        def get(name, cell=cell, parts=parts):
            return derived[name][cell.index] if name in derived else _CellArray(parts, name)
        rows += cell_rows(cfg, cell, get, sum(b - a for a, b, _ in parts))
    return rows


def load_study(path, *, partial=False):
    """The results of the study directory ``path`` as :class:`StudyResults` (labelled arrays, in memory;
    ``rf.open_study`` opens a study lazily instead).

    Plain data only: config.json through ``json``, chunks through ``np.load(allow_pickle=False)``; a
    chunk whose checksum differs from the manifest, whose arrays do not match the configuration, or
    that holds object arrays is refused.  An incomplete study raises unless ``partial=True`` (missing
    samples are then NaN, or False/0 for the flags and counts, and ``res.done`` tells which exist).
    """
    path = os.fspath(path)
    doc = storage.read_config(path)
    cfg = _config.normalize(doc["config"])
    grid, N = _config.grid_shape(cfg), cfg["samples"]
    exp = expected_arrays(cfg, N)
    data = {}
    for name, (shape, dt) in exp.items():
        full = grid + shape
        data[name] = (np.full(full, np.nan, dt) if dt.kind == "f" else np.zeros(full, dt))
    done = np.zeros(grid + (N,), bool)
    manifest = storage.read_manifest(path)
    for fpath, index, a, b in chunk_files(path, cfg, manifest):
        arrays = storage.load_chunk(fpath)
        _check_arrays(arrays, cfg, b - a, fpath)
        done[index][a:b] = True
        for k, v in arrays.items():
            data[k][index][a:b] = v
    if not partial and not done.all():
        raise storage.StudyDirError(f"{path}: the study is incomplete ({int(done.sum())} of {done.size} "
                                    f"samples stored); rerun it to resume, or load_study(..., "
                                    f"partial=True)")
    return StudyResults(path, doc, data, done, read_derived(path, cfg, manifest))


def chunk_files(path, cfg, manifest, verify=True):
    """[(file path, cell grid index, start, stop)] of the stored chunks, each checked against the
    manifest's checksum (``verify``), refused if it does not belong to the configuration or overlaps."""
    keys = _cell_keys(cfg)
    seen = {}
    out = []
    for name, (label, n, point, a, b) in storage.existing_chunks(path).items():
        key = (label, n, point)
        if key not in keys or not 0 <= a < b <= cfg["samples"]:
            raise storage.StudyDirError(f"{path}: chunk {name} does not belong to this study")
        fpath = os.path.join(path, storage.CHUNKS, name)
        if verify and name in manifest["chunks"] and storage.sha256_file(fpath) != manifest["chunks"][name]:
            raise storage.StudyDirError(f"{fpath}: checksum differs from {storage.MANIFEST} (the file was "
                                        f"changed after it was written)")
        for a2, b2 in seen.get(key, []):
            if a < b2 and a2 < b:
                raise storage.StudyDirError(f"{path}: chunk {name} overlaps another chunk")
        seen.setdefault(key, []).append((a, b))
        out.append((fpath, keys[key], a, b))
    return out


def read_derived(path, cfg, manifest=None):
    """The per-cell derived arrays (derived.npz, checked against the manifest), computed from the
    configuration when the file is absent; {} when the study has none."""
    spec_of = derived_arrays(cfg)
    if not spec_of:
        return {}
    manifest = storage.read_manifest(path) if manifest is None else manifest
    fpath = os.path.join(path, storage.DERIVED)
    if not os.path.exists(fpath):
        return compute_derived(cfg)
    want = manifest["derived"].get(storage.DERIVED)
    if want is None or storage.sha256_file(fpath) != want:
        raise storage.StudyDirError(f"{fpath}: checksum differs from {storage.MANIFEST} (or is missing "
                                    f"there): the file was changed after it was written")
    arrays = storage.load_chunk(fpath)
    coords = measure_coords(cfg)
    grid = _config.grid_shape(cfg)
    for name, (dims, dt) in spec_of.items():
        shape = grid + tuple(len(coords[d]) for d in dims)
        if name not in arrays or arrays[name].shape != shape or arrays[name].dtype != dt:
            raise storage.StudyDirError(f"{fpath}: array {name!r} missing or not {dt}{shape}")
    return {k: arrays[k] for k in spec_of}
