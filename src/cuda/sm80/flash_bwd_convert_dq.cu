// Backward epilogue for dQ: the fp32 accumulator (summed by red.add over kv tiles, in
// DqLayout order within each q tile) is rounded once to the input dtype and written with
// the caller's strides, times sc.dq_scale (the plain kernel's dS leaves out the softmax
// scale, a constant dlogit/ds, so it is applied here once). Every real row is written, so rows no key reaches get dQ = 0.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/common/cuda_check.cuh"
#include "cuda/ptx/acquire_release.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"
#include "cuda/sm80/fragments_bwd_sm80.cuh"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {
namespace {

// One block per (q tile, q head, batch), the coordinates from the grid: coalesced 16-byte
// reads of the tile's accumulator, DqLayout::element (constant divisors only) places each
// value in a row-major shared tile, then 16-byte row stores. The earlier thread-per-element
// form divided 64-bit scratch row numbers twice per element and stored 2 bytes at a time.
// kCompact: the main kernel ran the compact tile (its q tile and DqLayout).
template <typename T, int D, bool kCompact>
__global__ void __launch_bounds__(256)
    bwd_convert_dq_kernel(const __grid_constant__ AttentionParams p, const __grid_constant__ BwdScratch sc,
                          bool vec) {
  constexpr int M = BwdTile<D, kCompact>::kBlockM, kTile = M * D;
  constexpr int kLd = D + 8;  // row pitch of the shared tile (16-byte aligned rows)
  static_assert(kTile % (4 * 256) == 0 && kTile % (8 * 256) == 0, "whole vectors per thread");
  __shared__ alignas(16) T tile[M * kLd];
  const int tid = threadIdx.x, h = blockIdx.y, r0 = blockIdx.x * M;
  const bool varlen = p.cu_seqlens_q != nullptr;
  for (int b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const SeqGeometry g = seq_geometry(p, b);
    if (r0 >= g.seqlen_q) continue;  // block-uniform
    if (sc.pair_done != nullptr) {
      // Launched while the main kernel runs (programmatic dependent launch): wait until every
      // block of this (batch, kv head) has added its dQ; the acquire and the barrier order this
      // block's reads after those adds.
      if (tid == 0) {
        const unsigned* done = sc.pair_done + b * p.heads_kv + h / (p.heads_q / p.heads_kv);
        while (ptx::ld_acquire_gpu_u32(done) < static_cast<unsigned>(sc.n_kv_tiles)) __nanosleep(500);
      }
      __syncthreads();
    }
    const float4* src = reinterpret_cast<const float4*>(
        sc.dq_accum + (std::int64_t(h) * sc.rows_alloc + scratch_row(sc.seq_pad, b, r0)) * D);
#pragma unroll
    for (int k = 0; k < kTile / 4 / 256; ++k) {
      const int q4 = k * 256 + tid;
      const float4 v = __ldcg(src + q4);  // L2: the adds landed there, after this SM's L1 last saw the tile
      const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        int row, col;
        DqLayout<D, kCompact>::element(q4 * 4 + r, row, col);
        tile[row * kLd + col] = Elem<T>::from_float(e[r] * sc.dq_scale);
      }
    }
    __syncthreads();
    const int rows = min(M, g.seqlen_q - r0);
    T* dst = static_cast<T*>(p.dq) +
             bshd_offset(varlen, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride, b, g.q_row0, r0, h);
#pragma unroll
    for (int k = 0; k < kTile / 8 / 256; ++k) {
      const int chunk = k * 256 + tid, row = chunk / (D / 8), c = chunk % (D / 8) * 8;
      if (row < rows && c < p.head_dim) {
        const T* s = tile + row * kLd + c;
        T* d = dst + row * p.dq_row_stride + c;
        if (vec && c + 8 <= p.head_dim) {
          *reinterpret_cast<uint4*>(d) = *reinterpret_cast<const uint4*>(s);
        } else {
          for (int e = 0; e < 8 && c + e < p.head_dim; ++e) d[e] = s[e];
        }
      }
    }
    __syncthreads();  // the next batch entry reuses the tile
  }
}

// With sc.pair_done set, a programmatic dependent launch: the blocks may start once every block of
// the main kernel has (flash_bwd_kernel.cuh), and wait per pair.
template <typename T>
void launch_convert(const AttentionParams& p, const BwdScratch& sc, bool vec, cudaStream_t stream) {
  const unsigned tiles = static_cast<unsigned>(sc.seq_pad / bwd_block_m(sc.dq_ld, sc.compact));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(tiles, static_cast<unsigned>(p.heads_q), static_cast<unsigned>(std::min(p.batch, 65535)));
  config.blockDim = dim3(256);
  config.stream = stream;
  cudaLaunchAttribute overlap[1]{};
  if (sc.pair_done != nullptr) {
    overlap[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    overlap[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = overlap;
    config.numAttrs = 1;
  }
  auto kernel = bwd_convert_dq_kernel<T, 256, true>;
  switch (sc.dq_ld * 2 + (sc.compact ? 1 : 0)) {
    case 128: kernel = bwd_convert_dq_kernel<T, 64, false>; break;
    case 129: kernel = bwd_convert_dq_kernel<T, 64, true>; break;
    case 256: kernel = bwd_convert_dq_kernel<T, 128, false>; break;
    case 257: kernel = bwd_convert_dq_kernel<T, 128, true>; break;
    case 512: kernel = bwd_convert_dq_kernel<T, 256, false>; break;
    default: break;
  }
  FLASHATTN_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, p, sc, vec));
}

bool aligned16(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }

}  // namespace

void run_bwd_convert_dq(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  if (std::int64_t(p.heads_q) * sc.rows_alloc == 0) return;
  const bool vec = aligned16(p.dq) && p.dq_row_stride % 8 == 0 && p.dq_head_stride % 8 == 0 &&
                   (p.cu_seqlens_q != nullptr || p.dq_batch_stride % 8 == 0);
  if (p.dtype == DType::f16)
    launch_convert<__half>(p, sc, vec, stream);
  else
    launch_convert<__nv_bfloat16>(p, sc, vec, stream);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
