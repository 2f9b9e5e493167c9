// Base-2 exponential on the special-function unit (PTX ISA 9.7.4.8 "ex2").
#pragma once

namespace flashattn::ptx {

// ex2.approx.ftz.f32: 2^x with ~2 ulp error, denormals flushed; ex2(-inf) = +0, which is
// what a masked logit must give.
__device__ __forceinline__ float ex2_approx_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace flashattn::ptx
