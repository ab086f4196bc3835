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

FORMAT = 1
"""Version of the study directory format (config.json, chunks/*.npz, manifest.json)."""

MEASURES = ("radius", "norm", "unroll")
RUNS = ("powers", "linear", "tanh")
"""Recurrences of [unroll]: ``powers`` ||W^k x|| (no inputs, Gaussian x); ``linear`` h_t = W h_{t-1} + x_t;
``tanh`` h_t = tanh(W h_{t-1} + x_t) with its tangent (gradient flow) when ``tangent = true``."""
MAX_RECORDED = 100_000
LABEL_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")

_TOP = {"name", "seed", "samples", "chunk", "dtype", "backend", "widths", "schemes", "radius", "norm",
        "unroll"}
_SPECTRAL = {"method", "tol", "max_iter"}
_UNROLL = {"horizons", "realizations", "runs", "input_scale", "tangent"}


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


def _scheme_entry(entry, i):
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
    gain = _float(entry.pop("gain", 1.0), f"{where}.gain")
    params = {}
    for k, v in sorted(entry.items()):
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ConfigError(f"{where}.{k} must be a number or a string, got {v!r}")
        params[k] = float(v) if isinstance(v, (int, float)) and k != "mode" else v
    sch = scheme_table.get(name)
    return {"label": label, "scheme": name, "gain": gain, "params": params,
            "complex": bool(sch.complex)}


def _spectral(d, key):
    if d is True or d == {}:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"[{key}] must be a table (e.g. [{key}] with method = \"power\"), got {d!r}")
    _unknown(d, _SPECTRAL, f"[{key}]")
    method = d.get("method", "power")
    if method not in ("power", "exact"):
        raise ConfigError(f"{key}.method must be 'power' or 'exact', got {method!r}")
    out = {"method": method, "tol": None, "max_iter": None}
    if d.get("tol") is not None:
        out["tol"] = _float(d["tol"], f"{key}.tol", positive=True)
    if d.get("max_iter") is not None:
        out["max_iter"] = _int(d["max_iter"], f"{key}.max_iter", lo=1)
    return out


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


def _unroll(d):
    if not isinstance(d, dict):
        raise ConfigError(f"[unroll] must be a table, got {d!r}")
    _unknown(d, _UNROLL, "[unroll]")
    if "horizons" not in d:
        raise ConfigError("[unroll] needs horizons = [t1, t2, ...] or horizons = {every = k, stop = T}")
    hs = horizon_list(d["horizons"])
    every = math.gcd(*hs)
    if hs[-1] // every > MAX_RECORDED:
        raise ConfigError(f"unroll.horizons: the unroll records every gcd = {every} steps up to "
                          f"{hs[-1]}, i.e. {hs[-1] // every} values per trajectory (limit "
                          f"{MAX_RECORDED}); choose horizons with a larger common divisor")
    runs = d.get("runs", ["powers", "linear"])
    if not isinstance(runs, list) or not runs or any(r not in RUNS for r in runs):
        raise ConfigError(f"unroll.runs must be a non-empty list from {RUNS}, got {runs!r}")
    runs = [r for r in RUNS if r in runs]
    tangent = d.get("tangent", True)
    if not isinstance(tangent, bool):
        raise ConfigError(f"unroll.tangent must be true or false, got {tangent!r}")
    return {"horizons": hs, "realizations": _int(d.get("realizations", 1), "unroll.realizations", 1,
                                                 2 ** 24),
            "runs": runs, "input_scale": _float(d.get("input_scale", 1.0), "unroll.input_scale"),
            "tangent": tangent}


def normalize(raw):
    """The validated, normalised configuration (plain data: dicts, lists, str, int, float, bool, None),
    with every default filled in.  Raises :class:`ConfigError` with the key and the fix."""
    from .. import _validate, scheme_table
    if not isinstance(raw, dict):
        raise ConfigError(f"a study configuration is a table, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    _unknown(raw, _TOP, "the study configuration")
    cfg = {"name": raw.get("name", "study")}
    if not isinstance(cfg["name"], str):
        raise ConfigError(f"name must be a string, got {cfg['name']!r}")
    cfg["seed"] = _int(raw.get("seed", 0), "seed", 0, 2 ** 64 - 1)
    if "samples" not in raw:
        raise ConfigError("samples (matrices per scheme and width) is required, e.g. samples = 100")
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
    schemes = raw.get("schemes")
    if not isinstance(schemes, list) or not schemes:
        raise ConfigError("schemes must be a non-empty list of names or tables, e.g. "
                          "schemes = [\"glorot_normal\", {scheme = \"rescaled_glorot\", p = 0.9}]")
    cfg["schemes"] = [_scheme_entry(e, i) for i, e in enumerate(schemes)]
    labels = [s["label"] for s in cfg["schemes"]]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"scheme labels must be distinct; give label = ... to tell apart {dup}")
    for s in cfg["schemes"]:  # every cell must resolve now, not hours into the run
        for n in widths:
            try:
                scheme_table.resolve(s["scheme"], n, n, s["gain"], **s["params"])
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"scheme {s['label']!r} at width {n}: {exc}") from None
    _validate.stream_range(0, cfg["samples"])
    # (None is the normalised form of an absent table)
    cfg["radius"] = _spectral(raw["radius"], "radius") if raw.get("radius") is not None else None
    cfg["norm"] = _spectral(raw["norm"], "norm") if raw.get("norm") is not None else None
    cfg["unroll"] = _unroll(raw["unroll"]) if raw.get("unroll") is not None else None
    if cfg["unroll"] and "tanh" in cfg["unroll"]["runs"]:
        cplx = [s["label"] for s in cfg["schemes"] if s["complex"]]
        if cplx:
            raise ConfigError(f"unroll.runs: the tanh run is for real matrices only (the complex tanh has "
                              f"poles), but {cplx} are complex; run them in a study without \"tanh\"")
    if not any(cfg[m] for m in MEASURES):
        raise ConfigError("nothing to measure: add at least one of the tables [radius], [norm], "
                          "[unroll]")
    return cfg


def identity(cfg):
    """The part of a normalised config that determines the results, with the format, stream and engine
    versions: what the hash covers (everything but ``chunk``, ``name``)."""
    from .. import __version__, rng
    ident = {k: v for k, v in cfg.items() if k not in ("chunk", "name")}
    ident["versions"] = {"format": FORMAT, "stream": rng.STREAM_VERSION, "rinit_fast": __version__}
    return ident


def canonical_json(obj):
    """Canonical JSON: sorted keys, no whitespace, finite floats only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(cfg):
    """SHA-256 of the canonical JSON of :func:`identity`."""
    return hashlib.sha256(canonical_json(identity(cfg)).encode()).hexdigest()
