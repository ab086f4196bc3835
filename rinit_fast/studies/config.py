"""Study configurations: TOML in (through ``tomllib``, which never executes code), validated,
normalised to plain data with every default filled in, and hashed.

The format is documented with a complete example in docs/studies.md (examples/study.toml).  The hash
covers everything that changes a result (the grid, the measures, seed, dtype, backend, and the stream
and engine versions), and nothing that does not: ``chunk`` (how the work is split) is an execution
setting, so an interrupted study may be resumed with another chunk size and still end bit-identical.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re

import numpy as np

FORMAT = 1
"""Version of the study directory format (config.json, chunks/*.npz, manifest.json, derived.npz).  A
study without sweeps or [propagate] has the same identity, files and hash as before they existed."""

LABEL_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
RESERVED_DIMS = ("scheme", "width", "sample", "realization", "horizon", "activation", "layer")
MAX_CELLS = 1_000_000

_TOP = {"name", "seed", "samples", "chunk", "dtype", "backend", "widths", "schemes", "sweep"}
"""Top-level keys besides the measures' tables (measures.MEASURES)."""


class ConfigError(ValueError):
    """An invalid study configuration; the message names the key and the fix."""


def load_toml(path):
    """Read a TOML file with ``tomllib`` (plain data; never executes code) and normalise it."""
    import tomllib
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return normalize(raw)


def _int(v, key, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ConfigError(f"{key} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {v}")
    return v


def _float(v, key, positive=False):
    if isinstance(v, list):
        raise ConfigError(f"{key} must be a number, got the list {v!r}; to sweep a parameter over several "
                          f"values, list them in the [sweep] table (e.g. [sweep] {key.split('.')[-1]} = {v!r})")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{key} must be a finite number, got {v!r}")
    if positive and not v > 0:
        raise ConfigError(f"{key} must be > 0, got {v}")
    return float(v)


def _unknown(d, allowed, where):
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, extra))} in {where}; valid keys: "
                          f"{', '.join(sorted(allowed))}")


def _scheme_entry(entry, i, swept=()):
    from .. import scheme_table
    where = f"schemes[{i}]"
    if isinstance(entry, str):
        entry = {"scheme": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a scheme name or a table {{scheme = ..., label = ..., "
                          f"gain = ..., <params>}}, got {entry!r}")
    entry = dict(entry)
    nested = entry.pop("params", {})  # the normalised form (and an allowed spelling): params = {...}
    if not isinstance(nested, dict):
        raise ConfigError(f"{where}.params must be a table of scheme parameters, got {nested!r}")
    clash = sorted(set(nested) & set(entry))
    if clash:
        raise ConfigError(f"{where}: parameter(s) {clash} given twice (inside params and beside it)")
    entry.update(nested)
    if isinstance(entry.get("complex"), bool):
        entry.pop("complex")  # derived from the scheme in the normalised form
    if "scheme" not in entry:
        raise ConfigError(f"{where} needs a 'scheme' key (one of {', '.join(scheme_table.schemes())})")
    try:
        name = scheme_table.canonical(entry.pop("scheme"))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    label = entry.pop("label", name)
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise ConfigError(f"{where}.label must be 1-64 characters from [A-Za-z0-9_.+-], got {label!r}")
    gain = entry.pop("gain", None)
    if "gain" in swept:
        if gain is not None:
            raise ConfigError(f"{where}.gain is given ({gain!r}) and swept in [sweep]: remove one of them")
    else:
        gain = _float(1.0 if gain is None else gain, f"{where}.gain")
    params = {}
    for k, v in sorted(entry.items()):
        if k in swept:
            raise ConfigError(f"{where}.{k} is given ({v!r}) and swept in [sweep]: remove one of them")
        if isinstance(v, list):
            raise ConfigError(f"{where}.{k} must be a number or a string, got the list {v!r}; to sweep it, "
                              f"list its values in the [sweep] table ([sweep] {k} = {v!r})")
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ConfigError(f"{where}.{k} must be a number or a string, got {v!r}")
        params[k] = float(v) if isinstance(v, (int, float)) and k != "mode" else v
    sch = scheme_table.get(name)
    return {"label": label, "scheme": name, "gain": gain, "params": params,
            "complex": bool(sch.complex)}


def horizon_list(h):
    """A horizons value (a list of step counts, or a table {every = k, stop = T}) as a sorted list."""
    if isinstance(h, dict):
        _unknown(h, {"every", "stop"}, "unroll.horizons")
        every = _int(h.get("every"), "unroll.horizons.every", lo=1)
        stop = _int(h.get("stop"), "unroll.horizons.stop", lo=every)
        return list(range(every, stop + 1, every))
    if not isinstance(h, list) or not h:
        raise ConfigError(f"unroll.horizons must be a non-empty list of steps or a table "
                          f"{{every = k, stop = T}}, got {h!r}")
    hs = [_int(v, "unroll.horizons[]", lo=1) for v in h]
    if sorted(set(hs)) != hs:
        raise ConfigError(f"unroll.horizons must be strictly increasing, got {hs}")
    return hs


def _sweep(raw):
    """The [sweep] table as a list of {"name", "values"} in the order written (the dimension order)."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(e, dict) and set(e) == {"name", "values"} for e in raw):
        items = [(e["name"], e["values"]) for e in raw]  # the normalised form
    else:
        raise ConfigError(f"[sweep] must be a table of parameter = [values], e.g. [sweep] gain = [0.5, 1.0, "
                          f"2.0], got {raw!r}")
    out, names = [], set()
    for name, vals in items:
        key = f"sweep.{name}"
        if not isinstance(name, str) or not LABEL_RE.match(name) or name in RESERVED_DIMS:
            raise ConfigError(f"{key}: a sweep is named by the parameter it varies (gain, a scheme parameter, "
                              f"propagate.bias_std, propagate.in_width, unroll.input_scale); "
                              f"{', '.join(RESERVED_DIMS)} are dimensions already")
        if name in names:
            raise ConfigError(f"{key} is given twice")
        names.add(name)
        if isinstance(vals, dict):
            _unknown(vals, {"start", "stop", "num"}, key)
            for k in ("start", "stop", "num"):
                if k not in vals:
                    raise ConfigError(f"{key} = {{start, stop, num}} needs {k} (num evenly spaced values from "
                                      f"start to stop, both included)")
            lo, hi = _float(vals["start"], f"{key}.start"), _float(vals["stop"], f"{key}.stop")
            num = _int(vals["num"], f"{key}.num", 1, 100_000)
            vals = [float(v) for v in np.linspace(lo, hi, num)]
        if not isinstance(vals, list):
            raise ConfigError(f"{key} must be a list of values or {{start, stop, num}}, got {vals!r}")
        if not vals:
            raise ConfigError(f"{key} is empty: a sweep needs at least one value (or remove it from [sweep])")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in vals):
            raise ConfigError(f"{key} must hold finite numbers only, got {vals!r}")
        if name != "in_width":
            vals = [float(v) for v in vals]
        if len(set(vals)) != len(vals):
            raise ConfigError(f"{key} values must be distinct, got {vals!r}")
        out.append({"name": name, "values": vals})
    return out


def sweep_targets(cfg):
    """{sweep name: ("gain", None) | ("scheme", None) | ("measure", measure name)}: what each sweep varies."""
    from .. import scheme_table
    from .measures import MEASURES
    out = {}
    for sw in cfg["sweep"]:
        name = sw["name"]
        owners = [m for m, spec in ((m, cfg.get(m)) for m in MEASURES) if spec and name in MEASURES[m].sweepable]
        takes = [s["label"] for s in cfg["schemes"] if name in scheme_table.get(s["scheme"]).params]
        if name == "gain":
            out[name] = ("gain", None)
        elif owners:
            out[name] = ("measure", owners[0])
        elif takes:
            missing = [s for s in cfg["schemes"] if name not in scheme_table.get(s["scheme"]).params]
            if missing:
                s = missing[0]
                valid = ", ".join(scheme_table.get(s["scheme"]).params) or "none"
                raise ConfigError(f"sweep.{name}: scheme {s['label']!r} ({s['scheme']}) does not take the "
                                  f"parameter {name!r} (its parameters: {valid}); every scheme of a study must "
                                  f"take a swept parameter: put the others in a separate study")
            out[name] = ("scheme", None)
        else:
            measures = [m for m in MEASURES if cfg.get(m)]
            ours = sorted({k for m in measures for k in MEASURES[m].sweepable})
            raise ConfigError(f"sweep.{name}: nothing in this study takes a parameter {name!r}; a sweep varies "
                              f"gain, a parameter of every scheme, or one of {ours or 'no measure key'} "
                              f"(of the measures {measures})")
    return out


def normalize(raw):
    """The validated, normalised configuration (plain data: dicts, lists, str, int, float, bool, None),
    with every default filled in.  Raises :class:`ConfigError` with the key and the fix."""
    from .. import _validate, scheme_table
    from .measures import MEASURES
    if not isinstance(raw, dict):
        raise ConfigError(f"a study configuration is a table, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    _unknown(raw, _TOP | set(MEASURES), "the study configuration")
    cfg = {"name": raw.get("name", "study")}
    if not isinstance(cfg["name"], str):
        raise ConfigError(f"name must be a string, got {cfg['name']!r}")
    cfg["seed"] = _int(raw.get("seed", 0), "seed", 0, 2 ** 64 - 1)
    if "samples" not in raw:
        raise ConfigError("samples (matrices, or networks for [propagate], per cell) is required, e.g. "
                          "samples = 100")
    cfg["samples"] = _int(raw["samples"], "samples", 1, 2 ** 32)
    cfg["chunk"] = _int(raw.get("chunk", min(cfg["samples"], 32)), "chunk", 1)
    dtype = raw.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64' (complex schemes: complex64/128), "
                          f"got {dtype!r}")
    cfg["dtype"] = dtype
    backend = raw.get("backend", "cpu")
    if backend not in ("cpu", "cuda"):
        raise ConfigError(f"backend must be 'cpu' or 'cuda', got {backend!r}")
    cfg["backend"] = backend
    widths = raw.get("widths")
    if not isinstance(widths, list) or not widths:
        raise ConfigError(f"widths must be a non-empty list of matrix widths n, got {widths!r}")
    widths = [_int(w, "widths[]", 1) for w in widths]
    if len(set(widths)) != len(widths):
        raise ConfigError(f"widths must be distinct, got {widths}")
    cfg["widths"] = widths
    cfg["sweep"] = _sweep(raw.get("sweep"))
    swept = {s["name"] for s in cfg["sweep"]}
    schemes = raw.get("schemes")
    if not isinstance(schemes, list) or not schemes:
        raise ConfigError("schemes must be a non-empty list of names or tables, e.g. "
                          "schemes = [\"glorot_normal\", {scheme = \"rescaled_glorot\", p = 0.9}]")
    cfg["schemes"] = [_scheme_entry(e, i, swept) for i, e in enumerate(schemes)]
    labels = [s["label"] for s in cfg["schemes"]]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"scheme labels must be distinct; give label = ... to tell apart {dup}")
    _validate.stream_range(0, cfg["samples"])
    # (None is the normalised form of an absent table)
    for m, meas in MEASURES.items():
        cfg[m] = meas.normalize(raw[m], cfg) if raw.get(m) is not None else None
    active = [m for m in MEASURES if cfg[m]]
    if not active:
        raise ConfigError(f"nothing to measure: add at least one of the tables "
                          f"{', '.join(f'[{m}]' for m in MEASURES)}")
    targets = sweep_targets(cfg)
    for m in active:  # a swept key of a measure's table is None there; a None one must be swept
        for k in MEASURES[m].sweepable:
            if k in swept and targets.get(k) == ("measure", m):
                if raw[m].get(k) is not None:
                    raise ConfigError(f"{m}.{k} is given ({raw[m][k]!r}) and swept in [sweep]: remove one "
                                      f"of them")
                cfg[m][k] = None
            elif cfg[m][k] is None and k not in MEASURES[m].optional_none:
                raise ConfigError(f"{m}.{k} is empty (None) but not swept: give a value")
    for name, (kind, owner) in targets.items():
        if kind == "measure":
            others = [m for m in active if m != owner]
            if others:
                raise ConfigError(f"sweep.{name} varies only [{owner}], but the study also has "
                                  f"{', '.join(f'[{m}]' for m in others)}, which would be recomputed "
                                  f"identically for every value: put them in a separate study")
    ncells = len(cfg["schemes"]) * len(widths) * math.prod(len(s["values"]) for s in cfg["sweep"])
    if ncells > MAX_CELLS:
        raise ConfigError(f"the grid has {ncells} cells (schemes x widths x sweeps), more than {MAX_CELLS}; "
                          f"split it into several studies")
    resolved = set()
    for cell in cells(cfg):  # every cell must resolve now, not hours into the run
        key = (cell.entry["scheme"], cell.width, cell.gain, tuple(sorted(cell.params.items())))
        if key in resolved:
            continue
        resolved.add(key)
        try:
            scheme_table.resolve(cell.entry["scheme"], cell.width, cell.width, cell.gain, **cell.params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"scheme {cell.label!r} at width {cell.width}{cell.where()}: {exc}") from None
    for m in active:
        MEASURES[m].check(cfg[m], cfg)
    return cfg


class Cell:
    """One point of the grid: a scheme entry at a width and one value of every sweep.

    ``index`` = (scheme index, width index, *sweep indices); ``gain`` and ``params`` are the scheme's,
    with swept values in place; ``values`` = {sweep name: value}; ``setting(spec, key)`` reads a key of a
    measure's table, or its swept value."""

    __slots__ = ("index", "entry", "width", "values", "gain", "params")

    def __init__(self, index, entry, width, values):
        from .. import scheme_table
        self.index, self.entry, self.width, self.values = tuple(index), entry, width, dict(values)
        self.gain = float(values["gain"]) if "gain" in values else entry["gain"]
        takes = scheme_table.get(entry["scheme"]).params
        self.params = dict(entry["params"], **{k: v for k, v in values.items() if k in takes and k != "gain"})

    @property
    def label(self):
        return self.entry["label"]

    def setting(self, spec, key):
        v = spec.get(key)
        return self.values[key] if v is None and key in self.values else v

    def where(self):
        return "".join(f", {k} = {v!r}" for k, v in self.values.items())

    def __repr__(self):
        return f"Cell({self.label!r}, n={self.width}{self.where()})"


def grid_shape(cfg):
    """(schemes, widths, *sweep lengths): the shape of the grid of cells."""
    return (len(cfg["schemes"]), len(cfg["widths"])) + tuple(len(s["values"]) for s in cfg["sweep"])


def cells(cfg):
    """Every :class:`Cell` of the grid, in C order of (scheme, width, *sweeps)."""
    for idx in np.ndindex(*grid_shape(cfg)):
        values = {s["name"]: s["values"][i] for s, i in zip(cfg["sweep"], idx[2:])}
        yield Cell(idx, cfg["schemes"][idx[0]], cfg["widths"][idx[1]], values)


def identity(cfg):
    """The part of a normalised config that determines the results, with the format, stream and engine
    versions: what the hash covers (everything but ``chunk``, ``name``).  Keys that did not exist in
    the first version of the format (``sweep``, and measure tables added since) are left out while they
    are empty, so the studies written before them keep their hash."""
    from .. import __version__, rng
    ident = {k: v for k, v in cfg.items() if k not in ("chunk", "name")}
    for k in _LATER_KEYS:
        if not ident.get(k):
            ident.pop(k, None)
    ident["versions"] = {"format": FORMAT, "stream": rng.STREAM_VERSION, "rinit_fast": __version__}
    return ident


_LATER_KEYS = ("sweep", "propagate", "lyapunov")
"""Keys added to the format after studies were written with it (absent from their identity when empty).
A new measure's table belongs here too."""


def canonical_json(obj):
    """Canonical JSON: sorted keys, no whitespace, finite floats only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(cfg):
    """SHA-256 of the canonical JSON of :func:`identity`."""
    return hashlib.sha256(canonical_json(identity(cfg)).encode()).hexdigest()
