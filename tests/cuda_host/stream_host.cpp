// Host build of kernels/cuda/philox.cuh, for tests/test_cuda_header_host.py.
//
// Compiled twice by the test: by a plain C++ compiler (g++ -ffp-contract=off) and, when nvcc is on
// PATH, by nvcc as CUDA source (-x cu --fmad=false), so that the header's __host__ __device__ code goes
// through the CUDA front end too.  Each command writes raw little-endian binary that the test compares,
// bit for bit, with kernels/cpu/philox.py (the CPU stream).
//
//   philox   IN OUT          IN: n x (c0 c1 c2 c3 k0 k1) uint32      OUT: n x 4 uint32
//   log32    OUT             k = 1 .. 2^24: log_f32(k 2^-24), then rf_bm_radius_f32 (= sqrt(-2 log))
//                            of the word ((k - 1) << 8), as float32 (2 x 2^24)
//   sincos32 OUT             k = 0 .. 2^24 - 1: sin, cos of 2 pi k / 2^24 (2 x 2^24 float32)
//   log64    IN OUT          IN: float64 u > 0                      OUT: log_f64(u), sqrt(-2 log u)
//   sincos64 IN OUT          IN: uint64 k53 < 2^53                  OUT: sin, cos (float64 pairs)
//   bm32     IN OUT          IN: uint32 word pairs                   OUT: float32 pairs
//   bm64     IN OUT          IN: uint32 word quadruples              OUT: float64 pairs
//   stream   SEED C2 C3 COUNT OUT   values 0..COUNT-1 of stream (seed, c2, c3): float32 uniform,
//                                   float32 normal, float64 uniform, float64 normal (block by block,
//                                   as the kernels of sampling.cu compute them), and the normals again
//                                   through rf_normal_at_f32/f64 (must agree)
//   at       IN OUT          IN: n x (i c2 c3 k0 k1) uint64          OUT: n x (normal_at_f32 as float64,
//                                                                      normal_at_f64)
#include "philox.cuh"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

template <typename T>
static std::vector<T> read_all(const char* path) {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) { std::perror(path); std::exit(2); }
    std::fseek(f, 0, SEEK_END);
    long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    std::vector<T> v(n / sizeof(T));
    if (!v.empty() && std::fread(v.data(), sizeof(T), v.size(), f) != v.size()) { std::perror(path); std::exit(2); }
    std::fclose(f);
    return v;
}

template <typename T>
static void write_all(const char* path, const std::vector<T>& v) {
    std::FILE* f = std::fopen(path, "wb");
    if (!f) { std::perror(path); std::exit(2); }
    if (!v.empty() && std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size()) { std::perror(path); std::exit(2); }
    std::fclose(f);
}

int main(int argc, char** argv) {
    if (argc < 3) { std::fprintf(stderr, "usage: see the header of this file\n"); return 2; }
    const std::string cmd = argv[1];
    if (cmd == "philox") {
        auto in = read_all<rf_u32>(argv[2]);
        std::vector<rf_u32> out(in.size() / 6 * 4);
        for (size_t i = 0; i < in.size() / 6; ++i) {
            const rf_u32* r = &in[6 * i];
            uint4 y = rf_philox4x32_10(make_uint4(r[0], r[1], r[2], r[3]), make_uint2(r[4], r[5]));
            out[4 * i] = y.x; out[4 * i + 1] = y.y; out[4 * i + 2] = y.z; out[4 * i + 3] = y.w;
        }
        write_all(argv[3], out);
    } else if (cmd == "log32") {
        const size_t n = size_t(1) << 24;
        std::vector<float> out(2 * n);
        for (size_t k = 1; k <= n; ++k) {
            const float u = rf_fmul((float)(rf_i32)k, RF_F32_2M24);
            const float l = rf_log_f32(u);
            out[k - 1] = l;
            out[n + k - 1] = rf_bm_radius_f32((rf_u32)(k - 1) << 8);   // the path Box-Muller takes
        }
        write_all(argv[2], out);
    } else if (cmd == "sincos32") {
        const size_t n = size_t(1) << 24;
        std::vector<float> out(2 * n);
        for (size_t k = 0; k < n; ++k) rf_sincos_2pi_f32((rf_u32)k, &out[k], &out[n + k]);
        write_all(argv[2], out);
    } else if (cmd == "log64") {
        auto in = read_all<double>(argv[2]);
        std::vector<double> out(2 * in.size());
        for (size_t i = 0; i < in.size(); ++i) {
            out[2 * i] = rf_log_f64(in[i]);
            out[2 * i + 1] = rf_dsqrt(rf_dmul(-2.0, out[2 * i]));
        }
        write_all(argv[3], out);
    } else if (cmd == "sincos64") {
        auto in = read_all<rf_u64>(argv[2]);
        std::vector<double> out(2 * in.size());
        for (size_t i = 0; i < in.size(); ++i) rf_sincos_2pi_f64(in[i], &out[2 * i], &out[2 * i + 1]);
        write_all(argv[3], out);
    } else if (cmd == "bm32") {
        auto in = read_all<rf_u32>(argv[2]);
        std::vector<float> out(in.size());
        for (size_t i = 0; i + 1 < in.size(); i += 2) {
            float2 z = rf_box_muller_f32(in[i], in[i + 1]);
            out[i] = z.x; out[i + 1] = z.y;
        }
        write_all(argv[3], out);
    } else if (cmd == "bm64") {
        auto in = read_all<rf_u32>(argv[2]);
        std::vector<double> out(in.size() / 2);
        for (size_t i = 0; i + 3 < in.size(); i += 4) {
            double2 z = rf_box_muller_f64(make_uint4(in[i], in[i + 1], in[i + 2], in[i + 3]));
            out[i / 2] = z.x; out[i / 2 + 1] = z.y;
        }
        write_all(argv[3], out);
    } else if (cmd == "stream") {
        if (argc < 7) return 2;
        const rf_u64 seed = std::strtoull(argv[2], nullptr, 0);
        const rf_u32 c2 = (rf_u32)std::strtoul(argv[3], nullptr, 0);
        const rf_u32 c3 = (rf_u32)std::strtoul(argv[4], nullptr, 0);
        const size_t count = std::strtoull(argv[5], nullptr, 0);
        const uint2 key = make_uint2((rf_u32)seed, (rf_u32)(seed >> 32));
        std::vector<float> u32(count), n32(count);
        std::vector<double> u64(count), n64(count);
        for (size_t b = 0; 4 * b < count; ++b) {            // float32: 4 values per block
            const uint4 x = rf_block(b, c2, c3, key);
            const rf_u32 w[4] = {x.x, x.y, x.z, x.w};
            const float2 za = rf_box_muller_f32(x.x, x.y), zb = rf_box_muller_f32(x.z, x.w);
            const float z[4] = {za.x, za.y, zb.x, zb.y};
            for (int j = 0; j < 4 && 4 * b + j < count; ++j) {
                u32[4 * b + j] = rf_uniform_f32(w[j]);
                n32[4 * b + j] = z[j];
                const float again = rf_normal_at_f32(4 * b + j, c2, c3, key);
                if (std::memcmp(&again, &z[j], 4)) { std::fprintf(stderr, "normal_at_f32 differs\n"); return 1; }
            }
        }
        for (size_t b = 0; 2 * b < count; ++b) {            // float64: 2 values per block
            const uint4 x = rf_block(b, c2, c3, key);
            const double2 z = rf_box_muller_f64(x);
            const double u[2] = {rf_uniform_f64(x.x, x.y), rf_uniform_f64(x.z, x.w)};
            const double zz[2] = {z.x, z.y};
            for (int j = 0; j < 2 && 2 * b + j < count; ++j) {
                u64[2 * b + j] = u[j];
                n64[2 * b + j] = zz[j];
                const double again = rf_normal_at_f64(2 * b + j, c2, c3, key);
                if (std::memcmp(&again, &zz[j], 8)) { std::fprintf(stderr, "normal_at_f64 differs\n"); return 1; }
            }
        }
        std::FILE* f = std::fopen(argv[6], "wb");
        if (!f) return 2;
        std::fwrite(u32.data(), 4, count, f);
        std::fwrite(n32.data(), 4, count, f);
        std::fwrite(u64.data(), 8, count, f);
        std::fwrite(n64.data(), 8, count, f);
        std::fclose(f);
    } else if (cmd == "at") {
        auto in = read_all<rf_u64>(argv[2]);
        std::vector<double> out(in.size() / 5 * 2);
        for (size_t r = 0; r < in.size() / 5; ++r) {
            const rf_u64* p = &in[5 * r];
            const uint2 key = make_uint2((rf_u32)p[3], (rf_u32)p[4]);
            out[2 * r] = (double)rf_normal_at_f32(p[0], (rf_u32)p[1], (rf_u32)p[2], key);
            out[2 * r + 1] = rf_normal_at_f64(p[0], (rf_u32)p[1], (rf_u32)p[2], key);
        }
        write_all(argv[3], out);
    } else {
        std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
        return 2;
    }
    return 0;
}
