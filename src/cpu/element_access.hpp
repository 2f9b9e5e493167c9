// Reading and writing single elements of any supported dtype on the host.
#pragma once

#include <cstdint>

#include "core/numeric_types.hpp"
#include "flashattn/dtype.hpp"

namespace flashattn::detail {

inline float load_f32(const void* base, DType t, std::int64_t i) {
  switch (t) {
    case DType::f16: return f16_to_f32(static_cast<const std::uint16_t*>(base)[i]);
    case DType::bf16: return bf16_to_f32(static_cast<const std::uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

inline void store_f32(void* base, DType t, std::int64_t i, float x) {
  switch (t) {
    case DType::f16: static_cast<std::uint16_t*>(base)[i] = f32_to_f16(x); break;
    case DType::bf16: static_cast<std::uint16_t*>(base)[i] = f32_to_bf16(x); break;
    default: static_cast<float*>(base)[i] = x; break;
  }
}

// Rounds x to the precision of t (identity for fp32).
inline float round_to(DType t, float x) {
  switch (t) {
    case DType::f16: return f16_to_f32(f32_to_f16(x));
    case DType::bf16: return bf16_to_f32(f32_to_bf16(x));
    default: return x;
  }
}

}  // namespace flashattn::detail
