// fp16 / bf16 conversions of the decode kernels, one small traits struct per element type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "flashattn/dtype.hpp"

namespace flashattn::detail::decode {

template <typename T>
struct ElementTraits;

template <>
struct ElementTraits<__half> {
  static __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half from_float(float x) { return __float2half_rn(x); }
  // Two floats as one 32-bit mma operand register (low half = first).
  static __device__ __forceinline__ std::uint32_t pack2(float a, float b) {
    __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
};

template <>
struct ElementTraits<__nv_bfloat16> {
  static __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ std::uint32_t pack2(float a, float b) {
    __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
};

// Reads element i of a table stored as fp32 or as T.
template <typename T>
__device__ __forceinline__ float load_table(const void* base, DType dt, std::int64_t i) {
  if (dt == DType::f32) return static_cast<const float*>(base)[i];
  return ElementTraits<T>::to_float(static_cast<const T*>(base)[i]);
}

}  // namespace flashattn::detail::decode
