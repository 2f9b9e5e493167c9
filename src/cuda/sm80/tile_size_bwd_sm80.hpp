// Tile sizes and warp layouts of the sm80 backward, per padded head dim, and the
// shared-memory budget. The layouts follow FlashAttention-2's sm80 choices (its
// Flash_bwd_kernel_traits for these head dims), which balance ldmatrix traffic against
// the accumulator registers of each product.
//
// One block owns kBlockN keys of one kv head and walks the q tiles (kBlockM rows) of every
// q head of its GQA group. Shared memory holds K, V (kBlockN x D), `stages` copies of Q and
// dO (kBlockM x D) and the P / dS tiles (kBlockM x kBlockN) that the transposed products
// read back, so
//   bytes = 2 * (2*N*D + stages*2*M*D + 2*M*N) + 4 * stages*2*M   (LSE2, Drow rows in fp32)
// D = 64: 128 x 128 (FA2's choice); 162 KiB with two stages (fits A100's 163 KiB).
// D = 128: 64 x 128; 161 KiB with two stages.
// D = 256: 64 x 64; 144.5 KiB with one stage (A100), 209 KiB with two (H100 / H200).
//
// Measured (H200, bf16, 16k tokens, hidden 2048, 8k sequence, backward TFLOP/s, one run
// with torch FLASH_ATTENTION = FA2: d64 280, d128 298, d256 253; causal 257 / 281 / 242):
//   first version                                     d64 111 / 103   d128 154 / 144
//   + plain kernel (no dropout / softcap / ALiBi compiled in), rolled unaligned-load
//     path (7.5k -> 4.1k instructions at D = 128), red.global.add.v4.f32 on sm_90 (a
//     quarter of the dQ atomics), S / dP for two m-tiles per pass (K / V fragments
//     loaded once per step)                          d64 189             d128 235
//   + D = 64 with kBlockM = 128, four m-tiles per pass in its plain kernel
//                                                     d64 214 / 203   d128 232 / 216
//                                                     d256 197 / 195 (causal after /)
// Round 2 (same run: H200, bf16, the table of bench/gpu_sweep shapes, TFLOP/s at 1k / 8k,
// d128 non-causal; all head dims and causal moved alike):
//   round-1 state                                     d128 178 / 233   d64 159 / 214   d256 158 / 197
//   + plain kernel: full tiles skip the per-element mask compares (P / dS body compiled
//     twice, branch on the block-uniform `partial`), logit2 - LSE2 as one FMA, the
//     constant dlogit/ds = scale moved out of dS into the dK epilogue and the dQ
//     conversion, no integer division per step: ~230 fewer instructions per step and
//     warp at D = 128 (of ~1.7k)                     d128 184 / 243   d64 168 / 228   d256 163 / 204
//   + dK / dV and dQ products without the per-k-slice early exits for rows / keys past
//     the sequence end (zero-filled, so they add zeros): branch-free, ptxas issues the
//     next fragments' loads under the current mma    d128 185 / 250   d64 172 / 233   d256 165 / 208
//   FA2 (torch FLASH_ATTENTION) in the same run:      d128 227 / 300   d64 211 / 281   d256 200 / 253
// Ceiling check: the same kernel with the dQ red.add removed (wrong dQ, timing only) is
// only 4-8% faster (d128 193 / 265): the dQ atomics do not dominate.
// Rejected in round 2 (spill at 255 registers): dropping the head-dim early exit of the
// dK / dV product as well (d128: 8-72 bytes; d64 too), i.e. every further fragment that
// ptxas hoists needs a register the dK / dV accumulators hold.
// Rejected: one m-tile per pass at D = 128 plain (218: K / V fragments loaded twice);
// dQ product before dK / dV (229; no gain at D = 64); tile addresses without the opaque
// move (230, no gain) and, at D = 128, also the lane id (218); a fully unrolled head-dim
// loop of S / dP, and two m-tiles per pass in the feature kernel at D = 128 (both spill).
// Round 3 (one run, H200, bf16, the same shapes, backward TFLOP/s, best of two interleaved
// runs; FA2 = torch FLASH_ATTENTION in the same run):
//   round-2 state                         d64 173 / 238   d128 190 / 252   d256 167 / 208 (1k / 8k)
//   + stmatrix.x4 for the P / dS stores on sm_90 (a quarter of the store instructions):
//     d64 +0.1..1.0% (mean +0.6), d256 +0.5..1.7% (+0.9), d128 -0.6..+0.5% (-0.2); kept
//                                         d64 173 / 240   d128 189 / 251   d256 168 / 212
//   FA2 in the same run:                  d64 214 / 280   d128 224 / 299   d256 200 / 254
//   (causal: ours / FA2 0.82-0.89 at d64, 0.81-0.83 at d128, 0.86 at d256)
// Rejected in round 3: D = 64 as 64 x 64 tiles with two blocks per SM (launch bounds
// min 2, 125 registers, 66 KiB each; one m-tile per pass, since two spill 24 bytes at the
// 128-register cap and 64 x 128 tiles spill 188): 12-23% slower (d64 143 / 184 vs 173 /
// 238): the second block's overlap does not make up for half the K / V reuse per q-side
// load and the shorter mma runs between barriers. Checked, nothing to change: the grid
// already puts the kv tiles of one (batch, kv head) next to each other (Q / dO stay in
// L2), and a step has two block barriers (top: the Q / dO stage and the P / dS buffer
// reuse; middle: P / dS written), fewer than FA2's.
#pragma once

#include <cstddef>

namespace flashattn::detail::sm80_bwd {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;

template <int kHeadDim>
struct BwdTile {
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "instantiated head dims");
  static constexpr int kBlockM = kHeadDim == 64 ? 128 : 64;
  static constexpr int kBlockN = kHeadDim <= 128 ? 128 : 64;
  static constexpr int D = kHeadDim;

  // S / dP (M x N): kSWarpsM x kSWarpsN warps.
  static constexpr int kSWarpsM = kHeadDim <= 128 ? 2 : 4;
  static constexpr int kSWarpsN = kWarps / kSWarpsM;
  static constexpr int kSRows = kBlockM / kSWarpsM, kSMTiles = kSRows / 16;
  static constexpr int kSCols = kBlockN / kSWarpsN, kSNTiles = kSCols / 8;
  // dK / dV (N x D): kKvWarpsN x kKvWarpsD warps; accumulators live for the whole block.
  static constexpr int kKvWarpsN = kHeadDim <= 128 ? 4 : 2;
  static constexpr int kKvWarpsD = kWarps / kKvWarpsN;
  static constexpr int kKvRows = kBlockN / kKvWarpsN, kKvMTiles = kKvRows / 16;
  static constexpr int kKvCols = D / kKvWarpsD, kKvNTiles = kKvCols / 8;
  // dQ (M x D): kQWarpsM x kQWarpsD warps, in column chunks of at most 32 (16 fp32 per m-tile).
  static constexpr int kQWarpsM = kHeadDim == 64 ? 4 : 2;
  static constexpr int kQWarpsD = kWarps / kQWarpsM;
  static constexpr int kQRows = kBlockM / kQWarpsM, kQMTiles = kQRows / 16;
  static constexpr int kQCols = D / kQWarpsD;
  static constexpr int kQChunk = kQCols < 32 ? kQCols : 32, kQNTiles = kQChunk / 8;

  static_assert(kSNTiles % 2 == 0 && kKvNTiles % 2 == 0 && kQNTiles % 2 == 0, "B operands load n-tile pairs");

  static constexpr std::size_t smem_bytes(int stages) {
    return 2 * (2 * std::size_t(kBlockN) * D + std::size_t(stages) * 2 * kBlockM * D +
                2 * std::size_t(kBlockM) * kBlockN) +
           4 * std::size_t(stages) * 2 * kBlockM;  // LSE2 and Drow of each stage's rows (fp32)
  }
};

// Order of the dQ accumulator inside one q tile's kBlockM x D block. Lane l of warp w
// issues its kPerThread adds in kVec-wide vectors; the i-th value goes to
//   ((w * kPerThread / kVec + i / kVec) * 32 + l) * kVec + i % kVec,
// so every warp-wide red covers 32 * kVec consecutive floats (whole 128-byte lines)
// instead of 8 rows. kVec = 4 (red.global.add.v4.f32) on sm_90, where it exists: a quarter
// of the atomic instructions; 1 on sm_80. The main kernel and the convert kernel are
// compiled for the same architecture, so they always agree. i enumerates (chunk, m-tile,
// row half, n-tile, pair element) as the dQ loop of the mainloop issues them; a vector
// covers the pairs of n-tiles 2k and 2k+1.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
inline constexpr int kDqVec = 4;
#else
inline constexpr int kDqVec = 1;
#endif

template <int kHeadDim>
struct DqLayout {
  using Tile = BwdTile<kHeadDim>;
  static constexpr int kVec = kDqVec;
  static constexpr int kPerThread = Tile::kBlockM * kHeadDim / kThreads;
  static_assert(kPerThread % kVec == 0 && Tile::kQNTiles % 2 == 0, "vectors of two n-tile pairs");
  static constexpr int index(int chunk, int mt, int half, int n, int c) {
    return (((chunk * Tile::kQMTiles + mt) * 2 + half) * Tile::kQNTiles + n) * 2 + c;
  }
  // Offset of value i of lane `lane` in warp `warp`.
  static constexpr int position(int warp, int lane, int i) {
    return ((warp * (kPerThread / kVec) + i / kVec) * 32 + lane) * kVec + i % kVec;
  }
  // (row, col) within the tile of position pos.
  static constexpr void element(int pos, int& row, int& col) {
    const int r = pos % kVec, lane = (pos / kVec) & 31, k = pos / (32 * kVec);
    const int warp = k / (kPerThread / kVec), i = (k % (kPerThread / kVec)) * kVec + r;
    const int c = i & 1, n = (i >> 1) % Tile::kQNTiles, rest = (i >> 1) / Tile::kQNTiles;
    const int half = rest & 1, mt = (rest >> 1) % Tile::kQMTiles, chunk = (rest >> 1) / Tile::kQMTiles;
    const int q_m = warp % Tile::kQWarpsM, q_d = warp / Tile::kQWarpsM;
    row = q_m * Tile::kQRows + mt * 16 + half * 8 + (lane >> 2);
    col = q_d * Tile::kQCols + chunk * Tile::kQChunk + n * 8 + 2 * (lane & 3) + c;
  }
};

}  // namespace flashattn::detail::sm80_bwd
