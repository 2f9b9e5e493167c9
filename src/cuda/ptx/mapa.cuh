// Shared-memory addresses of other CTAs of a cluster (PTX ISA 9.7.9.20 "mapa", sm_90).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// mapa.shared::cluster.u32 d, addr, rank: the .shared::cluster address of the variable at this
// CTA's .shared address `addr` in the CTA of cluster rank `rank`.
__device__ __forceinline__ std::uint32_t mapa_shared_cluster(std::uint32_t addr, std::uint32_t rank) {
  std::uint32_t d = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(d) : "r"(addr), "r"(rank));
#endif
  return d;
}

}  // namespace flashattn::ptx
