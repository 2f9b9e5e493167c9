// Which (batch, head, q-tile) a CTA of the forward works on. The grid is one-dimensional
// (gridDim.x allows 2^31 - 1 blocks, y and z only 65535), so batch x heads > 65535 and
// seqlen >= 256k need no special case; the host splits a larger grid into several launches
// with `block_offset`. Consecutive blocks share (batch, head), hence K/V in L2, and the
// q-tiles are visited last-first so that causal rows with the most keys start earliest.
#pragma once

#include <cstdint>

namespace flashattn::detail::sm80 {

struct FwdTile {
  int batch;
  int head;
  int m_block;
};

struct FwdTileScheduler {
  int num_m_blocks;
  int heads;
  std::int64_t block_offset;

  __device__ __forceinline__ FwdTile tile(std::int64_t block) const {
    const std::int64_t idx = block + block_offset;
    const std::int64_t bh = idx / num_m_blocks;
    FwdTile t;
    t.m_block = num_m_blocks - 1 - static_cast<int>(idx - bh * num_m_blocks);
    t.head = static_cast<int>(bh % heads);
    t.batch = static_cast<int>(bh / heads);
    return t;
  }
};

}  // namespace flashattn::detail::sm80
