"""Side-by-side GPU sampling speed in one run: rinit_fast's CUDA kernels vs CuPy, torch, a device copy
and a write-only kernel (the write ceiling), measured in the same process on the same buffers.

    python bench/compare_sampling_cuda.py [--values 2**30] [--repeat 10] [--json out.json] [--quick]

Reports GB/s *written* (bytes of output per second; the copy also as read+write) and ns per value, the
median of --repeat timed calls after warm-up (module load, JIT, cuRAND/CuPy generator set-up), timed with
CUDA events around each call.  Every fill writes into a preallocated buffer.  Also checks that a slice of
each rinit_fast output is bit-identical to the CPU stream.  Without CuPy or a GPU it says so and exits 0.
See bench/NOTES.md ("CUDA sampling") for the byte and instruction counts behind the prediction.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys

import numpy as np

WRITE_ONLY = r"""
extern "C" __global__ void write_only_f4(float4* __restrict__ out, unsigned long long n4) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        const float f = (float)(unsigned)i;
        out[i] = make_float4(f, f + 1.0f, f + 2.0f, f + 3.0f);
    }
}
"""


INNER = 3  # calls enqueued back to back between two events: Python launch overhead overlaps the GPU


def _events_time(cp, fn, repeat, warmup):
    for _ in range(warmup):
        fn()
    cp.cuda.get_current_stream().synchronize()
    ts = []
    for _ in range(repeat):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        for _ in range(INNER):
            fn()
        b.record()
        b.synchronize()
        ts.append(cp.cuda.get_elapsed_time(a, b) / 1e3 / INNER)
    return statistics.median(ts), min(ts)


def _torch_time(torch, fn, repeat, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(INNER):
            fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3 / INNER)
    return statistics.median(ts), min(ts)


def _device_info(cp):
    dev = cp.cuda.Device()
    info = {"name": "?", "sms": None, "clock_mhz": 0.0, "cupy": cp.__version__}
    try:
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props.get("name", "?")
        info["name"] = name.decode() if isinstance(name, bytes) else str(name)
        info["sms"] = props.get("multiProcessorCount")
        info["bus_bits"] = props.get("memoryBusWidth")
        info["total_mem_gib"] = props.get("totalGlobalMem", 0) / 2 ** 30
    except Exception as exc:  # pragma: no cover - depends on the CuPy/CUDA version
        info["props_error"] = str(exc)
    attrs = getattr(dev, "attributes", {}) or {}
    info["sms"] = info["sms"] or attrs.get("MultiProcessorCount")
    info["clock_mhz"] = attrs.get("ClockRate", 0) / 1e3   # the boost clock the driver reports, kHz
    try:
        info["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
        info["driver"] = cp.cuda.runtime.driverGetVersion()
    except Exception:  # pragma: no cover
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=lambda s: int(eval(s, {})), default=2 ** 30,
                    help="values per fill (default 2**30 = 1 Gi: 4 GiB float32, 8 GiB float64)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="2**24 values, 3 repeats (a smoke run)")
    ap.add_argument("--skip", default="", help="comma-separated rows to skip (torch, cupy, f64, odd)")
    args = ap.parse_args(argv)
    if args.quick:
        args.values, args.repeat, args.warmup = 2 ** 24, 3, 1
    skip = set(filter(None, args.skip.split(",")))

    import rinit_fast as rf
    from rinit_fast import _backend
    if not _backend.cuda_available():
        print("# compare_sampling_cuda: no CuPy or no GPU here; nothing measured")
        return 0
    import cupy as cp
    from rinit_fast.kernels.cuda import loader
    from rinit_fast.rng import Purpose, counter_word3, key_words

    try:
        import torch
        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    N, R, W = args.values, args.repeat, args.warmup
    info = _device_info(cp)
    print(f"# compare_sampling_cuda  {datetime.date.today()}  {info['name']}  {info['sms']} SMs  "
          f"{info['clock_mhz']:.0f} MHz  CuPy {info['cupy']}  CUDA runtime {info.get('cuda_runtime')}  "
          f"driver {info.get('driver')}  Python {platform.python_version()}"
          + (f"  torch {torch.__version__}" if torch else "  (no torch CUDA)"))
    print(f"# {N} values per call ({N / 2**30:g} Gi); median (best) of {R} timings of {INNER} back-to-back "
          f"calls, after {W} warm-up calls; GB/s = output bytes / time")

    rows = []

    def add(work, dtype, nbytes_written, t, note="", extra_bytes=0, nvalues=None):
        med, best = t
        rows.append({"work": work, "dtype": dtype, "seconds": med, "best": best,
                     "gbps": nbytes_written / med / 1e9, "gbps_best": nbytes_written / best / 1e9,
                     "traffic_gbps": (nbytes_written + extra_bytes) / med / 1e9,
                     "ns_per_value": med / (nvalues or N) * 1e9, "note": note})
        r = rows[-1]
        print(f"  {work:<44s} {dtype:<8s} {r['gbps']:8.0f} GB/s ({r['gbps_best']:5.0f} best)  "
              f"{r['ns_per_value'] * 1e3:7.2f} ps/value  {note}", flush=True)

    k0, k1 = key_words(12345)
    c3 = counter_word3(Purpose.USER, 0)

    # --- ceilings: write-only kernel and device-to-device copy --------------------------------------
    buf32 = cp.empty(N, cp.float32)
    wo = cp.RawKernel(WRITE_ONLY, "write_only_f4")
    n4 = N // 4
    grid = cp.cuda.Device().attributes["MultiProcessorCount"] * 8
    add("write-only float4 kernel (ceiling)", "float32", 16 * n4,
        _events_time(cp, lambda: wo((grid,), (256,), (buf32, np.uint64(n4))), R, W))
    src = cp.empty_like(buf32)
    src.fill(1.0)
    nb = buf32.nbytes
    add("device-to-device copy (memcpy)", "float32", nb,
        _events_time(cp, lambda: cp.cuda.runtime.memcpyAsync(buf32.data.ptr, src.data.ptr, nb, 3,
                                                             cp.cuda.get_current_stream().ptr), R, W),
        note="GB/s of writes; traffic (read+write) twice that", extra_bytes=nb)
    src = None  # free the copy's source (the lambda above has already run)

    # --- rinit_fast ---------------------------------------------------------------------------------
    def ours(kind, dt, b3):
        if kind == "normal":
            fn = loader.normal_f32 if dt == "float32" else loader.normal_f64
            return lambda: fn(b3, k0, k1, 0, c3, b3.dtype.type(1.0))
        fn = loader.uniform_f32_fill if dt == "float32" else loader.uniform_f64_fill
        return lambda: fn(b3, k0, k1, 0, c3, b3.dtype.type(2.0), b3.dtype.type(-1.0), b3.dtype.type(1.0))

    def check(kind, dt, b3):
        n = min(N, 1 << 20)
        gpu = b3.reshape(-1)[:n].get()
        cpu = (rf.rng.normals if kind == "normal" else rf.rng.uniforms)(12345, Purpose.USER, count=n, dtype=dt)
        if kind == "uniform":
            cpu = (cpu * 2 - 1).astype(dt)  # the (u * 2 + (-1)) * 1 mapping, exact in both dtypes
        return "bits == CPU" if np.array_equal(gpu.view(np.uint8), cpu.reshape(-1).view(np.uint8)) \
            else "BITS DIFFER FROM CPU"

    for dt in ("float32", "float64"):
        if dt == "float64" and "f64" in skip:
            continue
        buf = buf32 if dt == "float32" else cp.empty(N, cp.float64)
        b3 = buf.reshape(1, 1, N)
        for kind in ("normal", "uniform"):
            t = _events_time(cp, ours(kind, dt, b3), R, W)
            add(f"rinit_fast {kind} (Philox4x32-10, portable)", dt, buf.nbytes, t, check(kind, dt, b3))
        if "odd" not in skip:
            n = 1025
            while n * n > N and n > 3:
                n = (n // 2) | 1          # odd: n*n % 4 == 1, so rows start inside 16-byte groups
            bsz = max(1, N // (n * n))
            b3o = buf[: bsz * n * n].reshape(bsz, 1, n * n)
            t = _events_time(cp, ours("normal", dt, b3o), R, W)
            add(f"rinit_fast normal, {bsz} x {n}x{n} (unaligned rows)", dt, b3o.nbytes, t, nvalues=b3o.size)
        if "cupy" not in skip:
            g = cp.random.default_rng(0)
            try:
                add("cupy Generator.standard_normal", dt, buf.nbytes,
                    _events_time(cp, lambda: g.standard_normal(N, dtype=dt, out=buf), R, W))
            except TypeError:  # no out= in this CuPy: allocation included
                add("cupy Generator.standard_normal (allocates)", dt, buf.nbytes,
                    _events_time(cp, lambda: g.standard_normal(N, dtype=dt), R, W))
            try:
                add("cupy Generator.random", dt, buf.nbytes,
                    _events_time(cp, lambda: g.random(N, dtype=dt, out=buf), R, W))
            except TypeError:
                add("cupy Generator.random (allocates)", dt, buf.nbytes,
                    _events_time(cp, lambda: g.random(N, dtype=dt), R, W))
        if torch is not None and "torch" not in skip:
            tt = torch.as_tensor(buf, device="cuda")   # the same memory
            assert tt.data_ptr() == buf.data.ptr
            add("torch normal_ (in place)", dt, buf.nbytes, _torch_time(torch, lambda: tt.normal_(), R, W))
            add("torch uniform_ (in place)", dt, buf.nbytes, _torch_time(torch, lambda: tt.uniform_(), R, W))
            del tt
        del b3
        if dt == "float64":
            del buf
        cp.get_default_memory_pool().free_all_blocks()

    # --- summary -----------------------------------------------------------------------------------------
    ceil = rows[0]["gbps"]
    copy_w = rows[1]["gbps"]
    print("\n# summary (GB/s written; ratio to the write ceiling and to the copy's write rate, same run)")
    print(f"  {'work':<58s} {'GB/s':>7s} {'/ceiling':>9s} {'/copy':>7s}")
    for r in rows:
        print(f"  {r['work'] + ' ' + r['dtype']:<58s} {r['gbps']:7.0f} {r['gbps'] / ceil:9.2f} "
              f"{r['gbps'] / copy_w:7.2f}")
    tgt = [r for r in rows if r["work"].startswith("rinit_fast normal (") and r["dtype"] == "float32"]
    if tgt:
        ok = tgt[0]["gbps"] >= 2900
        print(f"\n# target: float32 normal >= 2900 GB/s written: {tgt[0]['gbps']:.0f} GB/s "
              f"({'met' if ok else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": info, "values": N, "repeat": R, "rows": rows,
                       "date": str(datetime.date.today())}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
