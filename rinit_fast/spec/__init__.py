"""The contract layer: one pure-Python spec per operation.

Each module here owns, for one operation, what every backend must agree on: its integer codes and
constants, the layout of the plan/argument arrays handed to kernels, the output shapes, and the control
logic that is not arithmetic (convergence and restart rules, segment planning, ...).  The API modules
(``rinit_fast/*.py``), the Numba kernels (``kernels/cpu``) and the CUDA launchers (``kernels/cuda``)
all read it; nothing is written twice.

Rules (docs/CONVENTIONS.md):

* pure Python: imports only the standard library, NumPy and other modules of this package, never Numba,
  CuPy or the API layer, so kernels may import it without importing the API;
* the C side (``kernels/cuda/*.cu``, ``*.cuh``) keeps its ``#define``/enum constants, and every one of
  them is listed in the ``C_CONSTANTS`` of one spec module with the same value (tests/test_spec.py
  parses the sources and compares).

Modules: ``stream`` (the random stream: purposes, counter layout, limits, the word → float mapping and
its constants), ``activations`` (one code table for every nonlinearity), and one per operation.
"""
