// Decode attention kernels for head dims up to 64 (fp16, bf16), the tile for 227 KiB of shared memory.
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
template void launch_attention<__half, 64, SmemTier::kib227>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 64, SmemTier::kib227>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<64, SmemTier::kib227>();
}  // namespace flashattn::detail::decode
