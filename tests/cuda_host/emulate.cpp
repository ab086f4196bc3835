// Runs the real kernels of kernels/cuda/sampling.cu on the CPU under tests/cuda_host/cuda_shim.h.
// Built and driven by tests/test_cuda_emulated.py; output is raw binary compared with the CPU kernels.
//
//   fill KIND DTYPE A S N SEED C2 C3 GRID BLOCK MIS PATH P1 P2 P3 OUT
//       KIND normal (P1 = std) | uniform (P1..P3 = mul, add, scale) | truncate (normal with std 1, then
//       rf_truncate with bound P1 and std P2); DTYPE f32 | f64; the output starts MIS elements past a
//       64-byte boundary; PATH auto (the loader's choice) | general (force the warp-staged path).
//       Exit 3 if any byte outside the output was written.
//   philox IN OUT GRID BLOCK     IN: n x (c0 c1 c2 c3 k0 k1) uint32 -> OUT: n x 4 uint32
#include "cuda_shim.h"
#include "sampling.cu"

#include <cstdio>
#include <cstdlib>
#include <string>

template <typename T>
static int run_fill(int argc, char** argv) {
    const std::string kind = argv[2];
    const rf_u64 A = std::strtoull(argv[4], nullptr, 0);
    const rf_u32 S = (rf_u32)std::strtoul(argv[5], nullptr, 0);
    const rf_u64 N = std::strtoull(argv[6], nullptr, 0);
    const rf_u64 seed = std::strtoull(argv[7], nullptr, 0);
    const rf_u32 c2 = (rf_u32)std::strtoul(argv[8], nullptr, 0);
    const rf_u32 c3 = (rf_u32)std::strtoul(argv[9], nullptr, 0);
    const unsigned grid = (unsigned)std::strtoul(argv[10], nullptr, 0);
    const unsigned block = (unsigned)std::strtoul(argv[11], nullptr, 0);
    const size_t mis = std::strtoull(argv[12], nullptr, 0);
    const std::string path = argv[13];
    const T p1 = (T)std::strtod(argv[14], nullptr), p2 = (T)std::strtod(argv[15], nullptr),
            p3 = (T)std::strtod(argv[16], nullptr);
    const char* outpath = argv[17];
    (void)argc;
    const rf_u32 k0 = (rf_u32)seed, k1 = (rf_u32)(seed >> 32);
    const size_t total = (size_t)(A * S * N);
    const size_t guard = 64;
    std::vector<unsigned char> mem(total * sizeof(T) + 2 * guard + 64 + mis * sizeof(T), 0xFF);
    unsigned char* base = mem.data() + ((64 - ((uintptr_t)mem.data() % 64)) % 64) + guard;
    T* out = reinterpret_cast<T*>(base) + mis;
    constexpr int V = rf_vec16<T>::V;
    const bool aligned = path == "auto" && N % V == 0 && (uintptr_t)out % 16 == 0;
    if (kind == "normal" || kind == "truncate") {
        const T std_ = kind == "normal" ? p1 : (T)1;
        if (aligned) rf_launch_mode(false, rf_normal_fill<T, true>, grid, block, out, A, S, N, k0, k1, c2, c3, std_);
        else rf_launch(rf_normal_fill<T, false>, grid, block, out, A, S, N, k0, k1, c2, c3, std_);
        if (kind == "truncate") rf_launch_mode(false, rf_truncate<T>, grid, block, out, A, S, N, k0, k1, c2, c3, p1, p2);
    } else if (kind == "uniform") {
        if (aligned) rf_launch_mode(false, rf_uniform_fill<T, true>, grid, block, out, A, S, N, k0, k1, c2, c3, p1, p2, p3);
        else rf_launch(rf_uniform_fill<T, false>, grid, block, out, A, S, N, k0, k1, c2, c3, p1, p2, p3);
    } else {
        std::fprintf(stderr, "unknown kind %s\n", kind.c_str());
        return 2;
    }
    std::FILE* f = std::fopen(outpath, "wb");
    if (!f) return 2;
    std::fwrite(out, sizeof(T), total, f);
    std::fclose(f);
    const unsigned char* lo = reinterpret_cast<const unsigned char*>(out);
    const unsigned char* hi = reinterpret_cast<const unsigned char*>(out + total);
    for (const unsigned char* p = mem.data(); p < lo; ++p)
        if (*p != 0xFF) { std::fprintf(stderr, "wrote before the output\n"); return 3; }
    for (const unsigned char* p = hi; p < mem.data() + mem.size(); ++p)
        if (*p != 0xFF) { std::fprintf(stderr, "wrote after the output\n"); return 3; }
    std::printf("%s\n", aligned ? "aligned" : "general");
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    const std::string cmd = argv[1];
    if (cmd == "fill" && argc == 18) {
        return std::string(argv[3]) == "f32" ? run_fill<float>(argc, argv) : run_fill<double>(argc, argv);
    }
    if (cmd == "philox" && argc == 6) {
        std::FILE* f = std::fopen(argv[2], "rb");
        if (!f) return 2;
        std::vector<rf_u32> in;
        rf_u32 w;
        while (std::fread(&w, 4, 1, f) == 1) in.push_back(w);
        std::fclose(f);
        const rf_u64 n = in.size() / 6;
        std::vector<rf_u32> ctr(4 * n), key(2 * n), out(4 * n, 0xDEADBEEF);
        for (rf_u64 i = 0; i < n; ++i) {
            for (int j = 0; j < 4; ++j) ctr[4 * i + j] = in[6 * i + j];
            key[2 * i] = in[6 * i + 4];
            key[2 * i + 1] = in[6 * i + 5];
        }
        rf_launch_mode(false, rf_philox4x32_blocks, (unsigned)std::strtoul(argv[4], nullptr, 0),
                  (unsigned)std::strtoul(argv[5], nullptr, 0), ctr.data(), key.data(), out.data(), n);
        f = std::fopen(argv[3], "wb");
        if (!f) return 2;
        std::fwrite(out.data(), 4, out.size(), f);
        std::fclose(f);
        return 0;
    }
    std::fprintf(stderr, "usage: see the header of this file\n");
    return 2;
}
