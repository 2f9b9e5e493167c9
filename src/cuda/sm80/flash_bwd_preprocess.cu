// Backward preprocess, one block per (64 scratch rows, q head, batch): Drow = rowsum(dO * O)
// in fp32, LSE in base 2 with +inf for rows that saw no key (so that the main kernel's
// exp2(logit2 - lse2) gives P = 0 there without a branch), and the zero fill of those rows'
// dQ accumulator (one pass over the scratch instead of a separate memset).
//
// The block coordinates come from the grid (no 64-bit division per row) and D / 8 threads
// share a row, each with one 16-byte load of dO and of O: at D = 64 the earlier warp-per-row
// form left 24 of 32 lanes idle and divided twice per row; with the dQ conversion's fix the
// two took ~10% of the backward at 1k tokens per sequence (H200, see tile_size_bwd_sm80.hpp).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "core/online_softmax.hpp"
#include "cuda/common/cuda_check.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"
#include "cuda/sm80/fragments_bwd_sm80.cuh"

namespace flashattn::detail::sm80_bwd {
namespace {

constexpr int kPreRows = 64;  // seq_pad is a multiple of it (flash_bwd_launch.cu)
constexpr int kPreThreads = 256;

template <typename T, int D>
__global__ void __launch_bounds__(kPreThreads)
    bwd_preprocess_kernel(const __grid_constant__ AttentionParams p, const __grid_constant__ BwdScratch sc,
                          bool vec) {
  constexpr int kTpr = D / 8;  // threads per row
  constexpr int kRowsPerPass = kPreThreads / kTpr;
  const int tid = threadIdx.x;
  const int h = blockIdx.y;
  const int r_base = blockIdx.x * kPreRows;
  const bool varlen = p.cu_seqlens_q != nullptr;
  // The main kernel's per-pair arrival counters start at zero (the blocks of q tile 0 of the first
  // heads_kv q heads; here rather than in the row loop, where it cost 8-16 registers).
  if (sc.pair_done != nullptr && blockIdx.x == 0 && h < p.heads_kv && tid == 0)
    for (int b = blockIdx.z; b < p.batch; b += gridDim.z) sc.pair_done[b * p.heads_kv + h] = 0;
  for (int b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const std::int64_t srow0 = std::int64_t(h) * sc.rows_alloc + scratch_row(sc.seq_pad, b, r_base);
    const SeqGeometry g = seq_geometry(p, b);
    const int c = (tid % kTpr) * 8;
#pragma unroll
    for (int pass = 0; pass < kPreRows / kRowsPerPass; ++pass) {
      const int row = r_base + pass * kRowsPerPass + tid / kTpr;
      const bool live = row < g.seqlen_q;  // uniform per group of kTpr lanes
      float acc = 0.f;
      if (live && c < p.head_dim) {
        const T* o = static_cast<const T*>(p.o) +
                     bshd_offset(varlen, p.o_batch_stride, p.o_row_stride, p.o_head_stride, b, g.q_row0, row, h) + c;
        const T* d = static_cast<const T*>(p.dout) +
                     bshd_offset(varlen, p.do_batch_stride, p.do_row_stride, p.do_head_stride, b, g.q_row0, row, h) +
                     c;
        if (vec && c + 8 <= p.head_dim) {
          const uint4 ov = *reinterpret_cast<const uint4*>(o);
          const uint4 dv = *reinterpret_cast<const uint4*>(d);
          const T* oe = reinterpret_cast<const T*>(&ov);
          const T* de = reinterpret_cast<const T*>(&dv);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc += Elem<T>::to_float(oe[e]) * Elem<T>::to_float(de[e]);
        } else {
          for (int e = 0; e < 8 && c + e < p.head_dim; ++e) acc += Elem<T>::to_float(o[e]) * Elem<T>::to_float(d[e]);
        }
      }
#pragma unroll
      for (int off = kTpr / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
      if (tid % kTpr == 0) {
        // Rows past the sequence end as well (+inf, 0: P = dS = 0 there), so the main kernel may
        // read every row of a q tile without a row predicate (sm_90).
        const std::int64_t w = srow0 + (row - r_base);
        sc.drow[w] = acc;
        const float lse = live ? p.lse[(varlen ? 0 : b * p.lse_batch_stride) + h * p.lse_head_stride +
                                       (g.q_row0 + row) * p.lse_row_stride]
                               : -INFINITY;
        sc.lse2[w] = lse == -INFINITY ? INFINITY : lse * kLog2e;
      }
    }
    // Zero fill of the 64 rows' dQ accumulator (contiguous: dq_ld == D), after the loads: the
    // compiler may not move them above stores that could alias them (H100, 16k tokens, hidden
    // 2048: 95-97 us against 97-100 with the fill first, at every head dim).
    float4* dq = reinterpret_cast<float4*>(sc.dq_accum + srow0 * D);
#pragma unroll
    for (int k = 0; k < kPreRows * D / 4 / kPreThreads; ++k)
      dq[k * kPreThreads + tid] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
}

bool aligned16(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }

template <typename T>
void launch(const AttentionParams& p, const BwdScratch& sc, bool vec, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(sc.seq_pad / kPreRows), static_cast<unsigned>(p.heads_q),
                  static_cast<unsigned>(std::min(p.batch, 65535)));
  switch (sc.dq_ld) {
    case 64: bwd_preprocess_kernel<T, 64><<<grid, kPreThreads, 0, stream>>>(p, sc, vec); break;
    case 128: bwd_preprocess_kernel<T, 128><<<grid, kPreThreads, 0, stream>>>(p, sc, vec); break;
    default: bwd_preprocess_kernel<T, 256><<<grid, kPreThreads, 0, stream>>>(p, sc, vec); break;
  }
}

}  // namespace

void run_bwd_preprocess(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  if (std::int64_t(p.heads_q) * sc.rows_alloc == 0) return;
  const bool vec = aligned16(p.o) && aligned16(p.dout) && p.o_row_stride % 8 == 0 && p.o_head_stride % 8 == 0 &&
                   p.do_row_stride % 8 == 0 && p.do_head_stride % 8 == 0 &&
                   (p.cu_seqlens_q != nullptr || (p.o_batch_stride % 8 == 0 && p.do_batch_stride % 8 == 0));
  if (p.dtype == DType::f16)
    launch<__half>(p, sc, vec, stream);
  else
    launch<__nv_bfloat16>(p, sc, vec, stream);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
