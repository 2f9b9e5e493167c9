// Launches the main backward kernel for one (dtype, padded head dim); included by the
// per-head-dim instantiation files only, so each compiles one kernel pair.
#pragma once

#include "cuda/common/cuda_check.cuh"
#include "cuda/sm80/flash_bwd_kernel.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {

template <typename T, int D>
void run_bwd_main(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  using Tile = BwdTile<D>;
  const std::int64_t blocks = std::int64_t(sc.n_kv_tiles) * p.heads_kv * p.batch;
  if (blocks == 0) return;
  const std::size_t smem = Tile::smem_bytes(sc.stages);
  auto kernel = bwd_plain(p) ? flash_bwd_kernel<T, D, true> : flash_bwd_kernel<T, D, false>;
  FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<dim3(static_cast<unsigned>(blocks)), kThreads, smem, stream>>>(p, sc);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
