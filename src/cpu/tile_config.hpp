// Tile sizes of the CPU engine. A (64 x d) fp32 tile is 32 KiB at d = 128, so the Q, K,
// V tiles, the 64 x 64 score tile and the O accumulator of one worker (~140 KiB at
// d = 128) stay in a Zen 4 / Skylake-SP core's private L2 (1-2 MiB). Smaller tiles
// spent more time in the per-tile softmax bookkeeping; larger ones spilled L2 at d = 256.
// 128-row q tiles (each K / V tile loaded for twice the rows) measured within noise on this
// 2-core EPYC VM (fp32, H = 4: forward d128 N 2k 164 -> 166-171, d64 N 1k 147 -> 150-151 GFLOP/s;
// backward -4..+2%), so 64 stays.
#pragma once

namespace flashattn::detail {

constexpr int kCpuBlockQ = 64;  // query rows per tile (and per work item)
constexpr int kCpuBlockK = 64;  // keys per tile; a multiple of 16 for the micro-kernel

}  // namespace flashattn::detail
