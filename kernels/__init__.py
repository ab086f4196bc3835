"""Compiled kernels of rinit_fast (installed as ``rinit_fast.kernels``).

``cpu``: Numba modules, one per family.  ``cuda``: CUDA C sources and their one loader.
Kernels never import the API layer (``rinit_fast.*``); they take validated, contiguous arrays and
plain integers and fill their outputs.
"""
