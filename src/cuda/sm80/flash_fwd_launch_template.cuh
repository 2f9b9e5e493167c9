// Host side of the sm80 forward: resolves the kernel arguments once and launches the
// kernel of one (head dim, dtype) instantiation. Included by the flash_fwd_hdim*.cu files.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/tma_tensor_map.cuh"
#include "cuda/sm80/flash_fwd_kernel.cuh"

namespace flashattn::detail::sm80 {

inline FwdKernelArgs make_fwd_args(const AttentionParams& p, int block_m) {
  FwdKernelArgs a;
  a.p = p;
  a.scheduler.num_m_blocks = (p.seqlen_q + block_m - 1) / block_m;
  a.scheduler.heads = p.heads_q;
  a.scheduler.block_offset = 0;
  a.dropout = p.dropout_p > 0.f;
  a.rng = make_dropout_rng(p.seed, p.offset, p.dropout_p);
  a.o_extra = a.dropout ? 1.f / (1.f - p.dropout_p) : 1.f;
  // The raw-score fast path needs a positive scale: only then is max(s) the max logit.
  a.hooks = p.softcap > 0.f || p.alibi_slopes != nullptr || !(p.scale > 0.f);
  a.exp_scale = a.hooks ? kLog2e : p.scale_log2;
  return a;
}

// Shared memory of the TMA kernel: 1024 bytes to align the tiles, 16 more for the K / V
// coordinates and the head behind the mbarriers.
template <typename Traits>
constexpr int kFwdTmaSmemBytes = Traits::kSmemBytes + 1024 + 16;

// Fills tm with the Q / K / V tensor maps of the sm_90 TMA kernel (see FwdTma) and returns true
// when this call can take it: a compute capability 9.0 device, padded batches (not varlen),
// positive row / head strides (16-byte multiples: sm80_supports), and the kernel's shared memory.
template <typename Traits>
bool fwd_tma_maps(const AttentionParams& p, FwdTma& tm) {
  using Elem = typename Traits::Elem;
  if (p.is_varlen() ||
      !tma_device_fits(p.device.index, kFwdTmaSmemBytes<Traits>,
                       reinterpret_cast<const void*>(&flash_fwd_kernel<Traits, true, true>)))
    return false;
  return encode_bshd_tensor_map<Elem>(&tm.q, p.q, p.head_dim, p.seqlen_q, p.heads_q, p.batch, Traits::kBlockM,
                                      p.q_row_stride, p.q_head_stride, p.q_batch_stride) &&
         encode_bshd_tensor_map<Elem>(&tm.k, p.k, p.head_dim, p.seqlen_k, p.heads_kv, p.batch, Traits::kBlockN,
                                      p.k_row_stride, p.k_head_stride, p.k_batch_stride) &&
         encode_bshd_tensor_map<Elem>(&tm.v, p.v, p.head_dim, p.seqlen_k, p.heads_kv, p.batch, Traits::kBlockN,
                                      p.v_row_stride, p.v_head_stride, p.v_batch_stride);
}

// Launches the kernel of one tile configuration (the tuning bench tries others). kPlain
// only for fwd_is_plain calls: that kernel ignores the hooks and dropout of `args`. kTma:
// the TMA kernel with the maps of `tm` (fwd_tma_maps returned true).
template <typename Traits, bool kPlain = false, bool kTma = false>
void run_flash_fwd_traits(const AttentionParams& p, const FwdTma& tm = FwdTma{}) {
  static_assert(!kTma || kPlain);
  FwdKernelArgs args = make_fwd_args(p, Traits::kBlockM);
  const std::int64_t total = static_cast<std::int64_t>(args.scheduler.num_m_blocks) * p.batch * p.heads_q;
  if (total == 0) return;
  auto* kernel = &flash_fwd_kernel<Traits, kPlain, kTma>;
  constexpr int kSmem = kTma ? kFwdTmaSmemBytes<Traits> : Traits::kSmemBytes;
  if (kSmem > 48 * 1024)
    FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const auto stream = static_cast<cudaStream_t>(p.stream);
  constexpr std::int64_t kMaxGrid = 0x7FFFFFFF;
  for (std::int64_t done = 0; done < total; done += kMaxGrid) {
    args.scheduler.block_offset = done;
    const auto blocks = static_cast<unsigned>(std::min(kMaxGrid, total - done));
    kernel<<<blocks, Traits::kThreads, kSmem, stream>>>(args, tm);
    FLASHATTN_CUDA_CHECK(cudaGetLastError());
  }
}

// The general kernel: every option as a runtime flag.
template <int kHeadDim, typename Elem>
void run_flash_fwd(const AttentionParams& p) {
  run_flash_fwd_traits<typename FwdConfig<kHeadDim, Elem>::Traits>(p);
}

// The plain kernel (fwd_is_plain calls only), for the head dims that have FwdConfig::Plain;
// its own translation units (flash_fwd_plain_hdim*.cu) keep the build parallel.
template <int kHeadDim, typename Elem>
void run_flash_fwd_plain(const AttentionParams& p) {
  run_flash_fwd_traits<typename FwdConfig<kHeadDim, Elem>::Plain, true>(p);
}

// The sm_90 TMA kernel (FwdConfig::Tma, fwd_is_plain calls): false, launching nothing, where
// fwd_tma_maps declines the call.
template <typename Traits>
bool run_flash_fwd_tma_traits(const AttentionParams& p) {
  FwdTma tm;
  if (!fwd_tma_maps<Traits>(p, tm)) return false;
  run_flash_fwd_traits<Traits, true, true>(p, tm);
  return true;
}
template <int kHeadDim, typename Elem>
bool run_flash_fwd_tma(const AttentionParams& p) {
  return run_flash_fwd_tma_traits<typename FwdConfig<kHeadDim, Elem>::Tma>(p);
}

}  // namespace flashattn::detail::sm80
