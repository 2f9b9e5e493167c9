// Split-KV merge through distributed shared memory (sm_90 thread-block clusters): the splits of
// one (batch, KV head, row group) run as one cluster, each CTA leaves its normalised part of O
// and its LSE in its own shared memory, and after one cluster barrier the CTAs merge the parts
// by reading their peers' shared memory. The alternative, the last CTA to arrive merging parts
// written to global memory (decode_combine_kernel.cuh), puts a chain of L2 round trips after
// the stream: the parts' stores, the fenced arrival, then the parts' loads (H200, batch 1 x 4k
// keys, 16 splits: the stream done at 6.0 us of an 11.2 us call; decode_heuristics.hpp).
#pragma once

#include "core/online_softmax.hpp"
#include "cuda/decode/decode_heuristics.hpp"
#include "cuda/decode/decode_types.cuh"
#include "cuda/ptx/barrier_cluster.cuh"
#include "cuda/ptx/ld_shared.cuh"
#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mapa.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

// Each CTA's part: row r of O at s_o + r * o_stride (fp32, normalised, head_dim columns), its
// natural-log LSE at s_lse[r]. Every CTA of the cluster calls this with the same rows; `rank` is
// the CTA's rank in the cluster (its split). The elements (row, 4 columns) are dealt out a warp
// at a time across the CTAs, so the merge's loads spread over the cluster's SMs.
template <typename T, int kThreads>
__device__ __forceinline__ void merge_cluster_parts(const DecodeParams& p, const float* s_o, int o_stride,
                                                    const float* s_lse, int rows, int splits, int rank, int b, int kvh,
                                                    int row0, int group) {
  ptx::barrier_cluster_arrive_release();  // this CTA's part is written
  ptx::barrier_cluster_wait_acquire();    // and so is every peer's
  const int quads = p.head_dim / 4;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::uint32_t o_base = ptx::smem_addr(s_o), lse_base = ptx::smem_addr(s_lse);
  for (int e = (warp * splits + rank) * 32 + lane; e < rows * quads; e += kThreads * splits) {
    const int r = e / quads, d = (e % quads) * 4;
    // Every load issues before the first use: one distributed-shared-memory round trip.
    float lse[kMaxClusterSplits];
    float4 part[kMaxClusterSplits];
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s) {
      if (s < splits) {
        lse[s] = ptx::ld_shared_cluster_f32(ptx::mapa_shared_cluster(lse_base + r * 4, s));
        part[s] = ptx::ld_shared_cluster_v4_f32(ptx::mapa_shared_cluster(o_base + (r * o_stride + d) * 4, s));
      }
    }
    SoftmaxStats st;
    float fa, fb;
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s)
      if (s < splits) st.merge(SoftmaxStats::from_lse(lse[s]), fa, fb);
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s) {
      if (s >= splits) continue;
      const SoftmaxStats one = SoftmaxStats::from_lse(lse[s]);
      const float w = (one.m == -INFINITY || st.m == -INFINITY) ? 0.f : exp2f(one.m - st.m);
      acc.x += w * part[s].x, acc.y += w * part[s].y, acc.z += w * part[s].z, acc.w += w * part[s].w;
    }
    const float inv = st.inv_sum();
    const int R = row0 + r, t = R / group, h = kvh * group + R % group;
    T* out = static_cast<T*>(p.o) + b * p.o_batch_stride + t * p.o_row_stride + h * p.o_head_stride + d;
    out[0] = ElementTraits<T>::from_float(acc.x * inv), out[1] = ElementTraits<T>::from_float(acc.y * inv);
    out[2] = ElementTraits<T>::from_float(acc.z * inv), out[3] = ElementTraits<T>::from_float(acc.w * inv);
    if (d == 0 && p.lse != nullptr) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + t * p.lse_row_stride] = st.lse();
  }
  // No CTA leaves (freeing its shared memory) while a peer may still read it.
  ptx::barrier_cluster_arrive_release();
  ptx::barrier_cluster_wait_acquire();
}

}  // namespace flashattn::detail::decode
