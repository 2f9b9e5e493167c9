// Backward epilogue for dQ: the fp32 accumulator (summed by red.add over kv tiles, in
// DqLayout order within each q tile) is rounded once to the input dtype and written with
// the caller's strides, times sc.dq_scale (the plain kernel's dS leaves out the softmax
// scale, a constant dlogit/ds, so it is applied here once). Every real row is written, so rows no key reaches get dQ = 0.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/common/cuda_check.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {
namespace {

template <typename T>
__device__ T from_f(float x);
template <>
__device__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// One thread per accumulator element: reads are coalesced, and DqLayout tells which
// (row, col) of the q tile the element holds.
template <typename T, int D>
__global__ void bwd_convert_dq_kernel(const AttentionParams p, const BwdScratch sc) {
  constexpr int kTile = BwdTile<D>::kBlockM * D;
  const std::int64_t idx = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= std::int64_t(p.heads_q) * sc.rows_alloc * D) return;
  const std::int64_t tile = idx / kTile;
  int row, col;
  DqLayout<D>::element(static_cast<int>(idx % kTile), row, col);
  if (col >= p.head_dim) return;
  const std::int64_t hr = tile * BwdTile<D>::kBlockM + row;  // h * rows_alloc + scratch row
  const int h = static_cast<int>(hr / sc.rows_alloc);
  const std::int64_t rg = hr % sc.rows_alloc;
  const int b = static_cast<int>(rg / sc.seq_pad), r = static_cast<int>(rg % sc.seq_pad);
  const SeqGeometry g = seq_geometry(p, b);
  if (r >= g.seqlen_q) return;
  const std::int64_t off = bshd_offset(p.cu_seqlens_q != nullptr, p.dq_batch_stride, p.dq_row_stride,
                                       p.dq_head_stride, b, g.q_row0, r, h);
  static_cast<T*>(p.dq)[off + col] = from_f<T>(sc.dq_accum[idx] * sc.dq_scale);
}

template <typename T>
void launch_convert(const AttentionParams& p, const BwdScratch& sc, unsigned blocks, cudaStream_t stream) {
  switch (sc.dq_ld) {
    case 64: bwd_convert_dq_kernel<T, 64><<<blocks, 256, 0, stream>>>(p, sc); break;
    case 128: bwd_convert_dq_kernel<T, 128><<<blocks, 256, 0, stream>>>(p, sc); break;
    default: bwd_convert_dq_kernel<T, 256><<<blocks, 256, 0, stream>>>(p, sc); break;
  }
}

}  // namespace

void run_bwd_convert_dq(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  const std::int64_t threads = std::int64_t(p.heads_q) * sc.rows_alloc * sc.dq_ld;
  if (threads == 0) return;
  const unsigned blocks = static_cast<unsigned>((threads + 255) / 256);
  if (p.dtype == DType::f16)
    launch_convert<__half>(p, sc, blocks, stream);
  else
    launch_convert<__nv_bfloat16>(p, sc, blocks, stream);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
