// The online softmax of one warp's rows, held in registers (FlashAttention-2, base 2).
//
// Scores stay in "s units" (raw q.k, or transformed logits when a hook is active) and are
// turned into base-2 exponents with one FMA: p = 2^(s * exp_scale - m * exp_scale), where
// exp_scale = scale * log2(e) folds the softmax scale into the exponent. The running sum l is
// kept per lane (each lane sees a quarter of a row's columns) and reduced across the quad
// only once, at the end. A row that has seen no key keeps m = -inf; its exponent base is
// taken as 0 so masked (-inf) scores give exactly 0 and nothing becomes NaN.
#pragma once

#include <cmath>
#include <type_traits>

#include "core/online_softmax.hpp"
#include "cuda/ptx/ex2.cuh"

namespace flashattn::detail::sm80 {

// Max / sum over the four lanes that share an accumulator row.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The `combine` step of a warp that holds whole rows: nothing to merge.
struct KeepRows {
  template <typename Rows>
  __device__ __forceinline__ void operator()(Rows&) const {}
};

template <int kMSlices, int kNTilesS, int kNTilesO>
struct OnlineSoftmaxRegs {
  float m[kMSlices][2];  // running row max, s units (rows g and g + 8 of each slice)
  float l[kMSlices][2];  // this lane's share of the running sum

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        m[mi][h] = -INFINITY;
        l[mi][h] = 0.f;
      }
  }

  // Folds one tile of scores in: rescales o by 2^(m_old - m_new) and overwrites s with the
  // unnormalised probabilities. Once the running maxima settle most tiles leave every row's
  // max unchanged; a warp vote then skips the kHeadDim / 2 multiplies of the rescale.
  // `combine` sees the tile's row maxima (quad-reduced, the running max folded in) before they
  // are used: a band's warps, each holding part of a row's keys, take the max of their maxima
  // there (FwdBandExchange); a warp that holds whole rows passes KeepRows.
  template <typename Combine>
  __device__ __forceinline__ void update(float (&s)[kMSlices][kNTilesS][4], float (&o)[kMSlices][kNTilesO][4],
                                         float exp_scale, Combine&& combine) {
    float factor[kMSlices][2];
    bool changed = false;
    auto row_max = [&](int mi, int h) {
      float x = m[mi][h];
#pragma unroll
      for (int nj = 0; nj < kNTilesS; ++nj) x = fmaxf(x, fmaxf(s[mi][nj][2 * h], s[mi][nj][2 * h + 1]));
      return quad_max(x);
    };
    auto fold_row = [&](int mi, int h, float mx) {
      const float base = (mx == -INFINITY) ? 0.f : mx * exp_scale;
      factor[mi][h] = ptx::ex2_approx_ftz(m[mi][h] * exp_scale - base);  // 0 when m was -inf
      changed |= mx != m[mi][h];
      m[mi][h] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nj = 0; nj < kNTilesS; ++nj)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pv = ptx::ex2_approx_ftz(fmaf(s[mi][nj][2 * h + e], exp_scale, -base));
          s[mi][nj][2 * h + e] = pv;
          sum += pv;
        }
      l[mi][h] = l[mi][h] * factor[mi][h] + sum;
    };
    if constexpr (std::is_same_v<std::decay_t<Combine>, KeepRows>) {
      // Row by row: the d 64 plain kernel spills (8 bytes) when every max is taken first.
#pragma unroll
      for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) fold_row(mi, h, row_max(mi, h));
    } else {
      float mx[kMSlices][2];
#pragma unroll
      for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) mx[mi][h] = row_max(mi, h);
      combine(mx);
#pragma unroll
      for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) fold_row(mi, h, mx[mi][h]);
    }
    if (__any_sync(0xffffffffu, changed)) {
#pragma unroll
      for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int dj = 0; dj < kNTilesO; ++dj) {
            o[mi][dj][2 * h] *= factor[mi][h];
            o[mi][dj][2 * h + 1] *= factor[mi][h];
          }
    }
  }

  // Quad-reduces l (then `combine` adds the other band warp's sums, as in update); gives the
  // factor that normalises O (times `extra`, e.g. the dropout 1 / (1 - p)) and the natural-log
  // LSE of each row (-inf and factor 0 for an empty row).
  template <typename Combine>
  __device__ __forceinline__ void finalize(float exp_scale, float extra, float (&o_factor)[kMSlices][2],
                                           float (&lse)[kMSlices][2], Combine&& combine) {
    float sum[kMSlices][2];
#pragma unroll
    for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) sum[mi][h] = quad_sum(l[mi][h]);
    combine(sum);
#pragma unroll
    for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const bool seen = sum[mi][h] > 0.f && m[mi][h] != -INFINITY;
        o_factor[mi][h] = seen ? extra / sum[mi][h] : 0.f;
        lse[mi][h] = seen ? (m[mi][h] * exp_scale + log2f(sum[mi][h])) * kLn2 : -INFINITY;
      }
  }
};

}  // namespace flashattn::detail::sm80
