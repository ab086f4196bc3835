"""The one description of the machine that every side-by-side script prints (bench/compare*.py)."""
from __future__ import annotations

import os
import platform


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or platform.processor() where there is none."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine(load=True):
    """One line: CPU model, cores (and the 1-minute load average), Python, NumPy, Numba and its threads."""
    import numba
    import numpy as np
    cores = f"{os.cpu_count()} cores"
    if load and hasattr(os, "getloadavg"):
        cores += f" (load {os.getloadavg()[0]:.1f})"
    return (f"{cpu_model()}, {cores}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {numba.__version__} ({numba.get_num_threads()} threads)")


def load_averages(sep=" "):
    """The 1-, 5- and 15-minute load averages ("?" where the OS has none): other users of the cores make
    every wall-clock figure slower, so the scripts print them at start and end."""
    try:
        return sep.join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "?"
