// Decode attention kernels for head dims up to 128 (fp16, bf16), the tile for 227 KiB of shared memory.
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
FLASHATTN_DECODE_TILE_INSTANCES(128, SmemTier::kib227)
}  // namespace flashattn::detail::decode
