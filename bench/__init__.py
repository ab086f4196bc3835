"""asv benchmarks (``bench_*.py``) and side-by-side comparison scripts (``compare_*.py``) of rinit_fast.

asv discovers benchmarks in this package (asv.conf.json: ``benchmark_dir: "bench"``); docs/benchmarks.md
says how to run them.
"""
