// XOR-swizzled shared-memory tiles of 16-bit elements, addressed in 16-byte chunks.
//
// A tile of kRows x kCols is stored as kCols / W column blocks of W elements (W = 64 when
// kCols % 64 == 0, else 32), each block row-major. Within a block, chunk c of row r lives at
// chunk c ^ (r & 7) (W = 64: 128-byte rows) or c ^ ((r >> 1) & 3) (W = 32: 64-byte rows, two
// rows per 128 bytes). Either way the eight rows an ldmatrix phase reads at one logical chunk
// fall on eight distinct 16-byte bank groups, and cp.async writes of consecutive chunks stay
// conflict-free. Shared by the forward and the backward kernels.
#pragma once

#include <cstdint>

namespace flashattn::detail::sm80 {

template <int kRows_, int kCols_>
struct SwizzledTile {
  static constexpr int kRows = kRows_;
  static constexpr int kCols = kCols_;
  static constexpr int kBlockCols = (kCols % 64 == 0) ? 64 : 32;
  static constexpr int kChunksPerBlockRow = kBlockCols / 8;
  static constexpr int kChunksPerRow = kCols / 8;
  static constexpr int kElems = kRows * kCols;
  static_assert(kCols % 32 == 0, "tile width must be a multiple of 32 elements");

  // Element offset of logical 16-byte chunk `chunk` (0 .. kCols/8) of row `r`.
  __device__ __forceinline__ static int chunk_offset(int r, int chunk) {
    const int cb = chunk / kChunksPerBlockRow;
    const int cc = chunk % kChunksPerBlockRow;
    const int sw = kChunksPerBlockRow == 8 ? (cc ^ (r & 7)) : (cc ^ ((r >> 1) & 3));
    return (cb * kRows + r) * kBlockCols + sw * 8;
  }
  // Shared-memory byte address of chunk (r, c), with c in {0, 1}: the per-lane base of an
  // ldmatrix walk. The tile's base address must be 128-byte aligned.
  __device__ __forceinline__ static std::uint32_t lane_addr(std::uint32_t tile_base, int r, int c) {
    return tile_base + 2u * static_cast<std::uint32_t>(chunk_offset(r, c));
  }
  // Address of chunk (r + kDr, c + kDc) from lane_addr(r, c): kDr a multiple of 8 leaves the
  // row's swizzle pattern unchanged and kDc even only flips chunk bits above bit 0, so the
  // step is one XOR and one add of constants (no per-step address registers).
  template <int kDr, int kDc>
  __device__ __forceinline__ static std::uint32_t advance(std::uint32_t addr) {
    static_assert(kDr % 8 == 0 && kDc % 2 == 0);
    constexpr std::uint32_t kXor = static_cast<std::uint32_t>(kDc % kChunksPerBlockRow) << 4;
    constexpr std::uint32_t kAdd = static_cast<std::uint32_t>(((kDc / kChunksPerBlockRow) * kRows + kDr) * kBlockCols * 2);
    return (addr ^ kXor) + kAdd;
  }
  // Element offset of (r, c) for any column c.
  __device__ __forceinline__ static int offset(int r, int c) { return chunk_offset(r, c >> 3) + (c & 7); }
};

}  // namespace flashattn::detail::sm80
