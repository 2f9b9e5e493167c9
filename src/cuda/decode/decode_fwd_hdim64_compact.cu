// Decode attention kernels for head dims up to 64 (fp16, bf16), the tile for 99 KiB of shared
// memory (the 227 KiB tile fits 163 KiB at this head dim).
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
template void launch_attention<__half, 64, SmemTier::kib99>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 64, SmemTier::kib99>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<64, SmemTier::kib99>();
}  // namespace flashattn::detail::decode
