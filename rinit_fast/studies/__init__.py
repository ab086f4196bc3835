"""Monte Carlo studies: ``run_study``, ``load_study``, ``open_study``, ``plot_study`` (docs/studies.md)
and the ``reproduce`` report.

Only this package and ``rinit_fast.cli`` import Dask, xarray or matplotlib, and only when they are used."""
from .config import ConfigError
from .execute import StudyError, StudyResults, load_study, run_study
from .labelled import open_study
from .storage import StudyDirError


def plot_study(path, out=None, *, format="png"):
    """Write the standard figures of the study directory ``path`` (chosen by what it measured;
    docs/studies.md, "Figures") into ``out`` (default ``path/figures``); returns their paths."""
    from .plots import plot_study as _plot
    return _plot(path, out, format=format)


__all__ = ["run_study", "load_study", "open_study", "plot_study", "StudyResults", "StudyError",
           "StudyDirError", "ConfigError"]
