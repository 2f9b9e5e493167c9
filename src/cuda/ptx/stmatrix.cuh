// Warp-cooperative shared-memory matrix stores (PTX ISA 9.7.9.27 "stmatrix", sm_90+).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// stmatrix.sync.aligned.m8n8.x4.shared.b16: four 8x8 b16 matrices (mma accumulator order), lanes give row addresses.
__device__ __forceinline__ void stmatrix_x4(std::uint32_t addr, std::uint32_t r0, std::uint32_t r1, std::uint32_t r2,
                                            std::uint32_t r3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
#endif
}

}  // namespace flashattn::ptx
