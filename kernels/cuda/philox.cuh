/* philox.cuh: the random stream of rinit_fast on the GPU (the one Philox header of every CUDA kernel).
 *
 * This is the CUDA half of the stream contract written down in docs/rng.md; the CPU half is
 * kernels/cpu/philox.py.  Every function below mirrors the Python function of the same name there
 * (rf_<name> <-> <name>), with the same constants (written here as exact hexadecimal floats) and the
 * same IEEE operations in the same order, so every uniform and every normal is bit-identical on
 * both.  The rules that make this true (docs/cuda.md):
 *
 *  - Each floating-point operation is one correctly rounded IEEE operation with an explicit
 *    round-to-nearest mode, which ptxas never contracts into a fused multiply-add: float32 through
 *    inline PTX (mul.rn.f32, add.rn.f32, sub.rn.f32, sqrt.rn.f32), which also ignores -ftz=true (CuPy
 *    appends -ftz=true to every NVRTC compilation, after our options, so plain float operators would
 *    flush subnormal results to zero; the CPU keeps them); float64 through the __dmul_rn, __dadd_rn,
 *    __dsub_rn, __ddiv_rn, __dsqrt_rn intrinsics (-ftz never touches float64).  Kernels are compiled
 *    with --fmad=false as well (belt and braces: a plain `a * b + c` left in a kernel by mistake still
 *    is not fused).
 *  - Where this file departs from the letter of philox.py it is by a rewrite that gives the same bits
 *    for every input, to save GPU instructions (each is marked where it is made): one fma where the
 *    CPU's product is exact (rf_fma_exact / rf_dfma_exact, so one rounding equals the CPU's two);
 *    (frac 2^-21) pi/4 computed as frac (pi/4 2^-21) (both products exact); the Box-Muller log reading
 *    float(k)'s bits instead of those of u = k 2^-24 (an exact power-of-two scaling); the octant
 *    negations as sign-bit XORs.  tests/test_cuda_header_host.py checks all of them exhaustively for
 *    float32.
 *  - No library log/sin/cos/exp: log, sin and cos are fixed polynomials (Cephes logf/sinf/cosf for
 *    float32, fdlibm __ieee754_log/__kernel_sin/__kernel_cos for float64) and the angle is reduced to
 *    an octant exactly, in integers.
 *  - Integer -> float conversions are of integers that the float represents exactly; negation
 *    flips the sign bit.
 *
 * The functions are __host__ __device__: on the host (nvcc's host pass, or a plain C++ compiler,
 * which sees the small vector types defined below) the same expressions run with ordinary C++
 * operators, and tests/test_cuda_header_host.py compares that build with kernels/cpu/philox.py bit
 * for bit (exhaustively for the float32 log and sin/cos).  Only the rf_f.. and rf_d.. arithmetic helpers
 * differ between the host and the device branches, and each is a single IEEE operation either way.
 *
 * Counter layout (rinit_fast/rng.py): c0, c1 = block position (low, high), c2 = index (matrix),
 * c3 = purpose << 24 | sub; key = the 64-bit seed (k0 low word, k1 high word).
 *
 * Public functions (all RF_HD = __host__ __device__ __forceinline__):
 *   uint4   rf_philox4x32_10(uint4 ctr, uint2 key)          Random123 Philox4x32-10
 *   float   rf_uniform_f32(rf_u32 w)                        [0, 1), (w >> 8) * 2^-24
 *   rf_u64  rf_bits53(rf_u32 wa, rf_u32 wb)                 53-bit integer from two words
 *   double  rf_uniform_f64(rf_u32 wa, rf_u32 wb)            [0, 1), bits53 * 2^-53
 *   float   rf_log_f32(float u), double rf_log_f64(double u)
 *   float   rf_bm_radius_f32(rf_u32 wa)                     sqrt(-2 log u), u = ((wa >> 8) + 1) 2^-24
 *   void    rf_sincos_2pi_f32(rf_u32 k24, float* s, float* c)   sin, cos of 2 pi k24 / 2^24
 *   void    rf_sincos_2pi_f64(rf_u64 k53, double* s, double* c) sin, cos of 2 pi k53 / 2^53
 *   float2  rf_box_muller_f32(rf_u32 wa, rf_u32 wb)         (r cos, r sin)
 *   double2 rf_box_muller_f64(uint4 w)                      (r cos, r sin) from the four words
 *   float   rf_normal_at_f32(rf_u64 i, rf_u32 c2, rf_u32 c3, uint2 key)   value i of a stream
 *   double  rf_normal_at_f64(rf_u64 i, rf_u32 c2, rf_u32 c3, uint2 key)
 *   rf_fmul/rf_fadd/rf_fsub/rf_fsqrt, rf_dmul/rf_dadd/rf_dsub/rf_ddiv/rf_dsqrt, rf_ffma/rf_dfma: the
 *   IEEE helpers, for kernels that combine stream values with other arithmetic and must stay
 *   bit-identical too (more of them, for the other kernels, in fp.cuh).
 *
 * Include it from any .cu under kernels/ with `#include "philox.cuh"` (the loader puts this folder
 * on the include path); it needs no other header, so it also compiles under NVRTC.
 */
#ifndef RINIT_FAST_PHILOX_CUH
#define RINIT_FAST_PHILOX_CUH

#define RF_STREAM_VERSION 1 /* rinit_fast.rng.STREAM_VERSION: change both together */

#if defined(__CUDACC__)
#define RF_HD __host__ __device__ __forceinline__
#else
#define RF_HD static inline
#endif

typedef unsigned int rf_u32;
typedef unsigned long long rf_u64;
typedef int rf_i32;
typedef long long rf_i64;

#if !defined(__CUDACC__)
/* A plain C++ compiler (host tests): the CUDA vector types the API uses. */
struct uint2 { rf_u32 x, y; };
struct uint4 { rf_u32 x, y, z, w; };
struct float2 { float x, y; };
struct double2 { double x, y; };
static inline uint2 make_uint2(rf_u32 x, rf_u32 y) { uint2 r = {x, y}; return r; }
static inline uint4 make_uint4(rf_u32 x, rf_u32 y, rf_u32 z, rf_u32 w) { uint4 r = {x, y, z, w}; return r; }
static inline float2 make_float2(float x, float y) { float2 r = {x, y}; return r; }
static inline double2 make_double2(double x, double y) { double2 r = {x, y}; return r; }
#endif

/* ---- one correctly rounded IEEE operation each ------------------------------------------------ */
#if defined(__CUDA_ARCH__)
#define RF_PTX_F32_2(op, a, b) \
    float r; asm(op " %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r
#endif

RF_HD float rf_fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
    RF_PTX_F32_2("mul.rn.f32", a, b);
#else
    return a * b;
#endif
}
RF_HD float rf_fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
    RF_PTX_F32_2("add.rn.f32", a, b);
#else
    return a + b;
#endif
}
RF_HD float rf_fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
    RF_PTX_F32_2("sub.rn.f32", a, b);
#else
    return a - b;
#endif
}
RF_HD float rf_fsqrt(float a) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("sqrt.rn.f32 %0, %1;" : "=f"(r) : "f"(a));
    return r;
#else
    return __builtin_sqrtf(a);
#endif
}
RF_HD double rf_dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
RF_HD double rf_dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}
RF_HD double rf_dsub(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}
RF_HD double rf_ddiv(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __ddiv_rn(a, b);
#else
    return a / b;
#endif
}
RF_HD double rf_dsqrt(double a) {
#if defined(__CUDA_ARCH__)
    return __dsqrt_rn(a);
#else
    return __builtin_sqrt(a);
#endif
}

/* a * b + c with one rounding, always (rf_ffma / rf_dfma: also under RF_CHECK_NO_FMA): the fused
 * operations that a CPU kernel performs itself (llvm.fma), e.g. the GEMM chains of unroll.cu and
 * propagate.cu.  Host: the C library's correctly rounded fma. */
RF_HD float rf_ffma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
    return r;
#else
    return __builtin_fmaf(a, b, c);
#endif
}
RF_HD double rf_dfma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
    return __fma_rn(a, b, c);
#else
    return __builtin_fma(a, b, c);
#endif
}

/* a * b + c with one rounding.  Used ONLY where the product a * b is exact (one factor a power of two,
 * or both factors short enough), so that it equals the CPU's two operations round(round(a * b) + c)
 * bit for bit; each use says why the product is exact.  Host: the C library's correctly rounded fma. */
RF_HD float rf_fma_exact(float a, float b, float c) {
#if defined(RF_CHECK_NO_FMA)   /* tests: no fused operation at all (tests/test_cuda_compile.py) */
    return rf_fadd(rf_fmul(a, b), c);
#else
    return rf_ffma(a, b, c);
#endif
}
RF_HD double rf_dfma_exact(double a, double b, double c) {
#if defined(RF_CHECK_NO_FMA)
    return rf_dadd(rf_dmul(a, b), c);
#else
    return rf_dfma(a, b, c);
#endif
}

/* ---- bit casts and exact sign flips ------------------------------------------------------------ */
RF_HD rf_u32 rf_f32_as_u32(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    rf_u32 r; __builtin_memcpy(&r, &x, 4); return r;
#endif
}
RF_HD float rf_u32_as_f32(rf_u32 x) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(x);
#else
    float r; __builtin_memcpy(&r, &x, 4); return r;
#endif
}
RF_HD rf_u64 rf_f64_as_u64(double x) {
#if defined(__CUDA_ARCH__)
    return (rf_u64)__double_as_longlong(x);
#else
    rf_u64 r; __builtin_memcpy(&r, &x, 8); return r;
#endif
}
RF_HD double rf_u64_as_f64(rf_u64 x) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double((long long)x);
#else
    double r; __builtin_memcpy(&r, &x, 8); return r;
#endif
}
RF_HD float rf_fneg(float x) { return rf_u32_as_f32(rf_f32_as_u32(x) ^ 0x80000000u); }
RF_HD double rf_dneg(double x) { return rf_u64_as_f64(rf_f64_as_u64(x) ^ 0x8000000000000000ull); }

/* ---- Philox4x32-10 (Random123) ----------------------------------------------------------------- */
#define RF_PHILOX_M0 0xD2511F53u
#define RF_PHILOX_M1 0xCD9E8D57u
#define RF_PHILOX_W0 0x9E3779B9u
#define RF_PHILOX_W1 0xBB67AE85u

RF_HD uint4 rf_philox_round(uint4 c, rf_u32 k0, rf_u32 k1) {
    const rf_u64 p0 = (rf_u64)RF_PHILOX_M0 * c.x;   /* one 32x32 -> 64-bit multiply (IMAD.WIDE) */
    const rf_u64 p1 = (rf_u64)RF_PHILOX_M1 * c.z;
    return make_uint4((rf_u32)(p1 >> 32) ^ c.y ^ k0, (rf_u32)p1,
                      (rf_u32)(p0 >> 32) ^ c.w ^ k1, (rf_u32)p0);
}

/* One Philox4x32-10 block: ten rounds, the key bumped by the Weyl constants between rounds. */
RF_HD uint4 rf_philox4x32_10(uint4 ctr, uint2 key) {
    rf_u32 k0 = key.x, k1 = key.y;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int r = 0; r < 10; ++r) {
        if (r) { k0 += RF_PHILOX_W0; k1 += RF_PHILOX_W1; }
        ctr = rf_philox_round(ctr, k0, k1);
    }
    return ctr;
}

/* ---- uniforms ---------------------------------------------------------------------------------- */
#define RF_F32_2M24 0x1p-24f
#define RF_F32_2M21 0x1p-21f
#define RF_F64_2M53 0x1p-53
#define RF_F64_2M50 0x1p-50

/* Word -> float32 in [0, 1): the top 24 bits, times 2^-24 (exact). */
RF_HD float rf_uniform_f32(rf_u32 w) { return rf_fmul((float)(rf_i32)(w >> 8), RF_F32_2M24); }

/* Two words -> a 53-bit integer: top 27 bits of wa, then top 26 bits of wb. */
RF_HD rf_u64 rf_bits53(rf_u32 wa, rf_u32 wb) { return ((rf_u64)(wa >> 5) << 26) | (rf_u64)(wb >> 6); }

/* Two words -> float64 in [0, 1): 53 bits times 2^-53 (exact). */
RF_HD double rf_uniform_f64(rf_u32 wa, rf_u32 wb) {
    return rf_dmul((double)(rf_i64)rf_bits53(wa, wb), RF_F64_2M53);
}

/* ---- float32 log, sin, cos --------------------------------------------------------------------- */
/* Cephes logf polynomial (LOGF_P of philox.py), coefficients as the float32 values Python uses. */
#define RF_LOGF_P0 0x1.204376p-4f   /*  7.0376836292e-2 */
#define RF_LOGF_P1 -0x1.d7a370p-4f  /* -1.1514610310e-1 */
#define RF_LOGF_P2 0x1.de4a34p-4f   /*  1.1676998740e-1 */
#define RF_LOGF_P3 -0x1.fcba9ep-4f  /* -1.2420140846e-1 */
#define RF_LOGF_P4 0x1.23d37ep-3f   /*  1.4249322787e-1 */
#define RF_LOGF_P5 -0x1.555ca0p-3f  /* -1.6668057665e-1 */
#define RF_LOGF_P6 0x1.999d58p-3f   /*  2.0000714765e-1 */
#define RF_LOGF_P7 -0x1.fffff8p-3f  /* -2.4999993993e-1 */
#define RF_LOGF_P8 0x1.555554p-2f   /*  3.3333331174e-1 */
#define RF_F32_SQRT2 0x1.6a09e6p+0f
#define RF_F32_LN2_HI 0x1.63p-1f      /* 0.693359375 */
#define RF_F32_LN2_LO -0x1.bd0106p-13f /* -2.12194440e-4 */
#define RF_F32_PI_4 0x1.921fb6p-1f
#define RF_F32_PI_4_2M21 0x1.921fb6p-22f /* RF_F32_PI_4 * 2^-21, exact */
#define RF_SINF_P0 -0x1.9943f2p-13f  /* -1.9515295891e-4 */
#define RF_SINF_P1 0x1.11073cp-7f    /*  8.3321608736e-3 */
#define RF_SINF_P2 -0x1.555546p-3f   /* -1.6666654611e-1 */
#define RF_COSF_P0 0x1.99eb9cp-16f   /*  2.443315711809948e-5 */
#define RF_COSF_P1 -0x1.6c0c34p-10f  /* -1.388731625493765e-3 */
#define RF_COSF_P2 0x1.55554ap-5f    /*  4.166664568298827e-2 */

/* log_f32 of the float32 whose bits are `bits`, scaled by 2^-scale (scale >= 0, result normal):
 * the polynomial reads only the mantissa, and the exponent drops by `scale`. */
RF_HD float rf_log_f32_scaled(rf_u32 bits, rf_i32 scale) {
    rf_i32 e = (rf_i32)(bits >> 23) - 127 - scale;
    float m = rf_u32_as_f32((bits & 0x007FFFFFu) | 0x3F800000u);      /* m in [1, 2) */
    if (m >= RF_F32_SQRT2) {
        m = rf_fmul(m, 0.5f);
        e = e + 1;
    }
    const float x = rf_fsub(m, 1.0f);                                   /* exact (Sterbenz) */
    const float fe = (float)e;                                          /* exact, |e| <= 126 */
    const float z = rf_fmul(x, x);
    float y = rf_fadd(rf_fmul(RF_LOGF_P0, x), RF_LOGF_P1);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P2);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P3);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P4);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P5);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P6);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P7);
    y = rf_fadd(rf_fmul(y, x), RF_LOGF_P8);
    y = rf_fmul(rf_fmul(y, x), z);
    y = rf_fadd(y, rf_fmul(RF_F32_LN2_LO, fe));
    y = rf_fma_exact(-0.5f, z, y);              /* y + (-0.5 z): -0.5 z is exact (z >= 2^-46 or 0) */
    const float r = rf_fadd(x, y);
    return rf_fma_exact(RF_F32_LN2_HI, fe, r);  /* r + LN2_HI e: 9-bit LN2_HI times |e| <= 128: exact */
}

/* Natural log of a positive normal float32 (philox.py: log_f32). */
RF_HD float rf_log_f32(float u) { return rf_log_f32_scaled(rf_f32_as_u32(u), 0); }

/* sin(x), cos(x) for x in [0, pi/4] (philox.py: sincos_f32_reduced). */
RF_HD void rf_sincos_f32_reduced(float x, float* s_out, float* c_out) {
    const float z = rf_fmul(x, x);
    float s = rf_fadd(rf_fmul(RF_SINF_P0, z), RF_SINF_P1);
    s = rf_fadd(rf_fmul(s, z), RF_SINF_P2);
    s = rf_fadd(rf_fmul(rf_fmul(s, z), x), x);
    float c = rf_fadd(rf_fmul(RF_COSF_P0, z), RF_COSF_P1);
    c = rf_fadd(rf_fmul(c, z), RF_COSF_P2);
    /* ((c z) z - 0.5 z) + 1; 0.5 z is exact (z = 0 or z >= (2^-21 pi/4)^2, a normal number) */
    c = rf_fadd(rf_fma_exact(-0.5f, z, rf_fmul(rf_fmul(c, z), z)), 1.0f);
    *s_out = s;
    *c_out = c;
}

/* sin and cos of 2 pi k24 / 2^24 for an integer k24 < 2^24, octant reduced exactly
 * (philox.py: sincos_2pi_f32). */
RF_HD void rf_sincos_2pi_f32(rf_u32 k24, float* s_out, float* c_out) {
    const rf_u32 octant = k24 >> 21;
    rf_u32 frac = k24 & 0x1FFFFFu;
    if (octant & 1u) frac = 0x200000u - frac;
    /* (frac 2^-21) pi/4 == frac (pi/4 2^-21): both inner products are exact, so one rounding either way */
    const float x = rf_fmul((float)(rf_i32)frac, RF_F32_PI_4_2M21);
    float s, c;
    rf_sincos_f32_reduced(x, &s, &c);
    if (((octant + 1u) >> 1) & 1u) { const float t = s; s = c; c = t; }
    /* negate s when (octant >> 2) & 1, c when ((octant + 2) >> 2) & 1: those bits, moved to the sign
     * bit (octant is k24's top 3 bits; the + 2 wraps out of 32 bits harmlessly for octants 6, 7) */
    const rf_u32 top = k24 << 8;
    *s_out = rf_u32_as_f32(rf_f32_as_u32(s) ^ (top & 0x80000000u));
    *c_out = rf_u32_as_f32(rf_f32_as_u32(c) ^ ((top + 0x40000000u) & 0x80000000u));
}

/* The Box-Muller radius r = sqrt(-2 log_f32(u)), u = ((wa >> 8) + 1) 2^-24 in (0, 1] (philox.py:
 * box_muller_f32).  u = k 2^-24 is exact, so its bits are those of float(k) with the exponent 24
 * lower: the log reads float(k)'s bits with scale 24, which saves the multiply. */
RF_HD float rf_bm_radius_f32(rf_u32 wa) {
    const float fk = (float)(rf_i32)((wa >> 8) + 1u);                       /* k in [1, 2^24], exact */
    return rf_fsqrt(rf_fmul(-2.0f, rf_log_f32_scaled(rf_f32_as_u32(fk), 24)));
}

/* Two words -> two independent float32 N(0, 1) values (r cos, r sin) (philox.py: box_muller_f32). */
RF_HD float2 rf_box_muller_f32(rf_u32 wa, rf_u32 wb) {
    const float r = rf_bm_radius_f32(wa);
    float s, c;
    rf_sincos_2pi_f32(wb >> 8, &s, &c);
    return make_float2(rf_fmul(r, c), rf_fmul(r, s));
}

/* ---- float64 log, sin, cos (fdlibm kernels) ---------------------------------------------------- */
/* The float64 coefficients.  On the device they live in constant memory: a multiply then reads its
 * coefficient as a constant-bank operand, whereas a 64-bit immediate is rebuilt in registers on every
 * loop iteration (two moves per constant, 47 extra instructions per Philox block in the SASS). */
#define RF_F64_CONSTANTS(X) \
    X(LG0, 0x1.5555555555593p-1) /* 6.666666666666735130e-01 */ \
    X(LG1, 0x1.999999997fa04p-2) /* 3.999999999940941908e-01 */ \
    X(LG2, 0x1.2492494229359p-2) /* 2.857142874366239149e-01 */ \
    X(LG3, 0x1.c71c51d8e78afp-3) /* 2.222219843214978396e-01 */ \
    X(LG4, 0x1.7466496cb03dep-3) /* 1.818357216161805012e-01 */ \
    X(LG5, 0x1.39a09d078c69fp-3) /* 1.531383769920937332e-01 */ \
    X(LG6, 0x1.2f112df3e5244p-3) /* 1.479819860511658591e-01 */ \
    X(F64_LN2_HI, 0x1.62e42feep-1) /* 6.93147180369123816490e-01 */ \
    X(F64_LN2_LO, 0x1.a39ef35793c76p-33) /* 1.90821492927058770002e-10 */ \
    X(F64_SQRT2, 0x1.6a09e667f3bcdp+0) \
    X(F64_PI_4_2M50, 0x1.921fb54442d18p-51) /* float64(pi/4) * 2^-50, exact */ \
    X(S64_0, -0x1.5555555555549p-3) /* -1.66666666666666324348e-01 */ \
    X(S64_1, 0x1.111111110f8a6p-7) /*  8.33333333332248946124e-03 */ \
    X(S64_2, -0x1.a01a019c161d5p-13) /* -1.98412698298579493134e-04 */ \
    X(S64_3, 0x1.71de357b1fe7dp-19) /*  2.75573137070700676789e-06 */ \
    X(S64_4, -0x1.ae5e68a2b9cebp-26) /* -2.50507602534068634195e-08 */ \
    X(S64_5, 0x1.5d93a5acfd57cp-33) /*  1.58969099521155010221e-10 */ \
    X(C64_0, 0x1.555555555554cp-5) /*  4.16666666666666019037e-02 */ \
    X(C64_1, -0x1.6c16c16c15177p-10) /* -1.38888888888741095749e-03 */ \
    X(C64_2, 0x1.a01a019cb159p-16) /*  2.48015872894767294178e-05 */ \
    X(C64_3, -0x1.27e4f809c52adp-22) /* -2.75573143513906633035e-07 */ \
    X(C64_4, 0x1.1ee9ebdb4b1c4p-29) /*  2.08757232129817482790e-09 */ \
    X(C64_5, -0x1.8fae9be8838d4p-37) /* -1.13596475577881948265e-11 */

#define RF_K64_INDEX(name, value) RF_K64_##name,
enum { RF_F64_CONSTANTS(RF_K64_INDEX) RF_K64_COUNT };
#define RF_K64_VALUE(name, value) value,
#if defined(__CUDA_ARCH__)
static __constant__ double rf_k64[RF_K64_COUNT] = {RF_F64_CONSTANTS(RF_K64_VALUE)};
#else
static const double rf_k64[RF_K64_COUNT] = {RF_F64_CONSTANTS(RF_K64_VALUE)};
#endif
#define RF_K64(name) rf_k64[RF_K64_##name]

/* Natural log of a positive normal float64 (philox.py: log_f64, the fdlibm reduction). */
RF_HD double rf_log_f64(double u) {
    const rf_u64 bits = rf_f64_as_u64(u);
    rf_i64 e = (rf_i64)(bits >> 52) - 1023;
    double m = rf_u64_as_f64((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
    if (m >= RF_K64(F64_SQRT2)) {
        m = rf_dmul(m, 0.5);
        e = e + 1;
    }
    const double f = rf_dsub(m, 1.0);
    const double k = (double)e;
    const double s = rf_ddiv(f, rf_dadd(2.0, f));
    const double z = rf_dmul(s, s);
    const double w = rf_dmul(z, z);
    /* t1 = w * (LG1 + w * (LG3 + w * LG5)) */
    const double t1 = rf_dmul(w, rf_dadd(RF_K64(LG1), rf_dmul(w, rf_dadd(RF_K64(LG3), rf_dmul(w, RF_K64(LG5))))));
    /* t2 = z * (LG0 + w * (LG2 + w * (LG4 + w * LG6))) */
    const double t2 = rf_dmul(z, rf_dadd(RF_K64(LG0), rf_dmul(w, rf_dadd(RF_K64(LG2),
                          rf_dmul(w, rf_dadd(RF_K64(LG4), rf_dmul(w, RF_K64(LG6))))))));
    const double r = rf_dadd(t2, t1);
    const double hfsq = rf_dmul(rf_dmul(0.5, f), f);
    /* k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f) */
    /* k LN2_HI is exact (32-bit LN2_HI, |k| <= 1074), so the subtraction fuses */
    return rf_dfma_exact(k, RF_K64(F64_LN2_HI),
                         rf_dneg(rf_dsub(rf_dsub(hfsq, rf_dadd(rf_dmul(s, rf_dadd(hfsq, r)),
                                                              rf_dmul(k, RF_K64(F64_LN2_LO)))), f)));
}

/* sin(x), cos(x) for x in [0, pi/4] (philox.py: sincos_f64_reduced). */
RF_HD void rf_sincos_f64_reduced(double x, double* s_out, double* c_out) {
    const double z = rf_dmul(x, x);
    const double v = rf_dmul(z, x);
    /* rs = S1 + z * (S2 + z * (S3 + z * (S4 + z * S5))) */
    const double rs = rf_dadd(RF_K64(S64_1), rf_dmul(z, rf_dadd(RF_K64(S64_2), rf_dmul(z, rf_dadd(RF_K64(S64_3),
                          rf_dmul(z, rf_dadd(RF_K64(S64_4), rf_dmul(z, RF_K64(S64_5)))))))));
    /* s = x + v * (S0 + z * rs) */
    *s_out = rf_dadd(x, rf_dmul(v, rf_dadd(RF_K64(S64_0), rf_dmul(z, rs))));
    /* rc = z * (C0 + z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * C5))))) */
    const double rc = rf_dmul(z, rf_dadd(RF_K64(C64_0), rf_dmul(z, rf_dadd(RF_K64(C64_1), rf_dmul(z, rf_dadd(RF_K64(C64_2),
                          rf_dmul(z, rf_dadd(RF_K64(C64_3), rf_dmul(z, rf_dadd(RF_K64(C64_4), rf_dmul(z, RF_K64(C64_5))))))))))));
    /* c = 1 - (0.5 * z - z * rc); 0.5 z is exact (z = 0 or z >= (2^-50 pi/4)^2, a normal number) */
    *c_out = rf_dsub(1.0, rf_dfma_exact(0.5, z, rf_dneg(rf_dmul(z, rc))));
}

/* sin and cos of 2 pi k53 / 2^53 for an integer k53 < 2^53, octant reduced exactly
 * (philox.py: sincos_2pi_f64). */
RF_HD void rf_sincos_2pi_f64(rf_u64 k53, double* s_out, double* c_out) {
    const rf_u64 octant = k53 >> 50;
    rf_u64 frac = k53 & 0x3FFFFFFFFFFFFull;
    if (octant & 1ull) frac = 0x4000000000000ull - frac;
    /* (frac 2^-50) pi/4 == frac (pi/4 2^-50): both inner products are exact */
    const double x = rf_dmul((double)(rf_i64)frac, RF_K64(F64_PI_4_2M50));
    double s, c;
    rf_sincos_f64_reduced(x, &s, &c);
    if (((octant + 1ull) >> 1) & 1ull) { const double t = s; s = c; c = t; }
    if ((octant >> 2) & 1ull) s = rf_dneg(s);
    if (((octant + 2ull) >> 2) & 1ull) c = rf_dneg(c);
    *s_out = s;
    *c_out = c;
}

/* Four words -> two independent float64 N(0, 1) values (r cos, r sin) (philox.py: box_muller_f64). */
RF_HD double2 rf_box_muller_f64(uint4 w) {
    const double u = rf_dmul((double)(rf_i64)(rf_bits53(w.x, w.y) + 1ull), RF_F64_2M53);  /* (0, 1] */
    const double r = rf_dsqrt(rf_dmul(-2.0, rf_log_f64(u)));
    double s, c;
    rf_sincos_2pi_f64(rf_bits53(w.z, w.w), &s, &c);
    return make_double2(rf_dmul(r, c), rf_dmul(r, s));
}

/* ---- one value of a stream at a given index (philox.py: normal_at_f32 / normal_at_f64) ---------- */
RF_HD uint4 rf_block(rf_u64 b, rf_u32 c2, rf_u32 c3, uint2 key) {
    return rf_philox4x32_10(make_uint4((rf_u32)b, (rf_u32)(b >> 32), c2, c3), key);
}

/* Value i of the float32 normal stream (c2, c3): block i >> 2, lane i & 3. */
RF_HD float rf_normal_at_f32(rf_u64 i, rf_u32 c2, rf_u32 c3, uint2 key) {
    const uint4 x = rf_block(i >> 2, c2, c3, key);
    const rf_u32 lane = (rf_u32)(i & 3ull);
    const float2 z = rf_box_muller_f32(lane < 2u ? x.x : x.z, lane < 2u ? x.y : x.w);
    return (lane & 1u) ? z.y : z.x;
}

/* Value i of the float64 normal stream (c2, c3): block i >> 1, lane i & 1. */
RF_HD double rf_normal_at_f64(rf_u64 i, rf_u32 c2, rf_u32 c3, uint2 key) {
    const double2 z = rf_box_muller_f64(rf_block(i >> 1, c2, c3, key));
    return (i & 1ull) ? z.y : z.x;
}

#endif /* RINIT_FAST_PHILOX_CUH */
