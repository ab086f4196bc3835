/* propagate.cu: the GPU twin of kernels/cpu/propagate.py (rf.propagate, docs/propagate.md):
 * x_{l+1} = f(W_l x_l + b_l) through `depth` freshly drawn layers, a backward pass of a random output
 * gradient through the same layers regenerated from the stream, and per-network, per-layer statistics.
 *
 * Layer l of network j is rf.sample(scheme, (width, fan_in), seed, start=j, layer=l): value
 * v = i fan_in + k (entry (i, k)) of the weights stream (c2 = j, c3 = WEIGHTS << 24 | l).  It is NEVER
 * stored in global memory: each GEMM block generates the tile of W it is about to use into shared memory
 * (rf_pg_gen_tile: one Philox block per item, the header's Box-Muller, exactly the operations of
 * kernels/cpu/propagate.py gen_values, hence bit for bit the matrix rf.sample returns) and multiplies it
 * with the matching tile of the states right away.  Weights in flight: one BM x BK tile per resident
 * block (4 KiB in float32), whatever the width or depth.  Orthogonal layers (which need a QR of the
 * whole matrix) are the exception, as on the CPU: the wrapper materialises one layer of a chunk of
 * networks with rf.sample(backend="cuda") and the same kernels read the tile from it (`given`).
 *
 * Every kernel works on a chunk of `nb` networks at once (network b of the chunk = stream index
 * c2_start + b); the wrapper (kernels/cuda/propagate_launch.py) launches, per layer,
 *   forward:  rf_pg_forward  Z = W_l X (+ b_l)        tiles BM rows x BN samples, chain over k
 *             rf_pg_activate X = f(Z), D[slot] = f'(Z), per-column float64 sums (one thread per column)
 *             rf_pg_combine  the layer's forward statistics (one thread per network)
 *   backward: rf_pg_backward G2 = W_l^T (D[slot] * G)  tiles BM fan-in rows x BN samples, chain over i
 *             rf_pg_gradsum, rf_pg_combine  grad_var of the layer
 * and rf_pg_inputs once (x_0 from PROP_INPUT, g from PROP_GRAD, value k of stream (c2, c3 + s)).
 * Layout: every state is (units, samples) per network, row stride S (as the CPU kernel); X, G, G2 have
 * max(width, in_width) rows, Z width rows, D `seg` slots of width rows (checkpointing as on the CPU).
 *
 * What equals the CPU bit for bit (same IEEE operations in the same order): the weights, biases,
 * inputs and output gradients (the header's stream); the activations and their derivatives in float32
 * (the Cephes expf/tanhf polynomials of kernels/cpu/propagate.py, operation for operation, through
 * inline PTX so neither --fmad nor CuPy's -ftz=true changes them); u = f'(z) g; every statistic given
 * the layer's values (the CPU's float64 per-column sums in its order: a column's sums are one thread's
 * sequential loop over units; the combination over columns one thread's loop over s).
 * What does not: the GEMM's accumulation order.  The CPU calls BLAS (its kernel's blocking and FMA
 * order are the library's, not ours); here every entry of Z (or of G2) is ONE chain of fused
 * multiply-adds over k (or i) = 0, 1, ..., K-1 in order, starting from +0, then + b_i.  That order is
 * fixed: neither the grid, nor the chunking of networks, nor the tile sizes' placement changes a bit of
 * the GPU result; it differs from the CPU's within the usual GEMM bound |dz| <= K eps sum_k |w x|.
 * float64 tanh/exp are CUDA's (libdevice, within 1-2 ulp), the CPU's are the host libm's.
 * float32 conversions are inline PTX too (cvt without .ftz); libdevice's float64 tanh/exp use a few .ftz
 * float32 helpers internally (tests/test_cuda_propagate_emulated.py reads the PTX).
 *
 * Host builds (tests/cuda_host: the shim's block mode runs every thread of a block as a coroutine) use
 * the same code with plain C++ operators for the one-operation helpers.
 */
#include "philox.cuh"
#include "fp.cuh"   /* rf_fdiv, rf_ffloor, rf_f2i, rf_f2d, rf_fabs, rf_dabs, RF_MEM */
#if !defined(__CUDACC__)
#include <cmath>   /* host builds (tests/cuda_host): tanh, exp */
#endif

/* plan[] layout, constant for a chunk of networks (rinit_fast/spec/propagate.py: PLAN_FIELDS) */
enum {
    RF_PG_NB, RF_PG_WIDTH, RF_PG_INW, RF_PG_MAXW, RF_PG_S, RF_PG_FAMILY, RF_PG_K0, RF_PG_K1,
    RF_PG_C2START, RF_PG_ACT, RF_PG_SEG, RF_PG_DEPTH, RF_PG_C3X, RF_PG_C3G, RF_PG_COUNT
};
#define RF_PG_BM 32          /* output rows of a GEMM tile (units forward, fan-in units backward) */
#define RF_PG_BN 32          /* samples of a GEMM tile (one warp's lanes) */
#define RF_PG_BK 32          /* reduction chunk (one generated W tile) */
#define RF_PG_THREADS 256    /* GEMM block size (fixed: the thread -> entry map depends on it) */
#define RF_PG_TM 4           /* rows per thread: 8 row groups x 4 rows = BM, 32 lanes = BN */
#define RF_PG_ATTEMPT_SHIFT 48ull          /* rinit_fast/spec/stream.py: ATTEMPT_SHIFT */
#define RF_PG_MAX_ATTEMPTS (1ull << 14)    /* rinit_fast/spec/stream.py: MAX_ATTEMPTS */
#define RF_PG_TRUNC_BOUND 2.0              /* rinit_fast/spec/stream.py: TRUNC_BOUND */
#define RF_PG_NORMAL 0       /* weight families (rinit_fast/spec/propagate.py: FAMILIES) */
#define RF_PG_UNIFORM 1
#define RF_PG_TRUNCATED 2
#define RF_PG_CONSTANT 3
#define RF_LINEAR 0          /* activations (rinit_fast/spec/activations.py: one code table) */
#define RF_TANH 1
#define RF_SIGMOID 2
#define RF_RELU 3
#define RF_PG_NSTAT 8
#define RF_PG_NCOL 5

/* ---- float32 exp and tanh: kernels/cpu/propagate.py exp_f32 / tanh_f32 (Cephes), op for op ------- */
RF_HD float rf_pg_exp_f32(float x) {
    x = (x < -87.0f) ? -87.0f : x;                     /* min(max(x, -87), 88) */
    x = (x > 88.0f) ? 88.0f : x;
    const float n = rf_ffloor(rf_fadd(rf_fmul(x, 0x1.715476p+0f), 0.5f));
    float r = rf_fsub(x, rf_fmul(n, 0x1.63p-1f));
    r = rf_fsub(r, rf_fmul(n, -0x1.bd0106p-13f));
    float p = rf_fadd(rf_fmul(0x1.a0d2cep-13f, r), 0x1.6e879cp-10f);
    p = rf_fadd(rf_fmul(p, r), 0x1.111210p-7f);
    p = rf_fadd(rf_fmul(p, r), 0x1.555382p-5f);
    p = rf_fadd(rf_fmul(p, r), 0x1.555554p-3f);
    p = rf_fadd(rf_fmul(p, r), 0x1p-1f);
    p = rf_fadd(rf_fadd(rf_fmul(rf_fmul(p, r), r), r), 1.0f);   /* p r r + r + 1 */
    const float two_n = rf_u32_as_f32((rf_u32)((rf_f2i(n) + 127) << 23));
    return rf_fmul(p, two_n);
}
RF_HD float rf_pg_tanh_f32(float x) {
    const float ax = rf_fabs(x);
    const float z = rf_fmul(x, x);
    float p = rf_fadd(rf_fmul(-0x1.75e1d4p-8f, z), 0x1.52269cp-6f);
    p = rf_fadd(rf_fmul(p, z), -0x1.b83c5ap-5f);
    p = rf_fadd(rf_fmul(p, z), 0x1.110726p-3f);
    p = rf_fadd(rf_fmul(p, z), -0x1.555532p-2f);
    const float small = rf_fadd(rf_fmul(rf_fmul(p, z), x), x);
    if (ax < 0.625f) return small;
    float big = rf_fsub(1.0f, rf_fdiv(2.0f, rf_fadd(rf_pg_exp_f32(rf_fadd(ax, ax)), 1.0f)));
    /* x >= 0 here is a normal number or larger (|x| >= 0.625): the comparison needs no care */
    return x >= 0.0f ? big : rf_fneg(big);
}

/* ---- per-dtype arithmetic ------------------------------------------------------------------------- */
template <typename T> struct rf_pg;
template <> struct rf_pg<float> {
    static constexpr int V = 4;                        /* values per Philox block */
    static RF_MEM float mul(float a, float b) { return rf_fmul(a, b); }
    static RF_MEM float add(float a, float b) { return rf_fadd(a, b); }
    static RF_MEM float sub(float a, float b) { return rf_fsub(a, b); }
    static RF_MEM float fma(float a, float b, float c) { return rf_ffma(a, b, c); }
    static RF_MEM float abs(float a) { return rf_fabs(a); }
    static RF_MEM double to_d(float x) { return rf_f2d(x); }
    static RF_MEM float normal_at(rf_u64 i, rf_u32 c2, rf_u32 c3, uint2 key) {
        return rf_normal_at_f32(i, c2, c3, key);
    }
    static RF_MEM bool gt0(float x) { return rf_fgt0(x); }   /* on the bits: a float compare is .ftz */
    static RF_MEM float tanh_(float x) { return rf_pg_tanh_f32(x); }
    static RF_MEM float exp_(float x) { return rf_pg_exp_f32(x); }
    static RF_MEM float div(float a, float b) { return rf_fdiv(a, b); }
    static RF_MEM float neg(float a) { return rf_fneg(a); }
    /* the raw values of a block: N(0, 1) (Box-Muller pairs) or U[0, 1) (one word each) */
    static RF_MEM void normals(uint4 x, float (&v)[4]) {
        const float2 a = rf_box_muller_f32(x.x, x.y);
        const float2 b = rf_box_muller_f32(x.z, x.w);
        v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
    }
    static RF_MEM void uniforms(uint4 x, float (&v)[4]) {
        v[0] = rf_uniform_f32(x.x); v[1] = rf_uniform_f32(x.y);
        v[2] = rf_uniform_f32(x.z); v[3] = rf_uniform_f32(x.w);
    }
};
template <> struct rf_pg<double> {
    static constexpr int V = 2;
    static RF_MEM double mul(double a, double b) { return rf_dmul(a, b); }
    static RF_MEM double add(double a, double b) { return rf_dadd(a, b); }
    static RF_MEM double sub(double a, double b) { return rf_dsub(a, b); }
    static RF_MEM double fma(double a, double b, double c) { return rf_dfma(a, b, c); }
    static RF_MEM double abs(double a) { return rf_dabs(a); }
    static RF_MEM double to_d(double x) { return x; }
    static RF_MEM double normal_at(rf_u64 i, rf_u32 c2, rf_u32 c3, uint2 key) {
        return rf_normal_at_f64(i, c2, c3, key);
    }
    static RF_MEM bool gt0(double x) { return x > 0.0; }
    /* CUDA's libdevice tanh/exp on the device (within 1-2 ulp of the host libm the CPU calls) */
    static RF_MEM double tanh_(double x) { return tanh(x); }
    static RF_MEM double exp_(double x) { return exp(x); }
    static RF_MEM double div(double a, double b) { return rf_ddiv(a, b); }
    static RF_MEM double neg(double a) { return rf_dneg(a); }
    static RF_MEM void normals(uint4 x, double (&v)[2]) {
        const double2 z = rf_box_muller_f64(x);
        v[0] = z.x; v[1] = z.y;
    }
    static RF_MEM void uniforms(uint4 x, double (&v)[2]) {
        v[0] = rf_uniform_f64(x.x, x.y); v[1] = rf_uniform_f64(x.z, x.w);
    }
};

/* (f(z), f'(z)) for act RF_LINEAR, RF_TANH, RF_SIGMOID, RF_RELU (kernels/cpu/propagate.py act_fn) */
template <typename T>
RF_HD void rf_pg_act(T z, int act, T* x, T* d) {
    typedef rf_pg<T> A;
    if (act == RF_TANH) {
        const T t = A::tanh_(z);
        *x = t;
        *d = A::sub(T(1), A::mul(t, t));
    } else if (act == RF_SIGMOID) {
        const T g = A::div(T(1), A::add(T(1), A::exp_(A::neg(z))));
        *x = g;
        *d = A::mul(g, A::sub(T(1), g));
    } else if (act == RF_RELU) {
        const bool pos = A::gt0(z);
        *x = pos ? z : T(0);
        *d = pos ? T(1) : T(0);
    } else {
        *x = z;
        *d = T(1);
    }
}

/* ---- the weights: a tile of W_l, generated (or read, `given`) into shared memory ------------------ */
template <typename T>
struct rf_pg_wparams {
    int family;          /* RF_PG_NORMAL, RF_PG_UNIFORM, RF_PG_TRUNCATED, RF_PG_CONSTANT */
    T mul, add, scale;
    rf_u32 c2, c3;
    uint2 key;
    rf_u64 fi;           /* fan-in: row length of W_l */
    const T* given;      /* this network's materialised W_l (width x fi), or null */
};

/* The finished value v of the stream from its raw draw (kernels/cpu/propagate.py gen_values) */
template <typename T>
RF_HD T rf_pg_finish(const rf_pg_wparams<T>& w, T raw, rf_u64 v) {
    typedef rf_pg<T> A;
    if (w.family == RF_PG_NORMAL) return A::mul(raw, w.scale);
    if (w.family == RF_PG_UNIFORM) return A::mul(A::add(A::mul(raw, w.mul), w.add), w.scale);
    /* truncated: z * 1 (== z), redraws at (a << shift) | v while |z| > 2, then z * scale */
    constexpr rf_u64 shift = RF_PG_ATTEMPT_SHIFT + (sizeof(T) == 4 ? 2ull : 1ull);
    T z = raw;
    rf_u64 a = 0;
    while (A::abs(z) > T(RF_PG_TRUNC_BOUND) && a < RF_PG_MAX_ATTEMPTS) {
        a += 1;
        z = A::normal_at((a << shift) | v, w.c2, w.c3, w.key);
    }
    return A::mul(z, w.scale);
}

/* tile[r * ld + c] = W_l[ia + r, ka + c] for r < nr, c < nc; 0 for nr <= r < rows, nc <= c < cols.
 * Items (row, Philox block) are spread over the block's threads; a block covers V consecutive values of
 * a row's segment, and each thread writes the values of its block that fall inside the segment.  No
 * barrier inside (the caller synchronises before the tile is read). */
template <typename T>
__device__ __forceinline__ void rf_pg_gen_tile(T* tile, int ld, rf_u64 ia, int nr, rf_u64 ka, int nc, int rows,
                                               int cols, const rf_pg_wparams<T>& w, int tid, int NT) {
    typedef rf_pg<T> A;
    constexpr int V = A::V;
    for (int q = tid; q < rows * cols; q += NT) {          /* padding (disjoint from the values) */
        const int r = q / cols, c = q - r * cols;
        if (r >= nr || c >= nc) tile[r * ld + c] = T(0);
    }
    if (w.given) {
        for (int q = tid; q < nr * nc; q += NT) {
            const int r = q / nc, c = q - r * nc;
            tile[r * ld + c] = w.given[(ia + r) * w.fi + ka + c];
        }
        return;
    }
    if (w.family == RF_PG_CONSTANT) {
        for (int q = tid; q < nr * nc; q += NT) {
            const int r = q / nc, c = q - r * nc;
            tile[r * ld + c] = w.scale;
        }
        return;
    }
    const int JB = cols / V + 1;     /* blocks a segment of nc <= cols values can touch */
    for (int q = tid; q < nr * JB; q += NT) {
        const int r = q / JB, j = q - r * JB;
        const rf_u64 lo = (ia + r) * w.fi + ka, hi = lo + (rf_u64)nc;
        const rf_u64 b = lo / V + (rf_u64)j;
        if (b * V >= hi) continue;
        const uint4 x = rf_block(b, w.c2, w.c3, w.key);
        T raw[V];
        if (w.family == RF_PG_UNIFORM) A::uniforms(x, raw);
        else A::normals(x, raw);
#pragma unroll
        for (int e = 0; e < V; ++e) {
            const rf_u64 v = b * V + (rf_u64)e;
            if (v >= lo && v < hi) tile[r * ld + (int)(v - lo)] = rf_pg_finish<T>(w, raw[e], v);
        }
    }
}

template <typename T>
__device__ __forceinline__ rf_pg_wparams<T> rf_pg_wp(const rf_u64* plan, rf_u64 b, rf_u64 fi, rf_u32 c3w,
                                                     const T* Wg, rf_u64 given, T mul, T add, T scale) {
    rf_pg_wparams<T> w;
    w.family = (int)plan[RF_PG_FAMILY];
    w.mul = mul; w.add = add; w.scale = scale;
    w.c2 = (rf_u32)plan[RF_PG_C2START] + (rf_u32)b;
    w.c3 = c3w;
    w.key = make_uint2((rf_u32)plan[RF_PG_K0], (rf_u32)plan[RF_PG_K1]);
    w.fi = fi;
    w.given = given ? Wg + b * plan[RF_PG_WIDTH] * fi : nullptr;
    return w;
}

/* ---- forward GEMM: Z[b] = W_l X[b] (+ b_l) ---------------------------------------------------------
 * Item = (network, tile of BM rows, tile of BN samples), block-stride.  Per BK chunk of k: generate
 * W[i0.., ka..] into Wt (BM x BK), copy X[ka.., s0..] into Xt (BK x BN), then each thread runs its TM
 * rows' chains over the chunk in k order.  Shared memory: (BM BK + BK BN + BM) T. */
template <typename T>
__device__ __forceinline__ void rf_pg_forward_body(const T* Wg, const T* X, T* Z, const rf_u64* plan, rf_u64 fi,
                                                   rf_u32 c3w, rf_u32 c3b, rf_u64 flags, T mul, T add, T scale,
                                                   T bias_std) {
    typedef rf_pg<T> A;
    const rf_u64 nb = plan[RF_PG_NB], width = plan[RF_PG_WIDTH], maxw = plan[RF_PG_MAXW], S = plan[RF_PG_S];
    const bool given = (flags & 1ull) != 0, has_bias = (flags & 2ull) != 0;
    const uint2 key = make_uint2((rf_u32)plan[RF_PG_K0], (rf_u32)plan[RF_PG_K1]);
    const int tid = (int)threadIdx.x, NT = (int)blockDim.x;
    const int col = tid % RF_PG_BN, rg = tid / RF_PG_BN;
    const rf_u64 ti = (width + RF_PG_BM - 1) / RF_PG_BM, ts = (S + RF_PG_BN - 1) / RF_PG_BN;
    extern __shared__ __align__(16) unsigned char rf_smem[];
    T* const Wt = reinterpret_cast<T*>(rf_smem);
    T* const Xt = Wt + RF_PG_BM * RF_PG_BK;
    T* const bs = Xt + RF_PG_BK * RF_PG_BN;
    for (rf_u64 item = blockIdx.x; item < nb * ti * ts; item += gridDim.x) {
        const rf_u64 b = item / (ti * ts), rem = item - b * (ti * ts);
        const rf_u64 i0 = (rem / ts) * RF_PG_BM, s0 = (rem % ts) * RF_PG_BN;
        const int nr = (int)(width - i0 < RF_PG_BM ? width - i0 : RF_PG_BM);
        const int ns = (int)(S - s0 < RF_PG_BN ? S - s0 : RF_PG_BN);
        const rf_pg_wparams<T> w = rf_pg_wp<T>(plan, b, fi, c3w, Wg, given, mul, add, scale);
        const T* const Xb = X + b * maxw * S;
        for (int r = tid; r < RF_PG_BM; r += NT)         /* b_i = N(0,1) value i of (c2, c3b) * bias_std */
            bs[r] = (has_bias && r < nr) ? A::mul(A::normal_at(i0 + r, w.c2, c3b, key), bias_std) : T(0);
        T acc[RF_PG_TM];
#pragma unroll
        for (int q = 0; q < RF_PG_TM; ++q) acc[q] = T(0);
        for (rf_u64 ka = 0; ka < fi; ka += RF_PG_BK) {
            const int kc = (int)(fi - ka < RF_PG_BK ? fi - ka : RF_PG_BK);
            __syncthreads();                               /* the previous chunk has been read */
            rf_pg_gen_tile<T>(Wt, RF_PG_BK, i0, nr, ka, kc, RF_PG_BM, RF_PG_BK, w, tid, NT);
            for (int q = tid; q < RF_PG_BK * RF_PG_BN; q += NT) {
                const int kk = q / RF_PG_BN, c = q - kk * RF_PG_BN;
                Xt[q] = (kk < kc && c < ns) ? Xb[(ka + kk) * S + s0 + c] : T(0);
            }
            __syncthreads();
            for (int kk = 0; kk < kc; ++kk) {
                const T xv = Xt[kk * RF_PG_BN + col];
#pragma unroll
                for (int q = 0; q < RF_PG_TM; ++q)
                    acc[q] = A::fma(Wt[(rg * RF_PG_TM + q) * RF_PG_BK + kk], xv, acc[q]);
            }
        }
#pragma unroll
        for (int q = 0; q < RF_PG_TM; ++q) {
            const int r = rg * RF_PG_TM + q;
            if (r < nr && col < ns) {
                T z = acc[q];
                if (has_bias) z = A::add(z, bs[r]);
                Z[b * width * S + (i0 + r) * S + s0 + col] = z;
            }
        }
        __syncthreads();                                   /* bs and the tiles are reused by the next item */
    }
}

/* ---- backward GEMM: G2[b][:fi] = W_l^T (D[b, slot] * G[b]) ------------------------------------------
 * Item = (network, tile of BM fan-in rows k, tile of BN samples); per BK chunk of units i: generate
 * W[ia.., k0..] into Wt (BK x BM), u = d * g into Ut (BK x BN), chains over i in order. */
template <typename T>
__device__ __forceinline__ void rf_pg_backward_body(const T* Wg, const T* D, const T* G, T* G2,
                                                    const rf_u64* plan, rf_u64 fi, rf_u32 c3w, rf_u64 slot,
                                                    rf_u64 flags, T mul, T add, T scale) {
    typedef rf_pg<T> A;
    const rf_u64 nb = plan[RF_PG_NB], width = plan[RF_PG_WIDTH], maxw = plan[RF_PG_MAXW], S = plan[RF_PG_S];
    const rf_u64 seg = plan[RF_PG_SEG];
    const bool given = (flags & 1ull) != 0;
    const int tid = (int)threadIdx.x, NT = (int)blockDim.x;
    const int col = tid % RF_PG_BN, rg = tid / RF_PG_BN;
    const rf_u64 tk = (fi + RF_PG_BM - 1) / RF_PG_BM, ts = (S + RF_PG_BN - 1) / RF_PG_BN;
    extern __shared__ __align__(16) unsigned char rf_smem[];
    T* const Wt = reinterpret_cast<T*>(rf_smem);
    T* const Ut = Wt + RF_PG_BK * RF_PG_BM;
    for (rf_u64 item = blockIdx.x; item < nb * tk * ts; item += gridDim.x) {
        const rf_u64 b = item / (tk * ts), rem = item - b * (tk * ts);
        const rf_u64 k0 = (rem / ts) * RF_PG_BM, s0 = (rem % ts) * RF_PG_BN;
        const int nk = (int)(fi - k0 < RF_PG_BM ? fi - k0 : RF_PG_BM);
        const int ns = (int)(S - s0 < RF_PG_BN ? S - s0 : RF_PG_BN);
        const rf_pg_wparams<T> w = rf_pg_wp<T>(plan, b, fi, c3w, Wg, given, mul, add, scale);
        const T* const Db = D + (b * seg + slot) * width * S;
        const T* const Gb = G + b * maxw * S;
        T acc[RF_PG_TM];
#pragma unroll
        for (int q = 0; q < RF_PG_TM; ++q) acc[q] = T(0);
        for (rf_u64 ia = 0; ia < width; ia += RF_PG_BK) {
            const int ic = (int)(width - ia < RF_PG_BK ? width - ia : RF_PG_BK);
            __syncthreads();
            rf_pg_gen_tile<T>(Wt, RF_PG_BM, ia, ic, k0, nk, RF_PG_BK, RF_PG_BM, w, tid, NT);
            for (int q = tid; q < RF_PG_BK * RF_PG_BN; q += NT) {
                const int ii = q / RF_PG_BN, c = q - ii * RF_PG_BN;
                const rf_u64 o = (ia + ii) * S + s0 + c;
                Ut[q] = (ii < ic && c < ns) ? A::mul(Db[o], Gb[o]) : T(0);
            }
            __syncthreads();
            for (int ii = 0; ii < ic; ++ii) {
                const T uv = Ut[ii * RF_PG_BN + col];
#pragma unroll
                for (int q = 0; q < RF_PG_TM; ++q)
                    acc[q] = A::fma(Wt[ii * RF_PG_BM + rg * RF_PG_TM + q], uv, acc[q]);
            }
        }
#pragma unroll
        for (int q = 0; q < RF_PG_TM; ++q) {
            const int r = rg * RF_PG_TM + q;
            if (r < nk && col < ns) G2[b * maxw * S + (k0 + r) * S + s0 + col] = acc[q];
        }
        __syncthreads();
    }
}

/* ---- activation and the per-column float64 sums (kernels/cpu/propagate.py activate) ---------------
 * One thread per (network, sample column), grid-stride; cols[b][c][s], c = 0..4: column mean of z,
 * sum of (z - m)^2, column mean of x, sum of |x|, sum of (x - m_x)^2 (the CPU's cols, same order). */
template <typename T>
__device__ __forceinline__ void rf_pg_activate_body(const T* Z, T* X, T* D, double* cols, const rf_u64* plan,
                                                    rf_u64 slot, rf_u64 do_stats) {
    typedef rf_pg<T> A;
    const rf_u64 nb = plan[RF_PG_NB], width = plan[RF_PG_WIDTH], maxw = plan[RF_PG_MAXW], S = plan[RF_PG_S];
    const rf_u64 seg = plan[RF_PG_SEG];
    const int act = (int)plan[RF_PG_ACT];
    const rf_u64 step = (rf_u64)gridDim.x * blockDim.x;
    const double wd = (double)width;
    for (rf_u64 item = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x; item < nb * S; item += step) {
        const rf_u64 b = item / S, s = item - b * S;
        const T* const z = Z + b * width * S + s;
        T* const x = X + b * maxw * S + s;
        T* const d = D + (b * seg + slot) * width * S + s;
        if (!do_stats) {
            for (rf_u64 i = 0; i < width; ++i) rf_pg_act<T>(z[i * S], act, x + i * S, d + i * S);
            continue;
        }
        double c0 = 0.0, c1 = 0.0, c2 = 0.0, c3 = 0.0, c4 = 0.0;
        for (rf_u64 i = 0; i < width; ++i) c0 = rf_dadd(c0, A::to_d(z[i * S]));
        c0 = rf_ddiv(c0, wd);
        for (rf_u64 i = 0; i < width; ++i) {
            const T zi = z[i * S];
            const double dz = rf_dsub(A::to_d(zi), c0);
            c1 = rf_dadd(c1, rf_dmul(dz, dz));
            T xi, di;
            rf_pg_act<T>(zi, act, &xi, &di);
            x[i * S] = xi;
            d[i * S] = di;
            const double xf = A::to_d(xi);
            c2 = rf_dadd(c2, xf);
            c3 = rf_dadd(c3, rf_dabs(xf));
        }
        c2 = rf_ddiv(c2, wd);
        for (rf_u64 i = 0; i < width; ++i) {
            const double dx = rf_dsub(A::to_d(x[i * S]), c2);
            c4 = rf_dadd(c4, rf_dmul(dx, dx));
        }
        double* const cb = cols + b * RF_PG_NCOL * S + s;
        cb[0] = c0; cb[S] = c1; cb[2 * S] = c2; cb[3 * S] = c3; cb[4 * S] = c4;
    }
}

/* cols[b][0][s] = sum over k < fi of G2[b][k][s]^2 (kernels/cpu/propagate.py grad_stat's columns) */
template <typename T>
__device__ __forceinline__ void rf_pg_gradsum_body(const T* G2, double* cols, const rf_u64* plan, rf_u64 fi) {
    typedef rf_pg<T> A;
    const rf_u64 nb = plan[RF_PG_NB], maxw = plan[RF_PG_MAXW], S = plan[RF_PG_S];
    const rf_u64 step = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 item = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x; item < nb * S; item += step) {
        const rf_u64 b = item / S, s = item - b * S;
        const T* const g = G2 + b * maxw * S + s;
        double c = 0.0;
        for (rf_u64 k = 0; k < fi; ++k) {
            const double v = A::to_d(g[k * S]);
            c = rf_dadd(c, rf_dmul(v, v));
        }
        cols[b * RF_PG_NCOL * S + s] = c;
    }
}

/* One thread per network: the layer's statistics from the columns, in the CPU's order.
 * mode 0: forward (stats[b][layer][0..6]), mode 1: grad_var (stats[b][layer][7], fan-in fi). */
extern "C" __global__ void rf_pg_combine(const double* cols, double* stats, const rf_u64* plan, rf_u64 layer,
                                         rf_u64 mode, rf_u64 fi) {
    const rf_u64 nb = plan[RF_PG_NB], width = plan[RF_PG_WIDTH], S = plan[RF_PG_S];
    const rf_u64 depth = plan[RF_PG_DEPTH];
    const rf_u64 step = (rf_u64)gridDim.x * blockDim.x;
    const double Sd = (double)S;
    for (rf_u64 b = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x; b < nb; b += step) {
        const double* const c = cols + b * RF_PG_NCOL * S;
        double* const st = stats + (b * depth + layer) * RF_PG_NSTAT;
        if (mode == 1) {
            double a = 0.0;
            for (rf_u64 s = 0; s < S; ++s) a = rf_dadd(a, c[s]);
            st[7] = rf_ddiv(a, (double)(fi * S));
            continue;
        }
        double zm = 0.0, zq = 0.0, xm = 0.0, xa = 0.0, xq = 0.0, zb = 0.0, xb = 0.0;
        for (rf_u64 s = 0; s < S; ++s) {
            zm = rf_dadd(zm, c[s]);
            zq = rf_dadd(zq, c[S + s]);
            xm = rf_dadd(xm, c[2 * S + s]);
            xa = rf_dadd(xa, c[3 * S + s]);
            xq = rf_dadd(xq, c[4 * S + s]);
        }
        zm = rf_ddiv(zm, Sd);
        xm = rf_ddiv(xm, Sd);
        for (rf_u64 s = 0; s < S; ++s) {
            double d = rf_dsub(c[s], zm);
            zb = rf_dadd(zb, rf_dmul(d, d));
            d = rf_dsub(c[2 * S + s], xm);
            xb = rf_dadd(xb, rf_dmul(d, d));
        }
        const double n = (double)(width * S);
        st[0] = zm;
        st[2] = rf_ddiv(zq, n);
        st[1] = rf_dadd(rf_ddiv(zq, n), rf_ddiv(zb, Sd));
        st[3] = xm;
        st[5] = rf_ddiv(xq, n);
        st[4] = rf_dadd(rf_ddiv(xq, n), rf_ddiv(xb, Sd));
        st[6] = rf_ddiv(xa, n);
    }
}

/* x_0[b][k][s] = value k of (c2, c3x + s), k < in_width; g[b][i][s] = value i of (c2, c3g + s), i < width */
template <typename T>
__device__ __forceinline__ void rf_pg_inputs_body(T* X, T* G, const rf_u64* plan) {
    typedef rf_pg<T> A;
    const rf_u64 nb = plan[RF_PG_NB], width = plan[RF_PG_WIDTH], inw = plan[RF_PG_INW];
    const rf_u64 maxw = plan[RF_PG_MAXW], S = plan[RF_PG_S];
    const uint2 key = make_uint2((rf_u32)plan[RF_PG_K0], (rf_u32)plan[RF_PG_K1]);
    const rf_u32 c2s = (rf_u32)plan[RF_PG_C2START], c3x = (rf_u32)plan[RF_PG_C3X], c3g = (rf_u32)plan[RF_PG_C3G];
    const rf_u64 per = (inw + width) * S;
    const rf_u64 step = (rf_u64)gridDim.x * blockDim.x;
    for (rf_u64 item = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x; item < nb * per; item += step) {
        const rf_u64 b = item / per, rem = item - b * per;
        const rf_u32 c2 = c2s + (rf_u32)b;
        if (rem < inw * S) {
            const rf_u64 k = rem / S, s = rem - k * S;
            X[b * maxw * S + k * S + s] = A::normal_at(k, c2, c3x + (rf_u32)s, key);
        } else {
            const rf_u64 r2 = rem - inw * S, i = r2 / S, s = r2 - i * S;
            G[b * maxw * S + i * S + s] = A::normal_at(i, c2, c3g + (rf_u32)s, key);
        }
    }
}

/* out[b] = W_l of network c2_start + b (width x fi) exactly as the GEMMs generate it, tile by tile
 * (tests: equals rf.sample bit for bit). */
template <typename T>
__device__ __forceinline__ void rf_pg_layer_weights_body(T* out, const rf_u64* plan, rf_u64 fi, rf_u32 c3w,
                                                         T mul, T add, T scale) {
    const rf_u64 nb = plan[RF_PG_NB], width = plan[RF_PG_WIDTH];
    const int tid = (int)threadIdx.x, NT = (int)blockDim.x;
    const rf_u64 ti = (width + RF_PG_BM - 1) / RF_PG_BM, tk = (fi + RF_PG_BK - 1) / RF_PG_BK;
    extern __shared__ __align__(16) unsigned char rf_smem[];
    T* const Wt = reinterpret_cast<T*>(rf_smem);
    for (rf_u64 item = blockIdx.x; item < nb * ti * tk; item += gridDim.x) {
        const rf_u64 b = item / (ti * tk), rem = item - b * (ti * tk);
        const rf_u64 i0 = (rem / tk) * RF_PG_BM, ka = (rem % tk) * RF_PG_BK;
        const int nr = (int)(width - i0 < RF_PG_BM ? width - i0 : RF_PG_BM);
        const int kc = (int)(fi - ka < RF_PG_BK ? fi - ka : RF_PG_BK);
        const rf_pg_wparams<T> w = rf_pg_wp<T>(plan, b, fi, c3w, (const T*)nullptr, 0, mul, add, scale);
        __syncthreads();
        rf_pg_gen_tile<T>(Wt, RF_PG_BK, i0, nr, ka, kc, RF_PG_BM, RF_PG_BK, w, tid, NT);
        __syncthreads();
        for (int q = tid; q < nr * kc; q += NT) {
            const int r = q / kc, c = q - r * kc;
            out[b * width * fi + (i0 + r) * fi + ka + c] = Wt[r * RF_PG_BK + c];
        }
    }
}

/* ---- the kernels, one name per dtype (extern "C": no name expressions needed) --------------------- */
#define RF_PG_KERNELS(SFX, T)                                                                             \
    extern "C" __global__ void __launch_bounds__(RF_PG_THREADS) rf_pg_forward_##SFX(                      \
        const T* Wg, const T* X, T* Z, const rf_u64* plan, rf_u64 fi, rf_u32 c3w, rf_u32 c3b,            \
        rf_u64 flags, T mul, T add, T scale, T bias_std) {                                               \
        rf_pg_forward_body<T>(Wg, X, Z, plan, fi, c3w, c3b, flags, mul, add, scale, bias_std);           \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(RF_PG_THREADS) rf_pg_backward_##SFX(                     \
        const T* Wg, const T* D, const T* G, T* G2, const rf_u64* plan, rf_u64 fi, rf_u32 c3w,           \
        rf_u64 slot, rf_u64 flags, T mul, T add, T scale) {                                              \
        rf_pg_backward_body<T>(Wg, D, G, G2, plan, fi, c3w, slot, flags, mul, add, scale);               \
    }                                                                                                    \
    extern "C" __global__ void rf_pg_activate_##SFX(const T* Z, T* X, T* D, double* cols,                \
                                                    const rf_u64* plan, rf_u64 slot, rf_u64 do_stats) {  \
        rf_pg_activate_body<T>(Z, X, D, cols, plan, slot, do_stats);                                     \
    }                                                                                                    \
    extern "C" __global__ void rf_pg_gradsum_##SFX(const T* G2, double* cols, const rf_u64* plan,        \
                                                   rf_u64 fi) {                                          \
        rf_pg_gradsum_body<T>(G2, cols, plan, fi);                                                       \
    }                                                                                                    \
    extern "C" __global__ void rf_pg_inputs_##SFX(T* X, T* G, const rf_u64* plan) {                     \
        rf_pg_inputs_body<T>(X, G, plan);                                                                \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(RF_PG_THREADS) rf_pg_layer_weights_##SFX(                \
        T* out, const rf_u64* plan, rf_u64 fi, rf_u32 c3w, T mul, T add, T scale) {                      \
        rf_pg_layer_weights_body<T>(out, plan, fi, c3w, mul, add, scale);                                \
    }

RF_PG_KERNELS(f32, float)
RF_PG_KERNELS(f64, double)
