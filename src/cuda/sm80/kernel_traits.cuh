// Tile shapes of the sm80 forward kernel and the shared-memory budget they imply.
//
// One CTA owns a kBlockM-row Q tile and walks the K/V tiles of kBlockN keys. Each warp owns
// kBlockM / kNWarps rows (one or two m16 slices): two slices per warp reuse each K/V
// fragment read from shared memory twice, which halves the shared-memory traffic per
// tensor-core instruction (the FlashAttention-2 choice for d <= 128).
//
// Two kernels per head dim 64 / 128: the general one (every option a runtime flag) and the
// plain one (flash_fwd_kernel<Traits, true>: no softcap, ALiBi, dropout, and a positive
// scale; masking stays a runtime branch on partial tiles), which calls without those
// options get. Compiling the options out alone gains nothing measurable (same tile, d 128:
// plain 290-337 vs general 293-337); it is the larger tile that the freed registers allow
// that pays, as in FlashAttention-2. Other head dims have the general kernel only.
//
// Shared memory = (kBlockM + 2 kBlockN) * kHeadDim * 2 bytes (Q + one K + one V tile),
// plus 16 bytes where the plain kernel parks the K / V base pointers:
//   d  32: 128 x  64, 4 warps: 16 KiB        d  96: 128 x 64, 4 warps: 48 KiB
//   d  64: 128 x  64, 4 warps: 32 KiB        d 128: 128 x 32, 4 warps: 48 KiB
//   plain: 128 x 128, 4 warps: 48 KiB        plain: 128 x 64, 4 warps: 64 KiB
//   d 192:  64 x  64, 4 warps: 72 KiB        d 256:  64 x 64, 4 warps: 96 KiB
// K and V are single-buffered but overlapped: V(n) loads during S = Q K(n)^T and K(n-1)
// during the softmax and O += P V(n) (FlashAttention-2's schedule).
// Registers: a warp's m16 slices hold O (kHeadDim / 2 fp32 per slice) and S (kBlockN / 2)
// per thread; d <= 64 also keeps Q's fragments (kHeadDim / 4 per slice) in the general
// kernel. ptxas (CUDA 13.0, sm_80 and sm_90a): the general kernels use 233-255 registers and
// spill nothing; they spilled at 128 x 128 for d <= 64, at 128 x 64 x 4 warps for d 128
// (24-32 bytes) and with Q in registers at d 96 / 128 x 32. The plain kernels use 255 and
// spill nothing, except d 128 on sm_90a: 8 bytes stored before the mainloop and reloaded
// after it (none inside). Before the K / V bases moved to shared memory they spilled 4 bytes
// with a reload in every iteration; attempts that made it worse (24-48 bytes, some in the
// loop) and were dropped: the rescale of O before the exponentials (FlashAttention-2's
// order), the full-tile key range resolved once before the loop, the epilogue's O / LSE
// offsets in shared memory, opaque thread indices for the cp.async addresses.
// Measured on an H200 (bf16, 16k tokens, hidden 2048, seqlen 1k / 2k / 4k / 8k, TFLOP/s;
// torch 2.11 SDPA FlashAttention-2 beside it, same run):
//   d  64 non-causal: plain 128 x 128 x 4, Q in smem 296 315 325 334 | plain 128 x 64 x 4,
//          Q in regs 272 295 308 318 | Q in smem 271 289 301 308 | general 128 x 64 x 4,
//          Q in regs 269 289 301 311 | FA2 280 294 301 305
//   d  64 causal: plain 128 x 128 229 271 298 315 | general 210 248 274 292 | FA2 199 253 278 290
//   d 128 non-causal: plain 128 x 64 x 4 344 367 382 388 | plain 128 x 32 x 4 290 312 325 337
//          | general 128 x 32 x 4 293 315 325 337 | FA2 308 342 352 344
//   d 128 causal: plain 128 x 64 255 298 326 346 | general 128 x 32 223 259 282 301
//          | FA2 212 275 301 317
// Earlier (general kernel only, non-causal, 1k-8k):
//   d  64: 128 x 64 x 4, Q in regs 267-311 | Q in smem 257-293 | 64 x 64 x 4 239-268
//          | 128 x 128 x 8 204-230
//   d 128: 128 x 32 x 4 292-341 | 64 x 64 x 4, Q in regs 269-303 | 64 x 64 x 4 257-286
//          | 128 x 64 x 8 233-258
//   d 192:  64 x 64 x 4 284-318 | 128 x 64 x 8 253-281
//   d 256:  64 x 64 x 4 306-340 | 128 x 64 x 8 272-300 | 128 x 32 x 8 233-257
// Plain kernels at d 192 / 256 were tried and dropped: they beat nothing (H200, bf16, seqlen
// 512-16k, `sm80_fwd_tune tune-big`, same run; general 64 x 64 x 4 first):
//   d 256 non-causal: general 273-336 | plain 64 x 64 x 4 270-331 | 128 x 64 x 8 248-307
//          | 64 x 32 x 4 231-289 | 64 x 128 x 4 206-260 | FA2 240-322
//   d 256 causal: general 201-335 | plain 64 x 64 x 4 200-331 | FA2 197-293
//   d 192 non-causal: general 254-316 | plain 64 x 64 x 4 253-317 | 128 x 64 x 8 231-290
//          | 64 x 128 x 4 203-265 | FA2 255-324
// A single m16 slice per warp is all d 192 / 256 can hold (O alone is kHeadDim / 2
// registers), so the freed registers buy no larger warp tile there; ptxas: plain 64 x 64 x 4
// 249 (d 256) / 217-221 (d 192) registers, no spills; 64 x 128 x 4 at d 256 spills 4 bytes
// on sm_90a.
#pragma once

#include "core/attention_params.hpp"
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
  static constexpr int kSmemBytes = (kSmemQElems + 2 * kSmemKVElems) * 2 + 2 * 8;  // + K / V base pointers
};

// The instantiated head dims; every other multiple of 8 runs on the next one up, its
// extra columns zero-filled by cp.async (never by copying the user's tensors). `Traits` is
// the general kernel's tile; `Plain` (d 64 / 128 only) the tile of the kernel compiled
// without hooks and dropout (flash_fwd_kernel<Traits, true>).
template <int kHeadDim, typename Elem>
struct FwdConfig;
template <typename E> struct FwdConfig<32, E> { using Traits = FwdKernelTraits<32, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<64, E> {
  using Traits = FwdKernelTraits<64, 128, 64, 4, E>;
  using Plain = FwdKernelTraits<64, 128, 128, 4, E, 1, 0>;
};
template <typename E> struct FwdConfig<96, E> { using Traits = FwdKernelTraits<96, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<128, E> {
  using Traits = FwdKernelTraits<128, 128, 32, 4, E>;
  using Plain = FwdKernelTraits<128, 128, 64, 4, E>;
};
template <typename E> struct FwdConfig<192, E> { using Traits = FwdKernelTraits<192, 64, 64, 4, E>; };
template <typename E> struct FwdConfig<256, E> { using Traits = FwdKernelTraits<256, 64, 64, 4, E>; };

// Calls the plain kernel serves: no logits hook (softcap, ALiBi, non-positive scale) and no
// dropout. Causal / window / sequence-end masking stays: it only runs on partial tiles.
inline bool fwd_is_plain(const AttentionParams& p) {
  return !(p.softcap > 0.f) && p.alibi_slopes == nullptr && p.scale > 0.f && !(p.dropout_p > 0.f);
}

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
