"""The study directory: plain data only, written atomically, never mixed with another configuration.

Layout (format 1)::

    DIR/config.json          {"format", "hash", "identity": ..., "config": ...}: canonical JSON
    DIR/chunks/<label>__n<width>[__s<i>.<j>...]__<start>-<stop>.npz
                             the results of samples start..stop-1 of one cell: a (scheme, width) and,
                             when the study has sweeps, the index of each sweep's value
    DIR/derived.npz          per-cell arrays computed from the configuration alone (the mean field
                             beside [propagate]), written before the first chunk; absent when none
    DIR/manifest.json        {"hash", "chunks": {file name: sha256}, "derived": {file name: sha256}},
                             rewritten after every chunk
    DIR/summary.csv          one row per cell, written when the study is complete

Every file is written to a temporary name in the same directory, flushed, fsync'ed and moved into place
with ``os.replace`` (atomic on POSIX and Windows): a chunk file either exists whole or not at all, so an
interrupted study resumes by computing the ranges no chunk covers.  Chunks are read with
``np.load(allow_pickle=False)`` and JSON with ``json``: opening a directory someone sent never runs code.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile

import numpy as np

from . import config as _config

CONFIG = "config.json"
MANIFEST = "manifest.json"
CHUNKS = "chunks"
SUMMARY = "summary.csv"
DERIVED = "derived.npz"
_CHUNK_RE = re.compile(r"^(?P<label>[A-Za-z0-9_.+-]{1,64})__n(?P<n>[0-9]+)(?:__s(?P<s>[0-9]+(?:\.[0-9]+)*))?"
                       r"__(?P<a>[0-9]+)-(?P<b>[0-9]+)\.npz$")


class StudyDirError(RuntimeError):
    """A directory that cannot hold, or does not hold, this study's results."""


def chunk_name(label, n, a, b, point=()):
    """The file name of samples a..b-1 of the cell (label, width n, sweep indices ``point``)."""
    sw = f"__s{'.'.join(str(int(i)) for i in point)}" if len(point) else ""
    return f"{label}__n{n}{sw}__{a:010d}-{b:010d}.npz"


def parse_chunk_name(name):
    """(label, n, point, start, stop) of a chunk file name (point: the tuple of sweep indices), or None."""
    m = _CHUNK_RE.match(name)
    if not m:
        return None
    point = tuple(int(i) for i in m["s"].split(".")) if m["s"] else ()
    return m["label"], int(m["n"]), point, int(m["a"]), int(m["b"])


def csv_text(rows):
    """CSV text of a list of dicts: the union of their keys as columns (in order of first appearance),
    floats written with repr (round-trip exact).  The one CSV writer of studies and reports."""
    cols = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(float(v)) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()})
    return buf.getvalue()


def _atomic_write(path, write):
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path, obj):
    data = (json.dumps(obj, sort_keys=True, indent=1, allow_nan=False) + "\n").encode()
    _atomic_write(path, lambda f: f.write(data))


def read_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode())


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare(path, cfg):
    """Create the study directory for ``cfg``, or open an existing one holding the same configuration.

    Refuses (StudyDirError) a directory holding another configuration's results, and a non-empty
    directory that is not a study directory.  Returns the config hash.
    """
    h = _config.config_hash(cfg)
    cpath = os.path.join(path, CONFIG)
    if os.path.exists(cpath):
        other = read_config(path)
        if other["hash"] != h:
            raise StudyDirError(
                f"{path} holds the results of another configuration (hash {other['hash'][:12]}…, this "
                f"one {h[:12]}…); results of different configurations are never mixed: choose another "
                f"--out directory, or delete {path} to start over")
    else:
        if os.path.isdir(path) and os.listdir(path):
            raise StudyDirError(f"{path} exists, is not empty and is not a study directory (no "
                                f"{CONFIG}); choose an empty or new --out directory")
        os.makedirs(os.path.join(path, CHUNKS), exist_ok=True)
        write_json(cpath, {"format": _config.FORMAT, "hash": h, "identity": _config.identity(cfg),
                           "config": cfg})
    os.makedirs(os.path.join(path, CHUNKS), exist_ok=True)
    for f in os.listdir(os.path.join(path, CHUNKS)):  # leftovers of interrupted writes
        if f.startswith(".tmp-"):
            try:
                os.unlink(os.path.join(path, CHUNKS, f))
            except FileNotFoundError:
                pass
    return h


def read_config(path):
    """The stored config document, checked: format known and hash matching its content."""
    cpath = os.path.join(path, CONFIG)
    if not os.path.isfile(cpath):
        raise StudyDirError(f"{path} is not a study directory (no {CONFIG})")
    try:
        doc = read_json(cpath)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StudyDirError(f"{cpath} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != _config.FORMAT:
        raise StudyDirError(f"{cpath}: unknown study format {doc.get('format') if isinstance(doc, dict) else doc!r} "
                            f"(this rinit_fast reads format {_config.FORMAT})")
    cfg = _config.normalize(doc["config"])
    if _config.config_hash(cfg) != doc.get("hash"):
        raise StudyDirError(f"{cpath}: the hash does not match the configuration (edited by hand, or "
                            f"written by another rinit_fast version)")
    return doc


def read_manifest(path):
    """The manifest as {"chunks": {name: sha256}, "derived": {name: sha256}} (empty when absent)."""
    mpath = os.path.join(path, MANIFEST)
    if not os.path.exists(mpath):
        return {"chunks": {}, "derived": {}}
    doc = read_json(mpath)
    return {"chunks": dict(doc.get("chunks", {})), "derived": dict(doc.get("derived", {}))}


def _write_manifest(path, manifest, h):
    doc = {"hash": h, "chunks": dict(sorted(manifest["chunks"].items()))}
    if manifest["derived"]:
        doc["derived"] = dict(sorted(manifest["derived"].items()))
    write_json(os.path.join(path, MANIFEST), doc)


def _plain(arrays, what):
    for k, v in arrays.items():
        if v.dtype.hasobject:
            raise TypeError(f"{what} array {k!r} has dtype object; studies store plain numeric data only")


def write_chunk(path, name, arrays, manifest, h):
    """Write one chunk atomically, then the manifest (atomically too), updating ``manifest`` in place."""
    _plain(arrays, "chunk")
    fpath = os.path.join(path, CHUNKS, name)
    _atomic_write(fpath, lambda f: np.savez(f, **arrays))
    manifest["chunks"][name] = sha256_file(fpath)
    _write_manifest(path, manifest, h)


def write_derived(path, arrays, manifest, h):
    """Write ``derived.npz`` atomically and record its checksum in the manifest."""
    _plain(arrays, "derived")
    fpath = os.path.join(path, DERIVED)
    _atomic_write(fpath, lambda f: np.savez(f, **arrays))
    manifest["derived"][DERIVED] = sha256_file(fpath)
    _write_manifest(path, manifest, h)


def npz_headers(fpath):
    """{member: (shape, dtype)} of an uncompressed .npz, read from the .npy headers only (no data, no
    pickle): how a lazy opening checks every chunk before anything is computed."""
    import zipfile
    out = {}
    try:
        with zipfile.ZipFile(fpath) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise StudyDirError(f"{fpath}: unsupported .npy version {version}")
                if dtype.hasobject:
                    raise StudyDirError(f"{fpath}: refused (member {info.filename} holds objects); study "
                                        f"chunks hold plain numeric arrays only")
                out[info.filename[:-4]] = (tuple(shape), dtype)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise StudyDirError(f"{fpath}: unreadable chunk ({exc})") from exc
    return out


def load_member(fpath, name):
    """One array of a chunk file (never unpickling); what each task of a lazy opening runs."""
    try:
        with np.load(fpath, allow_pickle=False) as z:
            return z[name]
    except ValueError as exc:
        raise StudyDirError(f"{fpath}: refused ({exc}); study chunks hold plain numeric arrays only")


def load_chunk(fpath):
    """The arrays of one chunk file, without ever unpickling (object arrays are refused)."""
    try:
        with np.load(fpath, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise StudyDirError(f"{fpath}: refused ({exc}); study chunks hold plain numeric arrays only")
    except (OSError, EOFError, KeyError) as exc:
        raise StudyDirError(f"{fpath}: unreadable chunk ({exc})") from exc


def existing_chunks(path):
    """{name: (label, n, point, start, stop)} of the chunk files present (complete by construction)."""
    d = os.path.join(path, CHUNKS)
    out = {}
    if os.path.isdir(d):
        for f in sorted(os.listdir(d)):
            info = parse_chunk_name(f)
            if info is not None:
                out[f] = info
    return out
