"""Monte Carlo studies: ``run_study``, ``load_study`` (docs/studies.md) and the ``reproduce`` report.

Only this package and ``rinit_fast.cli`` import Dask or matplotlib, and only when they are used."""
from .config import ConfigError
from .execute import StudyError, StudyResults, load_study, run_study
from .storage import StudyDirError

__all__ = ["run_study", "load_study", "StudyResults", "StudyError", "StudyDirError", "ConfigError"]
