// Hyperbolic tangent on the special-function unit (PTX ISA 9.7.4.9 "tanh", sm_75+).
#pragma once

namespace flashattn::ptx {

// tanh.approx.f32: one MUFU instruction, max relative error about 2^-11 -- below the
// rounding of the fp16 / bf16 operands whose scores it caps (softcap).
__device__ __forceinline__ float tanh_approx(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace flashattn::ptx
