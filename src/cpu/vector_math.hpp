// Vectorised exp2 for the CPU softmax: exp is as costly as the matrix products per
// score element, so a scalar libm call would halve the engine's speed.
// exp2(x) = 2^n * 2^f with n = round(x), f in [-0.5, 0.5], 2^f by a degree-6 polynomial
// (relative error ~2e-8, below fp32 rounding). -inf and large negatives give 0.
#pragma once

#include <cmath>

#include "cpu/tile_gemm.hpp"

namespace flashattn::detail {

#if FLASHATTN_CPU_AVX2
inline __m256 exp2_ps(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-127.f));  // also maps -inf to -127 -> tiny, flushed below
  x = _mm256_min_ps(x, _mm256_set1_ps(127.f));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.5353362e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3398874e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504109e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_and_ps(r, _mm256_cmp_ps(x, _mm256_set1_ps(-126.f), _CMP_GT_OQ));
}
#endif

// y[i] = exp2(x[i] - sub) for i < n; n a multiple of 8. Returns the sum of y.
inline float exp2_sub_sum(const float* x, float sub, float* y, int n) {
#if FLASHATTN_CPU_AVX2
  const __m256 s = _mm256_set1_ps(sub);
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const __m256 v = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(y + i, v);
    acc = _mm256_add_ps(acc, v);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
#else
  float acc = 0.f;
  for (int i = 0; i < n; ++i) acc += (y[i] = std::exp2(x[i] - sub));
  return acc;
#endif
}

// max of x[0, n); n a multiple of 8 on the AVX2 path. Eight lanes side by side: a scalar
// std::max_element is one chain of dependent compares (~a third of the forward's product time
// at 64 x 64 tiles). -inf entries (masked keys) are ordinary values here; no NaN reaches it.
inline float row_max(const float* x, int n) {
#if FLASHATTN_CPU_AVX2
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = lanes[0];
  for (int k = 1; k < 8; ++k) r = lanes[k] > r ? lanes[k] : r;
  return r;
#else
  float r = -INFINITY;
  for (int i = 0; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
#endif
}

// sum a[i] * b[i] for i < n. Four independent accumulators: a single chain of dependent FMAs
// (what the plain loop compiles to without reassociation) runs at a quarter of the FMA rate.
inline float dot(const float* a, const float* b, int n) {
  int i = 0;
#if FLASHATTN_CPU_AVX2
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (; i + 32 <= n; i += 32)
    for (int u = 0; u < 4; ++u)
      acc[u] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * u), _mm256_loadu_ps(b + i + 8 * u), acc[u]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
  const __m256 s4 = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s4);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
#else
  float sum = 0.f;
#endif
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// tanh via exp2 for the softcap: tanh(t) = 1 - 2 / (exp(2t) + 1).
inline void tanh_inplace(float* x, int n) {
#if FLASHATTN_CPU_AVX2
  const __m256 two_log2e = _mm256_set1_ps(2.f * 1.4426950408889634f);
  const __m256 one = _mm256_set1_ps(1.f), two = _mm256_set1_ps(2.f);
  for (int i = 0; i < n; i += 8) {
    const __m256 e = exp2_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), two_log2e));
    _mm256_storeu_ps(x + i, _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one))));
  }
#else
  for (int i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
#endif
}

}  // namespace flashattn::detail
