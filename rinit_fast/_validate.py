"""Every input check of the public API and its message, in one place.

Each check raises ``ValueError`` or ``TypeError`` naming the parameter and the fix, and runs before any
kernel does.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from .spec.stream import MAX_INDEX, MAX_SEED, MAX_SUB  # noqa: F401  (the stream's limits)
from .spec import activations as _act
from .spec import unroll as _unroll
from .spec.spectral import MIN_KRYLOV_DIM


def integer(x, name):
    """An exact Python int from an int-like (int, numpy integer); rejects bool, float, str."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(x).__name__} {x!r}")
    return operator.index(x)


def nonneg_int(x, name):
    v = integer(x, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def positive_int(x, name):
    v = integer(x, name)
    if v < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return v


def seed(x):
    v = integer(x, "seed")
    if not 0 <= v < MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**64), got {v}; the seed is the 64-bit Philox key")
    return v


# --- weight shapes of any rank (rf.sample, rinit_fast.torch, rinit_fast.jax) -------------------------
def weight_shape(shape):
    """``n`` -> (n, n); ``(fan_out, fan_in, *receptive_field)`` -> that tuple of Python ints (every
    dimension >= 1).  The fans of a shape are ``scheme_table.torch_fans`` (PyTorch's rule)."""
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        n = positive_int(shape, "shape")
        return n, n
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be an int n or a tuple (fan_out, fan_in, *receptive_field), got "
                        f"{shape!r}") from None
    if len(dims) < 2:
        raise ValueError(f"shape must be n or (fan_out, fan_in, *receptive_field): 2 or more dimensions, "
                         f"got {len(dims)} ({dims!r}); a 1-D weight (a bias) has no fans: use a scheme "
                         f"that needs none (normal, uniform, constant) with shape (1, n)")
    names = ["shape[0] (fan_out)", "shape[1] (fan_in)"]
    names += [f"shape[{i}] (receptive field)" for i in range(2, len(dims))]
    return tuple(positive_int(d, nm) for d, nm in zip(dims, names))


def stream_position(index, layer):
    """A single tensor's stream position: matrix index (counter word c2) < 2**32, sub-index < 2**24."""
    index = nonneg_int(index, "index")
    layer = nonneg_int(layer, "layer")
    if index >= MAX_INDEX:
        raise ValueError(f"index must be < 2**32 (the stream's matrix index, counter word c2), got {index}")
    if layer >= MAX_SUB:
        raise ValueError(f"layer must be < 2**24 (the stream's sub-index), got {layer}")
    return index, layer


def fans(value, name="fans"):
    """An explicit ``(fan_out, fan_in)`` pair of finite numbers > 0 (JAX's rule may give non-integers)."""
    try:
        pair = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a pair (fan_out, fan_in), got {value!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair (fan_out, fan_in), got {len(pair)} values {pair!r}")
    out = []
    for v, nm in zip(pair, ("fan_out", "fan_in")):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
            raise TypeError(f"{name}: {nm} must be a number, got {type(v).__name__} {v!r}")
        f = float(v)
        if not (np.isfinite(f) and f > 0.0):
            raise ValueError(f"{name}: {nm} must be finite and > 0, got {v!r}")
        out.append(int(f) if f.is_integer() else f)
    return tuple(out)


def axes(value, ndim, name):
    """An axis or a sequence of axes of an ndim-dimensional shape (negative counted from the end),
    as a tuple of non-negative ints without repeats (JAX's in_axis/out_axis/batch_axis)."""
    items = (value,) if isinstance(value, (numbers.Integral, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    out = []
    for a in items:
        a = integer(a, name)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={value!r} is out of range for a {ndim}-dimensional shape "
                             f"(axes -{ndim}..{ndim - 1})")
        a %= ndim
        if a in out:
            raise ValueError(f"{name}={value!r} names axis {a} twice")
        out.append(a)
    return tuple(out)


_REAL = {"float32": np.float32, "float64": np.float64}
_COMPLEX = {"complex64": np.complex64, "complex128": np.complex128}
_COMPLEX_OF = {np.float32: np.complex64, np.float64: np.complex128}


def _dtype_name(dtype):
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def real_dtype(dtype, name="dtype"):
    nm = _dtype_name(dtype)
    if nm not in _REAL:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}")
    return np.dtype(_REAL[nm])


def sample_dtype(dtype, is_complex, scheme):
    """The output dtype of a scheme: float32/float64, or complex64/complex128 for complex schemes
    (for which "float32"/"float64" mean complex64/complex128)."""
    nm = _dtype_name(dtype)
    if is_complex:
        if nm in _REAL:
            return np.dtype(_COMPLEX_OF[_REAL[nm]])
        if nm in _COMPLEX:
            return np.dtype(_COMPLEX[nm])
        raise TypeError(f"scheme {scheme!r} produces complex64 or complex128 (dtype 'float32', "
                        f"'float64', 'complex64' or 'complex128'), got {dtype!r}")
    if nm in _REAL:
        return np.dtype(_REAL[nm])
    if nm in _COMPLEX:
        raise TypeError(f"scheme {scheme!r} is real and cannot produce {nm}; use dtype='float32' or "
                        f"'float64', or the complex scheme 'complex_glorot'")
    raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def stream_range(index, n_index, sub=0, n_sub=1):
    """Indices index..index+n_index-1 < 2**32 and sub-indices sub..sub+n_sub-1 < 2**24."""
    index = nonneg_int(index, "start")
    n_index = nonneg_int(n_index, "batch")
    if index + n_index > MAX_INDEX:
        raise ValueError(f"start + batch must be <= 2**32 (the stream has 2**32 matrices per seed and "
                         f"purpose), got start={index}, batch={n_index}; use another seed for more")
    sub = nonneg_int(sub, "sub")
    n_sub = nonneg_int(n_sub, "n_sub")
    if sub + n_sub > MAX_SUB:
        raise ValueError(f"sub-indices (layers, realisations, vectors) must be < 2**24, got "
                         f"{sub}..{sub + n_sub - 1}")
    return index, n_index, sub, n_sub


def memory(nbytes, what, backend="cpu", margin=0.9):
    """Refuse, before allocating, a request larger than the memory available now."""
    from ._backend import available_memory
    avail = available_memory(backend)
    if nbytes > margin * avail:
        where = "GPU" if backend == "cuda" else "host"
        raise MemoryError(f"{what} needs {nbytes / 2**30:.2f} GiB but only {avail / 2**30:.2f} GiB of "
                          f"{where} memory is available; ask for a smaller batch and loop over start=...")


def out_array(out, shape, dtype, backend):
    """A writable, C-contiguous NumPy/CuPy view of a caller's buffer (no copy), or a clear error.

    Accepts NumPy/CuPy arrays and foreign buffers through DLPack, ``__cuda_array_interface__``,
    ``__array_interface__`` or the buffer protocol (e.g. a torch tensor on the matching device).
    """
    from . import _backend
    if backend == "cpu":
        if _backend.is_cupy(out) or hasattr(out, "__cuda_array_interface__"):
            raise ValueError('out is a GPU buffer but backend="cpu"; pass a host array, or use '
                             'backend="cuda"')
        arr = out
        if not isinstance(arr, np.ndarray):
            dev = getattr(out, "__dlpack_device__", None)
            if dev is not None and dev()[0] != 1:  # kDLCPU == 1
                raise ValueError(f'out lives on DLPack device {dev()} but backend="cpu"; pass a host '
                                 f'buffer or use backend="cuda"')
            try:
                arr = np.from_dlpack(out) if dev is not None else np.asarray(out)
            except Exception as exc:
                raise TypeError(f"out must be an array-like buffer (NumPy, DLPack, buffer protocol), "
                                f"got {type(out).__name__}: {exc}") from exc
    else:
        cp = _backend.xp("cuda")
        if isinstance(out, np.ndarray):
            raise ValueError('out is a host (NumPy) array but backend="cuda"; pass a CuPy array or a '
                             'GPU tensor, or use backend="cpu"')
        arr = out
        if not isinstance(arr, cp.ndarray):
            try:
                if hasattr(out, "__cuda_array_interface__"):
                    arr = cp.asarray(out)
                elif hasattr(out, "__dlpack__"):
                    arr = cp.from_dlpack(out)
                else:
                    raise TypeError("no __cuda_array_interface__ or __dlpack__")
            except Exception as exc:
                raise ValueError(f'out must be a GPU buffer on the current device for backend="cuda", '
                                 f'got {type(out).__name__}: {exc}') from exc
        if arr.device.id != cp.cuda.Device().id:
            raise ValueError(f"out is on GPU {arr.device.id} but the current device is "
                             f"{cp.cuda.Device().id}; use `with cupy.cuda.Device({arr.device.id}):`")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    if arr.dtype != dtype:
        raise TypeError(f"out has dtype {arr.dtype}, expected {np.dtype(dtype).name}")
    if not arr.flags.c_contiguous:
        raise ValueError("out must be C-contiguous; pass a contiguous buffer (e.g. .contiguous() / "
                         "np.ascontiguousarray) and copy it back yourself")
    if backend == "cpu" and not arr.flags.writeable:
        raise ValueError("out is read-only; pass a writable buffer")
    return arr


def finite(a, name):
    """Raise unless every entry of the float or complex array ``a`` is finite.

    By its smallest and largest (real and imaginary) parts, two reductions that allocate nothing: a NaN
    propagates through min/max and an infinity is the min or the max.  ``isfinite(a).all()`` first
    wrote a boolean array of a's size; for a fresh batch of 50 complex 500 x 500 matrices that cost 26
    ms, 5% of its spectral radii (bench/NOTES.md, "The main job's chunks")."""
    xp = np if isinstance(a, np.ndarray) else __import__("cupy")
    if a.size == 0:
        return
    r = a.view(a.real.dtype) if a.dtype.kind == "c" and a.flags.c_contiguous else a
    if r.dtype.kind == "c":                      # a non-contiguous complex view: its parts, as views
        ok = all(bool(xp.isfinite(p.min())) and bool(xp.isfinite(p.max())) for p in (r.real, r.imag))
    else:
        ok = bool(xp.isfinite(r.min())) and bool(xp.isfinite(r.max()))
    if not ok:
        raise ValueError(f"{name} contains NaN or infinite entries; every entry must be finite")


# --- rf.propagate and rf.theory.mean_field -------------------------------------------------------
ACTIVATIONS = _act.PROPAGATE


def activation(name):
    """One of ACTIVATIONS (case-insensitive), or a clear error."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, one of {ACTIVATIONS}, got {type(name).__name__}")
    nm = name.lower()
    if nm not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}")
    return nm


def nonneg_finite(x, name):
    """A finite float >= 0 (variances, standard deviations)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    v = float(x)
    if not (np.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {v}")
    return v


_activation, _seed = activation, seed   # (propagate_args' parameters shadow these names)


def propagate_args(width, depth, *, activation, batch, samples, seed, start, bias_std, dtype, in_width,
                   checkpoint):
    """The numeric arguments of rf.propagate, checked and normalised (a dict; the scheme and backend are
    checked by their own tables)."""
    from .spec import propagate as spec
    width = positive_int(width, "width")
    depth = positive_int(depth, "depth")
    if depth > spec.MAX_DEPTH:
        raise ValueError(f"depth must be <= 2**24 (layers are sub-indices of the weights stream), got {depth}")
    in_width = width if in_width is None else positive_int(in_width, "in_width")
    act = _activation(activation)
    batch = positive_int(batch, "batch")
    samples = positive_int(samples, "samples")
    if samples > spec.MAX_SAMPLES:
        raise ValueError(f"samples must be <= 2**24 (inputs are sub-indices of the PROP_INPUT stream), got "
                         f"{samples}; make more networks (batch) instead")
    seed_ = _seed(seed)
    start, batch, _, _ = stream_range(start, batch)
    bias_std = nonneg_finite(bias_std, "bias_std")
    dt = real_dtype(dtype, "dtype")
    if checkpoint is not None:
        checkpoint = positive_int(checkpoint, "checkpoint")
    return dict(width=width, depth=depth, in_width=in_width, activation=act, batch=batch, samples=samples,
                seed=seed_, start=start, bias_std=bias_std, dtype=dt.name, checkpoint=checkpoint)


# --- rf.spectral_radius and rf.spectral_norm ------------------------------------------------------
SPECTRAL_DTYPES = ("float32", "float64", "complex64", "complex128")
SPECTRAL_METHODS = ("power", "exact")


def square_stack(W, name="W"):
    """A (..., n, n) float32/float64/complex64/complex128 array with n >= 1 and no empty batch axis:
    returns (batch shape, n).  Finiteness is checked separately (``finite``)."""
    shape = tuple(W.shape)
    if len(shape) < 2:
        raise ValueError(f"{name} must have shape (..., n, n) (one or more square matrices), got shape "
                         f"{shape}; for a single matrix pass a 2-D array")
    if shape[-1] != shape[-2]:
        raise ValueError(f"{name} must be square in its last two axes, got shape {shape} "
                         f"({shape[-2]}x{shape[-1]}); eigenvalues need n x n matrices")
    if shape[-1] == 0 or any(d == 0 for d in shape):
        raise ValueError(f"{name} is empty (shape {shape}); pass at least one matrix with n >= 1")
    nm = _dtype_name(W.dtype)
    if nm not in SPECTRAL_DTYPES:
        raise TypeError(f"{name} must be float32, float64, complex64 or complex128, got dtype {nm}; "
                        f"convert with W.astype('float64') (or 'complex128')")
    return shape[:-2], shape[-1]


def spectral_method(method):
    if method not in SPECTRAL_METHODS:
        raise ValueError(f"method must be one of {SPECTRAL_METHODS} ('exact' = LAPACK/cuSOLVER reference), "
                         f"got {method!r}")
    return method


def krylov_dim(k):
    """The largest Krylov dimension of rf.spectral_radius / rf.spectral_norm (rinit_fast.spec.spectral)."""
    k = integer(k, "krylov_dim")
    if k < MIN_KRYLOV_DIM:
        raise ValueError(f"krylov_dim must be >= {MIN_KRYLOV_DIM} (a Krylov space that small cannot "
                         f"separate the top eigenvalues), got {k}")
    return k


def tolerance(tol, name="tol"):
    """A relative tolerance in (0, 1)."""
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number in (0, 1), got {type(tol).__name__} {tol!r}")
    v = float(tol)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must be in (0, 1) (a relative accuracy such as 1e-4), got {v}")
    return v


# --- rf.unroll -------------------------------------------------------------------------------------
NONLINEARITIES = _unroll.NONLINEARITIES
UNROLL_MAX_VALUES = _unroll.MAX_VALUES   # values of one input stream (2**48 Philox blocks, >= 2 values each)


def unroll_weights(W):
    """W: a real (n, n) or (batch, n, n) float32/float64 array (NumPy, or CuPy: then checked on the
    device, without a host copy) with finite entries, not too large for the scaled state
    (max|W|·n < 2**100 in float32, 2**400 in float64: one step must not overflow the state or its
    float64 squared norm).  Returns (W3, batched) with W3 a C-contiguous (batch, n, n) view or copy on
    W's device."""
    from . import _backend
    if _backend.is_cupy(W):
        xp = _backend._cupy()
    else:
        xp = np
        if not isinstance(W, np.ndarray):
            try:
                W = np.asarray(W)
            except Exception as exc:
                raise TypeError(f"W must be an array, got {type(W).__name__}: {exc}") from exc
    if W.ndim not in (2, 3):
        raise ValueError(f"W must have shape (n, n) or (batch, n, n), got shape {W.shape}")
    if W.shape[-1] != W.shape[-2] or W.shape[-1] == 0 or W.size == 0:
        raise ValueError(f"W must hold square n x n matrices with n >= 1 (and batch >= 1), got shape "
                         f"{W.shape}")
    nm = _dtype_name(W.dtype)
    if nm not in _REAL:
        raise TypeError(f"W must be float32 or float64 (unroll is real), got dtype {nm}; convert with "
                        f"W.astype('float32') or W.astype('float64')")
    finite(W, "W")
    n = W.shape[-1]
    top = _unroll.W_MAX_LOG2[nm]
    wmax = float(xp.abs(W).max())
    if wmax * n >= 2.0 ** top:
        raise ValueError(f"W has entries up to {wmax:.3g}: max|W|·n must be below 2**{top} for the scaled "
                         f"state to stay finite; unroll W / c instead and add t·log(c) to log_norm "
                         f"(linear/relu)")
    batched = W.ndim == 3
    W3 = xp.ascontiguousarray(W if batched else W[None])
    return W3, batched


def nonlinearity(name):
    if not isinstance(name, str) or name.lower() not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {name!r}")
    return name.lower()


def unroll_steps(steps, record_every):
    steps = positive_int(steps, "steps")
    rec = integer(record_every, "record_every")
    if not 1 <= rec <= steps:
        raise ValueError(f"record_every must be in [1, steps] = [1, {steps}], got {rec} (log_norm has "
                         f"steps // record_every columns)")
    return steps, rec


def flag(x, name):
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(x).__name__} {x!r}")
    return bool(x)


def real_array(a, name, dtype, shape_hint):
    """A finite host array converted to ``dtype`` (a copy only when needed)."""
    from . import _backend
    if _backend.is_cupy(a) or hasattr(a, "__cuda_array_interface__"):
        raise TypeError(f"{name} must be a host array (W is on the host); use cupy.asnumpy({name})")
    try:
        arr = np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be an array of shape {shape_hint}, got {type(a).__name__}") from exc
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise TypeError(f"{name} must be a real array of shape {shape_hint}, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    finite(arr, name)
    return arr


def unroll_rows(a, name, n, batch, R, batched, dtype):
    """h0 / v0: (n,), (R, n) or (batch, R, n) → a (batch or 1, R or 1, n) array of ``dtype``.  An R axis
    must equal ``realizations`` and a batch axis the batch of W (never a silent broadcast)."""
    arr = real_array(a, name, dtype, "(n,), (R, n) or (batch, R, n)")
    shp = arr.shape
    if arr.ndim not in (1, 2, 3) or shp[-1] != n:
        raise ValueError(f"{name} must have shape (n,), (R, n) or (batch, R, n) with n = {n}, got {shp}")
    if arr.ndim >= 2 and shp[-2] != R:
        raise ValueError(f"{name} has {shp[-2]} rows but realizations={R}: its R axis must equal "
                         f"realizations (pass a (n,) vector to use the same one for every realisation)")
    if arr.ndim == 3:
        if not batched:
            raise ValueError(f"{name} has a batch axis (shape {shp}) but W is a single matrix; pass "
                             f"{name} of shape (R, n) or (n,)")
        if shp[0] != batch:
            raise ValueError(f"{name} has batch {shp[0]} but W has batch {batch}")
    return arr.reshape((shp[0] if arr.ndim == 3 else 1, shp[-2] if arr.ndim >= 2 else 1, n))


def unroll_inputs(x, steps, d, batch, R, batched, dtype):
    """An inputs array (steps, d), (R, steps, d) or (batch, R, steps, d) → (batch or 1, R or 1, steps, d)."""
    arr = real_array(x, "inputs", dtype, "(steps, d), (R, steps, d) or (batch, R, steps, d)")
    shp = arr.shape
    if arr.ndim not in (2, 3, 4) or shp[-2:] != (steps, d):
        raise ValueError(f"inputs must have shape (steps, d), (R, steps, d) or (batch, R, steps, d) with "
                         f"steps = {steps} and d = {d} (n, or U's column count), got {shp}")
    if arr.ndim >= 3 and shp[-3] != R:
        raise ValueError(f"inputs has R axis {shp[-3]} but realizations={R}: they must be equal")
    if arr.ndim == 4:
        if not batched:
            raise ValueError(f"inputs has a batch axis (shape {shp}) but W is a single matrix")
        if shp[0] != batch:
            raise ValueError(f"inputs has batch {shp[0]} but W has batch {batch}")
    return arr.reshape((shp[0] if arr.ndim == 4 else 1, shp[-3] if arr.ndim >= 3 else 1, steps, d))


def unroll_inputs_kind(inputs):
    """``inputs``: "gaussian", None or an array (returned unchanged; an array is checked by unroll_inputs)."""
    if isinstance(inputs, str) and inputs != "gaussian":
        raise ValueError(f'inputs must be "gaussian", None or an array, got {inputs!r}')
    return inputs


def unroll_stream_length(steps, d):
    """steps·d values must fit one input stream."""
    if steps * d >= UNROLL_MAX_VALUES:
        raise ValueError(f"steps·d = {steps * d} exceeds the {UNROLL_MAX_VALUES} values of one input stream; "
                         f"unroll in shorter runs")


def unroll_v0(v0, tangent):
    if v0 is not None and not tangent:
        raise ValueError("v0 is given but tangent=False; pass tangent=True to propagate it")


def unroll_input_bound(bound, input_scale, dtype):
    """The bound on |U x_t + b| (spec.unroll.input_bound) must leave headroom below the dtype's largest
    number (the scaled inputs and the state's squared norm must stay finite)."""
    dt = np.dtype(dtype)
    top = float(np.finfo(dt).max) * 2.0 ** -_unroll.INPUT_HEADROOM_LOG2
    if not bound < top or input_scale * _unroll.GAUSS_MAX >= top:
        raise ValueError(f"the inputs are too large for {dt.name}: |U x_t + b| may reach {bound:.3g} "
                         f"(input_scale={input_scale:g}); scale them down or use float64")


def unroll_matrix_U(U, n, dtype):
    arr = real_array(U, "U", dtype, "(n, d)")
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        raise ValueError(f"U must have shape (n, d) = ({n}, d) with d >= 1 (h_t = f(W h + U x_t + b)), "
                         f"got {arr.shape}")
    return arr


def unroll_bias(b, n, dtype):
    arr = real_array(b, "b", dtype, "(n,)")
    if arr.shape != (n,):
        raise ValueError(f"b must have shape (n,) = ({n},), got {arr.shape}")
    return arr


def unroll_drive(inputs, U, b, h0, input_scale, n, steps, batch, R, batched, dtype):
    """What drives a recurrence h_t = f(W h_{t-1} + U x_t + b), checked as rf.unroll checks it (and
    rf.lyapunov, which runs the same recurrence): returns ``(mode, UT, d, bias, xarr, h0, bound)``, the
    input mode (spec/unroll.py ``mode_of``), Uᵀ (0 rows without U), the input width d, b (empty without
    it), the input array (a 1x1x1x1 placeholder unless given), h0 as (batch, R, n) rows or None, and the
    bound on |U x_t + b| (spec/unroll.py ``input_bound``), already checked against the dtype."""
    dt = np.dtype(dtype)
    inputs = unroll_inputs_kind(inputs)
    mode = _unroll.mode_of(inputs)
    UT = np.zeros((0, n), dt)
    if U is not None:
        UT = np.ascontiguousarray(unroll_matrix_U(U, n, dt).T)
    d = UT.shape[0] or n
    bias = np.zeros(0, dt) if b is None else unroll_bias(b, n, dt)
    xarr = np.zeros((1, 1, 1, 1), dt)
    if mode == _unroll.ARRAY:
        xarr = unroll_inputs(inputs, steps, d, batch, R, batched, dt)
    unroll_stream_length(steps, d)
    rows = None if h0 is None else unroll_rows(h0, "h0", n, batch, R, batched, dt)
    bound = _unroll.input_bound(mode, input_scale, xarr, UT, bias)
    unroll_input_bound(bound, input_scale, dt)
    return mode, UT, d, bias, xarr, rows, bound


# --- studies: rf.plot_study and rinit-fast plot ------------------------------------------------------

def figure_format(fmt, formats):
    """One of ``formats`` (case-insensitive), or a clear error."""
    if not isinstance(fmt, str) or fmt.lower() not in formats:
        raise ValueError(f"format must be one of {', '.join(formats)} (the figure file format), got {fmt!r}")
    return fmt.lower()


# --- rf.lyapunov -----------------------------------------------------------------------------------
def lyapunov_weights(W):
    """W for rf.lyapunov: a real (n, n) or (batch, n, n) float32/float64 host array with finite entries
    and max|W|·n below the bound of rf.unroll (the scaled relu state and the frame's squared column norms
    must stay finite).  Returns (W3, batched)."""
    from . import _backend
    if _backend.is_cupy(W) or hasattr(W, "__cuda_array_interface__"):
        raise TypeError("rf.lyapunov runs on the CPU only (the CUDA kernel comes later, docs/lyapunov.md); "
                        "pass a host array, e.g. cupy.asnumpy(W)")
    if not isinstance(W, np.ndarray):
        try:
            W = np.asarray(W)
        except Exception as exc:
            raise TypeError(f"W must be an array, got {type(W).__name__}: {exc}") from exc
    if W.dtype.kind == "c":
        raise TypeError(f"W must be real (float32 or float64), got dtype {W.dtype}: the exponents of "
                        f"rf.lyapunov are those of a real recurrence; pass W.real, or the real 2n x 2n form "
                        f"[[Re W, -Im W], [Im W, Re W]] of a complex linear map")
    return unroll_weights(W)     # shapes, dtype, finiteness, max|W|·n: rf.unroll's checks


def lyapunov_k(k, n):
    """k in 1..n (None: n)."""
    if k is None:
        return n
    v = integer(k, "k")
    if not 1 <= v <= n:
        raise ValueError(f"k must be in 1..n = 1..{n} (the number of exponents; W is {n} x {n}), got {v}")
    return v


def lyapunov_schedule(steps, warmup, reortho_every, record_every):
    """(steps, warmup, reortho_every, record_every or 0): steps >= 1, 0 <= warmup < steps (None: steps // 10),
    reortho_every >= 1, record_every None or in 1..steps - warmup."""
    from .spec.lyapunov import default_warmup
    steps = positive_int(steps, "steps")
    warmup = default_warmup(steps) if warmup is None else nonneg_int(warmup, "warmup")
    if warmup >= steps:
        raise ValueError(f"warmup must be < steps (the exponents average the steps after the warm-up), got "
                         f"warmup={warmup}, steps={steps}; increase steps or lower warmup")
    every = positive_int(reortho_every, "reortho_every")
    if record_every is None:
        rec = 0
    else:
        rec = integer(record_every, "record_every")
        if not 1 <= rec <= steps - warmup:
            raise ValueError(f"record_every must be None or in [1, steps - warmup] = [1, {steps - warmup}], "
                             f"got {rec} (running estimates are recorded every record_every steps after "
                             f"the warm-up)")
    return steps, warmup, every, rec
