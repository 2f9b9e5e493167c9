// Decode attention kernels for head dims up to 256 (fp16, bf16), the tiles for 163 KiB and
// 99 KiB of shared memory.
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
FLASHATTN_DECODE_TILE_INSTANCES(256, SmemTier::kib163)
FLASHATTN_DECODE_TILE_INSTANCES(256, SmemTier::kib99)
}  // namespace flashattn::detail::decode
