/* fp.cuh: the one-operation IEEE helpers that kernels beyond the stream need (propagate.cu, unroll.cu),
 * in addition to those of philox.cuh (rf_fmul, rf_fadd, rf_fsub, rf_fsqrt, rf_dmul, ..., rf_fneg).
 *
 * Same rules as philox.cuh (docs/cuda.md, "Bit-exactness rules"): each function is ONE correctly
 * rounded IEEE operation (or an exact one).  float32 goes through inline PTX with an explicit rounding
 * mode and no .ftz, so neither --fmad nor CuPy's -ftz=true changes it (subnormals are kept, as on the
 * CPU); float64 through the __*_rn intrinsics.  On the host (nvcc's host pass, or a plain C++ compiler
 * for tests/cuda_host) the same operation is the plain C++ operator or the C library's correctly
 * rounded function.
 *
 * The always-fused rf_ffma / rf_dfma (the CPU kernels' own llvm.fma) are in philox.cuh, next to
 * rf_fma_exact, which uses them.
 *
 *   float  rf_fdiv(a, b)      div.rn.f32          float  rf_ffloor(a)       cvt.rmi.f32.f32
 *   rf_i32 rf_f2i(a)          cvt.rzi.s32.f32 (truncation, np.int32(x))
 *   double rf_f2d(x)          cvt.f64.f32 (exact) float  rf_d2f(x)          cvt.rn.f32.f64
 *   float  rf_fabs(x), double rf_dabs(x)          the sign bit cleared
 *   bool   rf_fgt0(x)         x > 0 on the bits (false for +-0, NaN, negatives; a float compare is .ftz)
 * RF_MEM: the qualifiers of struct members (RF_HD is `static inline` on a plain C++ host compiler).
 */
#ifndef RINIT_FAST_FP_CUH
#define RINIT_FAST_FP_CUH

#include "philox.cuh"
#if !defined(__CUDACC__)
#include <cmath>   /* host builds (tests/cuda_host): floorf */
#endif

#if defined(__CUDACC__)
#define RF_MEM __host__ __device__ __forceinline__
#else
#define RF_MEM inline
#endif

RF_HD float rf_fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return a / b;
#endif
}
RF_HD float rf_ffloor(float a) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("cvt.rmi.f32.f32 %0, %1;" : "=f"(r) : "f"(a));
    return r;
#else
    return floorf(a);
#endif
}
RF_HD rf_i32 rf_f2i(float a) {     /* truncation to int32 (np.int32(n)); no .ftz */
#if defined(__CUDA_ARCH__)
    rf_i32 r;
    asm("cvt.rzi.s32.f32 %0, %1;" : "=r"(r) : "f"(a));
    return r;
#else
    return (rf_i32)a;
#endif
}
RF_HD double rf_f2d(float x) {     /* exact widening; cvt without .ftz keeps subnormal inputs */
#if defined(__CUDA_ARCH__)
    double r;
    asm("cvt.f64.f32 %0, %1;" : "=d"(r) : "f"(x));
    return r;
#else
    return (double)x;
#endif
}
RF_HD float rf_d2f(double x) {     /* round to nearest; may give a subnormal float (no .ftz) */
#if defined(__CUDA_ARCH__)
    float r;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(r) : "d"(x));
    return r;
#else
    return (float)x;
#endif
}
RF_HD float rf_fabs(float x) { return rf_u32_as_f32(rf_f32_as_u32(x) & 0x7FFFFFFFu); }
RF_HD double rf_dabs(double x) { return rf_u64_as_f64(rf_f64_as_u64(x) & 0x7FFFFFFFFFFFFFFFull); }
RF_HD bool rf_fgt0(float x) {
    const rf_i32 b = (rf_i32)rf_f32_as_u32(x);
    return b > 0 && b <= 0x7F800000;
}

#endif /* RINIT_FAST_FP_CUH */
