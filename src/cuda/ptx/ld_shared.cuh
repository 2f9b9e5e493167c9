// Shared-memory loads by .shared address (PTX ISA 9.7.9.8 "ld").
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// ld.shared.f32 d, [addr]
__device__ __forceinline__ float ld_shared_f32(std::uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
  return v;
}

}  // namespace flashattn::ptx
