// Merges the split-KV partial states (normalised O in fp32 and natural-log LSE per split)
// into the output with SoftmaxStats::merge, the merge every split path of the library uses.
// It runs inside the attention kernel, in the last CTA of each (batch, KV head, row group) to
// finish its split ("last block reduces"): a separate combine kernel cost a second launch, a
// grid-wide drain between the two, and a chain of L2 round trips in a kernel of a few CTAs
// (B=1 x 4k keys on an H200: 22.2 us per graph-replayed call against cuDNN's 11.0).
// Rejected (H200, graph-replayed calls, one run of three interleaved rounds, session 9): the
// arrival ticket taken as a CTA's stream ends (relaxed atomic) instead of after its part is
// written, the last to finish streaming merging once the other splits' per-split ready flags
// (release store / acquire loads) are set, so the atomic's round trip overlaps the epilogue:
// slower, B=1 x 4k 12.2-12.4 vs 11.6-11.7 us, x 8k 15.8-15.9 vs 15.3-15.4 (the merger still
// waits for the flags of splits that finished streaming just before it, whose release stores
// carry the same fence).
// Rejected (H200, graph-replayed calls, one run): each thread owning 4 columns of one row and
// issuing the LSE and O loads of 16 splits at once, merging as it goes, was slower than the
// warp per row (then in its four-round-trip form): B=1 x 4k keys 16.5 vs 15.6 us, x 8k with
// 32 splits 24.3 vs 21.1, x 64k 77.1 vs 74.1.
#pragma once

#include "core/online_softmax.hpp"
#include "cuda/decode/decode_types.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

// The most splits a call uses (num_splits is clamped to it); also the per-warp weight buffer.
constexpr int kMaxSplits = 128;

// One warp merges the `splits` parts of output row `row` (index (b * heads_q + h) * seqlen_q
// + t). `weight` is kMaxSplits floats of shared memory owned by the warp. The merge sits on the
// critical path of every split call, after the last CTA's arrival, so its L2 round trips are
// what it costs: the O rows of the first kPre splits are loaded before anything else and the
// LSEs right after them, all independent, so both arrive in about one round trip; the lanes
// merge the LSEs (kept in registers), the warp reduces them, and the weights 2^(m_s - m) meet
// the O rows already in registers. Splits past kPre stream in 8 at a time. (Before: LSEs,
// the LSEs again for the weights, then the O rows 8 splits at a time, four round trips at 16
// splits; H200, graph-replayed, batch 1 x 4k keys 14.0 -> 13.2 us, x 64k 68.9 -> 68.1.) The
// parts were written by other CTAs of this grid, so they are read through L2
// (ld.global.cg), never from a possibly stale L1 line.
// kD (64, 128, 256) bounds head_dim: kD / 32 values per lane, so the merge's registers stay
// under the attention loop's.
template <typename T, int kD>
__device__ __forceinline__ void combine_split_row(const DecodeParams& p, const float* o_part, const float* lse_part,
                                                  int splits, int row, float* weight, int lane) {
  constexpr int kPerLane = kD / 32;
  constexpr int kPre = kD <= 128 ? 16 : 8;
  constexpr int kLsePerLane = kMaxSplits / 32;
  const std::int64_t rows = static_cast<std::int64_t>(p.batch) * p.heads_q * p.seqlen_q;
  const int t = row % p.seqlen_q, h = (row / p.seqlen_q) % p.heads_q, b = row / (p.seqlen_q * p.heads_q);
  // Every split wrote its O row (zeros for an empty split): indices past the last split re-read
  // it, so these loads carry no guard and all issue before the first use.
  float pre[kPre][kPerLane];
#pragma unroll
  for (int s = 0; s < kPre; ++s) {
    const float* o = o_part + ((s < splits ? s : splits - 1) * rows + row) * p.head_dim;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane + 32 * j;
      pre[s][j] = d < p.head_dim ? __ldcg(o + d) : 0.f;
    }
  }
  float lse[kLsePerLane];
#pragma unroll
  for (int i = 0; i < kLsePerLane; ++i) {
    const int s = lane + 32 * i;
    lse[i] = s < splits ? __ldcg(lse_part + s * rows + row) : -INFINITY;
  }
  SoftmaxStats st;
  float fa, fb;
#pragma unroll
  for (int i = 0; i < kLsePerLane; ++i) st.merge(SoftmaxStats::from_lse(lse[i]), fa, fb);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    SoftmaxStats other;
    other.m = __shfl_xor_sync(0xffffffffu, st.m, off);
    other.l = __shfl_xor_sync(0xffffffffu, st.l, off);
    st.merge(other, fa, fb);
  }
#pragma unroll
  for (int i = 0; i < kLsePerLane; ++i) {
    const int s = lane + 32 * i;
    if (s >= splits) continue;
    const SoftmaxStats part = SoftmaxStats::from_lse(lse[i]);
    weight[s] = (part.m == -INFINITY || st.m == -INFINITY) ? 0.f : exp2f(part.m - st.m);
  }
  __syncwarp();
  float acc[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) acc[j] = 0.f;
#pragma unroll
  for (int s = 0; s < kPre; ++s) {
    if (s >= splits) break;
    const float w = weight[s];
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) acc[j] += w * pre[s][j];
  }
#pragma unroll 8
  for (int s = kPre; s < splits; ++s) {
    const float w = weight[s];
    const float* o = o_part + (s * rows + row) * p.head_dim;
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
