// Shared-memory loads by .shared address (PTX ISA 9.7.9.8 "ld"), in this CTA or, by a
// .shared::cluster address from mapa, in another CTA of the cluster (sm_90).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// ld.shared.f32 d, [addr]
__device__ __forceinline__ float ld_shared_f32(std::uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
  return v;
}

// ld.shared.u32 d, [addr]
__device__ __forceinline__ std::uint32_t ld_shared_u32(std::uint32_t addr) {
  std::uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

// ld.shared::cluster.f32 d, [addr]: a float in a cluster peer's shared memory.
__device__ __forceinline__ float ld_shared_cluster_f32(std::uint32_t addr) {
  float v = 0.f;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
#endif
  return v;
}

// ld.shared::cluster.v4.f32 d, [addr]: four floats (16-byte aligned) of a cluster peer.
__device__ __forceinline__ float4 ld_shared_cluster_v4_f32(std::uint32_t addr) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
#endif
  return v;
}

}  // namespace flashattn::ptx
