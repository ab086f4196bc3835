"""The one decorator factory for Numba options (as numba-stats does).

Every CPU kernel is compiled with ``cache=True`` (a fresh install compiles each kernel once, on its
first use, and later processes load the machine code from the cache), ``nogil=True``,
``error_model="numpy"`` (no Python exception checks in hot loops) and, deliberately, **no fastmath**:
the random stream must give the same bits on every instruction set and on the GPU, which forbids
re-association and fused multiply-add contraction (docs/rng.md).

Kernels carry explicit signatures but are compiled lazily, **one signature at a time**, on the first
call with that signature's argument types: importing ``rinit_fast`` compiles nothing, and a program that
samples float32 matrices never pays for the float64 or complex specialisations.  Every kernel made here
is recorded in ``REGISTRY``; ``compile_all`` and ``compile_selected`` (``rinit-fast compile``) compile
signatures ahead of time, filling the on-disk cache (``NUMBA_CACHE_DIR``, docs/performance.md).

Ahead-of-time selection (``rinit-fast compile --family ... --dtype ...``): every kernel belongs to the
*family* of the module that defines it (``FAMILIES``: ``sample`` is the Philox/sampling modules, the
others are one module each; a new module is a family of its own name), and selecting a family also
selects the families its calls use (``USES``).  Every signature has a *precision* (``_precision``:
``"float32"`` for float32/complex64 variants, ``"float64"`` for float64/complex128 ones, None for
kernels every precision may use).  ``select`` lists the chosen (kernel, signature) pairs,
``compile_selected`` compiles them and reports, per signature, whether Numba compiled it or loaded it from
the cache (the dispatcher's ``stats``), with CPU and wall seconds.
"""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import subprocess
import sys
import threading
import time

import numba
import numpy as np
from numba import types


def _vector_width():
    """Let LLVM use 512-bit vectors on CPUs with AVX-512 (``RINIT_FAST_PREFER_512=0`` opts out).

    LLVM's default for Intel AVX-512 CPUs is ``prefer-256-bit``: it vectorises with 256-bit registers.
    The stream's loops (64-bit integer multiplies of Philox, the Box–Muller polynomials) run 1.3-1.7x
    faster with 512-bit vectors on this project's VM (bench/NOTES.md "Vector width"), with the same
    bits: the vector width changes how many blocks run side by side, never the operations of one value
    (no fastmath, no reduction is reordered).  Numba takes the CPU features from ``NUMBA_CPU_FEATURES``
    when its code generator is first built, so this sets ``numba.config.CPU_FEATURES`` (the host's
    features plus ``-prefer-256-bit``) unless the user set ``NUMBA_CPU_FEATURES``/``NUMBA_CPU_NAME``
    themselves.  It is process-wide: Numba code compiled after this in the same process (the user's own
    too) may use 512-bit vectors; a process that compiled Numba code before importing the kernels keeps
    its settings.  The cache is keyed by these features, so ``rinit-fast compile`` and later processes
    agree.  Documented in docs/performance.md.
    """
    if os.environ.get("RINIT_FAST_PREFER_512", "1").strip() == "0":
        return
    if numba.config.CPU_FEATURES or numba.config.CPU_NAME:
        return
    try:
        import llvmlite.binding as ll
        feats = ll.get_host_cpu_features()
    except Exception:  # pragma: no cover - a host whose features LLVM cannot read: keep the defaults
        return
    if not feats.get("avx512f", False):
        return
    numba.config.CPU_FEATURES = feats.flatten() + ",-prefer-256-bit"


_vector_width()

_COMMON = dict(cache=True, nogil=True, error_model="numpy", fastmath=False, boundscheck=False)

REGISTRY = []
"""Every LazyKernel created by ``kernel``, in definition order."""

FAMILIES = {
    "sample": ("philox", "sampling", "stream"),
    "spectral": ("spectral",),
    "unroll": ("unroll",),
    "propagate": ("propagate",),
    "lyapunov": ("lyapunov",),
}
"""Kernel family -> the ``kernels/cpu`` modules whose kernels belong to it (absent modules are skipped)."""

USES = {"spectral": ("sample",), "unroll": ("sample",), "propagate": ("sample",), "lyapunov": ("sample",)}
"""Family -> the other families its public calls also run: spectral draws its start vectors, unroll its
initial states and tangents, propagate its materialised layers from the random stream, through the
``sample`` kernels (rinit_fast/rng.py, rinit_fast/sampling.py).  ``select`` adds them."""

PRECISIONS = ("float32", "float64")
"""What ``--dtype`` selects: float32 also selects complex64 signatures, float64 complex128 (as the
public ``dtype=`` of the complex schemes means)."""

_PRECISION_OF = {types.float32: "float32", types.complex64: "float32",
                 types.float64: "float64", types.complex128: "float64"}


def _key(args):
    """What selects a signature: the Numba type of each array argument (scalars convert)."""
    return tuple(numba.typeof(a) if isinstance(a, np.ndarray) else None for a in args)


def _matches(sig, key):
    for want, got in zip(sig.args, key):
        if got is None:
            continue
        if not isinstance(want, types.Array) or want.dtype != got.dtype or want.ndim != got.ndim:
            return False
        if want.layout == "C" and got.layout != "C":
            return False
    return True


class LazyKernel:
    """A Numba kernel with explicit signatures, each compiled (or loaded from the cache) on first use."""

    def __init__(self, fn, signatures, opts):
        self.py_func = fn
        self.signatures = signatures
        self._opts = opts
        self._by_sig = {}
        self._by_key = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)
        REGISTRY.append(self)

    def _compile(self, i):
        d = self._by_sig.get(i)
        if d is None:
            with self._lock:
                d = self._by_sig.get(i)
                if d is None:
                    if self.signatures is None:
                        d = numba.njit(**self._opts)(self.py_func)
                    else:
                        with _compile_lock(self, i):
                            d = numba.njit([self.signatures[i]], **self._opts)(self.py_func)
                    self._by_sig[i] = d
        return d

    def dispatcher_for(self, *args):
        """The compiled Numba dispatcher of the signature that ``args`` select."""
        if self.signatures is None or len(self.signatures) == 1:
            return self._compile(0)
        key = _key(args)
        d = self._by_key.get(key)
        if d is None:
            for i, sig in enumerate(self.signatures):
                if _matches(sig, key):
                    d = self._by_key[key] = self._compile(i)
                    break
            else:
                raise TypeError(f"{self.py_func.__name__}: no signature for argument types {key}; "
                                f"have {[str(s) for s in self.signatures]}")
        return d

    @property
    def dispatcher(self):
        """The dispatcher of a single-signature kernel (compiled on first access)."""
        if self.signatures is not None and len(self.signatures) > 1:
            raise TypeError(f"{self.py_func.__name__} has {len(self.signatures)} signatures: "
                            f"use dispatcher_for(*args)")
        return self._compile(0)

    def compile_all(self, precisions=None):
        """Compile (or load from the cache) every signature (of the given precisions, default all)."""
        for i in range(0 if self.signatures is None else len(self.signatures)):
            if precisions is None or self.precision(i) in (None, *precisions):
                self._compile(i)

    def compile(self, i):
        """Compile (or load from the cache) signature ``i``; returns its dispatcher."""
        return self._compile(i)

    @property
    def parallel(self):
        """Whether the kernel is compiled with ``parallel=True`` (loading one starts Numba's threading
        layer: a process that forks after that must not use it in the child)."""
        return bool(self._opts.get("parallel"))

    @property
    def module(self):
        """The short name of the defining module (``sampling``, ``spectral``, ...)."""
        return self.py_func.__module__.rsplit(".", 1)[-1]

    @property
    def family(self):
        """The kernel family (``FAMILIES``) of the defining module."""
        return family_of(self.module)

    def precision(self, i):
        """``"float32"``, ``"float64"`` or None (every precision uses it) for signature ``i``; see
        ``_precision``."""
        return _precision(self, i)

    def compiled(self, i):
        """The dispatcher of signature ``i`` if this process has compiled or loaded it, else None."""
        return self._by_sig.get(i)

    def __call__(self, *args):
        return self.dispatcher_for(*args)(*args)

    def __repr__(self):
        return f"<LazyKernel {self.py_func.__module__}.{self.py_func.__qualname__}>"


def _new_locks_in_child():
    """After a fork: a kernel's lock held by another thread of the parent (compiling) would stay held in
    the child, whose first call of that kernel would then wait forever."""
    for k in REGISTRY:
        k._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_in_child)


LOCK_WAIT_S = 300.0
"""How long a process waits for another one's compilation of the same signature before compiling it
itself (a guard against a stopped process holding the lock; compilations take seconds)."""


class _compile_lock:
    """An exclusive lock per kernel signature and cache directory, shared by the processes of this machine
    and user: while one process compiles a signature into the cache, another that needs it waits and
    then loads it, instead of compiling it too.  This is what lets the main job's helper
    (:func:`prefetch`) and the job itself, or Dask workers sharing one cache, each compile a kernel
    once: without it, a job reaching a kernel the helper was still compiling compiled it a second time
    (measured: 4.4 CPU s for lyapunov.run_item at the end of a cold `rinit-fast`).  A file lock
    (``fcntl.flock``) in the temporary directory: it goes with the process that holds it, even when
    that process is killed.  A no-op where ``fcntl`` does not exist (Windows) or the lock file cannot be
    made; after ``LOCK_WAIT_S`` a waiter compiles anyway."""

    def __init__(self, k, i):
        import hashlib
        mod = sys.modules[k.py_func.__module__]
        cache = numba.config.CACHE_DIR or os.path.dirname(os.path.abspath(mod.__file__))
        key = "\0".join((os.path.abspath(cache), k.py_func.__module__, k.py_func.__qualname__,
                         signature_text(k.signatures[i])))
        self.name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"
        self.f = None

    def __enter__(self):
        try:
            import fcntl
            import tempfile
            d = os.path.join(tempfile.gettempdir(), f"rinit-fast-compile-{os.getuid()}")
            os.makedirs(d, mode=0o700, exist_ok=True)
            self.f = open(os.path.join(d, self.name), "a")
        except (ImportError, OSError, AttributeError):  # no fcntl / no getuid (Windows), no writable temp
            self.f = None
            return self
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:       # compile without the lock: at worst, twice
                    self.f.close()
                    self.f = None
                    return self
                time.sleep(0.02)
            except OSError:                           # a file system without flock: no lock
                self.f.close()
                self.f = None
                return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()                            # closing the file releases the lock
            self.f = None
        return False


def kernel(signature=None, *, parallel=False, **extra):
    """Decorate a kernel (a function called from Python) with the project's options.

    ``signature`` is a Numba signature or a list of them; each compiles on the first call that needs it.
    """
    opts = dict(_COMMON, parallel=parallel, **extra)
    if signature is not None and not isinstance(signature, (list, tuple)):
        signature = [signature]

    def wrap(fn):
        return LazyKernel(fn, signature, opts)
    return wrap


def device(fn=None, **extra):
    """Compile a helper that is only called from other kernels.

    Helpers are inlined at the Numba IR level (``inline="always"``): LLVM's own inliner gives up on
    a function as large as ten unrolled Philox rounds, and a call left in a loop body stops that
    loop from being vectorised (measured: 15 ns per block instead of 2; bench/NOTES.md).
    """
    opts = dict(_COMMON, inline="always", **extra)
    if fn is None:
        return numba.njit(**opts)
    return numba.njit(**opts)(fn)


def _precision(k, i):
    """The precision of signature ``i`` of kernel ``k``.

    The variants of one Python function (several signatures of one kernel, or several kernels made from
    one function, e.g. ``network_f32``/``network_f64``) differ in their dtype: the precision is that of
    the first argument whose type differs between them (an array's dtype, or a scalar's type); the API
    picks the variant of the caller's dtype.  A function with a single variant gets None (every
    precision selects it): the stream fills ``normal_f32``/``normal_f64`` are two functions, and a
    float32 call may well use the float64 one (the spectral kernels' float64 start vectors), as every
    orthogonal sample uses the float64 ``qr_haar``."""
    variants = [s for kk in REGISTRY if kk.py_func is k.py_func for s in (kk.signatures or ())]
    if len(variants) < 2:
        return None
    for pos, t in enumerate(k.signatures[i].args):
        if any(len(v.args) <= pos or v.args[pos] != t for v in variants):
            return _PRECISION_OF.get(t.dtype if isinstance(t, types.Array) else t)
    return None


def family_of(module):
    """The family of kernel module ``module`` (short name): its ``FAMILIES`` key, or the name itself."""
    for fam, mods in FAMILIES.items():
        if module in mods:
            return fam
    return module


def kernel_modules():
    """Short names of every CPU kernel module (``kernels/cpu/*.py`` not starting with ``_``), sorted."""
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(m.name for m in pkgutil.iter_modules([here]) if not m.name.startswith("_"))


def family_names():
    """Every family that has kernels (importing every kernel module, which compiles nothing): those of
    ``FAMILIES`` first, in that order, then any other kernel module's name."""
    _import(kernel_modules())
    have = {k.family for k in REGISTRY}
    return [f for f in FAMILIES if f in have] + sorted(have - set(FAMILIES))


def _import(modules):
    for m in modules:
        importlib.import_module(f"{__package__}.{m}")


def select(families=None, precisions=None):
    """Import the kernel modules of ``families`` (default: all; with the families they use, ``USES``)
    and return the selected ``(kernel, signature index)`` pairs, by family, in registry order.

    ``precisions`` (default: both) keeps the signatures of those precisions and those every precision
    uses (precision None); a family that a chosen one uses (``USES``) is kept in every precision (a float32
    ``spectral_radius`` draws its start vectors in float64).
    Raises ``ValueError`` for an unknown family or precision, naming the valid ones."""
    known = families_ = family_names()
    if families is not None:
        bad = [f for f in families if f not in known]
        if bad:
            raise ValueError(f"family: unknown {', '.join(map(repr, bad))}; choose from {', '.join(known)}")
        families_ = list(families)
        families_ += [u for f in families for u in USES.get(f, ()) if u not in families_]
    if precisions is not None:
        bad = [d for d in precisions if d not in PRECISIONS]
        if bad:
            raise ValueError(f"dtype: unknown {', '.join(map(repr, bad))}; choose from "
                             f"{', '.join(PRECISIONS)} (float32 also selects complex64, float64 complex128)")
    used = {u for f in families_ for u in USES.get(f, ())}
    _import([m for m in kernel_modules() if family_of(m) in families_])
    out = []
    for k in list(REGISTRY):
        if k.family not in families_ or k.signatures is None:
            continue
        for i in range(len(k.signatures)):
            if precisions is None or k.family in used or k.precision(i) in (None, *precisions):
                out.append((k, i))
    order = {f: j for j, f in enumerate(known)}
    return sorted(out, key=lambda ki: order[ki[0].family])  # stable: registry order within a family


def signature_text(sig):
    """A signature as Numba prints its types: ``(array(float32, 3d, C), uint64) -> none``."""
    return f"({', '.join(str(a) for a in sig.args)}) -> {sig.return_type}"


def _compile_one(k, i):
    before = k.compiled(i)
    c0, w0 = time.process_time(), time.perf_counter()
    d = k.compile(i)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    if before is not None:
        status = "loaded"
    else:
        status = "compiled" if sum(d.stats.cache_misses.values()) else "cached"
    return dict(family=k.family, kernel=f"{k.module}.{k.py_func.__name__}",
                signature=signature_text(k.signatures[i]), precision=k.precision(i), status=status,
                cpu_s=cpu, wall_s=wall, cache_path=d.stats.cache_path)


def _worker(items):
    """In a worker process: compile the (module, qualname, signature) items, in order."""
    _import(sorted({m for m, _, _ in items}))
    out = []
    for module, qualname, sig in items:
        for k in list(REGISTRY):
            if k.module == module and k.py_func.__qualname__ == qualname and k.signatures is not None:
                hit = [i for i, s in enumerate(k.signatures) if signature_text(s) == sig]
                if hit:
                    out.append(_compile_one(k, hit[0]))
                    break
        else:  # pragma: no cover - the parent found it in the same source
            raise RuntimeError(f"kernel {module}.{qualname}{sig} not found in the worker")
    return out


def compile_selected(families=None, precisions=None, jobs=1, log=None):
    """Compile (or load from the on-disk cache) every signature that ``select`` chooses.

    Returns one dict per signature: ``family``, ``kernel`` (module.name), ``signature``
    (``signature_text``), ``precision``, ``status`` (``"compiled"``: Numba compiled it and wrote the
    cache; ``"cached"``: loaded from the cache; ``"loaded"``: already in this process), ``cpu_s`` and
    ``wall_s`` (in the process that did it), and ``cache_path`` (where Numba keeps it:
    ``NUMBA_CACHE_DIR`` or ``__pycache__`` beside the source, or Numba's user-wide fallback when neither
    is writable).  ``log(record)`` is called after each.  ``jobs > 1`` spreads the work over that many
    fresh processes; the signatures of one Python function stay in one process, in order, because they
    share one cache index file (concurrent writers of an index can drop each other's entries)."""
    chosen = select(families, precisions)
    records = []
    if jobs <= 1:
        for k, i in chosen:
            rec = _compile_one(k, i)
            records.append(rec)
            if log is not None:
                log(rec)
        return records
    import concurrent.futures as cf
    import multiprocessing
    groups = {}
    for k, i in chosen:
        groups.setdefault(id(k.py_func), []).append((k.module, k.py_func.__qualname__,
                                                      signature_text(k.signatures[i])))
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing compiled, nothing forked
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(groups)), mp_context=ctx) as pool:
        for recs in pool.map(_worker, list(groups.values())):
            for rec in recs:
                records.append(rec)
                if log is not None:
                    log(rec)
    return records


def compile_all(modules=None):
    """Import ``modules`` (default: every CPU kernel module) and compile every signature of every
    registered kernel; returns the number of kernels.  Fills the Numba cache ahead of first use."""
    _import(modules or kernel_modules())
    for k in list(REGISTRY):
        k.compile_all()
    return len(REGISTRY)


# ---- compiling ahead of a known job, in a low-priority helper process -----------------------------------

def resolve(items):
    """``(module, function name, dtype or None)`` items -> the ``(kernel, signature index)`` pairs they name.

    ``dtype`` None takes every signature of the function; otherwise a signature is taken when its
    precision (``"float32"``/``"float64"``) or the dtype of its first array argument (``"complex64"``)
    equals it.  Imports the modules, compiles nothing.  Raises ``ValueError`` naming an item that matches
    no signature (a renamed kernel must fail loudly, not leave a job compiling in its own process)."""
    _import(sorted({m for m, _, _ in items}))
    out = []
    for module, name, dtype in items:
        hit = []
        for k in REGISTRY:
            if k.module != module or k.py_func.__name__ != name or k.signatures is None:
                continue
            for i, sig in enumerate(k.signatures):
                first = next((a.dtype for a in sig.args if isinstance(a, types.Array)), None)
                if dtype is None or dtype in (k.precision(i), str(first)):
                    hit.append((k, i))
        if not hit:
            raise ValueError(f"prefetch: no kernel signature matches {(module, name, dtype)}; the kernels are "
                             f"listed by `rinit-fast compile --list`")
        out += [ki for ki in hit if ki not in out]
    return out


class Prefetch:
    """The helper process that ``prefetch`` started: ``wait()`` for it, or ``stop()`` it (the cache files
    Numba writes are replaced atomically, so stopping it mid-compile leaves no broken entry)."""

    def __init__(self, proc):
        self.proc = proc

    def wait(self, timeout=None):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a compile that ignores SIGTERM
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def prefetch(items, *, nice=0):
    """Compile ``items`` (see ``resolve``) into Numba's on-disk cache in a helper process (``nice`` added
    to its priority; default none), while this process goes on; returns a ``Prefetch``, or None when the
    environment variable ``RINIT_FAST_PREFETCH=0`` turns this off or no interpreter can be started.

    What it is for: a job that knows which kernels its later steps will call (the main job,
    rinit_fast/studies/reproduce.py) starts their compilation at once.  Numba compiles on one core; on a
    cold cache the job's own compiling leaves the other core idle, and the helper uses it, so that a later
    step finds its kernel in the cache (a load of ~0.1 s) instead of compiling it then.  At the job's own
    priority: the helper's work has to be done before the job's end anyway, and at low priority (nice +10,
    until 2026-12-05) it was starved while the job computed on every core, reached the last kernel only
    when the job needed it, and the job waited for it with a core idle (6.7 s at the end of a cold
    `rinit-fast`; bench/NOTES.md, "The main job against the code the target was set on").  With a filled
    cache it only loads each entry and exits.
    If the job reaches a kernel the helper has not finished, the job compiles it itself, as without a
    helper.  Items should not be functions the job compiles in the same moment (two processes writing
    different signatures of one function into one cache index can drop an entry; the cost is a compile
    in a later process, never a wrong result)."""
    if os.environ.get("RINIT_FAST_PREFETCH", "1").strip() == "0":
        return None
    texts = [(k.module, k.py_func.__qualname__, signature_text(k.signatures[i])) for k, i in resolve(items)]
    import json
    code = (f"import json, sys; from {__package__} import _jit; "
            f"_jit._prefetch_child(json.load(sys.stdin), {int(nice)})")
    # -P: never import a source tree from the working directory (a repository root's rinit_fast/ has no
    # kernels/); the helper imports the package this process runs.
    try:
        proc = subprocess.Popen([sys.executable, "-P", "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # no usable interpreter (an embedded Python): the job compiles for itself
        return None
    try:
        proc.stdin.write(json.dumps(texts).encode())
        proc.stdin.close()
    except BrokenPipeError:  # pragma: no cover - the helper died at start: the job compiles for itself
        pass
    return Prefetch(proc)


def _prefetch_child(texts, nice):
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    _worker([tuple(t) for t in texts])
