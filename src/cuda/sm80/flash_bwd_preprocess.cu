// Backward preprocess: one warp per (q head, row) computes Drow = rowsum(dO * O) in fp32
// and stores LSE in base 2, with +inf for rows that saw no key so that the main kernel's
// exp2(logit2 - lse2) gives P = 0 there without a branch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "core/online_softmax.hpp"
#include "cuda/common/cuda_check.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {
namespace {

template <typename T>
__device__ float to_f(T x);
template <>
__device__ float to_f<__half>(__half x) { return __half2float(x); }
template <>
__device__ float to_f<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

// Locates scratch row `rg` (b * seq_pad + row) in the user tensors; false for padding rows.
struct RowRef {
  int b;
  std::int64_t row0;
  int row;
};
__device__ inline bool locate_row(const AttentionParams& p, int seq_pad, std::int64_t rg, RowRef& r) {
  const int b = static_cast<int>(rg / seq_pad), row = static_cast<int>(rg % seq_pad);
  const SeqGeometry g = seq_geometry(p, b);
  if (row >= g.seqlen_q) return false;
  r = {b, g.q_row0, row};
  return true;
}

template <typename T>
__global__ void bwd_preprocess_kernel(const AttentionParams p, const BwdScratch sc, bool vec) {
  const std::int64_t w = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= std::int64_t(p.heads_q) * sc.rows_alloc) return;
  const int h = static_cast<int>(w / sc.rows_alloc);
  const std::int64_t rg = w % sc.rows_alloc;
  RowRef r;
  if (!locate_row(p, sc.seq_pad, rg, r)) return;
  const bool varlen = p.cu_seqlens_q != nullptr;
  const T* o = static_cast<const T*>(p.o) +
               bshd_offset(varlen, p.o_batch_stride, p.o_row_stride, p.o_head_stride, r.b, r.row0, r.row, h);
  const T* d = static_cast<const T*>(p.dout) +
               bshd_offset(varlen, p.do_batch_stride, p.do_row_stride, p.do_head_stride, r.b, r.row0, r.row, h);
  float acc = 0.f;
  for (int c = lane * 8; c < p.head_dim; c += 256) {
    if (vec) {
      const uint4 ov = *reinterpret_cast<const uint4*>(o + c);
      const uint4 dv = *reinterpret_cast<const uint4*>(d + c);
      const T* oe = reinterpret_cast<const T*>(&ov);
      const T* de = reinterpret_cast<const T*>(&dv);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc += to_f(oe[e]) * to_f(de[e]);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) acc += to_f(o[c + e]) * to_f(d[c + e]);
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    sc.drow[w] = acc;
    const float lse = p.lse[(p.cu_seqlens_q != nullptr ? 0 : r.b * p.lse_batch_stride) + h * p.lse_head_stride + (r.row0 + r.row) * p.lse_row_stride];
    sc.lse2[w] = lse == -INFINITY ? INFINITY : lse * kLog2e;
  }
}

bool aligned16(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }

}  // namespace

void run_bwd_preprocess(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  const std::int64_t warps = std::int64_t(p.heads_q) * sc.rows_alloc;
  if (warps == 0) return;
  const bool vec = aligned16(p.o) && aligned16(p.dout) && p.o_row_stride % 8 == 0 && p.o_head_stride % 8 == 0 &&
                   p.do_row_stride % 8 == 0 && p.do_head_stride % 8 == 0 &&
                   (p.cu_seqlens_q != nullptr || (p.o_batch_stride % 8 == 0 && p.do_batch_stride % 8 == 0));
  const unsigned blocks = static_cast<unsigned>((warps + 7) / 8);
  if (p.dtype == DType::f16)
    bwd_preprocess_kernel<__half><<<blocks, 256, 0, stream>>>(p, sc, vec);
  else
    bwd_preprocess_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(p, sc, vec);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
