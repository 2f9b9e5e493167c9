// Host side of the sm80 forward: resolves the kernel arguments once and launches the
// kernel of one (head dim, dtype) instantiation. Included by the flash_fwd_hdim*.cu files.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/common/cuda_check.cuh"
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

// Launches the kernel of one tile configuration (the tuning bench tries others). kPlain
// only for fwd_is_plain calls: that kernel ignores the hooks and dropout of `args`.
template <typename Traits, bool kPlain = false>
void run_flash_fwd_traits(const AttentionParams& p) {
  FwdKernelArgs args = make_fwd_args(p, Traits::kBlockM);
  const std::int64_t total = static_cast<std::int64_t>(args.scheduler.num_m_blocks) * p.batch * p.heads_q;
  if (total == 0) return;
  auto* kernel = &flash_fwd_kernel<Traits, kPlain>;
  if (Traits::kSmemBytes > 48 * 1024)
    FLASHATTN_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes));
  const auto stream = static_cast<cudaStream_t>(p.stream);
  constexpr std::int64_t kMaxGrid = 0x7FFFFFFF;
  for (std::int64_t done = 0; done < total; done += kMaxGrid) {
    args.scheduler.block_offset = done;
    const auto blocks = static_cast<unsigned>(std::min(kMaxGrid, total - done));
    kernel<<<blocks, Traits::kThreads, Traits::kSmemBytes, stream>>>(args);
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

}  // namespace flashattn::detail::sm80
