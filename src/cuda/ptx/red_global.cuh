// Fire-and-forget global reductions (PTX ISA 9.7.13.6 "red").
#pragma once

namespace flashattn::ptx {

// red.global.add.f32 [addr], v: atomic add whose result is not returned (no round trip).
__device__ __forceinline__ void red_global_add_f32(float* addr, float v) {
#if defined(__CUDA_ARCH__)
  asm volatile("red.global.add.f32 [%0], %1;\n" ::"l"(addr), "f"(v) : "memory");
#endif
}

// red.global.add.v4.f32 [addr], {a,b,c,d}: four adds to a 16-byte aligned address in one
// instruction (sm_90 and later only).
__device__ __forceinline__ void red_global_add_v4_f32(float* addr, float a, float b, float c, float d) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(addr), "f"(a), "f"(b), "f"(c), "f"(d)
               : "memory");
#endif
}

}  // namespace flashattn::ptx
