/* unroll.cu: the GPU twin of kernels/cpu/unroll.py (rf.unroll): h_t = f(W h_{t-1} + U x_t + b) for
 * every matrix and realisation, norms in log scale, optional tangent v_t = D_t W v_{t-1}.
 *
 * The semantics (docs/unroll.md) and every floating-point operation are those of the CPU kernel, in
 * the same order, so the states are bit-identical:
 *  - h = g 2^e; a step computes z = W g + (U x_t + b) 2^-e and g <- f_e(z); when ||g|| leaves
 *    [2^-20, 2^20], g is multiplied by 2^-k (in steps of at most 2^100) and e += k, never below e_floor;
 *  - each entry of [W g | U x'] is ONE chain of fused multiply-adds over k = 0 .. n+du-1 in order,
 *    starting from 0 (the CPU micro-kernel's chain); the tangent's W v is the chain over k < n;
 *  - x' = T(x * T(input_scale 2^-e)) (one rounding), without U added after the chain: z = c + x';
 *    the bias: z = z + b * T(2^-e);
 *  - tanh and its derivative in float64 (Cephes rational form below 0.625, (1-q)/(1+q) above, q from a
 *    fixed exp polynomial; no library call), relu by a sign test, relu'(0) = 0;
 *  - the squared norm in float64 with 16 fixed lanes (lane l sums entries i = l mod 16 below
 *    n - n % 16 in order; then the lanes in order 0..15; then the tail in order);
 *  - Gaussian inputs: values (t-1) d .. t d - 1 of stream (c2 = start + m, c3 = c3_base + r), the
 *    header's Philox / Box-Muller (bit-identical to the CPU stream).
 * The one exception is the natural log of the recorded norm: CUDA's log() (<= 1 ulp) instead of the
 * host libm's, so log_norm may differ from the CPU's in the last bit or two (docs/cuda.md, "Unroll
 * kernel"); the states, the exponents and hence every later step are unaffected by it.
 *
 * float32 arithmetic is inline PTX with explicit .rn and no .ftz (CuPy compiles with -ftz=true, which
 * would flush subnormals; the CPU keeps them), including the float<->double conversions and the sign
 * test of relu; float64 goes through __dmul_rn / __dadd_rn / __fma_rn (never flushed, never fused by
 * accident).  The fused multiply-adds of the matrix product are deliberate: they ARE the CPU's
 * operations (llvm.fma), not a contraction.
 *
 * Work decomposition: one thread block per work item (matrix m, chunk of realisations r0 .. r1-1),
 * block-stride over items; the block runs the whole time loop (a persistent kernel: one launch for all
 * the steps).  The chunk's state lives in shared memory, transposed (row k holds the Rp realisations'
 * entry k), double-buffered: step t reads S[(t-1)&1] and writes S[t&1].  Rows n .. n+du-1 of the
 * current buffer hold the scaled inputs x' when U is given (they enter the chain).  The packed
 * operand B = [W^T; U^T] (K x n_pad, zero-padded columns, one per matrix, built by the wrapper) is read
 * from global memory (L2/L1), or copied once into shared memory when it fits (small n).
 * A step:
 *   A. inputs   x' into the current buffer's rows >= n (with U) or the next buffer's rows < n
 *               (without U: read back by the epilogue);                                 __syncthreads
 *   B. product  tiles of RT realisations x IT rows per thread, accumulators in registers, then the
 *               epilogue (inputs, bias, f, D_t) on the tile, written into the next buffer; __syncthreads
 *   C. norms    16 lanes per realisation (a half-warp; lanes combined by shuffles in the CPU's order),
 *               record log ||g|| + e log 2, decide the renormalisation;                  __syncthreads
 *   D. rescale  rows whose exponent changed (only when one did; no barrier needed after it: the next
 *               step's phase A writes rows that D does not touch).
 * Neither the block size, nor the grid, nor the chunking changes a bit: every entry of every
 * realisation is computed by the same operations whichever thread computes it.
 *
 * Parameters: integers in a small uint64 array `plan` (see RF_PLAN_* below, filled by
 * kernels/cuda/unroll_launch.py), exponents as uint64 bit patterns of int64 values.
 */
#include "philox.cuh"
#include "fp.cuh"   /* one IEEE operation each: rf_f2d, rf_d2f, rf_fgt0, RF_MEM (rf_ffma, rf_dfma: philox.cuh) */
#if !defined(__CUDACC__)
#include <cmath>   /* host builds (tests/cuda_host): floor, log, frexp */
#endif

#ifndef RF_CHECK_ALIGNED
#define RF_CHECK_ALIGNED(p) /* tests/cuda_host/cuda_shim.h checks every 16-byte access's alignment */
#endif

/* plan[] layout (kernels/cuda/unroll_launch.py: _plan) */
enum {
    RF_PLAN_NB, RF_PLAN_R, RF_PLAN_N, RF_PLAN_D, RF_PLAN_DU, RF_PLAN_NPAD, RF_PLAN_STEPS, RF_PLAN_RECORD,
    RF_PLAN_MODE, RF_PLAN_NONLIN, RF_PLAN_NBIAS, RF_PLAN_BX, RF_PLAN_RX, RF_PLAN_EFLOOR, RF_PLAN_K0,
    RF_PLAN_K1, RF_PLAN_C2START, RF_PLAN_C3BASE, RF_PLAN_NCHUNKS, RF_PLAN_RP, RF_PLAN_WSMEM,
    RF_PLAN_COUNT
};
#define RF_LINEAR 0      /* rinit_fast/spec/activations.py: one code table for every operation */
#define RF_TANH 1
#define RF_RELU 3
#define RF_NO_INPUT 0
#define RF_GAUSSIAN 1
#define RF_ARRAY 2
#define RF_NO_FLOOR (-(1ll << 62))
#define RF_LANES 16
#define RF_IT 4          /* rows of a thread's tile (one 16-byte load of B for float32) */

template <typename T> struct rf_ar;
template <> struct rf_ar<float> {
    static RF_MEM float mul(float a, float b) { return rf_fmul(a, b); }
    static RF_MEM float add(float a, float b) { return rf_fadd(a, b); }
    static RF_MEM float fma(float a, float b, float c) { return rf_ffma(a, b, c); }
    static RF_MEM double to_d(float x) { return rf_f2d(x); }
    static RF_MEM float from_d(double x) { return rf_d2f(x); }
    static RF_MEM bool gt0(float x) { return rf_fgt0(x); }   /* on the bits: a float compare is .ftz */
    static constexpr int RT = 8;   /* realisations of a thread's tile: two 16-byte shared loads */
};
template <> struct rf_ar<double> {
    static RF_MEM double mul(double a, double b) { return rf_dmul(a, b); }
    static RF_MEM double add(double a, double b) { return rf_dadd(a, b); }
    static RF_MEM double fma(double a, double b, double c) { return rf_dfma(a, b, c); }
    static RF_MEM double to_d(double x) { return x; }
    static RF_MEM double from_d(double x) { return x; }
    static RF_MEM bool gt0(double x) { return x > 0.0; }
    static constexpr int RT = 4;
};

/* 16-byte vector loads (the addresses are 16-byte aligned by construction) */
template <typename T, int N> struct rf_ld;
template <int N> struct rf_ld<float, N> {
    static RF_MEM void load(const float* p, float (&v)[N]) {
        static_assert(N % 4 == 0, "float loads come in fours");
#pragma unroll
        for (int q = 0; q < N / 4; ++q) {
            RF_CHECK_ALIGNED(p + 4 * q);
            const float4 x = *reinterpret_cast<const float4*>(p + 4 * q);
            v[4 * q] = x.x; v[4 * q + 1] = x.y; v[4 * q + 2] = x.z; v[4 * q + 3] = x.w;
        }
    }
};
template <int N> struct rf_ld<double, N> {
    static RF_MEM void load(const double* p, double (&v)[N]) {
        static_assert(N % 2 == 0, "double loads come in pairs");
#pragma unroll
        for (int q = 0; q < N / 2; ++q) {
            RF_CHECK_ALIGNED(p + 2 * q);
            const double2 x = *reinterpret_cast<const double2*>(p + 2 * q);
            v[2 * q] = x.x; v[2 * q + 1] = x.y;
        }
    }
};

/* acc[a][b] = fma(x[a], y[b], acc[a][b]) for every (a, b): one link of each entry's chain */
template <typename T, int M, int N>
RF_HD void rf_rank1(T (&acc)[M][N], const T (&x)[M], const T (&y)[N]) {
#pragma unroll
    for (int a = 0; a < M; ++a)
#pragma unroll
        for (int b = 0; b < N; ++b) acc[a][b] = rf_ar<T>::fma(x[a], y[b], acc[a][b]);
}

/* ---- scalar helpers (kernels/cpu/unroll.py of the same names) ------------------------------------- */
RF_HD double rf_inf() { return rf_u64_as_f64(0x7FF0000000000000ull); }

/* 2.0**k as float64, exactly math.ldexp(1.0, k) with pow2's clamps (0 or inf beyond +-1100) */
RF_HD double rf_pow2(rf_i64 k) {
    if (k > 1023) return rf_inf();
    if (k >= -1022) return rf_u64_as_f64((rf_u64)(k + 1023) << 52);
    if (k >= -1074) return rf_u64_as_f64(1ull << (k + 1074));           /* subnormal */
    return 0.0;                                                          /* 2^-1075 rounds to 0 (even) */
}

/* floor of an int64 division by 2 (Python's //) */
RF_HD rf_i64 rf_floor_half(rf_i64 x) { return x >= 0 ? x / 2 : -((-x + 1) / 2); }

/* exp(x) for x <= 0 (exp_nonpos): Cody-Waite by ln 2, degree-13 Taylor, 2^k from bits */
#define RF_EXP_LOG2E 0x1.71547652b82fep+0
#define RF_EXP_LN2_HI 0x1.62e42feep-1
#define RF_EXP_LN2_LO 0x1.a39ef35793c76p-33
RF_HD double rf_exp_nonpos(double x) {
    const double xc = (-708.0 > x) ? -708.0 : x;            /* Python's max(x, -708.0) */
    const double k = floor(rf_dadd(rf_dmul(xc, RF_EXP_LOG2E), 0.5));
    const double r = rf_dsub(rf_dsub(xc, rf_dmul(k, RF_EXP_LN2_HI)), rf_dmul(k, RF_EXP_LN2_LO));
    double p = 0x1.6124613a86d09p-33;                          /* 1/13! */
    p = rf_dadd(rf_dmul(p, r), 0x1.1eed8eff8d898p-29);
    p = rf_dadd(rf_dmul(p, r), 0x1.ae64567f544e4p-26);
    p = rf_dadd(rf_dmul(p, r), 0x1.27e4fb7789f5cp-22);
    p = rf_dadd(rf_dmul(p, r), 0x1.71de3a556c734p-19);
    p = rf_dadd(rf_dmul(p, r), 0x1.a01a01a01a01ap-16);
    p = rf_dadd(rf_dmul(p, r), 0x1.a01a01a01a01ap-13);
    p = rf_dadd(rf_dmul(p, r), 0x1.6c16c16c16c17p-10);
    p = rf_dadd(rf_dmul(p, r), 0x1.1111111111111p-7);
    p = rf_dadd(rf_dmul(p, r), 0x1.5555555555555p-5);
    p = rf_dadd(rf_dmul(p, r), 0x1.5555555555555p-3);
    p = rf_dadd(rf_dmul(p, r), 0x1p-1);
    p = rf_dadd(rf_dmul(p, r), 1.0);
    p = rf_dadd(rf_dmul(p, r), 1.0);
    const double scale = rf_u64_as_f64((rf_u64)((rf_i64)k + 1023) << 52);
    return x >= -708.0 ? rf_dmul(p, scale) : 0.0;
}

/* (tanh(z s)/s, tanh'(z s)) in float64 for s = 2^e, inv = 2^-e (tanh_scaled) */
RF_HD void rf_tanh_scaled(double z, double s, double inv, double* g, double* dd) {
    const double y = rf_dmul(z, s);
    const double ay = rf_u64_as_f64(rf_f64_as_u64(y) & 0x7FFFFFFFFFFFFFFFull);
    const double y2 = rf_dmul(y, y);
    const double num = rf_dmul(y2, rf_dadd(rf_dmul(rf_dadd(rf_dmul(-0x1.edc5baafd6f4bp-1, y2),
                                                          -0x1.8d26a0e26682dp+6), y2),
                                           -0x1.93ac030580563p+10));
    const double den = rf_dadd(rf_dmul(rf_dadd(rf_dmul(rf_dadd(y2, 0x1.c33f28a581b86p+6), y2),
                                               0x1.176fa0e5535fap+11), y2), 0x1.2ec102442040cp+12);
    const double rs = rf_ddiv(num, den);
    if (ay < 0.625) {
        const double ts = rf_dadd(y, rf_dmul(y, rs));
        *g = rf_dadd(z, rf_dmul(z, rs));
        *dd = rf_dsub(1.0, rf_dmul(ts, ts));
        return;
    }
    const double q = rf_exp_nonpos(rf_dmul(-2.0, ay));
    const double opq = rf_dadd(1.0, q);
    const double tl = rf_ddiv(rf_dsub(1.0, q), opq);
    *g = rf_dmul(y >= 0.0 ? tl : rf_dneg(tl), inv);
    *dd = rf_ddiv(rf_dmul(4.0, q), rf_dmul(opq, opq));
}

/* log of sqrt(s) 2^e (log_norm); the log is CUDA's (<= 1 ulp), the host's libm on the host build */
#define RF_LN2 0x1.62e42fefa39efp-1
RF_HD double rf_log_norm(double s, rf_i64 e) {
    if (s > 0.0) {
        const rf_i64 ex = (rf_i64)((rf_f64_as_u64(s) >> 52) & 0x7FFull);
        const rf_i64 x = ex - 1023 + 2 * e;
        if (ex > 0 && -1000 < x && x < 1000 && -1000 < 2 * e && 2 * e < 1000)
            return rf_dmul(0.5, log(rf_dmul(s, rf_u64_as_f64((rf_u64)(1023 + 2 * e) << 52))));
    }
    return rf_dadd(rf_dmul(0.5, log(s)), rf_dmul((double)e, RF_LN2));
}

/* renorm_exponent: ||g||^2 = s outside [2^-40, 2^40] (and not 0) -> ||g|| back in [1/2, 1) */
RF_HD rf_i64 rf_renorm_exponent(double s, rf_i64 e, rf_i64 floor_) {
    if (s > 0x1p40 || (s < 0x1p-40 && s > 0.0)) {
        int ex;
        (void)frexp(s, &ex);
        const rf_i64 ne = e + rf_floor_half((rf_i64)ex + 1);
        return ne > floor_ ? ne : floor_;
    }
    return e;
}

/* x * 2^-k exactly as scale_row: factors of at most 2^+-100, each a normal number of T */
template <typename T>
RF_HD T rf_scale(T x, rf_i64 k) {
    while (k != 0) {
        const rf_i64 step = k > 100 ? 100 : (k < -100 ? -100 : k);
        x = rf_ar<T>::mul(x, rf_ar<T>::from_d(rf_pow2(-step)));
        k -= step;
    }
    return x;
}

/* the normals of one Philox block: 4 float32 (two Box-Muller pairs) or 2 float64 (normals_into_f32/f64) */
RF_HD void rf_normals_of_block(uint4 w, float (&z)[4]) {
    const float2 a = rf_box_muller_f32(w.x, w.y);
    const float2 b = rf_box_muller_f32(w.z, w.w);
    z[0] = a.x; z[1] = a.y; z[2] = b.x; z[3] = b.y;
}
RF_HD void rf_normals_of_block(uint4 w, double (&z)[2]) {
    const double2 a = rf_box_muller_f64(w);
    z[0] = a.x; z[1] = a.y;
}

/* ---- shared memory layout (unroll_launch.py: _smem_bytes computes the same total) ---------------- */
RF_HD rf_u64 rf_align16(rf_u64 x) { return (x + 15ull) & ~15ull; }

template <typename T>
struct rf_smem_layout {
    rf_u64 s0, s1, v0, v1, w, e, ev, k, kv, cx, cb, ps, pi, flags, total;
    RF_MEM rf_smem_layout(rf_u64 K, rf_u64 n, rf_u64 Rp, rf_u64 npad, bool tangent, bool wsmem) {
        rf_u64 o = 0;
        s0 = o; o = rf_align16(o + K * Rp * sizeof(T));
        s1 = o; o = rf_align16(o + K * Rp * sizeof(T));
        v0 = o; if (tangent) o = rf_align16(o + n * Rp * sizeof(T));
        v1 = o; if (tangent) o = rf_align16(o + n * Rp * sizeof(T));
        w = o;  if (wsmem) o = rf_align16(o + K * npad * sizeof(T));
        e = o;  o += Rp * 8;
        ev = o; o += Rp * 8;
        k = o;  o += Rp * 8;
        kv = o; o += Rp * 8;
        cx = o; o += Rp * 8;      /* T(input_scale 2^-e), stored as T in an 8-byte slot */
        cb = o; o += Rp * 8;      /* T(2^-e) */
        ps = o; o += Rp * 8;      /* 2^e (float64) */
        pi = o; o += Rp * 8;      /* 2^-e */
        flags = o; o += 16;
        total = o;
    }
};

/* per-realisation factors of exponent e */
template <typename T>
__device__ __forceinline__ void rf_set_scale(unsigned char* sm, const rf_smem_layout<T>& L, rf_u64 rr,
                                             rf_i64 e, double sig64) {
    reinterpret_cast<rf_i64*>(sm + L.e)[rr] = e;
    const double inv = rf_pow2(-e);
    reinterpret_cast<T*>(sm + L.cx)[rr * (8 / sizeof(T))] = rf_ar<T>::from_d(rf_dmul(sig64, inv));
    reinterpret_cast<T*>(sm + L.cb)[rr * (8 / sizeof(T))] = rf_ar<T>::from_d(inv);
    reinterpret_cast<double*>(sm + L.ps)[rr] = rf_pow2(e);
    reinterpret_cast<double*>(sm + L.pi)[rr] = inv;
}

/* The epilogue of entry (i, r) at offset q of the transposed buffers: z (= [W g | U x'] (+ x')) is in
 * S[q], W v in SV[q]; adds the bias, applies f (and D_t to v), writes g and v back, returns g. */
template <typename T, bool TANGENT>
__device__ __forceinline__ T rf_epilogue(T* S, T* SV, rf_u64 q, const T* bias, rf_u64 i, bool has_bias,
                                         int nonlin, T cb, double ps, double pinv, T* v_out) {
    typedef rf_ar<T> A;
    T z = S[q];
    if (has_bias) z = A::add(z, A::mul(bias[i], cb));
    T g = z, v = T(0);
    if (TANGENT) v = SV[q];
    if (nonlin == RF_RELU) {
        if (!A::gt0(z)) { g = T(0); v = T(0); }
    } else if (nonlin == RF_TANH) {
        double gd, dd;
        rf_tanh_scaled(A::to_d(z), ps, pinv, &gd, &dd);
        g = A::from_d(gd);
        if (TANGENT) v = A::from_d(rf_dmul(A::to_d(v), dd));
    }
    S[q] = g;
    if (TANGENT) SV[q] = v;
    *v_out = v;
    return g;
}

/* The whole time loop of every work item assigned to this block. */
template <typename T, bool TANGENT>
__device__ __forceinline__ void rf_unroll_body(
    const T* __restrict__ Bp, const T* __restrict__ bias, const T* __restrict__ xarr,
    const T* __restrict__ G0, const rf_u64* __restrict__ E0, const T* __restrict__ V0,
    const rf_u64* __restrict__ EV0, double* __restrict__ out_log, double* __restrict__ out_tlog,
    T* __restrict__ out_g, rf_u64* __restrict__ out_e, T* __restrict__ out_v, rf_u64* __restrict__ out_ev,
    const rf_u64* __restrict__ plan, T input_scale) {
    typedef rf_ar<T> A;
    constexpr int RT = A::RT;
    constexpr int IT = RF_IT;
    constexpr int SLOT = 8 / sizeof(T);     /* T entries per 8-byte per-realisation slot */
    const rf_u64 nb = plan[RF_PLAN_NB], R = plan[RF_PLAN_R], n = plan[RF_PLAN_N], d = plan[RF_PLAN_D];
    const rf_u64 du = plan[RF_PLAN_DU], npad = plan[RF_PLAN_NPAD], steps = plan[RF_PLAN_STEPS];
    const rf_u64 record = plan[RF_PLAN_RECORD];
    const int mode = (int)plan[RF_PLAN_MODE], nonlin = (int)plan[RF_PLAN_NONLIN];
    const bool has_bias = plan[RF_PLAN_NBIAS] != 0;
    const rf_u64 Bx = plan[RF_PLAN_BX], Rx = plan[RF_PLAN_RX];
    const rf_i64 e_floor = (rf_i64)plan[RF_PLAN_EFLOOR];
    const uint2 key = make_uint2((rf_u32)plan[RF_PLAN_K0], (rf_u32)plan[RF_PLAN_K1]);
    const rf_u32 c2_start = (rf_u32)plan[RF_PLAN_C2START], c3_base = (rf_u32)plan[RF_PLAN_C3BASE];
    const rf_u64 nchunks = plan[RF_PLAN_NCHUNKS], Rp = plan[RF_PLAN_RP];
    const bool wsmem = plan[RF_PLAN_WSMEM] != 0;
    const rf_u64 K = n + du;
    const rf_u64 Kout = steps / record;
    const double sig64 = A::to_d(input_scale);
    const rf_u64 nfull = n - n % RF_LANES;
    const rf_u64 tid = threadIdx.x, NT = blockDim.x;
    const rf_u64 ntr = Rp / RT, nti = npad / IT, ntiles = ntr * nti;

    extern __shared__ __align__(16) unsigned char rf_smem[];
    unsigned char* sm = rf_smem;
    const rf_smem_layout<T> L(K, n, Rp, npad, TANGENT, wsmem);
    T* const S[2] = {reinterpret_cast<T*>(sm + L.s0), reinterpret_cast<T*>(sm + L.s1)};
    T* const SV[2] = {reinterpret_cast<T*>(sm + L.v0), reinterpret_cast<T*>(sm + L.v1)};
    rf_i64* const sE = reinterpret_cast<rf_i64*>(sm + L.e);
    rf_i64* const sEV = reinterpret_cast<rf_i64*>(sm + L.ev);
    rf_i64* const sK = reinterpret_cast<rf_i64*>(sm + L.k);
    rf_i64* const sKV = reinterpret_cast<rf_i64*>(sm + L.kv);
    const T* const sCX = reinterpret_cast<const T*>(sm + L.cx);
    const T* const sCB = reinterpret_cast<const T*>(sm + L.cb);
    const double* const sPS = reinterpret_cast<const double*>(sm + L.ps);
    const double* const sPI = reinterpret_cast<const double*>(sm + L.pi);
    int* const flags = reinterpret_cast<int*>(sm + L.flags);

    for (rf_u64 item = blockIdx.x; item < nb * nchunks; item += gridDim.x) {
        const rf_u64 m = item / nchunks, c = item - m * nchunks;
        const rf_u64 r0 = c * R / nchunks, Rc = (c + 1) * R / nchunks - r0;
        const T* const Bg = Bp + m * K * npad;
        T* const Wsm = reinterpret_cast<T*>(sm + L.w);
        const T* const B = wsmem ? (const T*)Wsm : Bg;
        const rf_u64 mx = Bx > 1 ? m : 0;
        const rf_u32 c2 = c2_start + (rf_u32)m;

        /* ---- init: zero both buffers (padding rows and realisations stay 0), load g0, v0 ---- */
        for (rf_u64 q = tid; q < K * Rp; q += NT) { S[0][q] = T(0); S[1][q] = T(0); }
        if (TANGENT)
            for (rf_u64 q = tid; q < n * Rp; q += NT) { SV[0][q] = T(0); SV[1][q] = T(0); }
        if (wsmem)
            for (rf_u64 q = tid; q < K * npad; q += NT) Wsm[q] = Bg[q];
        if (tid < 2) flags[tid] = 0;
        __syncthreads();
        for (rf_u64 q = tid; q < Rc * n; q += NT) {
            const rf_u64 rr = q / n, i = q - rr * n;
            S[0][i * Rp + rr] = G0[((m * R) + r0 + rr) * n + i];
            if (TANGENT) SV[0][i * Rp + rr] = V0[((m * R) + r0 + rr) * n + i];
        }
        for (rf_u64 rr = tid; rr < Rc; rr += NT) {
            rf_set_scale<T>(sm, L, rr, (rf_i64)E0[m * R + r0 + rr], sig64);
            if (TANGENT) sEV[rr] = (rf_i64)EV0[m * R + r0 + rr];
        }
        __syncthreads();

        for (rf_u64 t = 1; t <= steps; ++t) {
            T* const cur = S[(t - 1) & 1];
            T* const nxt = S[t & 1];
            T* const vcur = SV[(t - 1) & 1];
            T* const vnxt = SV[t & 1];
            const bool rec = t % record == 0;
            const rf_u64 kk = t / record - 1;

            /* ---- A. inputs x' = T(x * T(input_scale 2^-e)) ---- */
            if (mode != RF_NO_INPUT) {
                T* const xdst = du > 0 ? cur + n * Rp : nxt;
                if (mode == RF_ARRAY) {
                    for (rf_u64 q = tid; q < Rc * d; q += NT) {
                        const rf_u64 rr = q / d, j = q - rr * d;
                        const rf_u64 rx = Rx > 1 ? r0 + rr : 0;
                        const T x = xarr[((mx * Rx + rx) * steps + (t - 1)) * d + j];
                        xdst[j * Rp + rr] = A::mul(x, sCX[rr * SLOT]);
                    }
                } else {
                    constexpr int V = sizeof(T) == 4 ? 4 : 2;       /* values per Philox block */
                    const rf_u64 v_lo = (t - 1) * d, v_hi = t * d;  /* values [v_lo, v_hi) */
                    const rf_u64 b_lo = v_lo / V, nblk = (v_hi - 1) / V - b_lo + 1;
                    for (rf_u64 q = tid; q < Rc * nblk; q += NT) {
                        const rf_u64 rr = q / nblk, bq = b_lo + (q - rr * nblk);
                        const uint4 w = rf_block(bq, c2, c3_base + (rf_u32)(r0 + rr), key);
                        T z[V];
                        rf_normals_of_block(w, z);
                        const T cx = sCX[rr * SLOT];
#pragma unroll
                        for (int l = 0; l < V; ++l) {
                            const rf_u64 v = bq * V + l;
                            if (v >= v_lo && v < v_hi) xdst[(v - v_lo) * Rp + rr] = A::mul(z[l], cx);
                        }
                    }
                }
            }
            __syncthreads();

            /* ---- B. the product, tile by tile, and the epilogue on the tile ---- */
            if (tid == 0) flags[(t + 1) & 1] = 0;      /* read last in phase D of step t-1 */
            for (rf_u64 tile = tid; tile < ntiles; tile += NT) {
                const rf_u64 tr = tile / nti, ti = tile - tr * nti;
                const rf_u64 ra = tr * RT, ia = ti * IT;
                T acc[RT][IT], vacc[TANGENT ? RT : 1][IT];
#pragma unroll
                for (int a = 0; a < RT; ++a)
#pragma unroll
                    for (int b = 0; b < IT; ++b) {
                        acc[a][b] = T(0);
                        if (TANGENT) vacc[a][b] = T(0);
                    }
                const T* ap = cur + ra;
                const T* vp = vcur + ra;
                const T* bp = B + ia;
#pragma unroll (TANGENT ? 2 : 4)   /* 4 spills registers with the tangent's 2nd accumulator tile */
                for (rf_u64 k = 0; k < n; ++k) {
                    T av[RT], bv[IT];
                    rf_ld<T, RT>::load(ap, av);
                    rf_ld<T, IT>::load(bp, bv);
                    rf_rank1<T>(acc, av, bv);
                    if constexpr (TANGENT) {
                        T vv[RT];
                        rf_ld<T, RT>::load(vp, vv);
                        rf_rank1<T>(vacc, vv, bv);
                        vp += Rp;
                    }
                    ap += Rp;
                    bp += npad;
                }
                for (rf_u64 k = n; k < K; ++k) {          /* the U columns continue the same chain */
                    T av[RT], bv[IT];
                    rf_ld<T, RT>::load(ap, av);
                    rf_ld<T, IT>::load(bp, bv);
                    rf_rank1<T>(acc, av, bv);
                    ap += Rp;
                    bp += npad;
                }
                /* z = [W g | U x'] (+ x' without U), one rounding per add, as the CPU; bias and f in C */
#pragma unroll
                for (int a = 0; a < RT; ++a) {
                    const rf_u64 rr = ra + a;
#pragma unroll
                    for (int b = 0; b < IT; ++b) {
                        const rf_u64 i = ia + b;
                        if (rr < Rc && i < n) {
                            T z = acc[a][b];
                            if (du == 0 && mode != RF_NO_INPUT) z = A::add(z, nxt[i * Rp + rr]);
                            nxt[i * Rp + rr] = z;
                            if (TANGENT) vnxt[i * Rp + rr] = vacc[a][b];
                        }
                    }
                }
            }
            __syncthreads();

            /* ---- C. per realisation, 16 lanes (a half-warp): bias, f and D_t on the lane's entries
             *      (i = lane mod 16 below nfull, then the tail on lane 0), the squared norms in the
             *      CPU's lane order (lanes combined by shuffles, 0..15), the records, and the
             *      renormalisation decisions ---- */
            {
                const rf_u64 lane = tid & 15u, grp = tid >> 4, ngroups = NT >> 4;
                const int src = (int)(tid & 16u);
                for (rf_u64 base = 0; base < Rc; base += ngroups) {   /* uniform trip count */
                    const rf_u64 rr = base + grp;
                    const bool valid = rr < Rc;
                    double acc = 0.0, vacc = 0.0;
                    T cb = T(0);
                    double ps = 0.0, pinv = 0.0;
                    if (valid) {
                        cb = sCB[rr * SLOT];
                        ps = sPS[rr];
                        pinv = sPI[rr];
                        for (rf_u64 i = lane; i < nfull; i += RF_LANES) {
                            T v;
                            const T g = rf_epilogue<T, TANGENT>(nxt, vnxt, i * Rp + rr, bias, i, has_bias,
                                                                nonlin, cb, ps, pinv, &v);
                            const double gd = A::to_d(g);
                            acc = rf_dadd(acc, rf_dmul(gd, gd));
                            if (TANGENT) {
                                const double vd = A::to_d(v);
                                vacc = rf_dadd(vacc, rf_dmul(vd, vd));
                            }
                        }
                    }
                    double s = 0.0, sv = 0.0;
                    for (int l = 0; l < RF_LANES; ++l) {
                        s = rf_dadd(s, __shfl_sync(0xFFFFFFFFu, acc, src + l));
                        if (TANGENT) sv = rf_dadd(sv, __shfl_sync(0xFFFFFFFFu, vacc, src + l));
                    }
                    if (valid && lane == 0) {
                        for (rf_u64 i = nfull; i < n; ++i) {
                            T v;
                            const T g = rf_epilogue<T, TANGENT>(nxt, vnxt, i * Rp + rr, bias, i, has_bias,
                                                                nonlin, cb, ps, pinv, &v);
                            const double gd = A::to_d(g);
                            s = rf_dadd(s, rf_dmul(gd, gd));
                            if (TANGENT) {
                                const double vd = A::to_d(v);
                                sv = rf_dadd(sv, rf_dmul(vd, vd));
                            }
                        }
                        const rf_u64 r = r0 + rr;
                        const rf_i64 e = sE[rr];
                        if (rec) out_log[(m * R + r) * Kout + kk] = rf_log_norm(s, e);
                        const rf_i64 ne = rf_renorm_exponent(s, e, e_floor);
                        sK[rr] = ne - e;
                        if (ne != e) {
                            rf_set_scale<T>(sm, L, rr, ne, sig64);
                            flags[t & 1] = 1;
                        }
                        if (TANGENT) {
                            const rf_i64 ev = sEV[rr];
                            if (rec) out_tlog[(m * R + r) * Kout + kk] = rf_log_norm(sv, ev);
                            const rf_i64 nev = rf_renorm_exponent(sv, ev, RF_NO_FLOOR);
                            sKV[rr] = nev - ev;
                            if (nev != ev) {
                                sEV[rr] = nev;
                                flags[t & 1] = 1;
                            }
                        }
                    }
                }
            }
            __syncthreads();

            /* ---- D. rescale the rows whose exponent changed (no barrier needed after) ---- */
            if (flags[t & 1]) {
                for (rf_u64 q = tid; q < Rc * n; q += NT) {
                    const rf_u64 i = q / Rc, rr = q - i * Rc;
                    const rf_i64 k = sK[rr];
                    if (k != 0) nxt[i * Rp + rr] = rf_scale<T>(nxt[i * Rp + rr], k);
                    if (TANGENT) {
                        const rf_i64 kv = sKV[rr];
                        if (kv != 0) vnxt[i * Rp + rr] = rf_scale<T>(vnxt[i * Rp + rr], kv);
                    }
                }
            }
        }
        __syncthreads();

        /* ---- final states ---- */
        const T* const fin = S[steps & 1];
        const T* const vfin = SV[steps & 1];
        for (rf_u64 q = tid; q < Rc * n; q += NT) {
            const rf_u64 rr = q / n, i = q - rr * n;
            out_g[(m * R + r0 + rr) * n + i] = fin[i * Rp + rr];
            if (TANGENT) out_v[(m * R + r0 + rr) * n + i] = vfin[i * Rp + rr];
        }
        for (rf_u64 rr = tid; rr < Rc; rr += NT) {
            out_e[m * R + r0 + rr] = (rf_u64)sE[rr];
            if (TANGENT) out_ev[m * R + r0 + rr] = (rf_u64)sEV[rr];
        }
        __syncthreads();     /* shared memory is reused by the block's next item */
    }
}

#define RF_UNROLL_KERNEL(NAME, T, TANGENT)                                                              \
    extern "C" __global__ void __launch_bounds__(512) NAME(                                            \
        const T* Bp, const T* bias, const T* xarr, const T* G0, const rf_u64* E0, const T* V0,         \
        const rf_u64* EV0, double* out_log, double* out_tlog, T* out_g, rf_u64* out_e, T* out_v,      \
        rf_u64* out_ev, const rf_u64* plan, T input_scale) {                                            \
        rf_unroll_body<T, TANGENT>(Bp, bias, xarr, G0, E0, V0, EV0, out_log, out_tlog, out_g, out_e,   \
                                   out_v, out_ev, plan, input_scale);                                  \
    }

RF_UNROLL_KERNEL(rf_unroll_f32, float, false)
RF_UNROLL_KERNEL(rf_unroll_f32_tangent, float, true)
RF_UNROLL_KERNEL(rf_unroll_f64, double, false)
RF_UNROLL_KERNEL(rf_unroll_f64_tangent, double, true)
