// Fire-and-forget global reductions (PTX ISA 9.7.13.6 "red").
#pragma once

namespace flashattn::ptx {

// red.global.add.f32 [addr], v: atomic add whose result is not returned (no round trip).
__device__ __forceinline__ void red_global_add_f32(float* addr, float v) {
#if defined(__CUDA_ARCH__)
  asm volatile("red.global.add.f32 [%0], %1;\n" ::"l"(addr), "f"(v) : "memory");
#endif
}

}  // namespace flashattn::ptx
