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
//
// Round 9 (sm_90 only; H200, bf16, 16k tokens, hidden 2048; two calls, each: ours interleaved
// cur / new twice, torch 2.11 SDPA FLASH_ATTENTION (FA2) in the same call).
// Kept:
//   + sm_90, plain calls (fwd_is_plain), padded batches: Q, K and V by TMA (flash_fwd_kernel.cuh
//     FwdTma, FwdConfig::Tma): thread 0 issues one (64 x rows) tensor box per 64-column block, the
//     TMA's 128-byte swizzle = SwizzledTile's 64-column layout (tiles 1024-byte aligned: +1024
//     bytes of shared memory, +16 for the parked coordinates), rows past the sequence end and
//     columns past the head dim zero-filled by the maps (dims head_dim, seqlen, heads, batch).
//     Two mbarriers (K's carries Q), each completing once per key block, on phase parity n ^ flip
//     (flip = (first block) & 1, parked in shared memory: no phase register; an empty arrival
//     that made the parity n & 1 left a phase nobody waited on, which synccheck reports). V(n-1)
//     goes out right after P V(n) (the cp.async form issues it once K(n-1) has landed), V(last)
//     with Q and K(last) before the loop. What it removes: kHeadDim / 4 predicated cp.async per
//     thread per K / V tile with their 64-bit address maths (d 256: 32 a step), and the K / V base
//     pointers. Tiles unchanged (d 64 / 128: Plain, d 192 / 256: the general tile compiled plain).
//     A separate instantiation per head dim (flash_fwd_tma_hdim*.cu; the sm_80 code is an empty
//     stub), chosen at run time by run_flash_fwd_tma (compute capability 9.0, not varlen, positive
//     row / head strides, cuTensorMapEncodeTiled found); everything else runs the cp.async kernels
//     as before. ptxas: 255 / 255 / 211 / 244 registers (d 64 / 128 / 192 / 256), no spills.
//   Call 2 (TFLOP/s, best of 4 cur / best of 4 new / best of 2 FA2 at 1k 2k 4k 8k 16k; new / FA2):
//   d64  non-causal 299/334/283 318/357/296 323/366/304 332/365/305 332/364/305  1.183 1.205 1.207 1.194 1.193
//   d64  causal     228/250/190 270/300/256 296/331/280 311/350/293 316/345/296  1.317 1.173 1.185 1.195 1.165
//   d128 non-causal 339/366/313 345/380/343 366/394/354 371/394/339 377/397/340  1.170 1.108 1.114 1.161 1.168
//   d128 causal     253/270/204 295/320/280 324/354/305 338/369/319 351/372/313  1.323 1.142 1.161 1.156 1.189
//   d192 non-causal 281/290/252 297/305/306 306/312/318 310/320/320 310/323/322  1.151 0.997 0.980 0.997 1.005
//   d192 causal     224/243/192 256/273/252 277/294/273 288/297/287 309/319/294  1.263 1.083 1.075 1.035 1.084
//   d256 non-causal 298/299/281 315/312/315 324/323/324 322/327/321 328/333/315  1.064 0.989 0.997 1.018 1.058
//   d256 causal     232/243/214 267/278/267 287/292/282 304/310/290 326/331/288  1.134 1.042 1.034 1.068 1.150
//   new / cur, medians of 4 (calls 1 and 2 alike; d 192 in call 2 only): d64 1.09-1.13, d128
//   1.05-1.10, d192 1.03-1.08, d256 non-causal 1.00-1.02 (best of 4: 0.99-1.02, noise), causal
//   1.00-1.06. FA2 moves up to 7% between its runs at 1k-2k (d256 causal 1k: 236 in call 1).
//   Still short: d256 non-causal 2k / 4k (0.99-1.00 of FA2) and d192 non-causal 2k-8k (0.98-1.00):
//   one m16 slice per warp there, so every K / V fragment read from shared memory feeds one mma
//   pair (about 144 ldmatrix.x4 per 256 mma a warp-step at d 256): shared-memory bandwidth, not the
//   load issue, bounds them (FA2 runs the same 64 x 64 x 4 tile on H100 / H200).
//   All 1341 GPU tests pass (685 forward), memcheck and racecheck clean on 17 forward tests (TMA
//   path at d 40 / 64 / 128 / 136 / 192 / 248 / 256, odd seqlens, GQA, strided layouts).
// Rejected in round 9:
//   - waiting for K(n) at the top of the step (the cp.async form's place) instead of at the end of
//     the last step: ptxas spilled the K lane address across the wait loop (d 128: 4 bytes, stored
//     and reloaded every step; 48 bytes with V(n-1) issued at the end and the wait at the top).
//   - V(n) issued at the top of step n, after K(n) (the cp.async form's schedule): 4-28 bytes of
//     spills at d 128, depending on the other choices.
//
// Round 10 (sm_90 TMA kernels, d 192 / 256): warps in bands of two (kBandWarps = 2, see
// FwdKernelTraits). The one-slice tile above was bound by shared-memory reads: each of the 4
// warps reads all of K and V per tile (d 256: 72 KiB a warp for 256 mma), 4x the tile. A band's
// warps hold 32 rows, half the keys of S and half the columns of O (same registers), and read
// 52 KiB a warp; the price is P through shared memory (8 KiB a tile, stmatrix) and two named
// barriers a tile (row maxima, P). ptxas: 249 (d 256) / 238 (d 192) registers, no spills; shared
// memory 105.5 KiB + 1040 (two CTAs an SM, as before). H100 80GB HBM3, bf16, 16k tokens, hidden
// 2048, `sm80_fwd_tune bands` twice and torch 2.11 SDPA FLASH_ATTENTION (FA2) in one call,
// TFLOP/s best of two, seqlen 512 / 1k / 2k / 4k / 8k / 16k, one-slice / band / FA2:
//   d 256 non-causal 258/278/246 306/324/288 312/343/314 323/358/320 330/361/319 333/362/314
//   d 256 causal     202/194/161 254/256/224 285/298/260 296/318/277 314/340/288 335/371/292
//   d 192 non-causal 259/254/239 297/300/277 315/317/301 317/331/314 333/350/314 328/336/321
//   d 192 causal     195/178/141 252/241/210 283/276/246 288/293/273 307/318/285 322/352/293
// band / one-slice: d 256 1.06-1.11 non-causal, 0.96-1.11 causal (the short causal rows have
// few key tiles a CTA for the exchanges to amortise); d 192 0.98-1.05 / 0.91-1.09. Band / FA2:
// 1.05-1.27 in every cell. The cp.async kernels gain little from bands (plain d 256 1.00-1.03,
// general d 192 0.99-1.02; the general d 256 band spills 52 bytes on sm_80) and keep one slice;
// 128 x 64 x 8 bands (one CTA an SM) ran 2-12% below 64 x 64 x 4.
#pragma once

#include "core/attention_params.hpp"
#include "cuda/sm80/smem_layout_swizzle.cuh"

namespace flashattn::detail::sm80 {

// kBandWarps_ = 2 (head dims 192 / 256): the warps work in pairs on 32-row bands instead of
// alone on 16 rows. The pair's warps split S = Q K^T by keys (each its half of the K tile) and
// O by columns (each the same half, 32 columns, of every 64-column block: fwd_o_column); they
// exchange the row maxima and P through shared memory (FwdBandExchange). Every K / V fragment read from shared memory then feeds two
// m16 slices instead of one, for the same registers (O: 2 slices x kHeadDim / 4), which cuts a
// warp's shared-memory reads per tile by about a quarter (d 256: 72 -> 52 KiB): the bound of
// the one-slice tile at these head dims.
template <int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, typename Elem_, int kMinBlocksPerSm_ = 1,
          int kQInRegs_ = -1, int kBandWarps_ = 1>
struct FwdKernelTraits {
  using Elem = Elem_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kNWarps = kNWarps_;
  static constexpr int kThreads = kNWarps * 32;
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;  // __launch_bounds__: caps registers
  static constexpr int kBandWarps = kBandWarps_;  // warps sharing a band of rows (1 or 2)
  static_assert(kBandWarps == 1 || kBandWarps == 2);
  // Small head dims keep the warp's Q fragments in registers for the whole mainloop
  // (kMSlices * kHeadDim / 4 registers): a fifth of the ldmatrix traffic per K/V tile.
  static constexpr bool kQInRegs = kQInRegs_ >= 0 ? kQInRegs_ != 0 : kHeadDim <= 64;
  static_assert(!(kQInRegs && kBandWarps > 1), "a band's warps read Q from shared memory");
  static_assert(kBandWarps == 1 || kHeadDim % 64 == 0, "a band's warps split 64-column blocks");
  static constexpr int kWarpRows = kBlockM * kBandWarps / kNWarps;
  static constexpr int kWarpKeys = kBlockN / kBandWarps;  // keys of S per warp
  static constexpr int kWarpCols = kHeadDim / kBandWarps; // columns of O per warp
  static constexpr int kMSlices = kWarpRows / 16;   // m16 slices per warp
  static constexpr int kNTilesS = kWarpKeys / 8;    // n8 accumulator tiles of S per slice
  static constexpr int kNTilesO = kWarpCols / 8;    // n8 accumulator tiles of O per slice
  static_assert(kWarpRows % 16 == 0 && kWarpCols % 16 == 0 && kWarpKeys % 16 == 0);

  using SmemQ = SwizzledTile<kBlockM, kHeadDim>;
  using SmemKV = SwizzledTile<kBlockN, kHeadDim>;
  using SmemP = SwizzledTile<kBlockM, kBlockN>;  // bands: P, for the other warp's columns
  static constexpr int kSmemQElems = SmemQ::kElems;
  static constexpr int kSmemKVElems = SmemKV::kElems;
  // Bands: P (kBlockM x kBlockN) and one float per (row, warp of the band) for the row maxima
  // and, at the end, the row sums; behind V, before the 16 bytes of K / V base pointers.
  static constexpr int kSmemPElems = kBandWarps > 1 ? SmemP::kElems : 0;
  static constexpr int kSmemRowFloats = kBandWarps > 1 ? kBlockM * kBandWarps : 0;
  static constexpr int kSmemBytes = (kSmemQElems + 2 * kSmemKVElems + kSmemPElems) * 2 + kSmemRowFloats * 4 + 2 * 8;
};

// Logical column of n8 tile `tile` of a warp's O accumulators (its first column): consecutive
// tiles for a warp that holds whole rows, and for the warp `part` of a band its 32-column half
// of each 64-column block, so that the lane bases of V and of the O staging keep the swizzle's
// chunk pattern (the steps within a half flip chunk bits the base leaves clear).
template <typename Traits>
__host__ __device__ constexpr int fwd_o_column(int tile, int part) {
  return Traits::kBandWarps == 1 ? tile * 8 : (tile / 4) * 64 + part * 32 + (tile % 4) * 8;
}

// The instantiated head dims; every other multiple of 8 runs on the next one up, its
// extra columns zero-filled by cp.async (never by copying the user's tensors). `Traits` is
// the general kernel's tile; `Plain` (d 64 / 128 only) the tile of the kernel compiled
// without hooks and dropout (flash_fwd_kernel<Traits, true>); `Tma` (head dims that are
// multiples of 64) the tile of the sm_90 TMA kernel (flash_fwd_kernel<Tma, true, true>).
template <int kHeadDim, typename Elem>
struct FwdConfig;
template <typename E> struct FwdConfig<32, E> { using Traits = FwdKernelTraits<32, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<64, E> {
  using Traits = FwdKernelTraits<64, 128, 64, 4, E>;
  using Plain = FwdKernelTraits<64, 128, 128, 4, E, 1, 0>;
  using Tma = Plain;
};
template <typename E> struct FwdConfig<96, E> { using Traits = FwdKernelTraits<96, 128, 64, 4, E>; };
template <typename E> struct FwdConfig<128, E> {
  using Traits = FwdKernelTraits<128, 128, 32, 4, E>;
  using Plain = FwdKernelTraits<128, 128, 64, 4, E>;
  using Tma = Plain;
};
template <typename E> struct FwdConfig<192, E> {
  using Traits = FwdKernelTraits<192, 64, 64, 4, E>;
  using Tma = FwdKernelTraits<192, 64, 64, 4, E, 1, 0, 2>;
};
template <typename E> struct FwdConfig<256, E> {
  using Traits = FwdKernelTraits<256, 64, 64, 4, E>;
  using Tma = FwdKernelTraits<256, 64, 64, 4, E, 1, 0, 2>;
};

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
