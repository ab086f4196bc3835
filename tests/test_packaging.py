"""A plain `pip install .` must carry every package: pyproject.toml lists packages explicitly (kernels/ is
installed as rinit_fast.kernels through package-dir), so a new subpackage that is not listed works in an
editable install and fails after `pip install .` (as rinit_fast.spec once did)."""
from __future__ import annotations

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for name, src in cfg["package-dir"].items():
        base = ROOT / src
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join((name, *rel.parts)))
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert listed - found == set(), f"listed but without an __init__.py: {sorted(listed - found)}"
