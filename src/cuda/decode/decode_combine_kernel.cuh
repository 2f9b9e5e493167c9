// Merges the split-KV partial states (normalised O in fp32 and natural-log LSE per split)
// into the output with SoftmaxStats::merge, the merge every split path of the library uses.
// It runs inside the attention kernel, in the last CTA of each (batch, KV head, row group) to
// finish its split ("last block reduces"): a separate combine kernel cost a second launch, a
// grid-wide drain between the two, and a chain of L2 round trips in a kernel of a few CTAs
// (B=1 x 4k keys on an H200: 22.2 us per graph-replayed call against cuDNN's 11.0).
// Rejected (H200, graph-replayed calls, one run): each thread owning 4 columns of one row and
// issuing the LSE and O loads of 16 splits at once, merging as it goes, was slower than the
// warp per row below: B=1 x 4k keys 16.5 vs 15.6 us, x 8k with 32 splits 24.3 vs 21.1, x 64k
// 77.1 vs 74.1.
#pragma once

#include "core/online_softmax.hpp"
#include "cuda/decode/decode_types.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

// The most splits a call uses (num_splits is clamped to it); also the per-warp weight buffer.
constexpr int kMaxSplits = 128;

// One warp merges the `splits` parts of output row `row` (index (b * heads_q + h) * seqlen_q
// + t). `weight` is kMaxSplits floats of shared memory owned by the warp. Two passes so that no
// load waits on another: (1) the lanes merge the splits' LSEs (lanes then warp-reduced), (2)
// every split's weight 2^(m_s - m) sits in shared memory and the O rows stream in with
// independent loads. The parts were written by other CTAs of this grid, so they are read
// through L2 (ld.global.cg), never from a possibly stale L1 line.
// kD (64, 128, 256) bounds head_dim: kD / 32 values per lane, so the merge's registers stay
// under the attention loop's (one bound for every head dim doubled them at kD = 64, halving
// the CTAs per SM).
template <typename T, int kD>
__device__ __forceinline__ void combine_split_row(const DecodeParams& p, const float* o_part, const float* lse_part,
                                                  int splits, int row, float* weight, int lane) {
  const int rows = p.batch * p.heads_q * p.seqlen_q;
  const int t = row % p.seqlen_q, h = (row / p.seqlen_q) % p.heads_q, b = row / (p.seqlen_q * p.heads_q);
  SoftmaxStats st;
  float fa, fb;
  for (int s = lane; s < splits; s += 32) st.merge(SoftmaxStats::from_lse(__ldcg(lse_part + static_cast<std::int64_t>(s) * rows + row)), fa, fb);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    SoftmaxStats other;
    other.m = __shfl_xor_sync(0xffffffffu, st.m, off);
    other.l = __shfl_xor_sync(0xffffffffu, st.l, off);
    st.merge(other, fa, fb);
  }
  for (int s = lane; s < splits; s += 32) {
    const SoftmaxStats part = SoftmaxStats::from_lse(__ldcg(lse_part + static_cast<std::int64_t>(s) * rows + row));
    weight[s] = (part.m == -INFINITY || st.m == -INFINITY) ? 0.f : exp2f(part.m - st.m);
  }
  __syncwarp();
  constexpr int kPerLane = kD / 32;
  float acc[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) acc[j] = 0.f;
  // Every split wrote its O rows (zeros for an empty split), so the loads need no guard and the
  // unrolled loop keeps 8 splits' loads in flight; a `continue` on empty splits would forbid
  // that (a guarded load cannot be hoisted) and chain one latency per split again.
#pragma unroll 8
  for (int s = 0; s < splits; ++s) {
    const float w = weight[s];
    const float* o = o_part + (static_cast<std::int64_t>(s) * rows + row) * p.head_dim;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < p.head_dim) acc[j] += w * __ldcg(o + d);
    }
  }
  const float inv = st.inv_sum();
  T* out = static_cast<T*>(p.o) + b * p.o_batch_stride + t * p.o_row_stride + h * p.o_head_stride;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d < p.head_dim) out[d] = ElementTraits<T>::from_float(acc[j] * inv);
  }
  if (p.lse != nullptr && lane == 0) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + t * p.lse_row_stride] = st.lse();
  __syncwarp();  // `weight` is reused for the warp's next row
}

}  // namespace flashattn::detail::decode
