// Tile shapes of the sm80 forward kernel and the shared-memory budget they imply.
//
// One CTA owns a kBlockM-row Q tile and walks the K/V tiles of kBlockN keys. Each warp owns
// kBlockM / kNWarps rows (one or two m16 slices): two slices per warp reuse each K/V
// fragment read from shared memory twice, which halves the shared-memory traffic per
// tensor-core instruction (the FlashAttention-2 choice for d <= 128).
//
// Shared memory = (kBlockM + 2 kBlockN) * kHeadDim * 2 bytes (Q + one K + one V tile):
//   d  32: 128 x 64, 4 warps:  16 KiB       d 128: 128 x 32, 4 warps:  48 KiB
//   d  64: 128 x 64, 4 warps:  32 KiB       d 192:  64 x 64, 4 warps:  72 KiB
//   d  96: 128 x 64, 4 warps:  48 KiB       d 256:  64 x 64, 4 warps:  96 KiB
// K and V are single-buffered but overlapped: V(n) loads during S = Q K(n)^T and K(n-1)
// during the softmax and O += P V(n) (FlashAttention-2's schedule).
// Registers: a warp's m16 slices hold O (kHeadDim / 2 fp32 per slice) and S (kBlockN / 2)
// per thread; d <= 64 also keeps Q's fragments (kHeadDim / 4 per slice). ptxas (CUDA 13.0,
// sm_80 and sm_90a) spilled at 128 x 128 for d <= 64, at 128 x 64 x 4 warps for d 128 (24-32
// bytes) and with Q in registers at d 96 / 128 x 32; the configurations below use 230-255
// registers and spill nothing. Measured on an H200 (bf16, 16k tokens, hidden 2048, non-causal,
// seqlen 1k-8k, TFLOP/s):
//   d  64: 128 x 64 x 4, Q in regs 267-311 | Q in smem 257-293 | 64 x 64 x 4 239-268
//          | 128 x 128 x 8 204-230
//   d 128: 128 x 32 x 4 292-341 | 64 x 64 x 4, Q in regs 269-303 | 64 x 64 x 4 257-286
//          | 128 x 64 x 8 233-258
//   d 192:  64 x 64 x 4 284-318 | 128 x 64 x 8 253-281
//   d 256:  64 x 64 x 4 306-340 | 128 x 64 x 8 272-300 | 128 x 32 x 8 233-257
#pragma once

#include "cuda/sm80/smem_layout_swizzle.cuh"

namespace flashattn::detail::sm80 {

template <int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, typename Elem_, int kMinBlocksPerSm_ = 1,
          int kQInRegs_ = -1>
struct FwdKernelTraits {
  using Elem = Elem_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kNWarps = kNWarps_;
  static constexpr int kThreads = kNWarps * 32;
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;  // __launch_bounds__: caps registers
  // Small head dims keep the warp's Q fragments in registers for the whole mainloop
  // (kMSlices * kHeadDim / 4 registers): a fifth of the ldmatrix traffic per K/V tile.
  static constexpr bool kQInRegs = kQInRegs_ >= 0 ? kQInRegs_ != 0 : kHeadDim <= 64;
  static constexpr int kWarpRows = kBlockM / kNWarps;
  static constexpr int kMSlices = kWarpRows / 16;   // m16 slices per warp
  static constexpr int kNTilesS = kBlockN / 8;      // n8 accumulator tiles of S per slice
  static constexpr int kNTilesO = kHeadDim / 8;     // n8 accumulator tiles of O per slice
  static_assert(kWarpRows % 16 == 0 && kHeadDim % 16 == 0 && kBlockN % 16 == 0);

  using SmemQ = SwizzledTile<kBlockM, kHeadDim>;
  using SmemKV = SwizzledTile<kBlockN, kHeadDim>;
  static constexpr int kSmemQElems = SmemQ::kElems;
  static constexpr int kSmemKVElems = SmemKV::kElems;
  static constexpr int kSmemBytes = (kSmemQElems + 2 * kSmemKVElems) * 2;
};

// The instantiated head dims; every other multiple of 8 runs on the next one up, its
// extra columns zero-filled by cp.async (never by copying the user's tensors).
template <int kHeadDim, typename Elem>
struct FwdConfig;
template <typename E> struct FwdConfig<32, E> { using Traits = FwdKernelTraits<32, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<64, E> { using Traits = FwdKernelTraits<64, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<96, E> { using Traits = FwdKernelTraits<96, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<128, E> { using Traits = FwdKernelTraits<128, 128, 32, 4, E>; };
template <typename E> struct FwdConfig<192, E> { using Traits = FwdKernelTraits<192, 64, 64, 4, E>; };
template <typename E> struct FwdConfig<256, E> { using Traits = FwdKernelTraits<256, 64, 64, 4, E>; };

// Instantiated head dim that serves `head_dim` (a multiple of 8, <= 256).
inline int fwd_kernel_head_dim(int head_dim) {
  if (head_dim <= 32) return 32;
  if (head_dim <= 64) return 64;
  if (head_dim <= 96) return 96;
  if (head_dim <= 128) return 128;
  if (head_dim <= 192) return 192;
  return 256;
}

}  // namespace flashattn::detail::sm80
