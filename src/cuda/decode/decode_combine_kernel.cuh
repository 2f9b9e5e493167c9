// Merges the split-KV partial states (normalised O in fp32 and natural-log LSE per split)
// into the output with SoftmaxStats::merge, the merge every split path of the library uses.
// One warp per (b, head, token) row.
#pragma once

#include "core/online_softmax.hpp"
#include "cuda/decode/decode_types.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

constexpr int kMaxHeadDimPerLane = 8;  // head_dim <= 256
constexpr int kMaxSplits = 128;

template <typename T>
__global__ void __launch_bounds__(128) combine_splits_kernel(const DecodeParams p, const float* o_part,
                                                             const float* lse_part, int splits) {
  // Two passes so that no load waits on another: (1) the lanes merge the splits' LSEs
  // (SoftmaxStats::merge, lanes then warp-reduced), (2) every split's weight 2^(m_s - m) sits in
  // shared memory and the O rows stream in with independent loads. A loop that merged split by
  // split would chain one memory latency per split (~35 us for 33 splits on an H200).
  __shared__ float weight[4][kMaxSplits];
  const int rows = p.batch * p.heads_q * p.seqlen_q;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * 4 + warp;
  if (row >= rows) return;
  const int t = row % p.seqlen_q, h = (row / p.seqlen_q) % p.heads_q, b = row / (p.seqlen_q * p.heads_q);
  SoftmaxStats st;
  float fa, fb;
  for (int s = lane; s < splits; s += 32) st.merge(SoftmaxStats::from_lse(lse_part[static_cast<std::int64_t>(s) * rows + row]), fa, fb);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    SoftmaxStats other;
    other.m = __shfl_xor_sync(0xffffffffu, st.m, off);
    other.l = __shfl_xor_sync(0xffffffffu, st.l, off);
    st.merge(other, fa, fb);
  }
  for (int s = lane; s < splits; s += 32) {
    const SoftmaxStats part = SoftmaxStats::from_lse(lse_part[static_cast<std::int64_t>(s) * rows + row]);
    weight[warp][s] = (part.m == -INFINITY || st.m == -INFINITY) ? 0.f : exp2f(part.m - st.m);
  }
  __syncwarp();
  float acc[kMaxHeadDimPerLane];
#pragma unroll
  for (int j = 0; j < kMaxHeadDimPerLane; ++j) acc[j] = 0.f;
  // Every split wrote its O rows (zeros for an empty split), so the loads need no guard and the
  // unrolled loop keeps 4 splits' loads (32 per lane) in flight; a `continue` on empty splits would forbid
  // that (a guarded load cannot be hoisted) and chain one latency per split again.
#pragma unroll 4
  for (int s = 0; s < splits; ++s) {
    const float w = weight[warp][s];
    const float* o = o_part + (static_cast<std::int64_t>(s) * rows + row) * p.head_dim;
#pragma unroll
    for (int j = 0; j < kMaxHeadDimPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < p.head_dim) acc[j] += w * o[d];
    }
  }
  const float inv = st.inv_sum();
  T* out = static_cast<T*>(p.o) + b * p.o_batch_stride + t * p.o_row_stride + h * p.o_head_stride;
#pragma unroll
  for (int j = 0; j < kMaxHeadDimPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d < p.head_dim) out[d] = ElementTraits<T>::from_float(acc[j] * inv);
  }
  if (p.lse != nullptr && lane == 0) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + t * p.lse_row_stride] = st.lse();
}

}  // namespace flashattn::detail::decode
