// Global -> shared tile copies with cp.async, 16 bytes per thread per step. Rows past the
// sequence end and columns past the real head dim are zero-filled (src-size 0), so padded
// head dims and ragged tiles need no special case in the matrix products: zero Q/K columns
// add nothing to Q K^T, zero V rows and columns add nothing to P V.
#pragma once

#include <cstdint>

#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/ldmatrix.cuh"

namespace flashattn::detail::sm80 {

// Copies rows [0, rows_valid) x columns [0, cols_valid) of a row-major global tile (row
// stride in elements, last dim contiguous) into swizzled `Tile`; the rest is zero.
// `fallback` is an in-bounds address handed to cp.async for zero-filled chunks.
//
// Each thread keeps one chunk column within a swizzle block and walks rows kStep apart: one
// pointer add per step and constant shared-memory offsets, so no per-step address registers
// stay live across the mainloop (a flat index walk hoisted 6-8 64-bit addresses per tile at
// d = 96 / 192, where a row is not a power of two of chunks, and spilled).
template <typename Tile, int kThreads, typename Elem>
__device__ __forceinline__ void cp_async_tile(Elem* smem, const Elem* gmem, std::int64_t row_stride, int rows_valid,
                                              int cols_valid, const Elem* fallback, int tid) {
  constexpr int kCpb = Tile::kChunksPerBlockRow;
  constexpr int kStep = kThreads / kCpb;
  static_assert(kThreads % kCpb == 0 && kStep % 8 == 0 && Tile::kRows % kStep == 0);
  const int r0 = tid / kCpb, c = tid % kCpb;
  const Elem* src0 = gmem + r0 * row_stride + c * 8;
  const std::int64_t step = kStep * row_stride;
  const std::uint32_t dst0 = ptx::smem_addr(smem) + 2u * static_cast<std::uint32_t>(Tile::chunk_offset(r0, c));
#pragma unroll
  for (int cb = 0; cb < Tile::kCols / Tile::kBlockCols; ++cb) {
    const bool col_ok = cb * Tile::kBlockCols + c * 8 < cols_valid;
    const Elem* src = src0 + cb * Tile::kBlockCols;
#pragma unroll
    for (int it = 0; it < Tile::kRows / kStep; ++it) {
      const bool valid = col_ok && r0 + it * kStep < rows_valid;
      const std::uint32_t dst = dst0 + static_cast<std::uint32_t>((cb * Tile::kRows + it * kStep) * Tile::kBlockCols * 2);
      ptx::cp_async_cg_16(dst, valid ? src : fallback, valid);
      src += step;
    }
  }
}

}  // namespace flashattn::detail::sm80
