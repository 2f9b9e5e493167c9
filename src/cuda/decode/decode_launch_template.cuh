// Definitions behind decode_instances.hpp, included by the per-head-dim .cu files.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/kernel_built_for_sm90.hpp"
#include "cuda/decode/decode_append_kernel.cuh"
#include "cuda/decode/decode_fwd_sm80_mma.cuh"
#include "cuda/decode/decode_instances.hpp"

namespace flashattn::detail::decode {

// The launch configuration of the attention kernel: grid (KV heads x row groups, batch, splits);
// with the cluster merge, the splits of each (row group, batch row) form one cluster; launched
// programmatically, it may start before the grid ahead of it in the stream ends (the kernel
// waits for that grid, an unsplit one after prefetching its first tile: decode_l2_prefetch.cuh).
template <int kD, SmemTier kTier>
struct AttentionLaunch {
  using Tile = DecodeTile<kD, kTier>;
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute attribute[2]{};
  AttentionLaunch(int heads_kv, int heads_q, int seqlen_q, int batch, int splits, bool cluster_merge,
                  bool programmatic, cudaStream_t stream) {
    const int rows = (heads_q / heads_kv) * seqlen_q;
    config.gridDim = dim3(static_cast<unsigned>(heads_kv * ((rows + Tile::kMaxRows - 1) / Tile::kMaxRows)),
                          static_cast<unsigned>(batch), static_cast<unsigned>(splits));
    config.blockDim = dim3(Tile::kThreads);
    config.dynamicSmemBytes = Tile::kSmem;
    config.stream = stream;
    config.attrs = attribute;
    if (cluster_merge) {
      cudaLaunchAttribute& a = attribute[config.numAttrs++];
      a.id = cudaLaunchAttributeClusterDimension;
      a.val.clusterDim.x = 1;
      a.val.clusterDim.y = 1;
      a.val.clusterDim.z = static_cast<unsigned>(splits);
    }
    if (programmatic) {
      cudaLaunchAttribute& a = attribute[config.numAttrs++];
      a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      a.val.programmaticStreamSerializationAllowed = 1;
    }
  }
};

// Opts the kernel in to its dynamic shared memory (> 48 KB) and to clusters of up to 16 CTAs
// (Hopper's non-portable size; 8 without it), once per device: the calls cost microseconds, as
// much as a short decode step.
template <typename T, int kD, SmemTier kTier, KernelLaunch kLaunch = KernelLaunch::stream_order>
void opt_in_once(int device) {
  static std::atomic<std::uint64_t> opted_in{0};
  const std::uint64_t bit = std::uint64_t(1) << (device & 63);
  if ((opted_in.load(std::memory_order_relaxed) & bit) != 0) return;
  auto kernel = decode_attention_kernel<T, kD, kTier, kLaunch>;
  FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(DecodeTile<kD, kTier>::kSmem)));
  int major = 0;
  FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major >= 9) FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  opted_in.fetch_or(bit);
}

template <typename T, int kD, SmemTier kTier>
void launch_attention(const DecodeParams& p, float* o_part, float* lse_part, unsigned* split_counters,
                      bool cluster_merge, bool programmatic, cudaStream_t stream) {
  // The programmatic kernels exist for the tiles a Hopper GPU runs (has_programmatic_launch);
  // the others launch in stream order whatever the caller asked.
  constexpr bool kHasPdl = has_programmatic_launch(kD, kTier);
  const bool pdl = kHasPdl && programmatic;
  AttentionLaunch<kD, kTier> launch(p.heads_kv, p.heads_q, p.seqlen_q, p.batch, p.num_splits, cluster_merge, pdl,
                                    stream);
  auto launch_as = [&](auto kind) {
    constexpr KernelLaunch kL = decltype(kind)::value;
    opt_in_once<T, kD, kTier, kL>(p.device.index);
    FLASHATTN_CUDA_CHECK(cudaLaunchKernelEx(&launch.config, decode_attention_kernel<T, kD, kTier, kL>, p, o_part,
                                            lse_part, p.num_splits, split_counters, cluster_merge));
  };
  using L = KernelLaunch;
  if constexpr (kHasPdl) {
    if (pdl && p.num_splits == 1) return launch_as(std::integral_constant<L, L::programmatic_l2_prefetch>{});
    if (pdl) return launch_as(std::integral_constant<L, L::programmatic>{});
  }
  launch_as(std::integral_constant<L, L::stream_order>{});
}

template <int kD, SmemTier kTier>
int decode_max_clusters(int device, int splits) {
  using T = __nv_bfloat16;
  opt_in_once<T, kD, kTier>(device);
  AttentionLaunch<kD, kTier> launch(1, 1, 1, 1, splits, true, false, nullptr);
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, decode_attention_kernel<T, kD, kTier, KernelLaunch::stream_order>, &launch.config) != cudaSuccess) {
    cudaGetLastError();  // no cluster launch of this size here: the caller merges through memory
    return 0;
  }
  return n;
}

template <int kD, SmemTier kTier>
bool decode_sm90_code(int device) {
  return kernel_built_for_sm90(reinterpret_cast<const void*>(&decode_attention_kernel<__nv_bfloat16, kD, kTier, KernelLaunch::stream_order>),
                               device);
}

template <int kD, SmemTier kTier>
int decode_occupancy() {
  using Tile = DecodeTile<kD, kTier>;
  auto kernel = decode_attention_kernel<__nv_bfloat16, kD, kTier, KernelLaunch::stream_order>;
  int device = 0;
  FLASHATTN_CUDA_CHECK(cudaGetDevice(&device));
  opt_in_once<__nv_bfloat16, kD, kTier>(device);
  int n = 0;
  FLASHATTN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, Tile::kThreads, Tile::kSmem));
  return n;
}

}  // namespace flashattn::detail::decode

// The explicit instantiations of one tile (both element types), for the per-tile .cu files.
#define FLASHATTN_DECODE_TILE_INSTANCES(kD, kTier)                                                                    \
  template void launch_attention<__half, kD, kTier>(const DecodeParams&, float*, float*, unsigned*, bool, bool,       \
                                                     cudaStream_t);                                                     \
  template void launch_attention<__nv_bfloat16, kD, kTier>(const DecodeParams&, float*, float*, unsigned*, bool, bool,  \
                                                            cudaStream_t);                                              \
  template int decode_occupancy<kD, kTier>();                                                                           \
  template int decode_max_clusters<kD, kTier>(int, int);                                                                \
  template bool decode_sm90_code<kD, kTier>(int);
