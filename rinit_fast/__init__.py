"""rinit_fast: a compiled-kernel engine for the science of weight initialisation.

Public API (docs/api.md): ``sample``, ``schemes``, ``gain``, ``scheme_std``, ``spectral_radius``,
``spectral_norm``, ``unroll``, ``lyapunov``, ``propagate``, ``theory``, ``rng``; studies: ``run_study``,
``load_study``, ``open_study``, ``plot_study``; see docs/api.md.
"""
from __future__ import annotations

from . import rng, theory
from .propagate import PropagateResult, propagate
from .sampling import sample
from .scheme_table import gain, scheme_law, scheme_mean, scheme_std, schemes
from .spectral import NormResult, SpectralResult, spectral_norm, spectral_radius
from .calibrate import calibrate
from .lyapunov import LyapunovResult, lyapunov
from .studies import load_study, open_study, plot_study, run_study
from .unroll import UnrollResult, unroll

__version__ = "0.1.0"

__all__ = ["sample", "schemes", "gain", "scheme_std", "scheme_mean", "scheme_law", "rng", "theory",
           "calibrate", "run_study", "load_study", "open_study", "plot_study", "propagate", "PropagateResult",
           "unroll", "UnrollResult", "lyapunov", "LyapunovResult", "spectral_radius", "spectral_norm",
           "SpectralResult", "NormResult", "__version__"]
