/* spectral.cu: the GPU kernels of rf.spectral_radius / rf.spectral_norm (kernels/cuda/spectral_launch.py
 * drives them; the algorithm is the CPU's, docs/spectral.md, and the GPU design is docs/cuda.md,
 * "Spectral kernels").
 *
 * Every kernel runs one thread block per matrix (block-stride over matrices or work items), so one
 * launch covers the whole batch:
 *
 *   rf_spec_prep_*      max |w_ij| -> the power-of-two scale s (as the CPU's frexp/ldexp), the Frobenius
 *                       norm of W/s, and whether W is upper / lower triangular (the exact paths)
 *   rf_spec_lowcopy_*   the float32 / complex64 copy of W/s that the power filter reads
 *   rf_spec_power_*     `steps` normalised products x <- W x / ||W x||, optionally stopping once ||W x||
 *                       settled (the filter), and reporting an iterate that became exactly zero (the
 *                       nilpotency probe); *_f32/_c64 in float32 arithmetic on the low copy, power64_* in
 *                       float64 on W itself
 *   rf_spec_iso_*       the isometry probe: c^2 = ||W x||^2/||x||^2, defect ||W^H W x - c^2 x||/(c^2 ||x||)
 *   rf_spec_arnoldi_*   Arnoldi steps j0 .. j1-1 of each work item (CGS2, float64 / complex128), with
 *                       breakdown detection; the host does the Rayleigh-Ritz checks between launches
 *   rf_spec_lanczos_*   Lanczos steps on W^H W (u = W v, w = W^H u, CGS2), same pattern
 *
 * Products with W in float64 read W in its own dtype and multiply each entry by 1/s (exact: a power of
 * two), so no float64 copy of W is made.  Matrix-vector products: a warp per row (lanes stride the
 * row: coalesced), the row's sum by shuffles; W^H y: a thread per column, rows in order.  Block sums
 * (norms, inner products) are reduced in a fixed order (lanes by xor shuffles, then warps 0..nw-1), so
 * a result never depends on scheduling; the block size changes the rounding of sums (not bit-exact
 * with the CPU, nor meant to be: docs/cuda.md).
 *
 * Arithmetic: plain C++ operators (the module is compiled with --fmad=false: no contraction).  CuPy
 * adds -ftz=true, which flushes float32 subnormals in the filter: harmless (the filter only shapes a
 * start vector, and an iterate that underflows to zero is re-checked in float64 before W is called
 * nilpotent, as on the CPU).  float64 is never flushed.
 */
#include "philox.cuh"
#if !defined(__CUDACC__)
#include <cmath>   /* host builds (tests/cuda_host): sqrt, hypot, frexp, ldexp */
using std::fabs;
using std::frexp;
using std::hypot;
using std::ldexp;
using std::sqrt;
#endif

#define RF_SP_FULL 0xFFFFFFFFu
#define RF_SP_MAXW 32          /* most warps per block (1024 threads) */

template <typename R> struct rf_cx { R re, im; };

/* --- scalar helpers: real R or rf_cx<R> --------------------------------------------------------- */
template <typename S> struct rf_sp;
template <> struct rf_sp<float> { typedef float R; enum { C = 0 }; };
template <> struct rf_sp<double> { typedef double R; enum { C = 0 }; };
template <> struct rf_sp<rf_cx<float> > { typedef float R; enum { C = 1 }; };
template <> struct rf_sp<rf_cx<double> > { typedef double R; enum { C = 1 }; };

__device__ __forceinline__ float rf_sp_zero(float) { return 0.0f; }
__device__ __forceinline__ double rf_sp_zero(double) { return 0.0; }
template <typename R> __device__ __forceinline__ rf_cx<R> rf_sp_zero(rf_cx<R>) { rf_cx<R> z = {R(0), R(0)}; return z; }

template <typename R> __device__ __forceinline__ R rf_add(R a, R b) { return a + b; }
template <typename R> __device__ __forceinline__ rf_cx<R> rf_add(rf_cx<R> a, rf_cx<R> b) { rf_cx<R> r = {a.re + b.re, a.im + b.im}; return r; }
template <typename R> __device__ __forceinline__ R rf_sub(R a, R b) { return a - b; }
template <typename R> __device__ __forceinline__ rf_cx<R> rf_sub(rf_cx<R> a, rf_cx<R> b) { rf_cx<R> r = {a.re - b.re, a.im - b.im}; return r; }
template <typename R> __device__ __forceinline__ R rf_mul(R a, R b) { return a * b; }
template <typename R> __device__ __forceinline__ rf_cx<R> rf_mul(rf_cx<R> a, rf_cx<R> b) {
    rf_cx<R> r = {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
    return r;
}
/* conj(a) * b */
template <typename R> __device__ __forceinline__ R rf_cjmul(R a, R b) { return a * b; }
template <typename R> __device__ __forceinline__ rf_cx<R> rf_cjmul(rf_cx<R> a, rf_cx<R> b) {
    rf_cx<R> r = {a.re * b.re + a.im * b.im, a.re * b.im - a.im * b.re};
    return r;
}
/* a * t, t real (computed in double, rounded to R, as the CPU's float32 * float64 products) */
__device__ __forceinline__ float rf_scal(float a, double t) { return (float)((double)a * t); }
__device__ __forceinline__ double rf_scal(double a, double t) { return a * t; }
template <typename R> __device__ __forceinline__ rf_cx<R> rf_scal(rf_cx<R> a, double t) {
    rf_cx<R> r = {rf_scal(a.re, t), rf_scal(a.im, t)};
    return r;
}
__device__ __forceinline__ double rf_abs2(float a) { return (double)a * (double)a; }
__device__ __forceinline__ double rf_abs2(double a) { return a * a; }
template <typename R> __device__ __forceinline__ double rf_abs2(rf_cx<R> a) { return rf_abs2(a.re) + rf_abs2(a.im); }
__device__ __forceinline__ double rf_re(float a) { return a; }
__device__ __forceinline__ double rf_re(double a) { return a; }
template <typename R> __device__ __forceinline__ double rf_re(rf_cx<R> a) { return a.re; }

/* entry k of a stored row (E = float or double, interleaved (re, im) when C), times sc, as S */
template <typename S, typename E> __device__ __forceinline__ S rf_ld(const E* p, rf_u64 k, double sc) {
    typedef typename rf_sp<S>::R R;
    if constexpr (rf_sp<S>::C) {
        rf_cx<R> r = {(R)((double)p[2 * k] * sc), (R)((double)p[2 * k + 1] * sc)};
        return r;
    } else {
        return (R)((double)p[k] * sc);
    }
}
/* x (S) to and from a double buffer (the start / filtered vectors travel in float64) */
template <typename S> __device__ __forceinline__ S rf_from_d(const double* p, rf_u64 k, double t) {
    typedef typename rf_sp<S>::R R;
    if constexpr (rf_sp<S>::C) {
        rf_cx<R> r = {(R)(p[2 * k] * t), (R)(p[2 * k + 1] * t)};
        return r;
    } else {
        return (R)(p[k] * t);
    }
}
template <typename S> __device__ __forceinline__ void rf_to_d(double* p, rf_u64 k, S v, double t) {
    if constexpr (rf_sp<S>::C) {
        p[2 * k] = (double)v.re * t;
        p[2 * k + 1] = (double)v.im * t;
    } else {
        p[k] = (double)v * t;
    }
}

/* --- warp and block reductions (fixed order) -------------------------------------------------- */
__device__ __forceinline__ float rf_wsum(float v) {
    const int lane = (int)(threadIdx.x & 31u);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_sync(RF_SP_FULL, v, lane ^ o);
    return v;
}
__device__ __forceinline__ double rf_wsum(double v) {
    const int lane = (int)(threadIdx.x & 31u);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_sync(RF_SP_FULL, v, lane ^ o);
    return v;
}
template <typename R> __device__ __forceinline__ rf_cx<R> rf_wsum(rf_cx<R> v) {
    rf_cx<R> r = {rf_wsum(v.re), rf_wsum(v.im)};
    return r;
}
__device__ __forceinline__ double rf_wmax(double v) {
    const int lane = (int)(threadIdx.x & 31u);
    for (int o = 16; o > 0; o >>= 1) {
        const double u = __shfl_sync(RF_SP_FULL, v, lane ^ o);
        v = u > v ? u : v;
    }
    return v;
}
/* sum (or max) of v over the block, returned to every thread; `red` holds RF_SP_MAXW doubles */
__device__ __forceinline__ double rf_bsum(double v, double* red) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = rf_wsum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = 0.0;
    for (unsigned w = 0; w < nw; ++w) t += red[w];
    __syncthreads();
    return t;
}
__device__ __forceinline__ double rf_bmax(double v, double* red) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = rf_wmax(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = red[0];
    for (unsigned w = 1; w < nw; ++w) t = red[w] > t ? red[w] : t;
    __syncthreads();
    return t;
}

/* ||v||^2 over the block (each thread's entries i = tid, tid + blockDim, ... in order, then rf_bsum) */
template <typename S> __device__ __forceinline__ double rf_bnorm2(const S* v, rf_u64 n, double* red) {
    double p = 0.0;
    for (rf_u64 i = threadIdx.x; i < n; i += blockDim.x) p += rf_abs2(v[i]);
    return rf_bsum(p, red);
}
/* dst = src * inv, entry by entry (rf_scal), over the block */
template <typename S> __device__ __forceinline__ void rf_bscal(S* dst, const S* src, rf_u64 n, double inv) {
    for (rf_u64 i = threadIdx.x; i < n; i += blockDim.x) dst[i] = rf_scal(src[i], inv);
}

/* y = (A * sc) x: a warp per row, lanes along the row, four independent chains per lane (four loads in
 * flight per lane: the products are bound by memory latency x bytes in flight).  A row-major n x n
 * (storage E), x and y of S. */
template <typename S, typename E>
__device__ __forceinline__ void rf_gemv(const E* A, rf_u64 n, double sc, const S* x, S* y) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const rf_u64 rs = rf_sp<S>::C ? 2 * n : n;
    for (rf_u64 i = warp; i < n; i += nw) {
        const E* row = A + i * rs;
        S a0 = rf_sp_zero(S()), a1 = a0, a2 = a0, a3 = a0;
        rf_u64 k = lane;
        for (; k + 96 < n; k += 128) {
            a0 = rf_add(a0, rf_mul(rf_ld<S>(row, k, sc), x[k]));
            a1 = rf_add(a1, rf_mul(rf_ld<S>(row, k + 32, sc), x[k + 32]));
            a2 = rf_add(a2, rf_mul(rf_ld<S>(row, k + 64, sc), x[k + 64]));
            a3 = rf_add(a3, rf_mul(rf_ld<S>(row, k + 96, sc), x[k + 96]));
        }
        for (; k < n; k += 32) a0 = rf_add(a0, rf_mul(rf_ld<S>(row, k, sc), x[k]));
        const S acc = rf_wsum(rf_add(rf_add(a0, a1), rf_add(a2, a3)));
        if (lane == 0) y[i] = acc;
    }
}
/* z = (A * sc)^H y: a thread per column, rows in order (coalesced across the threads), four chains. */
template <typename S, typename E>
__device__ __forceinline__ void rf_gemv_adj(const E* A, rf_u64 n, double sc, const S* y, S* z) {
    const rf_u64 rs = rf_sp<S>::C ? 2 * n : n;
    for (rf_u64 j = threadIdx.x; j < n; j += blockDim.x) {
        S a0 = rf_sp_zero(S()), a1 = a0, a2 = a0, a3 = a0;
        rf_u64 i = 0;
        for (; i + 3 < n; i += 4) {
            a0 = rf_add(a0, rf_cjmul(rf_ld<S>(A + i * rs, j, sc), y[i]));
            a1 = rf_add(a1, rf_cjmul(rf_ld<S>(A + (i + 1) * rs, j, sc), y[i + 1]));
            a2 = rf_add(a2, rf_cjmul(rf_ld<S>(A + (i + 2) * rs, j, sc), y[i + 2]));
            a3 = rf_add(a3, rf_cjmul(rf_ld<S>(A + (i + 3) * rs, j, sc), y[i + 3]));
        }
        for (; i < n; ++i) a0 = rf_add(a0, rf_cjmul(rf_ld<S>(A + i * rs, j, sc), y[i]));
        z[j] = rf_add(rf_add(a0, a1), rf_add(a2, a3));
    }
}

/* Two passes of classical Gram-Schmidt of w (shared, n) against rows 0..j of Q (global, row stride n);
 * the coefficients of pass p go to h[(p * (j + 1)) + k] (shared).  Ends with a barrier. */
template <typename S>
__device__ __forceinline__ void rf_cgs2(const S* Q, rf_u64 n, rf_u64 j, S* w, S* h) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int pass = 0; pass < 2; ++pass) {
        S* hp = h + pass * (j + 1);
        for (rf_u64 k = warp; k <= j; k += nw) {
            const S* q = Q + k * n;
            S acc = rf_sp_zero(S());
            for (rf_u64 i = lane; i < n; i += 32) acc = rf_add(acc, rf_cjmul(q[i], w[i]));
            acc = rf_wsum(acc);
            if (lane == 0) hp[k] = acc;
        }
        __syncthreads();
        for (rf_u64 i = threadIdx.x; i < n; i += blockDim.x) {
            S d = rf_sp_zero(S());
            for (rf_u64 k = 0; k <= j; ++k) d = rf_add(d, rf_mul(hp[k], Q[k * n + i]));
            w[i] = rf_sub(w[i], d);
        }
        __syncthreads();
    }
}

/* ----------------------------------------------------------------------------------------------- */
/* prep: scale[b] = 2^e with max|w| = f 2^e, f in [0.5, 1) (0 for the zero matrix); fro[b] = ||W/s||_F;
 * flags[b] bit 0: W has a nonzero below the diagonal, bit 1: above. */
template <typename E, bool C>
__device__ void rf_spec_prep_body(const E* W, rf_u64 nb, rf_u64 n, double* scale, double* fro, rf_u32* flags) {
    static __shared__ double red[RF_SP_MAXW];   /* static: one per block (also in the host emulation) */
    const rf_u64 rs = C ? 2 * n : n;
    for (rf_u64 b = blockIdx.x; b < nb; b += gridDim.x) {
        const E* A = W + b * n * rs;
        double amax = 0.0, below = 0.0, above = 0.0;
        for (rf_u64 q = threadIdx.x; q < n * n; q += blockDim.x) {
            const rf_u64 i = q / n, j = q - i * n;
            double v;
            if constexpr (C) v = hypot((double)A[2 * q], (double)A[2 * q + 1]);
            else v = fabs((double)A[q]);
            amax = v > amax ? v : amax;
            if (v != 0.0) {
                if (i > j) below = 1.0;
                if (j > i) above = 1.0;
            }
        }
        amax = rf_bmax(amax, red);
        below = rf_bmax(below, red);
        above = rf_bmax(above, red);
        double s = 0.0;
        if (amax > 0.0) {
            int e;
            frexp(amax, &e);
            s = ldexp(1.0, e);
        }
        double f2 = 0.0;
        if (s > 0.0) {
            const double inv = 1.0 / s;
            for (rf_u64 q = threadIdx.x; q < n * n; q += blockDim.x) {
                if constexpr (C) {
                    const double re = (double)A[2 * q] * inv, im = (double)A[2 * q + 1] * inv;
                    f2 += re * re + im * im;
                } else {
                    const double v = (double)A[q] * inv;
                    f2 += v * v;
                }
            }
        }
        f2 = rf_bsum(f2, red);
        if (threadIdx.x == 0) {
            scale[b] = s;
            fro[b] = sqrt(f2);
            flags[b] = (below != 0.0 ? 1u : 0u) | (above != 0.0 ? 2u : 0u);
        }
    }
}

/* lowcopy: out[a] = float32(W[midx[a]] * sc[a]), every real component (complex: 2 n^2 per matrix) */
template <typename E, bool C>
__device__ void rf_spec_lowcopy_body(const E* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n,
                                     float* out) {
    const rf_u64 per = (C ? 2 : 1) * n * n;
    const rf_u64 total = na * per;
    for (rf_u64 q = (rf_u64)blockIdx.x * blockDim.x + threadIdx.x; q < total; q += (rf_u64)gridDim.x * blockDim.x) {
        const rf_u64 a = q / per, k = q - a * per;
        out[q] = (float)((double)W[(rf_u64)midx[a] * per + k] * sc[a]);
    }
}

/* power: for item a, from X0[a] (n values of S as doubles, normalised here), up to steps[a] products
 * x <- (M sc) x / ||(M sc) x|| with M = W[midx[a]]; with `settle`, stops once ||W x|| changed by <= 1e-6
 * (relative) for 4 consecutive steps.  done[a] = products made, zero[a] = 1 if an iterate was exactly
 * zero (then the loop stopped there), Xout[a] = the final unit vector in float64. */
#define RF_SETTLED 1e-6
#define RF_SETTLED_RUN 4
template <typename S, typename E>
__device__ void rf_spec_power_body(const E* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n,
                                   const double* X0, const rf_u32* steps, rf_u32 settle, double* Xout,
                                   rf_u32* done_out, rf_u32* zero_out) {
    extern __shared__ __align__(16) unsigned char rf_smem[];
    S* x = (S*)rf_smem;
    S* y = x + n;
    double* red = (double*)(y + n);
    const rf_u64 c = rf_sp<S>::C ? 2 : 1;
    for (rf_u64 a = blockIdx.x; a < na; a += gridDim.x) {
        const E* A = W + (rf_u64)midx[a] * n * n * c;
        const double s = sc[a];
        const double* x0 = X0 + a * n * c;
        double nx2 = 0.0;
        for (rf_u64 i = threadIdx.x; i < n * c; i += blockDim.x) nx2 += x0[i] * x0[i];
        const double nx = sqrt(rf_bsum(nx2, red));
        for (rf_u64 i = threadIdx.x; i < n; i += blockDim.x) x[i] = rf_from_d<S>(x0, i, 1.0 / nx);
        __syncthreads();
        const rf_u32 limit = steps[a];
        rf_u32 done = 0, run = 0, zero = 0;
        double gprev = -1.0;
        while (done < limit) {
            rf_gemv(A, n, s, x, y);
            __syncthreads();
            ++done;
            const double ny = sqrt(rf_bnorm2(y, n, red));
            if (ny == 0.0) { zero = 1; break; }
            rf_bscal(x, y, n, 1.0 / ny);
            __syncthreads();
            if (settle) {
                if (fabs(ny - gprev) <= RF_SETTLED * ny) {
                    if (++run >= RF_SETTLED_RUN) break;
                } else {
                    run = 0;
                }
                gprev = ny;
            }
        }
        const double nf = sqrt(rf_bnorm2(x, n, red));
        double* xo = Xout + a * n * c;
        for (rf_u64 i = threadIdx.x; i < n; i += blockDim.x) rf_to_d(xo, i, x[i], zero ? 0.0 : 1.0 / nf);
        if (threadIdx.x == 0) {
            done_out[a] = done;
            zero_out[a] = zero;
        }
        __syncthreads();
    }
}

/* iso: for the probes v = 0, 1 of item a (X[a, v], n values of S as doubles): c2[2a+v] = ||M x||^2/||x||^2
 * and defect[2a+v] = ||M^H M x - c2 x|| / (c2 ||x||) (inf when c2 = 0), M = W[midx[a]] * sc[a]. */
template <typename S, typename E>
__device__ void rf_spec_iso_body(const E* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n,
                                 const double* X, double* c2_out, double* defect_out) {
    extern __shared__ __align__(16) unsigned char rf_smem[];
    S* y = (S*)rf_smem;
    S* z = y + n;
    double* red = (double*)(z + n);
    const rf_u64 c = rf_sp<S>::C ? 2 : 1;
    for (rf_u64 a = blockIdx.x; a < na; a += gridDim.x) {
        const E* A = W + (rf_u64)midx[a] * n * n * c;
        const double s = sc[a];
        for (int v = 0; v < 2; ++v) {
            const S* x = (const S*)(X + (2 * a + v) * n * c);
            const double nx2 = rf_bnorm2(x, n, red);
            rf_gemv(A, n, s, x, y);
            __syncthreads();
            rf_gemv_adj(A, n, s, y, z);
            __syncthreads();
            const double c2 = rf_bnorm2(y, n, red) / nx2;
            double p = 0.0;
            for (rf_u64 i = threadIdx.x; i < n; i += blockDim.x) {
                S xi = x[i];
                typedef typename rf_sp<S>::R R;
                if constexpr (rf_sp<S>::C) { xi.re = (R)(xi.re * c2); xi.im = (R)(xi.im * c2); }
                else xi = (R)(xi * c2);
                p += rf_abs2(rf_sub(z[i], xi));
            }
            const double e2 = rf_bsum(p, red);
            if (threadIdx.x == 0) {
                c2_out[2 * a + v] = c2;
                defect_out[2 * a + v] = c2 == 0.0 ? rf_u64_as_f64(0x7FF0000000000000ull) /* +inf */ : sqrt(e2) / (c2 * sqrt(nx2));
            }
            __syncthreads();
        }
    }
}

/* arnoldi: for work item t (slot a = items[t]), Arnoldi steps j = j0[a] .. j1[a]-1 on Q[a] ((m+1) x n)
 * and H[a] ((m+1) x m, row-major):  w = M q_j;  CGS2 against q_0..q_j, H[k, j] = h1_k + h2_k;
 * H[j+1, j] = ||w||;  breakdown (stop) when ||w|| <= brk_tol[a], else q_{j+1} = w / ||w||.
 * jend[a] = the Krylov dimension reached, brk[a] = 1 on breakdown. */
template <typename S, typename E>
__device__ void rf_spec_arnoldi_body(const E* W, const rf_u32* midx, const double* sc, const rf_u32* items,
                                     rf_u64 nitems, rf_u64 n, rf_u64 m, double* Qd, double* Hd,
                                     const rf_u32* j0, const rf_u32* j1, const double* brk_tol, rf_u32* jend,
                                     rf_u32* brk_out) {
    extern __shared__ __align__(16) unsigned char rf_smem[];
    S* w = (S*)rf_smem;
    S* h = w + n;                         /* 2 (m + 1) coefficients */
    double* red = (double*)(h + 2 * (m + 1));
    const rf_u64 c = rf_sp<S>::C ? 2 : 1;
    for (rf_u64 t = blockIdx.x; t < nitems; t += gridDim.x) {
        const rf_u64 a = items[t];
        const E* A = W + (rf_u64)midx[a] * n * n * c;
        const double s = sc[a];
        S* Q = (S*)(Qd + a * (m + 1) * n * c);
        S* H = (S*)(Hd + a * (m + 1) * m * c);
        rf_u64 j = j0[a];
        const rf_u64 jstop = j1[a];
        rf_u32 brk = 0;
        while (j < jstop) {
            rf_gemv(A, n, s, Q + j * n, w);
            __syncthreads();
            rf_cgs2(Q, n, j, w, h);
            for (rf_u64 k = threadIdx.x; k <= j; k += blockDim.x) H[k * m + j] = rf_add(h[k], h[j + 1 + k]);
            const double beta = sqrt(rf_bnorm2(w, n, red));
            if (threadIdx.x == 0) {
                S bv = rf_sp_zero(S());
                if constexpr (rf_sp<S>::C) bv.re = beta; else bv = beta;
                H[(j + 1) * m + j] = bv;
            }
            ++j;
            if (beta <= brk_tol[a]) { brk = 1; break; }
            rf_bscal(Q + j * n, w, n, 1.0 / beta);
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            jend[a] = (rf_u32)j;
            brk_out[a] = brk;
        }
        __syncthreads();
    }
}

/* lanczos (on M^H M): steps j = j0[a] .. j1[a]-1 on V[a] ((m+1) x n): u = M v_j, w = M^H u, CGS2 against
 * v_0..v_j, alpha[a, j] = Re(h1_j + h2_j), beta[a, j] = ||w||; breakdown when ||w|| <= brk_tol[a], else
 * v_{j+1} = w / ||w||. */
template <typename S, typename E>
__device__ void rf_spec_lanczos_body(const E* W, const rf_u32* midx, const double* sc, const rf_u32* items,
                                     rf_u64 nitems, rf_u64 n, rf_u64 m, double* Vd, double* alpha, double* beta_out,
                                     const rf_u32* j0, const rf_u32* j1, const double* brk_tol, rf_u32* jend,
                                     rf_u32* brk_out) {
    extern __shared__ __align__(16) unsigned char rf_smem[];
    S* u = (S*)rf_smem;
    S* w = u + n;
    S* h = w + n;
    double* red = (double*)(h + 2 * (m + 1));
    const rf_u64 c = rf_sp<S>::C ? 2 : 1;
    for (rf_u64 t = blockIdx.x; t < nitems; t += gridDim.x) {
        const rf_u64 a = items[t];
        const E* A = W + (rf_u64)midx[a] * n * n * c;
        const double s = sc[a];
        S* V = (S*)(Vd + a * (m + 1) * n * c);
        rf_u64 j = j0[a];
        const rf_u64 jstop = j1[a];
        rf_u32 brk = 0;
        while (j < jstop) {
            rf_gemv(A, n, s, V + j * n, u);
            __syncthreads();
            rf_gemv_adj(A, n, s, u, w);
            __syncthreads();
            rf_cgs2(V, n, j, w, h);
            const double bj = sqrt(rf_bnorm2(w, n, red));
            if (threadIdx.x == 0) {
                alpha[a * m + j] = rf_re(rf_add(h[j], h[j + 1 + j]));
                beta_out[a * m + j] = bj;
            }
            ++j;
            if (bj <= brk_tol[a]) { brk = 1; break; }
            rf_bscal(V + j * n, w, n, 1.0 / bj);
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            jend[a] = (rf_u32)j;
            brk_out[a] = brk;
        }
        __syncthreads();
    }
}

/* --- the extern "C" kernels: one per (storage dtype, arithmetic) -------------------------------- */
#define RF_SPEC_STORAGE(X) X(f32, float, false, double) X(f64, double, false, double) \
                           X(c64, float, true, rf_cx<double>) X(c128, double, true, rf_cx<double>)

#define RF_SPEC_KERNELS(SUF, E, C, S64)                                                                     \
    extern "C" __global__ void __launch_bounds__(1024) rf_spec_prep_##SUF(                                 \
        const E* W, rf_u64 nb, rf_u64 n, double* scale, double* fro, rf_u32* flags) {                       \
        rf_spec_prep_body<E, C>(W, nb, n, scale, fro, flags);                                              \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) rf_spec_lowcopy_##SUF(                              \
        const E* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n, float* out) {              \
        rf_spec_lowcopy_body<E, C>(W, midx, sc, na, n, out);                                               \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) rf_spec_power64_##SUF(                              \
        const E* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n, const double* X0,          \
        const rf_u32* steps, rf_u32 settle, double* Xout, rf_u32* done, rf_u32* zero) {                   \
        rf_spec_power_body<S64, E>(W, midx, sc, na, n, X0, steps, settle, Xout, done, zero);              \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) rf_spec_iso_##SUF(                                  \
        const E* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n, const double* X,           \
        double* c2, double* defect) {                                                                      \
        rf_spec_iso_body<S64, E>(W, midx, sc, na, n, X, c2, defect);                                       \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) rf_spec_arnoldi_##SUF(                              \
        const E* W, const rf_u32* midx, const double* sc, const rf_u32* items, rf_u64 nitems, rf_u64 n,    \
        rf_u64 m, double* Q, double* H, const rf_u32* j0, const rf_u32* j1, const double* brk_tol,         \
        rf_u32* jend, rf_u32* brk) {                                                                       \
        rf_spec_arnoldi_body<S64, E>(W, midx, sc, items, nitems, n, m, Q, H, j0, j1, brk_tol, jend, brk); \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(1024) rf_spec_lanczos_##SUF(                              \
        const E* W, const rf_u32* midx, const double* sc, const rf_u32* items, rf_u64 nitems, rf_u64 n,    \
        rf_u64 m, double* V, double* alpha, double* beta, const rf_u32* j0, const rf_u32* j1,              \
        const double* brk_tol, rf_u32* jend, rf_u32* brk) {                                                \
        rf_spec_lanczos_body<S64, E>(W, midx, sc, items, nitems, n, m, V, alpha, beta, j0, j1, brk_tol,   \
                                     jend, brk);                                                           \
    }

RF_SPEC_STORAGE(RF_SPEC_KERNELS)

/* the float32 filter and probe on the low copy (storage float32, arithmetic float32 / complex64) */
extern "C" __global__ void __launch_bounds__(1024) rf_spec_power_f32(
    const float* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n, const double* X0,
    const rf_u32* steps, rf_u32 settle, double* Xout, rf_u32* done, rf_u32* zero) {
    rf_spec_power_body<float, float>(W, midx, sc, na, n, X0, steps, settle, Xout, done, zero);
}
extern "C" __global__ void __launch_bounds__(1024) rf_spec_power_c64(
    const float* W, const rf_u32* midx, const double* sc, rf_u64 na, rf_u64 n, const double* X0,
    const rf_u32* steps, rf_u32 settle, double* Xout, rf_u32* done, rf_u32* zero) {
    rf_spec_power_body<rf_cx<float>, float>(W, midx, sc, na, n, X0, steps, settle, Xout, done, zero);
}
