// The kernels of kernels/cuda/sampling.cu AND kernels/cuda/propagate.cu as one shared library for the fake
// CuPy of tests/cuda_host/fake_cupy (tests/test_cuda_propagate_emulated.py): the same C interface as
// emulate_lib.cpp (rf_emu_count / rf_emu_name / rf_emu_sig / rf_emu_launch), so the fake loads it through
// RINIT_FAST_EMU_LIB unchanged.  The GEMM kernels of propagate.cu synchronise whole blocks
// (__syncthreads), so they run in the shim's block mode (every thread of a block a coroutine); the
// one-thread-per-column kernels and the sampling kernels (rf.sample(backend="cuda") for orthogonal
// layers) as emulate_lib.cpp.
#define RF_SMEM_BYTES (1 << 16)
#include "cuda_shim.h"
#include "sampling.cu"
#include "propagate.cu"

#include "emulate_glue.h"

static std::vector<rf_entry>& table() {
    static std::vector<rf_entry> t = {
        RF_SAMPLING_ENTRIES,
        RF_ENTRY("rf_pg_forward_f32", (rf_pg_forward_f32), RF_BLOCK),
        RF_ENTRY("rf_pg_backward_f32", (rf_pg_backward_f32), RF_BLOCK),
        RF_ENTRY("rf_pg_activate_f32", (rf_pg_activate_f32), RF_SEQ),
        RF_ENTRY("rf_pg_gradsum_f32", (rf_pg_gradsum_f32), RF_SEQ),
        RF_ENTRY("rf_pg_inputs_f32", (rf_pg_inputs_f32), RF_SEQ),
        RF_ENTRY("rf_pg_layer_weights_f32", (rf_pg_layer_weights_f32), RF_BLOCK),
        RF_ENTRY("rf_pg_forward_f64", (rf_pg_forward_f64), RF_BLOCK),
        RF_ENTRY("rf_pg_backward_f64", (rf_pg_backward_f64), RF_BLOCK),
        RF_ENTRY("rf_pg_activate_f64", (rf_pg_activate_f64), RF_SEQ),
        RF_ENTRY("rf_pg_gradsum_f64", (rf_pg_gradsum_f64), RF_SEQ),
        RF_ENTRY("rf_pg_inputs_f64", (rf_pg_inputs_f64), RF_SEQ),
        RF_ENTRY("rf_pg_layer_weights_f64", (rf_pg_layer_weights_f64), RF_BLOCK),
        RF_ENTRY("rf_pg_combine", (rf_pg_combine), RF_SEQ),
    };
    return t;
}

