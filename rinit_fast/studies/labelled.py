"""A study as an ``xarray.Dataset``: ``rf.open_study(path)`` (lazy, dask-backed) and
``StudyResults.to_xarray()``.

Dimensions: ``scheme`` (the labels, with the non-index coordinate ``family``, the scheme's canonical
name), ``width``, one per sweep (named as the swept parameter, its values as coordinates), ``sample``
(matrix or network index), then each measure's own: ``realization``, ``horizon`` (steps) for
[unroll]; ``activation``, ``layer`` for [propagate].  Every stored array becomes a data variable with
the dimensions ``StudyResults.dims`` gives; the per-cell mean field beside [propagate]
(``meanfield_*``) has no ``sample`` dimension.  ``ds.attrs`` holds the study's name, hash, seed,
path and its normalised configuration as canonical JSON.

Lazy opening reads only the JSON files and the .npy headers of the chunk files (checking every
chunk's arrays, shapes and dtypes, and, with ``verify=True``, its checksum, by streaming the file);
each dask task then loads one array of one chunk file with ``np.load(allow_pickle=False)``.  A reduction
therefore holds a few chunks in memory at a time, whatever the size of the study.
"""
from __future__ import annotations

import os

import numpy as np

from . import config as _config
from . import execute, storage


def _xr():
    try:
        import xarray as xr
    except ImportError as exc:  # pragma: no cover (a dependency)
        raise RuntimeError("labelled results need xarray: pip install xarray") from exc
    return xr


def _coords(cfg):
    res_coords = {"scheme": [s["label"] for s in cfg["schemes"]], "width": list(cfg["widths"])}
    for s in cfg["sweep"]:
        res_coords[s["name"]] = list(s["values"])
    res_coords["sample"] = list(range(cfg["samples"]))
    res_coords.update(execute.measure_coords(cfg))
    out = {k: np.asarray(v) for k, v in res_coords.items()}
    out["family"] = ("scheme", np.asarray([s["scheme"] for s in cfg["schemes"]]))
    return out


def _dims(cfg):
    lead = ("scheme", "width") + tuple(s["name"] for s in cfg["sweep"])
    dims = {k: lead + ("sample",) + d for k, (d, _) in execute.sample_arrays(cfg).items()}
    dims.update({k: lead + d for k, (d, _) in execute.derived_arrays(cfg).items()})
    return dims


def _attrs(cfg, h, path):
    return {"name": cfg["name"], "hash": h, "seed": cfg["seed"], "path": os.fspath(path),
            "config": _config.canonical_json(cfg)}


def dataset(cfg, data, done, h, path):
    """An ``xarray.Dataset`` of arrays ``data`` ({name: array}, NumPy or dask) laid out as
    :class:`StudyResults` lays them out; ``done`` (bool, grid + (samples,)) is added as a variable when
    some samples are missing."""
    xr = _xr()
    dims = _dims(cfg)
    variables = {k: (dims[k], v) for k, v in data.items()}
    if not np.all(done):
        variables["done"] = (dims_lead(cfg) + ("sample",), done)
    return xr.Dataset(variables, coords=_coords(cfg), attrs=_attrs(cfg, h, path))


def dims_lead(cfg):
    return ("scheme", "width") + tuple(s["name"] for s in cfg["sweep"])


def open_study(path, *, partial=False, verify=True):
    """The study directory ``path`` as a lazily loaded ``xarray.Dataset`` (dask arrays).

    Opening reads config.json, manifest.json, derived.npz and the headers of the chunk files, never the
    chunks' data, and runs no code from the directory (no pickle; docs/studies.md).  Every chunk is
    checked against the configuration (arrays, shapes, dtypes, overlaps) and, with ``verify=True``,
    against its manifest checksum (a streaming read of each file; ``verify=False`` skips it).  An
    incomplete study raises unless ``partial=True``: missing samples are then NaN (False / 0 for flags
    and counts) and the variable ``done`` tells which exist.

    Reduce before you load: ``open_study(p)["radius"].mean("sample").compute()`` holds a few chunks in
    memory at a time.
    """
    import dask
    import dask.array as da
    path = os.fspath(path)
    doc = storage.read_config(path)
    cfg = _config.normalize(doc["config"])
    manifest = storage.read_manifest(path)
    grid, N = _config.grid_shape(cfg), cfg["samples"]
    exp = execute.expected_arrays(cfg, 1)
    by_cell = {}
    done = np.zeros(grid + (N,), bool)
    for fpath, index, a, b in execute.chunk_files(path, cfg, manifest, verify=verify):
        hdr = storage.npz_headers(fpath)
        if set(hdr) != set(exp):
            raise storage.StudyDirError(f"{fpath}: arrays {sorted(hdr)} do not match the configuration's "
                                        f"{sorted(exp)}")
        for name, (shape, dt) in exp.items():
            want = (b - a,) + shape[1:]
            if hdr[name] != (want, dt):
                raise storage.StudyDirError(f"{fpath}: array {name!r} is {hdr[name][1]}{hdr[name][0]}, "
                                            f"expected {dt}{want}")
        by_cell.setdefault(index, []).append((a, b, fpath))
        done[index][a:b] = True
    if not partial and not done.all():
        raise storage.StudyDirError(f"{path}: the study is incomplete ({int(done.sum())} of {done.size} "
                                    f"samples stored); rerun it to resume, or open_study(..., "
                                    f"partial=True)")
    load = dask.delayed(storage.load_member, pure=True)
    data = {}
    for name, (shape, dt) in exp.items():
        rest = shape[1:]
        fill = np.nan if dt.kind == "f" else 0

        def cell_array(index, name=name, rest=rest, dt=dt, fill=fill):
            blocks, pos = [], 0
            for a, b, fpath in sorted(by_cell.get(index, [])):
                if a > pos:
                    blocks.append(da.full((a - pos,) + rest, fill, dtype=dt))
                blocks.append(da.from_delayed(load(fpath, name), shape=(b - a,) + rest, dtype=dt))
                pos = b
            if pos < N:
                blocks.append(da.full((N - pos,) + rest, fill, dtype=dt))
            return blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)

        def nest(prefix, cell_array=cell_array):
            if len(prefix) == len(grid):
                return cell_array(prefix)
            return da.stack([nest(prefix + (i,)) for i in range(grid[len(prefix)])])

        data[name] = nest(())
    data.update(execute.read_derived(path, cfg, manifest))
    return dataset(cfg, data, done, doc["hash"], path)
