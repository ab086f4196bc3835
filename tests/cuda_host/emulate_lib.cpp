// The kernels of kernels/cuda/sampling.cu as a shared library for the fake CuPy of
// tests/cuda_host/fake_cupy (tests/test_cuda_fake_cupy.py): each kernel is launched from an array of
// pointers to its arguments, as cuLaunchKernel does, and publishes its parameter types so that the fake
// can refuse an argument of the wrong type (a Python int where the kernel takes uint32, say), which on a
// GPU would silently read the wrong bytes.
#include "cuda_shim.h"
#include "sampling.cu"

#include <cstring>
#include <string>
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

template <typename... P, size_t... I>
static void rf_call(bool warps, void (*k)(P...), unsigned grid, unsigned block, void** args, std::index_sequence<I...>) {
    rf_launch_mode(warps, k, grid, block, rf_arg<P>(args[I])...);
}

#define RF_ENTRY(NAME, FN, WARPS)                                                              \
    rf_entry{NAME, sig_of(FN), [](unsigned g, unsigned b, void** a) {                          \
        rf_call(WARPS, FN, g, b, a, std::make_index_sequence<arity_of(FN)>());                \
    }}

template <typename... P> static std::string sig_of(void (*)(P...)) { return (std::string() + ... + rf_code<P>::s()); }
template <typename... P> static constexpr size_t arity_of(void (*)(P...)) { return sizeof...(P); }

static std::vector<rf_entry>& table() {
    static std::vector<rf_entry> t = {
        RF_ENTRY("rf_normal_fill<float, true>", (rf_normal_fill<float, true>), false),
        RF_ENTRY("rf_normal_fill<float, false>", (rf_normal_fill<float, false>), true),
        RF_ENTRY("rf_normal_fill<double, true>", (rf_normal_fill<double, true>), false),
        RF_ENTRY("rf_normal_fill<double, false>", (rf_normal_fill<double, false>), true),
        RF_ENTRY("rf_uniform_fill<float, true>", (rf_uniform_fill<float, true>), false),
        RF_ENTRY("rf_uniform_fill<float, false>", (rf_uniform_fill<float, false>), true),
        RF_ENTRY("rf_uniform_fill<double, true>", (rf_uniform_fill<double, true>), false),
        RF_ENTRY("rf_uniform_fill<double, false>", (rf_uniform_fill<double, false>), true),
        RF_ENTRY("rf_truncate<float>", (rf_truncate<float>), false),
        RF_ENTRY("rf_truncate<double>", (rf_truncate<double>), false),
        RF_ENTRY("rf_philox4x32_blocks", (rf_philox4x32_blocks), false),
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
