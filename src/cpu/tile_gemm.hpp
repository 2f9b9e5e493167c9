// The CPU engine's one matrix product: C (M x N) (+)= A (M x K) * B (K x N), all fp32
// row-major, N a multiple of 8. A 6x16 register-blocked AVX2/FMA micro-kernel (12
// accumulators, as in BLIS' Zen kernels) with scalar fallbacks; the attention tiles are
// small enough (<= 64 x 256) to stay in L1/L2 without packing.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FLASHATTN_CPU_AVX2 1
#endif

#include "cpu/tile_gemm_avx512.hpp"

namespace flashattn::detail {

#if FLASHATTN_CPU_AVX2
// MR rows x (8 * NV) columns of C. The unroll pragmas are load-bearing: without them GCC
// (12, 13) keeps acc in registers but also stores every accumulator to the stack after each
// FMA wherever the kernel is not inlined with a constant `accumulate` (12 extra stores per k:
// 46 instead of 112 GFLOP/s for a 64^3 product on one Zen 4 core; the backward ran at half
// speed). scripts/cpu-kernel-check (a CTest) finds such stores in the built library.
template <int MR, int NV>
inline void gemm_micro(int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool accumulate) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? _mm256_loadu_ps(C + r * ldc + 8 * v) : _mm256_setzero_ps();
  for (int k = 0; k < K; ++k) {
    __m256 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + k * ldb + 8 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(C + r * ldc + 8 * v, acc[r][v]);
}

template <int NV>
inline void gemm_rows(int mr, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool acc) {
  switch (mr) {
    case 6: gemm_micro<6, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 5: gemm_micro<5, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 4: gemm_micro<4, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 3: gemm_micro<3, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 2: gemm_micro<2, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    default: gemm_micro<1, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
  }
}
#endif

inline void gemm_nn(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                    bool accumulate) {
#if FLASHATTN_CPU_AVX512_KERNELS
  if (cpu_gemm_avx512()) return gemm_nn_avx512(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
#endif
#if FLASHATTN_CPU_AVX2
  for (int i = 0; i < M; i += 6) {
    const int mr = M - i < 6 ? M - i : 6;
    int j = 0;
    for (; j + 16 <= N; j += 16) gemm_rows<2>(mr, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, accumulate);
    for (; j + 8 <= N; j += 8) gemm_rows<1>(mr, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, accumulate);
  }
#else
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (!accumulate)
      for (int j = 0; j < N; ++j) c[j] = 0.f;
    for (int k = 0; k < K; ++k) {
      const float a = A[i * lda + k];
      const float* b = B + k * ldb;
      for (int j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
#endif
}

#if FLASHATTN_CPU_AVX2
// B (8 x 8) = A^T, in registers: the strided scalar stores of a plain transpose cost the
// backward more than its matrix products at head dim 64.
inline void transpose8x8(const float* A, int lda, float* B, int ldb) {
  __m256 r[8], t[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(A + k * lda);
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {
    r[4 * k] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(B + k * ldb, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(B + (k + 4) * ldb, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}
#endif

// B (cols x rows) = A^T for A (rows x cols); lda, ldb row strides.
inline void transpose(int rows, int cols, const float* A, int lda, float* B, int ldb) {
  int i = 0;
#if FLASHATTN_CPU_AVX2
  const int cols8 = cols & ~7;
  for (; i + 8 <= rows; i += 8) {
    for (int j = 0; j < cols8; j += 8) transpose8x8(A + i * lda + j, lda, B + j * ldb + i, ldb);
    for (int k = 0; k < 8; ++k) {
      const float* a = A + (i + k) * lda;
      for (int j = cols8; j < cols; ++j) B[j * ldb + i + k] = a[j];
    }
  }
#endif
  for (; i < rows; ++i)
    for (int j = 0; j < cols; ++j) B[j * ldb + i] = A[i * lda + j];
}

}  // namespace flashattn::detail
