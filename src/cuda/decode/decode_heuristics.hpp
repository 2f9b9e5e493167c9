// How many splits of the key range a decode call uses when the caller leaves it to us.
// Decode is bound by memory bandwidth, which needs every SM busy: with batch * heads_kv CTAs
// short of the device's resident-CTA slots, the key range is split and the parts merged.
// The count maximises wave efficiency (CTAs / slots, rounded up to whole waves) and takes the
// smallest count within 2% of the best. FlashAttention 2 settles for 85% of the best because
// every split adds a partial O to write and merge, but for this memory-bound kernel an idle
// slot costs more: on an H200 (132 SMs x 2 CTAs), batch 1 with 8 KV heads ran 232 CTAs (29
// splits, 88%) at 2.45 TB/s; a full 264 fills every SM's two CTAs of loads in flight. The
// partial states are small next to the cache (B * Hq * D fp32 per split). Each split keeps
// >= 4 tiles of 64 keys: each CTA pays a prologue (Q load, first tiles' latency) and a part
// to write, which 2-tile splits do not amortise (H200, batch 1 x 4k keys, one graph-replayed
// call: 32 splits of 2 tiles 18.4 us, 16 splits of 4 tiles 16.9 us, 8 of 8 tiles 20.9 us).
#pragma once

#include <algorithm>
#include <cmath>

namespace flashattn::detail::decode {

// key_tiles below count blocks of this many keys, whatever the kernel's tile (a split itself
// covers whole kernel tiles: decode_split_range).
constexpr int kSplitGrainKeys = 64;

inline int choose_num_splits(int ctas, int slots, int key_tiles, int max_splits = 128) {
  if (ctas <= 0 || slots <= 0) return 1;
  if (ctas >= slots * 8 / 10) return 1;
  const int limit = std::max(1, std::min({max_splits, key_tiles / 4, (2 * slots + ctas - 1) / ctas}));
  auto efficiency = [&](int s) {
    const double waves = static_cast<double>(ctas) * s / slots;
    return waves / std::ceil(waves);
  };
  double best = 0;
  for (int s = 1; s <= limit; ++s) best = std::max(best, efficiency(s));
  for (int s = 1; s <= limit; ++s)
    if (efficiency(s) >= 0.98 * best) return s;
  return 1;
}

// The count for a device of `sms` SMs holding `per_sm` CTAs each. Filling every CTA slot pays
// off only when each split is long: a second CTA on an SM shares that SM's bandwidth, so it
// halves the splits' length and doubles the prologues and parts for the same bytes. Short
// splits therefore fill one CTA per SM (H200, batch 1 x 8k keys, graph-replayed: 16 splits of
// 8 tiles 19.8 us, 32 of 4 tiles 21.1; x 64k: 32 splits of 32 tiles 74.1, 16 of 64 tiles 77.8).
// A kernel of one CTA per SM (head dim 128: 8 warps, 208 KB) splits into one wave at most: a
// second wave of splits runs after the first, a latency the first wave's tail cannot hide
// (H200, graph-replayed: batch 1 x 64k keys, 33 splits in two waves 79.1 us, 16 in one 69.8;
// x 16k keys 33.2 vs 25.2; batch 8 x 8k keys, 4 splits 73.8 us, 2 splits 68.3).
inline int choose_device_splits(int ctas, int sms, int per_sm, int key_tiles) {
  constexpr int kLongSplitTiles = 16;
  const int one_wave = std::max(1, sms / std::max(ctas, 1));
  if (per_sm <= 1) return choose_num_splits(ctas, sms, key_tiles, one_wave);
  const int all_slots = choose_num_splits(ctas, sms * per_sm, key_tiles);
  if (key_tiles / all_slots >= kLongSplitTiles) return all_slots;
  return choose_num_splits(ctas, sms, key_tiles, one_wave);
}

}  // namespace flashattn::detail::decode
