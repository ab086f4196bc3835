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

#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

template <typename T> struct rf_code;
template <> struct rf_code<float> { static std::string s() { return "f"; } };
template <> struct rf_code<double> { static std::string s() { return "d"; } };
template <> struct rf_code<rf_u32> { static std::string s() { return "I"; } };
template <> struct rf_code<rf_u64> { static std::string s() { return "Q"; } };
template <typename T> struct rf_code<T*> { static std::string s() { return "P" + rf_code<typename std::remove_const<T>::type>::s(); } };
template <typename T> struct rf_code<const T*> { static std::string s() { return "P" + rf_code<T>::s(); } };

template <typename T>
static T rf_arg(void* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

struct rf_entry {
    std::string name, sig;
    void (*run)(unsigned, unsigned, void**);
};

enum rf_mode { RF_SEQ, RF_WARPS, RF_BLOCK };

template <typename... P, size_t... I>
static void rf_call(int mode, void (*k)(P...), unsigned grid, unsigned block, void** args, std::index_sequence<I...>) {
    if (mode == RF_BLOCK)
        rf_launch_block(k, grid, block, rf_arg<P>(args[I])...);
    else
        rf_launch_mode(mode == RF_WARPS, k, grid, block, rf_arg<P>(args[I])...);
}

template <typename... P> static std::string sig_of(void (*)(P...)) { return (std::string() + ... + rf_code<P>::s()); }
template <typename... P> static constexpr size_t arity_of(void (*)(P...)) { return sizeof...(P); }

#define RF_ENTRY(NAME, FN, MODE)                                                               \
    rf_entry{NAME, sig_of(FN), [](unsigned g, unsigned b, void** a) {                          \
        rf_call(MODE, FN, g, b, a, std::make_index_sequence<arity_of(FN)>());                 \
    }}

static std::vector<rf_entry>& table() {
    static std::vector<rf_entry> t = {
        RF_ENTRY("rf_normal_fill<float, true>", (rf_normal_fill<float, true>), RF_SEQ),
        RF_ENTRY("rf_normal_fill<float, false>", (rf_normal_fill<float, false>), RF_WARPS),
        RF_ENTRY("rf_normal_fill<double, true>", (rf_normal_fill<double, true>), RF_SEQ),
        RF_ENTRY("rf_normal_fill<double, false>", (rf_normal_fill<double, false>), RF_WARPS),
        RF_ENTRY("rf_uniform_fill<float, true>", (rf_uniform_fill<float, true>), RF_SEQ),
        RF_ENTRY("rf_uniform_fill<float, false>", (rf_uniform_fill<float, false>), RF_WARPS),
        RF_ENTRY("rf_uniform_fill<double, true>", (rf_uniform_fill<double, true>), RF_SEQ),
        RF_ENTRY("rf_uniform_fill<double, false>", (rf_uniform_fill<double, false>), RF_WARPS),
        RF_ENTRY("rf_truncate<float>", (rf_truncate<float>), RF_SEQ),
        RF_ENTRY("rf_truncate<double>", (rf_truncate<double>), RF_SEQ),
        RF_ENTRY("rf_philox4x32_blocks", (rf_philox4x32_blocks), RF_SEQ),
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

extern "C" {
int rf_emu_count() { return (int)table().size(); }
const char* rf_emu_name(int i) { return table()[i].name.c_str(); }
const char* rf_emu_sig(int i) { return table()[i].sig.c_str(); }
// Runs kernel i; returns 1 if the kernel wrote past `smem` bytes of dynamic shared memory.
int rf_emu_launch(int i, unsigned grid, unsigned block, unsigned smem, void** args) {
    rf_smem_limit = smem < sizeof(rf_smem) ? smem : sizeof(rf_smem);
    rf_smem_overrun = false;
    table()[i].run(grid, block, args);
    return rf_smem_overrun ? 1 : 0;
}
}
