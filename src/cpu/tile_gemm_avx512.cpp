// The CPU engine's matrix product with AVX-512 (F + VL), chosen at run time by gemm_nn
// (tile_gemm.hpp) on hosts that have it: a 6 x 64 register tile (24 zmm accumulators of 32
// registers; 4 loads and 6 broadcasts per 24 FMAs) where the AVX2 kernel holds 6 x 16 in 12 of
// 16. (12 x 32 lost 3% at 64-row tiles: 64 = 5 x 12 + 4 leaves a third of the last block idle.) This file alone is compiled for
// x86-64-v4, so it includes no header with inline functions or templates: a copy of one built
// for AVX-512 could be the one the linker keeps for the AVX2 translation units too.
#include "cpu/tile_gemm_avx512.hpp"

#if defined(__AVX512F__) && defined(__AVX512VL__)  // else (not x86): a plain product, never chosen
#include <immintrin.h>

namespace flashattn::detail {
namespace {

constexpr int kRows = 6;  // rows of C per register tile: 64 = 10 x 6 + 4, as the AVX2 kernel

// MR rows x NV 16-column vectors of C (the last one `tail`-masked), K steps.
template <int MR, int NV>
inline void micro(int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool accumulate,
                  __mmask16 tail) {
  __m512 acc[MR][NV];
  const auto mask_of = [tail](int v) { return v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF); };
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(mask_of(v), C + r * ldc + 16 * v) : _mm512_setzero_ps();
  for (int k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_ps(mask_of(v), B + k * ldb + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(C + r * ldc + 16 * v, mask_of(v), acc[r][v]);
}

template <int NV>
inline void rows(int mr, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc,
                 __mmask16 tail) {
  switch (mr) {
    case 6: return micro<6, NV>(K, A, lda, B, ldb, C, ldc, acc, tail);
    case 5: return micro<5, NV>(K, A, lda, B, ldb, C, ldc, acc, tail);
    case 4: return micro<4, NV>(K, A, lda, B, ldb, C, ldc, acc, tail);
    case 3: return micro<3, NV>(K, A, lda, B, ldb, C, ldc, acc, tail);
    case 2: return micro<2, NV>(K, A, lda, B, ldb, C, ldc, acc, tail);
    default: return micro<1, NV>(K, A, lda, B, ldb, C, ldc, acc, tail);
  }
}

}  // namespace

void gemm_nn_avx512(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                    bool accumulate) {
  for (int i = 0; i < M; i += kRows) {
    const int mr = M - i < kRows ? M - i : kRows;
    const float* a = A + i * lda;
    float* c = C + i * ldc;
    int j = 0;
    for (; j + 64 <= N; j += 64) rows<4>(mr, K, a, lda, B + j, ldb, c + j, ldc, accumulate, 0xFFFF);
    const int left = N - j;  // 0..56, a multiple of 8: up to four vectors, the last masked
    if (left == 0) continue;
    const int vecs = (left + 15) / 16;
    const __mmask16 tail = static_cast<__mmask16>((1u << (left - 16 * (vecs - 1))) - 1u);
    switch (vecs) {
      case 4: rows<4>(mr, K, a, lda, B + j, ldb, c + j, ldc, accumulate, tail); break;
      case 3: rows<3>(mr, K, a, lda, B + j, ldb, c + j, ldc, accumulate, tail); break;
      case 2: rows<2>(mr, K, a, lda, B + j, ldb, c + j, ldc, accumulate, tail); break;
      default: rows<1>(mr, K, a, lda, B + j, ldb, c + j, ldc, accumulate, tail); break;
    }
  }
}

}  // namespace flashattn::detail
#else
namespace flashattn::detail {
// Not an x86-64-v4 build: cpu_gemm_avx512() is false and nothing calls this; a plain product
// keeps the symbol (and its tests) linkable.
void gemm_nn_avx512(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                    bool accumulate) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = accumulate ? C[i * ldc + j] : 0.f;
      for (int k = 0; k < K; ++k) acc += A[i * lda + k] * B[k * ldb + j];
      C[i * ldc + j] = acc;
    }
}
}  // namespace flashattn::detail
#endif
