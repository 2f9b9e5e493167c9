// Shared-memory stores by .shared address (PTX ISA 9.7.9.10 "st"): 32-bit addresses keep
// store addresses out of 64-bit generic registers.
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// st.shared.b32 [addr], v
__device__ __forceinline__ void st_shared_b32(std::uint32_t addr, std::uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

// st.shared.f32 [addr], v
__device__ __forceinline__ void st_shared_f32(std::uint32_t addr, float v) {
  asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(addr), "f"(v) : "memory");
}

}  // namespace flashattn::ptx
