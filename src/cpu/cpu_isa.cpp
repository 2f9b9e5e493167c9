// Which vector kernels the CPU engine runs on this host (see tile_gemm_avx512.hpp).
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

std::atomic<int> g_use_avx512{-1};  // -1: not decided yet

}  // namespace

bool cpu_gemm_avx512() {
  int v = g_use_avx512.load(std::memory_order_relaxed);
  if (v < 0) {
    // Opt-in until measured where it should pay (Intel server cores and Zen 5, with full-width
    // 512-bit FMA); on this project's Zen 4 VM (512-bit ops split in two) it is 2% slower.
    const char* isa = std::getenv("FLASHATTN_CPU_ISA");
    v = host_has_avx512() && isa && std::strcmp(isa, "avx512") == 0 ? 1 : 0;
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
