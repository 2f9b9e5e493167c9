// Decode attention kernels for head dims up to 64 (fp16, bf16), the tile for 99 KiB of shared
// memory (the 227 KiB tile fits 163 KiB at this head dim).
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
FLASHATTN_DECODE_TILE_INSTANCES(64, SmemTier::kib99)
}  // namespace flashattn::detail::decode
