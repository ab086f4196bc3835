// A minimal CUDA execution model on the CPU, enough to run kernels/cuda/sampling.cu unchanged.
//
// Used by tests/cuda_host/emulate.cpp (tests/test_cuda_emulated.py) to check the kernels' indexing
// without a GPU: the grid-stride cursor, the aligned 16-byte stores, the warp-staged path for
// unaligned rows, tails, and that neither the grid nor the block size changes a value.  Each warp runs
// as 32 std::threads that meet at a barrier in every warp primitive (__shfl_sync, __ballot_sync,
// __syncwarp), so lanes really interleave as on a GPU; blocks run one after the other (the sampling
// kernels never synchronise a whole block).  The arithmetic is the header's host branch, which
// tests/test_cuda_header_host.py compares with the CPU stream.
#pragma once

#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __align__(n) __attribute__((aligned(n)))

// Every 16-byte vector store of the kernels must be 16-byte aligned (x86 would not fault on it).
#define RF_CHECK_ALIGNED(p) \
    do { if ((uintptr_t)(p) % 16) { std::fprintf(stderr, "misaligned 16-byte access\n"); std::abort(); } } while (0)

struct float4 { float x, y, z, w; };
static inline float4 make_float4(float x, float y, float z, float w) { float4 r = {x, y, z, w}; return r; }

struct rf_dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local rf_dim3 threadIdx, blockIdx;
rf_dim3 blockDim, gridDim;

// Dynamic shared memory of the (single) running block; kernels declare `extern __shared__ ... rf_smem[]`.
alignas(16) unsigned char rf_smem[1 << 16];

struct rf_warp_ctx {
    std::barrier<> bar{32};
    unsigned long long slot[32];
};
thread_local rf_warp_ctx* rf_tl_warp = nullptr;

static inline int rf_lane() { return (int)(threadIdx.x & 31u); }

static inline void __syncwarp(unsigned = 0xFFFFFFFFu) { rf_tl_warp->bar.arrive_and_wait(); }

static inline unsigned __ballot_sync(unsigned, bool p) {
    rf_tl_warp->slot[rf_lane()] = p ? 1ull : 0ull;
    rf_tl_warp->bar.arrive_and_wait();
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= (rf_tl_warp->slot[i] ? 1u : 0u) << i;
    rf_tl_warp->bar.arrive_and_wait();
    return r;
}

template <typename T>
static inline T __shfl_sync(unsigned, T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    rf_tl_warp->slot[rf_lane()] = bits;
    rf_tl_warp->bar.arrive_and_wait();
    bits = rf_tl_warp->slot[src & 31];
    rf_tl_warp->bar.arrive_and_wait();
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}

static inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }

// Run kernel(args...) on a grid of `grid` blocks of `block` threads (block a multiple of 32).
template <typename... P, typename... A>
void rf_launch(void (*kernel)(P...), unsigned grid, unsigned block, A... args) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b) {
        std::memset(rf_smem, 0xA5, sizeof(rf_smem));   // stale junk, as a fresh block would see
        for (unsigned w = 0; w < block / 32; ++w) {
            rf_warp_ctx ctx;
            std::vector<std::thread> lanes;
            for (unsigned l = 0; l < 32; ++l) {
                lanes.emplace_back([&, b, w, l]() {
                    blockIdx.x = b;
                    threadIdx.x = w * 32 + l;
                    rf_tl_warp = &ctx;
                    kernel(args...);
                });
            }
            for (auto& t : lanes) t.join();
        }
    }
}
