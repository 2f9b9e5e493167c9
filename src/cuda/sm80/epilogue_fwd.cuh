// Forward epilogue: normalises a warp's O accumulators, stages them through the warp's own
// rows (its columns of them, for a band's warp) of the Q tile in shared memory (only the warp,
// or its band, ever read those Q rows, and the band's last exchange follows its last read, so
// no CTA barrier is needed) and writes 16-byte coalesced rows to global memory; writes the LSE.
#pragma once

#include <cstdint>

#include "cuda/sm80/kernel_traits.cuh"
#include "cuda/sm80/mma_fragments_sm80.cuh"

namespace flashattn::detail::sm80 {

template <typename Traits>
__device__ __forceinline__ void store_o_and_lse(typename Traits::Elem* sQ,
                                                float (&o)[Traits::kMSlices][Traits::kNTilesO][4],
                                                const float (&o_factor)[Traits::kMSlices][2],
                                                const float (&lse)[Traits::kMSlices][2], typename Traits::Elem* o_gmem,
                                                std::int64_t o_row_stride, float* lse_gmem,
                                                std::int64_t lse_row_stride, int rows_valid, int head_dim, int warp,
                                                int lane) {
  using Elem = typename Traits::Elem;
  using Tile = typename Traits::SmemQ;
  const int warp_row0 = warp / Traits::kBandWarps * Traits::kWarpRows;
  const int part = warp % Traits::kBandWarps;
  const bool lse_writer = part == 0;
#pragma unroll
  for (int mi = 0; mi < Traits::kMSlices; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp_row0 + mi * 16 + (lane >> 2) + 8 * h;
#pragma unroll
      for (int dj = 0; dj < Traits::kNTilesO; ++dj) {
        const std::uint32_t v = pack2<Elem>(o[mi][dj][2 * h] * o_factor[mi][h], o[mi][dj][2 * h + 1] * o_factor[mi][h]);
        *reinterpret_cast<std::uint32_t*>(sQ + Tile::offset(r, fwd_o_column<Traits>(dj, part) + 2 * (lane & 3))) = v;
      }
      if (lse_gmem != nullptr && lse_writer && (lane & 3) == 0 && r < rows_valid)
        lse_gmem[r * lse_row_stride] = lse[mi][h];
    }
  __syncwarp();
  constexpr int kWarpChunks = Traits::kWarpCols / 8;
  constexpr int kChunks = Traits::kWarpRows * kWarpChunks;
#pragma unroll
  for (int it = 0; it < (kChunks + 31) / 32; ++it) {
    const int idx = it * 32 + lane;
    const int r = warp_row0 + idx / kWarpChunks;
    const int c = fwd_o_column<Traits>(idx % kWarpChunks, part) / 8;
    if ((kChunks % 32 == 0 || idx < kChunks) && r < rows_valid && c * 8 < head_dim)
      *reinterpret_cast<uint4*>(o_gmem + r * o_row_stride + c * 8) =
          *reinterpret_cast<const uint4*>(sQ + Tile::chunk_offset(r, c));
  }
}

}  // namespace flashattn::detail::sm80
