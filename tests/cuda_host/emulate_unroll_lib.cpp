// The kernels of kernels/cuda/sampling.cu AND kernels/cuda/unroll.cu as one shared library for the fake
// CuPy of tests/cuda_host/fake_cupy (tests/test_cuda_unroll_emulated.py): the same C interface as
// emulate_lib.cpp (rf_emu_count / rf_emu_name / rf_emu_sig / rf_emu_launch), so the fake loads it through
// RINIT_FAST_EMU_LIB unchanged.  The unroll kernels synchronise whole blocks (__syncthreads), so they run
// in the shim's block mode (every thread of a block a coroutine); the sampling kernels as emulate_lib.cpp.
#define RF_SMEM_BYTES (1 << 18)   /* more than an H100 block may use (227 KiB) */
#include "cuda_shim.h"
#include "sampling.cu"
#include "unroll.cu"

#include "emulate_glue.h"

static std::vector<rf_entry>& table() {
    static std::vector<rf_entry> t = {
        RF_SAMPLING_ENTRIES,
        RF_ENTRY("rf_unroll_f32", (rf_unroll_f32), RF_BLOCK),
        RF_ENTRY("rf_unroll_f32_tangent", (rf_unroll_f32_tangent), RF_BLOCK),
        RF_ENTRY("rf_unroll_f64", (rf_unroll_f64), RF_BLOCK),
        RF_ENTRY("rf_unroll_f64_tangent", (rf_unroll_f64_tangent), RF_BLOCK),
    };
    return t;
}

