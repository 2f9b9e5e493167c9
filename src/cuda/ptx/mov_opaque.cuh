// An optimisation barrier for one value (PTX ISA 9.7.9.1 "mov" inside volatile asm).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// mov.b32 d, a, as volatile asm: the compiler cannot see through it, so address arithmetic
// built on the result inside a loop is recomputed per iteration instead of being hoisted
// out of the loop into registers that hot accumulators need.
__device__ __forceinline__ std::uint32_t mov_opaque_u32(std::uint32_t a) {
  std::uint32_t d;
  asm volatile("mov.b32 %0, %1;\n" : "=r"(d) : "r"(a));
  return d;
}

// mov.b64 d, a: as mov_opaque_u32 for pointers.
template <typename P>
__device__ __forceinline__ P* mov_opaque_ptr(P* a) {
  std::uint64_t d;
  asm volatile("mov.b64 %0, %1;\n" : "=l"(d) : "l"(reinterpret_cast<std::uint64_t>(a)));
  return reinterpret_cast<P*>(d);
}

}  // namespace flashattn::ptx
