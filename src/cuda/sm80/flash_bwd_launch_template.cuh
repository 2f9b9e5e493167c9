// Launches the main backward kernel for one (dtype, padded head dim, tile kind); included by the
// per-head-dim instantiation files only, so each compiles one kernel pair (three at D = 64 with
// the standard tile: the plain kernel's TMA form too; the compact tiles have no TMA form).
#pragma once

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/tma_tensor_map.cuh"
#include "cuda/sm80/flash_bwd_kernel.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {

// Fills tm with Q / dO tensor maps for the sm_90 TMA q-side loads (see BwdTma) and returns true
// when this call can take them: a compute capability 9.0 device, padded batches (not varlen),
// 16-byte aligned rows, two stages and `smem` bytes of dynamic shared memory available.
template <typename T>
bool bwd_tma_maps(const AttentionParams& p, const BwdScratch& sc, std::size_t smem, BwdTma& tm) {
  tm.enabled = 0;
  if (p.is_varlen() || !sc.vec_in || sc.stages != 2) return false;
  // 128: the kernel's static shared memory
  if (!tma_device_fits(p.device.index, smem + 128, reinterpret_cast<const void*>(&flash_bwd_kernel<T, 64, true, true, false>)))
    return false;
  constexpr int kRows = BwdTile<64>::kBlockM;
  const bool ok = encode_bshd_tensor_map<T>(&tm.q, p.q, p.head_dim, p.seqlen_q, p.heads_q, p.batch, kRows,
                                            p.q_row_stride, p.q_head_stride, p.q_batch_stride) &&
                  encode_bshd_tensor_map<T>(&tm.dout, p.dout, p.head_dim, p.seqlen_q, p.heads_q, p.batch, kRows,
                                            p.do_row_stride, p.do_head_stride, p.do_batch_stride);
  tm.enabled = ok ? 1 : 0;
  return ok;
}

template <typename T, int D, bool kCompact>
void run_bwd_main(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  using Tile = BwdTile<D, kCompact>;
  const std::int64_t blocks = std::int64_t(sc.n_kv_tiles) * p.heads_kv * p.batch;
  if (blocks == 0) return;
  std::size_t smem = Tile::smem_bytes(sc.stages);
  BwdTma tm{};
  if constexpr (D == 64 && !kCompact) {
    if (bwd_plain(p) && bwd_tma_maps<T>(p, sc, smem + 1024, tm)) smem += 1024;  // room to align the tiles to 1024 bytes
  }
  // The TMA form is a separate plain kernel: with the cp.async issue compiled in beside it, the plain
  // D = 64 kernel spilled 4 bytes.
  constexpr bool kTmaForm = D == 64 && !kCompact;
  auto kernel = bwd_plain(p) ? (tm.enabled ? flash_bwd_kernel<T, D, true, kTmaForm, kCompact>
                                           : flash_bwd_kernel<T, D, true, false, kCompact>)
                             : flash_bwd_kernel<T, D, false, false, kCompact>;
  FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<dim3(static_cast<unsigned>(blocks)), kThreads, smem, stream>>>(p, sc, tm);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
