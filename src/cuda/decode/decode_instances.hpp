// Launchers of the decode kernels, explicitly instantiated per head dim and shared-memory tier
// (decode_fwd_hdim{64,128,256}.cu: the 227 KiB tiles; *_compact.cu: the smaller ones) so the
// build compiles them in parallel.
#pragma once

#include <cuda_runtime.h>

#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

// The opt-in shared memory per block a decode tile is sized for: Hopper's 227 KiB, A100's /
// Orin's 163 KiB, and the 99 KiB of the other Ampere and Ada GPUs (device_smem.hpp). The host
// takes the largest tile that fits the device (decode_launch.cu); each is a separate kernel.
enum class SmemTier { kib99, kib163, kib227 };

// How the attention kernel is launched, each a kernel of its own (decode_attention_kernel): in
// stream order; programmatically (sm_90 code, the tiles of has_programmatic_launch), waiting for
// the grid before it in the kernel; programmatically with its first tile prefetched to L2 before
// that wait, for unsplit calls (decode_l2_prefetch.cuh: split calls lost with it).
enum class KernelLaunch { stream_order, programmatic, programmatic_l2_prefetch };

// The tiles a Hopper GPU runs, the only ones built in the programmatic kinds as well: the 227 KiB
// tiles, and head dim 128's 99 KiB tile, which unsplit grids of several waves take there
// (prefer_smaller_tile, decode_heuristics.hpp).
constexpr bool has_programmatic_launch(int kD, SmemTier tier) {
  return tier == SmemTier::kib227 || (kD == 128 && tier == SmemTier::kib99);
}

// p.num_splits > 1 merges the splits in the kernel: with cluster_merge through the shared
// memory of a cluster of p.num_splits CTAs (sm_90 code only; o_part, lse_part and
// split_counters unused), otherwise o_part / lse_part hold the parts and split_counters (batch
// x CTAs per batch row) must be zero on entry. `programmatic` (sm_90 code only; tiles without
// has_programmatic_launch ignore it) launches it with programmatic stream serialization
// (KernelLaunch; not with cluster_merge).
template <typename T, int kD, SmemTier kTier>
void launch_attention(const DecodeParams& p, float* o_part, float* lse_part, unsigned* split_counters,
                      bool cluster_merge, bool programmatic, cudaStream_t stream);
template <typename T>
void launch_append(const DecodeParams& p, bool programmatic, cudaStream_t stream);
// Whether the append kernel on `device`, the current device, was compiled from sm_90 code.
template <typename T>
bool append_sm90_code(int device);
// Resident CTAs per SM of the attention kernel for head dim kD and tier kTier (same for fp16
// and bf16); the device must offer the tile's shared memory.
template <int kD, SmemTier kTier>
int decode_occupancy();
// How many clusters of `splits` CTAs of the tile can be resident at once on `device`, the
// current device (0: none, or the device has no clusters).
template <int kD, SmemTier kTier>
int decode_max_clusters(int device, int splits);
// Whether the tile's kernel on `device`, the current device, was compiled from sm_90 code, which
// alone has the cluster merge and the programmatic launch's wait (a compute_80 image run on
// Hopper has neither). Both answers are cached (kernel_built_for_sm90.hpp).
template <int kD, SmemTier kTier>
bool decode_sm90_code(int device);

}  // namespace flashattn::detail::decode
