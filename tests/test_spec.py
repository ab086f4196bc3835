"""The spec layer is the one source of every constant: the C side agrees with it, and it stays pure.

* every numeric ``#define RF_*``, every ``enum { RF_... }`` member and every entry of an X-macro list
  (``X(NAME, value)`` inside ``#define RF_..._CONSTANTS(X)``) in ``kernels/cuda/*.cu``/``*.cuh`` is
  listed in the ``C_CONSTANTS`` of a ``rinit_fast.spec`` module, with the same value;
* every ``C_CONSTANTS`` entry exists in the C sources (no stale entries);
* importing the spec imports neither Numba nor CuPy nor the API modules.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import rinit_fast.spec
from rinit_fast.kernels.cuda import loader

_SUFFIX = re.compile(r"(?<=[0-9a-fA-F.])(ull|ll|u|f)\b", re.I)


def _strip_comments(src):
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def _number(expr):
    """The value of a C constant expression made of literals, shifts, +, -, parentheses; None if not."""
    e = _SUFFIX.sub("", expr.strip())
    e = re.sub(r"0x[0-9a-fA-F]*\.?[0-9a-fA-F]*p[+-]?\d+", lambda m: repr(float.fromhex(m.group(0))), e)
    if not re.fullmatch(r"[0-9a-fA-FxX.eE+\-*/()<> ]+", e):
        return None
    try:
        return eval(e, {"__builtins__": {}})  # noqa: S307 - literals and operators only (checked above)
    except Exception:
        return None


def c_constants():
    """{name: value} of every numeric constant in the CUDA sources (X-list entries as 'LIST/NAME')."""
    found = {}
    for name in loader.sources(".cu") + loader.sources(".cuh"):
        src = _strip_comments((loader.source_dir() / name).read_text())
        for m in re.finditer(r"^[ \t]*#define[ \t]+(RF_\w+)\(X\)((?:[^\n]*\\\n)*[^\n]*)", src, re.M):
            for x in re.finditer(r"X\(\s*(\w+)\s*,\s*([^)]+)\)", m.group(2)):
                v = _number(x.group(2))
                if v is not None:
                    found[f"{m.group(1)}/{x.group(1)}"] = v
        for m in re.finditer(r"^[ \t]*#define[ \t]+(RF_\w+)[ \t]+([^\n\\]+)$", src, re.M):
            v = _number(m.group(2))
            if v is not None:
                found[m.group(1)] = v
        for m in re.finditer(r"\benum\s*\{([^}]*)\}", src):
            if "(" in m.group(1):   # an enum built from an X-list (its members are indices into the list)
                continue
            k = 0
            for item in m.group(1).split(","):
                item = item.strip()
                if not item:
                    continue
                nm, _, val = item.partition("=")
                if val:
                    k = _number(val)
                if nm.strip().startswith("RF_"):
                    found[nm.strip()] = k
                k += 1
    return found


def spec_constants():
    table = {}
    for mod in pkgutil.iter_modules(rinit_fast.spec.__path__):
        m = importlib.import_module(f"rinit_fast.spec.{mod.name}")
        for k, v in getattr(m, "C_CONSTANTS", {}).items():
            assert k not in table or table[k][1] == v, f"{k} listed twice with different values"
            table[k] = (mod.name, v)
    return table


C = c_constants()
SPEC = spec_constants()


def test_parser_sees_the_sources():
    assert "RF_PHILOX_M0" in C and C["RF_PHILOX_M0"] == 0xD2511F53
    assert C["RF_F64_CONSTANTS/LG0"] == 6.666666666666735130e-01
    assert len(C) > 60


@pytest.mark.parametrize("name", sorted(C))
def test_every_c_constant_is_in_the_spec(name):
    assert name in SPEC, (f"{name} = {C[name]!r} is defined in kernels/cuda but not in any "
                          f"rinit_fast.spec module's C_CONSTANTS")
    want = SPEC[name][1]
    assert C[name] == want, f"{name}: C has {C[name]!r}, rinit_fast.spec.{SPEC[name][0]} has {want!r}"


def test_no_stale_spec_constants():
    stale = sorted(set(SPEC) - set(C))
    assert not stale, f"C_CONSTANTS entries with no C definition: {stale}"


def test_spec_is_pure():
    code = ("import sys, rinit_fast.spec, pkgutil, importlib\n"
            "before = set(sys.modules)\n"
            "for m in pkgutil.iter_modules(rinit_fast.spec.__path__):\n"
            "    importlib.import_module('rinit_fast.spec.' + m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('numba', 'cupy', 'llvmlite')]\n"
            "print(','.join(bad))")
    # -P: not the working directory first on sys.path (from the repository root it would import the source
    # tree's rinit_fast/, which has no kernels, instead of the installed package)
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"the spec layer imported {out}"
