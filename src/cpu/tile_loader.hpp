// Moves tiles between the user's strided tensors (fp32 / fp16 / bf16) and the CPU
// engine's fp32 scratch, zero-padding rows and columns past the sequence end so padded
// lanes of the matrix products read zeros, never garbage (0 * NaN would poison a row).
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/element_access.hpp"
#include "cpu/tile_gemm.hpp"

namespace flashattn::detail {

// dst[d] = float(src[d]) for d < n.
inline void convert_row(const void* src, DType t, float* dst, int n) {
  if (t == DType::f32) {
#if FLASHATTN_CPU_AVX2
    // Inline: a libc memcpy call per 256-byte row was ~13% of the d64 forward (perf).
    const auto* f = static_cast<const float*>(src);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(dst + d, _mm256_loadu_ps(f + d));
    for (; d < n; ++d) dst[d] = f[d];
#else
    std::memcpy(dst, src, sizeof(float) * n);
#endif
    return;
  }
  const auto* s = static_cast<const std::uint16_t*>(src);
  int d = 0;
#if FLASHATTN_CPU_AVX2
  if (t == DType::f16) {
    for (; d + 8 <= n; d += 8)
      _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + d))));
  } else {
    for (; d + 8 <= n; d += 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + d)));
      _mm256_storeu_ps(dst + d, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
  }
#endif
  for (; d < n; ++d) dst[d] = t == DType::f16 ? f16_to_f32(s[d]) : bf16_to_f32(s[d]);
}

// dst[d] = T(src[d]) with round-to-nearest-even.
inline void store_row(const float* src, DType t, void* dst, int n) {
  if (t == DType::f32) {
    std::memcpy(dst, src, sizeof(float) * n);
    return;
  }
  auto* o = static_cast<std::uint16_t*>(dst);
  int d = 0;
#if FLASHATTN_CPU_AVX2
  if (t == DType::f16)
    for (; d + 8 <= n; d += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + d),
                       _mm256_cvtps_ph(_mm256_loadu_ps(src + d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; d < n; ++d) o[d] = t == DType::f16 ? f32_to_f16(src[d]) : f32_to_bf16(src[d]);
}

inline const void* element_ptr(const void* base, DType t, std::int64_t offset) {
  return static_cast<const char*>(base) + offset * static_cast<std::int64_t>(dtype_size(t));
}
inline void* element_ptr(void* base, DType t, std::int64_t offset) {
  return static_cast<char*>(base) + offset * static_cast<std::int64_t>(dtype_size(t));
}

// Rows [0, rows) of a (rows x D) tile, row r at base + offsets(r); rows up to `padded_rows`
// are zero-filled. OffsetFn: int -> int64 element offset.
template <typename OffsetFn>
inline void load_tile(const void* base, DType t, OffsetFn offset, int rows, int padded_rows, int D, float* dst, int ld) {
  for (int r = 0; r < rows; ++r) convert_row(element_ptr(base, t, offset(r)), t, dst + r * ld, D);
  for (int r = rows; r < padded_rows; ++r) std::memset(dst + r * ld, 0, sizeof(float) * D);
}

// The transpose: dst (D x padded_rows), column r = row r of the tensor; padded columns zero.
// Eight rows at a time go through row_buf (8 x D floats) and 8 x 8 register transposes.
template <typename OffsetFn>
inline void load_tile_transposed(const void* base, DType t, OffsetFn offset, int rows, int padded_rows, int D,
                                 float* row_buf, float* dst, int ld) {
  int r0 = 0;
  for (; r0 < rows && r0 + 8 <= padded_rows; r0 += 8) {
    const int n = rows - r0 < 8 ? rows - r0 : 8;
    for (int r = 0; r < n; ++r) convert_row(element_ptr(base, t, offset(r0 + r)), t, row_buf + r * D, D);
    if (n < 8) std::memset(row_buf + n * D, 0, sizeof(float) * (8 - n) * D);
    transpose(8, D, row_buf, D, dst + r0, ld);
  }
  for (int r = r0; r < rows; ++r) {
    convert_row(element_ptr(base, t, offset(r)), t, row_buf, D);
    for (int d = 0; d < D; ++d) dst[d * ld + r] = row_buf[d];
  }
  const int r_end = rows > r0 ? rows : r0;
  for (int d = 0; d < D; ++d)
    for (int r = r_end; r < padded_rows; ++r) dst[d * ld + r] = 0.f;
}

}  // namespace flashattn::detail
