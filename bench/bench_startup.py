"""asv: time to first result (issue 11): ``import rinit_fast``, and the first call of each kernel family in a
fresh interpreter, with an empty and with a filled Numba cache.

``timeraw_`` benchmarks return code that asv runs in a fresh Python process (asv_runner's
``TimerawBenchmark``): the second string is an untimed setup run first in that process, the first
string is timed (wall clock, ``timeit``), once per sample.  The calls and sizes are those of
bench/compare_startup.py (``FIRST_CALLS``: n = 64, inputs made with NumPy in the setup, so the timed
statement is the first rinit_fast call), which also reports CPU seconds, compile counts and the NumPy
anchors side by side.

- ``cache="empty"``: the setup points ``NUMBA_CACHE_DIR`` at a new empty temporary directory (removed
  when the process exits) before anything imports Numba, so the timed call compiles everything it needs.
- ``cache="filled"``: the process uses the environment's own cache (``NUMBA_CACHE_DIR`` if set, else
  ``__pycache__`` beside the installed kernels); ``setup`` makes the same call once in another process
  first, so that cache holds what the call needs: the timed call only loads machine code.

Every sample is a fresh process, and an empty-cache sample compiles from scratch: ``warmup_time = 0``
(no warm-up sample), at most 3 samples and 60 s per benchmark (``--quick``, as in CI, takes one).
"""
from __future__ import annotations

import os
import subprocess
import sys

from .common import Benchmark
from .compare_startup import FAMILIES, FIRST_CALLS

_EMPTY_CACHE = """\
import atexit, os, shutil, tempfile
_cache = tempfile.mkdtemp(prefix="rf-asv-numba-cache-")
os.environ["NUMBA_CACHE_DIR"] = _cache
atexit.register(shutil.rmtree, _cache, True)
"""


class _Startup(Benchmark):
    warmup_time = 0        # a warm-up sample would be a whole extra process (and compile)
    repeat = (1, 3, 60.0)  # fresh processes: 1 to 3 samples, stop after 60 s
    min_run_count = 1
    number = 1


class Import(_Startup):
    """``import rinit_fast`` in a fresh interpreter (it compiles nothing: the kernels are compiled or
    loaded on first use)."""

    def timeraw_import(self):
        return "import rinit_fast", _EMPTY_CACHE


class FirstCall(_Startup):
    """The first call of each kernel family (bench/compare_startup.py's ``FIRST_CALLS``) in a fresh
    interpreter, ``rinit_fast`` and its inputs already imported and made (untimed)."""

    params = (list(FAMILIES), ["empty", "filled"])
    param_names = ["family", "cache"]
    timeout = 300

    def setup(self, family, cache):
        if cache == "filled":  # fill the environment's cache with what this call needs (cheap when it is)
            setup, call, _ = FIRST_CALLS[family]
            code = f"import numpy as np\nimport rinit_fast as rf\n{setup}\n{call}\n"
            subprocess.run([sys.executable, "-P", "-c", code], check=True, cwd=os.getcwd())

    def timeraw_first_call(self, family, cache):
        setup, call, _ = FIRST_CALLS[family]
        pre = _EMPTY_CACHE if cache == "empty" else ""
        return call, f"{pre}import numpy as np\nimport rinit_fast as rf\n{setup}\n"
