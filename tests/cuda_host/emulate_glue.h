// The launch glue shared by the emulation libraries (emulate_lib.cpp, emulate_spectral_lib.cpp,
// emulate_unroll_lib.cpp, emulate_propagate_lib.cpp) that the fake CuPy of tests/cuda_host/fake_cupy
// loads through RINIT_FAST_EMU_LIB: each kernel is launched from an array of pointers to its arguments,
// as cuLaunchKernel does, and publishes its parameter types so that the fake can refuse an argument of
// the wrong type (a Python int where the kernel takes uint32, say), which on a GPU would silently read
// the wrong bytes.
//
// A library includes cuda_shim.h (after defining RF_SMEM_BYTES if it needs more) and its kernels, then
// this header, and defines `static std::vector<rf_entry>& table()` from RF_ENTRY(name, kernel, mode):
// RF_SEQ runs the threads one after another, RF_WARPS as warps of coroutine lanes (warp shuffles),
// RF_BLOCK every thread of a block a coroutine (__syncthreads).  The C interface (rf_emu_count /
// rf_emu_name / rf_emu_sig / rf_emu_launch) is defined here over that table.
#pragma once
#include "cuda_shim.h"

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

// The kernels of sampling.cu, which every library carries (the start vectors, rf.sample's layers):
// RF_SAMPLING_ENTRIES, first in each table (the library includes sampling.cu).
#define RF_SAMPLING_ENTRIES                                                                    \
    RF_ENTRY("rf_normal_fill<float, true>", (rf_normal_fill<float, true>), RF_SEQ),             \
    RF_ENTRY("rf_normal_fill<float, false>", (rf_normal_fill<float, false>), RF_WARPS),         \
    RF_ENTRY("rf_normal_fill<double, true>", (rf_normal_fill<double, true>), RF_SEQ),           \
    RF_ENTRY("rf_normal_fill<double, false>", (rf_normal_fill<double, false>), RF_WARPS),       \
    RF_ENTRY("rf_uniform_fill<float, true>", (rf_uniform_fill<float, true>), RF_SEQ),           \
    RF_ENTRY("rf_uniform_fill<float, false>", (rf_uniform_fill<float, false>), RF_WARPS),       \
    RF_ENTRY("rf_uniform_fill<double, true>", (rf_uniform_fill<double, true>), RF_SEQ),         \
    RF_ENTRY("rf_uniform_fill<double, false>", (rf_uniform_fill<double, false>), RF_WARPS),     \
    RF_ENTRY("rf_truncate<float>", (rf_truncate<float>), RF_SEQ),                               \
    RF_ENTRY("rf_truncate<double>", (rf_truncate<double>), RF_SEQ),                             \
    RF_ENTRY("rf_philox4x32_blocks", (rf_philox4x32_blocks), RF_SEQ)

// The kernels of the including library, defined there.
static std::vector<rf_entry>& table();

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
