// The kernels of kernels/cuda/sampling.cu AND kernels/cuda/spectral.cu as one shared library for the
// fake CuPy of tests/cuda_host/fake_cupy (tests/test_cuda_spectral_emulated.py): the same C interface as
// emulate_lib.cpp (rf_emu_count / rf_emu_name / rf_emu_sig / rf_emu_launch), so the fake loads it through
// RINIT_FAST_EMU_LIB unchanged.  The spectral kernels synchronise whole blocks (__syncthreads), so they
// run in the shim's block mode (every thread of a block a coroutine); the sampling kernels (the start
// vectors) as emulate_lib.cpp.
#define RF_SMEM_BYTES (1 << 18)   /* more than an H100 block may use (227 KiB) */
#include "cuda_shim.h"
#include "sampling.cu"
#include "spectral.cu"

#include "emulate_glue.h"

static std::vector<rf_entry>& table() {
    static std::vector<rf_entry> t = {
        RF_SAMPLING_ENTRIES,
        RF_ENTRY("rf_spec_prep_f32", (rf_spec_prep_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_lowcopy_f32", (rf_spec_lowcopy_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_power64_f32", (rf_spec_power64_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_iso_f32", (rf_spec_iso_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_arnoldi_f32", (rf_spec_arnoldi_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_lanczos_f32", (rf_spec_lanczos_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_prep_f64", (rf_spec_prep_f64), RF_BLOCK),
        RF_ENTRY("rf_spec_lowcopy_f64", (rf_spec_lowcopy_f64), RF_BLOCK),
        RF_ENTRY("rf_spec_power64_f64", (rf_spec_power64_f64), RF_BLOCK),
        RF_ENTRY("rf_spec_iso_f64", (rf_spec_iso_f64), RF_BLOCK),
        RF_ENTRY("rf_spec_arnoldi_f64", (rf_spec_arnoldi_f64), RF_BLOCK),
        RF_ENTRY("rf_spec_lanczos_f64", (rf_spec_lanczos_f64), RF_BLOCK),
        RF_ENTRY("rf_spec_prep_c64", (rf_spec_prep_c64), RF_BLOCK),
        RF_ENTRY("rf_spec_lowcopy_c64", (rf_spec_lowcopy_c64), RF_BLOCK),
        RF_ENTRY("rf_spec_power64_c64", (rf_spec_power64_c64), RF_BLOCK),
        RF_ENTRY("rf_spec_iso_c64", (rf_spec_iso_c64), RF_BLOCK),
        RF_ENTRY("rf_spec_arnoldi_c64", (rf_spec_arnoldi_c64), RF_BLOCK),
        RF_ENTRY("rf_spec_lanczos_c64", (rf_spec_lanczos_c64), RF_BLOCK),
        RF_ENTRY("rf_spec_prep_c128", (rf_spec_prep_c128), RF_BLOCK),
        RF_ENTRY("rf_spec_lowcopy_c128", (rf_spec_lowcopy_c128), RF_BLOCK),
        RF_ENTRY("rf_spec_power64_c128", (rf_spec_power64_c128), RF_BLOCK),
        RF_ENTRY("rf_spec_iso_c128", (rf_spec_iso_c128), RF_BLOCK),
        RF_ENTRY("rf_spec_arnoldi_c128", (rf_spec_arnoldi_c128), RF_BLOCK),
        RF_ENTRY("rf_spec_lanczos_c128", (rf_spec_lanczos_c128), RF_BLOCK),
        RF_ENTRY("rf_spec_power_f32", (rf_spec_power_f32), RF_BLOCK),
        RF_ENTRY("rf_spec_power_c64", (rf_spec_power_c64), RF_BLOCK),
    };
    return t;
}

