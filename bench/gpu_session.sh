#!/usr/bin/env bash
# The first GPU session's one device run (docs/cuda.md, "Running on a GPU"): install the project on the
# device machine without a network, run the CUDA tests against real CuPy, time the kernels, and leave
# every log and table under $OUT (at most 8 files come back).  Sized for about 8 minutes of an H200.
#
#   run(command="bash bench/gpu_session.sh", timeout_s=560, carry=[".whl"])   # .whl only if needed
#
# The device image has Python 3.12 with CuPy 14, torch, numpy, scipy, but maybe not this project's Numba
# range (kernels/cpu/packed_gemm.py refuses others): the script says which Numba it found; if it is out of
# range, carry numba 0.68.1 and llvmlite 0.50.0 wheels for cp312 in .whl/ (docs/cuda.md shows the pip
# download command; 61 MiB with the repository's 2 MiB, inside the 64 MiB a call may carry).
# Runs here too (no GPU: the GPU tests skip), which is how it is checked: tests/test_gpu_session.py.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
T0=$(date +%s)
log() { echo "[gpu_session +$(( $(date +%s) - T0 ))s] $*"; }
{
  log "machine"; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    SITE=$(mktemp -d)
    log "installing the carried wheels"; "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$SITE" .whl/*.whl && export PYTHONPATH=$SITE:${PYTHONPATH:-}
  fi
  log "installing rinit_fast (no network: --no-deps, --no-build-isolation)"
  RF=$(mktemp -d)
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index --target "$RF" . \
    && export PYTHONPATH=$RF:${PYTHONPATH:-}
  "$PY" - <<'PY'
import importlib
for m in ("numpy", "scipy", "numba", "llvmlite", "cupy", "torch", "threadpoolctl"):
    try:
        print(f"{m} {importlib.import_module(m).__version__}")
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"{m}: {type(e).__name__}: {e}")
import os
os.chdir("/")                                  # the installed package, not the repository's source tree
try:
    import rinit_fast
    print("rinit_fast from", rinit_fast.__file__)
except Exception as e:  # noqa: BLE001
    print("rinit_fast:", type(e).__name__, e)
try:
    import cupy
    print("GPUs:", cupy.cuda.runtime.getDeviceCount(), cupy.cuda.Device().attributes["MultiProcessorCount"], "SMs")
except Exception as e:  # noqa: BLE001
    print("no CuPy GPU:", e)
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# The tests run from a scratch directory so that the repository's rinit_fast/ (no kernels/) is not imported.
REPO=$(pwd)
cd "$(mktemp -d)" || exit 1
run_tests() {  # name, seconds, pytest arguments...
  local name=$1 secs=$2; shift 2
  log "pytest $name (<= ${secs}s)"
  timeout "$secs" "$PY" -m pytest -p no:cacheprovider -q -rfEs --maxfail=25 --rootdir "$REPO" -c "$REPO/pyproject.toml" \
    "$@" > "$OUT/tests_$name.txt" 2>&1
  log "pytest $name: exit $? ($(tail -1 "$OUT/tests_$name.txt"))"
}
run_tests sampling 150 "$REPO/tests/test_cuda_sampling.py"
run_tests kernels 240 "$REPO/tests/test_cuda_unroll.py" "$REPO/tests/test_cuda_propagate.py" \
  "$REPO/tests/test_cuda_spectral.py" "$REPO/tests/test_torch.py" -m gpu

log "timings"
timeout 120 "$PY" "$REPO/bench/compare_sampling_cuda.py" --json "$OUT/sampling_cuda.json" > "$OUT/timings.txt" 2>&1
timeout 150 "$PY" - >> "$OUT/timings.txt" 2>&1 <<'PY'
import time
import numpy as np
import rinit_fast as rf
try:
    import cupy as cp
    cp.cuda.runtime.getDeviceCount()
except Exception as e:  # noqa: BLE001
    raise SystemExit(f"no GPU: {e}")

def timed(f, reps=5):
    f(); cp.cuda.Device().synchronize()                        # the first call compiles the module
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); f(); cp.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - t)
    return best

cases = [  # the targets of the brief's GPU rows and docs/cuda.md's predictions (bench/NOTES.md)
    ("spectral radius B=100 n=500 f32", lambda W: rf.spectral_radius(W), (100, 500), 10e-3),
    ("unroll B=100 n=500 R=50 T=1000 f32", lambda W: rf.unroll(W, 1000, realizations=50), (100, 500), 70e-3),
    ("unroll B=100 n=64 R=50 T=5000 f32", lambda W: rf.unroll(W, 5000, realizations=50), (100, 64), 22e-3),
]
for name, f, (b, n), target in cases:
    W = rf.sample("glorot_normal", n, batch=b, seed=1, backend="cuda")
    t = timed(lambda: f(W), reps=3)
    print(f"{name:40s} {t * 1e3:9.2f} ms   (target {target * 1e3:.0f} ms)")
t = timed(lambda: rf.propagate("glorot_normal", 256, 50, activation="tanh", batch=8, samples=128, seed=1,
                               backend="cuda"))
print(f"{'propagate w256 d50 8 nets S=128 tanh':40s} {t * 1e3:9.2f} ms")
PY
log "timings: exit $?"
cat "$OUT/timings.txt"
log "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
