// Which (batch, kv head, kv tile) a block of the sm80 backward works on, and in what order the
// blocks start. Host and device.
//
// Default order (group == 0): the kv tile varies fastest, so every kv tile of one (batch, kv
// head) "pair" runs at about the same time and they share that pair's Q / dO in L2 (FA2's order).
// Under a causal or windowed mask the kv tiles have unequal work (at the diagonal kv tile j sees
// the q tiles from j on: the first of a pair has the most), and in that order a pair's longest
// block starts among the grid's last ones, so the GPU idles waiting for it. Grouped order
// (group = g > 0): pairs in groups of g, and within a group the kv tile varies slowest, so each
// group starts its longest blocks first and the grid ends on short ones; g is as many pairs as
// half of L2 holds the q side of, so a group's blocks still share their Q / dO there.
// Either order starts kv tile j - 1 of a pair before kv tile j, which the deterministic dQ order
// relies on (flash_bwd_launch.cu).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
#define FLASHATTN_HD __host__ __device__
#else
#define FLASHATTN_HD
#endif

namespace flashattn::detail::sm80_bwd {

struct BwdBlockOrder {
  int n_kv_tiles = 1;  // per pair
  int pairs = 1;       // batch * heads_kv
  int group = 0;       // 0: kv tile fastest; else pairs per group, kv tile slowest within one

  // Block `bid` (0 .. n_kv_tiles * pairs - 1) -> its kv tile and pair (b * heads_kv + hkv).
  FLASHATTN_HD void coords(std::uint32_t bid, int& kv_tile, int& pair) const {
    const std::uint32_t n = static_cast<std::uint32_t>(n_kv_tiles);
    if (group <= 0) {
      kv_tile = static_cast<int>(bid % n);
      pair = static_cast<int>(bid / n);
      return;
    }
    const std::uint32_t g = static_cast<std::uint32_t>(group);
    const std::uint32_t first = bid / (g * n) * g;  // the group's first pair
    const std::uint32_t size = std::min<std::uint32_t>(g, static_cast<std::uint32_t>(pairs) - first);
    const std::uint32_t r = bid - first * n;
    kv_tile = static_cast<int>(r / size);
    pair = static_cast<int>(first + r % size);
  }
};

// The group for a call: 0 (kv tile fastest) unless `masked` (the caller's test that the first
// kv tiles have the most work: a causal or right-bounded window) and a pair has fewer than half
// as many kv tiles as the GPU runs blocks at once (`slots`): then the default order's last wave
// holds several pairs, each starting with its longest block. With more kv tiles a pair's own
// blocks, longest first, fill that wave, and the grouped order only gave up L2 sharing (H200,
// causal 16k: -2..0%). Nor with fewer than kMinGroupedKvTiles: the blocks of a short pair differ
// little, and at 8 kv tiles (d 128, 1k rows) the grouped order measured -3..+5% (H200) and, per
// round, 155.9 / 155.5 / 146.3 against 150.4 / 158.5 / 160.0 TFLOP/s (H100, grouped / not),
// where 16 (d 256, 1k) and more gained. Else the pairs whose q side (Q, dO, LSE2, Drow of every q
// head they serve) fills half of `l2_bytes`, at least one. (Not measured: smaller groups of about
// two waves of blocks, which would keep more of L2 shared.)
constexpr int kMinGroupedKvTiles = 16;
inline int bwd_pair_group(bool masked, int pairs, int n_kv_tiles, int slots, std::int64_t q_side_bytes_per_pair,
                          std::size_t l2_bytes) {
  if (!masked || pairs <= 1 || n_kv_tiles < kMinGroupedKvTiles || 2 * n_kv_tiles >= slots) return 0;
  const std::int64_t budget = static_cast<std::int64_t>(l2_bytes / 2);
  const std::int64_t g = q_side_bytes_per_pair > 0 ? budget / q_side_bytes_per_pair : pairs;
  return static_cast<int>(std::clamp<std::int64_t>(g, 1, pairs));
}

}  // namespace flashattn::detail::sm80_bwd

#undef FLASHATTN_HD
