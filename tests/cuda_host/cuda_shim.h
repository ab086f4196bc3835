// A minimal CUDA execution model on the CPU, enough to run kernels/cuda/sampling.cu unchanged.
//
// Used by tests/cuda_host/emulate.cpp (tests/test_cuda_emulated.py) to check the kernels' indexing
// without a GPU: the grid-stride cursor, the aligned 16-byte stores, the warp-staged path for
// unaligned rows, tails, and that neither the grid nor the block size changes a value.  Each warp runs
// as 32 coroutines (ucontext) that meet in every warp primitive (__shfl_sync, __ballot_sync,
// __syncwarp), so lanes interleave as on a GPU; blocks and warps run one after the other (the sampling
// kernels never synchronise a whole block).  The arithmetic is the header's host branch, which
// tests/test_cuda_header_host.py compares with the CPU stream.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <functional>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
rf_dim3 threadIdx, blockIdx;
rf_dim3 blockDim, gridDim;

// Dynamic shared memory of the (single) running block; kernels declare `extern __shared__ ... rf_smem[]`.
// RF_SMEM_BYTES: define it larger before including this file for kernels that need more (unroll.cu).
#ifndef RF_SMEM_BYTES
#define RF_SMEM_BYTES (1 << 16)
#endif
alignas(16) unsigned char rf_smem[RF_SMEM_BYTES];
size_t rf_smem_limit = sizeof(rf_smem);   // the launch's dynamic shared memory size
bool rf_smem_overrun = false;             // set when a block wrote past it

static inline void rf_check_smem() {
    for (size_t k = rf_smem_limit; k < sizeof(rf_smem); ++k)
        if (rf_smem[k] != 0xA5) { rf_smem_overrun = true; return; }
}

// Warps: the 32 lanes of a warp are coroutines (ucontext) on one OS thread.  A warp primitive writes the
// lane's value, yields until every lane has written, reads, and yields again until every lane has read.
struct rf_warp_ctx {
    ucontext_t sched;
    ucontext_t lane[32];
    bool done[32];
    unsigned long long slot[32];
    int cur = 0;
};
rf_warp_ctx* rf_tl_warp = nullptr;

static inline rf_warp_ctx* rf_warp() {
    if (!rf_tl_warp) { std::fprintf(stderr, "warp primitive in a kernel launched without warps\n"); std::abort(); }
    return rf_tl_warp;
}
static inline int rf_lane() { return (int)(threadIdx.x & 31u); }
static inline void rf_yield() { rf_warp_ctx* w = rf_warp(); swapcontext(&w->lane[w->cur], &w->sched); }

static inline void __syncwarp(unsigned = 0xFFFFFFFFu) { rf_yield(); }

static inline unsigned __ballot_sync(unsigned, bool p) {
    rf_warp()->slot[rf_lane()] = p ? 1ull : 0ull;
    rf_yield();
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= (rf_tl_warp->slot[i] ? 1u : 0u) << i;
    rf_yield();
    return r;
}

template <typename T>
static inline T __shfl_sync(unsigned, T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    rf_warp()->slot[rf_lane()] = bits;
    rf_yield();
    bits = rf_tl_warp->slot[src & 31];
    rf_yield();
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}

static inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }

// Run kernel(args...) on a grid of `grid` blocks of `block` threads (block a multiple of 32).
// warps = true: each warp's lanes run as coroutines that meet in the warp primitives (needed by kernels
// that use them); warps = false: threads run one after the other (a warp primitive then aborts).
static std::function<void()> rf_lane_body;
static void rf_lane_entry() {
    rf_lane_body();
    rf_tl_warp->done[rf_tl_warp->cur] = true;   // returns to the scheduler through uc_link
}

template <typename... P, typename... A>
void rf_launch_mode(bool warps, void (*kernel)(P...), unsigned grid, unsigned block, A... args) {
    gridDim.x = grid;
    blockDim.x = block;
    static std::vector<std::vector<unsigned char>> stacks(32, std::vector<unsigned char>(1 << 18));
    rf_lane_body = [&]() { kernel(args...); };
    for (unsigned b = 0; b < grid; ++b) {
        std::memset(rf_smem, 0xA5, sizeof(rf_smem));   // stale junk, as a fresh block would see
        blockIdx.x = b;
        if (!warps) {
            rf_tl_warp = nullptr;
            for (unsigned t = 0; t < block; ++t) {
                threadIdx.x = t;
                kernel(args...);
            }
            rf_check_smem();
            continue;
        }
        for (unsigned w = 0; w < block / 32; ++w) {
            rf_warp_ctx ctx;
            rf_tl_warp = &ctx;
            for (int l = 0; l < 32; ++l) {
                ctx.done[l] = false;
                getcontext(&ctx.lane[l]);
                ctx.lane[l].uc_stack.ss_sp = stacks[l].data();
                ctx.lane[l].uc_stack.ss_size = stacks[l].size();
                ctx.lane[l].uc_link = &ctx.sched;
                makecontext(&ctx.lane[l], rf_lane_entry, 0);
            }
            for (bool active = true; active;) {
                active = false;
                for (int l = 0; l < 32; ++l) {
                    if (ctx.done[l]) continue;
                    ctx.cur = l;
                    threadIdx.x = w * 32 + l;
                    swapcontext(&ctx.sched, &ctx.lane[l]);
                    active = active || !ctx.done[l];
                }
            }
            rf_tl_warp = nullptr;
        }
        rf_check_smem();
    }
}

template <typename... P, typename... A>
void rf_launch(void (*kernel)(P...), unsigned grid, unsigned block, A... args) {
    rf_launch_mode(true, kernel, grid, block, args...);
}

// ---- block mode (kernels that use __syncthreads, e.g. unroll.cu) ------------------------------------
// Every thread of a block is a coroutine; the scheduler resumes them round-robin in thread order.  The
// warp primitives above work unchanged (each warp has its own rf_warp_ctx, whose `sched` context is the
// block scheduler's return point), because the lanes of a warp stay in phase: each runs exactly once
// per round.  __syncthreads marks the thread as waiting and yields until the scheduler, at the end of a
// round in which every live thread of the block waits, releases them all at once (so they leave the
// barrier in the same round, still in phase for the warp primitives).
#define __launch_bounds__(...)

struct rf_block_ctx {
    std::vector<rf_warp_ctx> warps;
    std::vector<char> at_bar;
};
rf_block_ctx* rf_tl_block = nullptr;

static inline void __syncthreads() {
    if (!rf_tl_block) { std::fprintf(stderr, "__syncthreads in a kernel not launched in block mode\n"); std::abort(); }
    const unsigned t = threadIdx.x;
    rf_tl_block->at_bar[t] = 1;
    while (rf_tl_block->at_bar[t]) rf_yield();
}

template <typename... P, typename... A>
void rf_launch_block(void (*kernel)(P...), unsigned grid, unsigned block, A... args) {
    if (block % 32 || block == 0) { std::fprintf(stderr, "block size must be a multiple of 32\n"); std::abort(); }
    gridDim.x = grid;
    blockDim.x = block;
    const size_t stack = 1 << 17;
    static std::vector<unsigned char*> stacks;
    while (stacks.size() < block) stacks.push_back(static_cast<unsigned char*>(std::malloc(stack)));
    rf_lane_body = [&]() { kernel(args...); };
    rf_block_ctx ctx;
    ctx.warps.resize(block / 32);
    for (unsigned b = 0; b < grid; ++b) {
        std::memset(rf_smem, 0xA5, sizeof(rf_smem));
        blockIdx.x = b;
        ctx.at_bar.assign(block, 0);
        for (unsigned t = 0; t < block; ++t) {
            rf_warp_ctx& w = ctx.warps[t / 32];
            const unsigned l = t % 32;
            w.done[l] = false;
            getcontext(&w.lane[l]);
            w.lane[l].uc_stack.ss_sp = stacks[t];
            w.lane[l].uc_stack.ss_size = stack;
            w.lane[l].uc_link = &w.sched;
            makecontext(&w.lane[l], rf_lane_entry, 0);
        }
        rf_tl_block = &ctx;
        for (;;) {
            bool live = false, all_wait = true;
            for (unsigned t = 0; t < block; ++t) {
                rf_warp_ctx& w = ctx.warps[t / 32];
                const unsigned l = t % 32;
                if (w.done[l]) continue;
                rf_tl_warp = &w;
                w.cur = (int)l;
                threadIdx.x = t;
                swapcontext(&w.sched, &w.lane[l]);
                if (!w.done[l]) {
                    live = true;
                    if (!ctx.at_bar[t]) all_wait = false;
                }
            }
            if (!live) break;
            if (all_wait) std::fill(ctx.at_bar.begin(), ctx.at_bar.end(), 0);
        }
        rf_tl_block = nullptr;
        rf_tl_warp = nullptr;
        rf_check_smem();
    }
}
