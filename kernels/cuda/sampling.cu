/* sampling.cu: the GPU twins of kernels/cpu/sampling.py (fill an (index, sub, values) array from the
 * stream) and the Philox block function of rf.rng.philox4x32.
 *
 * Layout (docs/rng.md): out is C-contiguous (A, S, N); row (a, s) holds values 0 .. N-1 of the stream
 * with counter words c2 = c2_start + a (mod 2^32) and c3 = c3_base + s.  Value i of a row comes from
 * Philox block i / V, lane i % V, with V = 4 (float32) or V = 2 (float64): each block gives 16 bytes.
 * Every value is a pure function of (key, c2, c3, i), so neither the grid, nor the block size, nor the
 * order in which threads visit the work changes a single bit.
 *
 * Work items are (row, block) pairs in row-major order; thread t of T handles items t, t + T, ...
 * (grid-stride), tracking (a, s, block, row offset) incrementally so that the loop divides nothing.
 * Consecutive lanes hold consecutive items, so a warp writes one contiguous span of memory:
 *  - ALIGNED (N % V == 0 and a 16-byte aligned buffer): every block is one aligned 16-byte store, and a
 *    warp's store instruction writes 512 contiguous bytes (fully coalesced).
 *  - otherwise (rows that start inside a 16-byte group, partial last blocks): the warp stages its span in
 *    shared memory and re-cuts it into aligned 16-byte groups (one store each), the two partial groups
 *    at the ends of the span written element by element.  Only __syncwarp, no block barrier.
 * The block size must be a multiple of 32 (the loader checks).
 */
#include "philox.cuh"
#include "fp.cuh"   /* rf_fabs, rf_dabs */

#define RF_FULL_MASK 0xFFFFFFFFu
#ifndef RF_CHECK_ALIGNED
#define RF_CHECK_ALIGNED(p) /* tests/cuda_host/cuda_shim.h checks every 16-byte store's alignment */
#endif
#define RF_ATTEMPT_SHIFT 48           /* kernels/cpu/sampling.py: ATTEMPT_SHIFT */
#define RF_MAX_ATTEMPTS (1ull << 14)  /* kernels/cpu/sampling.py: MAX_ATTEMPTS (a << 50 stays in 64 bits) */

/* ---- the values of one block ----------------------------------------------------------------- */
template <typename T> struct rf_vec16;
template <> struct rf_vec16<float> { typedef float4 type; static constexpr int V = 4; };
template <> struct rf_vec16<double> { typedef double2 type; static constexpr int V = 2; };

__device__ __forceinline__ float rf_abs(float x) { return rf_fabs(x); }
__device__ __forceinline__ double rf_abs(double x) { return rf_dabs(x); }
__device__ __forceinline__ float rf_mul(float a, float b) { return rf_fmul(a, b); }
__device__ __forceinline__ double rf_mul(double a, double b) { return rf_dmul(a, b); }
__device__ __forceinline__ float rf_add(float a, float b) { return rf_fadd(a, b); }
__device__ __forceinline__ double rf_add(double a, double b) { return rf_dadd(a, b); }

/* N(0, std^2): z * std, z from Box-Muller (sampling.py: normal_f32 / normal_f64). */
template <typename T> struct rf_gen_normal;
template <> struct rf_gen_normal<float> {
    float std;
    __device__ __forceinline__ void operator()(uint4 x, float (&v)[4]) const {
        const float2 a = rf_box_muller_f32(x.x, x.y);
        const float2 b = rf_box_muller_f32(x.z, x.w);
        v[0] = rf_fmul(a.x, std);
        v[1] = rf_fmul(a.y, std);
        v[2] = rf_fmul(b.x, std);
        v[3] = rf_fmul(b.y, std);
    }
};
template <> struct rf_gen_normal<double> {
    double std;
    __device__ __forceinline__ void operator()(uint4 x, double (&v)[2]) const {
        const double2 z = rf_box_muller_f64(x);
        v[0] = rf_dmul(z.x, std);
        v[1] = rf_dmul(z.y, std);
    }
};

/* (u * mul + add) * scale, u the uniform (sampling.py: uniform_f32_fill / uniform_f64_fill). */
template <typename T> struct rf_gen_uniform;
template <> struct rf_gen_uniform<float> {
    float mul, add, scale;
    __device__ __forceinline__ float map(rf_u32 w) const {
        return rf_fmul(rf_fadd(rf_fmul(rf_uniform_f32(w), mul), add), scale);
    }
    __device__ __forceinline__ void operator()(uint4 x, float (&v)[4]) const {
        v[0] = map(x.x);
        v[1] = map(x.y);
        v[2] = map(x.z);
        v[3] = map(x.w);
    }
};
template <> struct rf_gen_uniform<double> {
    double mul, add, scale;
    __device__ __forceinline__ double map(rf_u32 wa, rf_u32 wb) const {
        return rf_dmul(rf_dadd(rf_dmul(rf_uniform_f64(wa, wb), mul), add), scale);
    }
    __device__ __forceinline__ void operator()(uint4 x, double (&v)[2]) const {
        v[0] = map(x.x, x.y);
        v[1] = map(x.z, x.w);
    }
};

/* ---- grid-stride cursor over (row, position) items in row-major order ----------------------------
 * A row is (a, s); its counter words are c2 = c2_start + a (mod 2^32) and c3 = c3_base + s.  Each step
 * moves the item index by the grid size: dq whole rows (da matrices and ds subs) and db positions, plus
 * one row when the position wraps.  No division in the loop; for rows longer than a grid step
 * (dq == 0, the large-matrix case) the row words change only on a wrap. */
struct rf_cursor {
    rf_u64 b;            /* position in the row: a block (fill kernels) or a value (truncation) */
    rf_u32 c2;           /* c2_start + a (mod 2^32) */
    rf_u32 s;            /* sub-index; c3 = c3_base + s */
    rf_u64 rowoff;       /* element offset of the row, (a S + s) N (general fill path only) */
    rf_u64 nb, db, drow, N;
    rf_u32 S, da, ds;
    bool rows_move;

    __device__ __forceinline__ void init(rf_u64 item, rf_u64 step, rf_u64 nb_, rf_u32 S_, rf_u64 N_,
                                         rf_u32 c2_start) {
        nb = nb_; S = S_; N = N_;
        const rf_u64 row = item / nb;
        b = item - row * nb;
        const rf_u64 a = row / S;
        s = (rf_u32)(row - a * S);
        c2 = c2_start + (rf_u32)a;
        rowoff = row * N;
        const rf_u64 dq = step / nb;
        db = step - dq * nb;
        const rf_u64 dqa = dq / S;
        da = (rf_u32)dqa;            /* only c2 uses it, modulo 2^32 */
        ds = (rf_u32)(dq - dqa * S);
        drow = dq * N;
        rows_move = dq != 0;
    }
    __device__ __forceinline__ void advance() {
        b += db;
        const bool carry = b >= nb;
        if (carry) b -= nb;
        if (rows_move || carry) {
            s += ds + (carry ? 1u : 0u);
            c2 += da;
            if (s >= S) { s -= S; c2 += 1u; }
            rowoff += drow + (carry ? N : 0ull);
        }
    }
};

/* ---- the fill: values of block b of a row at out[rowoff + V b ...] ------------------------------- */
template <typename T, bool ALIGNED, class Gen>
__device__ __forceinline__ void rf_fill_rows(T* __restrict__ out, rf_u64 A, rf_u32 S, rf_u64 N,
                                             rf_u32 k0, rf_u32 k1, rf_u32 c2_start, rf_u32 c3_base,
                                             const Gen& gen) {
    typedef typename rf_vec16<T>::type vec;
    constexpr int V = rf_vec16<T>::V;
    const uint2 key = make_uint2(k0, k1);
    const rf_u64 nb = (N + V - 1) / V;
    const rf_u64 total = A * S * nb;                   /* items; < 2^40 for any array that fits */
    const rf_u64 step = (rf_u64)gridDim.x * blockDim.x;
    rf_u64 w = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x;
    rf_cursor cur;
    cur.init(w, step, nb, S, N, c2_start);

    if (ALIGNED) {
        /* N % V == 0: item w's values are elements V w .. V w + V - 1, one aligned 16-byte store. */
        for (; w < total; w += step, cur.advance()) {
            const uint4 x = rf_philox4x32_10(
                make_uint4((rf_u32)cur.b, (rf_u32)(cur.b >> 32), cur.c2, c3_base + cur.s), key);
            T v[V];
            gen(x, v);
            vec o;
            if constexpr (V == 4) o = make_float4(v[0], v[1], v[2], v[3]);
            else o = make_double2(v[0], v[1]);
            RF_CHECK_ALIGNED(out + V * w);
            *reinterpret_cast<vec*>(out + V * w) = o;
        }
        return;
    }

    /* General path: stage the warp's span in shared memory, write aligned 16-byte groups. */
    extern __shared__ __align__(16) unsigned char rf_smem[];
    const int lane = threadIdx.x & 31;
    T* buf = reinterpret_cast<T*>(rf_smem) + (threadIdx.x >> 5) * (33 * V);
    const int mis0 = (int)(((unsigned long long)out / sizeof(T)) % V);   /* elements into a 16-byte group */
    for (;; w += step, cur.advance()) {
        const bool valid = w < total;
        const unsigned ballot = __ballot_sync(RF_FULL_MASK, valid);
        if (ballot == 0u) break;
        const rf_u64 P = cur.rowoff + V * cur.b;           /* element offset of this block's first value */
        int n = 0;
        T v[V];
        if (valid) {
            const rf_u64 left = N - V * cur.b;
            n = left < (rf_u64)V ? (int)left : V;
            const uint4 x = rf_philox4x32_10(
                make_uint4((rf_u32)cur.b, (rf_u32)(cur.b >> 32), cur.c2, c3_base + cur.s), key);
            gen(x, v);
        }
        /* lanes hold consecutive items, so the valid ones cover one contiguous span [Ps, Pe) */
        const rf_u64 Ps = __shfl_sync(RF_FULL_MASK, P, 0);                 /* lane 0 is always valid */
        const rf_u64 Pe = __shfl_sync(RF_FULL_MASK, P + (rf_u64)n, 31 - __clz(ballot));
        const int mis = (int)((mis0 + Ps) % V);
        const int off = (int)(P - Ps) + mis;
#pragma unroll
        for (int j = 0; j < V; ++j)
            if (j < n) buf[off + j] = v[j];
        __syncwarp();
        const int len = (int)(Pe - Ps) + mis;
        const rf_i64 base = (rf_i64)Ps - mis;          /* element offset of buf[0]; buf[i] valid for i >= mis */
        for (int i0 = lane * V; i0 < len; i0 += 32 * V) {
            if (i0 >= mis && i0 + V <= len) {
                RF_CHECK_ALIGNED(out + (base + i0));
                RF_CHECK_ALIGNED(buf + i0);
                *reinterpret_cast<vec*>(out + (base + i0)) = *reinterpret_cast<const vec*>(buf + i0);
            } else {
#pragma unroll
                for (int j = 0; j < V; ++j)
                    if (i0 + j >= mis && i0 + j < len) out[base + i0 + j] = buf[i0 + j];
            }
        }
        __syncwarp();
    }
}

template <typename T, bool ALIGNED>
__global__ void rf_normal_fill(T* __restrict__ out, rf_u64 A, rf_u32 S, rf_u64 N, rf_u32 k0, rf_u32 k1,
                               rf_u32 c2_start, rf_u32 c3_base, T std) {
    rf_gen_normal<T> gen;
    gen.std = std;
    rf_fill_rows<T, ALIGNED>(out, A, S, N, k0, k1, c2_start, c3_base, gen);
}

template <typename T, bool ALIGNED>
__global__ void rf_uniform_fill(T* __restrict__ out, rf_u64 A, rf_u32 S, rf_u64 N, rf_u32 k0, rf_u32 k1,
                                rf_u32 c2_start, rf_u32 c3_base, T mul, T add, T scale) {
    rf_gen_uniform<T> gen;
    gen.mul = mul;
    gen.add = add;
    gen.scale = scale;
    rf_fill_rows<T, ALIGNED>(out, A, S, N, k0, k1, c2_start, c3_base, gen);
}

/* ---- truncated normal (sampling.py: truncate_f32 / truncate_f64) --------------------------------
 * out holds N(0, 1) draws (rf_normal_fill with std 1).  Value i is redrawn while |z| > bound: attempt
 * a = 1, 2, ... reads value (a << 50) | i (float32) or (a << 49) | i (float64) of the same stream,
 * i.e. block position (a << 48) | block.  Then z * std.  One thread per value (grid-stride). */
template <typename T>
__global__ void rf_truncate(T* __restrict__ out, rf_u64 A, rf_u32 S, rf_u64 N, rf_u32 k0, rf_u32 k1,
                            rf_u32 c2_start, rf_u32 c3_base, T bound, T std) {
    constexpr int shift = RF_ATTEMPT_SHIFT + (sizeof(T) == 4 ? 2 : 1);
    const uint2 key = make_uint2(k0, k1);
    const rf_u64 total = A * S * N;
    const rf_u64 step = (rf_u64)gridDim.x * blockDim.x;
    rf_u64 w = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x;   /* = the element offset */
    rf_cursor cur;
    cur.init(w, step, N, S, N, c2_start);
    for (; w < total; w += step, cur.advance()) {
        const rf_u64 i = cur.b;
        T z = out[w];
        rf_u64 att = 0;
        while (rf_abs(z) > bound && att < RF_MAX_ATTEMPTS) {
            att += 1;
            const rf_u64 idx = (att << shift) | i;
            if constexpr (sizeof(T) == 4) z = rf_normal_at_f32(idx, cur.c2, c3_base + cur.s, key);
            else z = rf_normal_at_f64(idx, cur.c2, c3_base + cur.s, key);
        }
        out[w] = rf_mul(z, std);
    }
}

/* ---- the block function on arrays (rf.rng.philox4x32 for CuPy arrays) ---------------------------- */
extern "C" __global__ void rf_philox4x32_blocks(const rf_u32* __restrict__ ctr, const rf_u32* __restrict__ key,
                                                rf_u32* __restrict__ out, rf_u64 n) {
    for (rf_u64 i = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (rf_u64)gridDim.x * blockDim.x) {
        const uint4 y = rf_philox4x32_10(make_uint4(ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3]),
                                         make_uint2(key[2 * i], key[2 * i + 1]));
        out[4 * i] = y.x;
        out[4 * i + 1] = y.y;
        out[4 * i + 2] = y.z;
        out[4 * i + 3] = y.w;
    }
}

/* Explicit instantiations: the loader asks for these by name (NVRTC name expressions), and nvcc -c
 * (CI's compile check) then compiles every kernel body, not only the templates' syntax. */
template __global__ void rf_normal_fill<float, true>(float*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, float);
template __global__ void rf_normal_fill<float, false>(float*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, float);
template __global__ void rf_normal_fill<double, true>(double*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, double);
template __global__ void rf_normal_fill<double, false>(double*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, double);
template __global__ void rf_uniform_fill<float, true>(float*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, float, float, float);
template __global__ void rf_uniform_fill<float, false>(float*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, float, float, float);
template __global__ void rf_uniform_fill<double, true>(double*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, double, double, double);
template __global__ void rf_uniform_fill<double, false>(double*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, double, double, double);
template __global__ void rf_truncate<float>(float*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, float, float);
template __global__ void rf_truncate<double>(double*, rf_u64, rf_u32, rf_u64, rf_u32, rf_u32, rf_u32, rf_u32, double, double);
