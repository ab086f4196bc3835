"""The measures of a study, one class per TOML table, in the registry ``MEASURES``.

A measure says, for its table of the configuration:

- ``normalize(table, cfg)``: the table validated, as plain data with every default filled in
  (raise :class:`ConfigError` naming the key and the fix); ``check(spec, cfg)`` cross-checks it against
  the whole configuration once every cell is known (cells, sweeps);
- ``sweepable``: the keys of its own table that a ``[sweep]`` may vary (they are then ``None`` in the
  normalised table, and each cell reads them with ``cell.setting(spec, key)``);
- ``dims(spec)``: its own dimensions after ``sample``, with their coordinates, and ``arrays(spec)``: the
  arrays it stores per sample, ``{name: (dims, dtype)}``;
- ``compute(spec, work)``: those arrays for samples ``work.start .. work.stop - 1`` of ``work.cell``
  (``work.W`` samples the cell's matrices once, for every measure that uses them), each a pure function
  of (configuration, cell, sample index), so chunking never changes a result;
- ``derived(spec, cell)``: optional arrays per cell, without a sample dimension, computed once when the
  study starts and stored in ``derived.npz`` (the mean field beside ``[propagate]``);
- ``summarize(spec, get, cell)``: the summary-table columns of one cell, each statistic with its Monte
  Carlo interval (``uncertainty.py``); a list of (key columns, value columns), one per row;
- ``figures(spec, res, plot)``: the standard figures (``figures.py``).

Adding a measure is one class here and one line in ``MEASURES`` (docs/studies.md, "Adding a measure").
"""
from __future__ import annotations

import math

import numpy as np

from . import uncertainty as U
from .config import ConfigError, _float, _int, _unknown, horizon_list


class Measure:
    name = ""
    keys = ()
    sweepable = ()
    optional_none = ()
    """Sweepable keys whose None, when not swept, means a default decided per cell."""

    def normalize(self, table, cfg):
        raise NotImplementedError

    def check(self, spec, cfg):
        """Cross-checks against the schemes, widths and sweeps (every cell resolved)."""

    def dims(self, spec):
        return {}

    def arrays(self, spec):
        raise NotImplementedError

    def compute(self, spec, work):
        raise NotImplementedError

    def derived(self, spec, cell):
        return {}

    def derived_arrays(self, spec):
        """{name: (dims after the cell's, dtype)} of :meth:`derived`."""
        return {}

    def summarize(self, spec, get, cell):
        return []

    def figures(self, spec, res, plot):
        return []


def _table(d, key):
    if d is True or d == {}:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"[{key}] must be a table (e.g. an empty [{key}] for the defaults), got {d!r}")
    return d


# --- spectral radius and norm ------------------------------------------------------------------------

EXCEEDS = 1.0 + 1e-5
"""P(rho > 1) counts rho > 1 + 1e-5: an orthogonal matrix has rho = 1 exactly, and rounding must not count
as exceeding it (the Glorot laws put about 1e-4 of their mass in (1, 1 + 1e-5])."""


class Spectral(Measure):
    keys = ("method", "tol", "max_iter")

    def __init__(self, name):
        self.name = name

    def normalize(self, table, cfg):
        d = _table(table, self.name)
        _unknown(d, self.keys, f"[{self.name}]")
        method = d.get("method", "power")
        if method not in ("power", "exact"):
            raise ConfigError(f"{self.name}.method must be 'power' or 'exact', got {method!r}")
        out = {"method": method, "tol": None, "max_iter": None}
        if d.get("tol") is not None:
            out["tol"] = _float(d["tol"], f"{self.name}.tol", positive=True)
        if d.get("max_iter") is not None:
            out["max_iter"] = _int(d["max_iter"], f"{self.name}.max_iter", lo=1)
        return out

    def arrays(self, spec):
        n = self.name
        return {n: ((), np.dtype(np.float64)), f"{n}_converged": ((), np.dtype(bool)),
                f"{n}_iterations": ((), np.dtype(np.int64))}

    def compute(self, spec, work):
        from .execute import spectral
        v, c, it = spectral(work.W, self.name, spec, work.seed, work.start)
        return {self.name: v, f"{self.name}_converged": c, f"{self.name}_iterations": it}

    def summarize(self, spec, get, cell):
        n = self.name
        x = np.ascontiguousarray(get(n))
        k = x.size
        row = {f"{n}_p_gt_1": float(np.mean(x > EXCEEDS))}
        row[f"{n}_p_gt_1_ci_low"], row[f"{n}_p_gt_1_ci_high"] = U.clopper_pearson(int(np.sum(x > EXCEEDS)), k)
        m, _, lo, hi = U.mean_ci(x)
        row.update({f"{n}_mean": float(m), f"{n}_mean_ci_low": float(lo), f"{n}_mean_ci_high": float(hi)})
        for p, nm in ((0.05, "q05"), (0.25, "q25"), (0.5, "median"), (0.75, "q75"), (0.95, "q95")):
            row[f"{n}_{nm}"] = float(np.quantile(x, p))
            row[f"{n}_{nm}_ci_low"], row[f"{n}_{nm}_ci_high"] = U.quantile_ci(x, p)
        row[f"{n}_unconverged"] = int((~np.ascontiguousarray(get(f"{n}_converged"))).sum())
        return [({}, row)]

    def figures(self, spec, res, plot):
        return plot.spectral(self.name, res)


# --- recurrences -------------------------------------------------------------------------------------

RUNS = ("powers", "linear", "tanh")
"""Recurrences of [unroll]: ``powers`` ||W^k x|| (no inputs, Gaussian x); ``linear`` h_t = W h_{t-1} + x_t;
``tanh`` h_t = tanh(W h_{t-1} + x_t) with its tangent (gradient flow) when ``tangent = true``."""
MAX_RECORDED = 100_000


class Unroll(Measure):
    name = "unroll"
    keys = ("horizons", "realizations", "runs", "input_scale", "tangent")
    sweepable = ("input_scale",)

    def normalize(self, d, cfg):
        if not isinstance(d, dict):
            raise ConfigError(f"[unroll] must be a table, got {d!r}")
        _unknown(d, self.keys, "[unroll]")
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
        scale = d.get("input_scale", 1.0)
        return {"horizons": hs, "realizations": _int(d.get("realizations", 1), "unroll.realizations", 1,
                                                     2 ** 24),
                "runs": runs, "input_scale": None if scale is None else _float(scale, "unroll.input_scale"),
                "tangent": tangent}

    def check(self, spec, cfg):
        if "tanh" in spec["runs"]:
            cplx = [s["label"] for s in cfg["schemes"] if s["complex"]]
            if cplx:
                raise ConfigError(f"unroll.runs: the tanh run is for real matrices only (the complex tanh "
                                  f"has poles), but {cplx} are complex; run them in a study without "
                                  f"\"tanh\"")
        if spec["input_scale"] is None and not ({"linear", "tanh"} & set(spec["runs"])):
            raise ConfigError("sweep.input_scale: only the linear and tanh runs have inputs; add one of them "
                              "to unroll.runs, or remove the sweep")

    def dims(self, spec):
        return {"realization": list(range(spec["realizations"])), "horizon": list(spec["horizons"])}

    def _names(self, spec):
        names = [f"{r}_log_norm" for r in spec["runs"]]
        if "tanh" in spec["runs"] and spec["tangent"]:
            names.append("tanh_tangent_log_norm")
        return names

    def arrays(self, spec):
        return {k: (("realization", "horizon"), np.dtype(np.float64)) for k in self._names(spec)}

    def compute(self, spec, work):
        from .execute import unroll_runs
        spec = dict(spec, input_scale=work.cell.setting(spec, "input_scale"))
        return unroll_runs(work.W, spec, work.seed, work.start)

    def summarize(self, spec, get, cell):
        row = {}
        T = spec["horizons"][-1]
        for key in self._names(spec):
            per = np.ascontiguousarray(get(key)[..., -1]).mean(axis=1)  # per matrix: mean over its realisations
            m, _, lo, hi = U.mean_ci(per)
            c = f"{key[:-len('_log_norm')]}_mean_log_norm_T{T}"
            row.update({c: float(m), f"{c}_ci_low": float(lo), f"{c}_ci_high": float(hi)})
        return [({}, row)]

    def figures(self, spec, res, plot):
        return plot.unroll(spec, res, self._names(spec))


# --- depth: rf.propagate beside the mean field -----------------------------------------------------------

PROP_FIELDS = ("preact_mean", "preact_var", "preact_unit_var", "act_mean", "act_var", "act_unit_var",
               "act_abs_mean", "act_second_moment", "grad_var")
"""The per-network, per-layer statistics of ``rf.propagate`` (its ``per_network`` fields), stored as
``propagate_<field>``."""
MF_FIELDS = ("preact_var", "act_mean", "act_var", "act_abs_mean", "act_second_moment", "chi", "grad_var")
"""The fields of ``rf.theory.mean_field``, stored as ``meanfield_<field>`` per cell."""


def rate_layers(depth):
    """(l0, l1): the layers over which the per-layer growth rate of the gradient variance is measured,
    the second half of the network: rate = (log grad_var[l0] - log grad_var[l1]) / (l1 - l0), l1 =
    depth - 1, i.e. the mean of log chi_l over l0 <= l < l1 (the forward pass has reached its fixed
    point there, away from the order/chaos boundary).  None for depth 1."""
    if depth < 2:
        return None
    l1 = depth - 1
    l0 = depth // 2 if depth // 2 < l1 else 0
    return l0, l1


class Propagate(Measure):
    name = "propagate"
    keys = ("activations", "depth", "inputs", "bias_std", "in_width", "dtype")
    sweepable = ("bias_std", "in_width")
    optional_none = ("in_width",)

    def normalize(self, d, cfg):
        from .. import _validate
        if not isinstance(d, dict):
            raise ConfigError(f"[propagate] must be a table, got {d!r}")
        _unknown(d, self.keys, "[propagate]")
        acts = d.get("activations", ["tanh"])
        if isinstance(acts, str):
            acts = [acts]
        if not isinstance(acts, list) or not acts:
            raise ConfigError(f"propagate.activations must be a non-empty list from "
                              f"{_validate.ACTIVATIONS}, got {acts!r}")
        out_acts = []
        for a in acts:
            try:
                out_acts.append(_validate.activation(a))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"propagate.activations: {exc}") from None
        if len(set(out_acts)) != len(out_acts):
            raise ConfigError(f"propagate.activations must be distinct, got {out_acts}")
        if "depth" not in d:
            raise ConfigError("[propagate] needs depth = <number of layers>, e.g. depth = 50")
        depth = _int(d["depth"], "propagate.depth", 1, 2 ** 24)
        inputs = _int(d.get("inputs", 8), "propagate.inputs", 1, 2 ** 24)
        bias = d.get("bias_std", 0.0)
        if bias is not None:
            bias = _float(bias, "propagate.bias_std")
            if bias < 0:
                raise ConfigError(f"propagate.bias_std must be >= 0 (the standard deviation of the biases), "
                                  f"got {bias}")
        inw = d.get("in_width")
        if inw is not None:
            inw = _int(inw, "propagate.in_width", 1)
        dtype = d.get("dtype", cfg["dtype"])
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"propagate.dtype must be 'float32' or 'float64', got {dtype!r}")
        # in_width: None = each cell's width (the normalised form keeps None: it is not swept then)
        return {"activations": out_acts, "depth": depth, "inputs": inputs, "bias_std": bias,
                "in_width": inw, "dtype": dtype}

    def check(self, spec, cfg):
        from .. import scheme_table
        from .config import cells
        cplx = [s["label"] for s in cfg["schemes"] if s["complex"]]
        if cplx:
            raise ConfigError(f"[propagate]: propagation is defined for real schemes only, but {cplx} are "
                              f"complex; run them in a study without [propagate]")
        for sw in cfg["sweep"]:
            if sw["name"] == "bias_std" and spec["bias_std"] is None and min(sw["values"]) < 0:
                raise ConfigError(f"sweep.bias_std: propagate.bias_std must be >= 0 (the standard deviation of "
                                  f"the biases), got {min(sw['values'])}")
            if sw["name"] == "in_width" and spec["in_width"] is None:
                for v in sw["values"]:
                    _int(v, "sweep.in_width[] (propagate.in_width)", 1)
        seen = set()
        for cell in cells(cfg):
            inw = self.in_width(spec, cell)
            key = (cell.entry["scheme"], cell.width, inw, cell.gain, tuple(sorted(cell.params.items())))
            if key in seen:
                continue
            seen.add(key)
            try:
                scheme_table.resolve(cell.entry["scheme"], cell.width, inw, cell.gain, **cell.params)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"[propagate]: scheme {cell.label!r} at width {cell.width} with "
                                  f"in_width {inw}: {exc}") from None

    @staticmethod
    def in_width(spec, cell):
        if spec["in_width"] is None:
            return cell.values.get("in_width", cell.width)
        return spec["in_width"]

    def dims(self, spec):
        return {"activation": list(spec["activations"]), "layer": list(range(spec["depth"]))}

    def arrays(self, spec):
        return {f"propagate_{f}": (("activation", "layer"), np.dtype(np.float64)) for f in PROP_FIELDS}

    def compute(self, spec, work):
        from ..propagate import propagate
        cell = work.cell
        k = work.stop - work.start
        out = {f"propagate_{f}": np.empty((k, len(spec["activations"]), spec["depth"])) for f in PROP_FIELDS}
        for a, act in enumerate(spec["activations"]):
            r = propagate(cell.entry["scheme"], cell.width, spec["depth"], activation=act, batch=k,
                          samples=spec["inputs"], seed=work.seed, start=work.start, backend=work.backend,
                          gain=cell.gain, bias_std=cell.setting(spec, "bias_std"), dtype=spec["dtype"],
                          in_width=self.in_width(spec, cell), **cell.params)
            for f in PROP_FIELDS:
                out[f"propagate_{f}"][:, a] = getattr(r.per_network, f)
        return out

    def derived_arrays(self, spec):
        return {f"meanfield_{f}": (("activation", "layer"), np.dtype(np.float64)) for f in MF_FIELDS}

    def derived(self, spec, cell):
        """The mean-field prediction for the cell (NaN where the theory does not apply: weights of
        non-zero mean, or a recursion that overflows).  Layer 0 of width ``in_width`` enters through
        q_0 = in_width · std_0² (the first layer's own entry variance) and its chi_0."""
        from .. import scheme_table
        from ..theory import mean_field
        n, depth = cell.width, spec["depth"]
        inw = self.in_width(spec, cell)
        bias = cell.setting(spec, "bias_std")
        out = {f"meanfield_{f}": np.full((len(spec["activations"]), depth), np.nan) for f in MF_FIELDS}
        name, gain, params = cell.entry["scheme"], cell.gain, cell.params
        if scheme_table.scheme_mean(name, (n, n), gain, **params) != 0.0 or \
                scheme_table.scheme_mean(name, (n, inw), gain, **params) != 0.0:
            return out
        std = scheme_table.scheme_std(name, (n, n), gain, **params)
        std0 = scheme_table.scheme_std(name, (n, inw), gain, **params)
        wv = n * std * std
        if wv <= 0.0:
            return out
        q0 = inw * std0 * std0 / wv  # so that q_0 = wv·q0 + bias² is layer 0's true variance
        for a, act in enumerate(spec["activations"]):
            try:
                mf = mean_field(act, wv, bias * bias, depth, q0=q0)
            except ValueError:
                continue
            for f in MF_FIELDS:
                out[f"meanfield_{f}"][a] = getattr(mf, f)
            ratio = (std0 / std) ** 2  # chi_0 of a (width, in_width) first layer: width·std_0²·E f'²
            out["meanfield_chi"][a, 0] *= ratio
            out["meanfield_grad_var"][a, 0] *= ratio
        return out

    def summarize(self, spec, get, cell):
        """Per activation: pooled statistics of the first and last layers, and the per-layer growth rate
        of the gradient variance, each with its jackknife interval across networks, beside the mean field."""
        rows = []
        depth = spec["depth"]
        rl = rate_layers(depth)
        layers = sorted({0, depth - 1} | set(rl or ()))  # read only the layers the statistics need
        at = {layer: i for i, layer in enumerate(layers)}
        for a, act in enumerate(spec["activations"]):
            col = {f: np.ascontiguousarray(get(f"propagate_{f}")[:, a][:, layers])
                   for f in ("preact_mean", "preact_var", "act_mean", "act_var", "grad_var")}
            pm, pv, gv = col["preact_mean"], col["preact_var"], col["grad_var"]
            row = {}
            bands = {"preact_var": U.pooled_var_band(pm, pv), "act_var": U.pooled_var_band(col["act_mean"],
                                                                                          col["act_var"]),
                     "grad_var": U.pooled_mean_band(gv)}
            for lname, layer in (("first", 0), ("last", depth - 1)):
                for stat, (v, lo, hi) in bands.items():
                    _put(row, f"propagate_{stat}_{lname}", (v[at[layer]], None, lo[at[layer]], hi[at[layer]]))
            first_last = np.stack([pm[:, [0, -1]], pv[:, [0, -1]]], axis=-1)  # (networks, 2, 2)
            _put(row, "propagate_preact_var_ratio", U.jackknife(
                lambda y: _pooled_var(y[:, 1]) / _pooled_var(y[:, 0]), first_last, log=True))
            if rl is not None:
                est, lo, hi = U.rate_ci(gv, at[rl[0]], at[rl[1]], rl[1] - rl[0])
                _put(row, "propagate_grad_rate", (est, None, lo, hi))
            mf = {f: np.ascontiguousarray(get(f"meanfield_{f}")[a])
                  for f in ("preact_var", "act_var", "grad_var", "chi")}
            row["meanfield_preact_var_first"] = float(mf["preact_var"][0])
            row["meanfield_preact_var_last"] = float(mf["preact_var"][-1])
            row["meanfield_act_var_last"] = float(mf["act_var"][-1])
            row["meanfield_grad_var_first"] = float(mf["grad_var"][0])
            row["meanfield_grad_var_last"] = float(mf["grad_var"][-1])
            with np.errstate(divide="ignore", invalid="ignore"):
                if rl is not None:
                    row["meanfield_grad_rate"] = float(np.mean(np.log(mf["chi"][rl[0]:rl[1]])))
                row["meanfield_log_chi_last"] = float(np.log(mf["chi"][-1]))
            rows.append(({"activation": act}, row))
        return rows

    def figures(self, spec, res, plot):
        return plot.propagate(spec, res)


def _pooled_var(y):
    """rf.propagate's pooled variance of networks' (mean, variance) pairs y (k, 2)."""
    m = y[:, 0]
    return float(y[:, 1].mean() + ((m - m.mean()) ** 2).mean())


def _put(row, key, est):
    v, _, lo, hi = est
    row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"] = float(v), float(lo), float(hi)


# --- Lyapunov spectra of the recurrence h_t = f(W h_{t-1} + x_t) (rf.lyapunov) ---------------------------

class Lyapunov(Measure):
    """``[lyapunov]``: the k largest Lyapunov exponents of each sample's matrix (``rf.lyapunov`` through
    ``rinit_fast.lyapunov.measure``), with the Kaplan–Yorke dimension and the entropy rate.  ``k`` defaults
    to the study's smallest width (the exponent dimension is the same in every cell); the gain and the
    scheme's parameters sweep through ``[sweep]`` as for every measure."""

    name = "lyapunov"
    keys = ("k", "steps", "warmup", "nonlinearity", "reortho_every", "realizations", "inputs")

    def normalize(self, d, cfg):
        from .. import _validate
        d = _table(d, "lyapunov")
        _unknown(d, self.keys, "[lyapunov]")
        if "steps" not in d:
            raise ConfigError("[lyapunov] needs steps = <steps of the recurrence>, e.g. steps = 2000")
        steps = _int(d["steps"], "lyapunov.steps", 2)
        warmup = d.get("warmup")
        warmup = steps // 10 if warmup is None else _int(warmup, "lyapunov.warmup", 0)
        if warmup >= steps:
            raise ConfigError(f"lyapunov.warmup must be < lyapunov.steps (the exponents average the steps "
                              f"after the warm-up), got warmup={warmup}, steps={steps}")
        k = min(cfg["widths"]) if d.get("k") is None else _int(d["k"], "lyapunov.k", 1)
        if k > min(cfg["widths"]):
            raise ConfigError(f"lyapunov.k must be <= the smallest width {min(cfg['widths'])} (an n x n "
                              f"matrix has n exponents), got {k}")
        try:
            nl = _validate.nonlinearity(d.get("nonlinearity", "linear"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"lyapunov.nonlinearity: {exc}") from None
        inputs = d.get("inputs", "none")
        if inputs not in ("none", "gaussian"):
            raise ConfigError(f"lyapunov.inputs must be 'none' or 'gaussian' (x_t ~ N(0, I) from the stream, "
                              f"as rf.unroll), got {inputs!r}")
        return {"k": k, "steps": steps, "warmup": warmup, "nonlinearity": nl,
                "reortho_every": _int(d.get("reortho_every", 1), "lyapunov.reortho_every", 1),
                "realizations": _int(d.get("realizations", 1), "lyapunov.realizations", 1, 2 ** 24),
                "inputs": inputs}

    def check(self, spec, cfg):
        cplx = [s["label"] for s in cfg["schemes"] if s["complex"]]
        if cplx:
            raise ConfigError(f"[lyapunov]: the exponents are those of a real recurrence, but {cplx} are "
                              f"complex; run them in a study without [lyapunov]")

    def dims(self, spec):
        return {"lyap_realization": list(range(spec["realizations"])), "exponent": list(range(spec["k"]))}

    _SCALARS = ("lyap_max", "lyap_kaplan_yorke", "lyap_entropy_rate", "lyap_volume_rate")

    def arrays(self, spec):
        out = {n: (("lyap_realization", "exponent"), np.dtype(np.float64))
               for n in ("lyap_exponents", "lyap_stderr")}
        out.update({n: (("lyap_realization",), np.dtype(np.float64)) for n in self._SCALARS})
        return out

    def compute(self, spec, work):
        from ..lyapunov import measure
        W = work.W
        if not isinstance(W, np.ndarray):  # a CuPy batch: rf.lyapunov runs on the CPU
            W = W.get()
        r = measure(W, k=spec["k"], steps=spec["steps"], warmup=spec["warmup"],
                    nonlinearity=spec["nonlinearity"], reortho_every=spec["reortho_every"],
                    realizations=spec["realizations"], seed=work.seed, start=work.start,
                    inputs=None if spec["inputs"] == "none" else "gaussian")
        return {k: np.asarray(v, dtype=np.float64) for k, v in r.items()}

    def summarize(self, spec, get, cell):
        row = {}
        for key in self._SCALARS:
            per = np.ascontiguousarray(get(key)).mean(axis=1)  # per matrix: mean over its realisations
            m, _, lo, hi = U.mean_ci(per)
            row.update({f"{key}_mean": float(m), f"{key}_mean_ci_low": float(lo), f"{key}_mean_ci_high": float(hi)})
        pos = np.ascontiguousarray(get("lyap_exponents")) > 0
        row["lyap_positive_mean"] = float(pos.sum(axis=-1).mean())
        return [({}, row)]


MEASURES = {m.name: m for m in (Spectral("radius"), Spectral("norm"), Unroll(), Propagate(), Lyapunov())}
"""The registry: TOML table name -> Measure, in the order their arrays and columns appear."""
