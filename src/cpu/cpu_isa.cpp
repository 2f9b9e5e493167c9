// Which vector kernels the CPU engine runs on this host (see tile_gemm_avx512.hpp).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/tile_gemm_avx512.hpp"

namespace flashattn::detail {
namespace {

bool host_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// AMD family 0x19 (Zen 3 / Zen 4): Zen 4 has AVX-512 but splits each 512-bit operation in
// two, and the 6 x 64 products ran 2% slower than the AVX2 ones on this project's Zen 4 VM.
bool host_splits_512bit_ops() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  // "AuthenticAMD"
  if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned family = ((eax >> 8) & 0xfu) + ((eax >> 8 & 0xfu) == 0xfu ? (eax >> 20) & 0xffu : 0u);
  return family == 0x19u;
#else
  return false;
#endif
}

std::atomic<int> g_use_avx512{-1};  // -1: not decided yet

}  // namespace

bool cpu_gemm_avx512() {
  int v = g_use_avx512.load(std::memory_order_relaxed);
  if (v < 0) {
    // On by default where the host runs 512-bit FMAs at full width: on a 16-core Intel Xeon
    // (Sapphire Rapids class; the GPU machines' host, fp32, d128, 16 heads, N = 1k-4k, causal or
    // not, two alternating runs) every cell ran faster: forward 1.2-1.9x, backward 1.1-3.0x the
    // AVX2 kernels' GFLOP/s (a noisy host: AVX2 alone moved up to 1.6x between runs)
    // (bench/results/xeon16-cpu-isa-2026-11-21-s4.txt); off on Zen 4 (see above).
    // FLASHATTN_CPU_ISA=avx2 | avx512 overrides (avx512 only where the host has it).
    const char* isa = std::getenv("FLASHATTN_CPU_ISA");
    const bool want = isa && std::strcmp(isa, "avx512") == 0   ? true
                      : isa && std::strcmp(isa, "avx2") == 0 ? false
                                                             : !host_splits_512bit_ops();
    v = host_has_avx512() && want ? 1 : 0;
    g_use_avx512.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

bool set_cpu_gemm_avx512(bool use) {
  const bool before = cpu_gemm_avx512();
  g_use_avx512.store(use && host_has_avx512() ? 1 : 0, std::memory_order_relaxed);
  return before;
}

}  // namespace flashattn::detail
