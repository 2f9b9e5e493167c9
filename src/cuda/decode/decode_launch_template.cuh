// Definitions behind decode_instances.hpp, included by the per-head-dim .cu files.
#pragma once

#include <atomic>
#include <cstdint>

#include "cuda/common/cuda_check.cuh"
#include "cuda/decode/decode_append_kernel.cuh"
#include "cuda/decode/decode_fwd_sm80_mma.cuh"
#include "cuda/decode/decode_instances.hpp"

namespace flashattn::detail::decode {

template <typename T, int kD, SmemTier kTier>
void launch_attention(const DecodeParams& p, float* o_part, float* lse_part, unsigned* split_counters,
                      cudaStream_t stream) {
  using Tile = DecodeTile<kD, kTier>;
  auto kernel = decode_attention_kernel<T, kD, kTier>;
  // Opt in to > 48 KB of dynamic shared memory, once per device (the call costs microseconds,
  // as much as a short decode step).
  static std::atomic<std::uint64_t> opted_in{0};
  const std::uint64_t bit = std::uint64_t(1) << (p.device.index & 63);
  if ((opted_in.load(std::memory_order_relaxed) & bit) == 0) {
    FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Tile::kSmem)));
    opted_in.fetch_or(bit);
  }
  const int rows = (p.heads_q / p.heads_kv) * p.seqlen_q;
  const dim3 grid(static_cast<unsigned>(p.heads_kv * ((rows + Tile::kMaxRows - 1) / Tile::kMaxRows)),
                  static_cast<unsigned>(p.batch), static_cast<unsigned>(p.num_splits));
  kernel<<<grid, Tile::kThreads, Tile::kSmem, stream>>>(p, o_part, lse_part, p.num_splits, split_counters);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

template <int kD, SmemTier kTier>
int decode_occupancy() {
  using Tile = DecodeTile<kD, kTier>;
  auto kernel = decode_attention_kernel<__nv_bfloat16, kD, kTier>;
  FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Tile::kSmem)));
  int n = 0;
  FLASHATTN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, Tile::kThreads, Tile::kSmem));
  return n;
}

}  // namespace flashattn::detail::decode
