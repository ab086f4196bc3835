// The kernels of kernels/cuda/sampling.cu as a shared library for the fake CuPy of
// tests/cuda_host/fake_cupy (tests/test_cuda_fake_cupy.py), through the launch glue of emulate_glue.h:
// each kernel is launched from an array of pointers to its arguments, as cuLaunchKernel does, and
// publishes its parameter types so that the fake can refuse an argument of the wrong type.
#include "cuda_shim.h"
#include "sampling.cu"

#include "emulate_glue.h"

static std::vector<rf_entry>& table() {
    static std::vector<rf_entry> t = {
        RF_SAMPLING_ENTRIES,
    };
    return t;
}

